"""``benchmark.files`` itself: what an atomic write leaves (a new file's mode, its bytes synced
before the rename, a read-only disk said as one), the temporaries a killed writer left, the lock
writers of one file take turns under, the fault suite's kill hook and file-name-safe text. The
commands' use of them is test_reliability.py's, test_faults.py's and test_signals.py's."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import shared_lock_refused

from benchmark import files
from benchmark.errors import UsageError


@pytest.mark.parametrize("closed", ["", "runs"], ids=["the directory", "a folder it writes"])
def test_a_directory_that_cannot_be_entered_is_not_writable(
    closed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Making a file in a directory takes its x bit as well as its w bit: one without it
    passed the check, and the first write failed after the data had loaded."""
    (tmp_path / "runs").mkdir()
    shut = tmp_path / closed
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != shut or not mode & os.X_OK)
    with pytest.raises(UsageError, match=f"{shut} is not writable"):
        files.check_writable(tmp_path, folders=("runs",))


def test_a_new_file_gets_the_usual_mode_not_the_temporarys_0600(tmp_path: Path) -> None:
    """mkstemp makes its temporary 0600: renamed as it was, a report or CSV would be readable
    by its owner alone."""
    mask = os.umask(0o027)
    try:
        files.write_text(tmp_path / "report.md", "x\n")
    finally:
        os.umask(mask)
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o640


def test_the_bytes_are_in_the_file_when_it_is_synced_not_still_in_a_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync of a file whose bytes are still in Python's buffer syncs nothing: a power cut
    after the rename leaves the new name on an empty file."""
    sizes = []
    fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: sizes.append(os.fstat(fd).st_size) or fsync(fd))
    files.write_text(tmp_path / "metrics.json", "{}\n" * 100)
    assert sizes == [300]


@pytest.mark.parametrize(
    ("disk_flags", "said"),
    [(os.ST_RDONLY, "Read-only file system"), (0, "Permission denied (the file is read-only)")],
    ids=["read-only disk", "read-only file"],
)
def test_a_file_that_may_not_be_written_says_whether_the_disk_or_the_file_refuses(
    disk_flags: int, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cpu-fp32.csv"
    path.write_text("a\n")
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != path)
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_flag=disk_flags))
    with pytest.raises(files.WriteFailed) as caught:
        files.write_text(path, "b\n")
    assert str(caught.value) == f"cannot write {path}: {said}"
    assert path.read_text() == "a\n"


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        (".checkpoint.pt.a1b2_c3d.tmp", True),
        (".metrics.json.k9x8y7z6.tmp", True),
        ("metrics.json.k9x8y7z6.tmp", False),  # not hidden: a user's
        (".metrics.json.k9x8y7z6.tmp.bak", False),
        (".metrics.json.short.tmp", False),
        ("notes.tmp", False),
    ],
)
def test_only_our_temporaries_are_removed(name: str, ours: bool, tmp_path: Path) -> None:
    (tmp_path / name).write_text("left")
    files.remove_temporaries(tmp_path)
    assert (tmp_path / name).exists() is not ours


def test_a_temporary_that_cannot_be_removed_stays_without_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only disk the claim of a run goes on; the next claim tries again."""
    left = tmp_path / ".checkpoint.pt.a1b2c3d4.tmp"
    left.write_text("left")

    def refused(path: Path, missing_ok: bool = False) -> None:
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(Path, "unlink", refused)
    assert files.remove_temporaries(tmp_path) == []
    assert left.exists()


def test_a_lock_is_exclusive_while_held_and_free_once_left(tmp_path: Path) -> None:
    """Two bench processes appending to one CSV take turns: a shared lock, none, or one never
    released would lose a row or hang the next writer."""
    lock = tmp_path / "bench" / "cpu-fp32.csv.lock"  # its folder not made yet
    with files.locked(lock):
        assert shared_lock_refused(lock)
    assert not shared_lock_refused(lock)
    with files.locked(lock):  # and again, in the same process
        assert shared_lock_refused(lock)


def test_a_lock_that_cannot_be_made_is_none_rather_than_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with files.locked(blocker / "cpu-fp32.csv.lock"):
        entered = True
    assert entered and blocker.read_text() == "x"


@pytest.mark.parametrize(
    ("setting", "stopped"),
    [
        ("during:m.json", [("none", True, signal.SIGKILL)]),
        ("before:m.json:2", [("1", False, signal.SIGKILL)]),
        ("after:m.json:3:STOP", [("3", False, signal.SIGSTOP)]),
        ("during:other.json", []),
    ],
)
def test_the_kill_hook_stops_the_nth_write_of_its_file_at_its_moment(
    setting: str,
    stopped: list[tuple[str, bool, int]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``DIGITSUM_TEST_KILL_AT``, which the slow fault suite kills runs by: before the write,
    ``during`` (written, not renamed: a temporary beside the old file) or after it, at the
    n-th write of that file, with SIGKILL or SIGSTOP."""
    path = tmp_path / "m.json"
    seen = []

    def kill(pid: int, sig: int) -> None:
        temporary = any(files.TEMPORARY.fullmatch(p.name) for p in tmp_path.iterdir())
        seen.append((path.read_text() if path.exists() else "none", temporary, sig))

    monkeypatch.setenv(files.KILL_AT, setting)
    monkeypatch.setattr(files, "_writes", Counter())
    monkeypatch.setattr(os, "kill", kill)
    for n in ("1", "2", "3"):
        files.write_text(path, n)
    assert seen == stopped


@pytest.mark.parametrize(
    ("text", "name"),
    [("timm:resnet10t", "timm-resnet10t"), ("a  b//c", "a-b-c"), ("/x y/", "x-y")]
    + [("v1.2_b-c", "v1.2_b-c")],
)
def test_slug_replaces_each_run_of_unsafe_characters_by_one_dash_and_trims_them(
    text: str, name: str
) -> None:
    """Study and run directory names are made with it: a change renames (and so loses) them."""
    assert files.slug(text) == name


@pytest.mark.parametrize(
    ("value", "number"),
    [(2**63 - 1, True), (2**63, False), (-(2**63), True), (-(2**63) - 1, False)]
    + [(1.5, True), (float("inf"), False), (True, False), ("1", False)],
)
def test_a_number_is_finite_and_an_integer_one_within_64_bits(value: object, number: bool) -> None:
    assert files.is_number(value) is number


def test_a_value_json_does_not_know_is_written_as_its_text(tmp_path: Path) -> None:
    """A path or a dtype among a record's values is written as its text, not a TypeError that
    lost the record."""
    files.write_json(tmp_path / "metrics.json", {"data_dir": Path("/data"), "epochs": 2})
    assert files.read_json(tmp_path / "metrics.json") == {"data_dir": "/data", "epochs": 2}
