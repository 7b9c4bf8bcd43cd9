"""Files on disk: atomic writes (a crash or an interrupt leaves the old file or the new one, never
half; a full or read-only disk is ``WriteFailed`` naming the file), checked reads (a damaged file
is one line naming it) and file-name-safe text."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import pickle
import re
import signal
import stat
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmark.errors import DamagedFileError, UsageError, WriteFailed


def nearest_existing(path: Path) -> Path:
    """``path`` or the nearest of its parents that exists: what creating it would write in."""
    return next((p for p in (path, *path.parents) if p.exists()), Path("."))


def check_writable(
    directory: str | Path,
    flag: str = "--results-dir",
    given: str | Path | None = None,
    folders: tuple[str, ...] = (),
    names: tuple[str, ...] = (),
) -> None:
    """``directory`` is one we may write in (or can be created): checked before the data loads,
    a model is exported or a study is opened, so that a typo costs nothing. ``given``: what the
    user typed for ``flag``, when ``directory`` is the folder of a file it names (``export
    --out``, ``--storage``). ``folders``: the command's folders in it (``runs``), none a file;
    ``names``: the files it writes there, none a directory (or the first would be written and
    the command fail at another)."""
    directory = Path(directory)
    shown = directory if given is None else given
    existing = nearest_existing(directory)
    if not existing.is_dir():
        raise UsageError(f"{flag} {shown}: {existing} is a file; expected a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {shown}: {existing} is not writable")
    for folder in (directory / name for name in folders):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{flag} {shown}: {folder} is a file; expected a directory")
        if folder.is_symlink() and not folder.exists():  # mkdir said "File exists" at the end
            raise UsageError(f"{flag} {shown}: {folder} is a broken link; expected a directory")
        # a read-only plots/ was found only after report.md had been replaced
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {shown}: {folder} is not writable")
    for file in (directory / name for name in names):
        if file.is_dir():
            raise UsageError(f"{flag} {shown}: {file} is a directory; expected a file or nothing")


class UnreadableFileError(DamagedFileError):
    """A saved file that is truncated, corrupt, or refused because loading it could run code."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Our temporaries: mkstemp's ``.<name>.<8 random characters>.tmp`` next to the file they become.
TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _atomic(path: Path, write: Any) -> None:
    """Write through a temporary beside ``path``, then rename it over ``path``. An ``OSError``
    (no space, read-only, quota, permission; torch wraps it in a RuntimeError) becomes
    ``WriteFailed`` naming ``path``, and the old file stays as it was."""
    path = Path(path)
    kill_point("before", path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a file made read-only is not replaced (the rename needs only the folder's consent),
        # and a file replaced keeps its mode (mkstemp makes 0600; a new one gets the usual)
        existing = path.is_file()
        if existing and not os.access(path, os.W_OK):
            if os.statvfs(path.parent).f_flag & os.ST_RDONLY:  # the disk's, said as it is below
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            raise PermissionError(
                errno.EACCES, "Permission denied (the file is read-only)", str(path)
            )
        mode = stat.S_IMODE(path.stat().st_mode) if existing else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fd, mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        kill_point("during", path)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # the error path needs no disk (read-only refuses)
            Path(tmp).unlink(missing_ok=True)
        cause = _os_error(exc)
        if cause is None:
            raise
        raise WriteFailed(path, cause) from None
    kill_point("after", path)


def _os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a failed write, also where a library re-raised it as another
    exception (``torch.save`` gives a RuntimeError whose context is the OSError); None for an
    interrupt or a bug, which are not the disk's doing."""
    while isinstance(exc, Exception):
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


KILL_AT = "DIGITSUM_TEST_KILL_AT"
_writes: Counter[str] = Counter()  # writes per file name, counted only under KILL_AT


def kill_point(moment: str, path: Path) -> None:
    """The fault suite's hook (tests/test_faults.py): ``DIGITSUM_TEST_KILL_AT`` set to
    ``<moment>:<file name>[:<n>[:STOP]]`` (moment ``before``, ``during``: written but not yet
    renamed, or ``after``) makes the process SIGKILL itself then, at its n-th write of that file
    (the first by default), as a power cut or the OOM killer would stop it; with ``STOP`` it
    SIGSTOPs instead, for the test to fill the disk or make it read-only before SIGCONT."""
    wanted = os.environ.get(KILL_AT)
    if not wanted:
        return
    when, name, *rest = wanted.split(":")
    if moment == "before" and name == path.name:
        _writes[name] += 1
    if (when, name) == (moment, path.name) and _writes[name] == int(rest[0] if rest else 1):
        os.kill(os.getpid(), signal.SIGSTOP if rest[1:] == ["STOP"] else signal.SIGKILL)


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temporaries a killed writer left in ``directory`` (SIGKILL skips the clean-up
    of ``_atomic``); returns them. Only for a directory no one else is writing in, such as a
    run directory whose lock we hold. One that cannot be removed (a read-only disk) stays: it
    is harmless, and the next claim tries again."""
    removed = []
    for path in Path(directory).iterdir():
        if TEMPORARY.fullmatch(path.name) and path.is_file():
            try:
                path.unlink(missing_ok=True)
            except OSError:
                continue
            removed.append(path)
    return removed


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_path`` (created if missing) while the caller reads,
    changes and writes a file that other processes change too; they take turns, so no one's
    change is lost. Without a writable directory, no lock."""
    import fcntl

    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda fh: fh.write(text.encode()))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda fh: fh.write(data))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_torch(path: Path, obj: Any) -> None:
    import torch  # here: readers of JSON and CSV files (the report) need no torch

    _atomic(path, lambda fh: torch.save(obj, fh))


def load_torch(path: Path) -> Any:
    """Load without running pickled code (``weights_only=True``): untrusted files are safe.

    Raises ``UnreadableFileError`` (one line) for a refused, truncated or foreign file.
    """
    import torch

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
    return parse_json(Path(path).read_text())


def parse_json(text: str, parse: Any = json.loads) -> Any:
    """``parse(text)`` (JSON, or ``tomllib.loads``), with nesting too deep for the parser's
    recursion a ``ValueError`` like any other bad file: ``[[[...]]]`` 100,000 deep was a
    RecursionError traceback from every reader of a results file."""
    try:
        return parse(text)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


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
    """A finite int or float (JSON's NaN and Infinity parse, but are no measurement; nor is an
    integer too large for a float, which ``math.isfinite`` cannot even take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -(2**63) <= value < 2**63 if isinstance(value, int) else math.isfinite(value)


def mistyped(found: dict[Any, Any], kinds: dict[Any, Any]) -> Any:
    """The first of ``kinds``' keys present in ``found`` whose value is not of its type (a type
    or a tuple of them; a bool is never a number), or None: how the readers of hand-editable
    formats (exports, comparison.json, the studies digest) check the fields they use."""
    return next(
        (
            key
            for key, kind in kinds.items()
            if key in found and (isinstance(found[key], bool) or not isinstance(found[key], kind))
        ),
        None,
    )
