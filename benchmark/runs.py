"""Run directories: what one training run writes, how it is resumed, and how it is loaded back.

Layout of ``<results>/runs/<run-id>/``: ``config.json`` (resolved config), ``status.json``
(running / complete / interrupted / failed), ``history.csv`` (one row per finished epoch),
``checkpoint.pt`` (end of the last finished epoch), then ``metrics.json`` and ``model.pt`` when the
run completes. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from architectures import DigitSumModel, check_model, count_params, create_model
from benchmark import files, hardware, metrics
from benchmark.config import MNIST_TRAIN_IMAGES, TrainConfig
from benchmark.data import DigitSumData
from benchmark.errors import DamagedFileError, TrainingFailed, UsageError
from benchmark.files import read_json, slug
from benchmark.hardware import device_name, git_commit, resolve_channels_last, versions
from benchmark.holdout import heldout_mask, holdout_pairs
from benchmark.trackers import open_tracker
from benchmark.trainer import EpochStats, TrainState, build_state, evaluate, train

CONFIG = "config.json"
STATUS = "status.json"
HISTORY = "history.csv"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
MODEL = "model.pt"


def new_run_dir(results_dir: Path, cfg: TrainConfig) -> Path:
    """A fresh directory; ``mkdir(exist_ok=False)`` plus a random token: never shared."""
    runs = Path(results_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    while True:
        name = f"{stamp}-{slug(cfg.arch)}-{cfg.fusion}-s{cfg.seed}-{secrets.token_hex(3)}"
        try:
            (runs / name).mkdir()
            return runs / name
        except FileExistsError:
            continue


def write_status(run_dir: Path, status: str, message: str = "", **extra: Any) -> None:
    files.write_json(
        run_dir / STATUS, {"status": status, "message": message, "time": time.time(), **extra}
    )


def write_history(run_dir: Path, history: list[EpochStats]) -> None:
    buf = io.StringIO()
    rows = [stats.row() for stats in history]
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    files.write_text(run_dir / HISTORY, buf.getvalue())


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until a group of writes is done, so the files always agree.

    Each file is atomic on its own; this keeps e.g. checkpoint.pt and history.csv at the same
    epoch. A signal that arrives meanwhile is re-raised at the end (main thread only).
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
        for sig in caught:
            signal.raise_signal(sig)


LOCK = ".lock"
_held: dict[Path, int] = {}  # lock files this process holds (claims nest within one process)


@contextmanager
def claimed(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` exclusively while training it: an ``flock`` on its lock file, which the
    kernel releases when the process ends however it ends, so a dead owner (or a reused pid)
    never blocks a resume, and of two resumes started at once exactly one gets it."""
    import fcntl

    path = (Path(run_dir) / LOCK).resolve()
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
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    _held[path] = fd
    files.remove_temporaries(run_dir)  # ours, left by a writer killed mid-write: stale now
    try:
        yield
    finally:
        del _held[path]
        os.close(fd)  # releases the lock


def save_checkpoint(run_dir: Path, state: TrainState) -> None:
    with signals_deferred():
        files.save_torch(run_dir / CHECKPOINT, state.state_dict())
        write_history(run_dir, state.history)


def load_config(run_dir: Path) -> TrainConfig:
    """The run's saved config, checked as the command line's is (field types and ranges, model
    names and arguments): a damaged or edited config.json is one line naming it."""
    path = Path(run_dir) / CONFIG
    try:
        values = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise DamagedFileError(f"{path}: unreadable ({reason})") from None
    if not isinstance(values, dict):
        raise DamagedFileError(f"{path}: expected an object of config fields")
    try:
        cfg = TrainConfig.from_dict(values)
        cfg.validate()
        check_model(cfg.arch, cfg.fusion, cfg.model_args)
    except (TypeError, ValueError) as exc:  # UnknownNameError is a ValueError
        raise DamagedFileError(f"{path}: {exc}") from None
    return cfg


def finish(
    run_dir: Path, cfg: TrainConfig, state: TrainState, data: DigitSumData, commit: str | None
) -> dict[str, Any]:
    """Test-set evaluation (the only place it happens), then metrics.json and model.pt;
    ``commit`` is the checkout's as training started (what the imported code came from)."""
    model = state.model
    device = next(model.parameters()).device
    cl = resolve_channels_last(cfg.channels_last, device, cfg.precision)
    held = heldout_mask(cfg.holdout_pairs) if cfg.holdout_pairs else None
    val = evaluate(model, data.val, cfg.eval_batch_size, cfg.precision, cl, heldout=held)
    test = evaluate(
        model, data.test, cfg.eval_batch_size, cfg.precision, cl, by_class=True, heldout=held
    )
    images = cfg.steps_per_epoch(len(data.train)) * cfg.batch_size * cfg.epochs
    metrics = {
        "run_id": run_dir.name,
        "arch": cfg.arch,
        "fusion": cfg.fusion,
        "seed": cfg.seed,
        "params": count_params(model),
        "epochs": cfg.epochs,
        "train_seconds": state.train_seconds,
        "compile_seconds": state.compile_seconds,
        "train_images_per_s": images / state.train_seconds if state.train_seconds else None,
        "device": device_name(device),
        "precision": cfg.precision,  # resolved by execute: fp32 or bf16
        "channels_last": cfg.channels_last,
        "versions": versions(),
        "git_commit": commit,
        "config_hash": cfg.config_hash(),
        "data": data.source,  # which MNIST copy: how it was found and its files' MD5
        "tuned": cfg.tuned_from is not None,
        "config": cfg.to_dict(),
        "val": val,
        "test": test,
    }
    if held is not None:  # val/test stay all-pair figures; seen and held-out pairs apart
        metrics["holdout_pairs"] = [list(pair) for pair in holdout_pairs(cfg.holdout_pairs)]
        for name, split in (("val", val), ("test", test)):
            metrics[f"{name}_seen"] = split.pop("seen")
            metrics[f"{name}_heldout"] = split.pop("heldout")
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with signals_deferred():
        files.save_torch(run_dir / MODEL, state_dict)
        files.write_json(run_dir / METRICS, metrics)
        write_status(run_dir, "complete")
    return metrics


def execute(
    cfg: TrainConfig,
    data: DigitSumData,
    run_dir: Path,
    state: TrainState | None = None,
    on_step: Callable[[int, int, float, float], None] | None = None,
    on_epoch: Callable[[TrainState, EpochStats], None] | None = None,
) -> dict[str, Any]:
    """Train in ``run_dir`` with a checkpoint after every epoch; returns the metrics.

    Interrupts and divergence leave the last checkpoint and history valid and the status marked;
    the exception is re-raised for the caller to turn into an exit status. ``cfg.log`` names
    a tracker that mirrors the run (``benchmark.trackers``).
    """
    done = [len(state.history) if state is not None else 0]  # epochs finished

    def step_done(i: int, n: int, loss: float, acc: float) -> None:
        tracker.step(done[0] * n + i, loss, acc)
        if on_step is not None:
            on_step(i, n, loss, acc)

    def epoch_done(st: TrainState, stats: EpochStats) -> None:
        save_checkpoint(run_dir, st)
        done[0] = stats.epoch
        tracker.epoch(stats.epoch, stats.val, stats.lr)
        if on_epoch is not None:
            on_epoch(st, stats)

    cfg = hardware.resolve_execution(cfg, data.train.images.device)  # as start_run wrote it
    with claimed(run_dir):
        tracker = open_tracker(cfg, run_dir)
        status = "failed"
        try:
            # no per-step callback unless someone listens: each call syncs the device
            steps = step_done if on_step is not None or cfg.log != "none" else None
            metrics = _execute(cfg, data, run_dir, state, epoch_done, steps)
            tracker.finish(metrics, run_dir)
            status = "complete"
            return metrics
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            tracker.close(status)


def _execute(
    cfg: TrainConfig,
    data: DigitSumData,
    run_dir: Path,
    state: TrainState | None,
    epoch_done: Callable[[TrainState, EpochStats], None],
    on_step: Callable[..., None] | None,
) -> dict[str, Any]:
    commit = git_commit()  # now: files edited during training are not the code that ran
    write_status(run_dir, "running", pid=os.getpid())  # from here a signal marks it interrupted
    try:
        state = train(cfg, data, state=state, on_epoch=epoch_done, on_step=on_step)
        return finish(run_dir, cfg, state, data, commit)
    except KeyboardInterrupt:
        if not (run_dir / METRICS).exists():  # else it came after the run had completed
            resume = f"python -m benchmark run --resume {run_dir}"
            write_status(run_dir, "interrupted", f"stopped by a signal; resume with `{resume}`")
        raise
    except (torch.OutOfMemoryError, MemoryError) as exc:
        write_status(run_dir, "failed", f"{type(exc).__name__}: out of memory")
        raise TrainingFailed(
            f"out of memory ({type(exc).__name__}); try a smaller --batch-size or model"
        ) from None
    except Exception as exc:  # divergence (NonFiniteLossError), ...
        write_status(run_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise


def completed_anyway(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a run that completed although a signal came (it arrived while the run's
    files closed): the caller treats the run as done, not interrupted. None if not complete."""
    try:
        return read_metrics(run_dir)
    except IncompleteRun:
        return None


def start_run(cfg: TrainConfig, results_dir: Path) -> Path:
    """A new run directory holding the config (execution resolved on its device)."""
    run_dir = new_run_dir(results_dir, cfg)
    cfg = hardware.resolve_execution(cfg, hardware.resolve_device(cfg.device))
    files.write_json(run_dir / CONFIG, cfg.to_dict())
    write_status(run_dir, "created")
    return run_dir


def resume_state(run_dir: Path, cfg: TrainConfig, device: torch.device) -> TrainState | None:
    """The state saved at the end of the last finished epoch, or None if no epoch finished."""
    ckpt = Path(run_dir) / CHECKPOINT
    state = build_state(cfg, device)
    if not ckpt.exists():
        return None
    saved = files.load_torch(ckpt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notices about odd content: a second line
            state.load_state_dict(saved)
    except Exception as exc:  # noqa: BLE001 - any shape of wrong content means the same
        raise files.UnreadableFileError(
            f"{ckpt}: not a checkpoint of this run ({type(exc).__name__})"
        ) from None
    epochs = len(state.history)  # saved at the end of an epoch: step and history agree
    if not 0 <= epochs <= cfg.epochs or state.step != epochs * cfg.steps_per_epoch(
        MNIST_TRAIN_IMAGES
    ):
        raise files.UnreadableFileError(
            f"{ckpt}: step {state.step} after {epochs} epoch(s) does not fit this run's config"
        )
    return state


def check_finished(run_dir: Path, flag: str) -> None:
    """A usage error unless ``run_dir`` is a run directory holding trained weights; says which
    file is missing (weights are committed only for the reference runs)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise UsageError(
            f"{flag} {run_dir}: no {CONFIG} there; expected a finished run directory "
            f"(results/runs/<run-id>)"
        )
    if not (run_dir / MODEL).is_file():
        status, _ = read_status(run_dir)
        why = (
            "the run is complete but its weights are not here (git keeps only the reference "
            "model's, see the README; train this one again with `python -m benchmark run "
            f"--config {run_dir / CONFIG}`)"
            if status == "complete"
            else f"the run is not finished (status: {status})"
        )
        raise UsageError(f"{flag} {run_dir}: no {MODEL}: {why}")


def load_run(run_dir: str | os.PathLike[str]) -> DigitSumModel:
    """The trained model of a finished run, in eval mode on the CPU (weights loaded safely)."""
    run_dir = Path(run_dir)
    if not (run_dir / MODEL).exists():
        raise FileNotFoundError(f"{run_dir / MODEL} not found: is {run_dir} a finished run?")
    cfg = load_config(run_dir)
    model = create_model(cfg.arch, cfg.fusion, **cfg.model_args)
    saved = files.load_torch(run_dir / MODEL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in resume_state
            model.load_state_dict(saved)
    except Exception as exc:  # noqa: BLE001 - a list, a foreign model's weights, ...: all one
        raise files.UnreadableFileError(
            f"{run_dir / MODEL}: not weights of {cfg.arch} x {cfg.fusion} ({type(exc).__name__})"
        ) from None
    return model.eval()


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
    bad += [k for k, kind in OPTIONAL_SHAPES.items() if not isinstance(found.get(k, kind()), kind)]
    if "test_heldout" in found and not isinstance(files.lookup(found, "config.holdout_pairs"), int):
        bad.append("config.holdout_pairs")
    if bad:
        raise IncompleteRun(f"corrupt {METRICS}: missing or invalid {', '.join(bad)}")
    return found


def run_precision(found: dict[str, Any]) -> str:
    """fp32 or bf16 as a run's metrics record it; for runs from before that was recorded, their
    config's, with ``auto`` read by the rule of the time (bf16 on CUDA only)."""
    recorded = found.get("precision") or files.lookup(found, "config.precision")
    if recorded in ("fp32", "bf16"):
        return recorded
    return "fp32" if str(found.get("device", "")).startswith("cpu") else "bf16"


def read_status(run_dir: Path) -> tuple[str, str]:
    """(status, message) from status.json; ``missing`` / ``unreadable`` when it cannot be read."""
    path = Path(run_dir) / STATUS
    if not path.exists():
        return "missing", ""
    try:
        status = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError):
        return "unreadable", ""
    if not isinstance(status, dict) or not isinstance(status.get("status"), str):
        return "unreadable", ""
    return status["status"], str(status.get("message") or "")


def read_history(run_dir: Path) -> list[dict[str, float]] | None:
    """history.csv as rows of numbers, or None when it is absent, lacks the epoch and validation
    sum columns, or holds a value that is not a number (a damaged file never stops a report)."""
    try:
        with (Path(run_dir) / HISTORY).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        numbers = [{k: float(v) for k, v in row.items()} for row in rows]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error):
        return None
    if not rows or not {"epoch", "val_sum_acc"} <= set(rows[0]):
        return None
    return numbers
