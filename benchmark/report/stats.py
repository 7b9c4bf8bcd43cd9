"""Statistics over seeds: test error with a 95% confidence interval, and Welch's t-test for
"indistinguishable from the best"; Kendall's tau between two rankings.

A group's seeds are independent draws of the whole training procedure, so the interval is
Student's t over seeds (mean ± t(0.975, n-1) * s / sqrt(n)); it says nothing about the sampling
error of the test set itself, which is the same images for every group. Two groups are called
indistinguishable when Welch's two-sided t-test (unequal variances) gives p >= 0.05; each group
is tested against the best one alone, with no correction for the number of groups, which is
the reader's to apply.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scipy import stats as scipy_stats

if TYPE_CHECKING:
    import pandas as pd

LEVEL = 0.95  # confidence of the intervals
ALPHA = 0.05  # significance level of the Welch test


def interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """(mean, half-width) of the ``level`` t-interval over ``values``; half-width NaN below two
    values (one seed has no spread to measure)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test that ``a`` and ``b`` have the same mean; NaN when a
    side has fewer than two values. Two constant samples: 1.0 if equal, else 0.0."""
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # near-equal samples: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def indistinguishable(p: float, alpha: float = ALPHA) -> bool:
    """True when the test cannot tell the two apart at ``alpha`` (NaN: not testable, False)."""
    return not math.isnan(p) and p >= alpha


def told_apart(p: pd.Series, alpha: float = ALPHA) -> pd.Series:
    """Element-wise over a Series of p-values: where the test tells the two apart at ``alpha``
    (NaN: not testable, False). With ``indistinguishable``, the one place of the convention."""
    return p.astype(float) < alpha


def verdicts(p: pd.Series, delta: pd.Series, kept: pd.Series | None = None) -> pd.Series:
    """Each pair's verdict, by the one rule every section says it with: ``kept`` (the study's
    best was the default itself), ``untested`` (one seed: no p), ``none`` (no difference
    detected), else ``lower`` or ``higher`` by the sign of ``delta``."""
    import numpy as np
    import pandas as pd

    said = np.where(delta.to_numpy() < 0, "lower", "higher")
    said = np.where(told_apart(p).to_numpy(), said, "none")
    said = np.where(p.isna().to_numpy(), "untested", said)
    if kept is not None:
        said = np.where(kept.astype(bool).to_numpy(), "kept", said)
    return pd.Series(said, index=p.index)


def kendall(x: list[float], y: list[float]) -> tuple[float, float]:
    """Kendall's tau-b of two rankings given as scores (here: mean errors of the same groups
    at two rungs) and its two-sided p-value; NaN for fewer than two groups or no variation."""
    if len(x) < 2:
        return math.nan, math.nan
    found = scipy_stats.kendalltau(x, y)
    return float(found.statistic), float(found.pvalue)
