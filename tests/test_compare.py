"""``compare``: one resumable protocol (tune at the final budget under a cap, default + tuned x
seeds), shared between processes through the Optuna storage without running anything twice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from conftest import (
    HOLDS_RUN,
    PLAIN_CPU,
    checkpoint_of,
    child,
    exit_status,
    make_run,
    one_line,
    queue_trial,
    shared_lock_refused,
)
from optuna.trial import TrialState

from benchmark import compare, comparison, hardware, places, rundir, storages, tuning
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.trials import counts_towards_budget

TINY = ["--arch", "small_cnn", "--fusion", "late_sum", "--trials", "2", "--seeds", "0,1"]
TINY += ["--epochs", "1", "--train-subset", "512", "--eval-batch-size", "5000", "--no-report"]


def compare_argv(results: Path, mnist_root: Path, *extra: str) -> list[str]:
    return ["compare", *TINY, "--data-dir", str(mnist_root), "--results-dir", str(results), *extra]


def complete_runs(results: Path) -> list[dict]:
    found = []
    for run_dir in sorted((results / "runs").glob("*")):
        try:
            found.append(rundir.read_metrics(run_dir))
        except rundir.IncompleteRun:
            pass
    return found


def plan_of(results: Path) -> dict:
    return json.loads((results / comparison.COMPARISON).read_text())["plan"]


def check_protocol(found: list[dict], studies: list[optuna.Study], plan: dict) -> None:
    """Every (variant, seed) once, tuned runs at the study's budget with its best trial."""
    assert sorted((m["tuned"], m["seed"]) for m in found) == [(False, 0), (False, 1)] + [
        (True, 0),
        (True, 1),
    ]
    (study,) = studies
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len([t for t in finished if not t.user_attrs.get("over_cap")]) >= plan["trials"]
    assert all(t.user_attrs["params"] <= plan["max_params"] for t in finished if t.value)
    for m in found:
        assert m["config"]["epochs"] == 1 and m["config"]["train_subset"] == 512
        if m["tuned"]:
            assert m["config"]["tuned_from"]["study"] == study.study_name
            assert m["config"]["tuned_from"]["trial"] == study.best_trial.number


@pytest.mark.slow
def test_compare_resumes_and_skips_what_is_complete(
    tmp_path: Path, mnist_root: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))  # no --data-dir: no path in any file
    argv = ["compare", *TINY, "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    plan = plan_of(tmp_path)
    assert plan["max_params"] == 206922  # the default small_cnn x late_sum: the default cap
    assert set(json.loads((tmp_path / comparison.COMPARISON).read_text())["stages"]) == {
        "tune",
        "runs",
    }
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    studies = [optuna.load_study(study_name=name, storage=storage) for name in plan["studies"]]
    found = complete_runs(tmp_path)
    check_protocol(found, studies, plan)
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    capsys.readouterr()

    assert main(argv) == 0  # nothing left: nothing trained
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == before
    out = " ".join(capsys.readouterr().out.split())
    assert "4 of 4 complete" in out
    assert f"({hardware.machine_name(torch.device('cpu'))})" in out  # the CPU's features named
    text = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert str(tmp_path) not in text and str(mnist_root) not in text


@pytest.mark.slow
@pytest.mark.parametrize("left", ["interrupted", "killed", "damaged"])
def test_an_interrupted_compare_loses_only_the_run_in_progress(
    left: str, tmp_path: Path, mnist_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Interrupted during its third run, `compare` exits 130; run again, it resumes that run in
    its own directory (it trained the seed again beside it, and the report told the user to
    resume the old one: a second copy of the seed), trains the fourth, and never the two
    complete ones again; so for a run killed outright (left ``running``, no owner). A run whose
    checkpoint cannot be read is marked failed and its seed trained afresh, rather than stop
    every later compare. The time of the two complete runs is on disk before the third starts,
    so even a process killed outright would keep it."""
    from benchmark import rundir, stages

    real = stages.train_with_progress
    calls = []
    runs_s = []

    def interrupted_third(cfg, data, run_dir, ex, state=None, label=None, note=""):
        calls.append(run_dir.name)
        if len(calls) == 3:
            found = json.loads((tmp_path / comparison.COMPARISON).read_text())["stages"]
            runs_s.append(sum(found.get("runs", {}).values()))
            status = "running" if left == "killed" else "interrupted"
            rundir.write_status(run_dir, status, "stopped by a signal")  # as execute leaves it
            if left == "damaged":
                (run_dir / rundir.CHECKPOINT).write_bytes(b"not a checkpoint")
            raise KeyboardInterrupt
        return real(cfg, data, run_dir, ex, state, label, note)

    monkeypatch.setattr(stages, "train_with_progress", interrupted_third)
    assert main(compare_argv(tmp_path, mnist_root)) == 130
    said = " ".join(capsys.readouterr().out.split())
    assert "interrupted: finished trials and runs are kept; run the same command again" in said
    assert len(complete_runs(tmp_path)) == 2
    timed = json.loads((tmp_path / comparison.COMPARISON).read_text())["stages"]
    assert set(timed) == {"tune", "runs"}  # an interrupted stage keeps its wall time
    assert 0 < runs_s[0] <= sum(timed["runs"].values())
    monkeypatch.setattr(stages, "train_with_progress", real)
    assert main(compare_argv(tmp_path, mnist_root)) == 0
    out = capsys.readouterr().out
    said = " ".join(out.split())
    third = tmp_path / "runs" / calls[2]
    if left == "damaged":
        assert f"not resuming {third} (" in said and "training the seed afresh" in said
        assert rundir.read_status(third)[0] == "failed"  # not listed as one to resume
    else:  # under the run's header and directory, not before them
        lines = [line.strip() for line in out.splitlines()]
        at = lines.index(str(third))
        assert re.fullmatch(r"\[\d/4 at 1 epoch\] \w+ x \w+ \w+, seed \d", lines[at - 1])
        assert lines[at + 1] == "resuming from epoch 1: stopped in an earlier sitting"
        assert rundir.read_status(third)[0] == "complete"  # resumed there
    found = complete_runs(tmp_path)
    assert Counter((m["tuned"], m["seed"]) for m in found) == {
        (False, 0): 1,
        (False, 1): 1,
        (True, 0): 1,
        (True, 1): 1,
    }
    kept = 5 if left == "damaged" else 4  # no second copy of the third, unless unreadable
    assert len(list((tmp_path / "runs").iterdir())) == kept


def test_bad_flags_write_nothing(tmp_path: Path, capsys) -> None:
    for flags, message in (
        (["--seeds", ""], "argument --seeds: '' is empty; expected comma-separated integers"),
        (["--trials", "0"], "--trials must be a positive integer, got 0"),
        (["--max-params", "0"], "--max-params must be a positive integer"),
        (["--train-subset", "100"], "--train-subset must be >= 256 (the largest batch size tuned)"),
        (["--arch", "nope"], "unknown encoder"),
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--worker", "-1"], "--worker must be >= 0, got -1"),
        (["--seeds", "0,-1"], "argument --seeds: each seed must be in 0..2**63-1, got -1"),
        (["--epochs", "1,,9"], "argument --epochs: '1,,9' has an empty item"),
        (
            ["--epochs", "0,3"],
            "argument --epochs: each budget must be a positive integer, such as 1,3,9; got '0,3'",
        ),
        (
            ["--epochs", "1,x"],
            "argument --epochs: invalid list '1,x'; expected comma-separated "
            "integers such as 1,3,9",
        ),  # it said "seed list", then "such as 0,1,2" (no 0 epochs)
    ):
        assert exit_status(["compare", "--results-dir", str(tmp_path / "r"), *flags]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("stage", ["benchmark.data.load_mnist", "benchmark.report.write_report"])
def test_an_interrupt_at_any_stage_says_what_is_kept(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Ctrl-C while the data loaded or the report was written said "interrupted (SIGINT)" alone
    (a helper's kill-and-resume run): what is kept and how to go on came only from the stages
    that tune and train."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, interrupted)
    argv = ["compare", *TINY, "--results-dir", str(tmp_path / "r")]
    if stage.endswith("write_report"):  # a protocol already done: its report is all that is left
        from benchmark import stages

        monkeypatch.setattr(compare, "ladder_complete", lambda *a: True)
        monkeypatch.setattr(stages, "tune_ladder", lambda *a: ({}, False))
        monkeypatch.setattr(stages, "train_ladder", lambda *a: ([], False))
        argv.remove("--no-report")
    assert main(argv) == 130
    said = " ".join(capsys.readouterr().out.split())
    assert "interrupted: finished trials and runs are kept; run the same command again" in said


def test_an_interrupted_status_does_not_tell_to_run_it_again_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """--status trains and keeps nothing: Ctrl-C while it read the storage is no work to go on
    with, and "run the same command again to go on" would say there was."""
    from benchmark.commands import compare as command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "show_status", interrupted)
    assert main(["compare", *TINY, "--status", "--results-dir", str(tmp_path / "r")]) == 130
    assert "run the same command again" not in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_a_compare_whose_final_runs_failed_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A final run that failed is no finished protocol: a script or CI job reading the exit
    status must not take it for done."""
    from benchmark import stages

    monkeypatch.setattr(storages, "open_storage", lambda spec: object())  # no schema to make
    monkeypatch.setattr(compare, "ladder_complete", lambda *a: True)
    monkeypatch.setattr(stages, "tune_ladder", lambda *a: ({}, False))
    monkeypatch.setattr(stages, "train_ladder", lambda *a: (["small_cnn x late_sum"], False))
    assert main(["compare", *TINY, "--results-dir", str(tmp_path / "r")]) == 1


def test_the_status_names_running_queued_diverged_and_unreadable_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark.commands.compare import show_status

    rung = {"epochs": 3, "trials": 4, "trials_wanted": 20, "trials_running": 1,
            "trials_queued": 2, "runs": 5, "runs_wanted": 10, "runs_running": 0,
            "runs_diverged": 1, "runs_interrupted": 1, "runs_unreadable": 2}  # fmt: skip
    monkeypatch.setattr(compare, "ladder_status", lambda *a: [rung])
    monkeypatch.setattr(storages, "open_to_read", lambda spec: None)
    assert show_status([], f"sqlite:///{tmp_path / 'optuna.db'}", None, tmp_path) == 0
    out = capsys.readouterr().out
    said = " ".join(out.split())
    lines = out.splitlines()  # the note under the table, as wide as the page: no ragged caption
    assert lines[lines.index(next(x for x in lines if x.startswith("└"))) + 1].startswith(
        "running: as the storage holds it; the work of a worker killed outright"
    )
    assert "4 of 20, 1 running, 2 queued" in said
    assert (
        "5 of 10, 1 diverged, 1 interrupted (the next compare goes on with it), 2 unreadable here "
        "(trains again)" in said
    )
    assert "running: as the storage holds it" in said  # a worker killed outright shows so
    assert list(tmp_path.iterdir()) == []


def test_another_protocols_stage_times_are_not_dropped(tmp_path: Path, capsys) -> None:
    """comparison.json's stage times are hours of measured cost: a compare of another protocol
    (another precision, other combinations, fewer rungs) in the same directory wrote its own
    plan over them without a word. Now it stops before any work, naming what it would drop."""
    results = tmp_path / "r"
    results.mkdir()
    held = {"key": "f00dcafe", "budget": {"epochs": 9}}
    found = {"plan": held, "stages": {"tune": {"vm": 3600.0}}}
    (results / comparison.COMPARISON).write_text(json.dumps(found))
    before = (results / comparison.COMPARISON).read_bytes()
    assert exit_status(["compare", *TINY, "--results-dir", str(results)]) == 2
    line = one_line(capsys.readouterr().err)
    assert (
        "holds stage times of another protocol that this compare would drop (plan f00dcafe " in line
    )
    assert "(9 epochs): they differ in a rung, or in the combinations, seeds, trials" in line
    assert "as its plans record it" not in line  # a plan without its flags: none made up
    assert (results / comparison.COMPARISON).read_bytes() == before
    assert sorted(p.name for p in results.iterdir()) == [comparison.COMPARISON]  # nothing else
    assert exit_status(["compare", *TINY, "--results-dir", str(results), "--status"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # no flags to name, but the note all the same
    assert "comparison.json holds another protocol; this status is of the protocol" in out
    assert comparison.dropped_by(found, ["f00dcafe", "other"]) == []  # its own rung: kept
    whole = {"key": "k", "pairs": [["gap_cnn", "concat"]], "seeds": [0], "trials": 2,
             "max_params": None, "budget": {"epochs": 1}, "fixed": {}}  # fmt: skip
    ran = {"plan": whole, "stages": {"tune": {"vm": 1.0}}}
    assert comparison.recorded_flags(ran).endswith("--seeds 0 --trials 2 --epochs 1")
    sgd = {"plan": {**whole, "fixed": {"optimizer": "sgd"}}, "stages": {"tune": {"vm": 1.0}}}
    assert comparison.recorded_flags(sgd) == ""  # flags that left it out: another protocol
    # a ladder whose top rung has not started: its flags are the whole ladder's (a status
    # with no flags had read the 1-epoch rung alone, "another protocol" than the file's)
    top = {**whole, "key": "k2", "budget": {"epochs": 2}}
    ladder = {"plan": top, "rungs": {"1": ran, "2": {"plan": top}}}
    assert comparison.recorded_flags(ladder).endswith("--trials 2 --epochs 1,2")


def test_the_flags_to_go_on_name_every_setting_a_plan_records_and_no_grid_it_does_not() -> None:
    """The flags a user is told to give to go on with comparison.json's protocol: --arch and
    --fusion only where the pairs are every arch x fusion (other pairs would be another
    protocol), and a held-out budget too."""
    plan = {"key": "k", "seeds": [0, 1], "trials": 2, "max_params": None, "fixed": {}}
    plan |= {"budget": {"epochs": 1, "holdout_pairs": 3}}
    grid = [["gap_cnn", "concat"], ["gap_cnn", "late_sum"]]
    grid += [["small_cnn", "concat"], ["small_cnn", "late_sum"]]
    flags = comparison.recorded_flags({"plan": {**plan, "pairs": grid}})
    assert flags == (
        "--arch gap_cnn,small_cnn --fusion concat,late_sum --seeds 0,1 --trials 2"
        " --holdout-pairs 3 --epochs 1"
    )
    two = [["gap_cnn", "concat"], ["small_cnn", "late_sum"]]  # not every arch x fusion
    flags = comparison.recorded_flags({"plan": {**plan, "pairs": two}})
    assert flags == "--seeds 0,1 --trials 2 --holdout-pairs 3 --epochs 1"
    twice = [*two, *two]  # as many pairs as the grid, but two of them twice: not the grid
    flags = comparison.recorded_flags({"plan": {**plan, "pairs": twice}})
    assert flags == "--seeds 0,1 --trials 2 --holdout-pairs 3 --epochs 1"
    capped = {
        **plan,
        "pairs": two,
        "max_params": 5000,
        "budget": {"epochs": 1, "train_subset": 512},
    }
    flags = comparison.recorded_flags({"plan": capped})
    assert flags == "--seeds 0,1 --trials 2 --max-params 5000 --train-subset 512 --epochs 1"
    # a plug-in's combinations: flags that leave its --plugin out would be another protocol
    plugin = [{"plugin": "my_encoders.py", "sha256": "ab12", "entries": ["encoder mine"]}]
    assert comparison.recorded_flags({"plan": {**plan, "pairs": grid, "plugins": plugin}}) == ""


def test_a_ladders_top_level_is_its_highest_rung_and_rungs_are_read_lowest_first(
    tmp_path: Path,
) -> None:
    """The top rung gives the answer: its plan is the file's own. Rungs are read by their
    epochs, not by the order the file lists them in (a hand edit, or "10" before "9")."""
    ladder = [{"key": "k1", "budget": {"epochs": 1}}, {"key": "k3", "budget": {"epochs": 3}}]
    comparison.record_stage(tmp_path, ladder[0], "tune", 2.0, "vm", ladder)
    found = comparison.read_comparison(tmp_path)
    assert found["plan"]["key"] == "k3" and found["stages"] == {}
    assert found["rungs"]["1"]["stages"] == {"tune": {"vm": 2.0}}
    rung = {e: {"plan": {"key": f"k{e}", "budget": {"epochs": e}}} for e in (10, 9)}
    listed = {"plan": rung[10]["plan"], "rungs": {str(e): r for e, r in rung.items()}}
    assert [epochs for epochs, _ in comparison.rungs_of(listed)] == [9, 10]


def test_only_plans_with_stage_times_count_as_dropped() -> None:
    """A plan recorded before any stage time (a compare stopped at once) holds no measured
    cost: another protocol may replace it without being refused."""
    unstarted = {"plan": {"key": "old", "budget": {"epochs": 1}}, "stages": {}}
    assert comparison.dropped_by(unstarted, ["new"]) == []
    started = {**unstarted, "stages": {"tune": {"vm": 5.0}}}
    assert comparison.dropped_by(started, ["new"]) == [started["plan"]]


def test_a_sitting_of_another_shape_is_left_out() -> None:
    """A hand-edited sitting (seconds as text, processes missing) is not summed by the report."""
    good = {"where": "vm", "processes": 2, "seconds": 60.0, "rungs": ["k"]}
    held = [good, {**good, "seconds": "60"}, {"where": "vm", "seconds": 1.0, "rungs": []}]
    held += [{k: v for k, v in good.items() if k != "rungs"}]  # the next record_stage read them
    assert comparison.sittings({"plan": {}, "sittings": held}) == [good]


def test_a_true_where_comparison_json_holds_a_number_is_damaged(tmp_path: Path) -> None:
    """JSON's ``true`` is an int to Python: ``"trials": true`` was taken for 1 trial. A writer
    is refused; a reader (the report, a sitting's check) goes on as if there were none."""
    from benchmark.errors import DamagedFileError

    path = tmp_path / comparison.COMPARISON
    path.write_text('{"plan": {"trials": true}}')
    with pytest.raises(DamagedFileError, match=r"plan\.trials is True; repair it or move it away"):
        comparison.load_comparison(tmp_path)
    assert comparison.read_comparison(tmp_path) is None  # a reader goes on without it


def test_a_comparison_json_that_cannot_be_read_is_named_as_bad_json_is(
    tmp_path: Path, capsys
) -> None:
    """A directory where it goes (or a file this user may not read): one line naming it, exit
    1, as a writer says of bad JSON; a reader (the report, a sitting's check) goes on without."""
    path = tmp_path / comparison.COMPARISON
    path.mkdir()
    assert exit_status(["compare", "--status", "--results-dir", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"{path}: unreadable (Is a directory); repair it or move it away")
    assert comparison.read_comparison(tmp_path) is None


PLAN = {"key": "k", "pairs": [["gap_cnn", "concat"]], "seeds": [0], "trials": 2}
PLAN |= {"budget": {"epochs": 1, "train_subset": None, "holdout_pairs": 0}}


def test_a_plan_whose_flags_are_refused_is_a_damaged_comparison_json_for_status(
    tmp_path: Path, capsys
) -> None:
    """``--status`` reads its protocol's flags from comparison.json: a plan whose flags argparse
    refused (a seed past 64 bits) gave its usage dump and exit 2, as though typed. Now one line
    naming the file, exit 1, and nothing written."""
    path = tmp_path / comparison.COMPARISON
    path.write_text(json.dumps({"plan": {**PLAN, "seeds": [2**64]}, "stages": {}}))
    assert exit_status(["compare", "--status", "--results-dir", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"python -m benchmark compare: error: {path}: its plans give flags")
    assert "(argument --seeds: " in line and line.endswith("); repair it or move it away")
    assert [p.name for p in tmp_path.iterdir()] == [comparison.COMPARISON]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"seeds": []}, "plan.seeds is empty"),
        ({"pairs": []}, "plan.pairs is empty"),
        ({"seeds": [0, -1]}, "plan.seeds[1] is -1, less than compare writes (0)"),
        ({"trials": 0}, "plan.trials is 0, less than compare writes (1)"),
        ({"max_params": 0}, "plan.max_params is 0, less than compare writes (1)"),
        (
            {"budget": {**PLAN["budget"], "epochs": -1}},
            "plan.budget.epochs is -1, less than compare writes (1)",
        ),
        ({"budget": {**PLAN["budget"], "train_subset": 0}}, "plan.budget.train_subset is 0"),
        ({"budget": {**PLAN["budget"], "holdout_pairs": -2}}, "plan.budget.holdout_pairs is -2"),
    ],
)
@pytest.mark.parametrize("status", [True, False])
def test_a_plan_holding_what_compare_never_writes_is_a_damaged_comparison_json(
    change: dict, said: str, status: bool, tmp_path: Path, capsys
) -> None:
    """A hand-edited plan of the right types but out of range (no seeds, -1 epochs, 0 trials)
    was given back as flags: ``--status`` refused them as though typed (argparse's usage, or
    "--trials must be a positive integer"), and compare told the user to type a command that
    could not run. Now the file is named, exit 1, and nothing written."""
    path = tmp_path / comparison.COMPARISON
    path.write_text(json.dumps({"plan": {**PLAN, **change}, "stages": {}}))
    argv = ["compare", "--results-dir", str(tmp_path)] + (["--status"] if status else TINY)
    assert exit_status(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert f"error: {path}: {said}" in line and line.endswith("; repair it or move it away")
    assert [p.name for p in tmp_path.iterdir()] == [comparison.COMPARISON]
    assert comparison.read_comparison(tmp_path) is None  # a reader goes on without it


def test_a_report_file_that_is_a_directory_stops_compare_before_any_work(
    tmp_path: Path, capsys
) -> None:
    """The report is compare's last stage: a directory where report.md goes failed it after
    every run had trained. Now it is refused first, as ``report`` refuses it."""
    results = tmp_path / "r"
    (results / "report.md").mkdir(parents=True)
    argv = ["compare", *[f for f in TINY if f != "--no-report"], "--results-dir", str(results)]
    assert exit_status(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"{results / 'report.md'} is a directory; expected a file or nothing")
    assert [p.name for p in results.iterdir()] == ["report.md"]  # no storage, no runs


def drawn_params(results: Path) -> list[dict]:
    """The parameters of every trial of the one tuning study in ``results``, in order."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{results / places.OPTUNA_DB}")
    (name,) = [
        s.study_name for s in optuna.get_all_study_summaries(storage) if "__e1__" in s.study_name
    ]
    return [t.params for t in optuna.load_study(study_name=name, storage=storage).trials]


def test_a_numbered_worker_draws_the_same_trials_every_time(
    tmp_path: Path, small_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--worker`` seeds the samplers with ``--seed`` in place of the process id: compares in
    two processes (two pids here) draw the same trials, and another number draws others, as
    processes sharing a storage must. What a trial draws does not depend on training it, so
    the trials draw and score without training."""

    def drawn_only(trial, base, data, ex, max_params=None, trials=None) -> float:
        tuning.suggest(trial, base.arch, base.fusion)
        return 0.5

    monkeypatch.setattr(tuning, "objective", drawn_only)
    argv = ["compare", "--arch", "small_cnn", "--fusion", "late_sum", "--trials", "2"]
    argv += ["--seeds", "0", "--epochs", "1", "--train-subset", "256", "--tune-only"]
    drawn = {}
    for name, worker, pid in (("a", "0", 1001), ("b", "0", 2002), ("c", "1", 1001)):
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        assert main([*argv, "--worker", worker, "--results-dir", str(tmp_path / name)]) == 0
        drawn[name] = drawn_params(tmp_path / name)
    assert len(drawn["a"]) >= 2 and drawn["a"] == drawn["b"]
    assert drawn["a"][0] == drawn["c"][0]  # the defaults trial
    assert drawn["a"][1:] != drawn["c"][1:]


def test_a_resumed_study_seeds_its_sampler_with_the_trials_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeded alike in every sitting, a worker resuming a study drew again the trials it had
    drawn in the sitting before."""
    from benchmark import stages

    pair = ("gap_cnn", "concat")
    plan = compare.Plan(TrainConfig(epochs=1), (pair,), (0,), 5, 10**6)
    storage = optuna.storages.InMemoryStorage()
    study = tuning.open_study(storage, plan.study(*pair), plan.config(*pair), None, 10**6)
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(value=0.5))
    seeded: list[tuple] = []
    real = tuning.sampler
    monkeypatch.setattr(tuning, "sampler", lambda *args: seeded.append(args) or real(*args))
    monkeypatch.setattr(tuning, "optimize", lambda *args, **kwargs: None)  # no trial run
    stages.tune_all(plan, storage, None, None, 7, 2, lambda *_: None)
    assert seeded == [(7, len(study.trials), 2)] and len(study.trials) == 4  # 3 and the defaults


def test_a_seed_given_twice_is_taken_once(tmp_path: Path, capsys) -> None:
    """``--seeds 0,1,0`` is ``--seeds 0,1``: the same protocol (one key, one queue), and in
    ``run`` one run, not the same one twice."""
    from benchmark.cli import build_parser
    from benchmark.commands.compare import plans_from

    def plan(seeds: str) -> compare.Plan:
        argv = ["compare", "--arch", "gap_cnn", "--fusion", "concat", "--seeds", seeds]
        (found,) = plans_from(build_parser().parse_args([*argv, "--results-dir", str(tmp_path)]))
        return found

    assert plan("0,1,0").seeds == (0, 1) and plan("0,1,0").key() == plan("0,1").key()
    assert main(["run", "--seeds", "0,0", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 0  # one config, not a list of two


def test_a_ladder_typed_out_of_order_or_twice_is_its_rungs_once_lowest_first(
    tmp_path: Path,
) -> None:
    """``--epochs 9,1,9`` is ``--epochs 1,9``: two plans, the lowest rung tuned first."""
    from benchmark.cli import build_parser
    from benchmark.commands.compare import plans_from

    argv = ["compare", "--arch", "gap_cnn", "--fusion", "concat", "--epochs", "9,1,9"]
    plans = plans_from(build_parser().parse_args([*argv, "--results-dir", str(tmp_path)]))
    assert [plan.base.epochs for plan in plans] == [1, 9]


def test_comparison_json_checks_the_type_of_every_budget_field() -> None:
    """comparison.py holds the JSON types of the budget a plan records (``compare.Plan``
    writes ``config.BUDGET_FIELDS``): a field added to the budget is checked there too."""
    from benchmark.config import BUDGET_FIELDS

    assert set(comparison.BUDGET_TYPES) == set(BUDGET_FIELDS)


def test_default_cap_admits_every_default_configuration() -> None:
    from architectures import count_params, create_model

    pairs = [("gap_cnn", "concat"), ("small_cnn", "late_sum"), ("tiny_resnet", "embed_add")]
    cap = compare.default_cap(pairs)
    assert cap == max(count_params(create_model(a, f)) for a, f in pairs)
    plan = compare.Plan(TrainConfig(epochs=2), tuple(pairs), (0, 1), 5, cap)
    assert plan.study("gap_cnn", "concat") == f"gap_cnn__concat__e2__p{cap}"
    assert len(plan.items()) == 3 * 2 * 2


def test_the_default_cap_counts_the_model_arguments_held_fixed(tmp_path: Path) -> None:
    """A compare of a timm ViT held at 28 pixels caps its studies at that model's size, not at
    the size of the 160-pixel default that cannot run on MNIST (its position embedding
    differs)."""
    from architectures import count_params, create_model

    held = {"img_size": 28, "patch_size": 7}
    sized = count_params(create_model("timm:test_vit", "late_sum", **held))
    assert sized != count_params(create_model("timm:test_vit", "late_sum"))
    assert compare.default_cap([("timm:test_vit", "late_sum")], held) == sized
    from benchmark.cli import build_parser
    from benchmark.commands.compare import plans_from

    argv = ["compare", "--arch", "timm:test_vit", "--fusion", "late_sum"]
    argv += ["--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    (plan,) = plans_from(build_parser().parse_args([*argv, "--results-dir", str(tmp_path)]))
    assert plan.max_params == sized and plan.base.model_args == held


def test_a_vits_sizes_go_to_the_combinations_that_take_them_and_nothing_else_does(
    tmp_path: Path, capsys
) -> None:
    """A protocol of gap_cnn and a timm ViT told img_size=28 and patch_size=7: the ViT's runs
    and study hold the sizes, gap_cnn's are the ones it would have alone, and the cap admits
    both sized as they train. Any other model argument is held for every combination (one
    configuration to compare), so one that a combination does not take stops compare."""
    from architectures import count_params, create_model
    from benchmark.cli import build_parser
    from benchmark.commands.compare import plans_from

    held = {"img_size": 28, "patch_size": 7}
    argv = ["compare", "--arch", "timm:test_vit,gap_cnn", "--fusion", "late_sum", "--epochs", "2"]
    sized = [*argv, "--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    (plan,) = plans_from(build_parser().parse_args([*sized, "--results-dir", str(tmp_path)]))
    out = " ".join(capsys.readouterr().out.split())
    assert "img_size=28 patch_size=7: not taken by gap_cnn x late_sum, built without them" in out
    vit, gap = plan.config("timm:test_vit", "late_sum"), plan.config("gap_cnn", "late_sum")
    assert vit.model_args == held and gap.model_args == {}
    alone = TrainConfig(arch="gap_cnn", fusion="late_sum", epochs=2)  # at the protocol's cap
    assert plan.study("gap_cnn", "late_sum") == tuning.study_name(alone, None, plan.max_params)
    unsized = tuning.study_name(replace(vit, model_args={}), None, plan.max_params)
    assert plan.study("timm:test_vit", "late_sum") != unsized  # the sizes are in its name
    sizes = [count_params(create_model("timm:test_vit", "late_sum", **held))]
    assert plan.max_params == max(*sizes, count_params(create_model("gap_cnn", "late_sum")))

    other = [*argv, "--model-arg", "fc_features=64", "--results-dir", str(tmp_path / "r")]
    assert exit_status(other) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(
        "compare holds each --model-arg but a model's sizes (img_size, patch_size) for every "
        "combination: compare those that take it, and tune and run the others apart"
    )
    assert not (tmp_path / "r").exists()


def test_a_set_precision_is_its_own_protocol_and_auto_is_as_before(tmp_path: Path) -> None:
    """The committed reference (``auto``, key 4afbe954) keeps its key; ``--precision bf16`` is
    another queue, and its runs are found only in bf16 (auto takes either)."""
    from benchmark import files
    from benchmark.metrics import names as metric_names

    committed = json.loads((Path(__file__).parents[1] / "results" / "comparison.json").read_text())
    committed = committed.get("rungs", {}).get("1", committed)  # the 1-epoch rung of a ladder
    pairs = tuple(tuple(p) for p in committed["plan"]["pairs"])
    args = (pairs, tuple(committed["plan"]["seeds"]), 20, committed["plan"]["max_params"])
    auto = compare.Plan(TrainConfig(epochs=1), *args)  # type: ignore[arg-type]
    assert auto.key() == committed["plan"]["key"] == "4afbe954"
    # the same combinations and seeds typed in another order: the same protocol
    shuffled = (pairs[::-1], args[1][::-1], *args[2:])
    assert compare.Plan(TrainConfig(epochs=1), *shuffled).key() == auto.key()  # type: ignore[arg-type]
    bf16 = compare.Plan(TrainConfig(epochs=1, precision="bf16"), *args)  # type: ignore[arg-type]
    assert bf16.key() != auto.key()
    # so the plan records it, and a status with no flags asks for it (it read auto's queue)
    assert "precision" not in auto.to_dict() and bf16.to_dict()["precision"] == "bf16"
    ran = {"plan": bf16.to_dict(), "stages": {"tune": {"vm": 1.0}}}
    assert comparison.recorded_flags(ran).endswith("--precision bf16 --epochs 1")
    cfg = TrainConfig(epochs=1)
    run_dir = tmp_path / "runs" / "a"
    metrics = {"arch": cfg.arch, "fusion": cfg.fusion, "config_hash": cfg.config_hash()}
    metrics |= {"seed": 0, "params": 1, "precision": "fp32", "device": "cpu: x"}
    metrics["test"] = {name: 0.9 for name in metric_names()}
    files.write_json(run_dir / rundir.METRICS, metrics)
    assert compare.find_complete(tmp_path, cfg) == run_dir
    assert compare.find_complete(tmp_path, replace(cfg, precision="fp32")) == run_dir
    assert compare.find_complete(tmp_path, replace(cfg, precision="bf16")) is None
    bf16_dir = tmp_path / "bf16" / "runs" / "b"  # auto takes a bf16 run too
    files.write_json(bf16_dir / rundir.METRICS, metrics | {"precision": "bf16"})
    assert compare.find_complete(tmp_path / "bf16", cfg) == bf16_dir
    assert compare.find_complete(tmp_path / "bf16", replace(cfg, precision="fp32")) is None


def test_an_interrupted_default_run_is_never_resumed_for_a_tuned_one(tmp_path: Path) -> None:
    """A tuned item whose study kept the default has the default's config hash: only
    ``tuned_from`` tells them apart, and the queue must not resume the one for the other."""
    cfg = TrainConfig(epochs=1)
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    rundir.write_config(run_dir, cfg)
    rundir.write_status(run_dir, "interrupted")
    assert compare.find_interrupted(tmp_path, cfg) == run_dir
    tuned = replace(cfg, tuned_from={"study": "s", "trial": 0, "value": 0.5})
    assert tuned.config_hash() == cfg.config_hash()
    assert compare.find_interrupted(tmp_path, tuned) is None


def test_a_run_killed_outright_is_found_to_resume(tmp_path: Path) -> None:
    """SIGKILL leaves a run ``running`` with no owner: the queue must resume it, not train the
    seed a second time beside it."""
    cfg = TrainConfig(epochs=1)
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    rundir.write_config(run_dir, cfg)
    rundir.write_status(run_dir, "running")
    assert compare.find_interrupted(tmp_path, cfg) == run_dir


def stopped_default_run(
    tmp_path: Path, status: str, checkpoint: bytes | None = None
) -> tuple[compare.Plan, optuna.storages.BaseStorage, hardware.Execution, dict, Path]:
    """A one-seed plan of gap_cnn x concat, an in-memory storage, its execution and records, and
    the default run of seed 0 left ``status`` in an earlier sitting with a checkpoint (of epoch 0,
    or ``checkpoint``'s bytes)."""
    from benchmark import files, plugins, runs

    base, ex = hardware.decide(TrainConfig(epochs=1, **PLAIN_CPU))
    pair = ("gap_cnn", "concat")
    plan = compare.Plan(base, (pair,), (0,), 2, 10**6)
    record = {"train": {}, "model_args": {}, "study": "s", "trial": 0, "value": 0.5, "budget": {}}
    records = {pair: record}
    cfg = ex.settle(compare.run_config(plan, plan.items()[0], records))
    cfg = replace(cfg, plugins=plugins.used_by([pair]))  # as stages.train_all settles it
    stopped = runs.start_run(cfg, tmp_path)
    rundir.write_status(stopped, status, "stopped by a signal")
    if checkpoint is None:
        files.save_torch(stopped / rundir.CHECKPOINT, checkpoint_of(cfg))
    else:
        (stopped / rundir.CHECKPOINT).write_bytes(checkpoint)
    return plan, optuna.storages.InMemoryStorage(), ex, records, stopped


def trained_by_stages(
    plan: compare.Plan,
    storage: optuna.storages.BaseStorage,
    ex: hardware.Execution,
    records: dict,
    results: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[bool, tuple[Path, bool]]:
    """``stages.train_all`` over ``plan``, each run's training faked: by variant (tuned or
    not), the run directory trained in and whether it went on from a saved state."""
    from benchmark import stages

    trained: dict[bool, tuple[Path, bool]] = {}

    def fake(
        cfg: TrainConfig, data: object, run_dir: Path, ex: object, state=None, label=None, note=""
    ) -> dict:
        trained[cfg.tuned_from is not None] = (run_dir, state is not None)
        return {"run_id": run_dir.name, "test": {"sum_acc": 0.5}}

    monkeypatch.setattr(stages, "train_with_progress", fake)
    stages.train_all(plan, storage, None, ex, results, records, lambda: None)
    return trained


@pytest.mark.parametrize("left", ["interrupted", "running"])
def test_a_run_stopped_in_an_earlier_sitting_is_resumed_by_compare_not_trained_again(
    left: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained afresh, the seed had two directories and the report listed the old one as one
    to resume; so for a run killed outright (``running``, no owner)."""
    plan, storage, ex, records, stopped = stopped_default_run(tmp_path, left)
    trained = trained_by_stages(plan, storage, ex, records, tmp_path, monkeypatch)
    assert trained[False] == (stopped, True)  # in its own directory, from its checkpoint
    tuned_dir = trained[True][0]
    assert sorted((tmp_path / "runs").iterdir()) == sorted([stopped, tuned_dir])


def test_a_run_compare_resumes_is_headed_as_every_run_of_the_stage_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run resumed from an earlier sitting is headed with its place in the stage ("[1/2 at
    1 epoch] ...") as a fresh run is, and says it resumes: without the heading its line named
    the run alone, and the count of the stage's runs skipped it."""
    from benchmark import stages

    plan, storage, ex, records, stopped = stopped_default_run(tmp_path, "interrupted")
    shown: dict[Path, tuple[str | None, str]] = {}

    def fake(
        cfg: TrainConfig, data: object, run_dir: Path, ex: object, state=None, label=None, note=""
    ) -> dict:
        shown[run_dir] = (label, note)
        return {"run_id": run_dir.name, "test": {"sum_acc": 0.5}}

    monkeypatch.setattr(stages, "train_with_progress", fake)
    stages.train_all(plan, storage, None, ex, tmp_path, records, lambda: None)
    label, note = shown[stopped]
    assert label == "[1/2 at 1 epoch] gap_cnn x concat default, seed 0"
    assert note == "resuming at epoch 1: stopped in an earlier sitting"


def test_a_stopped_run_whose_checkpoint_is_damaged_is_marked_failed_and_its_seed_trained_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left ``interrupted``, the report listed it as one to resume, and every later compare
    tried to resume it again."""
    plan, storage, ex, records, stopped = stopped_default_run(
        tmp_path, "interrupted", b"not a checkpoint"
    )
    trained = trained_by_stages(plan, storage, ex, records, tmp_path, monkeypatch)
    assert rundir.read_status(stopped)[0] == "failed"
    assert trained[False][0] != stopped and not trained[False][1]  # afresh, beside it


def test_a_stopped_run_another_process_holds_is_left_to_it_and_its_seed_trained_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A run resumed by hand (``run --resume``) as compare goes round: compare trained in the
    directory the other process was training in. Now it says so and trains the seed afresh
    beside it, leaving the run to its holder."""
    plan, storage, ex, records, stopped = stopped_default_run(tmp_path, "interrupted")
    with child(HOLDS_RUN, str(stopped), ready="held"):
        trained = trained_by_stages(plan, storage, ex, records, tmp_path, monkeypatch)
    assert trained[False][0] != stopped and not trained[False][1]  # afresh, beside it
    said = " ".join(capsys.readouterr().out.split())
    assert f"not resuming {stopped} (still running (pid " in said
    # run --resume's words: compare does not stop it, and trains the seed afresh instead
    assert f"--resume {stopped}" not in said and "stop it first" not in said
    assert rundir.read_status(stopped)[0] == "interrupted"  # its holder's to mark


@pytest.mark.slow
@pytest.mark.postgres
def test_two_machines_share_one_compare(
    postgres_url: str, tmp_path: Path, mnist_root: Path
) -> None:
    """Two `compare` processes on one PostgreSQL storage (each its own results directory, as on
    two machines): the trials and the final runs are divided, none is run twice."""
    env = {**os.environ, "OPTUNA_STORAGE": postgres_url}
    one_core_each = ["--threads", "1"]  # two machines' worth of work on two cores, not four threads
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmark",
                *compare_argv(tmp_path / f"m{i}", mnist_root, *one_core_each),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    found = complete_runs(tmp_path / "m0") + complete_runs(tmp_path / "m1")
    plan = plan_of(tmp_path / "m0")
    studies = [optuna.load_study(study_name=n, storage=postgres_url) for n in plan["studies"]]
    check_protocol(found, studies, plan)  # each (variant, seed) exactly once over both
    (study,) = studies
    spent = [t for t in study.trials if counts_towards_budget(t)]  # not over cap, not a copy
    assert len(spent) <= plan["trials"] + 1  # at most one trial past the budget


class FakePlan:
    def __init__(self, key: str, epochs: int) -> None:
        self.plan = {"key": key, "budget": {"epochs": epochs}}

    def to_dict(self) -> dict:
        return self.plan

    def key(self) -> str:
        return self.plan["key"]


def test_a_jobs_sitting_records_the_machines_wall_time_only_when_work_was_done(
    tmp_path: Path,
) -> None:
    """Stage times sum the workers' time; a ``--jobs`` sitting adds the machine's own wall time,
    unless its workers found nothing to do. A new protocol in the same directory drops the
    sittings of the old one, as it drops its stages."""
    ladder = [FakePlan("k1", 1), FakePlan("k3", 3)]
    dicts = [p.to_dict() for p in ladder]
    with comparison.Sitting(tmp_path, ladder, "host", 4):
        comparison.record_stage(tmp_path, dicts[0], "tune", 8.0, "host", dicts)
    (sitting,) = comparison.sittings(comparison.read_comparison(tmp_path))
    assert sitting["where"] == "host" and sitting["processes"] == 4
    assert sitting["rungs"] == ["k1", "k3"] and sitting["seconds"] >= 0
    comparison.record_stage(tmp_path, dicts[1], "runs", 3.0, "host", dicts)  # kept on writes
    assert len(comparison.sittings(comparison.read_comparison(tmp_path))) == 1
    before = (tmp_path / comparison.COMPARISON).read_bytes()
    with comparison.Sitting(tmp_path, ladder, "host", 4):
        pass  # everything was complete
    assert (tmp_path / comparison.COMPARISON).read_bytes() == before
    other = {"key": "other", "budget": {"epochs": 1}}
    comparison.record_stage(tmp_path, other, "tune", 1.0, "host")
    assert comparison.sittings(comparison.read_comparison(tmp_path)) == []


def test_a_sitting_of_one_rung_is_kept_by_the_ladder_that_goes_on_with_that_rung(
    tmp_path: Path,
) -> None:
    """``compare --epochs 1``, then ``--epochs 1,3`` in the same directory: the ladder keeps the
    1-epoch rung's stage times, and the wall time of the sitting that worked on it with them."""
    one, ladder = [FakePlan("k1", 1)], [FakePlan("k1", 1), FakePlan("k3", 3)]
    with comparison.Sitting(tmp_path, one, "host", 2):
        comparison.record_stage(tmp_path, one[0].to_dict(), "tune", 8.0, "host")
    dicts = [p.to_dict() for p in ladder]
    comparison.record_stage(tmp_path, dicts[1], "tune", 1.0, "host", dicts)
    found = comparison.read_comparison(tmp_path)
    assert found["rungs"]["1"]["stages"] == {"tune": {"host": 8.0}}
    assert [s["rungs"] for s in comparison.sittings(found)] == [["k1"]]


def test_a_stage_clock_writes_each_tenth_once_and_nothing_for_a_stage_without_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written between runs and on leaving, the time is the stage's wall time, not counted
    again at each write; a stage that found everything complete leaves no file, nor does one
    whose work took under a tenth (comparison.json keeps tenths). A stage counted whatever it
    did (the report, when the workers did work) is written all the same."""
    now = iter([0.0, 1.0, 1.5, 10.0, 20.0, 20.04, 20.04, 30.0, 32.0])
    monkeypatch.setattr(comparison.time, "perf_counter", lambda: next(now))
    plan = FakePlan("k", 1)
    with comparison.StageClock(tmp_path, plan, "runs", "vm", [plan]) as clock:
        clock()  # a run done, 1.0 s in
    assert comparison.read_comparison(tmp_path)["stages"] == {"runs": {"vm": 1.5}}
    (tmp_path / comparison.COMPARISON).unlink()
    with comparison.StageClock(tmp_path, plan, "tune", "vm", [plan]):
        pass  # nothing to do
    with comparison.StageClock(tmp_path, plan, "tune", "vm", [plan]) as clock:
        clock()  # a trial done, 0.04 s in
    assert not (tmp_path / comparison.COMPARISON).exists()
    with comparison.StageClock(tmp_path, plan, "report", "vm", [plan], counted=True):
        pass  # the report, which calls no clock
    assert comparison.read_comparison(tmp_path)["stages"] == {"report": {"vm": 2.0}}


def test_a_sitting_adds_its_time_holding_the_lock_the_workers_add_theirs_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sitting reads, changes and writes comparison.json as its workers do: outside their
    lock, a worker's stage time written between its read and its write was lost."""
    plan = FakePlan("k", 1)
    write, held = comparison.files.write_json, []

    def locked_write(path: Path, value: dict) -> None:
        held.append(shared_lock_refused(tmp_path / comparison.LOCK))
        write(path, value)

    with comparison.Sitting(tmp_path, [plan], "host", 2):
        comparison.record_stage(tmp_path, plan.to_dict(), "tune", 1.0, "host")
        monkeypatch.setattr(comparison.files, "write_json", locked_write)
    assert held == [True] and len(comparison.sittings(comparison.read_comparison(tmp_path))) == 1


def test_the_cost_section_gives_the_sittings_wall_time() -> None:
    from benchmark.report.render import cost_section

    plan = {"key": "k", "pairs": [], "trials": 2, "max_params": 10, "seeds": [0]}
    sitting = {"where": "gpu-box", "processes": 16, "seconds": 300.0, "rungs": ["k"]}
    found = {"plan": plan, "stages": {"tune": {"gpu-box": 3600.0}}}
    assert "Wall time of the" not in cost_section(found)
    text = cost_section({**found, "sittings": [sitting, {**sitting, "seconds": 180.0}]})
    assert "gpu-box, 16 worker processes: 8.0 min in 2 sittings." in text


def test_the_cost_section_lists_stages_and_machines_in_order_and_skips_what_is_no_time() -> None:
    """Stages, then machines, in name order whatever order comparison.json holds them in; an
    entry that is no number of seconds (a damaged file) left out, and nothing but such
    entries: no section. The protocol's line counts combinations and lists seeds."""
    from benchmark.report.render import cost_section

    plan = {
        "key": "k",
        "pairs": [["gap_cnn", "concat"], ["small_cnn", "late_sum"]],
        "trials": 3,
        "max_params": 5000,
        "seeds": [0, 1, 2, 3],
    }
    stages = {"tune": {"b-box": 90.0, "a-box": 30.0, "c-box": "?"}, "bench": {"a-box": 6}}
    sittings = [
        {"where": "b-box", "processes": 2, "seconds": 90.0, "rungs": ["k"]},
        {"where": "a-box", "processes": 4, "seconds": 36.0, "rungs": ["k"]},
    ]
    text = cost_section({"plan": plan, "stages": {**stages, "notes": "?"}, "sittings": sittings})
    said = "`compare` protocol k: 2 combinations, 3 finished tuning trials each under a cap of "
    assert said + "5,000 parameters, seeds 0, 1, 2, 3. Wall time per stage" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| bench | a-box | 6.0 s |",
        "| tune | a-box | 30.0 s |",
        "| tune | b-box | 1.5 min |",
    ]
    assert text.endswith(
        "a-box, 4 worker processes: 36.0 s in 1 sitting; "
        "b-box, 2 worker processes: 1.5 min in 1 sitting."
    )
    assert cost_section({"plan": plan, "stages": {"tune": {"a-box": "?"}, "notes": "?"}}) == ""


def test_workers_adding_their_time_at_once_lose_none(tmp_path: Path) -> None:
    """Several ``compare`` processes of one machine add their stage time to one
    comparison.json; they take turns on it, so the sum holds every worker's time."""
    import threading

    plan = {"key": "k", "budget": {"epochs": 1}}

    def worker() -> None:
        for _ in range(25):
            comparison.record_stage(tmp_path, plan, "tune", 0.1, "host")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stages = comparison.read_comparison(tmp_path)["stages"]
    assert stages == {"tune": {"host": 10.0}}


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--jobs", "0"], "--jobs"),
        # 40 workers on 2 cores took 14 GB and finished no trial in 2 min: 4 per core at most
        (["--jobs", "1000"], "argument --jobs: must be <= "),
        (["--jobs", "2", "--worker", "1"], "give --jobs N or --worker I (one process of those"),
        (["--jobs", "4", "--sharing", "2"], "--sharing must be at least --jobs (4)"),
        (["--sharing", "0"], "--sharing"),
    ],
)
def test_bad_jobs_are_one_line(
    tmp_path: Path,
    flags: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(Workers or data reached fail at once: a refusal dropped had gone on to a real compare.)"""
    from benchmark.commands import compare as command

    monkeypatch.setattr(command, "run_workers", lambda *a: pytest.fail("workers started"))
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    argv = ["compare", "--arch", "small_cnn", "--fusion", "late_sum", *flags]
    assert exit_status([*argv, "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_worker_is_the_compare_as_typed_in_one_process() -> None:
    """``--jobs`` starts the same command with later flags winning: one process, its number,
    no report (the parent writes it), how many share the machine, and its share of a CPU's
    cores unless --threads was set."""
    import argparse

    from benchmark.commands.compare import worker_argv

    typed = ["compare", "--epochs", "1,3", "--jobs", "4", "--trials", "5"]
    args = argparse.Namespace(argv=typed, threads=None, jobs=4, sharing=None)
    argv = worker_argv(args, 2, threads=1)
    assert argv[:3] == [sys.executable, "-m", "benchmark"]
    tail = ["--jobs", "1", "--no-report", "--worker", "2", "--sharing", "4"]
    assert argv[3:] == [*typed, *tail, "--threads", "1"]
    args = argparse.Namespace(argv=[*typed, "--threads", "3"], threads=3, jobs=4, sharing=None)
    assert "--threads" not in worker_argv(args, 1, threads=1)[-4:]
    on_gpu = worker_argv(
        argparse.Namespace(argv=typed, threads=None, jobs=4, sharing=None), 1, None
    )
    assert on_gpu[-4:] == ["--worker", "1", "--sharing", "4"]
    # two such compares on one machine: each worker counts all eight
    both = argparse.Namespace(argv=[*typed, "--sharing", "8"], threads=None, jobs=4, sharing=8)
    assert worker_argv(both, 1, None)[-2:] == ["--sharing", "8"]


def test_jobs_on_a_cpu_give_each_worker_the_cores_over_the_processes_sharing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs 2 --sharing 4 on 16 cores: four processes train here, four threads each (eight
    each would oversubscribe the cores the other two hand-started ones use)."""
    import argparse

    from benchmark.commands import compare as command

    started: list[list[str]] = []
    monkeypatch.setattr(command, "run_workers", lambda commands, *a: started.extend(commands))
    monkeypatch.setattr(compare, "ladder_progress", lambda *a: [])
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    args = argparse.Namespace(results_dir=str(tmp_path), jobs=2, sharing=4, threads=None)
    args.argv = ["compare"]
    command.in_workers(args, [], None, "sqlite:///x.db", torch.device("cpu"))
    assert [argv[argv.index("--threads") + 1] for argv in started] == ["4", "4"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_jobs_run_a_tiny_ladder_in_worker_processes(
    kind: str, tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``compare --jobs 2`` on two rungs: each study ends with exactly --trials counted trials,
    each final run trains once, and the parent writes the report; also on a journal, where a
    worker that finds the last places held stops rather than waits."""
    spec = f"sqlite:///{tmp_path / 'optuna.db'}"
    if kind == "journal":
        spec = f"journal:{tmp_path / 'optuna.log'}"
    argv = ["compare", "--arch", "small_cnn", "--fusion", "late_sum", "--trials", "3"]
    argv += ["--seeds", "0", "--epochs", "1,2", "--train-subset", "256"]
    argv += ["--eval-batch-size", "2000", "--data-dir", str(synthetic_root)]
    argv += ["--results-dir", str(tmp_path), "--jobs", "2", "--storage", spec]
    assert main(argv) == 0
    storage = storages.open_storage(spec)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    studies = [n for n in names if n.startswith("small_cnn__late_sum__e")]
    assert len(studies) == 2
    for name in studies:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert sum(map(counts_towards_budget, trials)) == 3
    runs = complete_runs(tmp_path)
    assert all(m["device"].endswith(", shared by 2 processes") for m in runs)  # its timings
    assert sorted((m["epochs"], m["tuned"]) for m in runs) == [
        (1, False), (1, True), (2, False), (2, True)
    ]  # fmt: skip
    assert (tmp_path / "report.md").is_file()
    out = " ".join(capsys.readouterr().out.split())  # the answer said, then where the rest is
    assert "answer: At the main comparison's budget (2 epochs on 256 training images" in out
    assert f"report: {tmp_path / 'report.md'}" in out
    (sitting,) = comparison.sittings(comparison.read_comparison(tmp_path))  # the machine's time
    assert sitting["processes"] == 2 and len(sitting["rungs"]) == 2 and sitting["seconds"] > 0
    text = (tmp_path / "report.md").read_text()
    assert "Wall time of the `compare --jobs` sittings" in text
    # the studies from the storage they were tuned in (a journal's were left out: optuna.db only)
    assert all(f"| {name} | 3 |" in text for name in studies), studies


def test_a_worker_that_fails_is_named_and_nothing_is_reported(
    tmp_path: Path, small_data, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.commands import compare as command

    def failing(args, index: int, threads: int | None) -> list[str]:
        return [sys.executable, "-c", f"raise SystemExit({index + 2})"]

    monkeypatch.setattr(command, "worker_argv", failing)
    argv = ["compare", "--arch", "small_cnn", "--fusion", "late_sum", "--trials", "2"]
    argv += ["--seeds", "0", "--epochs", "1", "--jobs", "2", "--results-dir", str(tmp_path)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "worker 1 (pid" in out and "exited with status 3" in out
    assert "worker 2 (pid" in out and "exited with status 4" in out
    assert not (tmp_path / "report.md").exists()


@pytest.mark.slow  # a protocol of two models, tuned and trained: about 45 s on 2 cores
def test_gap_cnn_and_a_sized_vit_compare_in_one_protocol(
    tmp_path: Path, synthetic_root: Path, capsys
) -> None:
    """End to end: the ViT's study and runs hold its sizes, gap_cnn's hold none, the report
    sets all four groups in its main comparison (the ViT named with its sizes), and a rerun
    trains nothing."""
    results = tmp_path / "results"
    argv = ["compare", "--arch", "gap_cnn,timm:test_vit", "--fusion", "late_sum", "--epochs", "1"]
    argv += ["--trials", "1", "--seeds", "0,1", "--train-subset", "512", "--eval-batch-size"]
    argv += ["500", "--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    argv += ["--data-dir", str(synthetic_root), "--results-dir", str(results)]
    assert main(argv) == 0
    found = complete_runs(results)
    assert len(found) == 8
    held = {"img_size": 28, "patch_size": 7}
    for m in found:  # tuned runs add what their study tuned (drop_rate, head_dropout, ...)
        sized = {k: v for k, v in m["config"]["model_args"].items() if k in held}
        assert sized == (held if m["arch"] == "timm:test_vit" else {})
    summary = pd.read_csv(results / "summary.csv", keep_default_na=False)
    main_groups = summary[summary["section"] == "main"]
    assert len(main_groups) == 4
    assert set(main_groups["label"]) == {
        "gap_cnn x late_sum", "gap_cnn x late_sum (tuned)",
        "timm:test_vit x late_sum (img_size=28, patch_size=7)",
        "timm:test_vit x late_sum (img_size=28, patch_size=7) (tuned)",
    }  # fmt: skip
    capsys.readouterr()
    before = sorted(p.name for p in (results / "runs").iterdir())
    assert main([*argv, "--no-report"]) == 0
    assert sorted(p.name for p in (results / "runs").iterdir()) == before


def test_each_rung_is_its_own_protocol() -> None:
    """Rungs of 3 and 9 epochs prune alike: only the epochs tell their queues apart, and a
    shared queue would count one rung's runs as the other's."""
    pairs = (("gap_cnn", "concat"),)
    keys = {compare.Plan(TrainConfig(epochs=e), pairs, (0,), 5, 10**5).key() for e in (2, 3, 9)}
    assert len(keys) == 3


def test_a_damaged_run_queued_again_by_two_workers_is_trained_once(tmp_path: Path) -> None:
    """Two workers open the queue at once and each queues again a run whose directory here is
    damaged: the second saw no running copy of it (every trial of the run was set aside as
    unreadable) and trained it beside the first; its counts called that run complete."""
    plan = compare.Plan(TrainConfig(epochs=1), (("gap_cnn", "concat"),), (0,), 2, 10**6)
    damaged, elsewhere = plan.items()
    storage = optuna.storages.InMemoryStorage()
    queue = optuna.create_study(storage=storage, study_name=comparison.QUEUE_PREFIX + plan.key())
    for item, run in ((damaged, "r1"), (elsewhere, "elsewhere")):
        queue.add_trial(queue_trial(plan, item, value=0.0, user_attrs={"run": run, "queued": True}))
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / "runs" / "r1" / rundir.CONFIG).write_text("{}")  # no metrics.json
    queue, unreadable = compare.open_queue(plan, storage, tmp_path)
    queue.enqueue_trial({"item": damaged}, user_attrs={"queued": True})  # the other worker's
    first = queue.ask()  # that worker pops one copy and trains it
    first.suggest_categorical("item", plan.items())
    trained: list[int] = []
    compare.run_queue(plan, queue, tmp_path, {}, lambda cfg: trained.append(cfg.seed), None,
                      unreadable)  # fmt: skip
    assert trained == []  # the copy left is a stray
    counts = compare.progress_counts(queue, unreadable)
    assert (counts["complete"], counts["running"]) == (1, 1)


def test_a_seed_with_two_damaged_runs_is_counted_once_by_the_status(tmp_path: Path) -> None:
    """Run by run, a seed trained twice, both directories damaged here, read "2 unreadable
    here (trains again)" where one run trains again."""
    plan = compare.Plan(TrainConfig(epochs=1), (("gap_cnn", "concat"),), (0,), 2, 10**6)
    storage = optuna.storages.InMemoryStorage()
    queue = optuna.create_study(storage=storage, study_name=comparison.QUEUE_PREFIX + plan.key())
    for run in ("r1", "r2"):
        queue.add_trial(queue_trial(plan, plan.items()[0], value=0.0, user_attrs={"run": run}))
        (tmp_path / "runs" / run).mkdir(parents=True)
    (rung,) = compare.ladder_status([plan], storage, tmp_path)
    assert (rung["runs_unreadable"], rung["runs"]) == (1, 0)


def test_a_run_directory_here_without_its_metrics_is_not_done(tmp_path: Path) -> None:
    queue = optuna.create_study()
    for item, run in (("a|b|default|0", "r1"), ("a|b|default|1", "elsewhere")):
        queue.add_trial(
            optuna.trial.create_trial(
                params={"item": item},
                distributions={"item": optuna.distributions.CategoricalDistribution([item])},
                value=0.0,
                user_attrs={"run": run},
            )
        )
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / rundir.CONFIG).write_text("{}")  # a run killed before it finished
    assert compare.unreadable_here(queue, tmp_path) == {
        "r1": ("a|b|default|0", f"{run_dir}: no {rundir.METRICS}")
    }  # the other has no directory here: another machine's, done there


def test_a_resumed_compare_numbers_its_runs_after_those_already_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted from 1 in every sitting, the last run of a resumed compare read "[1/2]", as if
    none of the rung's runs were done."""
    from benchmark import stages

    base, ex = hardware.decide(TrainConfig(epochs=1, **PLAIN_CPU))
    pair = ("gap_cnn", "concat")
    plan = compare.Plan(base, (pair,), (0,), 2, 10**6)
    storage = optuna.storages.InMemoryStorage()
    queue = optuna.create_study(storage=storage, study_name=comparison.QUEUE_PREFIX + plan.key())
    # the default run, done in an earlier sitting (on another machine)
    queue.add_trial(queue_trial(plan, plan.items()[0], value=0.5, user_attrs={"run": "elsewhere"}))
    labels: list[str | None] = []

    def fake(
        cfg: TrainConfig, data: object, run_dir: Path, ex: object, state=None, label=None, note=""
    ) -> dict:
        labels.append(label)
        return {"run_id": run_dir.name, "test": {"sum_acc": 0.5}}

    monkeypatch.setattr(stages, "train_with_progress", fake)
    record = {"train": {}, "model_args": {}, "study": "s", "trial": 0, "value": 0.5, "budget": {}}
    stages.train_all(plan, storage, None, ex, tmp_path, {pair: record}, lambda: None)
    assert labels == ["[2/2 at 1 epoch] gap_cnn x concat tuned, seed 0"]


def test_a_damaged_run_trained_again_is_no_longer_said_to_train_again(tmp_path: Path) -> None:
    """Once its seed is trained again beside it, the damaged directory is done with: still
    counted, every later status said "1 unreadable here (trains again)" and every compare
    "training the seed again", of a seed it never trained again."""
    plan = compare.Plan(TrainConfig(epochs=1), (("gap_cnn", "concat"),), (0,), 2, 10**6)
    storage = optuna.storages.InMemoryStorage()
    queue = optuna.create_study(storage=storage, study_name=comparison.QUEUE_PREFIX + plan.key())
    for run in ("damaged", "again"):
        queue.add_trial(queue_trial(plan, plan.items()[0], value=0.5, user_attrs={"run": run}))
    (tmp_path / "runs" / "damaged").mkdir(parents=True)  # no metrics.json
    make_run(tmp_path / "runs", "again")
    assert compare.unreadable_here(queue, tmp_path) == {}
    (rung,) = compare.ladder_status([plan], storage, tmp_path)
    assert (rung["runs"], rung["runs_unreadable"]) == (1, 0)


def test_a_seed_run_twice_is_found_complete_in_its_first_run(tmp_path: Path) -> None:
    """A seed trained twice (two machines at once, or a copy brought in) is found in the run
    begun first, the one the report counts: the last one found was named instead, and which it
    was changed as runs were added."""
    first = make_run(tmp_path / "runs", "20260101-000000-gap_cnn-concat-s0-aaaaaa")
    make_run(tmp_path / "runs", "20260102-000000-gap_cnn-concat-s0-bbbbbb")
    assert list(rundir.complete_seeds(tmp_path).values()) == [first.name]


def test_a_run_from_before_tuned_was_recorded_is_its_seeds_untuned_run(tmp_path: Path) -> None:
    """A metrics.json without ``tuned`` is an untuned run, as the report reads it: the seed is
    found complete in it, not trained again beside it."""
    cfg = TrainConfig(arch="gap_cnn", fusion="concat", seed=0)
    run_dir = make_run(tmp_path / "runs", "old", config_hash=cfg.config_hash())
    found = json.loads((run_dir / rundir.METRICS).read_text())
    del found["tuned"]
    (run_dir / rundir.METRICS).write_text(json.dumps(found))
    assert rundir.complete_seeds(tmp_path) == {rundir.planned_seed(cfg, "fp32"): "old"}


def test_a_run_interrupted_on_another_worker_is_counted_as_interrupted(tmp_path: Path) -> None:
    """The count that sends compare round for a next pass: a run whose worker was stopped
    during this pass (its one queue trial failed) was counted nowhere, and compare ended with
    the rung a run short."""
    plan = compare.Plan(TrainConfig(epochs=1), (("gap_cnn", "concat"),), (0,), 2, 10**6)
    storage = optuna.storages.InMemoryStorage()
    queue = optuna.create_study(storage=storage, study_name=compare.QUEUE_PREFIX + plan.key())
    queue.add_trial(queue_trial(plan, plan.items()[0], state=TrialState.FAIL))
    assert compare.progress_counts(queue) == {
        "complete": 0, "diverged": 0, "running": 0, "waiting": 0, "interrupted": 1
    }  # fmt: skip
    (rung,) = compare.ladder_status([plan], storage, tmp_path)  # and --status says so
    assert (rung["runs"], rung["runs_interrupted"], rung["runs_wanted"]) == (0, 1, 2)


def test_a_bad_model_argument_value_held_for_every_combination_is_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``width=0`` held for two combinations said "2 of 2 models cannot run on 1x28x28 images
    (leave them out of --arch)": it is a value to fix, said as tune and run say it."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    results = tmp_path / "results"
    argv = ["compare", "--arch", "gap_cnn,small_cnn", "--fusion", "concat"]
    assert exit_status([*argv, "--model-arg", "width=0", "--results-dir", str(results)]) == 2
    assert one_line(capsys.readouterr().err).endswith(
        "error: width=0 for gap_cnn: expected int in 1..256"
    )
    assert not results.exists()
