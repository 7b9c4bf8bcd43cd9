"""``--log tensorboard`` / ``--log mlflow``: real libraries, a few synthetic images; the files
they write are read back with each tool's own reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import exit_status, one_line, only_run

from benchmark import rundir, runs, trackers

SMALL = ["--train-subset", "256", "--batch-size", "64", "--epochs", "2", "--eval-batch-size", "100"]


def test_tensorboard_event_file_holds_the_run(small_data, tmp_path: Path, capsys) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert exit_status(["run", *SMALL, "--log", "tensorboard", "--results-dir", str(tmp_path)]) == 0
    said = " ".join(capsys.readouterr().out.split())  # where to look, before training
    browse = f"(browse: tensorboard --logdir {tmp_path / 'runs'})"
    assert f"logging to TensorBoard in each run's tensorboard/ folder {browse}" in said
    run_dir = only_run(tmp_path)
    metrics = rundir.read_metrics(run_dir)
    events = EventAccumulator(str(run_dir / trackers.TENSORBOARD_DIR))
    events.Reload()
    scalars = events.Tags()["scalars"]
    val = events.Scalars("val/sum_acc")
    assert [e.step for e in val] == [1, 2]
    assert val[-1].value == pytest.approx(metrics["val"]["sum_acc"])
    assert [e.step for e in events.Scalars("lr")] == [1, 2]
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == sorted(steps) and steps[-1] == 2 * 4  # 256 images / 64 = 4 steps per epoch
    assert events.Scalars("test/sum_acc")[0].value == pytest.approx(metrics["test"]["sum_acc"])
    assert {"val/digit_acc", "train/sum_acc", "train_seconds"} <= set(scalars)
    hparams = events.PluginTagToContent("hparams")  # the config, as TensorBoard's HParams
    assert hparams
    assert json.loads((run_dir / rundir.CONFIG).read_text())["log"] == "tensorboard"


@pytest.mark.slow  # MLflow's import and store: four seconds on 2 cores
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")  # MLflow's
def test_mlflow_local_store_holds_the_run(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert exit_status(["run", *SMALL, "--log", "mlflow", "--results-dir", str(tmp_path)]) == 0
    run_dir = only_run(tmp_path)
    metrics = rundir.read_metrics(run_dir)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(trackers.EXPERIMENT)
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == run_dir.name and found.info.status == "FINISHED"
    assert found.data.params["lr"] == str(metrics["config"]["lr"])
    assert found.data.params["arch"] == "gap_cnn"
    history = client.get_metric_history(found.info.run_id, "val.sum_acc")
    assert sorted(m.step for m in history) == [1, 2]
    assert found.data.metrics["test.sum_acc"] == pytest.approx(metrics["test"]["sum_acc"])
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"metrics.json", "config.json", "history.csv", "model.pt"} <= artifacts
    assert (tmp_path / "mlartifacts").is_dir()  # beside the runs, not in the working directory


@pytest.mark.slow  # MLflow's import and store: four seconds on 2 cores
def test_mlflow_resume_continues_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted run's MLflow run is taken up again by its resume, not doubled."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from benchmark.config import TrainConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = TrainConfig(log="mlflow")
    run_dir = runs.start_run(cfg, tmp_path)
    first = trackers.MLflow(run_dir, cfg)
    first.epoch(1, {"sum_acc": 0.5}, 1e-3)
    first.close("interrupted")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(first.run_id).info.status == "KILLED"
    again = trackers.MLflow(run_dir, cfg)
    assert again.run_id == first.run_id
    assert client.get_run(again.run_id).info.status == "RUNNING"
    again.epoch(2, {"sum_acc": 0.6}, 1e-3)
    again.close("complete")
    experiment = client.get_experiment_by_name(trackers.EXPERIMENT)
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED"
    steps = client.get_metric_history(found.info.run_id, "val.sum_acc")
    assert sorted(m.step for m in steps) == [1, 2]


def test_a_tracker_that_is_not_installed_is_one_line_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(
        trackers.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlflow" else real(name, *a),
    )
    assert exit_status(["run", *SMALL, "--log", "mlflow", "--results-dir", str(tmp_path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "--log mlflow needs the mlflow package" in line and "[mlflow]" in line
    assert not (tmp_path / "runs").exists()


def test_a_tracker_failing_mid_run_costs_a_warning_not_the_run(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")

    def broken(self, *args) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(trackers.TensorBoard, "epoch", broken)
    with pytest.warns(UserWarning, match="--log: OSError: disk full"):
        status = exit_status(
            ["run", *SMALL, "--log", "tensorboard", "--results-dir", str(tmp_path)]
        )
    assert status == 0
    assert rundir.read_status(only_run(tmp_path))[0] == "complete"


@pytest.mark.parametrize("unset", [None, ""])
def test_the_mlflow_line_names_the_store_and_how_to_browse_a_local_one(
    unset: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty $MLFLOW_TRACKING_URI is unset: the line and the store both say the local one,
    with its artifacts beside the runs (it used to drop the hint and leave artifacts to MLflow's
    default, ./mlruns in the working directory)."""
    if unset is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", unset)
    assert trackers.destination("mlflow", Path("out")) == (
        "logging to MLflow, experiment digitsum-bench in sqlite:///out/mlflow.db "
        "(browse: mlflow ui --backend-store-uri sqlite:///out/mlflow.db)"
    )
    local = ("sqlite:///out/mlflow.db", Path("out/mlartifacts"))
    assert trackers.mlflow_store(Path("out")) == local
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert trackers.destination("mlflow", Path("out")) == (
        "logging to MLflow, experiment digitsum-bench in http://tracking:5000"
    )
    assert trackers.mlflow_store(Path("out")) == ("http://tracking:5000", None)


def test_log_is_not_part_of_what_a_run_learns() -> None:
    from dataclasses import replace

    from benchmark.config import TrainConfig

    assert replace(TrainConfig(), log="mlflow").config_hash() == TrainConfig().config_hash()


@pytest.mark.parametrize("set_by_user", [False, True])
def test_an_mlflow_server_that_does_not_answer_is_said_in_seconds(
    set_by_user: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's own retries and timeout kept a run silent for 4 minutes before it said the
    server was unreachable; the tracker gives it a few retries and 10 s unless the user set
    MLflow's variables."""
    pytest.importorskip("mlflow")
    from benchmark.config import TrainConfig
    from benchmark.errors import UsageError
    from benchmark.trackers import HTTP_DEFAULTS, open_tracker

    for name in HTTP_DEFAULTS:  # set, then removed: the test's end restores them as they were
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    if set_by_user:
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def unreachable(**_: object) -> None:  # the server refusing (its retries not waited for)
        raise ConnectionError("Max retries exceeded")

    monkeypatch.setattr("mlflow.tracking.MlflowClient", unreachable)
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    with pytest.raises(UsageError, match="--log mlflow: cannot start the tracker"):
        open_tracker(TrainConfig(log="mlflow"), run_dir)
    retries = "0" if set_by_user else HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == retries
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == HTTP_DEFAULTS["MLFLOW_HTTP_REQUEST_TIMEOUT"]
