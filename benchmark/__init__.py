"""digitsum-bench: one dataset, one trainer, and the measurements that compare architectures.

``benchmark.load_run(run_dir)`` loads a finished run's model; it is imported on first use so
that ``python -m benchmark --help`` does not load torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_run"]


def __getattr__(name: str) -> Any:
    if name == "load_run":
        from benchmark.runs import load_run

        return load_run
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")
