"""Render: the markdown sections of report.md and the terminal table."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from benchmark import metrics
from benchmark.report.aggregate import TARGET, machines, tuned_vs_default
from benchmark.report.answer import opening_section, scope
from benchmark.report.generalisation import generalisation_section, percent_std
from benchmark.report.load import Inputs, damaged_count, incomplete_count, repeated
from benchmark.report.output import (
    MISSING,
    error_cell,
    fmt,
    markdown_table,
    p_cell,
    seconds_cell,
)
from benchmark.report.plots import CAPTIONS, PLOTS
from benchmark.report.precision import precision_section
from benchmark.report.reference import Reference
from benchmark.report.stats import verdicts
from benchmark.report.throughput import bench_section
from benchmark.wording import BEST, SAME_CONFIG, UNTESTED, plural


def combination(r: Any) -> str:
    """``arch x fusion``, the sizes it was built at where it was (a timm ViT's), and `` [yours]``
    for the user's runs beside a reference, in every table that lists them."""
    sizes = getattr(r, "sizes", "")
    sized = f" ({sizes})" if isinstance(sizes, str) and sizes else ""
    return f"{r.arch} x {r.fusion}{sized}" + (" [yours]" if getattr(r, "yours", False) else "")


def metric_cells(r: Any) -> dict[str, str]:
    """Every metric of ``benchmark.metrics`` but the sum accuracy (the table's error column):
    percent, mean ± std over seeds."""
    return {
        f"{m.label} %": percent_std(*(getattr(r, f"test_{m.name}_{s}") for s in ("mean", "std")))
        for m in metrics.METRICS
        if m.name != "sum_acc"
    }


def target_cell(r: Any) -> str:
    if r.target_reached == 0:
        return f"not reached (0/{r.n})"
    if pd.isna(r.target_seconds):  # reached, but timed on another kind of device
        return MISSING
    return f"{r.target_seconds:.1f} ({r.target_reached}/{r.n})"


def verdict(r: Any) -> str:
    """The group against the best (``wording``'s standings; one seed: untested)."""
    return f"{UNTESTED} (1 seed)" if r.standing == UNTESTED and r.n < 2 else r.standing


def tuned_cell(r: Any) -> str:
    return ("yes" + (f" ({SAME_CONFIG})" if r.same_as_default else "")) if r.tuned else "no"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The main comparison as strings, shared by report.md and the terminal: test sum error with
    its 95% interval and the Welch test against the best, every other metric, the costs."""
    rows = []
    main = summary[summary["section"] == "main"]
    for rank, r in enumerate(main.itertuples(index=False), start=1):
        rows.append(
            {
                "#": str(rank),
                "combination": combination(r),
                "tuned": tuned_cell(r),
                "n": str(r.n),
                "sum error % (95% CI)": error_cell(r.test_sum_err_mean, r.test_sum_err_ci),
                "vs best": verdict(r),
                "p": "" if r.standing == BEST else p_cell(r.p_vs_best),
                **metric_cells(r),
                "params": fmt(r.params, ",.0f"),
                "MACs/img": fmt(r.macs_per_image, ",.0f"),
                "train s": seconds_cell(r.train_seconds_mean),
                "train img/s": fmt(r.train_images_per_s_mean, ",.0f"),
                f"s to {100 * TARGET:g}% val": target_cell(r),
                "Pareto": "*" if r.pareto else "",
            }
        )
    table = pd.DataFrame(rows)
    timed = main["train_seconds_mean"].notna()
    if main.loc[timed, "timing_device"].nunique() > 1:  # several machines' timings: whose is whose
        table["timed on"] = list(main["timing_device"].astype(str).where(timed, ""))
    return table


def distinct(values: pd.Series) -> str:
    """Sorted distinct values joined, for the report header."""
    items = sorted({str(v) for v in values.dropna()})
    return ", ".join(items) if items else MISSING


def header_section(
    inputs: Inputs, summary: pd.DataFrame, ref: Reference, against: str | None = None
) -> str:
    runs = inputs.runs
    lines = [
        "# digitsum-bench report",
        "",
        f"- Runs: {plural(len(runs), 'complete run')} in {plural(len(summary), 'group')}; "
        f"{incomplete_count(inputs.incomplete)}"
        + (f"; {repeated(inputs.repeats)} (below)" if len(inputs.repeats) else ""),
    ]
    if against:
        yours = int(runs["yours"].sum()) if "yours" in runs else 0
        lines.append(
            f"- Yours beside a reference: {plural(yours, 'run')} of yours (marked [yours]) "
            f"and {plural(len(runs) - yours, 'run')} of the reference in `{against}`"
        )
    if not runs.empty:
        version_columns = sorted(c for c in runs.columns if c.startswith("versions."))
        versions = "; ".join(
            f"{c.removeprefix('versions.')} {distinct(runs[c])}" for c in version_columns
        )
        seeds = sorted({int(s) for s in runs["seed"]})
        epochs = sorted({int(e) for e in runs["epochs"].dropna()})
        lines += [
            f"- Main comparison: {scope(ref, summary)} (from {ref.source})",
            f"- Hardware of the runs: {distinct(machines(runs))}",
            f"- Versions of the runs: {versions or MISSING}",
            f"- Epochs: {', '.join(map(str, epochs)) or MISSING}",
            f"- Seeds: {', '.join(map(str, seeds))}",
            f"- Commits of the runs: {distinct(runs.get('git_commit', pd.Series(dtype=object)))}",
        ]
    lines += [
        "",
        "Accuracies are exhaustive over the test set (every image x all 10 addends, 100,000 "
        "pairs). A group is one arch x fusion x config hash (hyperparameters, not seed or "
        "hardware) x precision (fp32 or bf16 arithmetic); tuned and default runs are never "
        "mixed; n = seeds. An encoder is the network that reads the image, a fusion how its "
        "features meet the addend; `python -m benchmark list` describes each.",
    ]
    return "\n".join(lines)


def configurations(tuned: pd.Series) -> str:
    """What the main comparison's groups were trained with: no tuning study named where no
    group is tuned (a user's default runs read of a study they never ran)."""
    found = set(tuned.astype(bool))
    default = "the default configuration"
    study = "the configuration its own tuning study found at that budget"
    return default if found == {False} else study if found == {True} else f"{default} or {study}"


def main_section(summary: pd.DataFrame, ref: Reference) -> str:
    if summary.empty:
        return "## Main comparison\n\nNo complete runs."
    table = display_table(summary)
    if table.empty:
        return ""
    main = summary[summary["section"] == "main"]
    timing = distinct(main.loc[main["train_seconds_mean"].notna(), "timing_device"])
    cap = f", under the protocol's cap of {ref.max_params:,} parameters" if ref.max_params else ""
    yours = (
        " Rows marked [yours] are your runs, tested against the reference's best; their "
        "timings are shown only where measured on a kind of device the reference's were."
        if main["yours"].any()
        else ""
    )
    return "\n\n".join(
        [
            "## Main comparison (lowest test sum error first)",
            f"Every group here was trained at one budget ({ref.budget_text()}), in "
            f"{distinct(main['precision'])}{cap}, with {configurations(main['tuned'])}; "
            "nothing else differs." + yours,
            markdown_table(table),
            "Sum error % is the mean over seeds with the half-width of its 95% confidence "
            "interval (Student's t over seeds; the test images are the same for every group). "
            "*vs best*: Welch's two-sided t-test of each group's errors against the best "
            "group's (the lowest mean among groups with at least 2 seeds); ≈ means p >= 0.05 "
            "(not distinguishable at 5%, no correction for the number of groups); untested: one "
            "seed, no test. "
            + (
                f"*{SAME_CONFIG}*: the study's best configuration is the default. "
                if main["same_as_default"].any()
                else ""
            )
            + f"Other metrics, mean ± std over seeds: {metric_words()}. Timings ({timing}) "
            "are from the runs of "
            "one machine per group, never averaged across devices. MACs per image are counted "
            "with torch's FlopCounterMode. "
            f"*s to {100 * TARGET:g}% val*: training seconds until the first epoch end whose "
            "validation sum accuracy reached the target (mean over the seeds that did; how "
            "many did). Pareto: * marks the groups that no other group beats on error with "
            "fewer or equal parameters.",
        ]
    )


def metric_words() -> str:
    """What each metric but the sum's counts (*joint acc*: digit and sum both right ...)."""
    others = [m for m in metrics.METRICS if m.name != "sum_acc"]
    return "; ".join(f"*{m.label}*: {m.description}" for m in others)


def tuned_vs_default_section(summary: pd.DataFrame, runs: pd.DataFrame | None = None) -> str:
    if summary.empty:
        return ""
    pairs = tuned_vs_default(summary, runs)
    if pairs.empty:
        return ""
    same = pairs["same_as_default_tuned"].astype(bool)
    verdict = verdicts(pairs["p"], pairs["err_delta"], same).map(
        {
            "kept": "the study kept the default (its best trial)",
            "untested": f"{UNTESTED} (1 seed)",
            "none": "no difference detected",
            "lower": "better",
            "higher": "worse",
        }
    )
    table = pd.DataFrame(
        {
            "combination": pairs["arch"]
            + " x "
            + pairs["fusion"]
            + ("" if pairs["precision"].nunique() < 2 else " [" + pairs["precision"] + "]")
            + pairs["yours"].map({True: " [yours]", False: ""}),
            "default error %": [
                error_cell(m, h)
                for m, h in zip(
                    pairs["test_sum_err_mean_default"],
                    pairs["test_sum_err_ci_default"],
                    strict=True,
                )
            ],
            "default params": [fmt(v, ",.0f") for v in pairs["params_default"]],
            "tuned error %": [
                error_cell(m, h)
                for m, h in zip(
                    pairs["test_sum_err_mean_tuned"], pairs["test_sum_err_ci_tuned"], strict=True
                )
            ],
            "tuned params": [fmt(v, ",.0f") for v in pairs["params_tuned"]],
            "n (default/tuned)": [
                f"{a}/{b}" for a, b in zip(pairs["n_default"], pairs["n_tuned"], strict=True)
            ],
            "tuned - default (points)": [
                "" if s else fmt(d, "+.2f") for s, d in zip(same, pairs["err_delta"], strict=True)
            ],
            "Welch p": ["" if s else p_cell(p) for s, p in zip(same, pairs["p"], strict=True)],
            "tuning": verdict,
        }
    )
    return "\n\n".join(
        [
            "## Tuned vs default (main comparison)",
            "Both configurations of each combination at the main comparison's budget and the same "
            "seeds; the tuned one is the best trial of its study (same budget, same number of "
            "finished trials, one parameter cap for all). *tuning*: better or worse where "
            "Welch's two-sided t-test gives p < 0.05. *tuned - default*: of the unrounded means, "
            "so it may differ by 0.01 from the difference of the two shown.",
            markdown_table(table),
        ]
    )


def other_section(summary: pd.DataFrame) -> str:
    """Every group outside the main comparison (held-out runs aside), with what differs."""
    rows = summary[summary["section"] == "other"]
    if rows.empty:
        return ""
    table = pd.DataFrame(
        [
            {
                "combination": combination(r),
                "differs from the main comparison by": r.differs,
                "n": str(r.n),
                "sum acc %": percent_std(r.test_sum_acc_mean, r.test_sum_acc_std),
                **metric_cells(r),
                "params": fmt(r.params, ",.0f"),
                "train s": seconds_cell(r.train_seconds_mean),
                "timing device": r.timing_device,
            }
            for r in rows.itertuples(index=False)
        ]
    )
    return "\n\n".join(
        [
            "## Other budgets, ablations and hand-set configurations",
            "Not comparable with the main comparison or with each other unless their "
            "differences match; mean ± std (ddof=1) over seeds, best test sum accuracy first.",
            markdown_table(table),
        ]
    )


def stage_time(seconds: float) -> str:
    """A stage's wall time in a table: tenths of a second or of a minute (a tiny stage's "0.0 s"
    read as no time at all: "<0.1 s")."""
    if seconds < 0.05:
        return "<0.1 s"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def sittings_text(comparison: dict[str, Any] | None) -> str:
    """The wall time of ``compare --jobs`` sittings per machine and worker count (stage times
    sum the workers' time, so a machine's wall time is only here); empty when none ran."""
    from benchmark.comparison import sittings

    totals: dict[tuple[str, int], list[float]] = {}
    for sitting in sittings(comparison):
        totals.setdefault((sitting["where"], sitting["processes"]), []).append(sitting["seconds"])
    if not totals:
        return ""
    parts = [
        f"{where}, {n} worker processes: {stage_time(sum(seconds))} in {len(seconds)} "
        f"sitting{'s' if len(seconds) > 1 else ''}"
        for (where, n), seconds in sorted(totals.items())
    ]
    return (
        "Wall time of the `compare --jobs` sittings (the machine's own): " + "; ".join(parts) + "."
    )


PER_BUDGET = "## Cost per budget"  # a ladder's section (``ladder.cost_section``): every rung's


def cost_section(
    comparison: dict[str, Any] | None, per_budget: bool = False, against: str | None = None
) -> str:
    """Wall time of each stage of the ``compare`` protocol, per machine (its workers' summed);
    ``per_budget``: the report has *Cost per budget*, of which this is the top rung's;
    ``against``: the reference directory whose protocol it is (``report --against``)."""
    if not comparison or not isinstance(comparison.get("stages"), dict):
        return ""
    plan = comparison["plan"]
    rows = [
        {"stage": stage, "machine": where, "wall time": stage_time(seconds)}
        for stage, per in sorted(comparison["stages"].items())
        if isinstance(per, dict)
        for where, seconds in sorted(per.items())
        if isinstance(seconds, int | float)
    ]
    if not rows:
        return ""
    lead = "Every rung's cost is under *Cost per budget* above; the top rung's "
    return "\n\n".join(
        [
            "## Cost of the protocol"
            + (" at the top rung" if per_budget else "")
            + (f" (the reference's, in `{against}`)" if against else ""),
            f"{lead if per_budget else ''}`compare` protocol {plan.get('key')}: "
            f"{plural(len(plan.get('pairs', [])), 'combination')}, "
            f"{plan.get('trials')} finished tuning trials each under a cap of "
            f"{plan.get('max_params', 0):,} parameters, seeds "
            f"{', '.join(map(str, plan.get('seeds', [])))}. Wall time per stage and machine, "
            "summed over sittings and over the worker processes of a machine (time spent "
            "waiting for other workers left out):",
            markdown_table(pd.DataFrame(rows)),
            *filter(None, [sittings_text(comparison)]),
        ]
    )


def notes_section(notes: list[str]) -> str:
    """The files read in part or left out (a bench CSV, a history.csv, a reference's runs):
    they were listed under *Bench measurements*, whatever they were."""
    if not notes:
        return ""
    return "## Notes on the inputs\n\n" + "\n".join(f"- {note}" for note in notes)


def incomplete_section(incomplete: pd.DataFrame) -> str:
    if incomplete.empty:
        return ""
    return "## Incomplete runs (not in the tables)\n\n" + markdown_table(incomplete)


def repeats_section(repeats: pd.DataFrame) -> str:
    if repeats.empty:
        return ""
    return (
        "## Repeated seeds (not in the tables)\n\nA group counts each seed once, its first run: "
        "a seed run again computes the same figures on the same machine, so counting it twice "
        "would narrow the group's interval with no new evidence.\n\n" + markdown_table(repeats)
    )


def plots_section(plots: dict[str, bytes]) -> str:
    if not plots:
        return ""
    images = [
        f"![{PLOTS[name]}](plots/{name}.png)\n\n{CAPTIONS[name]}" for name in PLOTS if name in plots
    ]
    return "## Plots\n\n" + "\n\n".join(images)


def render_markdown(
    inputs: Inputs,
    summary: pd.DataFrame,
    plots: dict[str, bytes],
    ref: Reference,
    studies: str = "",
    against: str | None = None,
    ladder: str = "",
) -> str:
    """``ladder``: the sections of a ladder of budgets (``benchmark.report.ladder``), or the
    warning of a partial protocol, placed right after *The answer*."""
    sections = [
        header_section(inputs, summary, ref, against),
        opening_section(summary, ref, inputs.runs, damaged_count(inputs.incomplete)),
        ladder,
        main_section(summary, ref),
        tuned_vs_default_section(summary, inputs.runs),
        precision_section(summary, inputs.runs),
        other_section(summary),
        generalisation_section(inputs.runs),
        bench_section(inputs.bench),
        cost_section(inputs.comparison, f"\n{PER_BUDGET}\n" in f"\n{ladder}", against),
        studies,
        plots_section(plots),
        notes_section(inputs.notes),
        incomplete_section(inputs.incomplete),
        repeats_section(inputs.repeats),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


# What a terminal too narrow for the whole table shows: the answer's columns (report.md has all),
# short enough for 80 columns: squeezed, "tiny_resnet x embed_add" and "yes (= default)" broke
NARROW_COLUMNS = ("#", "combination", "tuned", "sum error % (95% CI)", "vs best", "params")
NARROW_NAMES = {"sum error % (95% CI)": "sum error %"}  # the title says mean ± 95% CI


def rich_table(summary: pd.DataFrame, narrow: bool = False) -> Table:
    """The main comparison for the terminal; ``narrow``: only ``NARROW_COLUMNS``, shortened."""
    table = Table(title="main comparison: test sum error %, mean ± 95% CI over seeds")
    display = display_table(summary)
    if narrow:
        display = display[list(NARROW_COLUMNS)].rename(columns=NARROW_NAMES)
        display["tuned"] = display["tuned"].replace({"yes (= default)": "= default"})
        display["vs best"] = display["vs best"].str.replace(" (1 seed)", "", regex=False)
    for column in display.columns:
        table.add_column(column, justify="left" if column == "combination" else "right")
    for row in display.itertuples(index=False):
        table.add_row(*(escape(cell) for cell in row))
    return table
