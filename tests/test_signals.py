"""Signals: SIGTERM / SIGINT mid-training leave a resumable run whose resume equals an
uninterrupted one; a grid keeps its finished runs; writes are grouped against signals; a run
that completed stays complete whatever arrives as it closes; SIGKILL's leftovers are swept."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    REPO,
    STOPPED_BY,
    child,
    exit_status,
    interrupted_run,
    one_line,
    only_run,
)

from benchmark import files, rundir, runs
from benchmark.cli import main
from benchmark.errors import UsageError

# Fields of metrics.json that legitimately differ between two runs of the same config and seed.
TIMING_OR_IDENTITY = {
    "run_id",
    "train_seconds",
    "train_images_per_s",
    "compile_seconds",
    "git_commit",
}


def status_of(run_dir: Path) -> str:
    return json.loads((run_dir / rundir.STATUS).read_text())["status"]


def history_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / rundir.HISTORY
    return list(csv.DictReader(path.open())) if path.exists() else []


SMALL = ["--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--eval-batch-size", "100"]


# ------------------------------------------------------------------ kill, resume, exactness


def bench_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", *map(str, args)]


KILLED_RUN = (
    "run --arch tiny_resnet --fusion late_sum --epochs 3 --train-subset 1536 --batch-size 64 "
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
        assert not (run_dir / rundir.METRICS).exists()  # so `report` lists it as incomplete
        saved = files.load_torch(run_dir / rundir.CHECKPOINT)
        assert 1 <= len(history_rows(run_dir)) == len(saved["history"]) < 3

        # the resume in this process (the kill is what needs a process of its own): the same
        # code, without a child's seconds of start-up, beside the reference still training
        threads = torch.get_num_threads()
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("MNIST_ROOT", str(mnist_root))
                assert exit_status(["run", "--resume", str(run_dir)]) == 0
        finally:
            torch.set_num_threads(threads)
        assert reference.wait(timeout=600) == 0, (logs / "reference.err").read_text()
    finally:
        for proc in (reference, victim):
            proc.kill()
            proc.wait()
    assert status_of(run_dir) == "complete"
    ref_dir = only_run(tmp_path / "reference")
    got = json.loads((run_dir / rundir.METRICS).read_text())
    want = json.loads((ref_dir / rundir.METRICS).read_text())
    assert got.keys() == want.keys()
    for key in want.keys() - TIMING_OR_IDENTITY:
        assert got[key] == want[key], key  # bit-exact: val/test dicts, params, config ...
    assert want["test"]["digit_acc"] > 0.5  # it learned: the equality is not between blanks
    assert no_seconds(history_rows(run_dir)) == no_seconds(history_rows(ref_dir))


@pytest.mark.slow  # a second process: its start-up and CPU probe take 10-15 s on 2 cores
def test_sigint_marks_run_interrupted_with_exit_130(tmp_path: Path, synthetic_root: Path) -> None:
    env = {**os.environ, "MNIST_ROOT": str(synthetic_root)}
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
            (d / rundir.STATUS).exists() and status_of(d) == "running"
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
    assert not (run_dir / rundir.METRICS).exists()


def test_grid_interrupt_keeps_finished_runs_and_says_how_to_resume(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real_train = runs.train
    calls = itertools.count()

    def train_then_sigterm_on_second_run(*args, **kwargs):
        if next(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler turns it into Terminated
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runs, "train", train_then_sigterm_on_second_run)
    code = main(["run", *SMALL, "--seeds", "0,1,2", "--results-dir", str(tmp_path)])
    assert code == 143
    first, second = sorted((tmp_path / "runs").iterdir(), key=lambda d: runs.load_config(d).seed)
    assert status_of(first) == "complete" and (first / rundir.METRICS).exists()
    assert status_of(second) == "interrupted" and not (second / rundir.METRICS).exists()
    out, err = capsys.readouterr()
    out = out.replace("\n", "")
    assert "1 run finished and kept" in out
    assert f"--resume {second}" in out
    assert "1 run of the grid not started" in out
    assert one_line(err).endswith("terminated (SIGTERM)")


def test_a_grid_stopped_as_a_run_closed_counts_that_run_finished_and_resumes_none(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The signal lands in the first run's final writes (held until they end): that run is
    complete, so it is counted kept, not offered to ``--resume`` (which would refuse it)."""
    real_status = rundir.write_status

    def status_then_signal(run_dir: Path, status: str, *args, **kwargs) -> None:
        real_status(run_dir, status, *args, **kwargs)
        if status == "complete":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(runs, "write_status", status_then_signal)
    code = main(["run", *SMALL, "--seeds", "0,1,2", "--results-dir", str(tmp_path)])
    assert code == 130
    (first,) = (tmp_path / "runs").iterdir()
    assert status_of(first) == "complete"
    out = capsys.readouterr().out.replace("\n", "")
    assert "interrupted: 1 run finished and kept, 2 runs of the grid not started" in out
    assert "--resume" not in out


def test_a_single_run_interrupted_says_only_how_to_resume(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """No grid to count ("0 run(s) finished and kept, 0 run(s) of the grid not started")."""
    real_train = runs.train

    def sigint_then_train(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runs, "train", sigint_then_train)
    assert main(["run", *SMALL, "--results-dir", str(tmp_path)]) == 130
    out = capsys.readouterr().out.replace("\n", "")
    assert (
        f"interrupted; resume this one with  python -m benchmark run --resume {only_run(tmp_path)}"
        in out
    )
    assert "finished and kept" not in out and "grid" not in out


def test_signals_are_held_during_a_group_of_writes() -> None:
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with rundir.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True  # the interrupt did not cut the block short
    assert reached


def test_of_signals_held_during_a_group_of_writes_the_first_is_raised_after_it() -> None:
    """Ctrl-C, then a SIGTERM from a supervisor giving up: the run stops as interrupted
    (exit 130), as the first signal said, not as the one that came last."""
    heard: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, _: heard.append(signum)) for s in watched}
    try:
        with rundir.signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            assert heard == []
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert heard == [signal.SIGINT]


def test_a_signal_after_the_checkpoint_waits_for_the_history_of_its_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C as checkpoint.pt is renamed into place: history.csv is written too before the
    run stops, so the two agree (a checkpoint an epoch ahead of its history is mended only on
    resume)."""
    from types import SimpleNamespace

    epoch = SimpleNamespace(row=lambda: {"epoch": 1, "val_sum_acc": 0.5})
    state = SimpleNamespace(state_dict=lambda: {"step": 1}, history=[epoch])
    save = files.save_torch

    def saved_then_interrupted(path: Path, obj: object) -> None:
        save(path, obj)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(files, "save_torch", saved_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        runs.save_checkpoint(tmp_path, state)
    assert history_rows(tmp_path) == [{"epoch": "1", "val_sum_acc": "0.5"}]


def test_a_group_of_writes_off_the_main_thread_goes_on_without_holding_signals() -> None:
    """Python lets only the main thread set a signal handler: a run saved from another thread
    (a library caller's) raised ValueError at its first checkpoint."""
    import threading

    done: list[bool] = []

    def writes() -> None:
        with rundir.signals_deferred():
            done.append(True)

    writer = threading.Thread(target=writes)
    writer.start()
    writer.join()
    assert done == [True]


def test_a_temporary_left_by_a_killed_writer_is_removed_when_the_run_is_next_claimed(
    tmp_path: Path,
) -> None:
    """SIGKILL in the middle of an atomic write leaves its temporary (no clean-up runs); the
    next claim of the run directory (every resume) removes it, and nothing else."""
    import signal

    from benchmark import files, rundir

    run_dir = interrupted_run(tmp_path / "run")
    writer = (
        "import sys, time; from pathlib import Path; from benchmark import files\n"
        "class Slow:\n"
        "    def __reduce__(self):\n"
        "        print('writing', flush=True); time.sleep(60); return (int, ())\n"
        "files.save_torch(Path(sys.argv[1]) / 'checkpoint.pt', {'w': Slow()})\n"
    )
    with child(writer, str(run_dir), ready="writing") as proc:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    (left,) = [p for p in run_dir.iterdir() if files.TEMPORARY.fullmatch(p.name)]
    assert left.name.startswith(".checkpoint.pt.")
    (run_dir / "notes.tmp").write_text("a user's file")
    (run_dir / ".hidden.tmp").write_text("not one of ours either")
    with rundir.claimed(run_dir):
        assert not left.exists()
    names = {p.name for p in run_dir.iterdir()}
    assert names == {rundir.CONFIG, rundir.STATUS, rundir.LOCK, "notes.tmp", ".hidden.tmp"}


@pytest.mark.parametrize("keep", [False, True, "unsaid", "unreadable"])
def test_a_run_killed_after_writing_its_metrics_is_closed_when_next_claimed(
    keep: bool | str, tmp_path: Path
) -> None:
    """SIGKILL between metrics.json and the status left a complete run "running" with its
    checkpoint: the next claim marks it complete and removes the checkpoint, unless kept: by
    its config, or where config.json does not say (a run from before ``--keep-checkpoint``)
    or cannot be read (unsure: left)."""
    from benchmark.config import TrainConfig
    from benchmark.metrics import names

    cfg = TrainConfig(keep_checkpoint=keep is True)
    run_dir = tmp_path / "run"
    values = cfg.to_dict()
    if keep == "unsaid":
        del values["keep_checkpoint"]
    files.write_json(run_dir / rundir.CONFIG, values)
    rundir.write_status(run_dir, "running")
    files.save_torch(run_dir / rundir.CHECKPOINT, {"step": 1})
    metrics = {"arch": cfg.arch, "fusion": cfg.fusion, "config_hash": cfg.config_hash()}
    metrics |= {"seed": 0, "params": 10, "test": {name: 0.5 for name in names()}}
    files.write_json(run_dir / rundir.METRICS, metrics)
    if keep == "unreadable":
        (run_dir / rundir.CONFIG).write_text("{")
    with rundir.claimed(run_dir):
        pass
    assert rundir.read_status(run_dir)[0] == "complete"
    assert (run_dir / rundir.CHECKPOINT).exists() == (keep is not False)


@pytest.mark.parametrize("when", ["during-the-last-writes", "after-them"])
@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("how", ["run", "resume"])
def test_a_run_that_completed_exits_0_when_a_signal_arrives_as_it_closes(
    how: str, signum: str, when: str, small_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The signal changes nothing: the run is complete, so the exit status says so."""
    import signal

    from benchmark import rundir, runs
    from benchmark.config import TrainConfig

    sig = getattr(signal, signum)
    real_status, real_execute = rundir.write_status, runs._execute

    def status_then_signal(run_dir: Path, status: str, *args, **kwargs) -> None:
        real_status(run_dir, status, *args, **kwargs)
        if status == "complete":  # inside the deferred group of the final writes
            os.kill(os.getpid(), sig)

    def execute_then_signal(*args, **kwargs):  # the run's files are all written
        metrics = real_execute(*args, **kwargs)
        os.kill(os.getpid(), sig)
        return metrics

    if when == "during-the-last-writes":
        monkeypatch.setattr(runs, "write_status", status_then_signal)
    else:
        monkeypatch.setattr(runs, "_execute", execute_then_signal)
    if how == "run":
        assert exit_status(["run", *SMALL, "--results-dir", str(tmp_path)]) == 0
        (run_dir,) = (tmp_path / "runs").iterdir()
    else:
        cfg = TrainConfig(train_subset=256, batch_size=64, epochs=1, eval_batch_size=100)
        run_dir = interrupted_run(tmp_path / "run", cfg)
        assert exit_status(["run", "--resume", str(run_dir)]) == 0
    assert capsys.readouterr().err == ""
    assert rundir.read_status(run_dir)[0] == "complete"


@pytest.mark.parametrize("when", ["in-the-run's-writes", "in-the-tracker's"])
def test_a_tracker_hears_a_run_complete_when_a_signal_lands_as_it_closes(
    when: str, small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow marked such a run KILLED, without its test metrics or files, while on disk it
    was complete and the command exited 0."""
    from benchmark import trackers

    calls: list[str] = []

    class Heard(trackers.Tracker):
        def finish(self, metrics: dict, run_dir: Path) -> None:
            if when == "in-the-tracker's":
                os.kill(os.getpid(), signal.SIGINT)  # held until the tracker has heard it all
            calls.append(f"finish {metrics['test']['sum_acc'] >= 0}")

        def close(self, status: str) -> None:
            calls.append(f"close {status}")

    real_status = rundir.write_status

    def status_then_signal(run_dir: Path, status: str, *args, **kwargs) -> None:
        real_status(run_dir, status, *args, **kwargs)
        if status == "complete" and when == "in-the-run's-writes":
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(runs, "open_tracker", lambda cfg, run_dir: Heard())
    monkeypatch.setattr(runs, "write_status", status_then_signal)
    assert exit_status(["run", *SMALL, "--results-dir", str(tmp_path)]) == 0
    assert calls == ["finish True", "close complete"]
    assert status_of(only_run(tmp_path)) == "complete"


def as_command(monkeypatch: pytest.MonkeyPatch, name: str, command: object) -> None:
    """``main([])`` runs ``command`` as the command ``name``, whatever the parser would do."""
    from benchmark import cli

    class Parser:
        def parse_known_args(self, argv: object) -> tuple[object, list[str]]:
            return type("Args", (), {"command": name, "func": staticmethod(command)}), []

    monkeypatch.setattr(cli, "build_parser", Parser)


@pytest.mark.parametrize(("signum", "code", "said"), STOPPED_BY)
def test_a_library_clean_up_cut_short_by_a_signal_is_that_signal(
    signum: int, code: int, said: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A SIGTERM that lands inside Optuna's storage commit of a trial makes Optuna's own
    ``finally`` raise ``UnboundLocalError`` (seen when a ladder's tuning was stopped): the command
    still ends as stopped by that signal, one line and its exit status, no traceback."""
    from benchmark import cli

    def command(args: object) -> int:
        try:
            os.kill(os.getpid(), signum)  # the real handler raises here
            time.sleep(5)
            updated_state = "COMPLETE"
        finally:  # as Optuna's _run_trial: the name is unbound when the signal came first
            if updated_state == "COMPLETE":
                pytest.fail("the signal did not interrupt")
        return 0

    as_command(monkeypatch, "tune", command)
    assert main([]) == code
    assert capsys.readouterr().err == f"{cli.program_name()} tune: {said}\n"


@pytest.mark.parametrize(("signum", "code", "said"), STOPPED_BY)
def test_a_library_that_swallows_the_signal_and_raises_another_error_is_that_signal(
    signum: int, code: int, said: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Ctrl-C during an ONNX export: the exporter caught what its half-done import raised and
    wrapped an AttributeError, and the command told the user that the model could not be
    converted, exit 2 ("export --format torchscript instead")."""
    from benchmark import cli

    def command(args: object) -> int:
        try:
            os.kill(os.getpid(), signum)  # the real handler raises here
            time.sleep(5)
        except KeyboardInterrupt:  # swallowed, as a library's broad handler may
            pass
        raise UsageError("--format onnx: the ONNX exporter cannot convert this model")

    as_command(monkeypatch, "export", command)
    assert main([]) == code
    assert capsys.readouterr().err == f"{cli.program_name()} export: {said}\n"
    monkeypatch.undo()
    assert main(["list", "--encoders", "nope"]) == 2  # the signal is not remembered after
