"""The fair comparison (``compare``): every combination tuned at the budget of its final runs
under one parameter cap, then the default and the tuned configuration of every combination
trained over the same seeds, then the report; a ladder (``--epochs 1,3,9``) is one such ``Plan``
per rung (its two stages over the rungs: ``benchmark.stages``).

Work is handed out through the Optuna storage, never a lock of our own: tuning trials through
each combination's study (several processes or machines on one storage stop together at
``trials`` finished trials), and the final runs through one *queue study* whose trials are the
runs to do, each enqueued unless a live trial already holds it, and popped atomically by
``Study.optimize`` (a WAITING trial goes to exactly one worker; one enqueued twice by two
machines starting at once is marked stray when popped and left). With an RDB storage a
heartbeat marks the run of a killed worker failed and puts it back in the queue. A run already
complete in the results directory is never trained again, so re-running the same command
finishes only what is left.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmark import exports, plugins, pruning, tuning
from benchmark.comparison import QUEUE_PREFIX
from benchmark.config import BUDGET_FIELDS, TrainConfig
from benchmark.errors import DamagedFileError, TrainingFailed, UsageError
from benchmark.places import RUNS
from benchmark.rundir import (
    METRICS,
    IncompleteRun,
    complete_seeds,
    config_values,
    planned_seed,
    read_metrics,
    read_status,
)
from benchmark.trials import epochs_spent

VARIANTS = ("default", "tuned")
# The pruner of every rung over one epoch: successive halving from one epoch, a third of the
# trials going on at epochs 1, 3, 9, ... Hyperband, which hedges over several such schedules,
# trained 60-87% of the unpruned epochs at 3 epochs, and would train about half at 9.
PRUNER = "halving"
# What a rung's plan and its studies record of the pruning: the defaults trial is ranked at
# each epoch like any trial (and never stopped). Without it the first suggestions had no bar,
# and a 9-epoch study trained 51% of its unpruned epochs; replayed with it, 37-38%.
PRUNING = f"{PRUNER}, defaults ranked"
# A study trains at most this share of its unpruned epochs (trials x E) at the rungs where
# halving's own schedule keeps under it (5 epochs or more): there a study whose sampler had
# settled near the best promoted trial after trial and trained 42-51% (docs/protocol.md).
# Below, halving's schedule alone trains more (56% at 3 epochs), and a cap would leave little
# but one-epoch search.
TUNE_SHARE = 0.4


@dataclass(frozen=True)
class Plan:
    """What ``compare`` does: the budget (``base``: epochs, data, device; its arch, fusion and
    seed are ignored), the combinations, the seeds, the tuning budget and the parameter cap."""

    base: TrainConfig
    pairs: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...]
    trials: int
    max_params: int

    def pruner(self) -> str | None:
        """The pruning rule of the plan's studies, as they record it; none at one epoch, where
        nothing can be pruned (a trial is never stopped after its last epoch)."""
        if self.base.epochs == 1:
            return None
        if self.epoch_cap() is None:
            return PRUNING
        return f"{PRUNING}, at most {TUNE_SHARE:.0%} of unpruned epochs"

    def epoch_cap(self) -> int | None:
        """The most epochs one study may train, where halving's schedule keeps under
        ``TUNE_SHARE`` of them; None where it does not."""
        epochs = self.base.epochs
        if epochs == 1 or pruning.halving_share(epochs) > TUNE_SHARE:
            return None
        return int(TUNE_SHARE * self.trials * epochs + 1e-9)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """The Optuna pruner of the plan's studies (at one epoch it is never asked)."""
        halving = pruning.make_pruner(PRUNER, self.base.epochs)
        if (cap := self.epoch_cap()) is None:
            return halving
        return pruning.EpochCap(halving, self.base.epochs, self.trials, cap)

    def key(self) -> str:
        """A short hash of what makes two ``compare`` invocations the same protocol: the
        combinations and seeds as sets (``--seeds 1,0`` was refused as another protocol than
        ``0,1``, as ``--fusion late_sum,concat`` than ``concat,late_sum``)."""
        learned = replace(self.base, arch="-", fusion="-", seed=0).config_hash()
        parts = [learned, sorted(self.pairs), sorted(self.seeds), self.trials, self.max_params]
        if self.base.precision != "auto":  # a set precision is another protocol (auto: as ever)
            parts.append(self.base.precision)
        if self.pruner():
            parts.append(self.pruner())
        blob = json.dumps(parts)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    def config(self, arch: str, fusion: str, seed: int | None = None) -> TrainConfig:
        """One combination's configuration: the budget, and of the model arguments held the
        ones it takes (a ViT's sizes are not gap_cnn's)."""
        from architectures import taken_overrides

        seed = self.base.seed if seed is None else seed
        held = taken_overrides(arch, fusion, self.base.model_args)
        return replace(self.base, arch=arch, fusion=fusion, seed=seed, model_args=held)

    def study(self, arch: str, fusion: str) -> str:
        """The tuning study of one combination: its budget and the cap are in the name."""
        return tuning.study_name(self.config(arch, fusion), None, self.max_params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key(),
            "pairs": [list(p) for p in self.pairs],
            "seeds": list(self.seeds),
            "trials": self.trials,
            "max_params": self.max_params,
            "budget": {k: getattr(self.base, k) for k in BUDGET_FIELDS},
            "fixed": tuning.fixed_overrides(self.base),
            "studies": [self.study(a, f) for a, f in self.pairs],
            **({"pruner": pruner} if (pruner := self.pruner()) else {}),
            # a set precision is another protocol (``key``): recorded, so its flags can be said
            **({"precision": self.base.precision} if self.base.precision != "auto" else {}),
            **({"plugins": used} if (used := plugins.used_by(self.pairs)) else {}),
        }

    def items(self) -> list[str]:
        """Every final run, as ``arch|fusion|variant|seed`` strings (the queue's one param)."""
        return [
            f"{arch}|{fusion}|{variant}|{seed}"
            for arch, fusion in self.pairs
            for variant in VARIANTS
            for seed in self.seeds
        ]


def default_cap(pairs: Sequence[tuple[str, str]], held: dict[str, Any] | None = None) -> int:
    """The smallest cap that admits the default configuration of every combination, with the
    model arguments the protocol holds fixed that it takes (a timm ViT's img_size sizes its
    position embedding); counted on the meta device, without memory or weight initialisation."""
    from architectures import taken_overrides

    return max(
        tuning.count_model_params(
            TrainConfig(arch=a, fusion=f, model_args=taken_overrides(a, f, held or {}))
        )
        for a, f in pairs
    )


def find_complete(results_dir: Path, cfg: TrainConfig) -> Path | None:
    """A complete run of exactly this configuration and seed in ``results_dir``, if any (in
    ``cfg``'s precision when that is set; with ``auto``, in either), as ``run`` finds one:
    ``rundir.complete_seeds``."""
    done = complete_seeds(results_dir)
    for precision in ("fp32", "bf16") if cfg.precision == "auto" else (cfg.precision,):
        if (name := done.get(planned_seed(cfg, precision))) is not None:
            return Path(results_dir) / RUNS / name
    return None


def find_interrupted(results_dir: Path, cfg: TrainConfig) -> Path | None:
    """An unfinished run of exactly this configuration, seed and arithmetic in ``results_dir``
    (a compare stopped, or killed outright, in an earlier sitting: ``interrupted``, or
    ``running`` with no owner left, which claiming it tells): the queue resumes it rather than
    train the seed again beside it, where the report listed the old run as one to resume, and
    resuming it by hand made a second copy of the seed. ``cfg`` as settled for this machine."""
    shape = (cfg.config_hash(), cfg.seed, cfg.precision, cfg.channels_last)
    for run_dir in sorted((Path(results_dir) / RUNS).glob("*")):
        unfinished = read_status(run_dir)[0] in ("interrupted", "running")
        if not unfinished or (run_dir / METRICS).exists():
            continue
        try:
            saved = TrainConfig.from_dict(config_values(run_dir))
        except (DamagedFileError, ValueError, TypeError):  # damaged: not this one
            continue
        same = (saved.config_hash(), saved.seed, saved.precision, saved.channels_last) == shape
        if same and (saved.tuned_from is None) == (cfg.tuned_from is None):
            return run_dir
    return None


Records = dict[tuple[str, str], dict[str, Any]]


def export_rung(
    plan: Plan, studies: Sequence[optuna.Study], spec: str, results_dir: Path | str
) -> tuple[Records, dict[tuple[str, str], tuple[int, int]]]:
    """Each study of a tuned rung's best exported: the records by combination, and the epochs
    each study trained against what its counted trials would have trained unpruned (the
    measured saving, ``trials.epochs_spent``)."""
    records, spent = {}, {}
    for (arch, fusion), study in zip(plan.pairs, studies, strict=True):
        spent[(arch, fusion)] = epochs_spent(study)
        record = exports.export_best(study, spec, results_dir)
        if record is None:
            raise UsageError(f"study {study.study_name}: no complete trial to train with")
        records[(arch, fusion)] = record[1]
    return records, spent


def run_config(plan: Plan, item: str, records: Records) -> TrainConfig:
    """The configuration of one queue item; a tuned one takes its study's best trial."""
    arch, fusion, variant, seed = item.split("|")
    cfg = plan.config(arch, fusion, int(seed))
    if variant == "tuned":
        cfg = exports.apply_record(
            cfg, records[(arch, fusion)], source=f"study {plan.study(arch, fusion)}"
        )
    return cfg


def tuning_finished(studies: Sequence[optuna.Study]) -> bool:
    """No trial left running in any study (killed workers' trials failed by their heartbeat):
    only then is every best trial final, so every machine trains the same tuned configs."""
    for study in studies:
        tuning.fail_stale(study)
        if study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            return False
    return True


def wait_for_tuning(studies: Sequence[optuna.Study], poll_s: float = 5.0) -> None:
    """Until no trial runs on another worker, or a trial waits to be taken: a killed worker's,
    failed by its heartbeat and queued again (``fail_stale``), is this process's to train in its
    next pass; waiting for it to go, every worker waited for ever."""
    while not tuning_finished(studies):
        if any(s.get_trials(deepcopy=False, states=(TrialState.WAITING,)) for s in studies):
            return
        time.sleep(poll_s)


def unreadable_here(queue: optuna.Study, results_dir: Path) -> dict[str, tuple[str, str]]:
    """Final runs the queue holds complete whose run directory is here but cannot be read (its
    metrics.json damaged or gone), by run name (a trial's ``run``), with their item and why:
    the report leaves them out, so they are not done. A run with no directory here is another
    machine's, done there; an item with a complete run that reads is done."""
    bad, good = {}, set()
    for t in queue.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        run_dir = Path(results_dir) / RUNS / str(t.user_attrs.get("run"))
        try:
            if "run" in t.user_attrs and run_dir.is_dir():
                read_metrics(run_dir)
        except IncompleteRun as exc:
            bad[t.user_attrs["run"]] = (t.params["item"], f"{run_dir}: {exc}")
        else:
            good.add(t.params["item"])
    return {run: (item, why) for run, (item, why) in bad.items() if item not in good}


def open_queue(plan: Plan, storage: Any, results_dir: Path) -> tuple[optuna.Study, dict[str, Any]]:
    """The queue study of this plan, with every run not done, queued or running enqueued: a run
    interrupted in an earlier sitting (its trial failed) is queued again, a diverged one not,
    a complete one whose run directory here cannot be read (``unreadable_here``, returned)
    again, trained afresh beside the damaged directory, which is kept."""
    queue = optuna.create_study(
        storage=storage, study_name=QUEUE_PREFIX + plan.key(), load_if_exists=True
    )
    tuning.check_trials(queue)
    tuning.fail_stale(queue)
    unreadable = unreadable_here(queue, results_dir)
    live = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    held = {
        item
        for t in queue.get_trials(deepcopy=False, states=live)
        if not t.user_attrs.get("stray")
        and (item := t.params.get("item") or t.system_attrs.get("fixed_params", {}).get("item"))
        and holds_its_item(t, unreadable)
    }
    for item in plan.items():
        if item not in held:
            queue.enqueue_trial({"item": item}, user_attrs={"queued": True})
    return queue, unreadable


def holds_its_item(trial: FrozenTrial, unreadable: Collection[str]) -> bool:
    """Whether a queue trial holds its run (queued, running or done): all do but a complete
    one whose run directory here cannot be read (``unreadable``: their names), queued again by
    ``open_queue``; the trial that trains it again holds it."""
    return not (trial.state == TrialState.COMPLETE and trial.user_attrs.get("run") in unreadable)


def run_queue(
    plan: Plan,
    queue: optuna.Study,
    results_dir: Path,
    records: Records,
    train: Callable[[TrainConfig], dict[str, Any]],
    on_item: Callable[[str, str], None] | None = None,
    unreadable: Collection[str] = (),
) -> None:
    """Pop and do queued runs until none is left; ``train(cfg)`` trains one and returns its
    metrics. A run already complete on disk is recorded as done without training; a complete
    one of ``unreadable`` (``open_queue``'s, queued again) is not done."""
    items = plan.items()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", tuning.worker_name())  # its owner, should it die
        item = trial.suggest_categorical("item", items)
        if not trial.user_attrs.get("queued"):  # the queue emptied between look and pop
            trial.set_user_attr("stray", True)
            raise optuna.TrialPruned("no queued run left")
        others = queue.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.COMPLETE))
        others = [t for t in others if holds_its_item(t, unreadable)]  # a running copy too
        if any(t.params.get("item") == item and t.number != trial.number for t in others):
            trial.set_user_attr("stray", True)  # enqueued twice by two machines starting at once
            raise optuna.TrialPruned(f"{item} is done or running elsewhere")
        cfg = run_config(plan, item, records)
        done = find_complete(results_dir, cfg)
        if done is not None:
            trial.set_user_attr("run", done.name)
            if on_item:
                on_item(item, f"already complete in {done.name}")
            return float(read_metrics(done)["test"]["sum_acc"])
        if on_item:
            on_item(item, "training")
        try:
            metrics = train(cfg)
        except TrainingFailed as exc:  # deterministic: not queued again
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        trial.set_user_attr("run", metrics["run_id"])
        return float(metrics["test"]["sum_acc"])

    def stop_when_empty(study: optuna.Study, _: Any) -> None:
        if tuning.waiting_count(study) == 0:
            study.stop()

    if tuning.waiting_count(queue):
        queue.optimize(objective, callbacks=[stop_when_empty])


def progress_counts(queue: optuna.Study, unreadable: Collection[str] = ()) -> dict[str, int]:
    """Queued runs by where they stand, one state per run: complete, diverged, running,
    waiting (a run interrupted and queued again counts once, by the furthest of its states); a
    complete run whose directory here is ``unreadable`` (``unreadable_here``) does not count."""
    rank = {"complete": 4, "diverged": 3, "running": 2, "waiting": 1, "interrupted": 0}
    state: dict[str, str] = {}
    for t in queue.get_trials(deepcopy=False):
        item = t.params.get("item") or t.system_attrs.get("fixed_params", {}).get("item")
        if t.user_attrs.get("stray") or item is None or not holds_its_item(t, unreadable):
            continue
        now = {
            TrialState.WAITING: "waiting",
            TrialState.RUNNING: "running",
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "diverged",
        }.get(t.state, "interrupted")
        if rank[now] > rank[state.get(item, "interrupted")] or item not in state:
            state[item] = now
    counts = dict.fromkeys(rank, 0)
    for now in state.values():
        counts[now] += 1
    return counts


def count(studies: Sequence[optuna.Study], state: TrialState) -> int:
    """The trials of ``studies`` in ``state``, all together."""
    return sum(len(s.get_trials(deepcopy=False, states=(state,))) for s in studies)


def ladder_status(plans: list[Plan], storage: Any, results_dir: Path) -> list[dict[str, int]]:
    """Where each rung stands, as the storage holds it on every machine (nothing is created):
    per rung, counted tuning trials and complete final runs against those wanted, and what is
    running now (a killed worker's trial or run shows as running until one takes it over). A
    run complete in the storage whose directory here cannot be read is counted apart, as not
    done (``unreadable_here``)."""

    def load(name: str) -> Any:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # not created yet
            return None
        tuning.check_trials(study)
        return study

    found = []
    for plan in plans:
        studies = [s for s in (load(plan.study(a, f)) for a, f in plan.pairs) if s is not None]
        queue = load(QUEUE_PREFIX + plan.key())
        unreadable = unreadable_here(queue, results_dir) if queue else {}
        runs = progress_counts(queue, unreadable) if queue else {}
        found.append(
            {
                "epochs": plan.base.epochs,
                "trials": sum(min(tuning.finished_count(s), plan.trials) for s in studies),
                "trials_running": count(studies, TrialState.RUNNING),
                "trials_queued": count(studies, TrialState.WAITING),  # a killed worker's again
                "trials_wanted": len(plan.pairs) * plan.trials,
                "runs": runs.get("complete", 0),
                "runs_running": runs.get("running", 0),
                "runs_diverged": runs.get("diverged", 0),
                "runs_interrupted": runs.get("interrupted", 0),  # not queued again yet
                "runs_unreadable": len({item for item, _ in unreadable.values()}),  # seeds
                "runs_wanted": len(plan.items()),
            }
        )
    return found


def ladder_complete(plans: list[Plan], storage: Any, results_dir: Path) -> bool:
    """Whether the storage holds every rung done: each study's trials and each final run
    finished (complete or diverged), nothing running anywhere. Such a ladder trains nothing and
    needs no data, so its results are reported again where MNIST is not at hand."""
    return all(
        rung["trials"] >= rung["trials_wanted"]
        and rung["runs"] + rung["runs_diverged"] >= rung["runs_wanted"]
        and not rung["trials_running"] + rung["runs_running"]
        for rung in ladder_status(plans, storage, results_dir)
    )


def ladder_progress(
    plans: list[Plan], storage: Any, results_dir: Path
) -> list[tuple[str, int, int]]:
    """(stage, done, total) per rung: counted tuning trials of its studies, complete final
    runs of its queue (``ladder_status``)."""
    found = []
    for rung in ladder_status(plans, storage, results_dir):
        found.append((f"tune {rung['epochs']} ep", rung["trials"], rung["trials_wanted"]))
        found.append((f"runs {rung['epochs']} ep", rung["runs"], rung["runs_wanted"]))
    return found
