"""The fair comparison (``compare``): every combination tuned at the final budget under one
parameter cap, then the default and the tuned configuration of every combination trained over
the same seeds, then the report.

Work is handed out through the Optuna storage, never a lock of our own: tuning trials through
each combination's study (several processes or machines on one storage stop together at
``trials`` finished trials), and the final runs through one *queue study* whose trials are the
runs to do, enqueued once (``skip_if_exists``) and popped atomically by ``Study.optimize``
(a WAITING trial goes to exactly one worker). With an RDB storage a heartbeat marks the run of
a killed worker failed and puts it back in the queue. A run already complete in the results
directory is never trained again, so re-running the same command finishes only what is left.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmark import runs, tuned, tuning
from benchmark.config import TrainConfig
from benchmark.errors import TrainingFailed

VARIANTS = ("default", "tuned")
QUEUE_PREFIX = "compare-runs__"


@dataclass(frozen=True)
class Plan:
    """What ``compare`` does: the budget (``base``: epochs, data, device; its arch, fusion and
    seed are ignored), the combinations, the seeds, the tuning budget and the parameter cap."""

    base: TrainConfig
    pairs: tuple[tuple[str, str], ...]
    seeds: tuple[int, ...]
    trials: int
    max_params: int

    def key(self) -> str:
        """A short hash of what makes two ``compare`` invocations the same protocol."""
        learned = replace(self.base, arch="-", fusion="-", seed=0).config_hash()
        blob = json.dumps([learned, self.pairs, self.seeds, self.trials, self.max_params])
        return hashlib.sha256(blob.encode()).hexdigest()[:8]

    def study(self, arch: str, fusion: str) -> str:
        """The tuning study of one combination: its budget and the cap are in the name."""
        cfg = replace(self.base, arch=arch, fusion=fusion)
        return f"{tuning.study_name(cfg, None)}__p{self.max_params}"

    def items(self) -> list[str]:
        """Every final run, as ``arch|fusion|variant|seed`` strings (the queue's one param)."""
        return [
            f"{arch}|{fusion}|{variant}|{seed}"
            for arch, fusion in self.pairs
            for variant in VARIANTS
            for seed in self.seeds
        ]


def default_cap(pairs: Sequence[tuple[str, str]]) -> int:
    """The smallest cap that admits the default configuration of every combination."""
    from architectures import count_params, create_model

    return max(count_params(create_model(arch, fusion)) for arch, fusion in pairs)


def find_complete(results_dir: Path, cfg: TrainConfig) -> Path | None:
    """A complete run of exactly this configuration and seed in ``results_dir``, if any."""
    wanted = cfg.config_hash()
    for run_dir in sorted((Path(results_dir) / "runs").glob("*")):
        try:
            found = runs.read_metrics(run_dir)
        except runs.IncompleteRun:
            continue
        same = found["config_hash"] == wanted and found["seed"] == cfg.seed
        if same and bool(found.get("tuned")) == (cfg.tuned_from is not None):
            return run_dir
    return None


def run_config(plan: Plan, item: str, results_dir: Path) -> TrainConfig:
    """The configuration of one queue item; tuned ones read the export of the plan's study."""
    arch, fusion, variant, seed = item.split("|")
    cfg = replace(plan.base, arch=arch, fusion=fusion, seed=int(seed))
    if variant == "tuned":
        cfg = tuned.apply_tuned(cfg, (), results_dir, study=plan.study(arch, fusion))
    return cfg


def open_queue(plan: Plan, storage: Any) -> optuna.Study:
    """The queue study of this plan, with every run enqueued once."""
    queue = optuna.create_study(
        storage=storage, study_name=QUEUE_PREFIX + plan.key(), load_if_exists=True
    )
    for item in plan.items():
        queue.enqueue_trial({"item": item}, user_attrs={"queued": True}, skip_if_exists=True)
    return queue


def waiting(queue: optuna.Study) -> int:
    return len(queue.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_queue(
    plan: Plan,
    queue: optuna.Study,
    results_dir: Path,
    train: Callable[[TrainConfig], dict[str, Any]],
    on_item: Callable[[str, str], None] | None = None,
) -> None:
    """Pop and do queued runs until none is left; ``train(cfg)`` trains one and returns its
    metrics. A run already complete on disk is recorded as done without training."""
    items = plan.items()

    def objective(trial: optuna.Trial) -> float:
        item = trial.suggest_categorical("item", items)
        if not trial.user_attrs.get("queued"):  # the queue emptied between look and pop
            trial.set_user_attr("stray", True)
            raise optuna.TrialPruned("no queued run left")
        cfg = run_config(plan, item, results_dir)
        done = find_complete(results_dir, cfg)
        if done is not None:
            trial.set_user_attr("run", done.name)
            if on_item:
                on_item(item, f"already complete in {done.name}")
            return float(runs.read_metrics(done)["test"]["sum_acc"])
        if on_item:
            on_item(item, "training")
        metrics = train(cfg)
        trial.set_user_attr("run", metrics["run_id"])
        return float(metrics["test"]["sum_acc"])

    def stop_when_empty(study: optuna.Study, _: Any) -> None:
        if waiting(study) == 0:
            study.stop()

    if waiting(queue):
        # a diverged run is marked failed (deterministic: not retried) and the queue goes on
        queue.optimize(objective, callbacks=[stop_when_empty], catch=(TrainingFailed,))


def progress_counts(queue: optuna.Study) -> dict[str, int]:
    """Queued runs by state (stray pops left out)."""
    counts = {"waiting": 0, "running": 0, "complete": 0, "failed": 0}
    for t in queue.get_trials(deepcopy=False):
        if t.user_attrs.get("stray"):
            continue
        key = {
            TrialState.WAITING: "waiting",
            TrialState.RUNNING: "running",
            TrialState.COMPLETE: "complete",
        }.get(t.state, "failed")
        counts[key] += 1
    return counts
