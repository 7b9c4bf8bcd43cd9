"""``report``: aggregate finished runs over seeds into tables and plots.

Three stages, each of pure functions the tests call directly: *load* (run directories and bench
CSVs into DataFrames, broken inputs listed rather than fatal), *aggregate* (one row per arch x
fusion x config hash x tuned, mean / std / n over seeds) and *render* (markdown sections, CSV,
PNG plots; the held-out section is ``generalisation``). The same inputs give byte-identical
outputs: everything is sorted, nothing records the time, and PNGs carry no software metadata.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark import files
from benchmark.report.aggregate import (
    class_accuracy,
    pareto_front,
    summarize,
    summary_columns,
    tuned_vs_default,
    val_curves,
)
from benchmark.report.load import BENCH_COLUMNS, Inputs, load_bench, load_inputs
from benchmark.report.plots import PLOTS, render_plots
from benchmark.report.reference import Reference, from_comparison, from_runs
from benchmark.report.render import (
    bench_section,
    render_markdown,
    rich_table,
    tuned_vs_default_section,
)
from benchmark.report.studies import STORAGE, studies_section

__all__ = [
    "BENCH_COLUMNS",
    "Inputs",
    "bench_section",
    "class_accuracy",
    "load_bench",
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


def write_report(inputs: Inputs, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Write report.md, summary.csv, plots/*.png and studies/ (trial CSVs and Optuna's plots)
    under ``out``; returns the summary and the paths written."""
    out = Path(out)
    ref = find_reference(inputs)
    summary = summarize(inputs.runs, inputs.bench, ref, inputs.history)
    plots = render_plots(inputs, summary)
    label = STORAGE if inputs.results_dir is None else f"{inputs.results_dir}/{STORAGE}"
    study_text, study_files = studies_section(inputs.studies, label)
    written = [out / "report.md", out / "summary.csv"]
    files.write_text(written[0], render_markdown(inputs, summary, plots, ref, study_text))
    files.write_text(
        written[1], summary.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    )
    for relative, blob in sorted(study_files.items()):
        files.write_bytes(out / relative, blob)
        written.append(out / relative)
    for name in PLOTS:
        path = out / "plots" / f"{name}.png"
        if name in plots:
            files.write_bytes(path, plots[name])
            written.append(path)
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier report would mislead
    return summary, written
