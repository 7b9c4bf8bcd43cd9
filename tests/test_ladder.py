"""``compare --epochs 1,2``: the protocol at every rung of a ladder of budgets, multi-fidelity
tuning (Hyperband stops poor trials, never the defaults one) and rung reuse."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from benchmark import comparison, rundir, tuning
from benchmark.cli import main
from benchmark.config import TrainConfig
from benchmark.trials import epochs_spent

LADDER = ["--arch", "gap_cnn", "--fusion", "late_sum", "--trials", "2", "--seeds", "0"]
LADDER += ["--epochs", "1,2", "--train-subset", "256", "--no-report"]


def runs_by_epochs(results: Path) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for run_dir in sorted((results / "runs").glob("*")):
        metrics = rundir.read_metrics(run_dir)
        found.setdefault(metrics["epochs"], []).append(metrics)
    return found


def test_a_tiny_ladder_runs_every_rung_and_a_rerun_trains_nothing(
    tmp_path: Path, small_data, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", *LADDER, "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    runs = runs_by_epochs(tmp_path)
    assert sorted(runs) == [1, 2]
    for epochs, found in runs.items():  # default and tuned, seed 0, tuned at this rung
        assert sorted(m["tuned"] for m in found) == [False, True]
        tuned = next(m for m in found if m["tuned"])
        assert tuned["config"]["tuned_from"]["study"].startswith(f"gap_cnn__late_sum__e{epochs}__")
    written = json.loads((tmp_path / comparison.COMPARISON).read_text())
    assert sorted(written["rungs"]) == ["1", "2"]
    assert written["plan"] == written["rungs"]["2"]["plan"]  # the top rung gives the answer
    for rung in written["rungs"].values():
        assert {"tune", "runs"} <= set(rung["stages"])
    capsys.readouterr()

    assert main(argv) == 0  # everything is there: nothing trains again
    out = capsys.readouterr().out
    assert "training" not in out.replace("already complete", "")
    assert sum(len(found) for found in runs_by_epochs(tmp_path).values()) == 4


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
        TrainConfig(arch="gap_cnn", fusion="late_sum", epochs=3, train_subset=256, precision="fp32")
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
