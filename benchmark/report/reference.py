"""Which groups are comparable: the main comparison and what sets every other group apart.

The main comparison holds the groups trained at the *reference budget* with nothing else
changed: the default configuration of each arch x fusion, and configurations tuned by a study at
that budget. The reference comes from ``comparison.json`` (written by ``compare``) when the
results directory has one; otherwise it is the budget (epochs, training subset) that the most
plain default runs used. A run with held-out pairs, an ablation flag (``--augment`` ...), other
epochs or hand-set hyperparameters is never in the main comparison; its ``differs`` text says
what sets it apart.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.config import fields_of, learned_values

BUDGET = fields_of("budget")  # what a budget is; held-out pairs are another experiment
SAME = "the reference configuration"  # ``differs`` of a group that differs in nothing learned
TUNED_FIELDS = frozenset(fields_of("searched", "model"))  # what a tuned configuration may change


def learned(config: dict[str, Any]) -> dict[str, Any]:
    """The fields that change what a run learns, with the defaults filled in (arch and fusion
    left out: they name the group)."""
    return learned_values(config, names=False)


@dataclass(frozen=True)
class Reference:
    """The reference configuration (learned fields, arch and fusion aside) and the tuning
    studies whose configurations count as tuned at it (None: any study at its budget)."""

    base: dict[str, Any]
    studies: frozenset[str] | None
    source: str

    def budget_text(self) -> str:
        subset = self.base["train_subset"]
        data = "the full training split" if subset is None else f"{subset:,} training images"
        return f"{self.base['epochs']} epoch(s) on {data}"

    def is_main(self, config: dict[str, Any], tuned_from: dict[str, Any] | None) -> bool:
        mine = learned(config)
        if tuned_from is None:
            return mine == self.base
        study = tuned_from.get("study")
        if self.studies is not None and study not in self.studies:
            return False
        spent = tuned_from.get("budget") or {}
        if any(spent.get(k, mine[k]) != mine[k] for k in BUDGET):
            return False  # tuned at another budget than it was trained
        return all(mine[k] == v for k, v in self.base.items() if k not in TUNED_FIELDS)

    def differs(self, config: dict[str, Any], tuned_from: dict[str, Any] | None) -> str:
        """What sets a group apart from the reference, e.g. ``epochs 4; augment True``."""
        mine = learned(config)
        parts = []
        if tuned_from is not None:
            parts.append(f"tuned by {tuned_from.get('study', 'an unnamed study')}")
        for key in sorted(mine):
            if tuned_from is not None and key in TUNED_FIELDS:
                continue
            if mine[key] != self.base.get(key):
                parts.append(f"{key} {show(mine[key])}")
        return "; ".join(parts) or SAME


def show(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={show(v)}" for k, v in sorted(value.items())) or "{}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def from_comparison(comparison: dict[str, Any]) -> Reference:
    """The reference of a ``compare`` protocol (its ``comparison.json``)."""
    plan = comparison["plan"]
    base = learned({**plan.get("fixed", {}), **plan["budget"]})
    return Reference(base, frozenset(plan["studies"]), f"compare protocol {plan['key']}")


def most_used(configs: list[dict[str, Any]]) -> Reference:
    """The budget most plain default runs used (ties: more epochs); the defaults if none."""
    default = learned({})
    plain = {k: v for k, v in default.items() if k not in BUDGET}
    counts: Counter[tuple[Any, ...]] = Counter()
    for config in configs:
        mine = learned(config)
        if {k: v for k, v in mine.items() if k not in BUDGET} == plain:
            counts[tuple(mine[k] for k in BUDGET)] += 1
    if not counts:
        return Reference(default, None, "the default configuration")
    budget = max(counts, key=lambda b: (counts[b], b[0], b[1] is None))
    return Reference(
        {**default, **dict(zip(BUDGET, budget, strict=True))},
        None,
        "the budget of most default runs (no comparison.json)",
    )


def from_runs(runs: pd.DataFrame) -> Reference:
    """The reference without a comparison.json: ``most_used`` over the runs' configs."""
    return most_used([json.loads(c) for c in runs.get("config_json", pd.Series(dtype=object))])


def tuned_from(config: dict[str, Any]) -> dict[str, Any] | None:
    found = config.get("tuned_from")
    return found if isinstance(found, dict) else None
