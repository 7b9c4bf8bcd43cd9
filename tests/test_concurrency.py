"""Concurrent workers are first-class: two ``tune`` or two ``compare`` processes started at the
same moment on a fresh results directory both finish, never repeat each other's parameters and
leave the right totals (the schema of a new storage is created once, safely; every worker's
sampler has its own seed stream)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from benchmark import rundir, storages, tuning
from benchmark.config import TrainConfig
from benchmark.trials import counts_towards_budget

REPEATS = 10  # the race is a matter of timing: start the pair again and again
# The first start of each race runs with the slow tier; the other nine are the soak
# (``pytest -m soak``), which any selection that does not name them leaves out (conftest).
ATTEMPTS = [0, *(pytest.param(i, marks=pytest.mark.soak) for i in range(1, REPEATS))]
TINY = ["--arch", "small_cnn", "--fusion", "late_sum", "--epochs", "1", "--train-subset", "256"]


def start_together(argvs: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Start every command within the same instant; wait for all."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmark", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that trained and count towards --trials (a second copy of the defaults, queued
    by both workers at once, is rejected before training and not counted)."""
    return [t for t in study.trials if counts_towards_budget(t)]


@pytest.mark.slow
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_two_tunes_started_at_once_share_one_new_study(
    attempt: int, tmp_path: Path, synthetic_root: Path
) -> None:
    argv = [
        "tune",
        *TINY,
        "--trials",
        "4",
        "--val-subset",
        "500",
        "--data-dir",
        str(synthetic_root),
    ]
    argv += ["--results-dir", str(tmp_path)]
    for proc in start_together([argv, argv], tmp_path):
        assert proc.returncode == 0, proc.stderr[-2000:]
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.load_study(
        study_name=summary.study_name, storage=f"sqlite:///{tmp_path / 'optuna.db'}"
    )
    trials = counted(study)
    assert len(trials) == 4  # a worker that finds the last places held waits for them
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params), "two workers proposed the same parameters"
    assert sum(bool(t.user_attrs.get("defaults")) for t in trials) == 1


@pytest.mark.slow
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_two_compares_started_at_once_train_each_run_once(
    attempt: int, tmp_path: Path, synthetic_root: Path
) -> None:
    argv = ["compare", *TINY, "--trials", "2", "--seeds", "0", "--no-report"]
    argv += ["--eval-batch-size", "2000", "--data-dir", str(synthetic_root)]
    argv += ["--results-dir", str(tmp_path)]
    for proc in start_together([argv, argv], tmp_path):
        assert proc.returncode == 0, proc.stderr[-2000:]
    found = []
    for run_dir in sorted((tmp_path / "runs").glob("*")):
        try:
            found.append(rundir.read_metrics(run_dir))
        except rundir.IncompleteRun:
            pass
    assert sorted(m["tuned"] for m in found) == [False, True]  # each final run exactly once
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    (tuned,) = [n for n in names if n.startswith("small_cnn__late_sum__e1")]
    trials = counted(optuna.load_study(study_name=tuned, storage=storage))
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(trials) == 2 and len(set(params)) == len(params)


def test_a_defaults_trial_queued_twice_trains_once(small_data) -> None:
    """What two workers opening a new study at the same moment leave: the defaults queued twice.
    The second copy is rejected before it trains and does not count."""
    from benchmark.hardware import decide

    base, ex = decide(TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1))
    study = tuning.open_study(optuna.storages.InMemoryStorage(), "s", base, None)
    defaults = tuning.default_params(base.arch, base.fusion)
    study.enqueue_trial(defaults, user_attrs={"defaults": True})  # the other worker's copy
    tuning.optimize(study, base, small_data, ex, trials=2)
    first, second, *rest = study.trials
    assert first.state == TrialState.COMPLETE and first.user_attrs["defaults"]
    assert second.state == TrialState.PRUNED and second.user_attrs["duplicate"]
    assert not second.intermediate_values  # rejected before training
    assert len(counted(study)) == 2 and not any(t.user_attrs.get("defaults") for t in rest)


def test_the_defaults_are_queued_again_when_only_their_rejected_copy_is_left() -> None:
    """Queued twice, the second copy pruned as a duplicate, the first killed (failed stale):
    reopening the study saw the duplicate as holding the defaults and queued them no more, so
    where no retry runs (a journal, or retries spent) the study lost its baseline."""
    cfg = TrainConfig(arch="gap_cnn", fusion="concat", epochs=1)
    storage = optuna.storages.InMemoryStorage()
    study = tuning.open_study(storage, "s", cfg, None)
    study.enqueue_trial(tuning.default_params("gap_cnn", "concat"), user_attrs={"defaults": True})
    first, second = study.ask(), study.ask()
    second.set_user_attr("duplicate", True)
    study.tell(second, state=TrialState.PRUNED)
    storage.set_trial_state_values(first._trial_id, state=TrialState.FAIL)  # killed
    study = tuning.open_study(storage, "s", cfg, None)
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert [t.user_attrs.get("defaults") for t in waiting] == [True]


def test_workers_sharing_a_study_end_with_exactly_its_trials(tmp_path: Path, small_data) -> None:
    """Four workers on a study of five trials: a worker that found every place held waits
    rather than starting one more, so the study counts five, as a study tuned alone does (each
    stopping only once five had finished left up to three extra trials)."""
    from benchmark import storages
    from benchmark.hardware import decide

    base, ex = decide(TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1))
    spec = f"sqlite:///{tmp_path / 'optuna.db'}"
    tuning.open_study(storages.open_storage(spec), "s", base, None)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            study = optuna.load_study(study_name="s", storage=storages.open_storage(spec))
            study.sampler = tuning.sampler(0, 0, i)
            tuning.optimize(study, base, small_data, ex, trials=5, poll_s=0.05)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    study = optuna.load_study(study_name="s", storage=spec)
    assert len(counted(study)) == 5
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    for t in study.trials:  # anything else was turned away before it trained
        assert counts_towards_budget(t) or not t.intermediate_values


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # asked by hand
def test_a_trial_beats_from_the_moment_it_runs(tmp_path: Path) -> None:
    """Asked afresh or popped from the queue, a RUNNING trial has a heartbeat before its
    worker's heartbeat thread starts: Optuna's stale check passes over a trial with none, so
    a worker killed in between held its place for ever. The study goes through Optuna's cache
    wrapper, which called a method the storage's override did not cover."""
    import sqlite3

    spec = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storages.open_storage(spec), study_name="s")
    asked = study.ask()
    study.enqueue_trial({"x": 0.5})
    popped = study.ask()
    with sqlite3.connect(tmp_path / "optuna.db") as db:
        beating = {row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}
    assert beating == {asked._trial_id, popped._trial_id}


def one_place_held(spec: str) -> tuple[TrainConfig, object, optuna.Study, optuna.Trial]:
    """A study one trial short of two on storage ``spec``, that last place held by a trial
    running elsewhere; the config and execution to tune it with."""
    from benchmark import storages
    from benchmark.hardware import decide

    base, ex = decide(TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1))
    study = optuna.create_study(storage=storages.open_storage(spec), direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    return base, ex, study, study.ask()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask
def test_a_worker_takes_the_place_of_a_trial_that_failed_elsewhere(
    tmp_path: Path, small_data
) -> None:
    """The last place held by another worker: wait (an RDB storage beats for it), and once
    that trial fails, train one in its place."""
    base, ex, study, elsewhere = one_place_held(f"sqlite:///{tmp_path / 'optuna.db'}")
    fails = threading.Timer(0.5, lambda: study.tell(elsewhere, state=TrialState.FAIL))
    fails.start()
    heard: list[int] = []
    tuning.optimize(study, base, small_data, ex, trials=2, poll_s=0.05, on_wait=heard.append)
    fails.join()  # no write after the test's directory goes
    assert heard and set(heard) == {1}  # told, while it waited, what it waited for
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_a_compare_worker_stops_waiting_for_a_trial_queued_again() -> None:
    """A worker of ``compare --jobs`` killed mid-trial: its heartbeat failed the trial and the
    retry queued a copy, which only a worker inside ``optimize`` takes; the others waited for
    it to go, and so for ever. Waiting ends as soon as a trial waits to be taken."""
    from benchmark import compare

    study = optuna.create_study()
    held = study.ask()  # a live worker's trial (this process's): held elsewhere, as it were
    held.set_user_attr("worker", tuning.worker_name())
    study.enqueue_trial({})  # the copy the retry queued
    done = threading.Event()
    waiter = threading.Thread(
        target=lambda: (compare.wait_for_tuning([study], poll_s=0.01), done.set()), daemon=True
    )
    waiter.start()
    waiter.join(timeout=5)
    assert done.is_set()  # it returned, to take the queued trial in its next pass
    assert not compare.tuning_finished([study])  # a trial still runs elsewhere


def test_without_heartbeats_a_worker_stops_rather_than_waits(tmp_path: Path, small_data) -> None:
    """A journal has no heartbeat: a trial held there may be a killed worker's, held for ever,
    so a worker that finds the last place held stops and starts nothing."""
    base, ex, study, _ = one_place_held(f"journal:{tmp_path / 'optuna.log'}")
    tuning.optimize(study, base, small_data, ex, trials=2, poll_s=60)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]


def dead_pid() -> int:
    """The pid of a process of this machine that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_without_heartbeats_a_dead_local_workers_trial_is_failed(tmp_path: Path) -> None:
    """A journal has no heartbeat; what a running trial says of its worker still tells a
    process of this machine that is gone (failed) from one alive or elsewhere (left)."""
    from benchmark import storages

    study = optuna.create_study(
        storage=storages.open_storage(f"journal:{tmp_path / 'optuna.log'}"),
        direction="maximize",
    )
    host, dead = socket.gethostname(), dead_pid()  # a pid no process of this machine has
    owners = [f"{host}:{dead}", f"{host}:{os.getpid()}", f"another-host:{dead}", None]
    for owner in owners:
        trial = study.ask()
        if owner:
            trial.set_user_attr("worker", owner)
    tuning.fail_stale(study)
    assert [t.state for t in study.trials] == [
        TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.RUNNING
    ]  # fmt: skip


def test_without_heartbeats_the_place_of_a_killed_local_worker_is_trained(
    tmp_path: Path, small_data
) -> None:
    """A journal study one trial short, that trial held by a worker of this machine killed
    outright: the next worker trains in its place instead of stopping short for ever."""
    from benchmark import storages
    from benchmark.hardware import decide

    base, ex = decide(TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1))
    study = optuna.create_study(
        storage=storages.open_storage(f"journal:{tmp_path / 'optuna.log'}"),
        direction="maximize",
    )
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.ask().set_user_attr("worker", f"{socket.gethostname()}:{dead_pid()}")
    tuning.optimize(study, base, small_data, ex, trials=2, poll_s=60)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE
    ]  # fmt: skip


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask
def test_a_worker_told_not_to_wait_leaves_the_last_place_to_its_holder(
    tmp_path: Path, small_data
) -> None:
    """``wait=False``: the last place held elsewhere, the worker returns at once, neither
    waiting (it never hears of a wait) nor starting a trial."""
    base, ex, study, _ = one_place_held(f"sqlite:///{tmp_path / 'optuna.db'}")
    heard: list[int] = []
    tuning.optimize(
        study, base, small_data, ex, trials=2, timeout=30, on_wait=heard.append, wait=False
    )
    assert not heard
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the study.ask
def test_a_compare_worker_tunes_the_next_study_while_the_last_place_of_one_is_held(
    tmp_path: Path, small_data
) -> None:
    """One pass of a compare worker over two studies, the first one's last place held by
    another worker: the second is tuned to its trials and the first left to its holder, not
    waited for (each worker waiting for every study's last trials in turn kept sixteen on one
    GPU a third busy). The held trial fails a second later, so a worker that waits still ends:
    it then trains in that place, which the test sees."""
    from benchmark import compare, storages
    from benchmark.hardware import decide
    from benchmark.stages import tune_all

    pairs = (("small_cnn", "late_sum"), ("small_cnn", "concat"))
    base, ex = decide(TrainConfig(epochs=1))
    plan = compare.Plan(base, pairs, (0,), 2, 10**6)
    storage = storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    first = tuning.open_study(storage, plan.study(*pairs[0]), plan.config(*pairs[0]), None, 10**6)
    first.add_trial(optuna.trial.create_trial(value=0.5))
    held = first.ask()  # the queued defaults trial, running on another worker
    fails = threading.Timer(1.0, lambda: first.tell(held, state=TrialState.FAIL))
    fails.start()
    studies = tune_all(plan, storage, small_data, ex, 0, 1, lambda *_: None)
    fails.cancel()  # not waited for: it must not fail the trial in a directory gone
    fails.join()
    assert len(first.trials) == 2  # nothing trained in the held place
    assert len(counted(studies[1])) == 2


def test_waiting_on_a_journal_says_what_ends_a_wait_for_a_killed_workers_trial(
    tmp_path: Path,
) -> None:
    """A journal has no heartbeat: a trial of a worker killed on another machine looks like
    one still training, and compare waited for it without a word on what would end that."""
    from benchmark import storages
    from benchmark.stages import waiting_words

    journal = optuna.create_study(storage=storages.open_storage(f"journal:{tmp_path / 'j.log'}"))
    beating = optuna.create_study(storage=storages.open_storage(f"sqlite:///{tmp_path / 'o.db'}"))
    assert (
        waiting_words([beating]) == "waiting for tuning trials still running on other workers ..."
    )
    assert waiting_words([journal]).endswith(
        "(a journal has no heartbeat: a trial whose worker on another machine was killed is held "
        "until compare runs again on that machine)"
    )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # the queue.ask
def test_a_compare_worker_trains_the_next_rungs_runs_while_one_rungs_are_held(
    tmp_path: Path, small_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Final runs over two rungs, every run of the first held by another worker (which dies a
    second later, so its runs are queued again): this worker trains the second rung's runs
    first, then the first rung's in their place, instead of waiting on the first rung."""
    from benchmark import compare, storages
    from benchmark.comparison import StageClock
    from benchmark.hardware import decide
    from benchmark.stages import train_ladder

    monkeypatch.setattr("benchmark.stages.POLL_S", 0.2)  # the held runs come free after 1 s
    base, ex = decide(TrainConfig(epochs=1, train_subset=256))
    pair = ("small_cnn", "late_sum")
    plans = [compare.Plan(replace(base, epochs=e), (pair,), (0,), 2, 10**6) for e in (1, 2)]
    storage = storages.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    first, _ = compare.open_queue(plans[0], storage, tmp_path)
    held = [first.ask(), first.ask()]  # both runs of rung 1, on another worker
    dies = threading.Timer(1.0, lambda: [first.tell(t, state=TrialState.FAIL) for t in held])
    dies.start()
    record = {"train": {}, "model_args": {}, "study": "s", "trial": 0, "value": 0.5, "budget": {}}
    records = {plan.base.epochs: {pair: record} for plan in plans}

    def clock(plan: compare.Plan, stage: str) -> StageClock:
        return StageClock(tmp_path, plan, stage, "here", plans)

    diverged, worked = train_ladder(plans, storage, small_data, ex, tmp_path, records, clock)
    dies.join()  # no write after the test's directory goes
    assert diverged == 0 and worked
    runs = sorted(
        (tmp_path / "runs").iterdir(), key=lambda d: (d / "config.json").stat().st_mtime_ns
    )
    assert [rundir.read_metrics(d)["epochs"] for d in runs] == [2, 2, 1, 1]  # in order begun


@contextmanager
def worked_clock(plan: object, stage: str) -> Iterator[SimpleNamespace]:
    """A stage clock that writes nothing, for passes faked whole: their work is done."""
    yield SimpleNamespace(worked=True)


@pytest.mark.parametrize("held", ["interrupted", "waiting"])
def test_runs_held_at_the_end_of_a_pass_are_trained_in_a_next_pass(
    held: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose worker was interrupted (its queue trial failed), or one another worker
    queued again as this pass ended (a dead worker's, taken over, waiting in the queue), is
    trained only by a next pass: the stage goes on until no run is held or waiting. Ending after
    the first, compare left it untrained and the rung short."""
    from benchmark import compare, stages

    monkeypatch.setattr(stages, "POLL_S", 0.0)
    plans = [compare.Plan(TrainConfig(epochs=1), (("gap_cnn", "concat"),), (0,), 2, 10**6)]
    left = {"running": 0, "interrupted": 0, "waiting": 0, "diverged": 0}
    passes = [{**left, "complete": 1, held: 1}, {**left, "complete": 2}]
    calls: list[int] = []

    def one_pass(plan: compare.Plan, *args: object) -> dict[str, int]:
        calls.append(plan.base.epochs)
        return passes[len(calls) - 1]

    monkeypatch.setattr(stages, "train_all", one_pass)
    ended = stages.train_ladder(plans, None, None, None, tmp_path, {1: {}}, worked_clock)
    assert ended == (0, True)
    assert calls == [1, 1]


def test_tuning_goes_on_until_every_study_of_the_ladder_has_its_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that leaves one study a trial short (its place held by a worker whose trial then
    failed) is followed by another: ending once any study had its trials, compare exported the
    others short of them."""
    from benchmark import compare, stages

    pairs = (("gap_cnn", "concat"), ("gap_cnn", "late_sum"))
    plans = [compare.Plan(TrainConfig(epochs=1), pairs, (0,), 2, 10**6)]
    passes = [[2, 1], [2, 2]]  # finished trials of each study after each pass
    calls: list[int] = []

    def one_pass(plan: compare.Plan, *args: object) -> list[SimpleNamespace]:
        calls.append(plan.base.epochs)
        return [SimpleNamespace(finished=n) for n in passes[len(calls) - 1]]

    monkeypatch.setattr(stages, "tune_all", one_pass)
    monkeypatch.setattr(tuning, "finished_count", lambda study: study.finished)
    monkeypatch.setattr(compare, "tuning_finished", lambda studies: True)
    spent = {pair: (2, 2) for pair in pairs}
    monkeypatch.setattr(compare, "export_rung", lambda plan, *args: ({}, spent))
    stages.tune_ladder(plans, None, "spec", None, None, 0, None, tmp_path, worked_clock)
    assert calls == [1, 1]


def test_the_diverged_final_runs_of_every_rung_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compare exits 1 where a final run diverged, at any rung: the count is every rung's."""
    from benchmark import compare, stages

    pair = ("gap_cnn", "concat")
    plans = [compare.Plan(TrainConfig(epochs=e), (pair,), (0,), 2, 10**6) for e in (1, 2)]
    counts = {"running": 0, "waiting": 0, "interrupted": 0, "complete": 1, "diverged": 1}
    monkeypatch.setattr(stages, "train_all", lambda *args: counts)
    ended = stages.train_ladder(plans, None, None, None, tmp_path, {1: {}, 2: {}}, worked_clock)
    assert ended == (2, True)


def test_tuning_held_by_other_workers_is_waited_for_not_polled_in_a_busy_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pass that leaves every free place trained and the last trials running on other
    workers says so and waits for them (``compare.wait_for_tuning``) before the next pass:
    without the wait, compare went straight into pass after pass, opening every study of the
    ladder again and again while the others trained, and never said what it waited for."""
    from benchmark import compare, stages

    pairs = (("gap_cnn", "concat"),)
    plans = [compare.Plan(TrainConfig(epochs=1), pairs, (0,), 2, 10**6)]
    passes = [[1], [2]]  # the study's finished trials after each pass: one held elsewhere
    events: list[str] = []

    def one_pass(plan: compare.Plan, *args: object) -> list[SimpleNamespace]:
        events.append("pass")
        return [SimpleNamespace(finished=passes[events.count("pass") - 1][0])]

    monkeypatch.setattr(stages, "tune_all", one_pass)
    monkeypatch.setattr(stages, "waiting_words", lambda studies: "waiting for the others")
    monkeypatch.setattr(tuning, "finished_count", lambda study: study.finished)
    monkeypatch.setattr(compare, "tuning_finished", lambda studies: studies[0].finished >= 2)
    monkeypatch.setattr(compare, "wait_for_tuning", lambda studies: events.append("wait"))
    monkeypatch.setattr(compare, "export_rung", lambda plan, *args: ({}, {pairs[0]: (2, 2)}))
    stages.tune_ladder(plans, None, "spec", None, None, 0, None, tmp_path, worked_clock)
    assert events == ["pass", "wait", "pass"]
    assert "waiting for the others" in capsys.readouterr().out


def test_a_ladder_pass_that_trained_only_at_a_lower_rung_counts_as_worked() -> None:
    """``each_rung`` says whether any rung's work trained, not the last rung's alone: a
    worker that trained at the first rung only was taken for a rerun that did nothing (its
    report stage's time not counted in comparison.json)."""
    from benchmark import compare, stages

    pairs = (("gap_cnn", "concat"),)
    plans = [compare.Plan(TrainConfig(epochs=e), pairs, (0,), 2, 10**6) for e in (1, 2)]

    @contextmanager
    def clock(plan: compare.Plan, stage: str) -> Iterator[SimpleNamespace]:
        yield SimpleNamespace(worked=plan.base.epochs == 1)  # trained at the first rung only

    out, worked = stages.each_rung(plans, "runs", clock, lambda plan, lap: plan.base.epochs * 10)
    assert out == {1: 10, 2: 20}
    assert worked
