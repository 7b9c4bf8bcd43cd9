"""What stops a tuning trial early: Optuna's pruners by name (``tune --pruner``) and the
ladder's rule for ``compare``, successive halving from one epoch under a cap on the epochs a
study may train. Reads a study's trials, never trains."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmark.errors import UsageError
from benchmark.trials import counts_towards_budget, rejected

HALVING_FACTOR = 3  # successive halving: a third of the trials at a rung go on
LIVE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == "halving":  # successive halving from one epoch, a third of the trials go on
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=HALVING_FACTOR
        )
    return optuna.pruners.MedianPruner(n_startup_trials=5)


def keep_pruner(study: optuna.Study, pruner: str, hint: str, strict: bool = True) -> None:
    """A study is tuned under one pruner, recorded when its first trial starts: one that trained
    under another is refused in one line (``hint``: what to do) rather than finished under a
    second rule, its counts of pruned and trained epochs mixing the two. ``strict``: a study
    started before pruners were recorded is refused too (``compare``'s protocol); else
    (``tune``) the pruner given now is recorded for it."""
    found = study.user_attrs.get("pruner")
    started = any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    if found is None and (not started or not strict):
        study.set_user_attr("pruner", pruner)
    elif found != pruner:
        raise UsageError(
            f"study {study.study_name!r} was tuned with {found or 'an unrecorded'} pruning, not "
            f"{pruner}; {hint}"
        )


def halving_rung_after(epoch: int, epochs: int) -> int:
    """The epoch a trial that goes on after ``epoch`` trains to before successive halving
    (rungs at 1, 3, 9, ... epochs) asks again; the study's ``epochs`` at most."""
    rung = 1
    while rung <= epoch:
        rung *= HALVING_FACTOR
    return min(rung, epochs)


def halving_share(epochs: int) -> float:
    """The share of its unpruned epochs a study trains on successive halving's own schedule,
    where exactly a third of the trials at each rung go on: every trial one epoch, a third of
    them to 3, a ninth to 9, ... (56% at 3 epochs, 26% at 9)."""
    trained, rung, reach = 1.0, 1, 1.0
    while rung < epochs:
        reach /= HALVING_FACTOR
        after = halving_rung_after(rung, epochs)
        trained += reach * (after - rung)
        rung = after
    return trained / epochs


class EpochCap(optuna.pruners.BasePruner):
    """Successive halving (``inner``) under a cap of ``cap`` epochs per study: a trial the
    halving lets go on is stopped all the same when taking it to its next rung would bring the
    study over the cap (``promised_epochs``). Halving alone lets on every trial in the best third
    of those that reached the rung before it, and a sampler that has settled near the best keeps
    proposing such trials; with the cap, what a study costs is a bound, not an expectation."""

    def __init__(
        self, inner: optuna.pruners.BasePruner, epochs: int, trials: int, cap: int
    ) -> None:
        self.inner, self.epochs, self.trials, self.cap = inner, epochs, trials, cap

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self.inner.prune(study, trial):  # first: halving records the trial's rung values
            return True
        return promised_epochs(study, self.epochs, self.trials) > self.cap


def promised_epochs(study: optuna.Study, epochs: int, trials: int) -> int:
    """The study's epochs as they stand if every running trial goes on to its next rung: what
    its finished trials trained (``trials.epochs_spent``'s count), the next rung of each running
    trial (all ``epochs`` for the defaults trial, which always finishes), and one epoch for each
    of its ``trials`` not started yet. Trials stopped before training count nothing."""
    finished = running = promised = 0
    for t in study.get_trials(deepcopy=False, states=LIVE):
        if rejected(t):
            continue
        last = int(max(t.intermediate_values, default=0))
        if t.state == TrialState.RUNNING:
            running += 1
            promised += epochs if t.user_attrs.get("defaults") else halving_rung_after(last, epochs)
        elif counts_towards_budget(t):
            finished += 1
            promised += last
    return promised + max(0, trials - finished - running)
