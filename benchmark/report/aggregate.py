"""Aggregate: one row per group (arch x fusion x tuned x config hash), mean / std / n over seeds,
its section (main comparison, other, held-out) and, in the main comparison, test error with a
95% interval and Welch's test against the best; joined to the bench figures; per-epoch curves
and per-sum accuracies for the plots."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from architectures import create_model
from benchmark.bench import macs_per_image
from benchmark.report.load import KEYS, seed_stats
from benchmark.report.reference import SAME, Reference, from_runs, tuned_from
from benchmark.report.stats import indistinguishable, interval, welch_p

TARGET = 0.99  # validation sum accuracy whose first reach is timed ("time to target")
SECTIONS = ("main", "precision", "other", "heldout")
TIMINGS = ("train_seconds", "train_images_per_s")  # per-machine figures: never across devices

# Columns the best bench row (highest inference throughput) contributes to a group.
BENCH_BEST = {
    "infer_images_per_s": "infer_images_per_s",
    "latency_ms_b1": "latency_ms_b1",
    "device": "bench_device",
    "bench_precision": "bench_precision",
    "batch_size": "bench_batch_size",
}


def summary_columns() -> list[str]:
    return [
        *KEYS,
        "label",
        "n",
        "seeds",
        "epochs",
        *(f"{name}_{stat}" for name in seed_stats() for stat in ("mean", "std")),
        "params",
        "macs_per_image",
        *BENCH_BEST.values(),
        "pareto",
        "section",
        "differs",
        "timing_device",
        "test_sum_err_mean",
        "test_sum_err_ci",
        "p_vs_best",
        "near_best",
        "target_seconds",
        "target_reached",
    ]


def pareto_front(cost: pd.Series, value: pd.Series) -> pd.Series:
    """True where no other point has cost <= and value >= with one of them strict."""
    c, v = cost.to_numpy(float)[:, None], value.to_numpy(float)[:, None]
    dominates = (c.T <= c) & (v.T >= v) & ((c.T < c) | (v.T > v))  # [i, j]: j dominates i
    known = ~(np.isnan(c[:, 0]) | np.isnan(v[:, 0]))
    return pd.Series(known & ~dominates.any(axis=1), index=cost.index)


def group_labels(summary: pd.DataFrame) -> pd.Series:
    """``arch x fusion``, then `` (tuned)`` in the main comparison or what sets the group apart
    elsewhere (`` (epochs 4)``), then the precision (`` [bf16]``) and the config hash only
    where still needed to be unique."""
    tuned = np.where(summary["tuned"].astype(bool), " (tuned)", "")
    tag = np.where(summary["section"] == "main", tuned, " (" + summary["differs"] + ")")
    base = summary["arch"] + " x " + summary["fusion"] + tag
    base = base.where(~base.duplicated(keep=False), base + " [" + summary["precision"] + "]")
    return base.where(~base.duplicated(keep=False), base + " #" + summary["config_hash"])


def bench_ok(bench: pd.DataFrame) -> pd.Series:
    """Rows of a successful measurement: no error text."""
    error = bench["error"]
    return error.isna() | (error.astype(str).str.strip() == "")


def bench_matches(summary: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """Successful bench rows joined to groups by arch and fusion (and params when both know it,
    so a tuned model of another size does not borrow the default model's numbers)."""
    rows = bench[bench_ok(bench)].drop(columns=["file"], errors="ignore")
    rows = rows.rename(columns={"precision": "bench_precision"})  # the group's is a key
    merged = summary[[*KEYS, "params"]].merge(rows, on=["arch", "fusion"], suffixes=("", "_bench"))
    same = merged["params_bench"].isna() | (merged["params_bench"] == merged["params"])
    return merged[same]


def model_macs(config: dict) -> float:
    """Multiply-accumulates per image of the model a config describes (counted on the CPU, the
    way ``bench`` counts them); NaN for a model this checkout cannot build."""
    try:
        model = create_model(config["arch"], config["fusion"], **config.get("model_args", {}))
        return float(macs_per_image(model.eval(), torch.device("cpu")))
    except Exception:  # noqa: BLE001 - an old run of a renamed model: the report goes on
        return math.nan


def main_precision(precisions: pd.Series) -> str:
    """The precision of the main comparison: the one most of its runs used (ties: fp32)."""
    counts = precisions.value_counts()
    return "fp32" if counts.empty else max(counts.index, key=lambda p: (counts[p], p == "fp32"))


def run_table(runs: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Per run: its section and what sets it apart from the reference. A run that would be in
    the main comparison but computed in another precision (bf16 where most are fp32) goes to
    the precision section, beside its twin."""
    if "config_json" not in runs:
        runs = runs.assign(config_json="{}")
    configs = [json.loads(c) for c in runs["config_json"]]
    sources = [
        tuned_from(c) or ({} if tuned else None)
        for c, tuned in zip(configs, runs["tuned"], strict=True)
    ]
    heldout = [bool(c.get("holdout_pairs")) for c in configs]
    main = pd.Series([ref.is_main(c, t) for c, t in zip(configs, sources, strict=True)])
    usual = main_precision(runs["precision"][main.to_numpy()])
    other = (runs["precision"] != usual).tolist()
    section = [
        "heldout" if h else ("precision" if o else "main") if m else "other"
        for h, m, o in zip(heldout, main, other, strict=True)
    ]
    differs = [ref.differs(c, t) for c, t in zip(configs, sources, strict=True)]
    differs = [
        d if not o else f"precision {p}" if d == SAME else f"{d}; precision {p}"
        for d, o, p in zip(differs, other, runs["precision"], strict=True)
    ]
    return runs.assign(section=section, differs=differs)


def same_device_timings(runs: pd.DataFrame) -> pd.DataFrame:
    """Timings kept only for the runs on their group's most common device (a group spread over
    machines gets one machine's figures, never an average of several), and that device."""
    device = runs.get("device", pd.Series("-", index=runs.index)).fillna("-").astype(str)
    modal = device.groupby([runs[k] for k in KEYS]).transform(
        lambda d: d.value_counts().sort_index().idxmax()  # ties: the first by name
    )
    kept = runs.assign(timing_device=modal)
    for column in TIMINGS:
        kept[column] = kept[column].where(device == modal)
    return kept


def time_to_target(history: pd.DataFrame, target: float = TARGET) -> pd.Series:
    """Per run: seconds of training until the first epoch whose validation sum accuracy reached
    ``target`` (NaN if never), from the per-epoch history."""
    if history.empty or "seconds" not in history:
        return pd.Series(dtype=float)
    rows = history.sort_values(["run", "epoch"], kind="stable")
    elapsed = rows.groupby("run")["seconds"].cumsum()
    reached = rows.assign(elapsed=elapsed)[rows["val_sum_acc"] >= target]
    return reached.groupby("run")["elapsed"].first()


def sum_errors(runs: pd.DataFrame) -> dict[tuple[Any, ...], list[float]]:
    """Test sum error % of each run, listed per group (``KEYS`` tuple)."""
    return {key: list(100 * (1 - group["test.sum_acc"])) for key, group in runs.groupby(KEYS)}


def error_stats(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Main-comparison groups: test sum error % with its 95% interval, Welch's p against the
    group of lowest mean error, and whether the two are indistinguishable at 5%."""
    errors = sum_errors(runs[runs["section"] == "main"])
    out = summary.copy()
    out["test_sum_err_mean"] = 100 * (1 - out["test_sum_acc_mean"])
    out["test_sum_err_ci"] = math.nan
    out["p_vs_best"] = math.nan
    out["near_best"] = False
    if not errors:
        return out
    best = min(errors, key=lambda k: (np.mean(errors[k]), k))
    for i, row in out.iterrows():
        key = tuple(row[k] for k in KEYS)
        if key not in errors:
            continue
        out.at[i, "test_sum_err_ci"] = interval(errors[key])[1]
        p = 1.0 if key == best else welch_p(errors[key], errors[best])
        out.at[i, "p_vs_best"] = p
        out.at[i, "near_best"] = indistinguishable(p)
    return out


def summarize(
    runs: pd.DataFrame,
    bench: pd.DataFrame,
    ref: Reference | None = None,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per group: mean / std (ddof=1) / n over seeds, its section (``SECTIONS``) and
    ``differs``; main comparison first, then the others, each by best test sum accuracy."""
    if runs.empty:
        return pd.DataFrame(columns=summary_columns())
    ref = ref or from_runs(runs)
    runs = same_device_timings(run_table(runs, ref))
    target = time_to_target(history if history is not None else pd.DataFrame())
    runs = runs.assign(target_seconds=runs["run"].map(target))
    stats_columns = {
        f"{name}_{stat}": (column, stat)
        for name, column in seed_stats().items()
        for stat in ("mean", "std")
    }
    summary = (
        runs.groupby(KEYS, sort=True)
        .agg(
            n=("seed", "size"),
            seeds=("seed", lambda s: ",".join(str(x) for x in sorted(s))),
            epochs=("epochs", "first"),
            params=("params", "first"),
            section=("section", "first"),
            differs=("differs", "first"),
            timing_device=("timing_device", "first"),
            config_json=("config_json", "first"),
            target_seconds=("target_seconds", "mean"),
            target_reached=("target_seconds", "count"),
            **stats_columns,
        )
        .reset_index()
    )
    summary["label"] = group_labels(summary)
    matches = bench_matches(summary, bench)
    best = (
        matches.sort_values("infer_images_per_s", ascending=False, kind="stable")
        .drop_duplicates(KEYS)
        .set_index(KEYS)[list(BENCH_BEST)]
        .rename(columns=BENCH_BEST)
    )
    summary = summary.join(best, on=KEYS)
    summary["macs_per_image"] = [model_macs(json.loads(c)) for c in summary["config_json"]]
    main = summary["section"] == "main"
    summary["pareto"] = False
    summary.loc[main, "pareto"] = pareto_front(
        summary.loc[main, "params"], summary.loc[main, "test_sum_acc_mean"]
    )
    summary = error_stats(runs, summary)
    summary["order"] = summary["section"].map(SECTIONS.index)
    summary = summary.sort_values(
        ["order", "test_sum_acc_mean", "arch", "fusion", "tuned", "config_hash", "precision"],
        ascending=[True, False, True, True, True, True, True],
        kind="stable",
    )
    return summary[summary_columns()].reset_index(drop=True)


def tuned_vs_default(summary: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each main-comparison combination's tuned group beside its default group (both at the
    reference budget): error, parameters, the difference in error points and Welch's p."""
    columns = [
        "config_hash", "test_sum_err_mean", "test_sum_err_ci", "test_sum_acc_mean",
        "test_sum_acc_std", "n", "params",
    ]  # fmt: skip
    main = summary[summary["section"] == "main"]
    on = ["arch", "fusion", "precision"]
    default = main.loc[~main["tuned"].astype(bool), [*on, *columns]]
    tuned = main.loc[main["tuned"].astype(bool), [*on, *columns]]
    pairs = default.merge(tuned, on=on, suffixes=("_default", "_tuned"))
    pairs["delta"] = pairs["test_sum_acc_mean_tuned"] - pairs["test_sum_acc_mean_default"]
    pairs["err_delta"] = pairs["test_sum_err_mean_tuned"] - pairs["test_sum_err_mean_default"]
    errors = sum_errors(runs) if runs is not None else {}
    pairs["p"] = [
        welch_p(
            errors.get((r.arch, r.fusion, False, r.config_hash_default, r.precision), []),
            errors.get((r.arch, r.fusion, True, r.config_hash_tuned, r.precision), []),
        )
        for r in pairs.itertuples()
    ]
    keys = ["arch", "fusion", "precision", "config_hash_default", "config_hash_tuned"]
    return pairs.sort_values(keys, kind="stable").reset_index(drop=True)


def with_labels(frame: pd.DataFrame, runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per-run rows tagged with their group's keys and label (via the ``run`` column)."""
    return frame.merge(runs[["run", *KEYS]], on="run").merge(summary[[*KEYS, "label"]], on=KEYS)


def val_curves(history: pd.DataFrame, runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Validation sum accuracy per group and epoch, mean over the group's seeds."""
    if history.empty or summary.empty:
        return pd.DataFrame(columns=["label", "epoch", "val_sum_acc"])
    tagged = with_labels(history[["run", "epoch", "val_sum_acc"]], runs, summary)
    curves = tagged.groupby(["label", "epoch"], sort=True)["val_sum_acc"].mean().reset_index()
    return summary[["label"]].merge(curves, on="label")  # inner merge keeps the summary order


def class_accuracy(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Groups (labels, in summary order) x true sum: test accuracy, mean over seeds."""
    column = "test.sum_acc_by_class"
    if column not in runs or summary.empty:
        return pd.DataFrame()
    rows = runs[runs[column].map(lambda v: isinstance(v, list) and len(v) > 0)]
    if rows.empty:
        return pd.DataFrame()
    wide = pd.DataFrame(rows[column].tolist(), index=rows.index).apply(
        pd.to_numeric, errors="coerce"
    )
    wide["run"] = rows["run"]
    tagged = with_labels(wide, runs, summary).drop(columns=["run", *KEYS])
    means = tagged.groupby("label").mean()
    return means.reindex([label for label in summary["label"] if label in means.index])
