"""Optuna tuning of one encoder x fusion: search space, storage, studies, objective, export.

The search space is declared next to what it tunes: each registry entry's ``search_space``
(model arguments) and ``config.search_space`` (training settings). A study lives in an Optuna
storage, so an interrupted tune continues where it stopped and several processes or machines can
share one study (``load_if_exists``); with an RDB storage, heartbeats fail the trial of a worker
that was killed and put it back in the queue. Trials train in memory and write nothing but the
study; the best trial is exported to ``<results>/tuned/<study>.json`` for ``run --tuned``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import socket
import time
import warnings
from collections.abc import Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from benchmark import files
from benchmark.config import TrainConfig, fields_of, search_space
from benchmark.errors import DamagedFileError, UsageError
from benchmark.trials import counts_towards_budget

DB_NAME = "optuna.db"
STORAGE_ENV = "OPTUNA_STORAGE"  # the storage URL without putting a password in argv
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
SQLITE_TIMEOUT_S = 60  # wait this long for another process's write lock instead of failing
HEARTBEAT_S = 10  # a running trial says it is alive this often (RDB storages)
GRACE_S = 40  # ... and is failed and re-queued by the next worker when silent this long
# A study's budget: values tuned at one budget (or experiment) are not comparable with another.
BUDGET_FIELDS = fields_of("budget", "experiment")


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


def storage_spec(given: str | None, results_dir: str | Path) -> str:
    """``--storage``, else ``$OPTUNA_STORAGE`` (keeps a password out of argv), else the SQLite
    file in the results directory."""
    return given or os.environ.get(STORAGE_ENV) or f"sqlite:///{Path(results_dir) / DB_NAME}"


class Storage(RDBStorage):
    """Optuna's RDB storage, two gaps closed: a trial beats from the moment it is RUNNING (a
    worker killed before its heartbeat thread started left it RUNNING for ever), and on SQLite
    (``lock_path``) an ``flock`` makes queue pops atomic (SQLite ignores FOR UPDATE)."""

    def __init__(self, url: str, lock_path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.lock_path = lock_path

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self.beat(trial_id)
        return trial_id

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        with contextlib.ExitStack() as held:
            if self.lock_path is not None:
                fcntl.flock(held.enter_context(open(self.lock_path, "a")), fcntl.LOCK_EX)
            popped = super().set_trial_state_values(trial_id, state, values)
        if popped:
            self.beat(trial_id)
        return popped

    def beat(self, trial_id: int) -> None:
        if self.heartbeat_interval is not None:
            self.record_heartbeat(trial_id)


def check_storage(spec: str) -> None:
    """Refuse a ``--storage`` that is not a URL or journal, or a file one that cannot be
    written, writing nothing: commands call it before they look for the data."""
    if spec.startswith("journal:") or spec.endswith(".log"):
        path = Path(spec.removeprefix("journal:"))
    elif "://" not in spec:
        raise UsageError(
            f"--storage {spec!r}: expected an SQLAlchemy URL (sqlite:///PATH, "
            f"postgresql+psycopg2://USER@HOST/DB) or a journal file (journal:PATH or PATH.log)"
        )
    elif spec.startswith("sqlite:///"):
        path = Path(spec.removeprefix("sqlite:///"))
    else:
        return  # a server: only connecting tells
    files.check_writable(path.parent, "--storage", storage_label(spec))


def open_storage(spec: str) -> BaseStorage:
    """``--storage`` text -> an Optuna storage.

    ``journal:PATH`` or ``PATH.log``: an append-only journal file (safe for several processes,
    also on NFS; Optuna gives journals no heartbeat, so the trial of a killed worker stays
    RUNNING there). Anything else must be an SQLAlchemy URL: RDB storages get heartbeats, and
    SQLite a long lock timeout so that concurrent workers wait instead of failing.
    """
    from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError, SQLAlchemyError

    check_storage(spec)
    if spec.startswith("journal:") or spec.endswith(".log"):
        path = Path(spec.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    storage_class: Any = Storage
    if spec.startswith("sqlite:///"):
        db = Path(spec.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
        storage_class = functools.partial(Storage, lock_path=db.with_name(db.name + ".lock"))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return storage_class(
                    spec,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and "already exists" not in str(exc):
                error = exc
                break
            # two processes creating the tables of a new storage at once: the other won
            time.sleep(1.0 + attempt)
            error = RuntimeError("tables could not be created")
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            error = exc
            break
    text = mask_secrets(str(error).strip())
    first = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, DatabaseError) and not isinstance(error, OperationalError):
        raise DamagedFileError(f"{storage_label(spec)}: damaged, cannot be read ({first})")
    raise UsageError(f"--storage {storage_label(spec)}: cannot open it: {first}") from None


@contextlib.contextmanager
def storage_errors(spec: str) -> Iterator[None]:
    """A storage that cannot be reached or read in the middle of the work (a damaged database,
    a server gone) is one line naming it, not a traceback from the database driver."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
        text = mask_secrets(str(getattr(cause, "orig", None) or cause or exc).strip())
        first = text.splitlines()[0] if text else type(exc).__name__
        raise DamagedFileError(
            f"{storage_label(spec)}: cannot read the Optuna storage ({first}); damaged or "
            f"unreachable: repair it, or give another --storage / --results-dir"
        ) from None


SECRET_KEYS = r"password|passwd|pwd|pass|secret|token|sslpassword|api_key|apikey"


def mask_secrets(text: str) -> str:
    """Every password in ``text`` masked: URL userinfo (``user:pw@``, the password escaped or
    not, even holding ``@``, ``/`` or ``?``) and query or keyword values (``password=...``).
    Where a URL is ambiguous, more is masked rather than less."""

    def url(match: re.Match[str]) -> str:
        scheme, rest = match["scheme"], match["rest"]
        at = rest.rfind("@")  # the host follows the last '@'; a password may contain one
        if at > 0 and ":" in rest[:at]:
            user = rest[: rest.index(":")]
            if "/" not in user and "@" not in user:
                rest = f"{user}:***{rest[at:]}"
            else:
                rest = f"***{rest[at:]}"
        return scheme + rest

    text = re.sub(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<rest>[^\s'\"]*)", url, text)
    return re.sub(rf"(?i)\b((?:{SECRET_KEYS})=)[^&\s'\"]+", r"\1***", text)


def storage_label(spec: str, relative_to: str | Path | None = None) -> str:
    """The storage as it may be written to files and screens: passwords masked and, given
    ``relative_to`` (the results directory), a local database or journal path relative to it."""
    if relative_to is not None:
        for prefix in ("sqlite:///", "journal:", ""):
            path = spec.removeprefix(prefix)
            if spec.startswith(prefix) and (prefix or spec.endswith(".log")):
                return prefix + os.path.relpath(path, relative_to)
    return mask_secrets(spec)


# ------------------------------------------------------------------------------------ studies


def fixed_overrides(cfg: TrainConfig) -> dict[str, Any]:
    """Settings that change what is learned, held fixed during the search, away from defaults."""
    reference = TrainConfig()
    return {
        k: getattr(cfg, k) for k in fields_of("setting") if getattr(reference, k) != getattr(cfg, k)
    }


def study_name(cfg: TrainConfig, val_subset: int | None, max_params: int | None = None) -> str:
    """``<arch>__<fusion>__e<epochs>`` (+ ``__n<train>``, ``__v<val>``, ``__k<held out>``,
    ``__p<cap>``, ``__f<hash of fixed settings>`` when used).

    The budget is part of the name because values measured at different budgets are not
    comparable: a tune with another budget starts its own study instead of polluting this one.
    """
    name = f"{files.slug(cfg.arch)}__{cfg.fusion}__e{cfg.epochs}"
    if cfg.train_subset is not None:
        name += f"__n{cfg.train_subset}"
    if val_subset is not None:
        name += f"__v{val_subset}"
    if cfg.holdout_pairs:
        name += f"__k{cfg.holdout_pairs}"
    if max_params is not None:
        name += f"__p{max_params}"
    fixed = fixed_overrides(cfg)
    if fixed:
        name += "__f" + replace(TrainConfig(), **fixed).config_hash()[:6]
    return name


def budget(cfg: TrainConfig, val_subset: int | None, max_params: int | None = None) -> dict:
    return {
        "arch": cfg.arch,
        "fusion": cfg.fusion,
        **{k: getattr(cfg, k) for k in BUDGET_FIELDS},
        "val_subset": val_subset,
        "max_params": max_params,
        "fixed": fixed_overrides(cfg),
    }


def open_study(
    storage: BaseStorage,
    name: str,
    cfg: TrainConfig,
    val_subset: int | None,
    max_params: int | None = None,
) -> optuna.Study:
    """Create or load the study; enqueue the defaults unless a live trial already holds them.

    Trials of killed workers are failed first (RDB heartbeats), so a defaults trial that never
    completed is queued again rather than counted as held.
    """
    study = optuna.create_study(
        storage=storage, study_name=name, direction="maximize", load_if_exists=True
    )
    wanted = budget(cfg, val_subset, max_params)
    found = study.user_attrs.get("budget")
    if found is None:
        study.set_user_attr("budget", wanted)
    elif {"max_params": None, "fixed": {}, **found} != wanted:  # older studies lack the two
        raise UsageError(
            f"study {name!r} was tuned with {found}, not {wanted}; "
            f"give the same settings or another --study NAME"
        )
    fail_stale(study)
    live = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    held = study.get_trials(deepcopy=False, states=live)
    if not any(t.user_attrs.get("defaults") for t in held):
        study.enqueue_trial(default_params(cfg.arch, cfg.fusion), user_attrs={"defaults": True})
    return study


def fail_stale(study: optuna.Study) -> None:
    """Fail the running trials whose worker stopped beating (RDB storages); the retry callback
    queues them again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def finished_count(study: optuna.Study) -> int:
    return sum(counts_towards_budget(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


class StopAt:
    """Optuna callback: stop when the study holds ``trials`` finished trials (all workers)."""

    def __init__(self, trials: int) -> None:
        self.trials = trials

    def __call__(self, study: optuna.Study, _: FrozenTrial) -> None:
        if finished_count(study) >= self.trials:
            study.stop()


def sampler(seed: int, trials_before: int, worker: int | None) -> optuna.samplers.TPESampler:
    """TPE with a stream of its own per worker and per session: processes started at once on
    one study must not propose the same parameters, and a resumed study must not replay its
    draws. ``worker``: the process's number (``tune --jobs``, ``compare --worker``), else its
    pid, so that one numbered process draws the same trials every time."""
    worker = os.getpid() if worker is None else worker
    state = np.random.SeedSequence([seed, trials_before, worker]).generate_state(1)[0]
    return optuna.samplers.TPESampler(seed=int(state))


# ---------------------------------------------------------------------------------- trials


def load_data(cfg: TrainConfig, val_subset: int | None, ex: Any) -> Any:
    """MNIST on ``ex``'s device, the validation split cut to ``val_subset`` images."""
    from benchmark.data import load_mnist

    data = load_mnist(cfg.data_dir).to(ex.device)
    return replace(data, val=data.val.subset(val_subset))


def count_model_params(cfg: TrainConfig) -> int:
    """Parameters of ``cfg``'s model, built on the meta device (no memory, no time)."""
    import torch

    from architectures import count_params, create_model

    with torch.device("meta"):
        return count_params(create_model(cfg.arch, cfg.fusion, **cfg.model_args))


def objective(
    trial: optuna.Trial, base: TrainConfig, data: Any, ex: Any, max_params: int | None = None
) -> float:
    """Train one suggestion; validation joint accuracy after the last epoch (never the test set).

    A suggestion over the parameter cap is pruned before training (and not counted). Reports
    after every epoch so the pruner can stop a poor trial early; a trial that diverges is pruned
    (it finished, badly) rather than failed, so it counts towards ``--trials``. ``base`` and
    ``ex`` are as ``hardware.decide`` resolved them, once for the whole study.
    """
    from benchmark.errors import TrainingFailed
    from benchmark.trainer import build_state, train

    if trial.user_attrs.get("defaults") and defaults_held_elsewhere(trial):
        trial.set_user_attr("duplicate", True)  # two workers queued it at once: run it once
        raise optuna.TrialPruned("the defaults trial runs in another trial of this study")
    model_args, overrides = suggest(trial, base.arch, base.fusion)
    cfg = replace(base, model_args=model_args, **overrides)
    cfg.validate()
    params = count_model_params(cfg)
    trial.set_user_attr("params", params)
    if max_params is not None and params > max_params:
        trial.set_user_attr("over_cap", max_params)
        raise optuna.TrialPruned(f"{params:,} parameters > cap {max_params:,}")
    trial.set_user_attr("precision", ex.precision)
    trial.set_user_attr("channels_last", ex.channels_last)
    state = build_state(cfg, ex)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    defaults = bool(trial.user_attrs.get("defaults"))

    def on_epoch(event: Any) -> None:
        if event.stats is None:
            return
        st, epoch = event.state, event.stats.epoch
        trial.set_user_attr("train_seconds", st.train_seconds)
        trial.set_user_attr("images_per_s", st.step * cfg.batch_size / st.train_seconds)
        trial.report(event.stats.val_joint_acc, epoch)
        # the defaults trial is asked too (its values set halving's bar) but always finishes
        if epoch < cfg.epochs and trial.should_prune() and not defaults:
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")

    try:
        train(cfg, data, ex, state=state, listen=on_epoch, step_every=None)
    except TrainingFailed as exc:
        trial.set_user_attr("diverged", str(exc))
        raise optuna.TrialPruned(str(exc)) from None
    return state.history[-1].val_joint_acc


def defaults_held_elsewhere(trial: optuna.Trial) -> bool:
    """An earlier trial already holds the defaults (two workers may both have queued them)."""
    live = (*FINISHED, TrialState.RUNNING)
    held = trial.study.get_trials(deepcopy=False, states=live)
    return any(
        t.user_attrs.get("defaults")
        and not t.user_attrs.get("duplicate")
        and t.number < trial.number
        for t in held
    )


def optimize(
    study: optuna.Study,
    base: TrainConfig,
    data: Any,
    ex: Any,
    trials: int,
    timeout: float | None = None,
    max_params: int | None = None,
    callbacks: Collection[Any] = (),
) -> None:
    """Run trials in this process until the study holds ``trials`` finished ones (or timeout)."""
    if finished_count(study) >= trials:  # other workers got there first
        return
    study.optimize(
        lambda trial: objective(trial, base, data, ex, max_params),
        timeout=timeout,
        callbacks=[StopAt(trials), *callbacks],
    )


def waiting_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
