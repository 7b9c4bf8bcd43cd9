"""Report sections of a ladder of budgets (``compare --epochs 1,3,9``): the answer at every rung
against the top rung's, the ranks across budgets with Kendall's tau, learning curves over the
rungs' budgets, the equal-time Pareto front across rungs, tuned vs default per rung and the cost
of each rung; and, for any ``compare`` protocol, whether it is partial.

Each rung is its own full protocol (its own schedule over its epochs, its own tuning studies),
so its groups come from ``summarize`` at that rung's reference, exactly as the main comparison
of a one-rung report. Nothing here is drawn from intermediate checkpoints."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import files
from benchmark.comparison import epochs_text, rungs_of
from benchmark.report.aggregate import best_row, pareto_front, summarize, tuned_vs_default
from benchmark.report.equal_time import time_section
from benchmark.report.ladder_plots import LADDER_PLOTS, ladder_plots, named
from benchmark.report.load import Inputs
from benchmark.report.marks import Styles
from benchmark.report.output import error_cell, fmt, markdown_table, p_cell
from benchmark.report.reference import Reference, from_comparison
from benchmark.report.render import PER_BUDGET, sittings_text, stage_time
from benchmark.report.stats import indistinguishable, kendall, verdicts
from benchmark.wording import ONE_SEED_ABOVE, SAME_CONFIG, error_range

IDENTITY = ["arch", "fusion", "tuned"]  # a group across rungs: its config may differ per rung
BRIEF_S = 60.0  # a stage's time on a machine under this, beside another's: a sitting's check
SHOWN_MISSING = 8  # missing runs named in the partial-protocol warning; the rest are counted

__all__ = ["LADDER_PLOTS", "Rung", "build_rungs", "ladder_report"]


@dataclass
class Rung:
    """One rung of the ladder: its plan and stage times as ``comparison.json`` holds them and
    its groups (``summarize`` at its reference)."""

    epochs: int
    plan: dict[str, Any]
    stages: dict[str, Any]
    summary: pd.DataFrame
    ref: Reference  # what ``summary`` was summarised at

    @functools.cached_property
    def groups(self) -> pd.DataFrame:
        """The rung's main groups, one per arch x fusion x tuned (the one of most seeds where a
        study's best changed between runs), lowest error first, with their ``rank``: groups of
        the same error share the best rank of them (a tuned group whose study kept the default
        trains its default again, so has its errors), the next rank skipping theirs. Made once
        (the sections read it some 80 times), so read it, do not change it."""
        main = self.summary[self.summary["section"] == "main"]
        main = main[~main["yours"].astype(bool)] if "yours" in main else main  # yours: no rung
        main = main.sort_values("n", ascending=False, kind="stable").drop_duplicates(IDENTITY)
        main = main.sort_values(["test_sum_err_mean", *IDENTITY], kind="stable")
        rank = main["test_sum_err_mean"].rank(method="min", na_option="bottom").astype(int)
        return main.assign(rank=rank).reset_index(drop=True)

    def missing(self) -> list[str]:
        """The final runs of the plan that no complete main-comparison run stands for."""
        main = self.summary[self.summary["section"] == "main"]
        have = {
            (r.arch, r.fusion, bool(r.tuned), int(seed))
            for r in main.itertuples(index=False)
            for seed in str(r.seeds).split(",")
            if seed.strip().lstrip("-").isdigit()
        }
        return [
            f"{arch} x {fusion} {'tuned' if tuned else 'default'} seed {seed}"
            for arch, fusion in self.plan.get("pairs", [])
            for tuned in (False, True)
            for seed in self.plan.get("seeds", [])
            if (arch, fusion, tuned, seed) not in have
        ]

    def expected(self) -> int:
        return 2 * len(self.plan.get("pairs", [])) * len(self.plan.get("seeds", []))


def build_rungs(inputs: Inputs) -> list[Rung]:
    """Every readable rung of the results directory's protocol, its groups summarised."""
    rungs = []
    for epochs, entry in rungs_of(inputs.comparison):
        try:
            ref = from_comparison({"plan": entry["plan"]})
        except (KeyError, TypeError, AttributeError, ValueError):
            inputs.notes.append(f"comparison.json: the {epochs}-epoch rung is unreadable: ignored")
            continue
        summary = summarize(inputs.runs, inputs.bench, ref, inputs.history)
        stages = entry.get("stages") if isinstance(entry.get("stages"), dict) else {}
        plan = among(entry["plan"], inputs.runs) if inputs.chosen else entry["plan"]
        rungs.append(Rung(epochs, plan, stages, summary, ref))
    return rungs


def among(plan: dict[str, Any], runs: pd.DataFrame) -> dict[str, Any]:
    """``plan`` narrowed to the combinations (and their studies) that ``runs`` hold: runs chosen
    by ``--runs`` (``*concat*``, say) are a ladder of their own combinations, not a protocol
    missing the others."""
    held = set(zip(runs.get("arch", ()), runs.get("fusion", ()), strict=True))
    pairs = plan.get("pairs", [])
    kept = [i for i, pair in enumerate(pairs) if tuple(pair) in held]
    same = [k for k in ("pairs", "studies") if len(plan.get(k, [])) == len(pairs)]  # parallel
    return {**plan, **{key: [plan[key][i] for i in kept] for key in same}}


def rank_agreement(low: Rung, top: Rung) -> tuple[float, float, int]:
    """(tau, p, groups): the ranking of ``low`` against ``top``'s, over the groups both have.
    A tuned group whose study kept the default at both rungs trains its default again at
    both: counted once, as its default, since a copy would add a tie to both rankings and a
    group to the test's count."""
    both = low.groups.merge(top.groups, on=IDENTITY, suffixes=("_low", "_top"))
    both = both.dropna(subset=["test_sum_err_mean_low", "test_sum_err_mean_top"])
    twin = both["same_as_default_low"].astype(bool) & both["same_as_default_top"].astype(bool)
    pairs = both[["arch", "fusion"]].apply(tuple, axis=1)
    twin &= pairs.isin(set(pairs[~both["tuned"].astype(bool)]))  # its default is counted
    both = both[~twin]
    tau, p = kendall(list(both["test_sum_err_mean_low"]), list(both["test_sum_err_mean_top"]))
    return tau, p, len(both)


def interval_text(row: Any) -> str:
    mean, half = row.test_sum_err_mean, row.test_sum_err_ci
    if pd.isna(half):
        return f"{mean:.2f}% (one seed, no interval)"
    return f"{mean:.2f}% ({error_range(mean, half)})"


def budgets(rungs: list[Rung]) -> str:
    epochs = [str(r.epochs) for r in rungs]
    return (", ".join(epochs[:-1]) + " and " + epochs[-1]) if len(epochs) > 1 else epochs[0]


def partial_text(rungs: list[Rung], inputs: Inputs) -> str:
    """A warning naming each rung that misses final runs or tuning trials; empty if none."""
    studies = {s.name: s for s in inputs.studies.digests}
    named = {name for rung in rungs for name in rung.plan.get("studies", [])}
    ours = bool(named & set(studies))  # else the storage is another's (report --against)
    lines = []
    for rung in rungs:
        missing = rung.missing()
        if missing:
            shown = "; ".join(missing[:SHOWN_MISSING])
            more = len(missing) - SHOWN_MISSING
            lines.append(
                f"- {epochs_text(rung.epochs)}: {rung.expected() - len(missing)} of "
                f"{rung.expected()} final runs complete; missing: {shown}"
                + (f" and {more} more" if more > 0 else "")
            )
        wanted = rung.plan.get("trials")
        for study_name in rung.plan.get("studies", []):
            study = studies.get(study_name)
            done = 0 if study is None else study.finished
            if isinstance(wanted, int) and done < wanted and ours:
                lines.append(
                    f"- {epochs_text(rung.epochs)}: study {study_name} has {done} of {wanted} "
                    "finished trials"
                )
    if not lines:
        return ""
    lead = (
        "**These runs are a partial protocol.** The figures above and below come from the runs "
        "`--runs` chose; of their combinations' final runs, these are not among them (left "
        "out by the glob, or not complete):"
        if inputs.chosen
        else "**This is a partial protocol.** The figures above and below come from the runs "
        "that are complete; run `compare` again to finish it:"
    )
    return "\n".join(
        [
            lead,
            "",
            *lines,
        ]
    )


def winners_text(rungs: list[Rung]) -> list[str]:
    """Per lower rung: its winner, and where that group stands at the top rung."""
    top = rungs[-1]
    at_top = top.groups.set_index(IDENTITY)
    best_top = best_row(top.groups)  # as the answer's: one seed makes no group the best
    lines = []
    for rung in rungs[:-1]:
        if rung.groups.empty:
            lines.append(f"- At {epochs_text(rung.epochs)} no group is complete yet.")
            continue
        win = best_row(rung.groups)
        text = f"- At {epochs_text(rung.epochs)} **{named(win)}** is best: {interval_text(win)}."
        key = tuple(getattr(win, k) for k in IDENTITY)
        if best_top is None or key not in at_top.index:
            lines.append(text + f" It has no complete runs at {top.epochs} epochs.")
            continue
        there = at_top.loc[key]
        there = there.iloc[0] if isinstance(there, pd.DataFrame) else there
        lead = f" At {top.epochs} epochs it has {interval_text(there)}, rank {there['rank']}"
        twins = key[:2] == (best_top["arch"], best_top["fusion"]) and (
            bool(there["same_as_default"]) or bool(best_top["same_as_default"])
        )  # one configuration, a study having kept the default: no test of it against itself
        if key == tuple(best_top[k] for k in IDENTITY):
            verdict = ": still the winner" + ("." if there["rank"] == 1 else ONE_SEED_ABOVE)
        elif twins:
            verdict = (
                f"; there its study kept the default, so it is the best's configuration, "
                f"{named(best_top)}: still the winner."
            )
        elif pd.isna(there["p_vs_best"]):
            verdict = f"; too few seeds to test it against the best, {named(best_top)}."
        else:
            near = indistinguishable(there["p_vs_best"])
            verdict = (
                f"; {'not distinguishable from' if near else 'worse than'} the best there, "
                f"{named(best_top)} at {interval_text(best_top)} (Welch's p "
                f"{p_cell(there['p_vs_best'])})."
            )
        lines.append(text + lead + f" of {len(top.groups)}" + verdict)
    for rung in rungs[:-1]:
        tau, p, n = rank_agreement(rung, top)
        if n >= 2 and pd.notna(tau):
            lines.append(
                f"- Kendall's tau of the {rung.epochs}-epoch ranking against the "
                f"{top.epochs}-epoch one: {tau:.2f} (p {p_cell(p)}, {n} groups)."
            )
    return lines


def answer_section(rungs: list[Rung], partial: str, answered_at: int | None = None) -> str:
    """``answered_at``: the rung *The answer* was given at, when not the top one (a ladder
    whose top rung is still under way)."""
    top = rungs[-1]
    given = (
        f"the top rung's ({top.epochs} epochs)"
        if answered_at in (None, top.epochs)
        else f"the {answered_at}-epoch rung's, until the top rung ({top.epochs} epochs) is complete"
    )
    parts = [  # the warning first: the sentence that ends in ':' leads into its list
        "## The answer across budgets",
        *([partial] if partial else []),
        f"`compare` ran the protocol at {len(rungs)} budgets (rungs): {budgets(rungs)} epochs, "
        f"each its own full schedule with its own tuning studies. *The answer* above is {given}; "
        "whether the lower rungs' winners still win at the top rung "
        "(intervals: 95% CI over seeds; Welch's two-sided t-test against the top rung's best):",
        "\n".join(winners_text(rungs)),
    ]
    return "\n\n".join(parts)


def image(plots: dict[str, bytes], key: str) -> str:
    return f"![{LADDER_PLOTS[key]}](plots/{key}.png)" if key in plots else ""


def ranks_section(rungs: list[Rung], plots: dict[str, bytes]) -> str:
    top = rungs[-1]
    order = [tuple(r) for r in top.groups[IDENTITY].itertuples(index=False)]
    for rung in reversed(rungs):
        order += [
            k for k in map(tuple, rung.groups[IDENTITY].itertuples(index=False)) if k not in order
        ]
    rows = []
    sizes = {tuple(k): p for *k, p in top.groups[[*IDENTITY, "params"]].itertuples(index=False)}
    for arch, fusion, tuned in order:
        row = {"combination": f"{arch} x {fusion}", "tuned": "yes" if tuned else "no"}
        for rung in rungs:
            g = rung.groups
            hit = g[(g["arch"] == arch) & (g["fusion"] == fusion) & (g["tuned"] == tuned)]
            cell = "-"
            if not hit.empty:
                r = hit.iloc[0]
                same = f", {SAME_CONFIG}" if r.same_as_default else ""  # the study kept it
                if tuned and pd.notna(r.params) and r.params != sizes.get((arch, fusion, tuned)):
                    same += f", {r.params:,.0f} params"  # another rung's study, another model
                cell = f"{error_cell(r.test_sum_err_mean, r.test_sum_err_ci)} (#{r['rank']}{same})"
            row[f"{rung.epochs} ep: error % (rank)"] = cell
        rows.append(row)
    taus = []
    for rung in rungs[:-1]:
        tau, p, n = rank_agreement(rung, top)
        taus.append(
            {
                "rung": f"{epochs_text(rung.epochs)}",
                f"vs {top.epochs} epochs: groups": str(n),
                "Kendall's tau": fmt(tau, ".3f"),
                "p": "-" if pd.isna(p) else p_cell(p),
            }
        )
    return "\n\n".join(
        part
        for part in [
            "## Ranks across budgets",
            "Test sum error % (mean over seeds ± the half-width of its 95% CI) and rank at each "
            f"rung, in the order of the top rung ({top.epochs} epochs). Kendall's tau-b compares "
            "each rung's ranking with the top rung's over the groups both have, a tuned group "
            "that repeats its default at both counted once (1: the same order, 0: unrelated, "
            "-1: reversed); p: its two-sided test of no association. A tuned row is each rung's "
            "own study's best configuration: where its model's size is not the top rung's, its "
            "cell gives its parameters.",
            markdown_table(pd.DataFrame(rows)),
            markdown_table(pd.DataFrame(taus)),
            image(plots, "ladder_ranks"),
        ]
        if part
    )


def curves_section(plots: dict[str, bytes]) -> str:
    if "ladder_curves" not in plots:
        return ""
    return "\n\n".join(
        [
            "## Learning curves over budgets",
            "Test sum error of every group against its rung's epochs: each point is a separate "
            "full training schedule of that length (not a checkpoint of a longer one), mean over "
            "seeds with its 95% CI.",
            image(plots, "ladder_curves"),
        ]
    )


def time_points(rungs: list[Rung]) -> tuple[pd.DataFrame, str, int]:
    """(every rung's groups with their rung's epochs and the equal-time Pareto flag, the one
    device their timings come from, groups left out as timed elsewhere). Timings are never
    compared across kinds of device: the device that timed the most groups is the one used."""
    points = pd.concat(
        [r.groups.assign(rung=r.epochs, images=r.epochs * r.ref.epoch_images()) for r in rungs],
        ignore_index=True,
    )
    points = points.dropna(subset=["train_seconds_mean", "test_sum_err_mean"])
    if points.empty:
        return points.assign(front=False), "", 0
    counts = points["timing_device"].astype(str).value_counts().sort_index()
    device = str(counts.idxmax())
    kept = points[points["timing_device"].astype(str) == device].reset_index(drop=True)
    kept["front"] = pareto_front(kept["train_seconds_mean"], -kept["test_sum_err_mean"])
    return kept, device, len(points) - len(kept)


def tuning_section(rungs: list[Rung], runs: pd.DataFrame) -> str:
    rows, means = [], []
    for rung in rungs:
        pairs = tuned_vs_default(rung.summary, runs)
        pairs = pairs[~pairs["yours"].astype(bool)] if "yours" in pairs else pairs
        if pairs.empty:
            continue
        said = verdicts(pairs["p"], pairs["err_delta"], pairs["same_as_default_tuned"])
        counted = {k: str(v) for k, v in said.value_counts().items()}
        means.append((rung.epochs, mean := float(pairs["err_delta"].mean())))
        rows.append(
            {
                "rung": f"{epochs_text(rung.epochs)}",
                "combinations": str(len(pairs)),
                "tuning lowered the error": counted.get("lower", "0"),
                "raised it": counted.get("higher", "0"),
                "no difference detected": counted.get("none", "0")  # one seed: no test
                + (f" ({counted['untested']} untested)" if "untested" in counted else ""),
                "the study kept the default": counted.get("kept", "0"),
                "mean tuned - default (points)": fmt(mean, "+.2f"),
                "lowest tuned - default (points)": fmt(float(pairs["err_delta"].min()), "+.2f"),
            }
        )
    if not rows:
        return ""
    trend = ", ".join(f"{m:+.2f} at {epochs_text(e)}" for e, m in means)
    return "\n\n".join(
        [
            "## Tuned vs default per budget",
            "Does tuning matter less at longer budgets? Per rung, each combination's tuned group "
            "against its default one (Welch's two-sided t-test at 5%; points of test sum "
            f"error, negative: tuning lowered it). The mean effect of tuning: {trend}.",
            markdown_table(pd.DataFrame(rows)),
        ]
    )


def cost_section(rungs: list[Rung], comparison: dict[str, Any] | None) -> str:
    rows = [
        {
            "rung": f"{epochs_text(rung.epochs)}",
            "stage": stage,
            "machine": where,
            "wall time": stage_time(seconds),  # as the cost of the protocol
        }  # fmt: skip
        for rung in rungs
        for stage, per in sorted(rung.stages.items())
        if isinstance(per, dict)
        for where, seconds in sorted(per.items())
        if files.is_number(seconds)
    ]
    if not rows:
        return ""
    # a machine's seconds beside another's minutes at one stage: read as work it did
    times = [
        [t for t in per.values() if files.is_number(t)]
        for rung in rungs
        for per in rung.stages.values()
        if isinstance(per, dict)
    ]
    said = (
        " A machine's seconds beside another's minutes at one stage are sittings that trained "
        "little or nothing there: one that finds a stage done still reads and exports it."
        if any(len(t) > 1 and min(t) < BRIEF_S <= max(t) for t in times)
        else ""
    )
    return "\n\n".join(
        [
            PER_BUDGET,
            "Wall time of each stage of each rung, per machine, summed over sittings and over "
            "the worker processes of a machine (time spent waiting for other workers left out; "
            "a rung reused from an earlier `compare` keeps the time it cost then)." + said,
            markdown_table(pd.DataFrame(rows)),
            *filter(None, [sittings_text(comparison)]),
        ]
    )


def ladder_report(
    inputs: Inputs,
    rungs: list[Rung] | None = None,
    answered_at: int | None = None,
    out: Path | None = None,
    look: Styles | None = None,
) -> tuple[str, dict[str, bytes]]:
    """(markdown to follow *The answer*, {plot name: PNG}) for the results directory's
    ``compare`` protocol: with a ladder of two or more rungs, its sections and plots; with one
    rung, only the warning of a partial protocol (nothing when it is complete). ``rungs``: those
    ``build_rungs`` gave, when the caller has them; ``answered_at``: the rung *The answer* was
    given at; ``out``: where an earlier report may have drawn the plots already; ``look``: the
    report's styles."""
    rungs = build_rungs(inputs) if rungs is None else rungs
    if not rungs:
        return "", {}
    partial = partial_text(rungs, inputs)
    if len(rungs) == 1:
        return ("## Partial protocol\n\n" + partial if partial else ""), {}
    points, device, away = time_points(rungs)
    plots = ladder_plots([(r.epochs, r.groups) for r in rungs], points, device, out, look)
    sections = [
        answer_section(rungs, partial, answered_at),
        ranks_section(rungs, plots),
        curves_section(plots),
        time_section(points, device, away, image(plots, "ladder_time")),
        tuning_section(rungs, inputs.runs),
        cost_section(rungs, inputs.comparison),
    ]
    return "\n\n".join(s for s in sections if s), plots
