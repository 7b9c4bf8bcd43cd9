"""Fusions: (features (B, D), addends (B,) int64) -> (digit_logits (B, 10), sum_logits (B, 19))."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from architectures.registry import register_fusion

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


def _hidden_space(trial: Any) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5),
    }


@register_fusion(search_space=_hidden_space)
def concat(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Features concatenated with the one-hot addend, an MLP, two heads."""
    return ConcatFusion(in_features, hidden, head_dropout)


@register_fusion(search_space=_hidden_space)
def embed_add(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Learned addend embedding added to projected features, two heads."""
    return EmbedAddFusion(in_features, hidden, head_dropout)


@register_fusion(
    search_space=lambda trial: {"head_dropout": trial.suggest_float("head_dropout", 0.0, 0.5)}
)
def late_sum(in_features: int, head_dropout: float = 0.0) -> nn.Module:
    """Digit head only; sum = digit distribution shifted by the addend (exact, consistent)."""
    return LateSumFusion(in_features, head_dropout)
