"""``python -m benchmark report``: aggregate finished runs over seeds into tables and plots.

Three stages, each of pure functions the tests call directly: *load* (run directories and bench
CSVs into DataFrames, broken inputs listed rather than fatal), *aggregate* (one row per arch x
fusion x config hash x tuned, mean / std / n over seeds) and *render* (markdown sections, CSV,
PNG plots). The same inputs give byte-identical outputs: everything is sorted, nothing records
the time, and PNGs carry no software metadata.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmark import bench
from benchmark import files
from benchmark.generalisation import generalisation_section, holdout_runs, plot_generalisation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS = "metrics.json"
STATUS = "status.json"
HISTORY = "history.csv"

# A group: runs that differ only in seed (config_hash leaves seed and hardware out).
KEYS = ["arch", "fusion", "tuned", "config_hash"]
ACCURACIES = ["digit_acc", "sum_acc", "joint_acc", "consistency"]
# Per-seed quantities aggregated to mean and std: summary name -> flattened metrics column.
SEED_STATS = {f"test_{m}": f"test.{m}" for m in ACCURACIES} | {
    "val_sum_acc": "val.sum_acc",
    "train_seconds": "train_seconds",
    "train_images_per_s": "train_images_per_s",
}
REQUIRED_TEXT = ("arch", "fusion", "config_hash")
REQUIRED_NUMBERS = ("seed", "params", *(f"test.{m}" for m in ACCURACIES))
BENCH_COLUMNS = list(bench.COLUMNS)
BENCH_NUMBERS = ["batch_size", *bench.FIGURES]
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
# Columns the best bench row (highest inference throughput) contributes to a group.
BENCH_BEST = {
    "infer_images_per_s": "infer_images_per_s",
    "latency_ms_b1": "latency_ms_b1",
    "device": "bench_device",
    "precision": "bench_precision",
    "batch_size": "bench_batch_size",
}
SUMMARY_COLUMNS = [
    *KEYS,
    "label",
    "n",
    "seeds",
    "epochs",
    *(f"{name}_{stat}" for name in SEED_STATS for stat in ("mean", "std")),
    "params",
    "macs_per_image",
    *BENCH_BEST.values(),
    "pareto",
]
PLOTS = {
    "acc_vs_params": "Test sum accuracy vs parameters (Pareto front: more accuracy, fewer params)",
    "acc_vs_throughput": "Test sum accuracy vs inference throughput (bench)",
    "val_curves": "Validation sum accuracy per epoch (mean over seeds)",
    "sum_class_heatmap": "Test accuracy per true sum (mean over seeds)",
    "generalisation": "Seen vs held-out pairs: test sum accuracy (mean and std over seeds)",
}
DPI = 100
MISSING = "-"


class IncompleteRun(Exception):
    """A run directory whose metrics cannot be used; the message is the reason shown."""


@dataclass
class Inputs:
    """Everything the report reads, as DataFrames (one row per complete run, epoch, ...)."""

    runs: pd.DataFrame  # flattened metrics.json (``test.sum_acc`` ...), plus ``run`` (dir name)
    history: pd.DataFrame  # history.csv rows of complete runs, plus ``run``
    incomplete: pd.DataFrame  # run, status, reason
    bench: pd.DataFrame  # BENCH_COLUMNS (and any others the CSVs have), plus ``file``
    notes: list[str] = field(default_factory=list)  # unreadable bench files, etc.


# ---------------------------------------------------------------------------------------- load


def lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics, or ``IncompleteRun`` saying why they are missing or unusable."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise IncompleteRun(f"no {METRICS}")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IncompleteRun(f"corrupt {METRICS}: {exc}") from None
    if not isinstance(metrics, dict):
        raise IncompleteRun(f"corrupt {METRICS}: not a JSON object")
    bad = [k for k in REQUIRED_TEXT if not isinstance(lookup(metrics, k), str)]
    bad += [k for k in REQUIRED_NUMBERS if not is_number(lookup(metrics, k))]
    if bad:
        raise IncompleteRun(f"corrupt {METRICS}: missing or invalid {', '.join(bad)}")
    return metrics


def read_status(run_dir: Path) -> tuple[str, str]:
    """(status, message) from status.json; ``missing`` / ``unreadable`` when it cannot be read."""
    path = Path(run_dir) / STATUS
    if not path.exists():
        return "missing", ""
    try:
        status = json.loads(path.read_text())
        return str(status["status"]), str(status.get("message") or "")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return "unreadable", ""


def read_history(run_dir: Path) -> pd.DataFrame | None:
    """history.csv, or None when it is absent or lacks the epoch / validation columns."""
    try:
        history = pd.read_csv(Path(run_dir) / HISTORY)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if not {"epoch", "val_sum_acc"} <= set(history.columns):
        return None
    return history


def find_run_dirs(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]


def load_runs(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, history, incomplete) from run directories; a broken run is listed, never fatal."""
    records, histories, incomplete = [], [], []
    for run_dir in run_dirs:
        try:
            metrics = read_metrics(run_dir)
        except IncompleteRun as exc:
            status, message = read_status(run_dir)
            reason = f"{exc}; {message}" if message else str(exc)
            incomplete.append({"run": run_dir.name, "status": status, "reason": reason})
            continue
        records.append({**metrics, "run": run_dir.name})
        history = read_history(run_dir)
        if history is not None:
            histories.append(history.assign(run=run_dir.name))
    history = (
        pd.concat(histories, ignore_index=True)
        if histories
        else pd.DataFrame(columns=["run", "epoch", "val_sum_acc"])
    )
    incomplete_frame = pd.DataFrame(incomplete, columns=["run", "status", "reason"])
    return runs_frame(records), history, incomplete_frame


def runs_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Metrics flattened to columns (``test.sum_acc``, ``versions.torch`` ...), so sections can
    use keys this module does not know yet; optional numbers that are not numbers become NaN."""
    if not records:
        return pd.DataFrame(columns=["run", *KEYS])
    runs = pd.json_normalize(records)
    runs["tuned"] = runs.get("tuned", pd.Series(False, index=runs.index)).fillna(False).astype(bool)
    for column in ("epochs", *SEED_STATS.values()):
        runs[column] = pd.to_numeric(runs.get(column), errors="coerce")
    return runs


def load_bench(paths: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Bench CSV rows with every expected column (missing ones empty), and notes on bad files."""
    frames, notes = [], []
    for path in paths:
        try:
            frames.append(pd.read_csv(path).assign(file=Path(path).name))
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            notes.append(f"bench file {path} skipped: {str(exc).splitlines()[0]}")
    bench = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in BENCH_COLUMNS:
        if column not in bench:
            bench[column] = pd.Series(np.nan, index=bench.index, dtype=object)
    for column in BENCH_NUMBERS:
        bench[column] = pd.to_numeric(bench[column], errors="coerce")
    return bench, notes


def load_inputs(runs_glob: str, bench_glob: str) -> Inputs:
    runs, history, incomplete = load_runs(find_run_dirs(runs_glob))
    bench, notes = load_bench([Path(p) for p in sorted(glob.glob(bench_glob))])
    return Inputs(runs, history, incomplete, bench, notes)


# ----------------------------------------------------------------------------------- aggregate


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
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    stats = {
        f"{name}_{stat}": (column, stat)
        for name, column in SEED_STATS.items()
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
    return summary[SUMMARY_COLUMNS].reset_index(drop=True)


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


# -------------------------------------------------------------------------------------- render


def fmt(value: Any, spec: str) -> str:
    return MISSING if pd.isna(value) else format(value, spec)


def mean_std(mean: Any, std: Any) -> str:
    return fmt(mean, ".4f") + ("" if pd.isna(std) else f" ± {std:.4f}")


def mean_std_cells(frame: pd.DataFrame, name: str, suffix: str = "") -> list[str]:
    means, stds = frame[f"{name}_mean{suffix}"], frame[f"{name}_std{suffix}"]
    return [mean_std(m, s) for m, s in zip(means, stds, strict=True)]


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The main table as strings, shared by report.md and the terminal."""
    rows = []
    for rank, r in enumerate(summary.itertuples(index=False), start=1):
        rows.append(
            {
                "#": str(rank),
                "combination": f"{r.arch} x {r.fusion}",
                "tuned": "yes" if r.tuned else "no",
                "config": r.config_hash,
                "n": str(r.n),
                "test sum acc": mean_std(r.test_sum_acc_mean, r.test_sum_acc_std),
                "digit acc": mean_std(r.test_digit_acc_mean, r.test_digit_acc_std),
                "joint acc": mean_std(r.test_joint_acc_mean, r.test_joint_acc_std),
                "consistency": mean_std(r.test_consistency_mean, r.test_consistency_std),
                "params": fmt(r.params, ",.0f"),
                "MACs/img": fmt(r.macs_per_image, ",.0f"),
                "train s": fmt(r.train_seconds_mean, ".1f"),
                "train img/s": fmt(r.train_images_per_s_mean, ",.0f"),
                "infer img/s": fmt(r.infer_images_per_s, ",.0f"),
                "Pareto": "*" if r.pareto else "",
            }
        )
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


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


def new_figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure on the Agg canvas (no pyplot, no global state); imported here so that other
    commands do not pay for matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def png_bytes(fig: Figure) -> bytes:
    """PNG without the Software / date metadata, so equal figures give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def annotate(ax: Any, x: pd.Series, y: pd.Series, labels: pd.Series) -> None:
    """Label each point; wider margins keep the labels of the outermost points inside."""
    for xi, yi, label in zip(x, y, labels, strict=True):
        ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.2, y=0.08)


def plot_acc_vs_params(summary: pd.DataFrame) -> bytes:
    fig, ax = new_figure(8, 5.5)
    ax.errorbar(
        summary["params"],
        summary["test_sum_acc_mean"],
        yerr=summary["test_sum_acc_std"].fillna(0),
        fmt="o",
        color="tab:blue",
        label="group (mean ± std over seeds)",
    )
    front = summary[summary["pareto"]].sort_values("params")
    ax.step(
        front["params"],
        front["test_sum_acc_mean"],
        where="post",
        color="tab:red",
        marker="D",
        label="Pareto front",
    )
    annotate(ax, summary["params"], summary["test_sum_acc_mean"], summary["label"])
    ax.set(
        xscale="log", xlabel="parameters", ylabel="test sum accuracy", title=PLOTS["acc_vs_params"]
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_acc_vs_throughput(summary: pd.DataFrame) -> bytes:
    rows = summary.dropna(subset=["infer_images_per_s"])
    fig, ax = new_figure(8, 5.5)
    for device, group in rows.groupby("bench_device", sort=True):
        ax.scatter(group["infer_images_per_s"], group["test_sum_acc_mean"], label=str(device))
    annotate(ax, rows["infer_images_per_s"], rows["test_sum_acc_mean"], rows["label"])
    ax.set(
        xscale="log",
        xlabel="inference images/s (best bench condition)",
        ylabel="test sum accuracy",
        title=PLOTS["acc_vs_throughput"],
    )
    ax.legend(fontsize=8, title="bench device")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_val_curves(curves: pd.DataFrame) -> bytes:
    fig, ax = new_figure(8, 5.5)
    for label, curve in curves.groupby("label", sort=False):
        ax.plot(curve["epoch"], curve["val_sum_acc"], marker="o", label=label)
    ax.set(xlabel="epoch", ylabel="validation sum accuracy", title=PLOTS["val_curves"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_class_heatmap(classes: pd.DataFrame) -> bytes:
    fig, ax = new_figure(11, 1.6 + 0.35 * len(classes))
    image = ax.imshow(classes.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(classes.shape[1]), [str(c) for c in classes.columns])
    ax.set_yticks(range(len(classes)), list(classes.index))
    ax.set(xlabel="true sum", title=PLOTS["sum_class_heatmap"])
    fig.colorbar(image, ax=ax, label="test accuracy")
    return png_bytes(fig)


def render_plots(inputs: Inputs, summary: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes by plot name; a plot without data is left out."""
    if summary.empty:
        return {}
    plots = {"acc_vs_params": plot_acc_vs_params(summary)}
    if summary["infer_images_per_s"].notna().any():
        plots["acc_vs_throughput"] = plot_acc_vs_throughput(summary)
    curves = val_curves(inputs.history, inputs.runs, summary)
    if not curves.empty:
        plots["val_curves"] = plot_val_curves(curves)
    classes = class_accuracy(inputs.runs, summary)
    if not classes.empty:
        plots["sum_class_heatmap"] = plot_class_heatmap(classes)
    if not holdout_runs(inputs.runs).empty:
        plots["generalisation"] = plot_generalisation(inputs.runs, DPI)
    return plots


def rich_table(summary: pd.DataFrame) -> Table:
    table = Table(title="test metrics, mean ± std over seeds (best test sum accuracy first)")
    display = display_table(summary)
    for column in display.columns:
        table.add_column(column, justify="left" if column in ("combination", "config") else "right")
    for row in display.itertuples(index=False):
        table.add_row(*(escape(cell) for cell in row))
    return table


def print_wide(console: Console, table: Table) -> None:
    """Into a pipe or log, print at the table's natural width rather than rich's default 80
    columns, which would elide the numbers; a terminal keeps its own width."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    Console(file=console.file, width=max(console.width, natural), highlight=False).print(table)


def write_report(inputs: Inputs, out: Path) -> tuple[pd.DataFrame, list[Path]]:
    """Write report.md, summary.csv and plots/*.png under ``out``; returns the summary and paths."""
    out = Path(out)
    summary = summarize(inputs.runs, inputs.bench)
    plots = render_plots(inputs, summary)
    written = [out / "report.md", out / "summary.csv"]
    files.write_text(written[0], render_markdown(inputs, summary, plots))
    files.write_text(
        written[1], summary.to_csv(index=False, lineterminator="\n", float_format="%.10g")
    )
    for name in PLOTS:
        path = out / "plots" / f"{name}.png"
        if name in plots:
            files.write_bytes(path, plots[name])
            written.append(path)
        else:
            path.unlink(missing_ok=True)  # a stale plot from an earlier report would mislead
    return summary, written


# ------------------------------------------------------------------------------------------ cli


def cmd_report(args: argparse.Namespace) -> int:
    """Aggregate the runs (and bench CSVs) into report.md, summary.csv and plots."""
    from benchmark.cli import UsageError, console

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; expected a directory (created if missing)")
    inputs = load_inputs(args.runs, args.bench)
    if inputs.runs.empty and inputs.incomplete.empty:
        raise UsageError(
            f"--runs {args.runs!r} matches no run directory; expected a glob such as results/runs/*"
        )
    summary, written = write_report(inputs, out)
    if not summary.empty:
        print_wide(console, rich_table(summary))
    if not inputs.incomplete.empty:
        console.print(f"{len(inputs.incomplete)} incomplete run(s) listed in the report")
    for note in inputs.notes:
        console.print(note)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="aggregate runs into report.md, summary.csv, plots",
        description=cmd_report.__doc__,
    )
    p.add_argument(
        "--runs", default="results/runs/*", metavar="GLOB", help="run directories [%(default)s]"
    )
    p.add_argument(
        "--out",
        default="results",
        metavar="DIR",
        help="where report.md, summary.csv and plots/ go [%(default)s]",
    )
    p.add_argument(
        "--bench", default="results/bench/*.csv", metavar="GLOB", help="bench CSVs [%(default)s]"
    )
    p.set_defaults(func=cmd_report)
