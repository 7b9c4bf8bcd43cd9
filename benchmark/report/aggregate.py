"""Aggregate: one row per group (arch x fusion x tuned x config hash), mean / std / n over seeds,
joined to the bench figures; per-epoch curves and per-sum accuracies for the plots."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.report.load import KEYS, seed_stats

# Columns the best bench row (highest inference throughput) contributes to a group.
BENCH_BEST = {
    "infer_images_per_s": "infer_images_per_s",
    "latency_ms_b1": "latency_ms_b1",
    "device": "bench_device",
    "precision": "bench_precision",
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
    ]


def pareto_front(cost: pd.Series, value: pd.Series) -> pd.Series:
    """True where no other point has cost <= and value >= with one of them strict."""
    c, v = cost.to_numpy(float)[:, None], value.to_numpy(float)[:, None]
    dominates = (c.T <= c) & (v.T >= v) & ((c.T < c) | (v.T > v))  # [i, j]: j dominates i
    known = ~(np.isnan(c[:, 0]) | np.isnan(v[:, 0]))
    return pd.Series(known & ~dominates.any(axis=1), index=cost.index)


def group_labels(summary: pd.DataFrame) -> pd.Series:
    """``arch x fusion`` (+ `` (tuned)``), with the config hash only where needed to be unique."""
    tuned = np.where(summary["tuned"].astype(bool), " (tuned)", "")
    base = summary["arch"] + " x " + summary["fusion"] + tuned
    return base.where(~base.duplicated(keep=False), base + " #" + summary["config_hash"])


def bench_ok(bench: pd.DataFrame) -> pd.Series:
    """Rows of a successful measurement: no error text."""
    error = bench["error"]
    return error.isna() | (error.astype(str).str.strip() == "")


def bench_matches(summary: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """Successful bench rows joined to groups by arch and fusion (and params when both know it,
    so a tuned model of another size does not borrow the default model's numbers)."""
    rows = bench[bench_ok(bench)].drop(columns=["file"], errors="ignore")
    merged = summary[[*KEYS, "params"]].merge(rows, on=["arch", "fusion"], suffixes=("", "_bench"))
    same = merged["params_bench"].isna() | (merged["params_bench"] == merged["params"])
    return merged[same]


def summarize(runs: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """One row per group: mean / std (ddof=1) / n over seeds, best test sum accuracy first."""
    if runs.empty:
        return pd.DataFrame(columns=summary_columns())
    stats = {
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
            **stats,
        )
        .reset_index()
    )
    summary["label"] = group_labels(summary)
    matches = bench_matches(summary, bench)
    macs = matches.groupby(KEYS)["macs_per_image"].max().rename("macs_per_image")
    best = (
        matches.sort_values("infer_images_per_s", ascending=False, kind="stable")
        .drop_duplicates(KEYS)
        .set_index(KEYS)[list(BENCH_BEST)]
        .rename(columns=BENCH_BEST)
    )
    summary = summary.join(macs, on=KEYS).join(best, on=KEYS)
    summary["pareto"] = pareto_front(summary["params"], summary["test_sum_acc_mean"])
    summary = summary.sort_values(
        ["test_sum_acc_mean", "arch", "fusion", "tuned", "config_hash"],
        ascending=[False, True, True, True, True],
        kind="stable",
    )
    return summary[summary_columns()].reset_index(drop=True)


def tuned_vs_default(summary: pd.DataFrame) -> pd.DataFrame:
    """Each tuned group beside each default group of the same arch x fusion and epochs budget
    (a 2-epoch default group is no baseline for 4-epoch tuned runs)."""
    columns = ["config_hash", "test_sum_acc_mean", "test_sum_acc_std", "n"]
    on = ["arch", "fusion", "epochs"]
    default = summary.loc[~summary["tuned"].astype(bool), [*on, *columns]]
    tuned = summary.loc[summary["tuned"].astype(bool), [*on, *columns]]
    pairs = default.merge(tuned, on=on, suffixes=("_default", "_tuned"))
    pairs["delta"] = pairs["test_sum_acc_mean_tuned"] - pairs["test_sum_acc_mean_default"]
    keys = ["arch", "fusion", "config_hash_default", "config_hash_tuned"]
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
