"""What ``--compile`` compiles with: Inductor, and on the CPU one change to it, measured.

torch 2.14's Inductor decomposes max-pooling's backward into a scatter-add that runs as an
unfused fallback kernel on the CPU. Without that decomposition Inductor lowers the backward as a
gather and fuses it with the batch norm backward around it. On the 2-core Xeon with nothing else
running (one training step, bf16, channels_last, batch 256, eager in the same process, taking
turns) small_cnn x concat trained at 0.56x of eager with the decomposition and 1.23x without;
gap_cnn x concat at 1.03x and 1.06x. The gradients are eager's (tests/test_compile.py).

The price is Inductor's caches: its FX graph cache cannot hash a decomposition table of its
caller's and is bypassed, and AOTAutograd's cache, whose key leaves the table out, would serve a
graph compiled with the scatter, so it is turned off. Built C++ kernels are still reused: the
second compile of gap_cnn x concat's training step took 22 s, against 3 s for plain Inductor with
both caches. A graph without max-pooling compiles the plain way, caches and all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

MAX_POOL_BACKWARD = torch.ops.aten.max_pool2d_with_indices_backward.default
MAX_POOLS = {F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d}  # as Dynamo's graph calls


def no_cuda_runtime_notice(record: logging.LogRecord) -> bool:
    """False for torch's notice that a CUDA build found no GPU: compiling for the CPU imports
    its C++ extension tools, which say so on every CPU-only machine with the registry's wheel."""
    return not str(record.msg).startswith("No CUDA runtime is found")


def compile_backend(device: torch.device) -> str | Callable[..., Any]:
    """``torch.compile``'s backend for ``device``: Inductor, changed on the CPU where this torch
    decomposes max-pooling's backward into a scatter."""
    if device.type == "cpu":
        notices = logging.getLogger("torch.utils.cpp_extension")
        if no_cuda_runtime_notice not in notices.filters:
            notices.addFilter(no_cuda_runtime_notice)
    try:
        from torch._inductor.decomposition import select_decomp_table
    except ImportError:  # a torch without these internals compiles the plain way
        return "inductor"
    scatter = MAX_POOL_BACKWARD in select_decomp_table()
    return inductor_gather_max_pool if device.type == "cpu" and scatter else "inductor"


def inductor_gather_max_pool(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
    """A ``torch.compile`` backend: Inductor with max-pooling's backward lowered as a gather."""
    from torch._inductor.compile_fx import compile_fx
    from torch._inductor.decomposition import select_decomp_table

    if not any(n.op == "call_function" and n.target in MAX_POOLS for n in gm.graph.nodes):
        return compile_fx(gm, example_inputs)
    table = {k: v for k, v in select_decomp_table().items() if k != MAX_POOL_BACKWARD}
    with torch._functorch.config.patch(enable_autograd_cache=False):
        return compile_fx(gm, example_inputs, decompositions=table)
