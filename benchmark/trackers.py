"""Optional experiment trackers (``--log tensorboard`` / ``--log mlflow``): a copy of what a run
records, sent to the tools people already look at. The run directory stays the source of truth;
a tracker only mirrors it, so a tracker that fails to start stops the run before training, and
one that fails later costs a warning, never the run.

Both receive the same things: the running training loss and sum accuracy at the trainer's
reporting interval (x axis: optimizer step), per epoch the validation metrics and the learning
rate (x axis: epoch), the final test metrics and the config as hyperparameters; MLflow also gets
the run directory's files as artifacts at the end.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.config import TrainConfig
from benchmark.errors import UsageError

if TYPE_CHECKING:  # the stream it listens to; runtime import would load torch for --help
    from benchmark.trainer import Progress

# The package each tracker imports, which is also the name of its pip extra.
PACKAGE = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
EXPERIMENT = "digitsum-bench"
TENSORBOARD_DIR = "tensorboard"  # inside the run directory


def check_available(kind: str) -> None:
    """A one-line ``UsageError`` when the tracker's package is not installed (before anything
    is written)."""
    if kind != "none" and importlib.util.find_spec(PACKAGE[kind]) is None:
        raise UsageError(
            f"--log {kind} needs the {PACKAGE[kind]} package: pip install -e '.[{PACKAGE[kind]}]'"
        )


def mlflow_store(results_dir: Path) -> tuple[str, Path | None]:
    """The MLflow store, and where a new experiment keeps its artifacts: ``$MLFLOW_TRACKING_URI``
    and its server's own place (None) where it is set and not empty, else a SQLite file and
    ``mlartifacts`` beside the runs (MLflow's default, ``./mlruns``, would be the working
    directory). The environment is read here only, so the line ``run`` prints and the store a
    run writes to cannot disagree."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    return f"sqlite:///{results_dir / 'mlflow.db'}", results_dir / "mlartifacts"


def destination(kind: str, results_dir: Path) -> str:
    """Where ``--log kind`` sends a run's figures and how to look at them: the line ``run``
    prints before training, since neither tool's location is where a newcomer would look."""
    if kind == "tensorboard":
        return (
            f"logging to TensorBoard in each run's {TENSORBOARD_DIR}/ folder "
            f"(browse: tensorboard --logdir {results_dir / 'runs'})"
        )
    uri, local = mlflow_store(results_dir)
    browse = f" (browse: mlflow ui --backend-store-uri {uri})" if local else ""
    return f"logging to MLflow, experiment {EXPERIMENT} in {uri}{browse}"


def flat_config(cfg: TrainConfig) -> dict[str, Any]:
    """The config as flat scalar hyperparameters (``model_args.width`` ...); None as "None"."""
    out: dict[str, Any] = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, dict):
            for sub, inner in sorted(value.items()):
                out[f"{key}.{sub}"] = inner if isinstance(inner, int | float | str) else str(inner)
        else:
            out[key] = value if isinstance(value, int | float | str | bool) else str(value)
    return out


def test_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The final figures: every test metric and the training time."""
    test = {f"test/{k}": float(v) for k, v in metrics.get("test", {}).items() if is_scalar(v)}
    return test | {"train_seconds": float(metrics["train_seconds"])}


def is_scalar(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Tracker:
    """What ``runs.execute`` calls; the base class records nothing (``--log none``)."""

    def listen(self, event: Progress) -> None:
        """The trainer's progress stream, mirrored: step events as the running loss, epoch
        events as the validation metrics and learning rate."""
        if event.stats is None:
            self.step(event.step, event.loss, event.sum_acc)
        else:
            self.epoch(event.stats.epoch, event.stats.val, event.stats.lr)

    def step(self, step: int, loss: float, sum_acc: float) -> None:
        """Running training loss and sum accuracy at optimizer step ``step``."""

    def epoch(self, epoch: int, val: dict[str, float], lr: float) -> None:
        """Validation metrics and learning rate at the end of ``epoch``."""

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        """The final metrics (and, for MLflow, the run directory's files)."""

    def close(self, status: str) -> None:
        """Flush and close; ``status`` is the run's (complete, interrupted, failed)."""


class TensorBoard(Tracker):
    def __init__(self, run_dir: Path, cfg: TrainConfig) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.cfg = cfg
        self.writer = SummaryWriter(log_dir=str(run_dir / TENSORBOARD_DIR))

    def step(self, step: int, loss: float, sum_acc: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/sum_acc", sum_acc, step)

    def epoch(self, epoch: int, val: dict[str, float], lr: float) -> None:
        for name, value in val.items():
            self.writer.add_scalar(f"val/{name}", value, epoch)
        self.writer.add_scalar("lr", lr, epoch)

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        scalars = test_scalars(metrics)
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, self.cfg.epochs)
        # the HParams view, in this run's own directory (run_name "."), not a timestamped one
        hparam_metrics = {f"hparam/{k.replace('/', '_')}": v for k, v in scalars.items()}
        self.writer.add_hparams(flat_config(self.cfg), hparam_metrics, run_name=".")

    def close(self, status: str) -> None:
        self.writer.close()


# A tracking server that does not answer: MLflow's own retries (7, backing off) and 120 s
# timeout kept a run silent for 4 minutes before it said so. With these, a refused connection
# is said in about 10 s; a server that accepts and never answers in at most about 35 s (three
# tries of 10 s, and the backoff between them).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


class MLflow(Tracker):
    """One MLflow run per run directory, named after it (a resume continues it).
    The store is ``$MLFLOW_TRACKING_URI``, else a SQLite file beside the runs (``<results>/
    mlflow.db``, artifacts in ``<results>/mlartifacts``)."""

    def __init__(self, run_dir: Path, cfg: TrainConfig) -> None:
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" chatter
        for name, value in HTTP_DEFAULTS.items():  # unless the user set them
            os.environ.setdefault(name, value)
        results = run_dir.resolve().parent.parent
        uri, artifacts = mlflow_store(results)
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            experiment_id = self.client.create_experiment(
                EXPERIMENT, artifact_location=artifacts.as_uri() if artifacts else None
            )
        else:
            experiment_id = experiment.experiment_id
        earlier = self.client.search_runs(
            [experiment_id], f"tags.`mlflow.runName` = '{run_dir.name}'", max_results=1
        )
        if earlier:  # a resume: the same MLflow run goes on
            self.run_id = earlier[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        self.run_id = self.client.create_run(
            experiment_id, run_name=run_dir.name, tags={"arch": cfg.arch, "fusion": cfg.fusion}
        ).info.run_id
        from mlflow.entities import Param

        params = [Param(k, str(v)) for k, v in flat_config(cfg).items()]
        self.client.log_batch(self.run_id, params=params)

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k.replace("/", "."), float(v), now, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def step(self, step: int, loss: float, sum_acc: float) -> None:
        self.log({"train/loss": loss, "train/sum_acc": sum_acc}, step)

    def epoch(self, epoch: int, val: dict[str, float], lr: float) -> None:
        self.log({**{f"val/{k}": v for k, v in val.items()}, "lr": lr}, epoch)

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        self.log(test_scalars(metrics), metrics.get("epochs", 0))
        self.client.log_artifacts(self.run_id, str(run_dir))

    def close(self, status: str) -> None:
        state = {"complete": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, status=state)


def open_tracker(cfg: TrainConfig, run_dir: Path) -> Tracker:
    """The tracker ``cfg.log`` names, started for ``run_dir`` (a failure to start raises a
    ``UsageError``: the run has not trained yet and can be resumed once the tracker works)."""
    if cfg.log == "none":
        return Tracker()
    check_available(cfg.log)
    try:
        return Guarded({"tensorboard": TensorBoard, "mlflow": MLflow}[cfg.log](run_dir, cfg))
    except Exception as exc:  # noqa: BLE001 - a store that cannot be opened, ...: one line
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"--log {cfg.log}: cannot start the tracker ({reason})") from None


class Guarded(Tracker):
    """A started tracker whose later failures become one warning each, never a failed run."""

    def __init__(self, inner: Tracker) -> None:
        self.inner = inner
        self.warned = False

    def call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.inner, name)(*args)
        except Exception as exc:  # noqa: BLE001 - the run directory already has it all
            if not self.warned:
                warnings.warn(f"--log: {type(exc).__name__}: {exc}", stacklevel=2)
                self.warned = True

    def step(self, step: int, loss: float, sum_acc: float) -> None:
        self.call("step", step, loss, sum_acc)

    def epoch(self, epoch: int, val: dict[str, float], lr: float) -> None:
        self.call("epoch", epoch, val, lr)

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        self.call("finish", metrics, run_dir)

    def close(self, status: str) -> None:
        self.call("close", status)
