"""``compare --epochs 1,2``: the protocol at every rung of a ladder of budgets, multi-fidelity
tuning (successive halving stops poor trials, never the defaults one) and rung reuse."""

from __future__ import annotations

import io
import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from conftest import one_line, queue_trial
from optuna.trial import TrialState

from benchmark import compare, comparison, hardware, places, pruning, rundir, tuning
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.trials import epochs_spent

LADDER = ["--arch", "small_cnn", "--fusion", "late_sum", "--trials", "2", "--seeds", "0"]
LADDER += ["--epochs", "1,2", "--train-subset", "256", "--no-report"]


def runs_by_epochs(results: Path) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for run_dir in sorted((results / "runs").glob("*")):
        metrics = rundir.read_metrics(run_dir)
        found.setdefault(metrics["epochs"], []).append(metrics)
    return found


class SlowClock:
    """``time`` as the stage clocks see it (``benchmark.comparison``), each reading a second
    after the last: the opening of studies and queues, quick here, takes time as it does on a
    large storage."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_a_tiny_ladder_runs_every_rung_and_a_rerun_trains_nothing(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["compare", *LADDER, "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    runs = runs_by_epochs(tmp_path)
    assert sorted(runs) == [1, 2]
    for epochs, found in runs.items():  # default and tuned, seed 0, tuned at this rung
        assert sorted(m["tuned"] for m in found) == [False, True]
        tuned = next(m for m in found if m["tuned"])
        study = tuned["config"]["tuned_from"]["study"]
        assert study.startswith(f"small_cnn__late_sum__e{epochs}__")
    written = json.loads((tmp_path / comparison.COMPARISON).read_text())
    assert sorted(written["rungs"]) == ["1", "2"]
    assert written["plan"] == written["rungs"]["2"]["plan"]  # the top rung gives the answer
    machine = f"{socket.gethostname()} ({hardware.machine_name(torch.device('cpu'))})"
    for rung in written["rungs"].values():
        assert {"tune", "runs"} <= set(rung["stages"])
        assert set(rung["stages"]["runs"]) == {machine}  # named with its CPU's features
    assert written["rungs"]["2"]["plan"]["pruner"] == "halving, defaults ranked"
    assert "pruner" not in written["rungs"]["1"]["plan"]  # at one epoch nothing is pruned
    storage = f"sqlite:///{tmp_path / places.OPTUNA_DB}"
    pruners = {
        s.study_name: s.user_attrs.get("pruner") for s in optuna.get_all_study_summaries(storage)
    }
    assert {name.split("__")[2]: p for name, p in pruners.items() if "__e" in name} == {
        "e1": None,
        "e2": "halving, defaults ranked",
    }
    out = capsys.readouterr().out
    # which rung of how many: each rung's counters start again
    assert "tuning at 1 epoch, rung 1 of 2, 2 trials a study:" in out
    assert "tuning at 2 epochs, rung 2 of 2, 2 trials a study:" in out
    heading = "[1/2 at 2 epochs, rung 2 of 2] small_cnn x late_sum default, seed 0\n"
    assert heading in out and "seed 0: training" not in out  # its run's one heading
    assert out.split(heading)[1].lstrip().startswith(str(tmp_path / "runs"))
    cells = []  # the tuning table: epochs trained of what would train unpruned, by rung
    for name in sorted(name for name in pruners if "__e" in name):  # e1, then e2
        trained, unpruned = epochs_spent(optuna.load_study(study_name=name, storage=storage))
        cells.append(f"{trained} of {unpruned}, {trained / unpruned:.0%}")
    row = next(line for line in out.splitlines() if "small_cnn x late_sum" in line and "│" in line)
    assert [cell.strip() for cell in row.split("│")[2:4]] == cells
    costs = (tmp_path / comparison.COMPARISON).read_bytes()
    monkeypatch.setattr("benchmark.comparison.time", SlowClock())

    def no_mnist(*args: object, **kwargs: object) -> None:
        raise AssertionError("a complete ladder loaded MNIST")

    monkeypatch.setattr("benchmark.data.load_mnist", no_mnist)  # a clone without MNIST
    # everything is there: nothing trains again, no data is needed; --log (not part of what
    # a run learns) keeps the same protocol, and the header says where the final runs log
    assert main([*argv, "--log", "tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "training" not in out.replace("already complete", "")
    assert "logging to TensorBoard in each run's tensorboard/ folder (browse: tensorboard " in out
    assert sum(len(found) for found in runs_by_epochs(tmp_path).values()) == 4
    # and no stage time is added for it, so the report drawn from the file stays the same
    assert (tmp_path / comparison.COMPARISON).read_bytes() == costs


@pytest.mark.slow  # three reports with their plots: six seconds on 2 cores
def test_a_rerun_of_a_finished_ladder_leaves_its_report_as_it_was(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's own time went into comparison.json after report.md was written: the first
    rerun, which trains nothing, added its row to *Cost per budget* and changed report.md."""
    argv = ["compare", *[a for a in LADDER if a != "--no-report"], "--results-dir", str(tmp_path)]
    argv[argv.index("1,2")] = "1"
    assert main(argv) == 0
    report = (tmp_path / "report.md").read_text()
    assert "| report | " in report  # its own time, taken after it was first written
    assert "protocol " in report and ": 1 combination, 2 finished tuning trials" in report
    assert main(argv) == 0
    assert (tmp_path / "report.md").read_text() == report


def test_a_ladder_whose_last_run_diverged_is_complete(tmp_path: Path) -> None:
    """A diverged run is final, never queued again: counted as missing, a finished ladder read
    as unfinished, and reporting it again asked for MNIST."""
    from benchmark.errors import TrainingFailed

    pair = ("gap_cnn", "concat")
    plan = compare.Plan(TrainConfig(epochs=1), (pair,), (0,), 1, 10**6)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=plan.study(*pair))
    study.add_trial(optuna.trial.create_trial(value=0.5))
    queue, _ = compare.open_queue(plan, storage, tmp_path)
    record = {"train": {}, "model_args": {}, "study": "s", "trial": 0, "value": 0.5, "budget": {}}

    def train(cfg: TrainConfig) -> dict:
        if cfg.tuned_from is not None:
            raise TrainingFailed("training stopped: non-finite loss")
        return {"run_id": "r", "test": {"sum_acc": 0.5}}

    compare.run_queue(plan, queue, tmp_path, {pair: record}, train)
    (rung,) = compare.ladder_status([plan], storage, tmp_path)
    assert (rung["runs"], rung["runs_diverged"], rung["runs_wanted"]) == (1, 1, 2)
    assert compare.ladder_complete([plan], storage, tmp_path)


def test_status_says_where_each_rung_stands_and_writes_nothing(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str]
) -> None:
    """``compare --status`` before anything started creates nothing; after ``--tune-only`` it
    counts every rung's trials as done and its runs as not, and leaves every file as it was."""
    argv = ["compare", *LADDER, "--results-dir", str(tmp_path / "ladder")]
    assert main([*argv, "--status"]) == 0
    assert "nothing started" in capsys.readouterr().out
    assert not (tmp_path / "ladder").exists()
    assert main([*argv, "--tune-only"]) == 0
    before = {p: p.read_bytes() for p in (tmp_path / "ladder").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main([*argv, "--status"]) == 0
    rows = [line.split("│")[1:4] for line in capsys.readouterr().out.splitlines() if "│" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["1 epoch", "2 of 2", "0 of 2"],
        ["2 epochs", "2 of 2", "0 of 2"],
    ]
    after = {p: p.read_bytes() for p in (tmp_path / "ladder").rglob("*") if p.is_file()}
    assert after == before
    # a trial queued again (a killed worker's, after its heartbeat failed it) is named
    storage = f"sqlite:///{tmp_path / 'ladder' / 'optuna.db'}"
    (one,) = [n for n in optuna.get_all_study_names(storage) if "__e1__" in n]
    optuna.load_study(study_name=one, storage=storage).enqueue_trial({})
    assert main([*argv, "--status"]) == 0
    out = capsys.readouterr().out
    assert "│ 1 epoch  │ 2 of 2, 1 queued │" in out
    assert f"the ladder in {storage}\n" in out  # whole: the table's width had cut it in two
    # --status with no flag of a protocol is the status of the one there, its flags named (it
    # was the defaults', "nothing done"); another protocol's status (here the defaults' with 4
    # epochs) says the ladder there is another one, and names its flags; those flags give this
    # ladder's status, and plain compare names them too
    results = ["--results-dir", str(tmp_path / "ladder")]
    assert main(["compare", *results, "--status"]) == 0
    out = capsys.readouterr().out
    assert "holds: --arch small_cnn --fusion late_sum --seeds 0 --trials 2 --max-params" in out
    assert "│ 1 epoch  │ 2 of 2, 1 queued │" in out and "another protocol" not in out
    # flags of how the work is done are no protocol: still the status of the one there, and
    # said to change nothing (--jobs had made it the defaults' status)
    assert main(["compare", *results, "--status", "--jobs", "2", "--tune-only"]) == 0
    out = capsys.readouterr().out
    assert "note: --status only reads; --tune-only and --jobs change nothing there\n" in out
    assert "│ 1 epoch  │ 2 of 2, 1 queued │" in out and "another protocol" not in out
    assert main(["compare", *results, "--status", "--epochs", "4"]) == 0
    (note,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    flags = note.split("holds another protocol (", 1)[1].split(");", 1)[0]
    assert flags.startswith("--arch small_cnn --fusion late_sum --seeds 0 --trials 2 --max-params")
    assert flags.endswith("--train-subset 256 --epochs 1,2")
    assert main(["compare", *flags.split(), *results, "--status"]) == 0
    out = capsys.readouterr().out
    assert "another protocol" not in out and "2 epochs │" in out
    assert main(["compare", *results, "--no-report"]) == 2
    assert f"(as its plans record it: {flags})" in one_line(capsys.readouterr().err)
    assert "running:" not in out
    # the queued trial taken (by a worker that may since have been killed): said running, and
    # what running means there
    optuna.load_study(study_name=one, storage=storage).ask()
    assert main(["compare", *results, "--status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "│ 1 epoch │ 2 of 2, 1 running │" in out
    assert "the work of a worker killed outright shows as running until the next compare" in out


def test_workers_started_by_hand_on_one_machine_time_their_runs_as_shared(
    tmp_path: Path, small_data
) -> None:
    """``--sharing N`` on a compare started by hand: its final runs name their device as
    shared by N processes, as the workers of ``--jobs N`` do, so the report never pools their
    timings with the machine's own."""
    single = [a if a != "1,2" else "1" for a in LADDER]
    assert main(["compare", *single, "--sharing", "3", "--results-dir", str(tmp_path)]) == 0
    devices = {m["device"] for m in runs_by_epochs(tmp_path)[1]}
    assert len(devices) == 1
    assert devices.pop().endswith(", shared by 3 processes")


def test_a_rung_of_a_single_compare_is_reused_by_a_ladder(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str]
) -> None:
    single = [a if a != "1,2" else "1" for a in LADDER]
    common = ["--results-dir", str(tmp_path)]
    assert main(["compare", *single, *common]) == 0
    before = json.loads((tmp_path / comparison.COMPARISON).read_text())
    assert "rungs" not in before  # one rung: the file as ever
    capsys.readouterr()
    assert main(["compare", *LADDER, *common]) == 0
    assert len(runs_by_epochs(tmp_path)[1]) == 2  # rung 1 reused, not retrained
    after = json.loads((tmp_path / comparison.COMPARISON).read_text())
    assert after["rungs"]["1"]["plan"]["key"] == before["plan"]["key"]
    tune_s = sum(before["stages"]["tune"].values())
    assert sum(after["rungs"]["1"]["stages"]["tune"].values()) >= tune_s  # sittings add up


class PruneAll(optuna.pruners.BasePruner):
    """Prunes every trial at its first report: what a pruner may do, made certain."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_the_pruner_stops_a_trial_but_never_the_defaults_one(small_data) -> None:
    from benchmark import hardware

    base, ex = hardware.decide(
        TrainConfig(
            arch="small_cnn", fusion="late_sum", epochs=3, train_subset=256, precision="fp32"
        )
    )
    storage = optuna.storages.InMemoryStorage()
    study = tuning.open_study(storage, "s", base, None)
    study.pruner = PruneAll()
    study.sampler = optuna.samplers.TPESampler(seed=0)
    tuning.optimize(study, base, small_data, ex, trials=2)
    defaults, other = study.trials
    assert defaults.user_attrs["defaults"] and defaults.state == TrialState.COMPLETE
    assert sorted(defaults.intermediate_values) == [1, 2, 3]
    assert other.state == TrialState.PRUNED and sorted(other.intermediate_values) == [1]
    assert epochs_spent(study) == (3 + 1, 2 * 3)


def test_a_study_tuned_under_another_pruner_is_refused_in_one_line(small_data) -> None:
    from benchmark.errors import UsageError

    base = TrainConfig(arch="gap_cnn", fusion="late_sum", epochs=3, train_subset=256)
    storage = optuna.storages.InMemoryStorage()
    fresh = tuning.open_study(storage, "fresh", base, None)  # only the queued defaults trial
    pruning.keep_pruner(fresh, "halving", "hint")
    pruning.keep_pruner(fresh, "halving", "hint")  # the same pruner again: resumed as ever
    assert fresh.user_attrs["pruner"] == "halving"
    said = "'fresh' was tuned with halving pruning, not hyperband; hint"
    with pytest.raises(UsageError, match=said):
        pruning.keep_pruner(fresh, "hyperband", "hint")
    older = tuning.open_study(storage, "older", base, None)
    older.add_trial(optuna.trial.create_trial(value=0.5))  # trained before pruners were recorded
    with pytest.raises(UsageError, match="'older' was tuned with an unrecorded pruning"):
        pruning.keep_pruner(older, "halving", "hint")
    pruning.keep_pruner(older, "median", "hint", strict=False)  # tune: recorded from now on
    assert older.user_attrs["pruner"] == "median"
    with pytest.raises(UsageError, match="with median pruning, not halving"):
        pruning.keep_pruner(older, "halving", "hint", strict=False)


def test_the_ladder_prunes_by_successive_halving_from_one_epoch() -> None:
    """A third of the trials at a rung go on, from the first epoch: of four, the second best
    stops too (a half would have let it on), as ``HALVING_FACTOR`` and the cap count."""
    pruner = pruning.make_pruner("halving", 9)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    pruned = []
    for value in (0.9, 0.1, 0.2, 0.85):  # four trials reach epoch 1
        trial = study.ask()
        trial.report(value, 1)
        pruned.append(trial.should_prune())
        study.tell(trial, value)
    assert pruned == [False, True, True, True]


def test_tunes_median_pruner_waits_for_five_finished_trials() -> None:
    """``tune --pruner median``: the median of fewer trials is noise, so none is pruned before
    five have finished, however poor; the sixth, as poor, is."""
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("median", 3))
    pruned = []
    for _ in range(6):
        trial = study.ask()
        value = 0.1 if len(pruned) in (1, 5) else 0.9  # the second and the sixth are poor
        trial.report(value, 1)
        pruned.append(trial.should_prune())
        study.tell(trial, value)
    assert pruned == [False] * 5 + [True]


def test_tunes_hyperband_stops_poor_trials_before_any_trial_has_finished() -> None:
    """``tune --pruner hyperband --jobs 4``: a schedule read off the first finished trial
    (Optuna's ``max_resource="auto"``) pruned nothing until one had finished, so every trial
    started meanwhile trained in full, however poor."""
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("hyperband", 3))
    pruned = []
    for i in range(12):  # twelve trials running at once, none finished
        trial = study.ask()
        trial.report(1.0 - 0.05 * i, 1)  # each poorer than the one before
        pruned.append(trial.should_prune())
    assert any(pruned)


def test_the_defaults_trial_sets_the_bar_of_successive_halving(small_data) -> None:
    """The defaults trial is ranked at each epoch like any trial (and finishes): its value is
    the one the first suggestion must beat to go on, instead of going on unopposed."""
    from benchmark import hardware

    base, ex = hardware.decide(
        TrainConfig(
            arch="small_cnn", fusion="late_sum", epochs=2, train_subset=256, precision="fp32"
        )
    )
    study = tuning.open_study(optuna.storages.InMemoryStorage(), "s", base, None)
    study.pruner = pruning.make_pruner("halving", 2)
    tuning.optimize(study, base, small_data, ex, trials=1)
    (defaults,) = study.trials
    assert defaults.state == TrialState.COMPLETE
    assert defaults.system_attrs["completed_rung_0"] == defaults.intermediate_values[1]
    worse = study.ask()  # a suggestion below the defaults at epoch 1 is stopped there
    worse.report(defaults.intermediate_values[1] - 0.01, 1)
    assert worse.should_prune()


def nine_epoch_plan() -> compare.Plan:
    base = TrainConfig(arch="gap_cnn", fusion="concat", epochs=9)
    return compare.Plan(base, (("gap_cnn", "concat"),), (0,), 20, 10**6)


def tune_ever_better(study: optuna.Study, trials: int, epochs: int) -> list[int]:
    """``trials`` trials, the first the defaults one, each better than every trial before it
    at every epoch (a sampler that keeps improving): halving alone lets every one go on. The
    epochs each trained."""
    trained = []
    for number in range(trials):
        trial = study.ask()
        if number == 0:
            trial.set_user_attr("defaults", True)
        for epoch in range(1, epochs + 1):
            trial.report(0.5 + number / 100 + epoch / 1000, epoch)
            if epoch < epochs and trial.should_prune() and number > 0:
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, 0.5 + number / 100)
        trained.append(epoch)
    return trained


def test_a_nine_epoch_study_trains_at_most_its_share_however_good_its_trials() -> None:
    """The must-show bound, forced: without the cap successive halving trains this study to
    the end trial after trial; with it, at most 40% of 20 x 9 epochs, every trial stopped at a
    rung (never part-way to the next one), and the defaults trial still to the end."""
    plan = nine_epoch_plan()
    assert plan.epoch_cap() == 72 and plan.pruner().endswith("at most 40% of unpruned epochs")
    halving = optuna.create_study(direction="maximize", pruner=pruning.make_pruner("halving", 9))
    assert sum(tune_ever_better(halving, 20, 9)) > 72  # what the cap is for
    capped = optuna.create_study(direction="maximize", pruner=plan.make_pruner())
    trained = tune_ever_better(capped, 20, 9)
    assert epochs_spent_of(capped) == sum(trained) <= 72
    assert trained[0] == 9 and set(trained) <= {1, 3, 9}
    assert trained[-1] == 1  # the last trials get what the cap kept for them: one epoch each


def epochs_spent_of(study: optuna.Study) -> int:
    study.set_user_attr("budget", {"epochs": 9})
    return epochs_spent(study)[0]


def test_the_cap_counts_running_trials_at_their_next_rung() -> None:
    """``promised_epochs`` by hand: finished trials their epochs, a running trial its next
    rung (the defaults one all its epochs), one epoch for each trial not started."""
    study = optuna.create_study(direction="maximize")
    for last in (1, 3):
        values = {epoch: 0.5 for epoch in range(1, last + 1)}
        study.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values=values))
    defaults = study.ask()
    defaults.set_user_attr("defaults", True)
    defaults.report(0.5, 1)
    promoted = study.ask()
    for epoch in (1, 2, 3):
        promoted.report(0.5, epoch)
    assert pruning.promised_epochs(study, 9, 10) == (1 + 3) + 9 + 9 + (10 - 4)
    # workers started more trials than the study asks for (each saw a free one): none is
    # promised for the trials not started, not minus one, which would let it past its cap
    assert pruning.promised_epochs(study, 9, 3) == (1 + 3) + 9 + 9
    # a trial stopped before training (started for a place another worker's had taken), still
    # running as it is told so, trains nothing and takes no place
    surplus = study.ask()
    surplus.set_user_attr("surplus", True)
    assert pruning.promised_epochs(study, 9, 10) == (1 + 3) + 9 + 9 + (10 - 4)
    assert pruning.promised_epochs(study, 9, 3) == (1 + 3) + 9 + 9


def test_the_cap_stops_a_trial_only_past_it_and_halvings_rungs_are_1_3_9() -> None:
    """The bounds, as direct failures: a study promised exactly its cap goes on and one epoch
    over it stops; halving's next rung after an epoch; what a trial counts as. Got wrong, the
    tiny ladder's tuning did not fail, it ran on (a pruned trial not counted: for ever)."""
    from optuna.trial import TrialState

    from benchmark.trials import counts_towards_budget

    study = optuna.create_study(direction="maximize")
    for last in (1, 3):
        values = {epoch: 0.5 for epoch in range(1, last + 1)}
        study.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values=values))
    running = study.ask()
    running.report(0.5, 1)
    promised = pruning.promised_epochs(study, 9, 10)
    assert promised == (1 + 3) + 3 + (10 - 3)
    never = optuna.pruners.NopPruner()  # halving lets every trial on: the cap alone decides
    frozen = study.get_trials(deepcopy=False)[-1]
    assert not pruning.EpochCap(never, 9, 10, cap=promised).prune(study, frozen)
    assert pruning.EpochCap(never, 9, 10, cap=promised - 1).prune(study, frozen)
    assert [pruning.halving_rung_after(e, 9) for e in (0, 1, 2, 3, 8)] == [1, 3, 3, 9, 9]
    assert pruning.halving_rung_after(3, 4) == 4  # the study's epochs at most
    pruned = optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.5})
    assert counts_towards_budget(pruned)
    over = optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"over_cap": True})
    assert not counts_towards_budget(over)
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    assert not counts_towards_budget(failed)


def test_a_trial_the_cap_stops_still_sets_halvings_bar_at_its_rung() -> None:
    """Halving is asked first, whatever the cap decides: the value of a trial stopped by the cap
    is ranked at its rung as any other's, so the trials after it must beat it too."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.report(0.5, 1)
    frozen = study.get_trials(deepcopy=False)[-1]
    assert pruning.EpochCap(pruning.make_pruner("halving", 9), 9, 10, cap=0).prune(study, frozen)
    assert study.get_trials(deepcopy=False)[-1].system_attrs["completed_rung_0"] == 0.5


def test_epochs_spent_counts_only_the_trials_that_trained() -> None:
    """What pruning saved, over the trials that count towards --trials: one rejected before
    training or failed adds neither its epochs nor a budget's; a budget whose epochs is no
    whole number (true) leaves the unpruned epochs unknown (0)."""
    from optuna.trial import create_trial

    study = optuna.create_study(direction="maximize")
    study.set_user_attr("budget", {"epochs": 3})
    study.add_trial(create_trial(value=0.5, intermediate_values={1: 0.4, 2: 0.45, 3: 0.5}))
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.2}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"over_cap": 10}))
    study.add_trial(create_trial(state=TrialState.FAIL, intermediate_values={1: 0.3}))
    assert epochs_spent(study) == (3 + 1, 2 * 3)
    study.set_user_attr("budget", {"epochs": True})
    assert epochs_spent(study) == (3 + 1, 0)


def test_the_cap_applies_where_halvings_own_schedule_keeps_under_it() -> None:
    """At 3 epochs halving's schedule trains 5/9 of the epochs (all trials 1, a third 3), over
    40%: no cap, the rule the committed 3-epoch rung was tuned under; at 9, 7/27: capped."""
    assert pruning.halving_share(3) == pytest.approx((1 + 2 / 3) / 3)
    assert pruning.halving_share(9) == pytest.approx((1 + 2 / 3 + 6 / 9) / 9)
    nine = nine_epoch_plan()
    three = replace(nine, base=replace(nine.base, epochs=3))
    assert three.epoch_cap() is None and three.pruner() == "halving, defaults ranked"
    assert isinstance(three.make_pruner(), optuna.pruners.SuccessiveHalvingPruner)


def test_a_final_run_damaged_here_is_trained_again_and_one_gone_is_another_machines(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str]
) -> None:
    """compare counted a run complete from its queue though its metrics.json was damaged, and
    the report left the seed out ("2 of 2 complete" above "missing: ... seed 0"): it is queued
    again and trained afresh beside the damaged directory, which is kept. A run with no
    directory here is another machine's, done there: not trained again."""
    argv = ["compare", *LADDER[:-5], "--epochs", "1", "--train-subset", "256"]
    argv += ["--results-dir", str(tmp_path)]
    assert main([*argv, "--no-report"]) == 0
    runs = tmp_path.joinpath("runs").iterdir()
    default, tuned = sorted(runs, key=lambda d: rundir.read_metrics(d)["tuned"])
    (default / rundir.METRICS).write_text('{"test": ')  # damaged here
    shutil.rmtree(tuned)  # trained on another machine sharing the storage
    capsys.readouterr()
    assert main([*argv, "--status"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "1 epoch" in line)
    assert "1 of 2, 1 unreadable here (trains again)" in row
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{default}: corrupt {rundir.METRICS}: " in out
    assert "training the seed again (the directory is kept)" in out
    assert "runs at 1 epoch: 2 of 2 complete, 0 diverged" in out
    again = [d for d in tmp_path.joinpath("runs").iterdir() if d != default]
    assert [rundir.read_metrics(d)["tuned"] for d in again] == [False]  # the default, once
    assert default.is_dir()  # kept, and listed by the report as unreadable
    assert default.name in (tmp_path / "report.md").read_text()
    assert main([*argv, "--status"]) == 0
    assert "2 of 2 │" in capsys.readouterr().out


def test_a_study_tuned_past_its_trials_does_not_stand_in_for_one_short_of_them(
    tmp_path: Path,
) -> None:
    """A study given more trials elsewhere (``tune`` on the same storage) counted its surplus
    towards its rung: with another study of the rung not tuned at all, the status called the
    rung's tuning done."""
    pairs = (("gap_cnn", "concat"), ("gap_cnn", "late_sum"))
    plan = compare.Plan(TrainConfig(epochs=1), pairs, (0,), 2, 10**6)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=plan.study(*pairs[0]))
    for _ in range(4):  # twice the plan's trials; the other study has none
        study.add_trial(optuna.trial.create_trial(value=0.5))
    (rung,) = compare.ladder_status([plan], storage, tmp_path)
    assert (rung["trials"], rung["trials_wanted"]) == (2, 4)


def test_a_ladder_with_a_tuning_trial_still_running_is_not_complete(tmp_path: Path) -> None:
    """Its every run done but a trial still running on another worker, a ladder read as
    complete was reported again without MNIST while that worker still tuned it."""
    pair = ("gap_cnn", "concat")
    plan = compare.Plan(TrainConfig(epochs=1), (pair,), (0,), 1, 10**6)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=plan.study(*pair))
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    queue = optuna.create_study(storage=storage, study_name=comparison.QUEUE_PREFIX + plan.key())
    for item in plan.items():  # both runs done, on another machine
        queue.add_trial(queue_trial(plan, item, value=0.5, user_attrs={"run": "r"}))
    (rung,) = compare.ladder_status([plan], storage, tmp_path)
    assert (rung["trials"], rung["runs"], rung["trials_running"]) == (1, 2, 1)
    assert not compare.ladder_complete([plan], storage, tmp_path)


def test_a_ladder_whose_final_runs_diverged_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count ``compare`` exits 1 on: a diverged final run is a failure to say, not a
    ladder that went well."""
    from benchmark import stages

    pair = ("gap_cnn", "concat")
    plans = [compare.Plan(TrainConfig(epochs=e), (pair,), (0,), 1, 10**6) for e in (1, 3)]
    counts = {e: dict.fromkeys(("running", "waiting", "interrupted"), 0) for e in (1, 3)}
    counts[1] |= {"complete": 2, "diverged": 0}
    counts[3] |= {"complete": 1, "diverged": 1}
    monkeypatch.setattr(stages, "train_all", lambda plan, *_: counts[plan.base.epochs])

    def clock(plan: compare.Plan, stage: str) -> comparison.StageClock:
        return comparison.StageClock(tmp_path, plan, stage, "here", plans)

    failed, worked = stages.train_ladder(plans, None, None, None, tmp_path, {1: {}, 3: {}}, clock)
    assert (failed, worked) == (1, False)


def test_a_one_rung_compare_names_its_epochs_not_rung_1_of_1() -> None:
    """Progress lines name the rung only on a ladder: a plain compare of one budget said
    "3 epochs, rung 1 of 1" in every line, as if a ladder had been asked for."""
    from benchmark import stages

    pairs = (("gap_cnn", "concat"),)
    one = [compare.Plan(TrainConfig(epochs=3), pairs, (0,), 2, 10**6)]
    assert stages.rung_words(one[0], one) == "3 epochs"
    two = [compare.Plan(TrainConfig(epochs=e), pairs, (0,), 2, 10**6) for e in (1, 3)]
    assert stages.rung_words(two[1], two) == "3 epochs, rung 2 of 2"


def table_text(table: object) -> str:
    """A rich table as the terminal shows it, wide enough to keep each cell on one line."""
    from rich.console import Console

    out = Console(record=True, width=200, file=io.StringIO())
    out.print(table)
    return out.export_text()


def test_the_spent_table_shows_a_share_only_where_trials_were_counted() -> None:
    """The share is trained over unpruned: a study whose counted trials would train nothing
    (none counted, its trials failed) is "-", not a ZeroDivisionError ending compare after
    tuning, and one that trained nothing of what it counted is 0%, not "-"."""
    from benchmark import stages

    pairs = (("gap_cnn", "concat"), ("gap_cnn", "late_sum"))
    plans = [compare.Plan(TrainConfig(epochs=e), pairs, (0,), 2, 10**6) for e in (1, 2)]
    spent = {1: {pairs[0]: (3, 0), pairs[1]: (0, 4)}, 2: {pairs[0]: (3, 6), pairs[1]: (8, 8)}}
    rows = [
        line.split("│")[1:4]
        for line in table_text(stages.spent_table(plans, spent)).splitlines()
        if "│" in line
    ]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["gap_cnn x concat", "-", "3 of 6, 50%"],
        ["gap_cnn x late_sum", "0 of 4, 0%", "8 of 8, 100%"],
    ]
