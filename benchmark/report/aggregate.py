"""Aggregate: one row per group (arch x fusion x tuned x config hash), mean / std / n over seeds,
its section (main comparison, other, held-out) and, in the main comparison, test error with a
95% interval and Welch's test against the best; joined to the bench figures; per-epoch curves
and per-sum accuracies for the plots. Model size and cost (``params``, ``macs_per_image``) are
what the runs recorded: nothing here builds a model."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from benchmark.machines import features_of, machine_of, with_features, without_features
from benchmark.report.load import KEYS as RUN_KEYS
from benchmark.report.load import run_configs, seed_stats
from benchmark.report.reference import SAME, Reference, from_runs, sizes_text, tuned_from
from benchmark.report.stats import indistinguishable, interval, welch_p
from benchmark.wording import BEST, BETTER, NEAR, UNTESTED, WORSE

# A group's key: the loader's ``KEYS`` and whose runs they are (``report --against``: the
# user's runs, ``yours``, beside a reference's; never pooled with the reference's when equal).
KEYS = [*RUN_KEYS, "yours"]

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


# what a group's runs share, taken from its first run
SHARED = ("epochs", "params", "macs_per_image", "section", "differs", "sizes", "timing_device")


def keys_of(frame: pd.DataFrame, on: list[str] = KEYS) -> list[tuple[Any, ...]]:
    """Each row's group key (its ``on`` columns) as a tuple: the loops below find groups with
    them, where a pandas call per group cost more than the rest of a summary."""
    return list(zip(*(frame[k] for k in on), strict=True))


def owned(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the ``yours`` column (False where the loader left it out: no reference)."""
    return runs if "yours" in runs else runs.assign(yours=False)


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
        "sizes",
        "timing_device",
        "test_sum_err_mean",
        "test_sum_err_ci",
        "p_vs_best",
        "near_best",
        "standing",
        "same_as_default",
        "target_seconds",
        "target_reached",
    ]


def pareto_front(cost: pd.Series, value: pd.Series) -> pd.Series:
    """True where no other point has cost <= and value >= with one of them strict."""
    c, v = cost.to_numpy(float)[:, None], value.to_numpy(float)[:, None]
    dominates = (c.T <= c) & (v.T >= v) & ((c.T < c) | (v.T > v))  # [i, j]: j dominates i
    known = ~(np.isnan(c[:, 0]) | np.isnan(v[:, 0]))
    return pd.Series(known & ~dominates.any(axis=1), index=cost.index)


def group_labels(summary: pd.DataFrame, default: str = "") -> pd.Series:
    """``arch x fusion``, its sizes (`` (img_size=28, patch_size=7)``), then `` (tuned)`` in the
    main comparison (``default`` for the others: a sentence says `` (default)``) or what sets
    the group apart elsewhere (`` (epochs 4)``), `` [yours]`` for the user's runs beside a
    reference, then the precision (`` [bf16]``) and the config hash only where still needed to
    be unique."""
    tuned = np.where(summary["tuned"].astype(bool), " (tuned)", default)
    tag = np.where(summary["section"] == "main", tuned, " (" + summary["differs"] + ")")
    sizes = np.where(summary["sizes"] != "", " (" + summary["sizes"] + ")", "")
    base = summary["arch"] + " x " + summary["fusion"] + sizes + tag
    base = base + np.where(summary["yours"].astype(bool), " [yours]", "")
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
    merged = summary[[*KEYS, "params", "timing_device"]].merge(
        rows, on=["arch", "fusion"], suffixes=("", "_bench")
    )
    same = merged["params_bench"].isna() | (merged["params_bench"] == merged["params"])
    return merged[same]


def bench_best(summary: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """Each group's best bench row (highest inference throughput), from the rows measured on
    the device its runs were timed on where there are any, so that a group trained on a CPU
    does not show a GPU's throughput; else from any device (``bench_device`` names it, with
    its CPU's features where the row recorded them). Of two CPUs of one name, the one with the
    runs' features is their device, one without features next, another CPU of that name before
    any other device. On that device, rows of the group's precision come first, then eager
    ones, as its runs trained: an fp32 group showed a compiled bf16 row's throughput."""
    if bench.empty:  # no bench CSV (most reports of one's own runs): pandas' merges cost 10 ms
        none = pd.MultiIndex.from_arrays([[]] * len(KEYS), names=KEYS)
        return pd.DataFrame({c: pd.Series(dtype=object if c == "bench_precision" else float)
                             for c in BENCH_BEST.values()}, index=none)  # fmt: skip
    matches = bench_matches(summary, bench)
    timed_on = matches["timing_device"].astype(str)
    row_features = matches.get("cpu_features", pd.Series("", index=matches.index))
    row_features = row_features.fillna("").astype(str)
    theirs = timed_on.map(features_of)
    same_name = matches["device"].astype(str) == timed_on.map(machine_of)
    unknown = (row_features == "") | (theirs == "")
    own = same_name * (1 + unknown + 2 * (row_features == theirs)).clip(upper=3)
    named = list(map(with_features, matches["device"].astype(str), row_features))
    alike = matches["bench_precision"] == matches["precision"]
    eager = ~matches.get("compile", pd.Series(False, index=matches.index)).eq(True)
    return (
        matches.assign(own=own, device=named, alike=alike, eager=eager)
        .sort_values(
            ["own", "alike", "eager", "infer_images_per_s"], ascending=False, kind="stable"
        )
        .drop_duplicates(KEYS)
        .set_index(KEYS)[list(BENCH_BEST)]
        .rename(columns=BENCH_BEST)
    )


def main_precision(precisions: pd.Series) -> str:
    """The precision of the main comparison: the one most of its runs used (ties: fp32)."""
    counts = precisions.value_counts()
    return "fp32" if counts.empty else max(counts.index, key=lambda p: (counts[p], p == "fp32"))


def run_table(runs: pd.DataFrame, ref: Reference) -> pd.DataFrame:
    """Per run: its section and what sets it apart from the reference. A run that would be in
    the main comparison but computed in another precision (bf16 where most are fp32) goes to
    the precision section, beside its twin; one over the protocol's parameter cap goes to the
    others. The user's runs (``yours``) meet the reference's budget and cap, in any combination."""
    configs = [
        {"arch": a, "fusion": f, **c}
        for a, f, c in zip(runs["arch"], runs["fusion"], run_configs(runs), strict=True)
    ]
    sources = [
        tuned_from(c) or ({} if tuned else None)
        for c, tuned in zip(configs, runs["tuned"], strict=True)
    ]
    refs = [ref.opened() if yours else ref for yours in runs["yours"]]
    heldout = [bool(c.get("holdout_pairs")) for c in configs]
    over = [ref.over_cap(p) for p in runs["params"]]
    main = pd.Series(
        [r.is_main(c, t) and not o for r, c, t, o in zip(refs, configs, sources, over, strict=True)]
    )
    usual = main_precision(runs["precision"][main.to_numpy()])
    other = (runs["precision"] != usual).tolist()
    section = [
        "heldout" if h else ("precision" if o else "main") if m else "other"
        for h, m, o in zip(heldout, main, other, strict=True)
    ]
    differs = [r.differs(c, t) for r, c, t in zip(refs, configs, sources, strict=True)]
    differs = [
        d if not o else f"{p:,.0f} parameters, over the cap of {ref.max_params:,}"
        if d == SAME else f"{d}; {p:,.0f} parameters, over the cap"
        for d, o, p in zip(differs, over, runs["params"], strict=True)
    ]  # fmt: skip
    differs = [
        d if not o else f"precision {p}" if d == SAME else f"{d}; precision {p}"
        for d, o, p in zip(differs, other, runs["precision"], strict=True)
    ]
    return runs.assign(section=section, differs=differs, sizes=[sizes_text(c) for c in configs])


def machines(runs: pd.DataFrame) -> pd.Series:
    """Each run's timing device with its CPU's features, which tell apart CPUs that VMs name
    alike (runs from before features were recorded name the device alone)."""
    device = runs.get("device", pd.Series("-", index=runs.index)).fillna("-").astype(str)
    features = runs.get("cpu_features", pd.Series("", index=runs.index)).fillna("").astype(str)
    return pd.Series(map(with_features, device, features), index=runs.index, dtype=str)


def same_device_timings(runs: pd.DataFrame) -> pd.DataFrame:
    """Timings kept only for the runs on their group's most common device (a group spread over
    machines gets one machine's figures, never an average of several), and that device."""
    machine = machines(runs)
    keys = keys_of(runs)
    counts: dict[tuple[Any, ...], Counter[str]] = {}
    for key, name in zip(keys, machine, strict=True):
        counts.setdefault(key, Counter())[name] += 1
    modal_of = {key: min(c, key=lambda name, c=c: (-c[name], name)) for key, c in counts.items()}
    modal = pd.Series(  # ties: the first by name; a group with a key unknown has no device
        [math.nan if pd.isna(list(key)).any() else modal_of[key] for key in keys],
        index=runs.index,
    )
    kept = runs.assign(timing_device=modal)
    for column in TIMINGS:
        kept[column] = kept[column].where(machine == modal)
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
    runs = owned(runs)
    found: dict[tuple[Any, ...], list[float]] = {}
    for key, acc in zip(keys_of(runs), runs["test.sum_acc"], strict=True):
        if not pd.isna(list(key)).any():  # as a groupby drops a key unknown
            found.setdefault(key, []).append(100 * (1 - acc))
    return dict(sorted(found.items()))  # in key order, as a groupby gave them


def best_key(errors: dict[tuple[Any, ...], list[float]]) -> tuple[Any, ...]:
    """The best group: the lowest mean error among the reference's groups (not the user's) with
    at least two seeds; a one-seed group is best only when no group has two."""
    theirs = {k: v for k, v in errors.items() if not k[-1]} or errors
    tested = {k: v for k, v in theirs.items() if len(v) >= 2} or theirs
    return min(tested, key=lambda k: (np.mean(tested[k]), k))


def best_row(groups: pd.DataFrame) -> pd.Series | None:
    """``best_key``'s rule over groups sorted by mean error (a ladder's rung): the first with
    two seeds or more, a one-seed group only where none has two; None for none."""
    tested = groups[groups["n"] >= 2]
    return None if groups.empty else (tested if not tested.empty else groups).iloc[0]


def standing(p: float, mine: list[float], best: list[float]) -> str:
    """A group against the best, in ``wording``'s terms."""
    if math.isnan(p):
        return UNTESTED
    if indistinguishable(p):
        return NEAR
    return BETTER if np.mean(mine) < np.mean(best) else WORSE


def error_stats(runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Main-comparison groups: test sum error % with its 95% interval, Welch's p against the
    best (``best_key``), whether the two are indistinguishable at 5%, and the ``standing``."""
    errors = sum_errors(runs[runs["section"] == "main"])
    out = summary.copy()
    out["test_sum_err_mean"] = 100 * (1 - out["test_sum_acc_mean"])
    out["test_sum_err_ci"] = math.nan
    out["p_vs_best"] = math.nan
    out["near_best"] = False
    out["standing"] = ""
    if not errors:
        return out
    best = best_key(errors)
    found = []  # per group: interval, p, near, standing, set a column at once (.at costs)
    for key in keys_of(out):
        if key not in errors:
            found.append((math.nan, math.nan, False, ""))
            continue
        p = 1.0 if key == best else welch_p(errors[key], errors[best])
        said = BEST if key == best else standing(p, errors[key], errors[best])
        found.append((interval(errors[key])[1], p, indistinguishable(p), said))
    columns = ("test_sum_err_ci", "p_vs_best", "near_best", "standing")
    for column, values in zip(columns, zip(*found, strict=True), strict=True):
        out[column] = list(values)
    return out


def same_as_default(summary: pd.DataFrame) -> pd.Series:
    """True for a tuned group whose configuration equals its combination's default, in the same
    section: the study's best trial was the default point (its defaults trial, or a trial that
    gave the same config hash)."""
    tuned = summary["tuned"].astype(bool)
    found = pd.Series(False, index=summary.index)
    for on, mine in (
        (["arch", "fusion", "config_hash", "precision", "yours", "section"], tuned),
        (["arch", "fusion", "precision", "yours", "section"], tuned & summary["from_defaults"]),
    ):
        rows = keys_of(summary, on)
        defaults = {row for row, its in zip(rows, tuned, strict=True) if not its}
        found |= pd.Series([row in defaults for row in rows], index=summary.index) & mine
    return found


def comparable_timings(summary: pd.DataFrame) -> pd.DataFrame:
    """The user's main-comparison timings kept only where measured on a kind of device the
    reference's main comparison was timed on (accuracy is comparable anywhere, time is not)."""
    main = summary["section"] == "main"
    theirs = set(summary.loc[main & ~summary["yours"], "timing_device"])
    # the same machine, or one of its name where the reference's runs did not record features
    named = summary["timing_device"].astype(str).map(without_features)
    away = main & summary["yours"] & ~(summary["timing_device"].isin(theirs) | named.isin(theirs))
    if not theirs or not away.any():
        return summary
    out = summary.copy()
    for column in ("train_seconds_mean", "train_seconds_std", "train_images_per_s_mean",
                   "train_images_per_s_std", "target_seconds"):  # fmt: skip
        out.loc[away, column] = math.nan
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
    if "macs_per_image" not in runs:  # runs from before it was recorded (see benchmark.migrate)
        runs = runs.assign(macs_per_image=math.nan)
    runs = owned(runs)
    defaults = runs.get("from_defaults", pd.Series(False, index=runs.index))
    runs = runs.assign(from_defaults=defaults.astype(object).fillna(False).astype(bool))
    ref = ref or from_runs(runs)
    runs = same_device_timings(run_table(runs, ref))
    target = time_to_target(history if history is not None else pd.DataFrame())
    runs = runs.assign(target_seconds=runs["run"].map(target))
    grouped = runs.groupby(KEYS, sort=True)
    # each statistic over all the per-seed columns at once: a third of the time of one call each
    per_seed = grouped[list(seed_stats().values())]
    names = {column: name for name, column in seed_stats().items()}
    summary = pd.concat(
        [
            grouped.agg(
                n=("seed", "size"),
                seeds=("seed", lambda s: ",".join(str(x) for x in sorted(s))),
                target_seconds=("target_seconds", "mean"),
                target_reached=("target_seconds", "count"),
                from_defaults=("from_defaults", "all"),
            ),
            grouped[list(SHARED)].first(),
            *(
                getattr(per_seed, stat)().rename(columns=lambda c, s=stat: f"{names[c]}_{s}")
                for stat in ("mean", "std")
            ),
        ],
        axis=1,
    ).reset_index()
    summary["label"] = group_labels(summary)
    summary = summary.join(bench_best(summary, bench), on=KEYS)
    main = summary["section"] == "main"
    summary["pareto"] = False
    summary.loc[main, "pareto"] = pareto_front(
        summary.loc[main, "params"], summary.loc[main, "test_sum_acc_mean"]
    )
    summary = comparable_timings(error_stats(runs, summary))
    summary["same_as_default"] = same_as_default(summary)
    summary["order"] = summary["section"].map(SECTIONS.index)
    summary = summary.sort_values(
        ["order", "test_sum_acc_mean", "arch", "fusion", "tuned", "config_hash", "precision"],
        ascending=[True, False, True, True, True, True, True],
        kind="stable",
    )
    return summary[summary_columns()].reset_index(drop=True)


def tuned_vs_default(summary: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each main-comparison combination's tuned group beside its default group (both at the
    reference budget): error, parameters, the difference in error points and Welch's p
    (``same_as_default_tuned``: the tuned configuration is the default)."""
    columns = [
        "config_hash", "test_sum_err_mean", "test_sum_err_ci", "test_sum_acc_mean",
        "test_sum_acc_std", "n", "params", "same_as_default",
    ]  # fmt: skip
    main = summary[summary["section"] == "main"]
    on = ["arch", "fusion", "precision", "yours"]
    default = main.loc[~main["tuned"].astype(bool), [*on, *columns]]
    tuned = main.loc[main["tuned"].astype(bool), [*on, *columns]]
    pairs = default.merge(tuned, on=on, suffixes=("_default", "_tuned"))
    pairs["delta"] = pairs["test_sum_acc_mean_tuned"] - pairs["test_sum_acc_mean_default"]
    pairs["err_delta"] = pairs["test_sum_err_mean_tuned"] - pairs["test_sum_err_mean_default"]
    errors = sum_errors(runs) if runs is not None else {}
    pairs["p"] = [
        welch_p(
            errors.get((r.arch, r.fusion, False, r.config_hash_default, r.precision, r.yours), []),
            errors.get((r.arch, r.fusion, True, r.config_hash_tuned, r.precision, r.yours), []),
        )
        for r in pairs.itertuples()
    ]
    keys = ["yours", "arch", "fusion", "precision", "config_hash_default", "config_hash_tuned"]
    return pairs.sort_values(keys, kind="stable").reset_index(drop=True)


def with_labels(frame: pd.DataFrame, runs: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Per-run rows tagged with their group's keys and label (via the ``run`` column)."""
    return frame.merge(owned(runs)[["run", *KEYS]], on="run").merge(
        summary[[*KEYS, "label"]], on=KEYS
    )


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
