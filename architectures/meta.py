"""Models built on the meta device for their shapes alone: parameter counts, the dry run, which
timm sizes a model takes. No memory, and no time spent filling weights that hold no values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

# What weight initialisation writes with: torch.nn.init's initialisers (whole: the ops inside
# one run past a mode that handles the call itself) and the in-place ops of those written
# without them (timm's trunc_normal_), each leaving the tensor's shape as it is. On a meta
# tensor each is a meta kernel or one of torch's Python reference implementations, for values
# never held: three quarters of building a timm ViT there (0.15 s of 0.2 s for vit_base). Ops
# that change a shape or a flag (resize_, t_, requires_grad_) and copy_ (which checks its
# source's shape) are not here.
INITIALISING = frozenset(
    {
        "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
        "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
        "orthogonal_", "sparse_", "fill_", "zero_", "erfinv_", "exponential_", "bernoulli_",
        "random_", "log_normal_", "mul_", "add_", "sub_", "div_", "clamp_",
    }
)  # fmt: skip


class _SkipInitialising(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in INITIALISING:
            target = args[0] if args else kwargs.get("tensor")  # torch.nn.init's by keyword
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@contextmanager
def meta_build() -> Iterator[None]:
    """Modules constructed in the block live on the meta device, their weights not initialised.
    For construction only: a forward pass through the model must keep every op (``mul_`` with a
    wrong shape raises there), so run it after the block, still under ``torch.device("meta")``."""
    with torch.device("meta"), _SkipInitialising():
        yield


def needs_values(exc: Exception) -> bool:
    """Whether ``exc`` is a meta tensor's refusal to give a value (a forward that reads its data,
    ``.item()``): such a model is run on the CPU instead, by the dry run and by ``bench``'s cost."""
    return "meta" in str(exc).lower()
