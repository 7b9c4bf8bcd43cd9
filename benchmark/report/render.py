"""Render: the markdown sections of report.md and the terminal table."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from benchmark import metrics
from benchmark.report.aggregate import tuned_vs_default
from benchmark.report.generalisation import generalisation_section
from benchmark.report.load import Inputs
from benchmark.report.output import MISSING, fmt, markdown_table
from benchmark.report.plots import PLOTS

# The bench section's table: header -> (bench column, format).
BENCH_TABLE = {
    "device": ("device", ""),
    "precision": ("precision", ""),
    "batch": ("batch_size", ".0f"),
    "channels last": ("channels_last", ""),
    "compile": ("compile", ""),
    "params": ("params", ",.0f"),
    "MACs/img": ("macs_per_image", ",.0f"),
    "infer img/s": ("infer_images_per_s", ",.0f"),
    "latency b1 ms": ("latency_ms_b1", ".3f"),
    "train img/s": ("train_images_per_s", ",.0f"),
    "peak mem MB": ("peak_mem_mb", ",.1f"),
    "torch": ("torch", ""),
    "commit": ("commit", ""),
    "error": ("error", ""),
}


def mean_std(mean: Any, std: Any) -> str:
    return fmt(mean, ".4f") + ("" if pd.isna(std) else f" ± {std:.4f}")


def mean_std_cells(frame: pd.DataFrame, name: str, suffix: str = "") -> list[str]:
    means, stds = frame[f"{name}_mean{suffix}"], frame[f"{name}_std{suffix}"]
    return [mean_std(m, s) for m, s in zip(means, stds, strict=True)]


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The main table as strings, shared by report.md and the terminal: test sum accuracy,
    then every other metric of ``benchmark.metrics``."""
    rows = []
    for rank, r in enumerate(summary.itertuples(index=False), start=1):
        rows.append(
            {
                "#": str(rank),
                "combination": f"{r.arch} x {r.fusion}",
                "tuned": "yes" if r.tuned else "no",
                "config": r.config_hash,
                "n": str(r.n),
                **{
                    ("test " if m.name == "sum_acc" else "") + m.label: mean_std(
                        getattr(r, f"test_{m.name}_mean"), getattr(r, f"test_{m.name}_std")
                    )
                    for m in sorted(metrics.METRICS, key=lambda m: m.name != "sum_acc")
                },
                "params": fmt(r.params, ",.0f"),
                "MACs/img": fmt(r.macs_per_image, ",.0f"),
                "train s": fmt(r.train_seconds_mean, ".1f"),
                "train img/s": fmt(r.train_images_per_s_mean, ",.0f"),
                "infer img/s": fmt(r.infer_images_per_s, ",.0f"),
                "Pareto": "*" if r.pareto else "",
            }
        )
    return pd.DataFrame(rows)


def distinct(values: pd.Series) -> str:
    """Sorted distinct values joined, for the report header."""
    items = sorted({str(v) for v in values.dropna()})
    return ", ".join(items) if items else MISSING


def header_section(inputs: Inputs, summary: pd.DataFrame) -> str:
    runs = inputs.runs
    lines = [
        "# digitsum-bench report",
        "",
        f"- Runs: {len(runs)} complete in {len(summary)} group(s); "
        f"{len(inputs.incomplete)} incomplete",
    ]
    if not runs.empty:
        version_columns = sorted(c for c in runs.columns if c.startswith("versions."))
        versions = "; ".join(
            f"{c.removeprefix('versions.')} {distinct(runs[c])}" for c in version_columns
        )
        seeds = sorted({int(s) for s in runs["seed"]})
        epochs = sorted({int(e) for e in runs["epochs"].dropna()})
        lines += [
            f"- Hardware: {distinct(runs.get('device', pd.Series(dtype=object)))}",
            f"- Versions: {versions or MISSING}",
            f"- Epochs: {', '.join(map(str, epochs)) or MISSING}",
            f"- Seeds: {', '.join(map(str, seeds))}",
            f"- Commits: {distinct(runs.get('git_commit', pd.Series(dtype=object)))}",
        ]
    lines += [
        "",
        "Accuracies are exhaustive over the test set (every image x all 10 addends): mean ± std "
        "(ddof=1) over the group's seeds; n = runs. A group is one arch x fusion x config hash "
        "(hyperparameters, not seed or hardware); tuned and default runs are never mixed.",
    ]
    return "\n".join(lines)


def results_section(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "## Results\n\nNo complete runs."
    return "\n\n".join(
        [
            "## Results (best test sum accuracy first)",
            markdown_table(display_table(summary)),
            "Pareto: * marks the groups no other group beats with fewer or equal parameters. "
            "Throughput and MACs come from the bench CSVs (best condition per group) where "
            "present; train img/s and train s come from the runs.",
        ]
    )


def tuned_vs_default_section(summary: pd.DataFrame) -> str:
    if summary.empty:
        return ""
    pairs = tuned_vs_default(summary)
    if pairs.empty:
        return "## Tuned vs default\n\nNo arch x fusion has both a tuned and a default group."
    table = pd.DataFrame(
        {
            "combination": pairs["arch"] + " x " + pairs["fusion"],
            "default config": pairs["config_hash_default"],
            "default sum acc": mean_std_cells(pairs, "test_sum_acc", "_default"),
            "default n": pairs["n_default"].astype(str),
            "tuned config": pairs["config_hash_tuned"],
            "tuned sum acc": mean_std_cells(pairs, "test_sum_acc", "_tuned"),
            "tuned n": pairs["n_tuned"].astype(str),
            "delta": [fmt(d, "+.4f") for d in pairs["delta"]],
        }
    )
    return "## Tuned vs default\n\n" + markdown_table(table)


def bench_section(bench: pd.DataFrame, notes: list[str]) -> str:
    if bench.empty and not notes:
        return ""
    parts = ["## Bench measurements"]
    if not bench.empty:
        rows = bench.sort_values(
            ["arch", "fusion", "device", "precision", "batch_size"], kind="stable"
        )
        table = pd.DataFrame(
            {"combination": rows["arch"].astype(str) + " x " + rows["fusion"].astype(str)}
            | {
                header: rows[column].map(lambda v, spec=spec: fmt(v, spec))
                for header, (column, spec) in BENCH_TABLE.items()
            }
        )
        parts.append(markdown_table(table))
    parts += [f"- {note}" for note in notes]
    return "\n\n".join(parts)


def incomplete_section(incomplete: pd.DataFrame) -> str:
    if incomplete.empty:
        return ""
    return "## Incomplete runs (not in the tables)\n\n" + markdown_table(incomplete)


def plots_section(plots: dict[str, bytes]) -> str:
    if not plots:
        return ""
    images = [f"![{PLOTS[name]}](plots/{name}.png)" for name in PLOTS if name in plots]
    return "## Plots\n\n" + "\n\n".join(images)


def render_markdown(inputs: Inputs, summary: pd.DataFrame, plots: dict[str, bytes]) -> str:
    sections = [
        header_section(inputs, summary),
        results_section(summary),
        tuned_vs_default_section(summary),
        generalisation_section(inputs.runs),
        bench_section(inputs.bench, inputs.notes),
        plots_section(plots),
        incomplete_section(inputs.incomplete),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def rich_table(summary: pd.DataFrame) -> Table:
    table = Table(title="test metrics, mean ± std over seeds (best test sum accuracy first)")
    display = display_table(summary)
    for column in display.columns:
        table.add_column(column, justify="left" if column in ("combination", "config") else "right")
    for row in display.itertuples(index=False):
        table.add_row(*(escape(cell) for cell in row))
    return table
