"""The ladder's *Equal time* section: test error against training seconds for every group at
every rung, and the Pareto front across rungs ("with this much time on this machine, train this
combination at this budget"), with what its seconds do not measure said beside it."""

from __future__ import annotations

import pandas as pd

from benchmark.comparison import epochs_text
from benchmark.config import MIN_TRAINED
from benchmark.report.ladder_plots import short
from benchmark.report.output import error_cell, markdown_table, seconds_cell
from benchmark.wording import is_are, listing, plural


def arithmetic_note(points: pd.DataFrame) -> str:
    """A sentence naming each rung's arithmetic when the rungs differ in it (seconds in bf16
    and in fp32 are not the same cost per epoch); empty when they all share one."""
    if "precision" not in points or points["precision"].nunique() < 2:
        return ""
    by_rung = points.groupby("rung", sort=True)["precision"].agg(lambda p: "/".join(sorted(set(p))))
    said = "; ".join(f"{epochs_text(int(e))}: {p}" for e, p in by_rung.items())
    return (
        f" The rungs trained in different arithmetic ({said}), each as its protocol chose: "
        "part of a difference in seconds between them is the arithmetic, not the budget."
    )


def warm_up_note(points: pd.DataFrame) -> str:
    """A sentence naming the rungs whose runs trained too few images for their seconds to be a
    rate (start-up and warm-up dominate them: ``MIN_TRAINED``); empty when none did. A smoke
    ladder's front began at 0.8 s, a run that took 6 s, as if that were what it costs."""
    short_rungs = sorted(set(points.loc[points["images"] < MIN_TRAINED, "rung"]))
    if not short_rungs:
        return ""
    said = listing([epochs_text(int(e)) for e in short_rungs])
    return (
        f" Runs of {said} trained fewer than {MIN_TRAINED:,} images each: their seconds are "
        "mostly start-up and warm-up, not a rate, so where they stand on the front says little "
        "of what longer runs cost."
    )


def spread_note(points: pd.DataFrame) -> str:
    """A sentence on how far a group's own runs differed in seconds (their standard deviation
    against their mean, over the groups of 2 seeds or more): on the ladder's shared VM one
    group's runs took 105-263 s, and a front whose rows are that close can swap."""
    seeded = points[points["n"] >= 2]
    spread = (seeded["train_seconds_std"] / seeded["train_seconds_mean"]).dropna()
    if spread.empty:
        return ""
    return (
        f" A group's own runs differed in seconds too: their standard deviation was a median "
        f"{spread.median():.0%} of their mean, up to {spread.max():.0%}, so rows whose seconds "
        "are that close may swap on another sitting."
    )


def time_section(points: pd.DataFrame, device: str, away: int, picture: str = "") -> str:
    """The section's markdown; ``picture``: the markdown of ladder_time.png ("" if not drawn)."""
    if points.empty:
        return ""
    front = points[points["front"]].sort_values("train_seconds_mean", kind="stable")
    rows = [
        {
            "from s of training (per run)": seconds_cell(r.train_seconds_mean, ",.1f"),
            "combination": short(r),
            "epochs": str(r.rung),
            "sum error % (95% CI)": error_cell(r.test_sum_err_mean, r.test_sum_err_ci),
        }
        for r in front.itertuples(index=False)
    ]
    elsewhere = f" {plural(away, 'group')} timed on other devices {is_are(away)} left out."
    elsewhere = elsewhere if away else ""
    return "\n\n".join(
        part
        for part in [
            "## Equal time",
            "Test sum error against training seconds per run (mean over seeds) for every group "
            f'at every rung, all timed on {device}.{elsewhere} The Pareto front answers "with '
            'this much training time on this machine, train this combination at this budget": '
            "each row is the lowest error reachable from that many seconds on, until the next. "
            "In the figure, upright bars are the errors' 95% CIs, level bars ± one standard "
            "deviation of a group's runs' seconds, and the front's points are numbered as its "
            "rows." + arithmetic_note(points) + warm_up_note(points) + spread_note(points),
            markdown_table(pd.DataFrame(rows)),
            picture,
        ]
        if part
    )
