"""Where Optuna studies live: which storage (``--storage``, ``$OPTUNA_STORAGE`` or the results
directory's SQLite file), checking and opening it safely, and naming it with passwords masked.

A journal file suits several processes on one file system (also NFS); an RDB storage (SQLite,
PostgreSQL) gets heartbeats, so that the trial of a killed worker is failed and queued again.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from benchmark import files
from benchmark.errors import DamagedFileError, StudyDamaged, UsageError
from benchmark.places import OPTUNA_DB, STORAGE_ENV

SQLITE_TIMEOUT_S = 60  # wait this long for another process's write lock instead of failing
HEARTBEAT_S = 10  # a running trial says it is alive this often (RDB storages)
GRACE_S = 40  # ... and is failed and re-queued by the next worker when silent this long


def storage_spec(given: str | None, results_dir: str | Path) -> str:
    """``--storage``, else ``$OPTUNA_STORAGE`` (keeps a password out of argv), else the SQLite
    file in the results directory."""
    if typed := given or os.environ.get(STORAGE_ENV):
        check_meant_absolute(typed)
        return typed
    return f"sqlite:///{Path(results_dir) / OPTUNA_DB}"


def check_meant_absolute(spec: str) -> None:
    """Refuse a typed ``sqlite:///tmp/x.db`` where ``./tmp`` does not exist and ``/tmp`` does:
    three slashes name a path under the current directory, four an absolute one, and the study
    went into ./tmp/x.db, folders created. ``sqlite:///./tmp/x.db`` says it means here."""
    relative = spec.removeprefix("sqlite:///")
    if relative == spec or relative.startswith(("./", "/")) or ":memory:" in relative:
        return
    path, absolute = Path(relative), Path("/", relative)
    if not path.parent.exists() and absolute.parent.is_dir():
        raise UsageError(
            f"{given_as(spec)} {spec!r} names {path}, under the current directory, where "
            f"{path.parent} does not exist; for {absolute} give sqlite:///{absolute} (for "
            f"this directory, sqlite:///./{path})"
        )


class Storage(RDBStorage):
    """Optuna's RDB storage, two gaps closed: a trial beats from the moment it is RUNNING (a
    worker killed before its heartbeat thread started left it RUNNING for ever), and on SQLite
    (``lock_path``) an ``flock`` makes queue pops atomic (SQLite ignores FOR UPDATE)."""

    def __init__(self, url: str, lock_path: Path | None = None, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.lock_path = lock_path

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        # the private one: the cache Optuna wraps a study's RDB storage in calls it, not the
        # public create_new_trial (overridden here before, never called: no first beat)
        frozen = super()._create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            self.beat(frozen._trial_id)
        return frozen

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        with contextlib.ExitStack() as held:
            if self.lock_path is not None:
                fcntl.flock(held.enter_context(open(self.lock_path, "a")), fcntl.LOCK_EX)
            popped = super().set_trial_state_values(trial_id, state, values)
        if popped:
            self.beat(trial_id)
        return popped

    def beat(self, trial_id: int) -> None:
        if self.heartbeat_interval is not None:
            self.record_heartbeat(trial_id)


def given_as(spec: str) -> str:
    """Where a storage came from, as its errors name it: ``--storage``, or ``$OPTUNA_STORAGE``
    when no flag was given (an error said ``--storage`` of a URL no one had typed)."""
    return f"${STORAGE_ENV}" if spec == os.environ.get(STORAGE_ENV) else "--storage"


FORMS = (  # what --storage takes, as its errors say
    "an SQLAlchemy URL (sqlite:///PATH, postgresql+psycopg2://USER@HOST/DB) or a journal file "
    "(journal:PATH or PATH.log)"
)


def is_journal(spec: str) -> bool:
    return spec.startswith("journal:") or spec.endswith(".log")


def check_storage(spec: str, held: bool = False) -> Path | None:
    """Refuse a ``--storage`` that is not a URL or journal, or a file one that cannot be
    written, or an SQLite file emptied (``check_not_emptied``; ``held``: known to have held
    studies), writing nothing: commands call it before they look for the data. Returns the
    local file it names (journal or SQLite), None for a server."""
    path = check_form(spec)
    if path is None:
        return None
    files.check_writable(path.parent, given_as(spec), storage_label(spec))
    if path.is_dir():
        raise UsageError(f"{given_as(spec)} {storage_label(spec)}: a directory; expected a file")
    if path.is_file() and not os.access(path, os.R_OK | os.W_OK):  # before the data loads
        raise UsageError(f"{given_as(spec)} {storage_label(spec)}: not writable by this user")
    if not is_journal(spec) and path.is_file():
        check_not_emptied(path, storage_label(spec), held)
    return path


def check_form(spec: str, given: str | None = None) -> Path | None:
    """The local file a ``--storage`` names (journal or SQLite), None for a server; one of no
    storage's form (not a URL or journal, a scheme SQLAlchemy does not know, a database in
    memory, no file named) is refused, naming ``given`` (the flag; ``given_as`` where not
    said). An SQLite URL's file is the one SQLAlchemy opens: any driver (``sqlite+pysqlite:``),
    %-escapes decoded, the query left out."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    given = given or given_as(spec)
    if is_journal(spec):
        path = Path(spec.removeprefix("journal:"))
    elif "://" not in spec:
        raise UsageError(f"{given} {spec!r}: expected {FORMS}")
    else:
        try:
            url = make_url(spec)
        except ArgumentError:
            raise UsageError(f"{given} {spec!r}: expected {FORMS}") from None
        try:
            url.get_dialect()  # the dialect's module, not its driver (a server's, say)
        except NoSuchModuleError:  # a scheme SQLAlchemy does not know
            raise UsageError(
                f"{given} {spec!r}: no database is called {url.drivername!r}; expected {FORMS}"
            ) from None
        if url.get_backend_name() != "sqlite":
            return None  # a server: only connecting tells
        path = Path(":memory:" if url.database is None else url.database)  # sqlite:// alone
    if str(path).endswith(":memory:"):  # each thread, heartbeats too, opens its own
        raise UsageError(
            f"{given} {spec!r} is a database in memory: nothing would be kept or shared; "
            f"expected {FORMS}"
        )
    if not str(path).strip() or str(path) == ".":  # journal: or sqlite:/// alone
        raise UsageError(f"{given} {spec!r} names no file; expected {FORMS}")
    return path


def open_to_read(spec: str) -> BaseStorage:
    """A storage that exists, opened to read its studies and nothing else (the report's): no
    table, file or folder is created, and a local file that is not there is one line."""
    path = check_form(spec)
    if path is not None and path.is_dir():  # as check_storage says it: "no such file" misled
        raise IsADirectoryError(f"{path}: a directory; expected a file")
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if is_journal(spec):
        check_journal(path, storage_label(spec))
        return JournalStorage(JournalFileBackend(str(path)))
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return RDBStorage(spec, skip_table_creation=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:  # as open_storage says them
        raise not_opened(spec, exc) from None
    except optuna.exceptions.StorageInternalError as exc:  # its wrapper of the driver's error
        raise not_opened(spec, exc.__cause__ or exc) from None


EMPTIED_AFTER_S = 60.0  # a new SQLite file is 0 bytes only while its creator makes the tables


def check_not_emptied(path: Path, label: str, held: bool = False) -> None:
    """An SQLite storage of 0 bytes that has stayed so (a crash or a full disk emptied it) is
    a damaged file: opened, Optuna makes it a new, empty storage, and `compare --status` then
    wrote its tables into it and called a finished ladder not started. ``held``: it is known to
    have held studies (``compare`` beside its comparison.json), so empty at any age is emptied
    (within the minute, compare had tuned everything again)."""
    found = path.stat()
    if found.st_size == 0 and (held or time.time() - found.st_mtime > EMPTIED_AFTER_S):
        raise DamagedFileError(
            f"{label}: empty (0 bytes), as a crash or a full disk leaves a file; its studies are "
            f"gone: restore it from a copy, or delete it to start again"
        )


JOURNAL_SETTLE_S = 1.0  # how long a journal's last line may take to end (another's write)


def check_journal(path: Path, label: str) -> None:
    """A journal Optuna cannot replay, or that appending would break (a line that is not a
    JSON record; a last line cut off, as a writer killed mid-write leaves it, which the next
    record would be glued to), is one line naming it before anything is added to it. A last
    line still being written by another process is given ``JOURNAL_SETTLE_S`` to end."""

    data = path.read_bytes()
    if data and not data.endswith(b"\n"):  # perhaps another process's record, half written
        time.sleep(JOURNAL_SETTLE_S)
        data = path.read_bytes()
    lines = data.split(b"\n")
    problem = f"its last line ({len(lines)}) is cut off" if lines[-1] else None
    for number, line in enumerate(lines[:-1], 1):
        try:
            files.parse_json(line)
        except ValueError:  # not JSON, or not UTF-8
            problem = f"line {number} is not a journal record"
            break
    if problem:
        raise DamagedFileError(
            f"{label}: damaged Optuna journal: {problem}; repair it, or give another --storage "
            f"/ --results-dir"
        )


def open_storage(spec: str) -> BaseStorage:
    """``--storage`` text -> an Optuna storage.

    ``journal:PATH`` or ``PATH.log``: an append-only journal file (safe for several processes,
    also on NFS; Optuna gives journals no heartbeat, so the trial of a worker killed outright
    stays RUNNING there unless the worker was of the machine that looks: ``tuning.fail_stale``).
    Anything else must be an SQLAlchemy URL: RDB storages get heartbeats, and
    SQLite a long lock timeout so that concurrent workers wait instead of failing.
    """
    from sqlalchemy.exc import (
        IntegrityError,
        OperationalError,
        ProgrammingError,
        SQLAlchemyError,
    )

    path = check_storage(spec)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if is_journal(spec):
        if path.is_file():  # read once, here: commands open their storage before the data
            check_journal(path, storage_label(spec))
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    storage_class: Any = Storage
    if path is not None:  # SQLite
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
        storage_class = functools.partial(Storage, lock_path=path.with_name(path.name + ".lock"))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return storage_class(
                    spec,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                )
        except (IntegrityError, OperationalError, ProgrammingError) as exc:
            if not isinstance(exc, IntegrityError) and "already exists" not in str(exc):
                error = exc
                break
            # two processes creating the tables of a new storage at once: the other won (on
            # PostgreSQL its enum types too: "type studydirection already exists")
            time.sleep(1.0 + attempt)
            error = RuntimeError("tables could not be created")
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            error = exc
            break
    raise not_opened(spec, error) from None


def not_opened(spec: str, error: BaseException) -> Exception:
    """The one line a storage that cannot be opened ends in (``open_storage``, ``open_to_read``):
    a missing driver named with how to install it, a damaged database as damaged, anything
    else (a server that does not answer) as what was given; passwords masked."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    text = mask_secrets(str(error).strip())
    first = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, ImportError):  # Optuna's "Failed to import DB access module" names none
        dialect = spec.split(":", 1)[0]
        hint = (
            'pip install -e ".[postgres]"'
            if dialect.startswith("postgresql")
            else f"install a SQLAlchemy driver for {dialect}"
        )
        cause = mask_secrets(str(error.__cause__ or error))
        first = f"its database driver is not installed ({cause}); {hint}"
    if isinstance(error, DatabaseError) and not isinstance(error, OperationalError):
        return DamagedFileError(f"{storage_label(spec)}: damaged, cannot be read ({first})")
    return UsageError(f"{given_as(spec)} {storage_label(spec)}: cannot open it: {first}")


@contextlib.contextmanager
def storage_errors(spec: str) -> Iterator[None]:
    """A storage that cannot be reached or read in the middle of the work (a damaged database,
    a server gone), or a study in it with damaged rows, is one line naming it, not a traceback
    from the database driver or Optuna."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except StudyDamaged as exc:  # read, but no run of ours wrote it
        raise DamagedFileError(f"{storage_label(spec)}: {exc}") from None
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
        text = mask_secrets(str(getattr(cause, "orig", None) or cause or exc).strip())
        first = text.splitlines()[0] if text else type(exc).__name__
        if "readonly database" in first:  # sqlite's word for a file it may not write
            raise UsageError(
                f"{storage_label(spec)}: cannot write the Optuna storage ({first}): make the "
                "file and its folder writable, or give another --storage / --results-dir"
            ) from None
        raise DamagedFileError(
            f"{storage_label(spec)}: cannot read the Optuna storage ({first}); damaged or "
            f"unreachable: repair it, or give another --storage / --results-dir"
        ) from None


SECRET_KEYS = r"password|passwd|pwd|pass|secret|token|sslpassword|api_key|apikey"


def mask_secrets(text: str) -> str:
    """Every password in ``text`` masked: URL userinfo (``user:pw@``, the password escaped or
    not, even holding ``@``, ``/`` or ``?``) and query or keyword values (``password=...``).
    Where a URL is ambiguous, more is masked rather than less."""

    def url(match: re.Match[str]) -> str:
        scheme, rest = match["scheme"], match["rest"]
        at = rest.rfind("@")  # the host follows the last '@'; a password may contain one
        if at > 0 and ":" in rest[:at]:
            user = rest[: rest.index(":")]
            if "/" not in user and "@" not in user:
                rest = f"{user}:***{rest[at:]}"
            else:
                rest = f"***{rest[at:]}"
        return scheme + rest

    text = re.sub(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<rest>[^\s'\"]*)", url, text)
    return re.sub(rf"(?i)\b((?:{SECRET_KEYS})=)[^&\s'\"]+", r"\1***", text)


def local_file(spec: str) -> tuple[str, str] | None:
    """(prefix, path) of a storage that is a local file (an SQLite database, a journal, a bare
    ``.log`` path); None for a server."""
    for prefix in ("sqlite:///", "journal:", ""):
        if spec.startswith(prefix) and (prefix or spec.endswith(".log")):
            return prefix, spec.removeprefix(prefix)
    return None


def storage_label(spec: str, relative_to: str | Path | None = None) -> str:
    """The storage as it may be written to files and screens: passwords masked and, given
    ``relative_to`` (the results directory), a local database or journal path relative to it."""
    if relative_to is not None and (local := local_file(spec)):
        return local[0] + os.path.relpath(local[1], relative_to)
    return mask_secrets(spec)


def spec_of_label(label: str, relative_to: str | Path) -> str:
    """``storage_label``'s inverse: the ``--storage`` a label written relative to
    ``relative_to`` (an export's) names from here."""
    if (local := local_file(label)) and not Path(local[1]).is_absolute():
        return local[0] + str(Path(relative_to) / local[1])
    return label
