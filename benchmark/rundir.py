"""The run directory format: file names, the writers that keep its files consistent, the lock
that makes one process its owner, and the checked readers. Torch-free, so the report and the
listing read runs without loading the training stack (``benchmark.runs`` trains them).

Layout of ``<results>/runs/<run-id>/``: ``config.json`` (resolved config), ``status.json``
(running / complete / interrupted / failed), ``history.csv`` (one row per finished epoch),
``checkpoint.pt`` (end of the last finished epoch), then ``metrics.json`` and ``model.pt`` when the
run completes. Every file is written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmark import files, metrics
from benchmark.config import TrainConfig
from benchmark.errors import DamagedFileError, UsageError
from benchmark.files import read_json, slug
from benchmark.places import RUNS

CONFIG = "config.json"
STATUS = "status.json"
HISTORY = "history.csv"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
MODEL = "model.pt"
LOCK = ".lock"
OWN_FILES = (CONFIG, STATUS, HISTORY, CHECKPOINT, METRICS, MODEL, LOCK)  # what a run writes
# The resume command a status message holds names the run directory where it was written.
RESUME = re.compile(r"`python -m benchmark run --resume [^`]*`")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory holding any file a run writes: a run, complete or not,
    rather than a folder of them (``report --runs results/runs``) or of something else."""
    try:
        return path.is_dir() and any((path / name).exists() for name in OWN_FILES)
    except OSError:  # a folder this user may not read is none of theirs to report
        return False


def resume_command(run_dir: Path) -> str:
    """What continues ``run_dir``: said when a run stops, kept in its status message."""
    return f"python -m benchmark run --resume {shlex.quote(str(run_dir))}"  # pasted whole


def new_run_dir(results_dir: Path, cfg: TrainConfig) -> Path:
    """A fresh directory; ``mkdir(exist_ok=False)`` plus a random token: never shared."""
    runs = Path(results_dir) / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        name = f"{stamp}-{slug(cfg.arch)}-{cfg.fusion}-s{cfg.seed}-{secrets.token_hex(3)}"
        try:
            (runs / name).mkdir()
            return runs / name
        except FileExistsError:
            continue


def write_status(run_dir: Path, status: str, message: str = "") -> None:
    files.write_json(run_dir / STATUS, {"status": status, "message": message, "time": time.time()})


def write_status_if_possible(run_dir: Path, status: str, message: str = "") -> bool:
    """``write_status`` for an error path: a full or read-only disk must not replace the error
    being reported by its own (the old status stays). True if written."""
    try:
        write_status(run_dir, status, message)
    except OSError:
        return False
    return True


def write_history(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """history.csv from one row per finished epoch (``EpochStats.row()``), columns in row order."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(run_dir / HISTORY, buf.getvalue())


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until a group of writes is done, so the files always agree.

    Each file is atomic on its own; this keeps e.g. checkpoint.pt and history.csv at the same
    epoch. The first signal that arrives meanwhile is re-raised at the end (main thread only);
    more of them (Ctrl-C held down) add nothing: one is enough to stop.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in watched}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


_held: dict[Path, int] = {}  # lock files this process holds (claims nest within one process)


@contextmanager
def claimed(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` exclusively while training it: an ``flock`` on its lock file, which the
    kernel releases when the process ends however it ends, so a dead owner (or a reused pid)
    never blocks a resume, and of two resumes started at once exactly one gets it. Claiming
    also mends what a killed owner left: its temporaries, and the closing of a run killed
    after writing metrics.json (``close_completed``)."""
    import fcntl

    run_dir = Path(run_dir)
    path = (run_dir / LOCK).resolve()
    if path in _held:
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(
            f"{run_dir}: cannot create its lock file ({exc.strerror or exc}); "
            f"expected a run directory we may write in"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"--resume {run_dir}: still running ({holder}); stop it first") from None
    _held[path] = fd
    try:
        with contextlib.suppress(OSError):  # who holds it: a full disk may refuse the note
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        files.remove_temporaries(run_dir)  # ours, left by a writer killed mid-write: stale now
        if (run_dir / METRICS).exists():
            check_metrics(run_dir)
            close_completed(run_dir)
        yield
    finally:
        del _held[path]
        os.close(fd)  # releases the lock


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    files.write_json(run_dir / CONFIG, cfg.to_dict())


def config_values(run_dir: Path) -> dict[str, Any]:
    """The run's config.json, its object of fields: a ``DamagedFileError`` naming it where it is
    unreadable or not an object (``runs.load_config`` checks the fields)."""
    path = Path(run_dir) / CONFIG
    try:
        values = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise DamagedFileError(f"{path}: unreadable ({reason})") from None
    if not isinstance(values, dict):
        raise DamagedFileError(f"{path}: expected an object of config fields")
    return values


def check_metrics(run_dir: Path) -> None:
    """A metrics.json that is there completes the run only if it reads as a run's, and as this
    run's (its config hash that of config.json): a damaged or foreign one is named (a
    ``DamagedFileError``) before anything is mended over it, so the checkpoint of an
    interrupted run is not removed as that of a finished one."""
    left = f"; move it away to resume from {CHECKPOINT}" if (run_dir / CHECKPOINT).exists() else ""
    try:
        found = read_metrics(run_dir)
    except IncompleteRun as exc:
        raise DamagedFileError(f"{run_dir}: {exc}{left}") from None
    try:  # another run's metrics.json, copied in, closed the run and removed its checkpoint
        config = TrainConfig.from_dict(config_values(run_dir))
    except (DamagedFileError, ValueError, TypeError):
        return  # a damaged config.json is named where it is loaded
    try:  # a mistyped field hashes apart: then config.json is the damaged one, not metrics.json
        config.check_types()
    except ValueError as exc:
        raise DamagedFileError(f"{run_dir / CONFIG}: {exc}") from None
    saved = config.config_hash()
    if found["config_hash"] != saved:
        raise DamagedFileError(
            f"{run_dir / METRICS}: another run's (config hash {found['config_hash']}, where "
            f"{CONFIG} gives {saved}){left}"
        )


def close_completed(run_dir: Path) -> None:
    """Finish the closing of a run whose metrics.json (written after model.pt: it completes
    the run) is there, as a kill may have cut it short: status "complete", and no checkpoint.pt
    unless its config keeps it. Best effort: on a read-only disk the run is complete all the
    same."""
    if read_status(run_dir)[0] != "complete":
        write_status_if_possible(run_dir, "complete")
    try:
        keep = config_values(run_dir).get("keep_checkpoint") is not False
    except DamagedFileError:
        keep = True  # unsure: leave it
    if not keep:
        with contextlib.suppress(OSError):
            (run_dir / CHECKPOINT).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ readers


class IncompleteRun(Exception):
    """A run directory whose metrics cannot be used; the message is the reason shown."""


REQUIRED_TEXT = ("arch", "fusion", "config_hash")


def required_numbers() -> list[str]:
    """The metrics.json keys (dotted) every complete run must hold as numbers."""
    return ["seed", "params", *(f"test.{name}" for name in metrics.names())]


# Optional metrics.json keys (dotted) and the type each must have where present, so that a
# report, which flattens every run's metrics into one table, never meets a foreign shape.
OPTIONAL_SHAPES = {"config": dict, "val": dict, "versions": dict, "tuned": bool, "data": dict}


def metrics_record(
    run_id: str,
    cfg: TrainConfig,
    figures: dict[str, Any],
    val: dict[str, Any],
    test: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json of a finished run, in its one layout: what it is (names, seed, config and
    its hash), ``figures`` (params, MACs, timings, device, precision, versions, commit, data:
    what the run measured about itself), then validation and test metrics. With held-out pairs
    val/test stay all-pair figures and the seen and held-out ones go apart."""
    found = {
        "run_id": run_id,
        "arch": cfg.arch,
        "fusion": cfg.fusion,
        "seed": cfg.seed,
        **figures,
        "config_hash": cfg.config_hash(),
        "tuned": cfg.tuned_from is not None,
        "config": cfg.to_dict(),
        "val": val,
        "test": test,
    }
    if cfg.holdout_pairs:
        from benchmark.holdout import holdout_pairs  # torch: only when a run is written

        found["holdout_pairs"] = [list(pair) for pair in holdout_pairs(cfg.holdout_pairs)]
        for name, split in (("val", val), ("test", test)):
            found[f"{name}_seen"] = split.pop("seen")
            found[f"{name}_heldout"] = split.pop("heldout")
    return found


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics, or ``IncompleteRun`` saying why they are missing or unusable."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise IncompleteRun(f"no {METRICS}")
    try:
        found = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise IncompleteRun(f"corrupt {METRICS}: {exc}") from None
    if not isinstance(found, dict):
        raise IncompleteRun(f"corrupt {METRICS}: not a JSON object")
    bad = [k for k in REQUIRED_TEXT if not isinstance(files.lookup(found, k), str)]
    bad += [k for k in required_numbers() if not files.is_number(files.lookup(found, k))]
    rates = [f"test.{name}" for name in metrics.names() if f"test.{name}" not in bad]
    bad += [k for k in rates if not 0 <= files.lookup(found, k) <= 1]  # fractions of pairs
    bad += [k for k, kind in OPTIONAL_SHAPES.items() if not isinstance(found.get(k, kind()), kind)]
    if "test_heldout" in found and not isinstance(files.lookup(found, "config.holdout_pairs"), int):
        bad.append("config.holdout_pairs")
    if bad:
        raise IncompleteRun(f"corrupt {METRICS}: missing or invalid {', '.join(bad)}")
    return found


def completed_anyway(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a run that completed although a signal came (it arrived while the run's
    files closed): the caller treats the run as done, not interrupted. None if not complete."""
    try:
        return read_metrics(run_dir)
    except IncompleteRun:
        return None


def run_precision(found: dict[str, Any]) -> str:
    """fp32 or bf16 as a run's metrics record it; for runs from before that was recorded, their
    config's, with ``auto`` read by the rule of the time (bf16 on CUDA only)."""
    recorded = found.get("precision") or files.lookup(found, "config.precision")
    if recorded in ("fp32", "bf16"):
        return recorded
    return "fp32" if str(found.get("device", "")).startswith("cpu") else "bf16"


# A report group: the runs that differ only in seed and machine (config_hash leaves seed and
# hardware out; the arithmetic, fp32 or bf16, changes what a run computes: a key of its own).
GROUP = ("arch", "fusion", "tuned", "config_hash", "precision")


def seed_of(found: dict[str, Any]) -> tuple[Any, ...]:
    """A complete run's group (``GROUP``'s fields, in order) and seed, as its metrics record
    them (``tuned`` absent: not tuned, as the report reads it): the report counts one of each."""
    arch, fusion, config_hash = (found.get(k) for k in ("arch", "fusion", "config_hash"))
    tuned = bool(found.get("tuned"))
    return (arch, fusion, tuned, config_hash, run_precision(found), found.get("seed"))


def planned_seed(cfg: TrainConfig, precision: str) -> tuple[Any, ...]:
    """``seed_of`` of the run ``cfg`` would write (``metrics_record``'s fields) in ``precision``:
    what a run compares with ``complete_seeds`` before it trains."""
    recorded = {"arch": cfg.arch, "fusion": cfg.fusion, "tuned": cfg.tuned_from is not None}
    return seed_of(
        {**recorded, "config_hash": cfg.config_hash(), "precision": precision, "seed": cfg.seed}
    )


def complete_runs(results_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(run directory, its metrics) of each complete run in ``results_dir/runs``, in name order
    (by start time); the incomplete ones left out."""
    for run_dir in sorted(Path(results_dir).glob(f"{RUNS}/*")):
        try:
            yield run_dir, read_metrics(run_dir)
        except IncompleteRun:
            continue


def complete_seeds(results_dir: Path) -> dict[tuple[Any, ...], str]:
    """The complete runs in ``results_dir/runs`` by ``seed_of``: the first run directory's name
    (they sort by start time), so a command can say which seeds it would run again."""
    found: dict[tuple[Any, ...], str] = {}
    for run_dir, recorded in complete_runs(results_dir):
        found.setdefault(seed_of(recorded), run_dir.name)
    return found


def read_status(run_dir: Path) -> tuple[str, str]:
    """(status, message) from status.json; ``missing`` / ``unreadable`` when it cannot be read.
    A resume command in the message names ``run_dir`` as read: a results directory copied or
    moved would otherwise send the user to resume the run where it was."""
    path = Path(run_dir) / STATUS
    if not path.exists():
        return "missing", ""
    try:
        status = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return "unreadable", ""
    if not isinstance(status, dict) or not isinstance(status.get("status"), str):
        return "unreadable", ""
    message = str(status.get("message") or "")
    command = f"`{resume_command(run_dir)}`"
    return status["status"], RESUME.sub(lambda _: command, message)  # the path taken literally


def read_history(run_dir: Path) -> list[dict[str, float]] | None:
    """history.csv as rows of numbers, or None when it is absent, lacks the epoch and validation
    sum columns, or holds a value that is not a number, not finite, an epoch's time outside
    0..10^7 s (116 days) or an accuracy outside 0..1 (a damaged file never stops a report:
    1e308 seconds made a table cell of 309 digits)."""
    try:
        with (Path(run_dir) / HISTORY).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        numbers = [{k: float(v) for k, v in row.items()} for row in rows]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error):
        return None
    if not rows or not {"epoch", "val_sum_acc"} <= set(rows[0]):
        return None
    for row in numbers:
        if not all(map(math.isfinite, row.values())) or not 0 <= row.get("seconds", 0) < 1e7:
            return None
        if any(not 0 <= v <= 1 for k, v in row.items() if k.endswith("_acc")):
            return None
    return numbers


def check_finished(run_dir: Path, flag: str) -> None:
    """A usage error unless ``run_dir`` is a run directory holding trained weights; says which
    file is missing (weights are committed only for the reference runs). A directory where one
    of them should be is a damaged run, named as ``load_run`` names an unreadable file."""
    run_dir = Path(run_dir)
    for path in (run_dir / CONFIG, run_dir / MODEL):
        if path.exists() and not path.is_file():  # there, but not as a file: damage, not absence
            raise DamagedFileError(f"{path}: unreadable (Is a directory)")
    if not (run_dir / CONFIG).is_file():
        what = f"no {CONFIG} there" if run_dir.is_dir() else "no such directory"
        if run_dir.exists() and not run_dir.is_dir():
            what = "a file"
        raise UsageError(
            f"{flag} {run_dir}: {what}; expected a finished run directory (results/runs/<run-id>)"
        )
    if not (run_dir / MODEL).is_file():
        status, message = read_status(run_dir)
        if status != "complete":
            resume = f"resume it with `{resume_command(run_dir)}`"
            on = {
                "failed": f": {message}" if message else "",  # why, and whether a resume would do
                "running": f"; if its process was killed, {resume}",  # else it trains now
            }.get(status, f"; {resume}")
            raise UsageError(
                f"{flag} {run_dir}: no {MODEL}: the run is not finished (status: {status}){on}"
            )
        again = f"`python -m benchmark run --config {shlex.quote(str(run_dir / CONFIG))}`"
        kept = sorted(p.parent for p in run_dir.parent.glob(f"*/{MODEL}") if p.is_file())
        beside = f": {', '.join(map(str, kept))}" if 0 < len(kept) <= 3 else ", see the README"
        why = f"git keeps only the reference model's{beside}" if committed(run_dir) else ""
        raise UsageError(
            f"{flag} {run_dir}: no {MODEL}: the run is complete but its weights are not here "
            f"({why or 'removed, or not copied with the run'}); train it again with {again}"
        )


def committed(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a committed run (git keeps the reference run's weights only): in
    the repository's results/runs and, where git can tell (not in a copy without .git), tracked."""
    if Path(run_dir).resolve().parent != Path(__file__).resolve().parents[1] / "results" / RUNS:
        return False
    try:
        done = subprocess.run(
            ["git", "ls-files", "--error-unmatch", CONFIG], cwd=run_dir, capture_output=True
        )
    except OSError:  # no git: a copy of the repository, its runs as it shipped them
        return True
    return done.returncode != 1  # 1: not tracked; 128: no repository here, or one git refuses
