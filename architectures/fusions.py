"""Fusions: (features (B, D), addends (B,) int64) -> (digit_logits (B, 10), sum_logits (B, 19))."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from architectures.registry import RATE, Range, register_fusion

NUM_DIGITS = 10
NUM_SUMS = 19


def mlp(cin: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))


class ConcatFusion(nn.Module):
    """[features, one_hot(addend)] -> MLP -> digit head and sum head."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = mlp(in_features + NUM_DIGITS, hidden, dropout)
        self.digit_head = nn.Linear(hidden, NUM_DIGITS)
        self.sum_head = nn.Linear(hidden, NUM_SUMS)

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        one_hot = F.one_hot(addends, NUM_DIGITS).to(features.dtype)
        h = self.body(torch.cat([features, one_hot], dim=1))
        return self.digit_head(h), self.sum_head(h)


class EmbedAddFusion(nn.Module):
    """relu(W f + E[addend]) -> digit head and sum head (the addend as a learned embedding)."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, hidden)
        self.embed = nn.Embedding(NUM_DIGITS, hidden)
        self.body = nn.Sequential(nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.digit_head = nn.Linear(hidden, NUM_DIGITS)
        self.sum_head = nn.Linear(hidden, NUM_SUMS)

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.body(self.proj(features) + self.embed(addends).to(features.dtype))
        return self.digit_head(h), self.sum_head(h)


def shifted_sum_logits(digit_log_probs: torch.Tensor, addends: torch.Tensor) -> torch.Tensor:
    """Exact sum log-distribution: log p(sum=s) = log p(digit=s-a), -inf where s-a is not a digit.

    Built with one scatter: column ``d + a`` of row b receives ``log p(digit=d)``.
    """
    b = digit_log_probs.shape[0]
    out = digit_log_probs.new_full((b, NUM_SUMS), float("-inf"))
    cols = addends[:, None] + torch.arange(NUM_DIGITS, device=addends.device)
    return out.scatter(1, cols, digit_log_probs)


class LateSumFusion(nn.Module):
    """Digit head on the image features alone; the sum distribution follows exactly from it."""

    def __init__(self, in_features: int, dropout: float) -> None:
        super().__init__()
        self.digit_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, NUM_DIGITS))

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        digit_logits = self.digit_head(features)
        log_probs = F.log_softmax(digit_logits.float(), dim=1)
        return digit_logits, shifted_sum_logits(log_probs, addends)


HIDDEN = {"hidden": Range(1, 4096), "head_dropout": RATE}  # what the hidden-layer fusions accept
DROPOUT = {"head_dropout": RATE}


def _hidden_space(trial: Any) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
    }


def _dropout_space(trial: Any) -> dict[str, Any]:
    return {"head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5)}


@register_fusion(search_space=_hidden_space, ranges=HIDDEN)
def concat(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Features concatenated with the one-hot addend, an MLP, two heads."""
    return ConcatFusion(in_features, hidden, head_dropout)


@register_fusion(search_space=_hidden_space, ranges=HIDDEN)
def embed_add(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Learned addend embedding added to projected features, two heads."""
    return EmbedAddFusion(in_features, hidden, head_dropout)


@register_fusion(search_space=_dropout_space, ranges=DROPOUT)
def late_sum(in_features: int, head_dropout: float = 0.0) -> nn.Module:
    """Digit head only; sum = digit distribution shifted by the addend (exact, consistent)."""
    return LateSumFusion(in_features, head_dropout)


class FiLMFusion(nn.Module):
    """``h = relu(W f + c) * (1 + gamma[a]) + beta[a]``, dropout, then digit and sum heads.

    Feature-wise linear modulation (Perez et al., 2018): the addend picks a per-channel scale
    ``1 + gamma[a]`` and shift ``beta[a]`` (one ``Embedding(10, 2 * hidden)``, split in two) for
    the projected image features. Both start at zero, so training starts from the addend-blind
    network. Unlike ``embed_add``, which only shifts, the scale makes the heads' input a product
    of an image term and an addend term, the interaction that addition needs.
    """

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, hidden)
        self.film = nn.Embedding(NUM_DIGITS, 2 * hidden)
        nn.init.zeros_(self.film.weight)
        self.dropout = nn.Dropout(dropout)
        self.digit_head = nn.Linear(hidden, NUM_DIGITS)
        self.sum_head = nn.Linear(hidden, NUM_SUMS)

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = F.relu(self.proj(features))
        gamma, beta = self.film(addends).to(h.dtype).chunk(2, dim=1)
        h = self.dropout(h * (1 + gamma) + beta)
        return self.digit_head(h), self.sum_head(h)


class BilinearFusion(nn.Module):
    """Digit distribution (x) one-hot addend, 100 values, -> learned linear map -> 19 sums.

    ``p(s) = sum_{d,a'} p(d) [a' = a] T[d, a', s]``: a linear layer on the outer product whose
    columns ``T[d, a, :] = softmax(table[d, a])`` are distributions over the sums, so the output is
    a mixture of distributions and its log (returned, computed with ``logsumexp``) is a proper
    log-distribution, like ``late_sum``'s. Exact addition is the 0/1 matrix ``T[d, a, d + a] = 1``,
    reached as the table logits grow; the table starts at zero (uniform) and has to learn it.
    Why log-probabilities rather than the raw linear output as logits: read as logits, even the
    exact 0/1 matrix gives logit 1 to the right sum and 0 to the 18 others, a near-flat softmax
    (p = e / (e + 18) = 0.13), so the layer would have to learn a large scale as well, against
    weight decay; and mixing logits over uncertain digits is not a marginal distribution.
    Each (d, a) cell is a free parameter: nothing ties a cell never trained on to addition.
    Since the addend is one-hot, the outer product only selects ``T[:, a]``: computed as a gather.
    """

    def __init__(self, in_features: int, dropout: float) -> None:
        super().__init__()
        self.digit_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, NUM_DIGITS))
        self.table = nn.Parameter(torch.zeros(NUM_DIGITS, NUM_DIGITS, NUM_SUMS))

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        digit_logits = self.digit_head(features)
        log_p = F.log_softmax(digit_logits.float(), dim=1)  # (B, 10 digits)
        log_t = F.log_softmax(self.table.float(), dim=2)[:, addends].transpose(0, 1)  # (B, 10, 19)
        return digit_logits, torch.logsumexp(log_p[:, :, None] + log_t, dim=1)


class SmallLinearHeadFusion(nn.Module):
    """Baseline: ``[digit_logits, one_hot(a)]`` -> ONE linear layer -> 19 sum logits.

    The sum logits are ``u_s . z + v_s[a] + b_s`` (z: the 10 digit logits): additively separable,
    an image term plus an addend term, with no term where digit and addend interact. So the layer
    cannot express "sum s only when digit = d AND addend = s - d" as a table of pairs. It can
    still rank the right sum first, but only through the order of the sums: the score
    ``-c (s - d - a)^2 = c (2 s d - s^2 / 2) + c (2 s a - s^2 / 2) - c (d + a)^2`` is separable
    once the last term, the same for every s, cancels in the softmax. To get there the digit
    logits must carry the digit as a line through ``u`` while the digit loss shapes them as a
    one-of-ten code, and the probability of the right sum, about ``1 / (1 + 2 exp(-c))``, only
    grows with the scale ``c``, which weight decay pulls back: the sum is learned slowly.
    """

    def __init__(self, in_features: int, dropout: float) -> None:
        super().__init__()
        self.digit_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, NUM_DIGITS))
        self.sum_head = nn.Linear(2 * NUM_DIGITS, NUM_SUMS)

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        digit_logits = self.digit_head(features)
        one_hot = F.one_hot(addends, NUM_DIGITS).to(digit_logits.dtype)
        return digit_logits, self.sum_head(torch.cat([digit_logits, one_hot], dim=1))


@register_fusion(search_space=_hidden_space, ranges=HIDDEN)
def film(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Addend scales and shifts projected features per channel (FiLM), two heads."""
    return FiLMFusion(in_features, hidden, head_dropout)


@register_fusion(search_space=_dropout_space, ranges=DROPOUT)
def bilinear(in_features: int, head_dropout: float = 0.0) -> nn.Module:
    """Digit distribution x one-hot addend -> a learned 100-to-19 map of sum probabilities."""
    return BilinearFusion(in_features, head_dropout)


@register_fusion(search_space=_dropout_space, ranges=DROPOUT)
def small_linear_head(in_features: int, head_dropout: float = 0.0) -> nn.Module:
    """Baseline: digit logits and one-hot addend, one linear layer to the sum (weak by design)."""
    return SmallLinearHeadFusion(in_features, head_dropout)
