"""Which groups are comparable: the main comparison and what sets every other group apart.

The main comparison holds the groups trained at the *reference budget* with nothing else
changed: the default configuration of each arch x fusion, and configurations tuned by a study at
that budget. The reference comes from ``comparison.json`` (written by ``compare``) when the
results directory has one; otherwise it is the budget (epochs, training subset) that the most
plain default runs used. A run with held-out pairs, an ablation flag (``--augment`` ...), other
epochs or hand-set hyperparameters is never in the main comparison; its ``differs`` text says
what sets it apart. A ``compare`` protocol also names its combinations and a parameter cap: a
combination it did not name, or a model over its cap, is outside its main comparison too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from benchmark.config import MNIST_TRAIN_IMAGES, SIZING, fields_of, learned_values
from benchmark.report.load import NOT_A_RUN, Inputs, repeated, run_configs
from benchmark.wording import plural

BUDGET = fields_of("budget")  # what a budget is; held-out pairs are another experiment
SAME = "the reference configuration"  # ``differs`` of a group that differs in nothing learned
TUNED_FIELDS = frozenset(fields_of("searched", "model"))  # what a tuned configuration may change


def sizes_text(config: dict[str, Any]) -> str:
    """The sizing model arguments of ``config`` (``SIZING``), as ``img_size=28, patch_size=7``."""
    args = config.get("model_args") or {}
    return ", ".join(f"{k}={args[k]}" for k in SIZING if args.get(k) is not None)


def aligned(mine: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``mine`` (learned values) and the reference's, each without the sizing model arguments
    the other has not: a ViT told img_size=28 is compared as the model it is, and gap_cnn
    beside it in a protocol that holds the ViT's sizes is not missing them; where both have a
    size (a ViT in that protocol), another size differs."""
    args, held = mine.get("model_args") or {}, base.get("model_args") or {}

    def kept(these: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in these.items() if k not in SIZING or k in other}

    return {**mine, "model_args": kept(args, held)}, {**base, "model_args": kept(held, args)}


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
    pairs: frozenset[tuple[str, str]] | None = None  # the protocol's combinations (None: any)
    max_params: int | None = None  # the protocol's parameter cap (None: no cap)
    note: str = ""  # said before the answer: why it is not the top rung's of a ladder

    def epoch_images(self) -> int:
        """Training images per epoch at this budget."""
        return self.base["train_subset"] or MNIST_TRAIN_IMAGES

    def budget_text(self) -> str:
        subset = self.base["train_subset"]
        data = "the full training split" if subset is None else f"{subset:,} training images"
        return f"{plural(self.base['epochs'], 'epoch')} on {data}"

    def cap_text(self) -> str:
        """The protocol's cap as a phrase ("" without one)."""
        return "" if self.max_params is None else f"at most {self.max_params:,} parameters"

    def opened(self) -> Reference:
        """This reference for runs it did not plan (a user's, set beside it): the same budget
        and cap, any combination, tuned by any study at that budget."""
        return Reference(self.base, None, self.source, None, self.max_params, self.note)

    def over_cap(self, params: Any) -> bool:
        return self.max_params is not None and not pd.isna(params) and params > self.max_params

    def is_main(self, config: dict[str, Any], tuned_from: dict[str, Any] | None) -> bool:
        mine, base = aligned(learned(config), self.base)
        if self.pairs is not None and (config.get("arch"), config.get("fusion")) not in self.pairs:
            return False
        if tuned_from is None:
            return mine == base
        study = tuned_from.get("study")
        if self.studies is not None and study not in self.studies:
            return False
        spent = tuned_from.get("budget") or {}
        if any(spent.get(k, mine[k]) != mine[k] for k in BUDGET):
            return False  # tuned at another budget than it was trained
        return all(mine[k] == v for k, v in base.items() if k not in TUNED_FIELDS)

    def differs(self, config: dict[str, Any], tuned_from: dict[str, Any] | None) -> str:
        """What sets a group apart from the reference, e.g. ``epochs 4; augment True``."""
        mine, base = aligned(learned(config), self.base)
        parts = []
        if tuned_from is not None:
            parts.append(f"tuned by {tuned_from.get('study', 'an unnamed study')}")
        for key in sorted(mine):
            if tuned_from is not None and key in TUNED_FIELDS:
                continue
            if mine[key] != base.get(key):
                parts.append(f"{key} {show(changed(mine[key], base.get(key)), key)}")
        if not parts and self.pairs is not None:
            if (config.get("arch"), config.get("fusion")) not in self.pairs:
                parts.append("a combination the protocol did not name")
        return "; ".join(parts) or SAME


def changed(mine: Any, base: Any) -> Any:
    """``mine``, or of two objects (model_args) the entries that differ, as ``mine`` has them
    (None where it has none: the entry's default): ``patch_size 4``, not every size again."""
    if not (isinstance(mine, dict) and isinstance(base, dict)):
        return mine
    return {k: mine.get(k) for k in sorted(mine.keys() | base.keys()) if mine.get(k) != base.get(k)}


def show(value: Any, key: str = "") -> str:
    if value is None and key == "train_subset":
        return "none (the full training split)"
    if isinstance(value, dict):
        shown = [f"{k}={'default' if v is None else show(v)}" for k, v in sorted(value.items())]
        return ",".join(shown) or "{}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def from_comparison(comparison: dict[str, Any]) -> Reference:
    """The reference of a ``compare`` protocol (its ``comparison.json``)."""
    plan = comparison["plan"]
    base = learned({**plan.get("fixed", {}), **plan["budget"]})
    pairs = frozenset((arch, fusion) for arch, fusion in plan["pairs"]) if "pairs" in plan else None
    cap = plan.get("max_params")
    return Reference(
        base,
        frozenset(plan["studies"]),
        f"`compare` protocol {plan['key']}",
        pairs,
        int(cap) if isinstance(cap, int | float) else None,
    )


def most_used(configs: list[dict[str, Any]]) -> Reference:
    """The budget most plain default runs used (ties: more epochs, then more training images,
    said in the note: 1 epoch on 3,000 images was taken over 1 on 20,000 without a word); the
    defaults if none."""
    default = learned({})
    plain = {k: v for k, v in default.items() if k not in BUDGET}
    counts: Counter[tuple[Any, ...]] = Counter()
    for config in configs:
        mine = aligned(learned(config), default)[0]  # a sized ViT's defaults are default runs
        if {k: v for k, v in mine.items() if k not in BUDGET} == plain:
            counts[tuple(mine[k] for k in BUDGET)] += 1
    if not counts:
        return Reference(default, None, "the default configuration")
    budget = max(counts, key=lambda b: (counts[b], b[0], b[1] is None, b[1] or 0))
    tied = sum(n == counts[budget] for n in counts.values()) - 1
    how = f"; tied with {plural(tied, 'other')}, it has the most epochs and images" if tied else ""
    return Reference(  # said inside brackets: none of its own (the header read "(... (...): ...)")
        {**default, **dict(zip(BUDGET, budget, strict=True))},
        None,
        f"the budget most default runs used, as no `compare` protocol was found{how}",
    )


def from_runs(runs: pd.DataFrame) -> Reference:
    """The reference without a comparison.json: ``most_used`` over the runs' configs, the
    reference's own alone where the user's are set beside them (``report --against``): counted
    with theirs, the user's runs could set the budget and be called the reference's best."""
    if "yours" in runs and runs["yours"].astype(bool).any():
        runs = runs[~runs["yours"].astype(bool)]
    return most_used(run_configs(runs))


def tuned_from(config: dict[str, Any]) -> dict[str, Any] | None:
    found = config.get("tuned_from")
    return found if isinstance(found, dict) else None


def beside(yours: Inputs, theirs: Inputs) -> Inputs:
    """``report --against``: the user's inputs with a reference's runs set beside them. The
    reference's runs, curves and comparison.json (so its budget, combinations and cap) come
    along; the user's runs are marked ``yours``; bench rows, studies and incomplete runs are the
    user's alone (the reference's incomplete runs are notes)."""
    runs = pd.concat(
        [theirs.runs.assign(yours=False), yours.runs.assign(yours=True)], ignore_index=True
    )
    runs["yours"] = runs["yours"].astype(bool)
    history = pd.concat([theirs.history, yours.history], ignore_index=True)
    notes = yours.notes + [f"reference: {note}" for note in theirs.notes]
    # its unreadable or unfinished runs are not listed as yours are: each is named here, or a
    # damaged one left the reference's count one short without a word
    left = theirs.incomplete[theirs.incomplete["status"] != NOT_A_RUN]  # a stray file: no run
    notes += [f"reference: left out {r.run}: {r.reason}" for r in left.itertuples()]
    if len(theirs.repeats):  # theirs are left out as yours are; yours alone are listed
        notes.append(f"reference: {repeated(theirs.repeats)}")
    return replace(yours, runs=runs, history=history, notes=notes, comparison=theirs.comparison)
