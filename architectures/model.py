"""The composed model: an encoder, a fusion, and the input normalisation they both rely on."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from architectures.fusions import NUM_DIGITS
from architectures.registry import ENCODERS, FUSIONS

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class DigitSumModel(nn.Module):
    """``model(images, addends) -> (digit_logits (B,10), sum_logits (B,19))``.

    ``images`` are floats in [0, 1] of shape (B, 1, 28, 28); the model normalises them itself so
    that every caller (trainer, ``predict``, exported graphs) feeds the same thing.
    """

    def __init__(self, encoder: nn.Module, fusion: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.fusion = fusion

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder((images - MNIST_MEAN) / MNIST_STD)

    def forward(
        self, images: torch.Tensor, addends: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fusion(self.features(images), addends)

    def forward_all_addends(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits for every addend 0..9: shapes (B, 10, 10) and (B, 10, 19).

        The encoder runs once per image; only the fusion runs per addend.
        """
        feats = self.features(images)
        b = feats.shape[0]
        addends = torch.arange(NUM_DIGITS, device=feats.device).repeat(b)
        digit, total = self.fusion(feats.repeat_interleave(NUM_DIGITS, dim=0), addends)
        return digit.view(b, NUM_DIGITS, -1), total.view(b, NUM_DIGITS, -1)


def split_overrides(
    arch: str, fusion: str, overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route hyperparameter overrides to the encoder or the fusion by name.

    ``None`` means "use the entry's default". An unknown key is an error listing the valid ones.
    """
    enc_defaults = ENCODERS.get(arch).defaults
    fus_defaults = FUSIONS.get(fusion).defaults
    enc_kw: dict[str, Any] = {}
    fus_kw: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in enc_defaults:
            enc_kw[key] = check_value(key, value, enc_defaults[key])
        elif key in fus_defaults:
            fus_kw[key] = check_value(key, value, fus_defaults[key])
        else:
            valid = sorted({*enc_defaults, *fus_defaults})
            raise ValueError(
                f"unknown hyperparameter {key!r} for {arch} x {fusion}; valid: "
                f"{', '.join(valid) or '(none)'}"
            )
    return enc_kw, fus_kw


def create_model(arch: str, fusion: str, **overrides: Any) -> DigitSumModel:
    """Build ``arch`` x ``fusion`` with the entries' defaults, overridden by ``overrides``."""
    enc_kw, fus_kw = split_overrides(arch, fusion, overrides)
    encoder = ENCODERS.get(arch).factory(**enc_kw)
    head = FUSIONS.get(fusion).factory(in_features=encoder.num_features, **fus_kw)
    return DigitSumModel(encoder, head)


def check_value(key: str, value: Any, default: Any) -> Any:
    """A hyperparameter override of the default's type (an int for an int, a finite number for
    a float, a bool for a bool), not negative, and a dropout rate in [0, 1)."""
    kind = type(default)
    if kind is bool or isinstance(value, bool):
        ok = isinstance(value, bool) and kind is bool
    elif kind is int:
        ok = isinstance(value, int)
    elif kind is float:
        ok = isinstance(value, int | float) and math.isfinite(value)
    else:
        return value  # strings and the like: the factory judges them
    if not ok:
        raise ValueError(f"{key}={value!r}: expected {kind.__name__} like the default {default!r}")
    if kind is not bool and value < 0:
        raise ValueError(f"{key}={value!r}: expected a value >= 0")
    if "drop" in key and not value < 1:
        raise ValueError(f"{key}={value!r}: a dropout rate must be in [0, 1)")
    return value


def check_model(arch: str, fusion: str, overrides: dict[str, Any]) -> None:
    """Build the model and run a batch of 28x28 images through it on the meta device (no
    memory, no time), so that a size the factory rejects, or a timm model that cannot take
    MNIST-sized input, is a ``ValueError`` before any run directory exists."""
    try:
        with torch.device("meta"):
            model = create_model(arch, fusion, **overrides)
            model(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))
    except ValueError:
        raise
    except Exception as exc:  # the factories and timm raise many kinds; all mean "cannot build"
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        args = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "its defaults"
        raise ValueError(
            f"{arch} x {fusion} with {args} cannot run on 1x28x28 images: "
            f"{type(exc).__name__}: {reason}"
        ) from None


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
