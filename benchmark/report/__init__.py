"""``report``: aggregate finished runs over seeds into tables and plots.

Three stages, each of pure functions the tests call directly: *load* (run directories and bench
CSVs into DataFrames, broken inputs listed rather than fatal), *aggregate* (one row per arch x
fusion x config hash x tuned, mean / std / n over seeds) and *render* (markdown sections, CSV,
PNG plots; the held-out section is ``generalisation``). The same inputs give byte-identical
outputs: everything is sorted, nothing records the time, and PNGs carry no software metadata.

The report only reads what runs, ``bench``, the studies and ``compare`` wrote: it imports no
torch and builds no model (a run's MACs per image are in its metrics.json).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmark import files
from benchmark.places import OPTUNA_DB
from benchmark.report.aggregate import (
    class_accuracy,
    pareto_front,
    summarize,
    summary_columns,
    tuned_vs_default,
    val_curves,
)
from benchmark.report.answer import answer_lead
from benchmark.report.html import render_html
from benchmark.report.ladder import LADDER_PLOTS, Rung, build_rungs, ladder_report
from benchmark.report.load import Inputs, load_inputs
from benchmark.report.marks import Styles
from benchmark.report.plots import PLOTS, curve_groups, render_plots
from benchmark.report.reference import Reference, beside, from_comparison, from_runs
from benchmark.report.render import (
    bench_section,
    render_markdown,
    rich_table,
    tuned_vs_default_section,
)
from benchmark.report.studies import DIGEST, studies_section
from benchmark.wording import plural

__all__ = [
    "REPORT_FILES",
    "Inputs",
    "answer_lead",
    "beside",
    "bench_section",
    "class_accuracy",
    "load_inputs",
    "pareto_front",
    "render_plots",
    "rich_table",
    "summarize",
    "summary_columns",
    "tuned_vs_default",
    "tuned_vs_default_section",
    "val_curves",
    "write_report",
]


def find_reference(inputs: Inputs) -> Reference:
    """The reference of ``compare``'s comparison.json, or the budget most default runs used; a
    comparison.json of the wrong shape is a note, not a failure."""
    if inputs.comparison is not None:
        try:
            return from_comparison(inputs.comparison)
        except (KeyError, TypeError, AttributeError, ValueError):
            inputs.notes.append("comparison.json has an unexpected shape: ignored")
    return from_runs(inputs.runs)


def answering(inputs: Inputs, rungs: list[Rung]) -> tuple[Reference, pd.DataFrame]:
    """The reference the answer is given at, and the summary at it. With a ladder whose top
    rung still misses final runs, that is the highest rung whose final runs are all complete
    (said before the answer), so a ladder under way keeps the answer it had; otherwise the
    reference of ``find_reference``."""
    missing = [len(rung.missing()) for rung in rungs]  # each rung's absent final runs, once
    done = [rung for rung, absent in zip(rungs, missing, strict=True) if not absent]
    if len(rungs) >= 2 and missing[-1] and done:
        top, rung = rungs[-1], done[-1]
        complete = top.expected() - missing[-1]
        ref = replace(
            from_comparison({"plan": rung.plan}),
            note=(
                f"The ladder's top rung ({plural(top.epochs, 'epoch')}) is not complete yet "
                f"({complete} of its {top.expected()} final runs complete), so "
                f"this is the answer at {plural(rung.epochs, 'epoch')}, its highest complete rung."
            ),
        )
        return ref, rung.summary
    ref = find_reference(inputs)
    for rung in rungs:  # a protocol's reference is its top rung's, summarised already
        if rung.ref == ref:
            return ref, rung.summary
    return ref, summarize(inputs.runs, inputs.bench, ref, inputs.history)


REPORT_FILES = ("report.md", "report.html", "summary.csv")  # beside plots/ and studies/


def write_report(
    inputs: Inputs, out: Path, against: str | None = None
) -> tuple[pd.DataFrame, list[Path]]:
    """Write report.md, report.html, summary.csv, plots/*.png and studies/ (trial CSVs and
    Optuna's plots) under ``out``; returns the summary and the paths written. ``against`` names
    the reference directory when ``inputs`` come from ``beside``."""
    out = Path(out)
    rungs = build_rungs(inputs)
    ref, summary = answering(inputs, rungs)
    look = Styles.of(curve_groups(summary), *(rung.groups for rung in rungs))  # for every plot
    plots = render_plots(inputs, summary, ref, out, look)
    label = OPTUNA_DB if inputs.results_dir is None else f"{inputs.results_dir}/{OPTUNA_DB}"
    study_text = studies_section(inputs.studies.digests, label, yours=against is not None)
    ladder_text, ladder_plots = ladder_report(inputs, rungs, ref.base.get("epochs"), out, look)
    written = [out / name for name in REPORT_FILES]
    markdown = render_markdown(inputs, summary, plots, ref, study_text, against, ladder_text)
    files.write_text(written[0], markdown)
    figures = {**plots, **ladder_plots}
    images = {f"plots/{name}.png": blob for name, blob in figures.items()}
    files.write_text(written[1], render_html(markdown, images))
    files.write_text(
        written[2], summary.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    )
    for relative, blob in sorted(inputs.studies.files.items()):
        files.write_bytes(out / relative, blob)
        written.append(out / relative)
    for relative in inputs.studies.unwritten_plots():
        (out / relative).unlink(missing_ok=True)
    if inputs.studies.stamp is not None:  # what the next report reads instead of the storage
        files.write_text(out / DIGEST, inputs.studies.digest_json())
        written.append(out / DIGEST)
    for name in (*PLOTS, *LADDER_PLOTS):
        path = out / "plots" / f"{name}.png"
        if name in figures:
            files.write_bytes(path, figures[name])
            written.append(path)
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier report would mislead
    return summary, written
