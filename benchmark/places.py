"""Where each kind of file lives in a results directory, named once: the modules that own the
formats (rundir, benchfile, exports, storages, the report) and the commands that check a
directory before any work all take the names from here. Imports nothing heavy: the report and
``--help`` read it."""

from __future__ import annotations

from pathlib import Path

RUNS = "runs"  # one run directory each (``rundir``)
BENCH = "bench"  # bench's CSV files, one per device and precision (``benchfile``)
TUNED = "tuned"  # each study's exported best (``exports``)
OPTUNA_DB = "optuna.db"  # the default storage of every study (``storages``)
STORAGE_ENV = "OPTUNA_STORAGE"  # a storage URL given without putting a password in argv


def runs_glob(results_dir: Path | str) -> str:
    """Every run directory of ``results_dir``, as ``report --runs`` takes a pattern."""
    return str(Path(results_dir) / RUNS / "*")


def bench_glob(results_dir: Path | str) -> str:
    """Every bench CSV of ``results_dir``, as ``report --bench`` takes a pattern."""
    return str(Path(results_dir) / BENCH / "*.csv")
