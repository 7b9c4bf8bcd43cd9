"""``python -m benchmark``: see ``benchmark.cli``."""

from benchmark.cli import entry

entry()
