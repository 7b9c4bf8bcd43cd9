"""digitsum-bench: one dataset, one trainer, and the measurements that compare architectures."""

from benchmark.runs import load_run

__all__ = ["load_run"]
