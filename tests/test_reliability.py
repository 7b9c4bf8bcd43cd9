"""Reliability: resume after a kill, interrupts, divergence, bad input, corrupt data, unsafe files,
atomic writes and run-directory uniqueness."""

from __future__ import annotations

import csv
import itertools
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from benchmark import files, runs
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.data import RAW_FILES, DataError, DigitSumData, load_mnist

REPO = Path(__file__).resolve().parents[1]
# Fields of metrics.json that legitimately differ between two runs of the same config and seed.
TIMING_OR_IDENTITY = {
    "run_id",
    "train_seconds",
    "train_images_per_s",
    "compile_seconds",
    "git_commit",
}


def status_of(run_dir: Path) -> str:
    return json.loads((run_dir / runs.STATUS).read_text())["status"]


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / runs.HISTORY
    return list(csv.DictReader(path.open())) if path.exists() else []


def only_run(results: Path) -> Path:
    (run_dir,) = (results / "runs").iterdir()
    return run_dir


def exit_status(argv: list[str]) -> int:
    """``main``'s exit status, whether it returns it or argparse raises ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@contextmanager
def child(code: str, *args: str, ready: str) -> Iterator[subprocess.Popen]:
    """A Python process running ``code`` with ``args``, once it has printed ``ready``; killed
    (if still alive) when the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == ready
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def tiny(mnist, monkeypatch: pytest.MonkeyPatch) -> DigitSumData:
    """Real images, few of them: the CLI trains in a second. Patched in as ``load_mnist``."""
    data = DigitSumData(
        mnist.train.subset(512), mnist.val.subset(200), mnist.test.subset(200), mnist.root
    )
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *args, **kwargs: data)
    return data


TINY = ["--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--eval-batch-size", "100"]


# ------------------------------------------------------------------ kill, resume, exactness


def bench_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", *map(str, args)]


KILLED_RUN = (
    "run --arch gap_cnn --fusion late_sum --epochs 3 --train-subset 1536 --batch-size 64 "
    "--threads 1"
).split()


def no_seconds(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.slow
def test_sigterm_mid_training_then_resume_equals_uninterrupted(
    tmp_path: Path, mnist_root: Path
) -> None:
    env = {**os.environ, "MNIST_ROOT": str(mnist_root)}
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str) -> subprocess.Popen[bytes]:
        with (logs / f"{name}.out").open("wb") as out, (logs / f"{name}.err").open("wb") as err:
            cmd = bench_cmd(*KILLED_RUN, "--results-dir", tmp_path / name)
            return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err)

    reference, victim = start("reference"), start("victim")  # same seed, run side by side
    try:
        deadline = time.monotonic() + 600
        runs_dir = tmp_path / "victim" / "runs"
        while not (runs_dir.exists() and any(history_rows(d) for d in runs_dir.iterdir())):
            assert victim.poll() is None, (logs / "victim.err").read_text()
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(timeout=120) == 143
        run_dir = only_run(tmp_path / "victim")
        assert one_line((logs / "victim.err").read_text()).endswith("terminated (SIGTERM)")
        assert f"--resume {run_dir}" in (logs / "victim.out").read_text().replace("\n", "")
        assert status_of(run_dir) == "interrupted"
        assert not (run_dir / runs.METRICS).exists()  # so `report` lists it as incomplete
        saved = files.load_torch(run_dir / runs.CHECKPOINT)
        assert 1 <= len(history_rows(run_dir)) == len(saved["history"]) < 3

        resumed = subprocess.run(
            bench_cmd("run", "--resume", run_dir),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert reference.wait(timeout=600) == 0, (logs / "reference.err").read_text()
    finally:
        for proc in (reference, victim):
            proc.kill()
            proc.wait()
    assert status_of(run_dir) == "complete"
    ref_dir = only_run(tmp_path / "reference")
    got = json.loads((run_dir / runs.METRICS).read_text())
    want = json.loads((ref_dir / runs.METRICS).read_text())
    assert got.keys() == want.keys()
    for key in want.keys() - TIMING_OR_IDENTITY:
        assert got[key] == want[key], key  # bit-exact: val/test dicts, params, config ...
    assert want["test"]["digit_acc"] > 0.5  # it learned: the equality is not between blanks
    assert no_seconds(history_rows(run_dir)) == no_seconds(history_rows(ref_dir))


@pytest.mark.slow
def test_sigint_marks_run_interrupted_with_exit_130(tmp_path: Path, mnist_root: Path) -> None:
    env = {**os.environ, "MNIST_ROOT": str(mnist_root)}
    proc = subprocess.Popen(
        bench_cmd("run", "--epochs", "2", "--train-subset", "20000", "--results-dir", tmp_path),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "runs").exists() or not any(
            (d / runs.STATUS).exists() and status_of(d) == "running"
            for d in (tmp_path / "runs").iterdir()
        ):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert one_line(err).endswith("interrupted (SIGINT)")
    run_dir = only_run(tmp_path)
    assert status_of(run_dir) == "interrupted"
    assert not (run_dir / runs.METRICS).exists()


def test_grid_interrupt_keeps_finished_runs_and_says_how_to_resume(
    tiny: DigitSumData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real_train = runs.train
    calls = itertools.count()

    def train_then_sigterm_on_second_run(*args, **kwargs):
        if next(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler turns it into Terminated
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runs, "train", train_then_sigterm_on_second_run)
    code = main(["run", *TINY, "--seeds", "0,1,2", "--results-dir", str(tmp_path)])
    assert code == 143
    first, second = sorted((tmp_path / "runs").iterdir(), key=lambda d: runs.load_config(d).seed)
    assert status_of(first) == "complete" and (first / runs.METRICS).exists()
    assert status_of(second) == "interrupted" and not (second / runs.METRICS).exists()
    out, err = capsys.readouterr()
    out = out.replace("\n", "")
    assert "1 run(s) finished and kept" in out
    assert f"--resume {second}" in out
    assert "1 run(s) of the grid not started" in out
    assert one_line(err).endswith("terminated (SIGTERM)")


def test_signals_are_held_during_a_group_of_writes() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with runs.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True  # the interrupt did not cut the block short
    assert reached


# ------------------------------------------------------------------------------- divergence


def test_non_finite_loss_stops_with_one_line_and_marks_failed(
    tiny: DigitSumData, tmp_path: Path, capsys
) -> None:
    args = ["run", *TINY, "--lr", "1e9", "--schedule", "constant", "--results-dir", str(tmp_path)]
    assert main(args) == 1
    line = one_line(capsys.readouterr().err)
    assert re.fullmatch(
        r".*: training stopped: non-finite loss at epoch 1, step \d+, lr 1e\+09", line
    )
    run_dir = only_run(tmp_path)
    status = json.loads((run_dir / runs.STATUS).read_text())
    assert status["status"] == "failed" and "non-finite loss" in status["message"]
    assert not (run_dir / runs.METRICS).exists()


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--arch", "nope"], "gap_cnn"),  # the message lists the valid choices
        (["--fusion", "nope"], "late_sum"),
        (["--model-arg", "nope=1"], "width"),
        (["--lr", "-1"], "lr must be > 0"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--seeds", "x"], "comma-separated integers"),
        (["--optimizer", "adam"], "adamw, sgd"),
        (["--lr", "fast"], "invalid float value"),
        (["--train-subset", "10"], "train_subset must be >= batch_size"),
        (["--seed", "1", "--seeds", "1,2"], "not both"),
        (["--resume", "nowhere"], "expected a run directory"),  # relative to tmp_path
        (["--resume", "nowhere", "--epochs", "9"], "drop --epochs"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    flags: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("bad input must be rejected before the data is loaded")

    monkeypatch.setattr("benchmark.data.load_mnist", no_data)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert exit_status(["run", *flags, "--results-dir", str(results)]) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not results.exists()


def test_resume_refuses_a_run_another_process_is_running(tmp_path: Path, capsys) -> None:
    """The run's lock is held by a live process: refused, naming it. A status.json that names a
    live but unrelated process (a reused pid) does not block; neither does a dead holder."""
    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, TrainConfig().to_dict())
    hold = (
        "import sys, time; from pathlib import Path; from benchmark import runs\n"
        "with runs.claimed(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
    )
    with child(hold, str(run_dir), ready="held") as other:
        assert main(["run", "--resume", str(run_dir)]) == 2
        assert f"still running (pid {other.pid} since" in one_line(capsys.readouterr().err)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        runs.write_status(run_dir, "running", pid=sleeper.pid)  # a pid, but not our process
        with runs.claimed(run_dir):  # the killed holder's lock is gone, the sleeper has none
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------- data


def raw_copy(root: Path, mnist_root: Path, damaged: str, damage) -> Path:
    """``root/MNIST/raw`` with links to the real files, except ``damaged``: a damaged copy."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        source = mnist_root / "MNIST" / "raw" / name
        if name == damaged:
            (raw / name).write_bytes(damage(source.read_bytes()))
        else:
            (raw / name).symlink_to(source)
    return raw / damaged


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda b: b[:-100], "truncated or corrupt"),
        (lambda b: b"\x00\x00\x08\x03" + b[4:], "IDX magic number 2051, expected 2049"),
    ],
    ids=["truncated", "wrong-magic"],
)
def test_corrupt_idx_file_is_named(
    damage, expected: str, tmp_path: Path, mnist_root: Path, capsys
) -> None:
    bad = raw_copy(tmp_path / "mnist", mnist_root, "t10k-labels-idx1-ubyte", damage)
    with pytest.raises(DataError, match=expected) as info:
        load_mnist(tmp_path / "mnist", download=False)
    assert str(bad) in str(info.value)
    results = tmp_path / "results"
    code = main(["run", "--data-dir", str(tmp_path / "mnist"), "--results-dir", str(results)])
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert str(bad) in line and expected in line
    assert not results.exists()


def test_empty_data_dir_lists_places_searched_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("MNIST_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)

    class OfflineMNIST:  # what torchvision does without a network: make raw/, then fail
        def __init__(self, root: str, **kwargs) -> None:
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr("torchvision.datasets.MNIST", OfflineMNIST)
    with pytest.raises(DataError, match="looked in"):
        load_mnist(empty, download=False)
    code = main(["run", "--data-dir", str(empty), "--results-dir", str(tmp_path / "results")])
    assert code == 1
    line = one_line(capsys.readouterr().err)
    assert str(empty / "MNIST" / "raw") in line  # the flag's directory alone: no fall-back
    assert "download failed" in line
    assert list(empty.iterdir()) == []  # the failed download left no empty folders behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


# --------------------------------------------------------------------------- unsafe files


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_by_load_run_resume_and_predict(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, TrainConfig(fusion="late_sum").to_dict())
    runs.write_status(run_dir, "interrupted")
    for name in (runs.MODEL, runs.CHECKPOINT):
        torch.save({"encoder.weight": Payload(marker)}, run_dir / name)
    image = tmp_path / "digit.png"
    page = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(page).line([(20, 8), (20, 32)], fill=0, width=3)  # a "1"
    page.save(image)

    with pytest.raises(files.UnreadableFileError, match="refused"):
        runs.load_run(run_dir)
    assert main(["run", "--resume", str(run_dir)]) == 1
    assert "refused to load" in one_line(capsys.readouterr().err)
    assert main(["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]) == 1
    assert "refused to load" in one_line(capsys.readouterr().err)
    assert not marker.exists()
    torch.load(run_dir / runs.MODEL, weights_only=False)  # unsafe load: the payload does run
    assert marker.exists()


def test_truncated_checkpoint_is_one_line_on_resume(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, TrainConfig().to_dict())
    torch.save({"step": 1}, run_dir / runs.CHECKPOINT)
    data = (run_dir / runs.CHECKPOINT).read_bytes()
    (run_dir / runs.CHECKPOINT).write_bytes(data[: len(data) // 2])
    assert main(["run", "--resume", str(run_dir)]) == 1
    assert "truncated or not a torch file" in one_line(capsys.readouterr().err)


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


def frozen_clock_and_colliding_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run dir gets the same time stamp, and tokens repeat: only mkdir keeps them apart."""
    counter = itertools.count()
    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20250101-000000")
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: f"{next(counter) // 3:06x}")


def make_dirs(results: Path, count: int) -> list[str]:
    return [runs.new_run_dir(results, TrainConfig()).name for _ in range(count)]


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
