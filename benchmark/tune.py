"""``python -m benchmark tune``: Optuna search over one encoder x fusion's hyperparameters.

The search space is declared next to what it tunes: each registry entry's ``search_space``
(model arguments) and ``config.search_space`` (training settings). A study lives in an Optuna
storage (default ``<results>/optuna.db``), so an interrupted tune continues where it stopped and
several processes or machines can share one study. Trials train in memory and write nothing but
the study; the best trial is exported to ``<results>/tuned/<arch>__<fusion>.json`` for
``run --tuned``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.connection
import os
import socket
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from benchmark import files
from benchmark.config import BATCH_SIZES, DEVICES, TrainConfig, search_space

DB_NAME = "optuna.db"
TUNED_DIR = "tuned"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what --trials counts
SQLITE_TIMEOUT_S = 60  # wait this long for another process's write lock instead of failing
POLL_S = 2.0  # how often the parent refreshes the progress while worker processes run
PRUNERS = ("median", "hyperband")


# ------------------------------------------------------------------------------ search space


def suggest(trial: optuna.Trial | FixedTrial, arch: str, fusion: str) -> tuple[dict, dict]:
    """One point of the joint space: (model_args for ``create_model``, TrainConfig overrides)."""
    from architectures import ENCODERS, FUSIONS

    model_args: dict[str, Any] = {}
    for entry in (ENCODERS.get(arch), FUSIONS.get(fusion)):
        if entry.search_space is not None:
            model_args.update(entry.search_space(trial))
    return model_args, search_space(trial)


def default_params(arch: str, fusion: str) -> dict[str, Any]:
    """The registry and TrainConfig defaults of every searched parameter (the first trial).

    Found by running the search spaces on a ``FixedTrial`` of all defaults, so a searched name
    without a default fails here, loudly, rather than silently tuning from a random start.
    """
    from architectures import ENCODERS, FUSIONS

    values = {
        **TrainConfig().to_dict(),
        **ENCODERS.get(arch).defaults,
        **FUSIONS.get(fusion).defaults,
    }
    fixed = FixedTrial(values)
    suggest(fixed, arch, fusion)
    return fixed.params


def split_params(params: dict[str, Any], arch: str, fusion: str) -> tuple[dict, dict]:
    """A trial's flat params -> (model_args, TrainConfig overrides), as the trial used them."""
    return suggest(FixedTrial(params), arch, fusion)


# ----------------------------------------------------------------------------------- storage


def open_storage(spec: str) -> BaseStorage:
    """``--storage`` text -> an Optuna storage.

    ``journal:PATH`` or ``PATH.log``: an append-only journal file (safe for several processes,
    also on NFS). Anything else must be an SQLAlchemy URL; SQLite gets a long lock timeout so that
    concurrent workers wait for each other instead of failing with "database is locked".
    """
    from sqlalchemy.exc import SQLAlchemyError

    from benchmark.cli import UsageError

    if spec.startswith("journal:") or spec.endswith(".log"):
        path = Path(spec.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in spec:
        raise UsageError(
            f"--storage {spec!r}: expected an SQLAlchemy URL (sqlite:///PATH, "
            f"postgresql+psycopg2://USER@HOST/DB) or a journal file (journal:PATH or PATH.log)"
        )
    engine_kwargs: dict[str, Any] = {}
    if spec.startswith("sqlite:///"):
        Path(spec.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    try:
        return RDBStorage(spec, engine_kwargs=engine_kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--storage {storage_label(spec)}: cannot open it: {first}") from None


def storage_label(spec: str) -> str:
    """The storage as it may be written to files and screens: a password masked."""
    if "://" not in spec:
        return spec
    from sqlalchemy.engine import make_url

    url = make_url(spec)
    return spec if url.password is None else url.render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------ studies


def study_name(cfg: TrainConfig, val_subset: int | None) -> str:
    """``<arch>__<fusion>__e<epochs>`` (+ ``__n<train>``, ``__v<val>`` when subsets are used).

    The budget is part of the name because values measured at different budgets are not
    comparable: a tune with another budget starts its own study instead of polluting this one.
    """
    name = f"{cfg.arch}__{cfg.fusion}__e{cfg.epochs}"
    if cfg.train_subset is not None:
        name += f"__n{cfg.train_subset}"
    if val_subset is not None:
        name += f"__v{val_subset}"
    if cfg.holdout_pairs:
        name += f"__k{cfg.holdout_pairs}"
    return name


def budget(cfg: TrainConfig, val_subset: int | None) -> dict[str, Any]:
    return {
        "arch": cfg.arch,
        "fusion": cfg.fusion,
        "epochs": cfg.epochs,
        "train_subset": cfg.train_subset,
        "val_subset": val_subset,
        "holdout_pairs": cfg.holdout_pairs,
    }


def open_study(
    storage: BaseStorage, name: str, cfg: TrainConfig, val_subset: int | None
) -> optuna.Study:
    """Create or load the study; enqueue the defaults unless a live trial already holds them."""
    from benchmark.cli import UsageError

    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True
    )
    wanted = budget(cfg, val_subset)
    found = study.user_attrs.get("budget")
    if found is None:
        study.set_user_attr("budget", wanted)
    elif found != wanted:
        raise UsageError(
            f"study {name!r} was tuned with {found}, not {wanted}; "
            f"give the same settings or another --study NAME"
        )
    live = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    held = study.get_trials(deepcopy=False, states=live)
    if not any(t.user_attrs.get("defaults") for t in held):
        study.enqueue_trial(default_params(cfg.arch, cfg.fusion), user_attrs={"defaults": True})
    return study


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.MedianPruner(n_startup_trials=5)


def sampler_seed(seed: int, trials_before: int, worker: int) -> int:
    """Distinct per worker and per session: a resumed study must not replay the same draws."""
    return int(np.random.SeedSequence([seed, trials_before, worker]).generate_state(1)[0])


# ------------------------------------------------------------------------------------ workers


@dataclass(frozen=True)
class WorkerSpec:
    """What one worker needs to join a study; plain values, as it crosses a process spawn."""

    storage: str
    study: str
    base: dict[str, Any]  # TrainConfig of the budget: arch, fusion, epochs, seed, subsets
    val_subset: int | None
    trials: int  # finished trials wanted in the study, all workers and sessions together
    timeout: float | None
    pruner: str
    seed: int  # the sampler's, see sampler_seed
    threads: int | None = None


def load_data(cfg: TrainConfig, val_subset: int | None) -> Any:
    """MNIST on the training device, the validation split cut to ``val_subset`` images."""
    from benchmark.data import load_mnist
    from benchmark.trainer import resolve_device

    data = load_mnist(cfg.data_dir).to(resolve_device(cfg.device))
    return replace(data, val=data.val.subset(val_subset))


def objective(trial: optuna.Trial, base: TrainConfig, data: Any) -> float:
    """Train one suggestion; validation joint accuracy after the last epoch (never the test set).

    Reports after every epoch so the pruner can stop a poor trial early; a trial that diverges is
    pruned (it finished, badly) rather than failed, so it counts towards ``--trials``.
    """
    from architectures import count_params
    from benchmark.trainer import NonFiniteLossError, build_state, train

    model_args, overrides = suggest(trial, base.arch, base.fusion)
    cfg = replace(base, model_args=model_args, **overrides)
    cfg.validate()
    state = build_state(cfg, data.train.images.device)
    trial.set_user_attr("params", count_params(state.model))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

    def on_epoch(st: Any, stats: Any) -> None:
        trial.set_user_attr("train_seconds", st.train_seconds)
        trial.set_user_attr("images_per_s", st.step * cfg.batch_size / st.train_seconds)
        trial.report(stats.val_joint_acc, stats.epoch)
        if stats.epoch < cfg.epochs and trial.should_prune():  # a finished trial is complete
            raise optuna.TrialPruned(f"pruned after epoch {stats.epoch}")

    try:
        train(cfg, data, state=state, on_epoch=on_epoch)
    except NonFiniteLossError as exc:
        trial.set_user_attr("diverged", str(exc))
        raise optuna.TrialPruned(str(exc)) from None
    return state.history[-1].val_joint_acc


def run_worker(
    spec: WorkerSpec,
    data: Any = None,
    on_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None,
) -> None:
    """Run trials until the study holds ``spec.trials`` finished ones (or the timeout)."""
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    base = TrainConfig.from_dict(spec.base)
    study = optuna.load_study(
        study_name=spec.study,
        storage=open_storage(spec.storage),
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        pruner=make_pruner(spec.pruner, base.epochs),
    )
    if finished_count(study) >= spec.trials:  # other workers got there first
        return
    data = data if data is not None else load_data(base, spec.val_subset)
    callbacks = [MaxTrialsCallback(spec.trials, states=FINISHED)]
    if on_trial is not None:
        callbacks.append(on_trial)
    study.optimize(
        lambda trial: objective(trial, base, data), timeout=spec.timeout, callbacks=callbacks
    )


def worker_main(spec: WorkerSpec) -> None:
    """Entry point of a spawned worker: an interrupt fails its running trial and exits quietly."""
    from benchmark.cli import interrupts_as_exceptions

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with interrupts_as_exceptions():
            run_worker(spec)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def run_workers(specs: list[WorkerSpec], refresh: Callable[[], None]) -> list[int]:
    """Start one spawned process per spec, refresh the progress until all exit; exit codes."""
    ctx = multiprocessing.get_context("spawn")  # no fork: torch and SQLAlchemy state stay apart
    procs = [ctx.Process(target=worker_main, args=(spec,)) for spec in specs]
    for proc in procs:
        proc.start()
    try:
        while any(proc.is_alive() for proc in procs):
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=POLL_S)
            refresh()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker marks its running trial failed
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return [proc.exitcode or 0 for proc in procs]


# ----------------------------------------------------------------------------------- progress


def format_params(params: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


class Tracker:
    """A study's trial counts and best value on a progress bar, and one line per finished trial."""

    def __init__(self, progress: Any, study: optuna.Study, label: str, trials: int) -> None:
        self.progress = progress
        self.study = study
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.task = progress.add_task(label, total=trials, complete=0, pruned=0, failed=0, best="-")
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """Re-read the study (other processes write to it too); usable as an Optuna callback."""
        trials = self.study.get_trials(deepcopy=False)
        counts = Counter(t.state for t in trials)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self.progress.console.print(describe(t))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value, default=None)
        self.progress.update(
            self.task,
            completed=counts[TrialState.COMPLETE] + counts[TrialState.PRUNED],
            complete=counts[TrialState.COMPLETE],
            pruned=counts[TrialState.PRUNED],
            failed=counts[TrialState.FAIL],
            best=f"{best.value:.4f} (#{best.number})" if best else "-",
        )


def describe(t: FrozenTrial) -> str:
    state = t.state.name.lower()
    if t.state == TrialState.COMPLETE:
        result = f"val joint {t.value:.4f}"
    elif t.user_attrs.get("diverged"):
        result = f"diverged: {t.user_attrs['diverged']}"
    elif t.intermediate_values:
        epoch = max(t.intermediate_values)
        result = f"val joint {t.intermediate_values[epoch]:.4f} at epoch {epoch}"
    else:
        result = "no epoch finished"
    seconds = t.duration.total_seconds() if t.duration else float("nan")
    return f"  trial {t.number} {state}: {result} ({seconds:.0f} s) {format_params(t.params)}"


def progress_bar(console: Any) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "complete {task.fields[complete]}  pruned {task.fields[pruned]}  "
            "failed {task.fields[failed]}  best {task.fields[best]}"
        ),
        TimeElapsedColumn(),
        console=console,
    )


# ------------------------------------------------------------------------------------- export


def tuned_path(results_dir: Path, arch: str, fusion: str) -> Path:
    from benchmark.runs import slug

    return Path(results_dir) / TUNED_DIR / f"{slug(arch)}__{fusion}.json"


def export_best(study: optuna.Study, storage: str, path: Path) -> dict[str, Any] | None:
    """The best complete trial, split into model_args and train overrides; None if none is."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = study.best_trial
    spent = study.user_attrs["budget"]
    model_args, train_overrides = split_params(best.params, spent["arch"], spent["fusion"])
    record = {
        "arch": spent["arch"],
        "fusion": spent["fusion"],
        "study": study.study_name,
        "storage": storage_label(storage),
        "trial": best.number,
        "value": best.value,
        "metric": "val joint_acc",
        "budget": spent,
        "finished_trials": finished_count(study),
        "model_args": model_args,
        "train": train_overrides,
        "user_attrs": best.user_attrs,
    }
    files.write_json(path, record)
    return record


def apply_tuned(cfg: TrainConfig, explicit: Collection[str], results_dir: Path) -> TrainConfig:
    """``run --tuned``: ``cfg`` with the exported best parameters, except the flags typed.

    ``explicit`` names the TrainConfig fields given on the command line; ``cfg.model_args`` holds
    the ``--model-arg`` ones. Both win over the tuned values.
    """
    from architectures import split_overrides
    from benchmark.cli import UsageError

    path = tuned_path(results_dir, cfg.arch, cfg.fusion)
    if not path.is_file():
        raise UsageError(
            f"--tuned: {path} not found; run `python -m benchmark tune --arch {cfg.arch} "
            f"--fusion {cfg.fusion} --results-dir {results_dir}` first"
        )
    try:
        tuned = json.loads(path.read_text())
        values = {
            **cfg.to_dict(),
            **{k: v for k, v in tuned["train"].items() if k not in explicit},
            "model_args": {**tuned["model_args"], **cfg.model_args},
            "tuned_from": {
                "study": tuned["study"],
                "trial": tuned["trial"],
                "value": tuned["value"],
                "file": str(path),
            },
        }
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise UsageError(f"--tuned {path}: not an export of `tune` ({exc!r})") from None
    try:
        out = TrainConfig.from_dict(values)
        out.validate()
        split_overrides(out.arch, out.fusion, out.model_args)
    except ValueError as exc:
        raise UsageError(f"--tuned {path}: {exc}") from None
    return out


# ---------------------------------------------------------------------------------- command


def tune_study(
    args: argparse.Namespace, cfg: TrainConfig, storage: BaseStorage, data: list[Any]
) -> int:
    """Bring one study to ``--trials`` finished trials, then export its best; an exit status.

    ``data`` is a one-element cache: the in-process worker loads MNIST once for every study.
    """
    from benchmark.cli import EXIT_FAILED, console

    storage_text = args.storage or default_storage(args.results_dir)
    name = args.study or study_name(cfg, args.val_subset)
    study = open_study(storage, name, cfg, args.val_subset)
    done = finished_count(study)
    console.print(
        f"{cfg.arch} x {cfg.fusion}: study {name} in {storage_label(storage_text)}, "
        f"{done} of {args.trials} trials finished"
    )
    jobs = min(args.jobs, args.trials - done)
    threads = args.threads
    if jobs > 1 and threads is None:  # share the cores instead of oversubscribing them
        threads = max(1, (os.cpu_count() or 1) // jobs)
    before = len(study.trials)
    specs = [
        WorkerSpec(
            storage=storage_text,
            study=name,
            base=cfg.to_dict(),
            val_subset=args.val_subset,
            trials=args.trials,
            timeout=args.timeout,
            pruner=args.pruner,
            seed=sampler_seed(args.seed, before, i),
            threads=threads,
        )
        for i in range(jobs)
    ]
    codes: list[int] = []
    try:
        if specs:
            with progress_bar(console) as progress:
                tracker = Tracker(progress, study, f"{cfg.arch} x {cfg.fusion}", args.trials)
                waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
                if jobs == 1 or waiting:
                    if not data:
                        data.append(load_data(cfg, args.val_subset))
                if jobs > 1 and waiting:
                    # SQLite has no row locks: two workers could pop the same queued trial (the
                    # defaults) and both tell it. Run the queued trials here, then the workers.
                    first = replace(specs[0], trials=min(args.trials, done + waiting))
                    run_worker(first, data[0], on_trial=tracker.refresh)
                if jobs > 1:
                    codes = run_workers(specs, tracker.refresh)
                else:
                    run_worker(specs[0], data[0], on_trial=tracker.refresh)
    except KeyboardInterrupt:
        console.print(
            f"interrupted: the {finished_count(study)} finished trials of study {name} are "
            f"kept; run the same command again to continue it"
        )
        raise
    if any(codes):
        console.print(f"[red]worker exit codes {codes}: see the errors above[/red]")
        return EXIT_FAILED
    path = tuned_path(Path(args.results_dir), cfg.arch, cfg.fusion)
    record = export_best(study, storage_text, path)
    if record is None:
        console.print(f"no complete trial in study {name}: nothing exported")
    else:
        console.print(
            f"best: trial {record['trial']} val joint {record['value']:.4f}; "
            f"model {format_params(record['model_args'])}; "
            f"train {format_params(record['train'])} -> {path}"
        )
    return 0


def default_storage(results_dir: str | Path) -> str:
    return f"sqlite:///{Path(results_dir) / DB_NAME}"


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune each arch x fusion in turn (Optuna TPE + pruning) and export the best parameters."""
    from architectures import ENCODERS, FUSIONS
    from benchmark.cli import UsageError, interrupts_as_exceptions
    from benchmark.data import resolve_root

    for flag, value in (("--trials", args.trials), ("--jobs", args.jobs)):
        if value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.val_subset is not None and args.val_subset < 1:
        raise UsageError(f"--val-subset must be a positive integer, got {args.val_subset}")
    if args.train_subset is not None and args.train_subset < max(BATCH_SIZES):
        raise UsageError(
            f"--train-subset must be >= {max(BATCH_SIZES)} (the largest batch size tuned), "
            f"got {args.train_subset}"
        )
    pairs = [(a, f) for a in ENCODERS.select(args.arch) for f in FUSIONS.select(args.fusion)]
    if args.study and len(pairs) > 1:
        raise UsageError("--study names one study: give one --arch and one --fusion with it")
    base = TrainConfig(
        epochs=args.epochs,
        seed=args.seed,
        train_subset=args.train_subset,
        holdout_pairs=args.holdout_pairs,
        device=args.device,
        threads=args.threads,
        data_dir=args.data_dir,
    )
    try:
        replace(base, batch_size=max(BATCH_SIZES)).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    storage = open_storage(args.storage or default_storage(args.results_dir))
    if args.jobs > 1:  # workers load MNIST themselves: find (or fetch) it once, here
        resolve_root(args.data_dir)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    data: list[Any] = []
    with interrupts_as_exceptions():
        for arch, fusion in pairs:
            status = tune_study(args, replace(base, arch=arch, fusion=fusion), storage, data)
            if status:
                return status
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="Optuna search of hyperparameters per arch x fusion",
        description=cmd_tune.__doc__,
    )
    p.add_argument(
        "--arch", default="gap_cnn", help="encoder(s): comma list, wildcards, all [gap_cnn]"
    )
    p.add_argument(
        "--fusion", default="concat", help="fusion(s): comma list, wildcards, all [concat]"
    )
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        default=40,
        help="finished (complete + pruned) trials wanted in each study, earlier sessions "
        "included: a re-run completes the remainder [40]",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="seconds after which no new trial starts (per study)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="SQLAlchemy URL (sqlite:///PATH, postgresql+psycopg2://USER@HOST/DB) or journal "
        "file (journal:PATH or PATH.log) [sqlite:///<results-dir>/optuna.db]",
    )
    p.add_argument(
        "--study", metavar="NAME", help="study name [<arch>__<fusion>__e<epochs>, see README]"
    )
    p.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="worker processes on the study [1]"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=TrainConfig.epochs,
        metavar="E",
        help="epochs per trial: the budget [4]",
    )
    p.add_argument(
        "--train-subset", type=int, metavar="N", help="train each trial on the first N images"
    )
    p.add_argument(
        "--val-subset", type=int, metavar="N", help="score each trial on N validation images"
    )
    p.add_argument(
        "--holdout-pairs",
        type=int,
        default=0,
        metavar="K",
        help="hold K (digit, addend) pairs out of training; trials are scored on seen pairs [0]",
    )
    p.add_argument(
        "--seed", type=int, default=0, metavar="S", help="training seed of every trial [0]"
    )
    p.add_argument("--pruner", choices=PRUNERS, default="median", help="[median]")
    p.add_argument(
        "--results-dir", default="results", metavar="DIR", help="optuna.db and tuned/ [results]"
    )
    p.add_argument("--device", choices=DEVICES, default="auto", help="[auto]")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads per worker [cores / jobs]")
    p.add_argument("--data-dir", metavar="DIR", help="MNIST root [$MNIST_ROOT, then ./data]")
    p.set_defaults(func=cmd_tune)
