"""The failures a command turns into one line and an exit status (see ``benchmark.cli``).

Kept free of heavy imports so that the entry point can name them without loading torch.
"""

from __future__ import annotations

import os


def one_line(exc: BaseException) -> str:
    """``ValueError: its first line`` (the type alone where it says nothing): what code of
    another's raised (a factory, a plug-in, a storage row), as one line of a message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


class DamagedFileError(RuntimeError):
    """A file we read is missing, truncated, corrupt or of the wrong shape: one line, exit 1."""


class StudyDamaged(DamagedFileError):
    """A study's rows that the storage reads but that no run of ours wrote: the command names
    the storage they are in (``storages.storage_errors``)."""


class TrainingFailed(RuntimeError):
    """Training stopped on its own (divergence): one line, exit 1; the run directory says so."""


class WriteFailed(OSError):
    """A file could not be written (no space, read-only, quota, permission): one line naming
    it and the reason, exit 1. Files are written atomically, so what was written before stays."""

    def __init__(self, path: object, cause: OSError, hint: str = "") -> None:
        reason = os.strerror(cause.errno) if cause.errno else str(cause)
        if str(cause.strerror).startswith(reason):  # with words its raiser added: "(read-only)"
            reason = cause.strerror
        super().__init__(cause.errno, f"cannot write {path}: {reason}" + (hint and f"; {hint}"))
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror
