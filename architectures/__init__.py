"""Registry of interchangeable image encoders and addend fusions for the digit-sum task."""

from architectures import encoders as _encoders  # noqa: F401  (registers the built-in encoders)
from architectures import fusions as _fusions  # noqa: F401  (registers the built-in fusions)
from architectures.model import DigitSumModel, count_params, create_model, split_overrides
from architectures.registry import (
    ENCODERS,
    FUSIONS,
    Entry,
    UnknownNameError,
    register_encoder,
    register_fusion,
)


def list_encoders(pattern: str = "*") -> list[str]:
    """Registered encoder names matching a shell wildcard (``timm:<name>`` resolves on demand)."""
    return ENCODERS.select(pattern) if pattern != "*" else ENCODERS.names()


def list_fusions(pattern: str = "*") -> list[str]:
    """Registered fusion names matching a shell wildcard."""
    return FUSIONS.select(pattern) if pattern != "*" else FUSIONS.names()


__all__ = [
    "ENCODERS",
    "FUSIONS",
    "DigitSumModel",
    "Entry",
    "UnknownNameError",
    "count_params",
    "create_model",
    "list_encoders",
    "list_fusions",
    "register_encoder",
    "register_fusion",
    "split_overrides",
]
