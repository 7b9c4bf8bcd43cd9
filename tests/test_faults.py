"""Faults lose nothing (issue 23): a full or read-only disk ends in one line and exit 1 with the
last checkpoint intact and a resume that equals an uninterrupted run; a kill at any write point
of an epoch is mended by the resume; a stream of signals ends in exit 130/143, no traceback and
status "interrupted". The real faults (a small filesystem, SIGKILL through the
``DIGITSUM_TEST_KILL_AT`` hook of ``benchmark.files``, signal streams) are the slow tier."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, STOPPED_BY, exit_status, one_line, only_run, read_only

from benchmark import files, rundir, runs
from benchmark.commands.common import interrupts_as_exceptions
from benchmark.errors import WriteFailed

SMALL = ["--train-subset", "256", "--batch-size", "64", "--epochs", "2", "--eval-batch-size", "100"]
SMALL += ["--precision", "fp32", "--no-channels-last"]  # set: no CPU probe, whose notes are lines
# The subprocess runs: tiny, fixed execution (no CPU probe), one thread so that runs compare
# bit for bit; tiny_resnet, whose evaluation (20,000 images a run, most of a run's time) is the
# cheapest of the built-in encoders.
RUN = (
    "run --arch tiny_resnet --epochs 2 --train-subset 256 --batch-size 128 --threads 1 "
    "--precision fp32 --no-channels-last"
).split()
TIMING_OR_IDENTITY = {"run_id", "train_seconds", "train_images_per_s", "compile_seconds"}


def status_of(run_dir: Path) -> str:
    return rundir.read_status(run_dir)[0]


def history(run_dir: Path) -> list[dict[str, str]]:
    """history.csv's rows without the epoch timings."""
    with (run_dir / rundir.HISTORY).open() as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


# ------------------------------------------------------------------------------- fast tier


def test_a_write_the_disk_refuses_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save re-raises the disk's OSError as a RuntimeError; either way the error is
    ``WriteFailed`` naming the file (not the temporary), the old file stays, no temporary."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    files.write_text(tmp_path / "a.txt", "old")
    files.save_torch(tmp_path / "c.pt", {"step": 1})
    real_fdopen = os.fdopen

    def full(fd: int, mode: str) -> object:
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode, buffering=0)

    monkeypatch.setattr(os, "fdopen", full)
    for path, write in (
        (tmp_path / "a.txt", files.write_text),
        (tmp_path / "c.pt", files.save_torch),
    ):
        with pytest.raises(WriteFailed) as caught:
            write(path, "new" if path.suffix == ".txt" else {"step": 2})
        assert str(caught.value) == f"cannot write {path}: No space left on device"
        assert caught.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert files.load_torch(tmp_path / "c.pt") == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.pt"]


def test_a_full_disk_mid_run_is_one_line_even_when_the_status_cannot_be_written(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The second epoch's checkpoint and every later status write fail: one line naming the
    file and the cause, exit 1, the first epoch's checkpoint and history intact, status left as
    it was; after the cause is gone, ``--resume`` finishes the run."""
    real_save, real_status = files.save_torch, rundir.write_status
    saves = []

    def save_then_full(path: Path, obj: object) -> None:
        saves.append(path.name)
        if len(saves) > 1:
            raise WriteFailed(path, OSError(errno.ENOSPC, "No space left on device"))
        real_save(path, obj)

    def status_refused(*args: object, **kwargs: object) -> None:
        raise WriteFailed(args[0], OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(files, "save_torch", save_then_full)
    monkeypatch.setattr(rundir, "write_status", status_refused)  # the error path's writes
    assert exit_status(["run", *SMALL, "--results-dir", str(tmp_path)]) == 1
    run_dir = only_run(tmp_path)
    line = one_line(capsys.readouterr().err)
    assert line == (
        f"python -m benchmark run: error: cannot write {run_dir / rundir.CHECKPOINT}: No space "
        f"left on device; once fixed, resume with `python -m benchmark run --resume {run_dir}`"
    )
    assert status_of(run_dir) == "running"  # it could not be written: the message did not care
    assert len(files.load_torch(run_dir / rundir.CHECKPOINT)["history"]) == len(history(run_dir))
    assert len(history(run_dir)) == 1
    monkeypatch.setattr(files, "save_torch", real_save)
    monkeypatch.setattr(rundir, "write_status", real_status)
    assert exit_status(["run", "--resume", str(run_dir)]) == 0
    assert status_of(run_dir) == "complete" and len(history(run_dir)) == 2


def test_resume_rebuilds_a_history_left_an_epoch_short(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between the last checkpoint's rename and history.csv's (simulated: the row
    removed) is mended by the resume, although no epoch is left to rewrite history.csv."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    real = runs.final_evaluation
    monkeypatch.setattr(runs, "final_evaluation", interrupted)
    assert exit_status(["run", *SMALL, "--results-dir", str(tmp_path)]) == 130
    run_dir = only_run(tmp_path)
    full = (run_dir / rundir.HISTORY).read_text()
    assert len(full.splitlines()) == 3
    (run_dir / rundir.HISTORY).write_text("".join(full.splitlines(keepends=True)[:2]))
    monkeypatch.setattr(runs, "final_evaluation", real)
    assert exit_status(["run", "--resume", str(run_dir)]) == 0
    assert (run_dir / rundir.HISTORY).read_text() == full


def test_a_disk_that_refuses_the_weights_leaves_no_metrics_json(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """metrics.json completes a run, so it is written after model.pt: written first, a full disk
    at model.pt left a run every reader took as complete, with no weights to predict with."""
    from benchmark.trainer import build_state

    real_save = files.save_torch
    # no training or evaluation: what is tested is the order of the last writes
    monkeypatch.setattr(runs, "train", lambda cfg, data, ex, **kwargs: build_state(cfg, ex))
    monkeypatch.setattr(runs, "final_evaluation", lambda model, *a: ({}, {}, model.state_dict()))

    def weights_refused(path: Path, obj: object) -> None:
        if path.name == rundir.MODEL:
            raise WriteFailed(path, OSError(errno.ENOSPC, "No space left on device"))
        real_save(path, obj)

    monkeypatch.setattr(files, "save_torch", weights_refused)
    assert exit_status(["run", *SMALL, "--epochs", "1", "--results-dir", str(tmp_path)]) == 1
    run_dir = only_run(tmp_path)
    assert not (run_dir / rundir.METRICS).exists()
    assert status_of(run_dir) == "failed"
    assert one_line(capsys.readouterr().err).endswith(
        f"once fixed, resume with `python -m benchmark run --resume {run_dir}`"
    )


def test_a_second_signal_during_the_clean_up_is_ignored() -> None:
    """The first SIGINT interrupts; those that follow while it is handled (Ctrl-C held down)
    and a SIGTERM do nothing; the handlers in place before are back afterwards."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    cleaned = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_as_exceptions():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
                pytest.fail("not interrupted")
            except KeyboardInterrupt:
                for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
                    os.kill(os.getpid(), sig)
                    time.sleep(0.01)
                cleaned = True
                raise
    assert cleaned
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sqlalchemy_noise_is_held_back_only_while_the_process_stops(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An interrupt raised inside a query makes SQLAlchemy's pool log "Error closing cursor"
    with tracebacks: held back once a signal is stopping the process, shown before."""
    pool = logging.getLogger("sqlalchemy.pool.impl.QueuePool")
    with pytest.raises(KeyboardInterrupt):
        with interrupts_as_exceptions():
            pool.error("before the signal")
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
                pytest.fail("not interrupted")
            except KeyboardInterrupt:
                pool.error("Error closing cursor", exc_info=True)
                raise
    err = capsys.readouterr().err
    assert "before the signal" in err and "Error closing cursor" not in err


# ------------------------------------------------------------------------------- slow tier


def bench(
    *args: str | Path, env: dict[str, str], kill_at: str | None = None
) -> subprocess.Popen[str]:
    """``python -m benchmark ARGS`` as a user would start it; ``kill_at``: the write point
    where it SIGKILLs (or SIGSTOPs) itself."""
    env = {**env, files.KILL_AT: kill_at} if kill_at else env
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def here(*args: str | Path) -> int:
    """``python -m benchmark ARGS`` in this process, for the steps whose process boundary is not
    what a test is about (the resume after a fault, the uninterrupted reference): the same code
    and the same bits (one thread), without a child's seconds of imports; the thread count it
    sets is put back."""
    import torch

    threads = torch.get_num_threads()
    try:
        return exit_status([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def env(synthetic_root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The children's environment; this process's runs (``here``) find the same data."""
    monkeypatch.setenv("MNIST_ROOT", str(synthetic_root))
    return {**os.environ, "MNIST_ROOT": str(synthetic_root)}


@pytest.fixture(scope="module")
def reference(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run every faulted one must equal after its resume (faulted ones run in
    a child and resume here: equal bits across the two are part of what is checked)."""
    out = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNIST_ROOT", str(synthetic_root))
        assert here(*RUN, "--results-dir", out) == 0
    return only_run(out)


def resume(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``run --resume`` in this process: its exit status and what it wrote on stderr."""
    capsys.readouterr()
    code = here("run", "--resume", run_dir)
    return code, capsys.readouterr().err


def assert_same_run(run_dir: Path, ref: Path) -> None:
    """Equal apart from timings: the files, history.csv, metrics.json and the weights."""
    assert status_of(run_dir) == "complete"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in ref.iterdir())
    assert history(run_dir) == history(ref)
    got, want = (json.loads((d / rundir.METRICS).read_text()) for d in (run_dir, ref))
    assert got.keys() == want.keys()
    for key in want.keys() - TIMING_OR_IDENTITY:
        assert got[key] == want[key], key
    import torch

    got, want = (files.load_torch(d / rundir.MODEL) for d in (run_dir, ref))
    assert all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.slow
@pytest.mark.parametrize(
    "point",
    [
        "after:status.json:2",  # just marked running, nothing trained
        "after:checkpoint.pt:1",  # between the checkpoint's and history.csv's renames
        "after:checkpoint.pt:2",  # the same in the last epoch: no later epoch mends history
        "during:checkpoint.pt:2",  # the new checkpoint written, not yet renamed
        "during:history.csv:2",
        "after:model.pt",  # before metrics.json
        "after:metrics.json",  # complete, not yet marked so
        "after:status.json:3",  # marked complete, its checkpoint not yet removed
    ],
)
def test_a_kill_at_any_write_point_then_resume_equals_an_uninterrupted_run(
    point: str, reference: Path, tmp_path: Path, env: dict[str, str], capsys
) -> None:
    proc = bench(*RUN, "--results-dir", tmp_path, env=env, kill_at=point)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, err
    run_dir = only_run(tmp_path)
    if (run_dir / rundir.CHECKPOINT).exists():
        files.load_torch(run_dir / rundir.CHECKPOINT)  # whole, whatever the instant
    code, err = resume(run_dir, capsys)
    if point in ("after:metrics.json", "after:status.json:3"):  # complete: the claim closes it
        assert code == 2 and one_line(err).endswith("the run is already complete")
    else:
        assert code == 0, err
    assert_same_run(run_dir, ref=reference)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs of the test's own (root only; skipped where it cannot be mounted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave: int) -> Path:
    """A file taking all but ``leave`` bytes of the filesystem's free space."""
    stat = os.statvfs(mount)
    filler = mount / "filler"
    with filler.open("wb") as fh:
        try:
            fh.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
            fh.flush()
        except OSError:
            pass
    return filler


def stopped_at(point: str, results: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """A run that has SIGSTOPped itself at ``point``."""
    proc = bench(*RUN, "--results-dir", results, env=env, kill_at=f"{point}:STOP")
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), proc.communicate()
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("room", ["some", "none"])
def test_a_disk_that_fills_mid_run_is_one_line_and_the_resume_is_exact(
    room: str, small_fs: Path, reference: Path, env: dict[str, str], capsys
) -> None:
    """Full after epoch 1: the second checkpoint cannot be written. With a little room left
    the status says "failed"; with none it stays as it was, and the message is the same."""
    proc = stopped_at("after:history.csv:1", small_fs, env)
    filler = fill(small_fs, leave=64 * 1024 if room == "some" else 0)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=600)
    run_dir = only_run(small_fs)
    assert proc.returncode == 1, err
    line = one_line(err)
    assert f"cannot write {run_dir / rundir.CHECKPOINT}: No space left on device" in line
    assert f"resume with `python -m benchmark run --resume {run_dir}`" in line
    assert status_of(run_dir) == ("failed" if room == "some" else "running")
    assert len(files.load_torch(run_dir / rundir.CHECKPOINT)["history"]) == 1
    assert len(history(run_dir)) == 1
    filler.unlink()
    code, err = resume(run_dir, capsys)
    assert code == 0, err
    assert_same_run(run_dir, ref=reference)


@pytest.mark.slow
def test_a_run_directory_that_turns_read_only_mid_run_is_one_line_and_resumes(
    tmp_path: Path, reference: Path, env: dict[str, str], capsys
) -> None:
    proc = stopped_at("after:history.csv:1", tmp_path, env)
    run_dir = only_run(tmp_path)
    with read_only(run_dir) as reason:
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    assert f"cannot write {run_dir / rundir.CHECKPOINT}: {reason}; " in one_line(err)
    assert status_of(run_dir) == "running"  # nothing could be written, the status neither
    assert len(history(run_dir)) == 1
    code, err = resume(run_dir, capsys)
    assert code == 0, err
    assert_same_run(run_dir, ref=reference)


@pytest.mark.slow
def test_report_on_a_full_output_directory_is_one_line(
    small_fs: Path, reference: Path, capsys
) -> None:
    fill(small_fs, leave=0)
    args = ["report", "--runs", str(reference), "--out", str(small_fs)]
    assert exit_status(args) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"python -m benchmark report: error: cannot write {small_fs}/")
    assert line.endswith(": No space left on device")


@pytest.mark.slow
def test_report_on_a_read_only_output_directory_is_one_line(
    tmp_path: Path, reference: Path, capsys
) -> None:
    """Refused before anything is read, as a results directory is for every command (exit 2)."""
    args = ["report", "--runs", str(reference), "--out", str(tmp_path)]
    with read_only(tmp_path):
        assert exit_status(args) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("python -m benchmark report: error: ")
    assert line.endswith(f"--out {tmp_path}: {tmp_path} is not writable")


@pytest.mark.slow
def test_report_with_a_read_only_plots_folder_is_refused_before_report_md_is_replaced(
    tmp_path: Path, reference: Path, capsys
) -> None:
    """plots/ read-only was found after report.md was written: a new report beside old plots."""
    (tmp_path / "plots").mkdir()
    (tmp_path / "report.md").write_text("the last report\n")
    args = ["report", "--runs", str(reference), "--out", str(tmp_path)]
    with read_only(tmp_path / "plots"):
        assert exit_status(args) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"--out {tmp_path}: {tmp_path / 'plots'} is not writable")
    assert (tmp_path / "report.md").read_text() == "the last report\n"


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "said"), STOPPED_BY)
def test_a_stream_of_signals_stops_a_run_cleanly(
    signum: int, code: int, said: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """Ctrl-C held down: signals every few milliseconds from the moment the run trains until the
    process is gone, through its whole clean-up and exit."""
    proc = bench(*RUN, "--epochs", "50", "--results-dir", tmp_path, env=env)
    deadline = time.monotonic() + 300
    runs_dir = tmp_path / "runs"
    while not (runs_dir.exists() and any(status_of(d) == "running" for d in runs_dir.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    sent = 0
    while proc.poll() is None:
        proc.send_signal(signum)
        sent += 1
        time.sleep(0.003)
    out, err = proc.communicate()
    assert sent > 1
    assert proc.returncode == code, err
    assert one_line(err).endswith(said)
    assert "Exception ignored" not in out + err and "Traceback" not in out + err
    run_dir = only_run(tmp_path)
    assert status_of(run_dir) == "interrupted"
    assert f"--resume {run_dir}" in out.replace("\n", "")
