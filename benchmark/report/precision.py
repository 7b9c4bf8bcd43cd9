"""The precision section: each configuration of the main comparison that was also trained in
another precision (bf16 where the main comparison is fp32), its error and training speed beside
its twin's, so that ``auto``'s choice of bf16 on a CPU is shown to keep accuracy, or not."""

from __future__ import annotations

import math
import statistics

import pandas as pd

from benchmark.report.aggregate import sum_errors
from benchmark.report.output import error_cell, fmt, markdown_table, p_cell
from benchmark.report.stats import interval, verdicts, welch_p
from benchmark.wording import plural, were

TWIN = ["arch", "fusion", "tuned", "config_hash", "yours"]  # a group's identity but for precision
COLUMNS = ["label", "precision", "n", "train_images_per_s_mean", "timing_device"]


def precision_pairs(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per main-comparison group with a twin in the precision section: both sides'
    test sum error % (mean, 95% half-width), Welch's p, and the twin's training throughput
    over the main group's (NaN unless both were timed on the same kind of device)."""
    main = summary.loc[summary["section"] == "main", TWIN + COLUMNS]
    other = summary.loc[summary["section"] == "precision", TWIN + COLUMNS]
    pairs = main.merge(other, on=TWIN, suffixes=("_main", "_other"))
    if pairs.empty:
        return pairs
    errors = sum_errors(runs)
    rows = []
    for r in pairs.itertuples(index=False):
        a = errors.get((r.arch, r.fusion, r.tuned, r.config_hash, r.precision_main, r.yours), [])
        b = errors.get((r.arch, r.fusion, r.tuned, r.config_hash, r.precision_other, r.yours), [])
        same_device = r.timing_device_main == r.timing_device_other
        speed = r.train_images_per_s_mean_other / r.train_images_per_s_mean_main
        (err_main, ci_main), (err_other, ci_other) = interval(a), interval(b)
        rows.append(
            {
                "err_main": err_main,
                "ci_main": ci_main,
                "err_other": err_other,
                "ci_other": ci_other,
                "p": welch_p(a, b),
                "speedup": speed if same_device else math.nan,
            }
        )
    return pd.concat([pairs, pd.DataFrame(rows)], axis=1)


def precision_section(summary: pd.DataFrame, runs: pd.DataFrame | None) -> str:
    if summary.empty or runs is None:
        return ""
    pairs = precision_pairs(summary, runs)
    if pairs.empty:
        return ""
    usual, other = pairs["precision_main"].iloc[0], " / ".join(pairs["precision_other"].unique())
    delta = pairs["err_other"] - pairs["err_main"]
    said = verdicts(pairs["p"], delta)
    shown = said.map({"untested": "-", "none": "no difference detected"}).fillna(said)
    table = pd.DataFrame(
        {
            "group": pairs["label_main"],
            f"n ({usual}/{other})": pairs["n_main"].astype(str)
            + "/"
            + pairs["n_other"].astype(str),
            f"{usual} error %": list(map(error_cell, pairs["err_main"], pairs["ci_main"])),
            f"{other} error %": list(map(error_cell, pairs["err_other"], pairs["ci_other"])),
            "difference (points)": [fmt(d, "+.2f") for d in delta],
            "Welch p": [p_cell(p) for p in pairs["p"]],
            f"{other} error": shown,
            f"{usual} train img/s": [fmt(v, ",.0f") for v in pairs["train_images_per_s_mean_main"]],
            f"{other} train img/s": [
                fmt(v, ",.0f") for v in pairs["train_images_per_s_mean_other"]
            ],
            "speed-up": [fmt(v, ".2f") for v in pairs["speedup"]],
        }
    )
    lower, higher, none, untested = (
        int((said == v).sum()) for v in ("lower", "higher", "none", "untested")
    )  # untested: one seed on a side, no p
    compared = pairs["speedup"].notna()  # timed on the same kind of device
    speed = pairs.loc[compared, "speedup"]
    speed_text = (
        f" Training throughput was {statistics.median(speed):.2f}x {usual}'s (median; "
        f"{speed.min():.2f}-{speed.max():.2f}x) on the same kind of device "
        f"({', '.join(pairs.loc[compared, 'timing_device_main'].unique())})."
        if not speed.empty
        else ""
    )
    return "\n\n".join(
        [
            f"## Precision: {other} vs {usual}",
            f"{plural(len(pairs), 'group')} of the main comparison {were(len(pairs))} also "
            f"trained in {other} (same configuration and seeds; they stay out of the main "
            f"comparison, which is {usual}). Welch's t-test at 5% finds a lower {other} error "
            f"in {lower}, a higher one in {higher} and no difference in {none}"
            + (f" ({untested} untested: one seed on a side)" if untested else "")
            + "."
            + speed_text,
            markdown_table(table),
            "Error: mean over seeds ± the half-width of its 95% interval. Throughput: training "
            "images/s, mean over seeds, each side from its own runs (another sitting, possibly "
            "another machine of the same model); speed-up only where both were timed on the "
            "same kind of device.",
        ]
    )
