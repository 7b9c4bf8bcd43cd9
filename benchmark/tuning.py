"""Optuna tuning of one encoder x fusion: search space, studies, objective (storage: ``storages``).

The search space is declared next to what it tunes: each registry entry's ``search_space``
(model arguments) and ``config.search_space`` (training settings). A study lives in an Optuna
storage, so an interrupted tune continues where it stopped and several processes or machines can
share one study (``load_if_exists``); with an RDB storage, heartbeats fail the trial of a worker
that was killed and put it back in the queue. Trials train in memory and write nothing but the
study; the best trial is exported to ``<results>/tuned/<study>.json`` for ``run --tuned``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from benchmark import files
from benchmark.config import BUDGET_FIELDS, TrainConfig, fields_of, search_space
from benchmark.errors import StudyDamaged, UsageError, one_line
from benchmark.trials import FINISHED as FINISHED_NAMES
from benchmark.trials import counts_towards_budget, rejected
from benchmark.wording import differences

FINISHED = tuple(TrialState[name] for name in FINISHED_NAMES)  # as states
# Suggestions over the parameter cap in a row (in one process) after which the cap is taken to
# be below what the search space can build: each is rejected and not counted, so a cap under the
# smallest model kept a study suggesting for ever (1,100 rejections in 100 s). A cap that admits
# a tenth of the space rejects 100 in a row once in 38,000.
OVER_CAP_IN_A_ROW = 100
POLL_S = 5.0  # how often a worker whose study's last trials run elsewhere looks again


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


# ------------------------------------------------------------------------------------ studies


def fixed_overrides(cfg: TrainConfig) -> dict[str, Any]:
    """Settings that change what is learned, held fixed during the search, away from defaults;
    and the model arguments held fixed (those no search space tunes: a timm ViT's img_size)."""
    reference = TrainConfig()
    fixed = {
        k: getattr(cfg, k) for k in fields_of("setting") if getattr(reference, k) != getattr(cfg, k)
    }
    return fixed | ({"model_args": dict(cfg.model_args)} if cfg.model_args else {})


def searched_model_args(arch: str, fusion: str, model_args: dict[str, Any]) -> None:
    """A ``ValueError`` for a model argument held fixed that a search space tunes: every trial
    would replace it with its own suggestion."""
    if searched := sorted(set(model_args) & set(default_params(arch, fusion))):
        raise ValueError(
            f"{arch} x {fusion}: tuning searches {', '.join(searched)}, so a value held "
            "fixed would be replaced in every trial; leave it out of --model-arg and the "
            "config's model_args (hold fixed only what no search tunes: a timm ViT's img_size)"
        )


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
    check_study(study)
    wanted = budget(cfg, val_subset, max_params)
    found = study.user_attrs.get("budget")
    if found is None:
        study.set_user_attr("budget", wanted)
    elif (found := {"max_params": None, "fixed": {}, **found}) != wanted:  # older: lack two
        raise UsageError(
            f"study {name!r} was tuned with {differences(found, wanted)}; "
            f"give the same settings or another --study NAME"
        )
    fail_stale(study)
    live = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    held = study.get_trials(deepcopy=False, states=live)
    if not any(holds_defaults(t) for t in held):
        study.enqueue_trial(default_params(cfg.arch, cfg.fusion), user_attrs={"defaults": True})
    return study


def check_study(study: optuna.Study) -> None:
    """A study of ours maximises validation accuracy and records its budget as an object: one
    loaded otherwise (Optuna loads an existing study whatever direction is asked) was changed
    in the storage, and its best trial would be its worst, exported without a word. Its trials
    are checked too (``check_trials``)."""
    try:
        found = study.user_attrs.get("budget")
    except ROW_ERRORS as exc:
        raise StudyDamaged(f"study {study.study_name!r}: {row_error(exc)}") from None
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyDamaged(
            f"study {study.study_name!r}: set to minimise in its storage, where tuning maximises "
            "validation accuracy; repair the storage or tune under another --study"
        )
    if found is not None and not isinstance(found, dict):
        raise StudyDamaged(
            f"study {study.study_name!r}: its budget in the storage is {found!r}, not a budget"
        )
    check_trials(study)


# What Optuna raises building a trial from a damaged row: an attribute that is not JSON, a
# complete trial's value missing (an assertion), a state or distribution it does not know.
ROW_ERRORS = (ValueError, LookupError, TypeError, AssertionError)


REPAIR = "repair the storage, or give another --storage / --results-dir"


def row_error(exc: Exception) -> str:
    """A study row that cannot be read, and what to do, as a message says it."""
    return f"a row cannot be read ({one_line(exc)}); {REPAIR}"


def check_trials(study: optuna.Study) -> None:
    """Every trial of a study of ours (tuning or run queue) as Optuna builds it, and what ours
    hold: a value in 0..1 (an accuracy) once complete, each parameter inside the range it was
    drawn from. A damaged row is named here, before any work, instead of surfacing as Optuna's
    traceback in the middle of it or as an impossible value in an export."""
    name = study.study_name
    try:
        trials = study.get_trials(deepcopy=False)
    except ROW_ERRORS as exc:
        raise StudyDamaged(f"study {name!r}: {row_error(exc)}") from None
    for t in trials:
        problem = None
        if t.state == TrialState.COMPLETE and not (
            isinstance(t.value, float) and 0.0 <= t.value <= 1.0
        ):
            problem = f"complete, with the value {t.value!r}, not an accuracy in 0..1"
        for param, value in t.params.items():
            dist = t.distributions[param]
            try:
                inside = dist._contains(dist.to_internal_repr(value))
            except ROW_ERRORS:
                inside = False
            if not inside:
                problem = f"{param}={value!r} is outside the range it was drawn from ({dist})"
        if problem:
            raise StudyDamaged(f"study {name!r}: trial {t.number}: {problem}; {REPAIR}")


def fail_stale(study: optuna.Study) -> None:
    """Fail the running trials whose worker stopped beating (RDB storages; the retry callback
    queues them again). A storage without heartbeats (a journal) has only what a trial says of
    its worker: one of a process of this machine that is gone is failed too, so that a worker
    killed outright holds no place for ever; one of another machine's is left as it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    if is_heartbeat_enabled(study._storage):
        return
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if gone(t.user_attrs.get("worker")):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)


def worker_name() -> str:
    """``host:pid`` of this process, which every trial records (``gone`` reads it back)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def gone(worker: Any) -> bool:
    """Whether ``worker`` (``host:pid``) names a process of this machine that no longer runs."""
    host, _, pid = str(worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def finished_count(study: optuna.Study) -> int:
    return sum(counts_towards_budget(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def holding(study: optuna.Study) -> list[FrozenTrial]:
    """The running trials that are not rejected: they count towards ``--trials`` once they
    finish (a killed worker's trial holds its place until its heartbeat fails it)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t for t in running if not rejected(t)]


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
    from architectures import count_params, create_model, meta_build

    with meta_build():
        return count_params(create_model(cfg.arch, cfg.fusion, **cfg.model_args))


def objective(
    trial: optuna.Trial,
    base: TrainConfig,
    data: Any,
    ex: Any,
    max_params: int | None = None,
    trials: int | None = None,
) -> float:
    """Train one suggestion; validation joint accuracy after the last epoch (never the test set).

    A suggestion over the parameter cap is pruned before training (and not counted), and so is
    one that finds the study's ``trials`` places already held by earlier trials (two workers
    that started a trial at the same moment for the last place: the later one). Reports
    after every epoch so the pruner can stop a poor trial early; a trial that diverges is pruned
    (it finished, badly) rather than failed, so it counts towards ``--trials``. ``base`` and
    ``ex`` are as ``hardware.decide`` resolved them, once for the whole study.
    """
    from benchmark.errors import TrainingFailed
    from benchmark.trainer import build_state, train

    trial.set_user_attr("worker", worker_name())  # first: the trial's owner, should it die
    if trial.user_attrs.get("defaults") and defaults_held_elsewhere(trial):
        trial.set_user_attr("duplicate", True)  # two workers queued it at once: run it once
        raise optuna.TrialPruned("the defaults trial runs in another trial of this study")
    model_args, overrides = suggest(trial, base.arch, base.fusion)
    cfg = replace(base, model_args={**base.model_args, **model_args}, **overrides)
    cfg.validate()
    params = count_model_params(cfg)
    trial.set_user_attr("params", params)
    if max_params is not None and params > max_params:
        trial.set_user_attr("over_cap", max_params)
        raise optuna.TrialPruned(f"{params:,} parameters > cap {max_params:,}")
    if trials is not None and places_taken(trial) >= trials:
        trial.set_user_attr("surplus", True)
        raise optuna.TrialPruned(f"the study's {trials} trials are held by other workers")
    trial.set_user_attr("precision", ex.precision)
    trial.set_user_attr("channels_last", ex.channels_last)
    state = build_state(cfg, ex)
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


def places_taken(trial: optuna.Trial) -> int:
    """Counted trials of the study, finished or running, numbered before ``trial``."""
    study = trial.study
    earlier = [t for t in holding(study) if t.number < trial.number]
    return finished_count(study) + len(earlier)


def holds_defaults(trial: FrozenTrial) -> bool:
    """A trial of the defaults that is not a copy set aside (two workers may both have queued
    them; the later one is pruned as a duplicate and holds nothing)."""
    return bool(trial.user_attrs.get("defaults")) and not trial.user_attrs.get("duplicate")


def defaults_held_elsewhere(trial: optuna.Trial) -> bool:
    """An earlier trial already holds the defaults (two workers may both have queued them)."""
    live = (*FINISHED, TrialState.RUNNING)
    held = trial.study.get_trials(deepcopy=False, states=live)
    return any(holds_defaults(t) and t.number < trial.number for t in held)


def optimize(
    study: optuna.Study,
    base: TrainConfig,
    data: Any,
    ex: Any,
    trials: int,
    timeout: float | None = None,
    max_params: int | None = None,
    callbacks: Collection[Any] = (),
    poll_s: float = POLL_S,
    on_wait: Callable[[int], None] | None = None,
    wait: bool = True,
) -> None:
    """Run trials in this process until the study holds ``trials`` finished ones (or timeout).

    A trial starts only while fewer than ``trials`` are finished or running: however many
    workers share the study, it ends with exactly ``trials`` counted, the same number as every
    other study of the protocol (workers that each stopped only once ``trials`` had finished
    left up to one extra trial per worker). While the rest are held by other workers this one
    waits, and takes over the place of any that fails; on a storage without heartbeats (a
    journal) it stops instead, since a killed worker's trial would hold its place for ever.
    ``on_wait`` hears how many trials it waits for, at every look. ``wait=False`` returns
    as soon as every place left is held elsewhere, for a worker with other studies to go on to
    (it comes back for the place of any trial that fails).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    over_cap: list[int] = []  # parameters of this process's last suggestions, all over the cap

    def count_over_cap(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if "over_cap" in trial.user_attrs:
            over_cap.append(trial.user_attrs["params"])
        else:
            over_cap.clear()

    while deadline is None or time.monotonic() < deadline:
        if len(over_cap) >= OVER_CAP_IN_A_ROW:
            raise UsageError(
                f"--max-params {max_params:,}: the last {len(over_cap)} suggestions of study "
                f"{study.study_name} were all over it (the smallest had {min(over_cap):,} "
                f"parameters); give a larger cap"
            )
        fail_stale(study)
        finished = finished_count(study)
        if finished >= trials:  # this or other workers got there
            return
        elsewhere = len(holding(study))  # running, not rejected: they may yet count
        if finished + elsewhere >= trials:
            if not wait or not is_heartbeat_enabled(study._storage):
                return
            if on_wait is not None:
                on_wait(elsewhere)
            time.sleep(poll_s)
            continue
        study.optimize(
            lambda trial: objective(trial, base, data, ex, max_params, trials),
            n_trials=1,
            callbacks=[*callbacks, count_over_cap],
        )


def waiting_count(study: optuna.Study) -> int:
    """Trials queued and not yet taken: a queue study is done when none is left."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
