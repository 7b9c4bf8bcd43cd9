"""Reliability: divergence, one process per run (locks, racing resumes), atomic writes and
run-directory uniqueness. Signals, bad flags and damaged files have their own modules."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from conftest import HOLDS_RUN, child, one_line, only_run

from benchmark import files, rundir
from benchmark.cli import main
from benchmark.config import TrainConfig

SMALL = ["--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--eval-batch-size", "100"]


# ------------------------------------------------------------------------------- divergence


def test_non_finite_loss_stops_with_one_line_and_marks_failed(
    small_data, tmp_path: Path, capsys
) -> None:
    args = ["run", *SMALL, "--lr", "1e9", "--schedule", "constant", "--results-dir", str(tmp_path)]
    assert main(args) == 1
    line = one_line(capsys.readouterr().err)
    # the loss is looked at every 25 steps and at the epoch's last, 4 here: not "at step 4"
    assert re.fullmatch(
        r".*: training stopped: non-finite loss at epoch 1, steps 1-4, lr 1e\+09", line
    )
    run_dir = only_run(tmp_path)
    status = json.loads((run_dir / rundir.STATUS).read_text())
    assert status["status"] == "failed" and "non-finite loss" in status["message"]
    assert not (run_dir / rundir.METRICS).exists()


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, MemoryError])
def test_out_of_memory_stops_with_one_line_and_marks_failed(
    error: type[Exception], small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Left "running", the run was listed as one whose process may have been killed, to be
    resumed: at the same batch size it runs out of memory again."""
    from benchmark import runs

    def out_of_memory(*args, **kwargs):
        raise error("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runs, "train", out_of_memory)
    assert main(["run", *SMALL, "--results-dir", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    name = error.__name__
    assert line.endswith(f"out of memory ({name}); try a smaller --batch-size or model")
    status = json.loads((only_run(tmp_path) / rundir.STATUS).read_text())
    assert (status["status"], status["message"]) == ("failed", f"{name}: out of memory")


# ------------------------------------------------------------------------ one process per run


def test_resume_refuses_a_run_another_process_is_running(tmp_path: Path, capsys) -> None:
    """The run's lock is held by a live process: refused, naming it. A holder gone (killed)
    blocks no more: the kernel dropped its lock."""
    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig().to_dict())
    with child(HOLDS_RUN, str(run_dir), ready="held") as other:
        assert main(["run", "--resume", str(run_dir)]) == 2
        assert f"still running (pid {other.pid} since" in one_line(capsys.readouterr().err)
    with rundir.claimed(run_dir):  # the killed holder's lock is gone
        assert (run_dir / rundir.LOCK).is_file()


def test_training_refuses_a_run_another_process_holds(tmp_path: Path) -> None:
    """A run started here and resumed by hand in another shell at once: whichever claims the
    run directory first trains it; the other is refused before it writes anything."""
    from benchmark import runs
    from benchmark.errors import UsageError

    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig().to_dict())
    with child(HOLDS_RUN, str(run_dir), ready="held") as other:
        with pytest.raises(UsageError, match=f"still running \\(pid {other.pid} since"):
            runs.execute(TrainConfig(), None, run_dir, None)
    assert sorted(p.name for p in run_dir.iterdir()) == [rundir.LOCK, rundir.CONFIG]


@pytest.mark.slow
def test_two_resumes_started_at_once_train_the_run_once(
    tmp_path: Path, synthetic_root: Path
) -> None:
    """Slow for the two processes' start-up, not for the data: the synthetic set serves."""
    cfg = TrainConfig(arch="small_cnn", epochs=1, train_subset=256, eval_batch_size=5000,
                      data_dir=str(synthetic_root), threads=1)  # fmt: skip
    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, cfg.to_dict())
    rundir.write_status(run_dir, "interrupted", "stopped by a signal")
    argv = [sys.executable, "-m", "benchmark", "run", "--resume", str(run_dir)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    loser = results[1][1]  # refused while the other trains, or after it finished
    assert "still running (pid" in loser or "already complete" in loser, loser
    assert loser.count("\n") == 1
    assert rundir.read_metrics(run_dir)["seed"] == 0


# ---------------------------------------------------------------- atomic files, run dirs


class Interrupting:
    """Pickling this raises KeyboardInterrupt: a signal in the middle of writing a file."""

    def __reduce__(self):
        raise KeyboardInterrupt


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    files.save_torch(path, {"step": 1, "w": torch.ones(1000)})
    with pytest.raises(KeyboardInterrupt):
        files.save_torch(path, {"step": 2, "w": torch.zeros(1000), "x": Interrupting()})
    assert files.load_torch(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_a_file_replaced_keeps_its_mode_and_a_read_only_one_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename of an atomic write needs only the folder's permission: a bench CSV made
    read-only (444) was replaced all the same, and came back 644."""
    import os

    path = tmp_path / "cpu-fp32.csv"
    path.write_text("a\n")
    path.chmod(0o640)
    files.write_text(path, "a\nb\n")
    assert path.read_text() == "a\nb\n" and path.stat().st_mode & 0o777 == 0o640
    path.chmod(0o444)  # (root may write it: who may is asked of os.access, as for a user)
    monkeypatch.setattr(os, "access", lambda p, mode: not (Path(p) == path and mode == os.W_OK))
    with pytest.raises(files.WriteFailed, match="Permission denied"):
        files.write_text(path, "c\n")
    assert path.read_text() == "a\nb\n" and path.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["cpu-fp32.csv"]  # no temporary left


def test_an_atomic_write_reaches_the_disk_before_it_replaces_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an fsync before the rename, a power cut can leave the new name on an empty
    file: the old checkpoint gone and the new one never written."""
    import os

    calls = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("replace") or replace(a, b))
    files.write_text(tmp_path / "metrics.json", "{}\n")
    assert calls == ["fsync", "replace"]
    assert (tmp_path / "metrics.json").read_text() == "{}\n"


def test_a_full_disk_that_torch_reports_as_a_runtime_error_is_write_failed_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save raises a RuntimeError while handling the OSError of a full disk: the write
    is the one line naming the file all the same, not a traceback, and the old file stays."""
    import errno
    import os

    path = tmp_path / "checkpoint.pt"
    files.save_torch(path, {"step": 1})

    def full_disk(obj, fh) -> None:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0")  # noqa: B904

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(files.WriteFailed, match=f"cannot write {path}: No space left on device"):
        files.save_torch(path, {"step": 2})
    monkeypatch.undo()
    assert files.load_torch(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def frozen_clock_and_colliding_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run dir gets the same time stamp, and tokens repeat: only mkdir keeps them apart."""
    counter = itertools.count()
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: "20250101-000000")
    monkeypatch.setattr(rundir.secrets, "token_hex", lambda n: f"{next(counter) // 3:06x}")


def make_dirs(results: Path, count: int) -> list[str]:
    return [rundir.new_run_dir(results, TrainConfig()).name for _ in range(count)]


def test_run_dirs_never_shared_between_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_clock_and_colliding_tokens(monkeypatch)
    names: list[str] = []
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        names.extend(make_dirs(tmp_path, 4))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == len(set(names)) == 128
    assert len(list((tmp_path / "runs").iterdir())) == 128


def test_run_dirs_never_shared_between_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen_clock_and_colliding_tokens(monkeypatch)  # forked children inherit the same sequence
    with multiprocessing.get_context("fork").Pool(4) as pool:
        batches = pool.starmap(make_dirs, [(tmp_path, 16)] * 4)
    names = [n for batch in batches for n in batch]
    assert len(names) == len(set(names)) == 64
    assert len(list((tmp_path / "runs").iterdir())) == 64
