"""Held-out (digit, addend) pairs: does a model learn addition, or a lookup table of pairs?

With ``--holdout-pairs K`` a fixed set of K of the 100 (digit, addend) combinations never reaches
a training batch; evaluation then reports seen and held-out pairs apart. The set is chosen so
that every digit, every addend and every sum 0..18 still occurs in training: a model that fails
on the held-out pairs has seen all the ingredients, only not that combination.

The selection is a pure function of ``(k, seed)``: a seeded shuffle of the 100 pairs, taken
greedily, skipping any pair whose removal would leave a digit, an addend or a sum without a
training pair. Runs use the fixed ``HOLDOUT_SEED``, so every run with the same K holds out the
same pairs and seeds are comparable; the sets are nested (K=10 is a subset of K=20).
"""

from __future__ import annotations

from collections import Counter

import torch

from architectures.fusions import NUM_DIGITS

HOLDOUT_SEED = 20_250_101  # fixed: every run with the same K holds out the same pairs
# A pair the greedy pass cannot remove is the last training pair of some digit, addend or sum
# (10 + 10 + 19 = 39 of them), so at least 61 pairs can always be held out; 50 leaves a margin.
MAX_HOLDOUT_PAIRS = 50

Pair = tuple[int, int]


def holdout_pairs(k: int, seed: int = HOLDOUT_SEED) -> list[Pair]:
    """The K held-out ``(digit, addend)`` pairs for ``seed``, sorted; the same on every machine."""
    if not 0 <= k <= MAX_HOLDOUT_PAIRS:
        raise ValueError(f"holdout_pairs must be in 0..{MAX_HOLDOUT_PAIRS}, got {k}")
    order = torch.randperm(NUM_DIGITS * NUM_DIGITS, generator=torch.Generator().manual_seed(seed))
    digits = Counter({d: NUM_DIGITS for d in range(NUM_DIGITS)})
    addends = Counter({a: NUM_DIGITS for a in range(NUM_DIGITS)})
    sums = Counter(d + a for d in range(NUM_DIGITS) for a in range(NUM_DIGITS))
    held: list[Pair] = []
    for index in order.tolist():
        if len(held) == k:
            break
        d, a = divmod(index, NUM_DIGITS)
        if min(digits[d], addends[a], sums[d + a]) > 1:
            digits[d] -= 1
            addends[a] -= 1
            sums[d + a] -= 1
            held.append((d, a))
    return sorted(held)


def heldout_mask(
    k: int, seed: int = HOLDOUT_SEED, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(10, 10) bool: ``mask[digit, addend]`` is True for a held-out pair."""
    mask = torch.zeros(NUM_DIGITS, NUM_DIGITS, dtype=torch.bool, device=device)
    for d, a in holdout_pairs(k, seed):
        mask[d, a] = True
    return mask


def allowed_mask(k: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """What training may draw: None for every pair (k=0), else the complement of
    ``heldout_mask(k)`` as a 0/1 float (10, 10) mask for ``sample_addends``."""
    return (~heldout_mask(k, device=device)).float() if k else None


def sample_addends(
    labels: torch.Tensor, allowed: torch.Tensor | None, generator: torch.Generator
) -> torch.Tensor:
    """One addend per label: uniform over 0..9 (``allowed`` None: the plain ``randint``, so runs
    without held-out pairs draw exactly as before), else uniform over the addends
    ``allowed[label]`` of a (10, 10) 0/1 float mask, with one ``multinomial``: no host sync."""
    if allowed is None:
        return torch.randint(0, NUM_DIGITS, labels.shape, device=labels.device, generator=generator)
    return torch.multinomial(allowed[labels], 1, generator=generator).squeeze(1)
