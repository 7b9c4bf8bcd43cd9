"""The composed model: an encoder, a fusion, and the input normalisation they both rely on."""

from __future__ import annotations

import contextlib
import operator
import warnings
from typing import Any

import torch
from torch import nn

from architectures.fusions import NUM_DIGITS
from architectures.meta import meta_build, needs_values
from architectures.registry import ENCODERS, FUSIONS, did_you_mean

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
    """Route hyperparameter overrides to the encoder or the fusion by name, each checked against
    the entry's annotated type and declared range (``Entry.check``).

    ``None`` means "use the entry's default". An unknown key is an error listing the valid ones.
    """
    encoder, head = ENCODERS.get(arch), FUSIONS.get(fusion)
    enc_defaults, fus_defaults = encoder.defaults, head.defaults
    enc_kw: dict[str, Any] = {}
    fus_kw: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in enc_defaults:
            enc_kw[key] = encoder.check(key, value)
        elif key in fus_defaults:
            fus_kw[key] = head.check(key, value)
        else:
            valid = arg_names(arch, fusion)
            raise ValueError(
                f"unknown hyperparameter {key!r}{did_you_mean(key, valid)} "
                f"for {arch} x {fusion}; valid: {', '.join(valid) or '(none)'}"
            )
    return enc_kw, fus_kw


def arg_names(arch: str, fusion: str) -> list[str]:
    """The hyperparameters ``arch`` x ``fusion`` takes, sorted: its encoder's and its fusion's."""
    return sorted({*ENCODERS.get(arch).defaults, *FUSIONS.get(fusion).defaults})


def default_args(arch: str, fusion: str) -> dict[str, Any]:
    """Every hyperparameter ``arch`` x ``fusion`` takes, with its entry's default (the
    encoder's where both declare one, as ``split_overrides`` routes it)."""
    return {**FUSIONS.get(fusion).defaults, **ENCODERS.get(arch).defaults}


def taken_overrides(arch: str, fusion: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``overrides`` that ``arch``'s or ``fusion``'s entry declares: in a grid, a model
    argument is for the combinations that take it (a timm ViT's img_size, not gap_cnn's)."""
    names = arg_names(arch, fusion)
    return {key: value for key, value in overrides.items() if key in names}


def create_model(arch: str, fusion: str, **overrides: Any) -> DigitSumModel:
    """Build ``arch`` x ``fusion`` with the entries' defaults, overridden by ``overrides``."""
    enc_kw, fus_kw = split_overrides(arch, fusion, overrides)
    encoder = _module("encoder", arch, ENCODERS.get(arch).factory(**enc_kw))
    raw = getattr(encoder, "num_features", None)
    try:  # the fusion is sized by it: an int, or one alike (numpy's, from np.prod)
        width = operator.index(raw)
    except TypeError:
        width = 0
    if width < 1:
        got = "not set" if raw is None else f"{raw!r}, not a positive integer"
        raise TypeError(
            f"encoder {arch}'s num_features is {got}: set self.num_features = D, the width of "
            f"the (B, D) features it returns, in its __init__"
        )
    head = _module("fusion", fusion, FUSIONS.get(fusion).factory(in_features=width, **fus_kw))
    return DigitSumModel(encoder, head)


def _module(kind: str, name: str, built: Any) -> nn.Module:
    """``built`` if a factory returned a module; a plug-in's that returned something else (a
    function, a class) would otherwise fail later on a missing attribute."""
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"{kind} {name}'s factory returned a {type(built).__name__}, not a torch.nn.Module"
        )
    return built


def model_key(arch: str, fusion: str, overrides: dict[str, Any]) -> tuple[Any, Any, str]:
    """What a model is built from: the entries' factories and the overrides. Within a process
    the same key builds the same model, so what is measured of it need not be measured again."""
    return ENCODERS.get(arch).factory, FUSIONS.get(fusion).factory, repr(sorted(overrides.items()))


_PASSED: set[tuple[Any, Any, str]] = set()  # the models check_model passed in this process


class CannotRunError(ValueError):
    """A model that cannot run on 1x28x28 images (``check_model``); ``sizes`` holds the model
    arguments that do run it, where there are any (a ViT left at 224 pixels), so a caller
    naming several such models can give each its sizes without reading them from the line;
    ``why`` is the line after the model and its arguments (``list --check``'s row)."""

    def __init__(self, line: str, sizes: dict[str, int] | None = None, why: str = "") -> None:
        super().__init__(line)
        self.sizes, self.why = sizes, why


def check_model(arch: str, fusion: str, overrides: dict[str, Any]) -> None:
    """Build the model and run a batch of 28x28 images through it on the meta device (no
    memory), so that a size the factory rejects, or a timm model that cannot take MNIST-sized
    input, is a ``ValueError`` before any run directory exists. Meta kernels are not free
    (40-60 ms for the core models on a CPU), so a process checks each model once: a grid or a
    protocol names the same model again and again."""
    split_overrides(arch, fusion, overrides)  # unknown names and bad values: already one line
    key = model_key(arch, fusion, overrides)
    if key in _PASSED:
        return
    try:
        _dry_run(arch, fusion, overrides)
    except Exception as exc:  # the factories and timm raise many kinds; all mean "cannot build"
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        args = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "its defaults"
        sizes, hint = _size_hint(arch, fusion, overrides)
        why = f"cannot run on 1x28x28 images: {type(exc).__name__}: {reason}{hint}"
        raise CannotRunError(f"{arch} x {fusion} with {args} {why}", sizes, why) from None
    _PASSED.add(key)


def _dry_run(arch: str, fusion: str, overrides: dict[str, Any]) -> None:
    """The model built, and a batch of two 28x28 images run through it, on the meta device; a
    forward that reads its data (``.item()``) cannot run on meta tensors, and runs on the CPU
    instead (real weights, real numbers)."""
    try:
        _forward(arch, fusion, overrides, "meta")
    except Exception as exc:
        if not needs_values(exc):
            raise
        _forward(arch, fusion, overrides, "cpu")


def _forward(arch: str, fusion: str, overrides: dict[str, Any], device: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a factory's notice would be a second line
        with meta_build() if device == "meta" else contextlib.nullcontext():
            model = create_model(arch, fusion, **overrides)
        with torch.device(device), torch.no_grad():  # every op of the forward pass checked
            model(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long))


def _size_hint(
    arch: str, fusion: str, overrides: dict[str, Any]
) -> tuple[dict[str, int] | None, str]:
    """Where the encoder is sized for its images by ``img_size`` (timm's ViTs and Swins are
    built for 224 pixels) and it was left at its default: the sizes that run it on 28x28
    images, tried (img_size=28 with a patch_size of 7, 4 or 14 where it takes one), and the
    words that give them, or say that none of them does (LeViT's stages shrink 28 pixels to
    nothing)."""
    takes = ENCODERS.get(arch).defaults
    if "img_size" not in takes or overrides.get("img_size") is not None:
        return None, ""
    tried = [{"img_size": 28}]
    if "patch_size" in takes and overrides.get("patch_size") is None:
        tried = [{"img_size": 28, "patch_size": patch} for patch in (7, 4, 14)]
    for sizes in tried:
        try:
            _dry_run(arch, fusion, {**overrides, **sizes})
        except Exception:  # as check_model: any failure means these sizes do not run either
            continue
        flags = model_arg_flags(sizes)
        return sizes, f" ({arch} takes its image size as img_size; it runs on 28x28 with {flags})"
    what = " with patch_size 7, 4 or 14" if len(tried) > 1 else ""
    return None, f" ({arch} takes its image size as img_size, but fails at img_size=28{what} too)"


def model_arg_flags(sizes: dict[str, Any]) -> str:
    """``sizes`` as the ``--model-arg`` flags that give them."""
    return " ".join(f"--model-arg {k}={v}" for k, v in sizes.items())


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
