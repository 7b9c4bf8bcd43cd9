"""The failures a command turns into one line and an exit status (see ``benchmark.cli``).

Kept free of heavy imports so that the entry point can name them without loading torch.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


class DamagedFileError(RuntimeError):
    """A file we read is missing, truncated, corrupt or of the wrong shape: one line, exit 1."""


class TrainingFailed(RuntimeError):
    """Training stopped on its own (divergence): one line, exit 1; the run directory says so."""
