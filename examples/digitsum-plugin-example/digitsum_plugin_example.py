"""An example digitsum-bench plug-in: one encoder and one fusion that the suite does not have.

``dwsep_cnn``: a MobileNet-style encoder of depthwise-separable convolutions (a 3x3 depthwise
convolution per channel, then a 1x1 pointwise one), far fewer multiply-adds than ``gap_cnn``'s
full 3x3 convolutions at the same width. ``gated``: a gated multimodal unit (Arevalo et al.,
2017): a learned gate decides, per hidden unit, how much comes from the image and how much from
the addend. Both register with the suite's public decorators, search space and ranges included,
exactly as the built-ins do (see docs/plugins.md of digitsum-bench).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from architectures import Range, register_encoder, register_fusion

NUM_DIGITS, NUM_SUMS = 10, 19
RATE = Range(0, 1, open_high=True)


def separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (one filter per channel), then pointwise 1x1, each with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DepthwiseSeparableCNN(nn.Module):
    """A full 3x3 stem, then separable blocks at 28, 14 and 7 pixels, global average pooling."""

    def __init__(self, width: int, depth: int, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(1, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(depth):
                layers.append(separable(cin, cout, stride=2 if stage and i == 0 else 1))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = cin  # the suite reads D from here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))


class GatedFusion(nn.Module):
    """h = z * tanh(W f) + (1 - z) * tanh(E[a]), z = sigmoid(W_z [f, one_hot(a)]); two heads."""

    def __init__(self, in_features: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.image = nn.Linear(in_features, hidden)
        self.addend = nn.Embedding(NUM_DIGITS, hidden)
        self.gate = nn.Linear(in_features + NUM_DIGITS, hidden)
        self.dropout = nn.Dropout(dropout)
        self.digit_head = nn.Linear(hidden, NUM_DIGITS)
        self.sum_head = nn.Linear(hidden, NUM_SUMS)

    def forward(self, features: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        one_hot = F.one_hot(addends, NUM_DIGITS).to(features.dtype)
        z = torch.sigmoid(self.gate(torch.cat([features, one_hot], dim=1)))
        a = self.addend(addends).to(features.dtype)
        h = self.dropout(z * torch.tanh(self.image(features)) + (1 - z) * torch.tanh(a))
        return self.digit_head(h), self.sum_head(h)


def _dwsep_space(trial: Any) -> dict[str, Any]:
    return {
        "width": trial.suggest_categorical("width", [16, 24, 32, 48]),
        "depth": trial.suggest_int("depth", 1, 2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
    }


def _gated_space(trial: Any) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_categorical("hidden", [64, 128, 256]),
        "head_dropout": trial.suggest_float("head_dropout", 0.0, 0.3),
    }


@register_encoder(
    search_space=_dwsep_space,
    ranges={"width": Range(1, 256), "depth": Range(1, 8), "dropout": RATE},
)
def dwsep_cnn(width: int = 24, depth: int = 2, dropout: float = 0.0) -> nn.Module:
    """Depthwise-separable CNN (MobileNet-style blocks) with global average pooling."""
    return DepthwiseSeparableCNN(width, depth, dropout)


@register_fusion(search_space=_gated_space, ranges={"hidden": Range(1, 4096), "head_dropout": RATE})
def gated(in_features: int, hidden: int = 128, head_dropout: float = 0.0) -> nn.Module:
    """Gated multimodal unit: a learned gate mixes image and addend per hidden unit."""
    return GatedFusion(in_features, hidden, head_dropout)
