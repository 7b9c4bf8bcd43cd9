"""``benchmark.storages`` itself: an SQLite storage's pops of queued trials taken in turns under
its lock file, its writers' wait for one another, a new storage's tables raced for, and the
labels a storage is written as. The commands' use of them is test_tune.py's and
test_concurrency.py's."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import optuna
import pytest
from conftest import shared_lock_refused
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from benchmark import storages
from benchmark.errors import DamagedFileError, UsageError


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask
def test_a_queued_trial_is_popped_under_an_exclusive_lock_beside_the_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite ignores FOR UPDATE: two workers popping the one queued trial at once both got it
    unless the pop holds ``optuna.db.lock``; it is free again once popped."""
    lock = tmp_path / "optuna.db.lock"
    held = []
    pop = RDBStorage.set_trial_state_values

    def popping(self: RDBStorage, trial_id: int, state: TrialState, values: object = None) -> bool:
        held.append((state, lock.exists() and shared_lock_refused(lock)))
        return pop(self, trial_id, state, values)

    monkeypatch.setattr(RDBStorage, "set_trial_state_values", popping)
    study = optuna.create_study(
        storage=storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    )
    study.enqueue_trial({"x": 0.5})
    study.ask()
    assert held == [(TrialState.RUNNING, True)]
    assert not shared_lock_refused(lock)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # asked by hand
def test_a_trial_added_as_running_beats_at_once_and_a_queued_one_not_until_popped(
    tmp_path: Path,
) -> None:
    """Optuna's stale check passes over a RUNNING trial with no heartbeat: one added RUNNING
    (``study.add_trial``) and never beaten held its place for ever once its worker died."""
    import sqlite3

    storage = storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=storage)
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    study.enqueue_trial({"x": 0.5})
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        beating = [row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")]
    assert beating == [study.trials[0]._trial_id]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # asked by hand
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # fail_stale_trials
def test_the_trial_of_a_worker_gone_silent_is_failed_and_queued_again(tmp_path: Path) -> None:
    """Past its grace, a trial whose heartbeat stopped (a worker killed outright) is failed by
    the next worker, and its parameters are queued again: the study still gets that trial."""
    import sqlite3

    storage = storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 0.5})
    study.ask().suggest_float("x", 0, 1)
    with sqlite3.connect(tmp_path / "optuna.db") as db:  # silent since long before the grace
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].params == {"x": 0.5}


def test_an_sqlite_storage_waits_a_minute_for_another_writers_lock(tmp_path: Path) -> None:
    """Workers sharing optuna.db wait their turn to write; SQLite's default of 5 s failed them
    with "database is locked" while another worker's transaction ran."""
    storage = storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    with storage.engine.connect() as connection:
        waits_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    assert waits_ms == storages.SQLITE_TIMEOUT_S * 1000 == 60_000


@pytest.mark.parametrize("races_lost", [1, 2])
def test_a_storage_whose_tables_another_process_created_first_is_opened_again(
    races_lost: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loser of the race to create a new SQLite storage's tables gets a bare UNIQUE
    constraint failure; it waits a little longer each time and opens the storage again."""
    real, slept = storages.Storage, []

    def racing(*args: object, **kwargs: object) -> storages.Storage:
        if len(slept) < races_lost:
            raise IntegrityError("INSERT INTO version_info", {}, Exception("UNIQUE constraint"))
        return real(*args, **kwargs)

    monkeypatch.setattr(storages, "Storage", racing)
    monkeypatch.setattr(storages.time, "sleep", slept.append)
    assert isinstance(storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), RDBStorage)
    assert slept == [1.0, 2.0][:races_lost]


def test_a_storage_whose_tables_are_never_made_is_one_line_after_three_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(*args: object, **kwargs: object) -> None:
        raise IntegrityError("INSERT INTO version_info", {}, Exception("UNIQUE constraint"))

    monkeypatch.setattr(storages, "Storage", lost)
    monkeypatch.setattr(storages.time, "sleep", lambda s: None)
    spec = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(UsageError, match="cannot open it: tables could not be created"):
        storages.open_storage(spec)


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("sqlite:///{r}/optuna.db", "sqlite:///optuna.db"),
        ("sqlite:///{r}/../shared/optuna.db", "sqlite:///../shared/optuna.db"),
        ("journal:{r}/studies/optuna.log", "journal:studies/optuna.log"),
        ("{r}/optuna.log", "optuna.log"),
        ("postgresql://bench:s3cret@db.lan/optuna", "postgresql://bench:***@db.lan/optuna"),
    ],
)
def test_a_storage_is_labelled_relative_to_its_results_directory_and_read_back_from_there(
    spec: str, label: str, tmp_path: Path
) -> None:
    """An export names its storage relative to its results directory, so that the directory
    can be moved; a server is named as it was, its password masked."""
    results = tmp_path / "results"
    spec = spec.format(r=results)
    assert storages.storage_label(spec, results) == label
    read_back = storages.spec_of_label(label, results)
    assert read_back == (label if "***" in label else spec)  # a masked URL stays masked


@pytest.mark.parametrize("folder", ["new", "./new"])
def test_a_relative_sqlite_path_in_a_new_folder_is_taken_where_no_absolute_one_is_meant(
    folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``sqlite:///tmp/x.db`` beside an existing /tmp is refused as meant absolute: a new
    folder under here that exists nowhere else is created, as asked."""
    monkeypatch.chdir(tmp_path)
    storages.check_meant_absolute(f"sqlite:///{folder}/studies-{os.getpid()}/optuna.db")


def test_an_sqlite_uri_of_a_shared_memory_database_is_refused_as_one_in_memory() -> None:
    """``file::memory:`` with ``uri=true`` is SQLite's shared in-memory database: each process
    (and each heartbeat thread's connection once it closes) would see it empty."""
    spec = "sqlite:///file::memory:?cache=shared&uri=true"
    with pytest.raises(UsageError, match="is a database in memory: nothing would be kept"):
        storages.check_form(spec)


def test_a_read_only_file_met_through_optunas_wrapper_is_unwritable_not_damaged() -> None:
    """Optuna re-raises a failed commit as its StorageInternalError, the driver's error its
    cause: read by the wrapper's words, a sound file of mode 444 was called damaged."""
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    with pytest.raises(UsageError, match=r"cannot write the Optuna storage \(attempt to write"):
        with storages.storage_errors("sqlite:///results/optuna.db"):
            try:
                raise OperationalError("INSERT INTO trials", {}, readonly)
            except OperationalError as exc:
                wrapper = "An exception is raised during the commit."
                raise optuna.exceptions.StorageInternalError(wrapper) from exc


@pytest.mark.parametrize(
    ("error", "kind", "said"),
    [
        (
            OperationalError("connect", {}, Exception("could not connect")),
            UsageError,
            "cannot open it",
        ),
        (
            DatabaseError("SELECT", {}, Exception("file is not a database")),
            DamagedFileError,
            "damaged",
        ),
    ],
    ids=["a server down", "a damaged file"],
)
def test_a_storage_that_does_not_answer_is_not_called_damaged(
    error: Exception, kind: type, said: str
) -> None:
    """A server down (an OperationalError, itself a DatabaseError) is exit 2, naming the flag;
    only a database that answers with damage is a damaged file."""
    found = storages.not_opened("sqlite:///results/optuna.db", error)
    assert isinstance(found, kind) and said in str(found)


def test_a_user_part_that_holds_a_slash_is_masked_whole() -> None:
    """Not a user name (a token given as one, a path): where a URL is ambiguous, more is
    masked rather than less."""
    label = storages.mask_secrets("postgresql://s3/cret:x@db.lan/optuna")
    assert label == "postgresql://***@db.lan/optuna"
