"""What a trial of a tuning study counts as: one rule for ``tune``/``compare`` (when a study
holds its ``--trials``) and for the report (what a study spent). Free of torch and Optuna."""

from __future__ import annotations

from typing import Any

FINISHED = ("COMPLETE", "PRUNED")  # Optuna's TrialState names of a trial that ended by itself


def counts_towards_budget(trial: Any) -> bool:
    """A finished trial that spent training: one rejected before training (``rejected``) costs
    nothing and does not count towards ``--trials``."""
    return trial.state.name in FINISHED and not rejected(trial)


def rejected(trial: Any) -> bool:
    """Stopped before training: over the parameter cap, a second copy of the defaults, or
    started for a place another worker's trial had taken."""
    attrs = trial.user_attrs
    return bool(attrs.get("over_cap") or attrs.get("duplicate") or attrs.get("surplus"))


def epochs_spent(study: Any) -> tuple[int, int]:
    """(epochs the study's counted trials trained, what they would have trained unpruned:
    trials x the epochs of its budget): what multi-fidelity pruning saved, measured. A trial's
    epochs are its last reported epoch (one that diverged or was pruned before reporting trained
    none)."""
    epochs = (study.user_attrs.get("budget") or {}).get("epochs")
    epochs = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else 0
    counted = [t for t in study.get_trials(deepcopy=False) if counts_towards_budget(t)]
    trained = sum(int(max(t.intermediate_values, default=0)) for t in counted)
    return trained, len(counted) * epochs  # a budget of no whole number: unknown, not a crash
