"""Load: run directories (through ``benchmark.rundir``, the owner of their format), bench CSVs
(``benchmark.benchfile``), ``compare``'s comparison.json and the Optuna studies into DataFrames
and objects; a broken input is listed, never fatal."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import files, metrics, rundir
from benchmark.benchfile import read_rows
from benchmark.comparison import load_comparison
from benchmark.config import TrainConfig, tuned_from_problem
from benchmark.errors import DamagedFileError
from benchmark.places import OPTUNA_DB, bench_glob, runs_glob
from benchmark.report.studies import (
    Studies,
    load_studies,
    recorded_studies,
    storage_name,
    why,
)
from benchmark.wording import plural

KEYS = list(rundir.GROUP)  # a group: the runs that differ only in seed and machine
REPEATS = ["run", "seed", "repeats"]  # Inputs.repeats: a run, its seed, the run it repeats


def seed_stats() -> dict[str, str]:
    """Per-seed quantities aggregated to mean and std: summary name -> flattened metrics column
    (every metric of ``benchmark.metrics``, then validation sum accuracy and training cost)."""
    return {f"test_{name}": f"test.{name}" for name in metrics.names()} | {
        "val_sum_acc": "val.sum_acc",
        "train_seconds": "train_seconds",
        "train_images_per_s": "train_images_per_s",
    }


@dataclass
class Inputs:
    """Everything the report reads, as DataFrames (one row per complete run, epoch, ...)."""

    runs: pd.DataFrame  # flattened metrics.json (``test.sum_acc`` ...), plus ``run`` (dir name)
    history: pd.DataFrame  # history.csv rows of complete runs, plus ``run``
    incomplete: pd.DataFrame  # run, status, reason
    bench: pd.DataFrame  # benchfile.COLUMNS (and any others the CSVs have), plus ``file``
    notes: list[str] = field(default_factory=list)  # unreadable bench files, etc.
    comparison: dict[str, Any] | None = None  # comparison.json of the results directory
    studies: Studies = field(default_factory=Studies)  # the studies of its optuna.db
    results_dir: Path | None = None
    # complete runs left out for repeating a seed their group holds: run, seed, repeats
    repeats: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPEATS))
    chosen: bool = False  # the runs are those ``--runs`` chose, perhaps a few of the protocol's


NOT_A_RUN = "not a run"  # the status of a file found among the run directories


def incomplete_count(incomplete: pd.DataFrame) -> str:
    """``2 incomplete``, and apart from them the finished runs whose metrics cannot be read
    (called "incomplete", one read as unfinished) and the files found among the runs (a stray
    file is no run)."""
    strays = int((incomplete["status"] == NOT_A_RUN).sum()) if not incomplete.empty else 0
    damaged = damaged_count(incomplete)
    text = f"{len(incomplete) - strays - damaged} incomplete"
    if damaged:
        text += f"; {damaged} finished but damaged"
    return text + (
        f"; {plural(strays, 'other entry', 'other entries')} (not runs)" if strays else ""
    )


def damaged_count(incomplete: pd.DataFrame | None) -> int:
    """The runs among ``incomplete`` that finished (status complete) but whose metrics.json
    cannot be read."""
    if incomplete is None or incomplete.empty:
        return 0
    return int((incomplete["status"] == "complete").sum())


def find_run_dirs(pattern: str | list[str]) -> list[Path]:
    """Everything ``pattern`` (or any of several patterns) matches, sorted, each once however
    its path is spelled (``../r/runs/*`` beside ``/abs/r/runs/*`` counted every seed twice): a
    file among the run directories is listed by ``load_runs`` as not a run, rather than passed
    over in silence."""
    patterns = [pattern] if isinstance(pattern, str) else pattern
    found: dict[str, str] = {}  # by real path: the run's own directory before a link to it
    for path in (p for one in patterns for p in sorted(glob.glob(one))):
        real = os.path.realpath(path)
        if os.path.islink(found.setdefault(real, path)) and not os.path.islink(path):
            found[real] = path
    return [Path(p) for p in sorted(set(found.values()))]


def value_problems(found: dict[str, Any]) -> list[str]:
    """What ``rundir.read_metrics`` leaves to its readers, checked as the writer would: optional
    figures that are present but not numbers, and config fields of the wrong type (checked by
    ``TrainConfig.check_types``, the code that checks a config before a run writes it; fields
    this version does not know are left alone)."""
    bad = [
        k
        for k in ("epochs", "macs_per_image", *seed_stats().values())
        if files.lookup(found, k) is not None and not files.is_number(files.lookup(found, k))
    ]
    if not 0 < found["params"] < 10**12:  # 1e308 stopped the Pareto plot's axis
        bad.append("params")
    by_class = files.lookup(found, "test.sum_acc_by_class")
    numbers = isinstance(by_class, list) and all(files.is_number(a) for a in by_class)
    if by_class is not None and not (numbers and all(0 <= a <= 1 for a in by_class)):
        bad.append("test.sum_acc_by_class")  # nulls stopped the heatmap's colour scale
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    config = {k: v for k, v in (found.get("config") or {}).items() if k in known}
    try:
        TrainConfig.from_dict(config).check_types()
        if (problem := tuned_from_problem(config.get("tuned_from"), whole=False)) is not None:
            raise ValueError(problem)  # a hand-written one: every report stopped on it
    except (TypeError, ValueError) as exc:
        bad.append(f"config ({exc})")
    return bad


def load_runs(run_dirs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, history, incomplete) from run directories; a broken run, or anything else found
    among them, is listed with the reason, never fatal."""
    records, histories, incomplete = [], [], []
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            reason = "not a run directory (a file or a broken link among the runs), left out"
            incomplete.append({"run": run_dir.name, "status": NOT_A_RUN, "reason": reason})
            continue
        try:
            found = rundir.read_metrics(run_dir)
            bad = value_problems(found)
            if bad:
                raise rundir.IncompleteRun(f"unreadable {rundir.METRICS}: {'; '.join(bad)}")
        except rundir.IncompleteRun as exc:
            status, message = rundir.read_status(run_dir)
            reason = f"{exc}; {message}" if message else str(exc)
            if status == "running":  # or killed (SIGKILL, power): its files cannot tell which
                resume = rundir.resume_command(run_dir)
                reason += f"; if no process trains it any more (killed), resume with `{resume}`"
            incomplete.append({"run": run_dir.name, "status": status, "reason": reason})
            continue
        config = found.get("config") if isinstance(found.get("config"), dict) else {}
        # the config whole (json_normalize flattens it), for the reference's comparisons
        records.append(
            {
                **found,
                "run": run_dir.name,
                "config_json": json.dumps(config),
                "precision": rundir.run_precision(found),
            }
        )
        history = rundir.read_history(run_dir)
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
    if "macs_per_image" in frame:  # absent from runs made before it was recorded
        frame["macs_per_image"] = pd.to_numeric(frame["macs_per_image"], errors="coerce")
    return frame


def set_aside_repeats(
    runs: pd.DataFrame, history: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(runs, history, repeats): a group counts each seed once, its first run (run directories
    sort by start time). A seed run again computes the same figures on the same machine, so
    counting it twice would narrow the group's interval with no new evidence; the repeats are
    listed with the run they repeat."""
    if runs.empty:
        return runs, history, pd.DataFrame(columns=REPEATS)
    # rundir.seed_of: the rule ``run`` notes a repeat by before it trains
    keys = [rundir.seed_of(row) for row in runs[[*KEYS, "seed"]].to_dict("records")]
    firsts: dict[tuple[Any, ...], Any] = {}
    for key, row in zip(keys, runs.index, strict=True):
        firsts.setdefault(key, row)
    first_row = pd.Series([firsts[key] for key in keys], index=runs.index)
    again = runs.index.to_series() != first_row  # by row: a copy of a run has its name
    first = runs.loc[first_row, "run"].set_axis(runs.index)
    named = first.where(first != runs["run"], first + " (a copy of it)")
    repeats = pd.DataFrame(
        {"run": runs["run"][again], "seed": runs["seed"][again], "repeats": named[again]}
    )
    kept = runs[~again].reset_index(drop=True)
    history = history[~history["run"].isin(set(repeats["run"]) - set(kept["run"]))]
    history = history.drop_duplicates(["run", "epoch"]).reset_index(drop=True)  # a copy's too
    return kept, history, repeats.reset_index(drop=True)


def repeated(repeats: pd.DataFrame) -> str:
    """``2 runs repeating a seed its group already has, left out``: how the report, the console
    and a reference's note name ``Inputs.repeats``."""
    return f"{plural(len(repeats), 'run')} repeating a seed its group already has, left out"


def load_inputs(
    runs_glob: str | list[str],
    bench_glob: str,
    results_dir: Path | None = None,
    out: Path | None = None,
    storage: str | None = None,
    chosen: bool = False,
) -> Inputs:
    """Runs, bench rows and, from ``results_dir``, the ``compare`` protocol's comparison.json
    and the studies (``out``: where the report goes, so where an earlier one left what it read
    of them; ``results_dir`` if not given; ``storage``: where the studies are, if not in
    ``results_dir``'s optuna.db; ``chosen``: ``runs_glob`` is the ``--runs`` given)."""
    run_dirs = find_run_dirs(runs_glob)
    found, history, incomplete = load_runs(run_dirs)
    found, history, repeats = set_aside_repeats(found, history)
    rows, notes = read_rows([Path(p) for p in sorted(glob.glob(bench_glob))])
    complete, curved = set(found["run"]), set(history["run"])
    unread = [d / rundir.HISTORY for d in run_dirs if d.name in complete - curved]
    if unread := [path for path in unread if path.exists()]:
        counted = plural(len(unread), "history.csv", "history.csv files")
        notes.append(  # a damaged one: the run is in the tables, its curve is not
            f"{counted} unreadable, curves left out: "
            + ", ".join(str(path) for path in unread[:3])
            + (", ..." if len(unread) > 3 else "")
        )
    if results_dir is None:
        found = found.assign(from_defaults=from_defaults(found, Studies()))
        return Inputs(found, history, incomplete, rows, notes, repeats=repeats)
    try:
        comparison = load_comparison(results_dir)
    except DamagedFileError as exc:  # a report never stops on a bad file: its sections go
        notes.append(f"{exc}; the protocol's cost and ladder sections left out")
        comparison = None
    try:
        studies = load_studies(results_dir, Path(out if out is not None else results_dir), storage)
        notes += studies.notes
    except Exception as exc:  # noqa: BLE001 - a damaged optuna.db costs its section only
        where = str(Path(results_dir) / OPTUNA_DB if storage is None else storage_name(storage))
        said = why(exc)  # a storage that could not be opened at all is named by its error
        notes.append(
            f"{said}; studies left out"
            if where in said
            else f"{where} unreadable, studies left out: {said}"
        )
        studies = Studies()
    found = found.assign(from_defaults=from_defaults(found, studies))
    return Inputs(
        found, history, incomplete, rows, notes, comparison, studies, results_dir, repeats, chosen
    )


def reference_inputs(directory: Path) -> Inputs:
    """The runs and bench rows of a reference results directory (``report --against``), its
    tuned runs marked ``from_defaults`` by the study digests its own report left there."""
    found = load_inputs(runs_glob(directory), bench_glob(directory))
    marked = from_defaults(found.runs, recorded_studies(directory))
    return dataclasses.replace(found, runs=found.runs.assign(from_defaults=marked))


def run_configs(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Each run's config.json, whole, as ``load_inputs`` keeps it in ``config_json`` (a dict
    does not survive pandas' flattening); ``{}`` where a run has none."""
    texts = runs.get("config_json", pd.Series([None] * len(runs), dtype=object))
    return [json.loads(t) if isinstance(t, str) else {} for t in texts]


def from_defaults(runs: pd.DataFrame, studies: Studies) -> pd.Series:
    """Per run: whether the best trial it was tuned with was its study's defaults trial (as
    its ``tuned_from`` says, or, for runs from before it said so, ``studies``). Its config spells
    out the model's default arguments, which the default run's leaves to the registry, so the
    two hash apart though they train the same model."""
    queued = {(d.name, d.defaults_trial) for d in studies.digests if d.defaults_trial is not None}
    picked = []
    for config in run_configs(runs):
        source = config.get("tuned_from")
        source = source if isinstance(source, dict) else {}
        picked.append(
            source.get("defaults") is True or (source.get("study"), source.get("trial")) in queued
        )
    return pd.Series(picked, index=runs.index, dtype=bool)
