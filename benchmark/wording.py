"""The words every generated sentence shares, the report's and the commands' alike: counts that
agree with their nouns, lists that read as English, and one name for each state a group can be
in against the best (so the tables, the sentences and the plots never disagree about what
"untested" means). Light: a command's messages import it without pandas."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# A group's standing against the best of the main comparison, as every section names it.
BEST = "best"
NEAR = "≈"
WORSE = "worse"
BETTER = "better"
UNTESTED = "untested"
ONE_SEED_ABOVE = " (any group ranked above it has one seed)."  # a best ranked below them
SAME_CONFIG = "= default"  # a tuned configuration that equals its combination's default

IRREGULAR = {"group": "groups", "seed": "seeds", "epoch": "epochs", "combination": "combinations"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 seed``, ``2 seeds``, ``0 groups``: the count and its noun in agreement."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {many or IRREGULAR.get(noun, noun + 's')}"


def listing(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a mistyped ``word`` most likely meant (``epochz``: ``epochs``), if any is near."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return found[0] if found else None


def were(count: int) -> str:
    return "was" if count == 1 else "were"


def is_are(count: int) -> str:
    return "is" if count == 1 else "are"


def has(count: int) -> str:
    return "has" if count == 1 else "have"


def percent(fraction: float) -> str:
    """``82.72%``: an accuracy as the report and the README give it (the runs store fractions)."""
    return f"{100 * fraction:.2f}%"


def error_range(mean: float, half: float) -> str:
    """``95% CI 0.32-0.41``: an error's interval, its ends held to the 0-100% an error can take
    (the t-interval of two seeds far from converged ran from -110.79 to 213.73)."""
    return f"95% CI {max(mean - half, 0.0):.2f}-{min(mean + half, 100.0):.2f}"


def settings(params: Mapping[str, Any], sep: str = " ") -> str:
    """``width=24 dropout=0.2386``: hyperparameters as ``--model-arg`` takes them, a float to
    four significant digits (a tuned dropout of 0.2385719484080942 filled a table cell)."""
    return sep.join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def differences(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``epochs 1, not 2; val_subset None, not 500``: the keys two records differ in, with the
    first one's value, then the second's (a study's settings, each whole, hid the one)."""
    keys = [k for k in {**found, **wanted} if found.get(k) != wanted.get(k)]
    return "; ".join(f"{k} {found.get(k)!r}, not {wanted.get(k)!r}" for k in keys)


def duration(seconds: float) -> str:
    """``<1 s``, ``42 s``, ``7 min``, ``2 h 05 min``: a time as a person reads it in a progress
    line (a tiny run's epoch is not "0 s")."""
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"
