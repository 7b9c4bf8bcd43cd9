"""Files on disk: atomic writes (a crash or an interrupt leaves the old file or the new one, never
half), checked reads (a damaged file is one line naming it) and file-name-safe text."""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import DamagedFileError


class UnreadableFileError(DamagedFileError):
    """A saved file that is truncated, corrupt, or refused because loading it could run code."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Our temporaries: mkstemp's ``.<name>.<8 random characters>.tmp`` next to the file they become.
TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _atomic(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries a killed writer left in ``directory`` (SIGKILL skips the clean-up
    of ``_atomic``); returns them. Only for a directory no one else is writing in, such as a
    run directory whose lock we hold."""
    removed = []
    for path in Path(directory).iterdir():
        if TEMPORARY.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda fh: fh.write(data))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_torch(path: Path, obj: Any) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    """Load without running pickled code (``weights_only=True``): untrusted files are safe.

    Raises ``UnreadableFileError`` (one line) for a refused, truncated or foreign file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the pickle-protocol notice of a refused file
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnreadableFileError(
            f"{path}: refused to load: it holds more than tensors and plain data "
            f"(loading it could run code), or it is corrupt"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged file raises anything; all mean the same
        raise UnreadableFileError(
            f"{path}: unreadable ({type(exc).__name__}): truncated or not a torch file"
        ) from None


def read_json(path: Path) -> Any:
    """Parsed JSON; ``OSError`` or ``ValueError`` (JSONDecodeError) for a missing or bad file."""
    return json.loads(Path(path).read_text())


def slug(text: str) -> str:
    """``text`` reduced to characters that are safe in a file name on every system."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def lookup(obj: Any, dotted: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None where a level is missing or not a dict."""
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def is_number(value: Any) -> bool:
    """A finite int or float (JSON's NaN and Infinity parse, but are no measurement)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
