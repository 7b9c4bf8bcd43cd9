"""The one list of evaluation metrics: evaluation, metrics.json, the run summary, the report and
the held-out section all iterate over ``METRICS``, so adding a metric is one entry here.

Each metric is the fraction of (image, addend) pairs on which ``hit`` is true. ``hit`` receives
tensors of predicted digit, predicted sum, true digit and addend (broadcastable) and returns a
bool tensor; it uses only tensor operators, so this module needs no torch import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    name: str  # key in metrics.json and history.csv (val_<name>), column stem in the report
    label: str  # short column header
    description: str
    hit: Callable[[Any, Any, Any, Any], Any]  # (pred_digit, pred_sum, digit, addend) -> bool


METRICS: tuple[Metric, ...] = (
    Metric("digit_acc", "digit acc", "predicted digit is right", lambda pd, ps, d, a: pd == d),
    Metric("sum_acc", "sum acc", "predicted sum is right", lambda pd, ps, d, a: ps == d + a),
    Metric(
        "joint_acc",
        "joint acc",
        "digit and sum both right on the same pair",
        lambda pd, ps, d, a: (pd == d) & (ps == d + a),
    ),
    Metric(
        "consistency",
        "consistency",
        "predicted sum equals predicted digit + addend",
        lambda pd, ps, d, a: ps == pd + a,
    ),
)

# Test digit accuracy under this is a model that has not learned (chance: 0.1): said by run
# and by the report's answer, since a smoke run "finished" at 11% as if it were a result.
CHANCE_NOTE = 0.2
# Validation joint accuracy under this (tune's objective) is no better than guessing the digit
# (10%): chance for both heads is under 1%, and a joint accuracy of 19% has learned something.
CHANCE_JOINT_NOTE = 0.1
# "under 20%": a run at 19.7% read as far from "near chance (10%)" without the line it is held to
CHANCE = f"under {CHANCE_NOTE:.0%}, near chance (10%)"
LEARN_MORE = "give more --epochs or a larger --train-subset"


def names() -> list[str]:
    """The metric names, in ``METRICS`` order (read at call time, so a test may extend it)."""
    return [m.name for m in METRICS]


def rates(counts: Sequence[int], pairs: int) -> dict[str, Any]:
    """Hit counts, one per metric in ``METRICS`` order, over ``pairs`` -> fractions (nan if 0),
    plus ``pairs``."""
    out: dict[str, Any] = {
        m.name: (c / pairs if pairs else float("nan")) for m, c in zip(METRICS, counts, strict=True)
    }
    out["pairs"] = pairs
    return out
