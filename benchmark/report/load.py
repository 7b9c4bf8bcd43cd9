"""Load: run directories (through ``benchmark.runs``, the owner of their format) and bench CSVs
into DataFrames; a broken input is listed, never fatal."""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import bench, compare, metrics, runs
from benchmark.report.studies import STORAGE, load_studies

# A group: runs that differ only in seed and machine (config_hash leaves seed and hardware out;
# the arithmetic, fp32 or bf16, changes what a run computes, so it is a key of its own).
KEYS = ["arch", "fusion", "tuned", "config_hash", "precision"]


def seed_stats() -> dict[str, str]:
    """Per-seed quantities aggregated to mean and std: summary name -> flattened metrics column
    (every metric of ``benchmark.metrics``, then validation sum accuracy and training cost)."""
    return {f"test_{name}": f"test.{name}" for name in metrics.names()} | {
        "val_sum_acc": "val.sum_acc",
        "train_seconds": "train_seconds",
        "train_images_per_s": "train_images_per_s",
    }


BENCH_COLUMNS = list(bench.COLUMNS)
BENCH_NUMBERS = ["batch_size", *bench.FIGURES]


@dataclass
class Inputs:
    """Everything the report reads, as DataFrames (one row per complete run, epoch, ...)."""

    runs: pd.DataFrame  # flattened metrics.json (``test.sum_acc`` ...), plus ``run`` (dir name)
    history: pd.DataFrame  # history.csv rows of complete runs, plus ``run``
    incomplete: pd.DataFrame  # run, status, reason
    bench: pd.DataFrame  # BENCH_COLUMNS (and any others the CSVs have), plus ``file``
    notes: list[str] = field(default_factory=list)  # unreadable bench files, etc.
    comparison: dict[str, Any] | None = None  # comparison.json of the results directory
    studies: list[Any] = field(default_factory=list)  # Optuna studies of its optuna.db
    results_dir: Path | None = None


def find_run_dirs(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]


def load_runs(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, history, incomplete) from run directories; a broken run is listed, never fatal."""
    records, histories, incomplete = [], [], []
    for run_dir in run_dirs:
        try:
            found = runs.read_metrics(run_dir)
        except runs.IncompleteRun as exc:
            status, message = runs.read_status(run_dir)
            reason = f"{exc}; {message}" if message else str(exc)
            incomplete.append({"run": run_dir.name, "status": status, "reason": reason})
            continue
        config = found.get("config") if isinstance(found.get("config"), dict) else {}
        # the config whole (json_normalize flattens it), for the reference's comparisons
        records.append(
            {
                **found,
                "run": run_dir.name,
                "config_json": json.dumps(config),
                "precision": runs.run_precision(found),
            }
        )
        history = runs.read_history(run_dir)
        if history is not None:
            histories.append(pd.DataFrame(history).assign(run=run_dir.name))
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
    frame = pd.json_normalize(records)
    tuned = frame.get("tuned", pd.Series(False, index=frame.index))
    frame["tuned"] = tuned.fillna(False).astype(bool)
    for column in ("epochs", *seed_stats().values()):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    return frame


def load_bench(paths: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Bench CSV rows with every expected column (missing ones empty), and notes on bad files."""
    frames, notes = [], []
    for path in paths:
        try:
            frames.append(pd.read_csv(path).assign(file=Path(path).name))
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            notes.append(f"bench file {path} skipped: {str(exc).splitlines()[0]}")
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in BENCH_COLUMNS:
        if column not in rows:
            rows[column] = pd.Series(np.nan, index=rows.index, dtype=object)
    for column in BENCH_NUMBERS:
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    return rows, notes


def load_inputs(runs_glob: str, bench_glob: str, results_dir: Path | None = None) -> Inputs:
    """Runs, bench rows and, from ``results_dir``, the ``compare`` protocol's comparison.json."""
    found, history, incomplete = load_runs(find_run_dirs(runs_glob))
    rows, notes = load_bench([Path(p) for p in sorted(glob.glob(bench_glob))])
    if results_dir is None:
        return Inputs(found, history, incomplete, rows, notes)
    comparison = compare.read_comparison(results_dir)
    try:
        studies = load_studies(results_dir)
    except Exception as exc:  # noqa: BLE001 - a damaged optuna.db costs its section only
        notes.append(f"{Path(results_dir) / STORAGE} unreadable, studies left out: {exc}")
        studies = []
    return Inputs(found, history, incomplete, rows, notes, comparison, studies, results_dir)
