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


def test_the_config_is_flat_scalar_hyperparameters() -> None:
    """Both tools take scalars only: model arguments one by one, None as text."""
    from benchmark.config import TrainConfig

    flat = trackers.flat_config(TrainConfig(model_args={"width": 8}, train_subset=None))
    assert flat["model_args.width"] == 8 and "model_args" not in flat
    assert flat["train_subset"] == "None" and flat["arch"] == "gap_cnn"
    assert all(isinstance(v, int | float | str | bool) for v in flat.values())


class FakeWriter:
    """A SummaryWriter that keeps what it is given."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.scalars, self.hparams, self.closed = log_dir, [], [], False

    def add_scalar(self, name: str, value: float, step: int) -> None:
        self.scalars.append((name, value, step))

    def add_hparams(self, params: dict, metrics: dict, run_name: str) -> None:
        self.hparams.append((params, metrics, run_name))

    def close(self) -> None:
        self.closed = True


def test_tensorboard_puts_the_test_figures_at_the_last_epoch_and_closes_its_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the validation curve (x axis: epoch), not at step 0; and closed, so that the
    last events are flushed to the file."""
    import sys
    from types import SimpleNamespace

    from benchmark.config import TrainConfig

    module = SimpleNamespace(SummaryWriter=FakeWriter)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    tracker = trackers.TensorBoard(tmp_path, TrainConfig(epochs=3))
    test = {"sum_acc": 0.9, "pairs": 100, "sum_acc_by_class": [0.9]}
    tracker.finish({"test": test, "train_seconds": 2}, tmp_path)
    tracker.close("complete")
    writer = tracker.writer
    assert writer.log_dir == str(tmp_path / trackers.TENSORBOARD_DIR)
    assert {("test/sum_acc", 0.9, 3), ("train_seconds", 2.0, 3)} <= set(writer.scalars)
    ((_, metrics, run_name),) = writer.hparams
    assert run_name == "." and metrics["hparam/test_sum_acc"] == 0.9
    assert writer.closed


class FakeMlflowClient:
    """An MLflow store in memory, shared by the clients of one tracking URI."""

    stores: dict[str, dict] = {}

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri
        self.store = self.stores.setdefault(tracking_uri, {"experiments": {}, "runs": {}})

    def get_experiment_by_name(self, name: str):
        from types import SimpleNamespace

        found = self.store["experiments"].get(name)
        return SimpleNamespace(experiment_id=name, **found) if found else None

    def create_experiment(self, name: str, artifact_location: str | None = None) -> str:
        self.store["experiments"][name] = {"artifact_location": artifact_location}
        return name

    def search_runs(self, experiment_ids: list[str], query: str, max_results: int) -> list:
        from types import SimpleNamespace

        name = query.split("'")[1]
        return [
            SimpleNamespace(info=SimpleNamespace(run_id=run_id))
            for run_id, run in self.store["runs"].items()
            if run["name"] == name and run["experiment"] in experiment_ids
        ][:max_results]

    def create_run(self, experiment_id: str, run_name: str, tags: dict):
        from types import SimpleNamespace

        run_id = f"run{len(self.store['runs'])}"
        self.store["runs"][run_id] = {
            "name": run_name, "experiment": experiment_id, "status": "RUNNING",
            "metrics": [], "params": [], "artifacts": [],
        }  # fmt: skip
        return SimpleNamespace(info=SimpleNamespace(run_id=run_id))

    def update_run(self, run_id: str, status: str) -> None:
        self.store["runs"][run_id]["status"] = status

    def set_terminated(self, run_id: str, status: str) -> None:
        self.store["runs"][run_id]["status"] = status

    def log_batch(self, run_id: str, metrics=(), params=()) -> None:
        self.store["runs"][run_id]["metrics"] += [(m.key, m.value, m.step) for m in metrics]
        self.store["runs"][run_id]["params"] += [(p.key, p.value) for p in params]

    def log_artifacts(self, run_id: str, path: str) -> None:
        self.store["runs"][run_id]["artifacts"].append(path)


@pytest.fixture
def fake_mlflow(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict]:
    """``mlflow`` replaced by ``FakeMlflowClient`` (the real one takes seconds to import):
    the stores by tracking URI."""
    import sys
    from types import SimpleNamespace

    def entity(*fields: str):
        return lambda *values: SimpleNamespace(**dict(zip(fields, values, strict=True)))

    monkeypatch.setattr(FakeMlflowClient, "stores", {})
    tracking = SimpleNamespace(MlflowClient=FakeMlflowClient)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", tracking)
    entities = SimpleNamespace(
        Param=entity("key", "value"), Metric=entity("key", "value", "timestamp", "step")
    )
    monkeypatch.setitem(sys.modules, "mlflow.entities", entities)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in trackers.HTTP_DEFAULTS:  # the tracker sets them: the test's end restores them
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return FakeMlflowClient.stores


def test_an_mlflow_run_goes_beside_the_runs_and_a_resume_continues_it(
    fake_mlflow: dict[str, dict], tmp_path: Path
) -> None:
    """The store and artifacts in the results directory; an interrupted run is KILLED, its
    resume takes the same MLflow run up again, and its end sends the test figures at the last
    epoch (MLflow's names: dots), the run directory's files and FINISHED."""
    from benchmark.config import TrainConfig

    cfg = TrainConfig(log="mlflow", model_args={"width": 8})
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    first = trackers.MLflow(run_dir, cfg)
    first.step(4, 0.5, 0.25)
    first.close("interrupted")
    (store,) = fake_mlflow.values()
    assert list(fake_mlflow) == [f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"]
    location = store["experiments"][trackers.EXPERIMENT]["artifact_location"]
    assert location == (tmp_path.resolve() / "mlartifacts").as_uri()
    (run,) = store["runs"].values()
    assert run["name"] == "r1" and run["status"] == "KILLED"
    assert ("model_args.width", "8") in run["params"]
    again = trackers.MLflow(run_dir, cfg)
    assert again.run_id == first.run_id and run["status"] == "RUNNING"
    again.finish({"epochs": 2, "test": {"sum_acc": 0.9}, "train_seconds": 3.0}, run_dir)
    again.close("complete")
    assert list(store["runs"]) == [first.run_id] and run["status"] == "FINISHED"
    assert ("train.loss", 0.5, 4) in run["metrics"] and ("test.sum_acc", 0.9, 2) in run["metrics"]
    assert run["artifacts"] == [str(run_dir)]
    trackers.MLflow(run_dir, cfg).close("failed")
    assert run["status"] == "FAILED"


def test_a_tracker_that_keeps_failing_warns_once_and_is_still_closed() -> None:
    """A full disk fails every step: one warning, not one a step; the close still reaches the
    tracker (TensorBoard flushes there)."""

    class Broken(trackers.Tracker):
        closed = ""

        def step(self, step: int, loss: float, sum_acc: float) -> None:
            raise OSError("disk full")

        def close(self, status: str) -> None:
            self.closed = status

    inner = Broken()
    guarded = trackers.Guarded(inner)
    with pytest.warns(UserWarning, match="--log: OSError: disk full") as said:
        for step in range(3):
            guarded.step(step, 0.5, 0.5)
    assert len(said) == 1
    guarded.close("complete")
    assert inner.closed == "complete"
