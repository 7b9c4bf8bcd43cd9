"""Registry of interchangeable image encoders and addend fusions for the digit-sum task."""

from architectures import encoders as _encoders  # noqa: F401  (registers the built-in encoders)
from architectures import fusions as _fusions  # noqa: F401  (registers the built-in fusions)
from architectures.meta import meta_build, needs_values
from architectures.model import (
    CannotRunError,
    DigitSumModel,
    arg_names,
    check_model,
    count_params,
    create_model,
    default_args,
    model_arg_flags,
    model_key,
    split_overrides,
    taken_overrides,
)
from architectures.registry import (
    ENCODERS,
    FUSIONS,
    Entry,
    Range,
    UnknownNameError,
    register_encoder,
    register_fusion,
)

__all__ = [
    "ENCODERS",
    "FUSIONS",
    "CannotRunError",
    "DigitSumModel",
    "Entry",
    "Range",
    "UnknownNameError",
    "arg_names",
    "count_params",
    "check_model",
    "create_model",
    "default_args",
    "meta_build",
    "model_arg_flags",
    "model_key",
    "needs_values",
    "register_encoder",
    "register_fusion",
    "split_overrides",
    "taken_overrides",
]
