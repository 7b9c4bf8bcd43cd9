"""Training runs: start one in a fresh run directory, train it with a checkpoint after every
epoch, resume it, finish it, and load its model back. The directory's format (file names,
writers, readers) is ``benchmark.rundir``'s.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from architectures import DigitSumModel, check_model, create_model, split_overrides
from benchmark import files, plugins
from benchmark.bench import model_cost
from benchmark.config import MNIST_TRAIN_IMAGES, TrainConfig
from benchmark.data import DigitSumData
from benchmark.errors import DamagedFileError, TrainingFailed, UsageError, WriteFailed
from benchmark.hardware import Execution, cpu_features, git_commit, versions
from benchmark.rundir import (
    CHECKPOINT,
    CONFIG,
    METRICS,
    MODEL,
    claimed,
    config_values,
    metrics_record,
    new_run_dir,
    resume_command,
    signals_deferred,
    write_config,
    write_history,
    write_status,
    write_status_if_possible,
)
from benchmark.trackers import open_tracker
from benchmark.trainer import (
    Listener,
    Progress,
    TrainState,
    build_state,
    final_evaluation,
    train,
)
from benchmark.wording import plural


def save_checkpoint(run_dir: Path, state: TrainState) -> None:
    """checkpoint.pt, then history.csv, with signals held between them; a kill between the
    two renames (SIGKILL cannot be held) is mended by ``resume_state``."""
    with signals_deferred():
        files.save_torch(run_dir / CHECKPOINT, state.state_dict())
        write_history(run_dir, [h.row() for h in state.history])


def load_config(run_dir: Path, dry_run: bool = True) -> TrainConfig:
    """The run's saved config, checked as the command line's is (field types and ranges, model
    names and arguments): a damaged or edited config.json is one line naming it.

    ``dry_run=False`` leaves out the model's meta-device dry run (``check_model``), for a caller
    that builds the model for real at once (``load_run``): meta kernels import torch._dynamo,
    2-3 s that ``predict`` does not otherwise need."""
    path = Path(run_dir) / CONFIG
    values = config_values(run_dir)
    plugins.load_recorded(values, path)  # the plug-ins its model came from, before its names
    try:
        cfg = TrainConfig.from_dict(values)
        cfg.validate()
        split_overrides(cfg.arch, cfg.fusion, cfg.model_args)  # names, values: no model built
        if dry_run:
            check_model(cfg.arch, cfg.fusion, cfg.model_args)
    except (TypeError, ValueError) as exc:  # UnknownNameError is a ValueError
        raise refused(path, values, exc) from None
    if missing := [k for k in ("arch", "fusion", "model_args") if k not in values]:
        # every config.json a run writes has them; without, the defaults' model would be built
        # and its weights blamed
        raise DamagedFileError(f"{path}: lacks {', '.join(missing)}, which name the run's model")
    return cfg


def refused(path: Path, values: dict[str, Any], exc: Exception) -> Exception:
    """What to raise for a config.json whose model cannot be built now: a usage error where a
    plug-in it records has changed since (an entry or hyperparameter renamed), the file's
    damage otherwise."""
    if changed := plugins.changed_since(values, path):
        return UsageError(
            f"{path}: {exc}, but plug-in {', '.join(changed)} has changed since the run "
            f"{the_code_asked(path)}"
        )
    return DamagedFileError(f"{path}: {exc}")


def the_code_asked(path: Path) -> str:
    """The end of a message that blames a plug-in changed since the run for ``path`` (its
    config.json or model.pt) not fitting: what to give, and when the file is to blame."""
    return (
        "(sha256 above); give the code the run was trained with (if it is that code, "
        f"{path.name} is damaged)"
    )


def execute(
    cfg: TrainConfig,
    data: DigitSumData,
    run_dir: Path,
    ex: Execution,
    state: TrainState | None = None,
    listen: Listener | None = None,
) -> dict[str, Any]:
    """Train in ``run_dir`` as ``ex`` says (``cfg`` as ``start_run`` wrote it) with a checkpoint
    after every epoch, then the test-set evaluation, model.pt and metrics.json; returns the
    metrics. ``listen`` gets the trainer's progress stream, each epoch's event after its
    checkpoint is written; ``cfg.log`` names a tracker that mirrors it (``benchmark.trackers``).

    Interrupts and divergence leave the last checkpoint and history valid and the status marked;
    the exception is re-raised for the caller to turn into an exit status.
    """
    with claimed(run_dir):
        return _execute(cfg, data, run_dir, ex, state, listen)


def _execute(
    cfg: TrainConfig,
    data: DigitSumData,
    run_dir: Path,
    ex: Execution,
    state: TrainState | None,
    listen: Listener | None,
) -> dict[str, Any]:
    tracker = open_tracker(cfg, run_dir)

    def heard(event: Progress) -> None:
        if event.state is not None:
            save_checkpoint(run_dir, event.state)
        tracker.listen(event)
        if listen is not None:
            listen(event)

    status, told = "failed", False  # told: the tracker has heard the metrics
    commit = git_commit()  # now: files edited during training are not the code that ran
    try:  # marked running inside the try: a signal landing as the mark returns is handled
        write_status(run_dir, "running")  # from here: interrupted on a signal
        cost = model_cost(cfg.arch, cfg.fusion, cfg.model_args)  # (params, MACs per image)
        # no step events unless someone listens: each one syncs the device
        every = 25 if listen is not None or cfg.log != "none" else None
        state = train(cfg, data, ex, state=state, listen=heard, step_every=every)
        val, test, weights = final_evaluation(state.model, data, ex, cfg)
        images = cfg.steps_per_epoch(len(data.train)) * cfg.batch_size * cfg.epochs
        figures = {
            "params": cost[0],
            "macs_per_image": cost[1],  # what the report shows
            "epochs": cfg.epochs,
            "train_seconds": state.train_seconds,
            "compile_seconds": state.compile_seconds,
            "train_images_per_s": images / state.train_seconds if state.train_seconds else None,
            "device": ex.timing_name(),
            # what tells apart CPUs of one name (VMs): the report never pools their timings
            **({"cpu_features": cpu_features()} if ex.device.type == "cpu" else {}),
            "precision": ex.precision,  # fp32 or bf16
            "channels_last": ex.channels_last,
            "versions": versions(),
            "git_commit": commit,
            "data": data.source,  # which MNIST copy: how it was found and its files' MD5
        }
        metrics = metrics_record(run_dir.name, cfg, figures, val, test)
        with signals_deferred():
            files.save_torch(run_dir / MODEL, weights)
            files.write_json(run_dir / METRICS, metrics)
            write_status(run_dir, "complete")
            if not cfg.keep_checkpoint:  # complete: nothing resumes it, the weights are model.pt
                (run_dir / CHECKPOINT).unlink(missing_ok=True)
        status = "complete"
        with signals_deferred():  # the tracker hears the whole run or none of it
            tracker.finish(metrics, run_dir)
            told = True
        return metrics
    # The status below is written if the disk allows; the error raised never depends on it.
    except KeyboardInterrupt:
        if (run_dir / METRICS).exists():  # it came as the run's files closed: the run is
            status = "complete"  # complete, and its tracker is told so, not "interrupted"
            if not told:
                with signals_deferred():
                    tracker.finish(metrics, run_dir)
            raise
        status = "interrupted"
        resume = resume_command(run_dir)
        write_status_if_possible(
            run_dir, "interrupted", f"stopped by a signal; resume with `{resume}`"
        )
        raise
    except (torch.OutOfMemoryError, MemoryError) as exc:
        write_status_if_possible(run_dir, "failed", f"{type(exc).__name__}: out of memory")
        raise TrainingFailed(
            f"out of memory ({type(exc).__name__}); try a smaller --batch-size or model"
        ) from None
    except WriteFailed as exc:  # no space, read-only, ...: the last checkpoint is intact
        hint = f"once fixed, resume with `{resume_command(run_dir)}`"
        write_status_if_possible(run_dir, "failed", f"{exc}; {hint}")
        raise WriteFailed(exc.filename, exc, hint) from None
    except Exception as exc:  # divergence (NonFiniteLossError), ...
        write_status_if_possible(run_dir, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        tracker.close(status)


def start_run(cfg: TrainConfig, results_dir: Path) -> Path:
    """A new run directory holding ``cfg``, as ``hardware.decide`` resolved it."""
    run_dir = new_run_dir(results_dir, cfg)
    write_config(run_dir, cfg)
    write_status(run_dir, "created")
    return run_dir


def resume_state(run_dir: Path, cfg: TrainConfig, ex: Execution) -> TrainState | None:
    """The state saved at the end of the last finished epoch, or None if no epoch finished."""
    ckpt = Path(run_dir) / CHECKPOINT
    state = build_state(cfg, ex)
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
    # MNIST's count, before the data loads: load_mnist refuses files of other sizes
    if not 0 <= epochs <= cfg.epochs or state.step != epochs * cfg.steps_per_epoch(
        MNIST_TRAIN_IMAGES
    ):
        raise files.UnreadableFileError(
            f"{ckpt}: step {state.step} after {plural(epochs, 'epoch')} does not fit this run's "
            "config"
        )
    # history.csv again from the checkpoint's: a kill after the checkpoint's rename and before
    # history.csv's left it an epoch short, which no later epoch would mend after the last one
    write_history(run_dir, [h.row() for h in state.history])
    return state


def resume_point(state: TrainState | None, epochs: int) -> str:
    """Where a resume starts, as ``run --resume`` and ``compare`` say it: a run stopped in its
    final evaluation read "at epoch 2" of 1."""
    if state is None:
        return "from epoch 1"
    done = len(state.history)
    return f"at epoch {done + 1}" if done < epochs else "after its last epoch, at the evaluation"


def load_run(run_dir: str | os.PathLike[str]) -> DigitSumModel:
    """The trained model of a finished run, in eval mode on the CPU (weights loaded safely)."""
    run_dir = Path(run_dir)
    if not (run_dir / MODEL).exists():
        raise FileNotFoundError(f"{run_dir / MODEL} not found: is {run_dir} a finished run?")
    cfg = load_config(run_dir, dry_run=False)
    try:
        model = create_model(cfg.arch, cfg.fusion, **cfg.model_args)
    except (TypeError, ValueError) as exc:  # names and values: what the dry run would refuse
        raise refused(run_dir / CONFIG, config_values(run_dir), exc) from None
    saved = files.load_torch(run_dir / MODEL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as in resume_state
            model.load_state_dict(saved)
    except Exception as exc:  # noqa: BLE001 - a list, a foreign model's weights, ...: all one
        changed = plugins.changed_since(config_values(run_dir), run_dir / CONFIG)
        if changed and isinstance(exc, RuntimeError):  # keys or shapes: the model built now
            raise UsageError(
                f"{run_dir / MODEL}: not weights of {cfg.arch} x {cfg.fusion} as plug-in "
                f"{', '.join(changed)} builds it now: its code changed since the run "
                f"{the_code_asked(run_dir / MODEL)}"
            ) from None
        raise files.UnreadableFileError(
            f"{run_dir / MODEL}: not weights of {cfg.arch} x {cfg.fusion} ({type(exc).__name__})"
        ) from None
    # a finished run's parameters are finite (training stops on a non-finite loss): NaN ones
    # predicted digit 0 at p nan, and exported, without a word. A buffer may hold -inf (a
    # plug-in's mask), never NaN.
    named = [(n, t, torch.isfinite) for n, t in model.named_parameters()]
    named += [(n, t, lambda t: ~torch.isnan(t)) for n, t in model.named_buffers()]
    for name, tensor, sound in named:
        if tensor.is_floating_point() and not bool(sound(tensor).all()):
            raise files.UnreadableFileError(f"{run_dir / MODEL}: {name} holds NaN or inf")
    return model.eval()


def guessing(run_dir: Path, then: str) -> str | None:
    """The warning line for a finished run that learned nothing, as ``run`` and the report call
    it (``predict`` and ``export`` print it: its guesses look as sure as any model's), or None;
    ``then``: what follows for the command."""
    from benchmark.metrics import CHANCE, CHANCE_NOTE
    from benchmark.rundir import IncompleteRun, read_metrics

    try:
        digit_acc = read_metrics(run_dir)["test"]["digit_acc"]
    except IncompleteRun:  # weights without readable metrics: nothing to judge by
        return None
    if digit_acc >= CHANCE_NOTE:
        return None
    return (
        f"warning: this run's test digit accuracy is {digit_acc:.1%}, {CHANCE}: it learned "
        f"nothing, and {then}\n"
    )
