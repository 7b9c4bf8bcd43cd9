"""Damaged files: every file we read (config.json, checkpoint, weights, metrics, status, history,
the MNIST IDX files, a user's images), damaged, ends in one line naming it (exit 1 from the
command line), never a traceback, a fall-back to another copy or an unsafe unpickling."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from conftest import (
    checkpoint_of,
    exit_status,
    interrupted_run,
    no_data_load,
    one_line,
    plugins_undone,
    read_only,
)
from PIL import Image, ImageDraw


def a_one(path: Path) -> Path:
    """A PNG of a drawn "1": dark ink on white paper, as ``predict`` reads it."""
    page = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(page).line([(20, 8), (20, 32)], fill=0, width=3)
    page.save(path)
    return path


DEEP = "[" * 100_000 + "]" * 100_000  # valid JSON, deeper than json's recursion goes
CONFIG_DAMAGE = [
    ("{", "not valid JSON"),
    pytest.param(DEEP, "not valid JSON: nested too deeply to be read", id="nested-100000-deep"),
    ("", "not valid JSON"),
    ("\udcff", "unreadable"),
    ("[1, 2]", "expected an object of config fields"),
    ('"gap_cnn"', "expected an object of config fields"),
    ('{"batch_size": 0}', "batch_size must be a positive integer"),
    ('{"batch_size": "x"}', "batch_size must be of type int"),
    ('{"seed": 1e30}', "seed must be of type int"),
    ('{"lr": NaN}', "lr must be a finite number"),
    ('{"epochs": 100000000000000000000000}', "epochs must fit in 64 bits"),
    ('{"lrr": 1}', "unknown config key lrr"),
    ('{"arch": "nope"}', "unknown encoder 'nope'"),
    ('{"arch": ""}', "arch is empty"),
    ('{"model_args": 3}', "model_args must be of type dict"),
    ('{"model_args": {"width": -1}}', "width=-1 for gap_cnn: expected int in 1..256"),
    ('{"model_args": {"dropout": 1}}', "dropout=1 for gap_cnn: expected float in [0, 1)"),
    ('{"optimizer": "adam"}', "optimizer 'adam' is not one of: adamw, sgd"),
    (None, "Is a directory"),
    ("{}", "lacks arch, fusion, model_args, which name the run's model"),  # blamed model.pt
]


@pytest.mark.parametrize("content, expected", CONFIG_DAMAGE)
def test_a_damaged_config_json_on_resume_is_one_line(
    content: str | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import rundir

    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    path = run_dir / rundir.CONFIG
    path.unlink()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content.encode(errors="surrogateescape"))
    before = (run_dir / rundir.STATUS).read_text()
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and expected in line
    assert (run_dir / rundir.STATUS).read_text() == before  # not marked running, nothing trained
    assert not (run_dir / rundir.CHECKPOINT).exists() and not (run_dir / rundir.METRICS).exists()


def test_model_args_the_model_cannot_run_with_are_refused_before_a_resume_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A config.json whose model arguments pass the names-and-ranges check but build a model
    that cannot take a 1x28x28 image (a kernel wider than the image) is refused by the meta
    dry run in ``runs.load_config``: without it the resume marked the run running, loaded the
    data and failed in the first step."""
    from torch import nn

    from architectures import Range, register_encoder
    from benchmark import rundir
    from benchmark.config import TrainConfig

    class Kernel(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, width), nn.Flatten(1))
            self.num_features = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)[:, :4]

    no_data_load(monkeypatch)
    with plugins_undone():  # the registry as other tests know it, after
        register_encoder("kernel_cnn", ranges={"width": Range(1, 64)})(
            lambda width=3: Kernel(width)
        )
        cfg = TrainConfig(arch="kernel_cnn", model_args={"width": 40})
        run_dir = interrupted_run(tmp_path / "run", cfg)
        before = (run_dir / rundir.STATUS).read_text()
        assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert str(run_dir / rundir.CONFIG) in line and "cannot run on 1x28x28 images" in line
    assert (run_dir / rundir.STATUS).read_text() == before  # not marked running


def checkpoint_damage() -> list[tuple[str, object, str]]:
    """(id, what to put in checkpoint.pt: bytes, an object to torch.save, or None for a
    directory, the expected fragment)."""
    from benchmark.config import MNIST_TRAIN_IMAGES, TrainConfig

    cfg = TrainConfig()
    valid = checkpoint_of(cfg)
    stats = {"train_loss": 0.1, "train_sum_acc": 0.5, "val": {}, "lr": 1e-3, "seconds": 1.0}
    past = cfg.epochs + 1  # a whole epoch more than config.json's, its steps and all
    ahead = {"history": [{**stats, "epoch": e} for e in range(1, past + 1)]}
    ahead["step"] = past * cfg.steps_per_epoch(MNIST_TRAIN_IMAGES)
    saved = io.BytesIO()
    torch.save(valid, saved)
    return [
        ("truncated", saved.getvalue()[: len(saved.getvalue()) // 2], "truncated or not a torch"),
        ("zip-of-junk", b"PK\x03\x04" + bytes(range(256)) * 8, "truncated or not a torch file"),
        ("pickle-junk", bytes(range(256)) * 8, "refused to load"),
        ("empty", b"", "truncated or not a torch file"),
        ("directory", None, "IsADirectoryError"),
        ("a-list", [1, 2, 3], "not a checkpoint of this run"),
        ("a-tensor", torch.zeros(3), "not a checkpoint of this run"),
        ("missing-keys", {"model": valid["model"]}, "not a checkpoint of this run"),
        ("wrong-types", {**valid, "generator": "x"}, "not a checkpoint of this run"),
        ("another-model", checkpoint_of(TrainConfig(arch="small_cnn")), "not a checkpoint"),
        ("step-mid-epoch", {**valid, "step": 7}, "does not fit this run's config"),
        ("more-epochs", {**valid, "history": [{}] * 9}, "not a checkpoint of this run"),
        ("past-its-epochs", {**valid, **ahead}, "does not fit this run's config"),
    ]


@pytest.mark.parametrize("damage", checkpoint_damage(), ids=lambda d: d[0])
def test_a_damaged_checkpoint_on_resume_is_one_line(
    damage: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from benchmark import rundir

    no_data_load(monkeypatch)
    _, content, expected = damage
    run_dir = interrupted_run(tmp_path / "run")
    path = run_dir / rundir.CHECKPOINT
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and expected in line
    assert not (run_dir / rundir.METRICS).exists()


def test_an_integer_too_large_for_a_float_in_metrics_is_a_corrupt_run(tmp_path: Path) -> None:
    """``"params": 10**400`` parses as JSON; the report's number check met it with an
    OverflowError (a traceback) rather than listing the run as corrupt."""
    import json
    import shutil

    from benchmark import rundir

    reference = Path(__file__).resolve().parents[1] / "results" / "runs"
    run_dir = tmp_path / "run"
    shutil.copytree(sorted(reference.glob("*/metrics.json"))[0].parent, run_dir)
    found = json.loads((run_dir / rundir.METRICS).read_text())
    rundir.read_metrics(run_dir)  # as committed: whole
    (run_dir / rundir.METRICS).write_text(json.dumps({**found, "params": 10**400}))
    with pytest.raises(rundir.IncompleteRun, match="missing or invalid params"):
        rundir.read_metrics(run_dir)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf")])
def test_a_params_count_of_true_nan_or_infinity_in_metrics_is_a_corrupt_run(
    tmp_path: Path, value
) -> None:
    """JSON's ``true``, ``NaN`` and ``Infinity`` parse, but none is a parameter count: the run
    is corrupt, not a result the report sorts and ranks."""
    import json
    import shutil

    from benchmark import rundir

    reference = Path(__file__).resolve().parents[1] / "results" / "runs"
    run_dir = tmp_path / "run"
    shutil.copytree(sorted(reference.glob("*/metrics.json"))[0].parent, run_dir)
    found = json.loads((run_dir / rundir.METRICS).read_text())
    (run_dir / rundir.METRICS).write_text(json.dumps({**found, "params": value}))
    with pytest.raises(rundir.IncompleteRun, match=r"missing or invalid params$"):
        rundir.read_metrics(run_dir)


@pytest.mark.parametrize("value", [5e300, 1.0001, -0.5])
def test_an_accuracy_outside_0_to_1_in_metrics_is_a_corrupt_run(tmp_path: Path, value) -> None:
    """Test metrics are fractions of the 100,000 pairs: a hand-edited ``sum_acc: 5e300`` was read
    as a result and ranked first in the report."""
    import json
    import shutil

    from benchmark import rundir

    reference = Path(__file__).resolve().parents[1] / "results" / "runs"
    run_dir = tmp_path / "run"
    shutil.copytree(sorted(reference.glob("*/metrics.json"))[0].parent, run_dir)
    found = json.loads((run_dir / rundir.METRICS).read_text())
    found["test"]["sum_acc"] = value
    (run_dir / rundir.METRICS).write_text(json.dumps(found))
    with pytest.raises(rundir.IncompleteRun, match=r"missing or invalid test\.sum_acc$"):
        rundir.read_metrics(run_dir)
    found["test"]["sum_acc"] = 1
    (run_dir / rundir.METRICS).write_text(json.dumps(found))
    assert rundir.read_metrics(run_dir)["test"]["sum_acc"] == 1
    del found["config_hash"]  # the report's grouping key: a run without it is no run of a group
    (run_dir / rundir.METRICS).write_text(json.dumps(found))
    with pytest.raises(rundir.IncompleteRun, match=r"missing or invalid config_hash$"):
        rundir.read_metrics(run_dir)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tuned": "no"}, "tuned"),
        ({"config": ["gap_cnn"]}, "config"),
        ({"val": 0.9}, "val"),
        ({"versions": "2.5"}, "versions"),
        ({"data": "mnist"}, "data"),
        ({"test_heldout": {}, "config": {}}, "config.holdout_pairs"),
    ],
)
def test_a_metrics_field_of_another_shape_is_a_corrupt_run(
    change: dict, field: str, tmp_path: Path
) -> None:
    """The report flattens every run's metrics into one table: a field of another shape than a
    run writes (``"tuned": "no"``, a list for the config, held-out figures without the count of
    held-out pairs) is a corrupt run, named, not a table the report then fails on."""
    import shutil

    from benchmark import rundir

    reference = Path(__file__).resolve().parents[1] / "results" / "runs"
    run_dir = tmp_path / "run"
    shutil.copytree(sorted(reference.glob("*/metrics.json"))[0].parent, run_dir)
    found = json.loads((run_dir / rundir.METRICS).read_text())
    (run_dir / rundir.METRICS).write_text(json.dumps({**found, **change}))
    with pytest.raises(rundir.IncompleteRun, match=rf"missing or invalid {re.escape(field)}$"):
        rundir.read_metrics(run_dir)


@pytest.mark.parametrize("kept", [True, False])
def test_a_resume_says_where_it_starts_and_why_from_the_start(
    kept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Without checkpoint.pt (stopped before an epoch ended, or removed) a resume trains from
    epoch 1 and rewrites history.csv: it used to say only "at epoch 1"; now it says why."""
    from benchmark import rundir
    from benchmark.commands import run as run_command
    from benchmark.config import TrainConfig

    loaded = SimpleNamespace(to=lambda device: loaded)  # handed to the stand-in trainer only
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: loaded)
    run_dir = interrupted_run(tmp_path / "run")
    if kept:
        torch.save(checkpoint_of(TrainConfig()), run_dir / rundir.CHECKPOINT)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "train_with_progress", stopped)
    assert exit_status(["run", "--resume", str(run_dir)]) == 130
    out = " ".join(capsys.readouterr().out.split())
    said = "at epoch 1 (" if kept else "from epoch 1 (no checkpoint.pt: stopped before an epoch"
    assert f"resuming {run_dir} {said}" in out


@pytest.mark.parametrize(
    ("done", "said"),
    [(0, "at epoch 1"), (3, "at epoch 4"), (4, "after its last epoch, at the evaluation")],
)
def test_a_resume_names_its_epoch_or_the_evaluation(done: int, said: str) -> None:
    """A 1-epoch run stopped in its test evaluation was resumed "at epoch 2"."""
    from benchmark.runs import resume_point

    assert resume_point(SimpleNamespace(history=[None] * done), 4) == said
    assert resume_point(None, 4) == "from epoch 1"


@pytest.mark.parametrize("content", [b'{"arch": ', b"[]", b'{"arch": "gap_cnn"}'])
def test_a_damaged_metrics_file_on_resume_is_named_and_the_checkpoint_kept(
    content: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """An interrupted run's checkpoint with a damaged metrics.json beside it: the resume used to
    take the file for a finished run's, delete checkpoint.pt, mark the run complete and say "the
    run is already complete". Now one line names the file, and nothing is changed."""
    from benchmark import rundir
    from benchmark.config import TrainConfig

    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    torch.save(checkpoint_of(TrainConfig()), run_dir / rundir.CHECKPOINT)
    (run_dir / rundir.METRICS).write_bytes(content)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{run_dir}: corrupt metrics.json: " in line
    assert line.endswith("; move it away to resume from checkpoint.pt")
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != rundir.LOCK}
    assert after == before


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "metrics.json: missing from a complete run (its weights are model.pt, and no "
         "checkpoint.pt is left to resume); put it back, or train a new run"),
        (b"", "corrupt metrics.json"),
    ],
)  # fmt: skip
def test_a_complete_runs_missing_or_damaged_metrics_file_on_resume_is_named(
    content: bytes | None,
    said: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A finished run (no checkpoint left) without its metrics.json was trained again from
    epoch 1 over its model.pt and history.csv ("stopped before an epoch ended"); with a damaged
    one it was called "already complete" (exit 2), though the report left it out as damaged."""
    from benchmark import rundir

    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    rundir.write_status(run_dir, "complete")
    (run_dir / rundir.MODEL).write_bytes(b"weights")
    if content is not None:
        (run_dir / rundir.METRICS).write_bytes(content)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    assert said in one_line(capsys.readouterr().err)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != rundir.LOCK}
    assert after == before


def test_another_runs_metrics_file_on_resume_is_named_and_the_checkpoint_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A finished run's metrics.json, valid but of another configuration, copied into an
    interrupted run: the resume took it for this run's, deleted checkpoint.pt and marked the run
    complete (the report then counted a 60-epoch run that trained one)."""
    from conftest import make_run

    from benchmark import rundir
    from benchmark.config import TrainConfig

    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    torch.save(checkpoint_of(TrainConfig()), run_dir / rundir.CHECKPOINT)
    other = make_run(tmp_path / "other", "done", config_hash="aaaa0000")
    (run_dir / rundir.METRICS).write_bytes((other / rundir.METRICS).read_bytes())
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    own = TrainConfig().config_hash()
    assert f"{run_dir / rundir.METRICS}: another run's (config hash aaaa0000, where " in line
    assert f"config.json gives {own}); move it away to resume from checkpoint.pt" in line
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name != rundir.LOCK}
    assert after == before


def test_a_mistyped_config_json_on_resume_is_named_not_the_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """``"epochs": "one"`` in a complete run's config.json hashed apart from its metrics.json,
    and the resume called the metrics "another run's"; predict and export name config.json."""
    from conftest import make_run

    from benchmark import files, rundir
    from benchmark.config import TrainConfig

    no_data_load(monkeypatch)
    run_dir = make_run(tmp_path / "runs", "done", config_hash=TrainConfig().config_hash())
    files.write_json(run_dir / rundir.CONFIG, {**TrainConfig().to_dict(), "epochs": "one"})
    rundir.write_status(run_dir, "interrupted", "killed after metrics.json was written")
    assert exit_status(["run", "--resume", str(run_dir)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "config.json" in line and "epochs must be of type int" in line
    assert "another run's" not in line


@pytest.mark.parametrize(
    "damage", ["random-bytes", "truncated", "a-list", "another-model", "a-directory", "nan"]
)
@pytest.mark.parametrize("command", ["predict", "export"])
def test_damaged_weights_for_predict_are_one_line(
    damage: str, command: str, tmp_path: Path, capsys
) -> None:
    """``nan``: weights of NaN predicted digit 0 at p nan (bare NaN in --json) and exported."""
    from architectures import create_model
    from benchmark import files, rundir
    from benchmark.config import TrainConfig

    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig().to_dict())
    rundir.write_status(run_dir, "complete")
    path = run_dir / rundir.MODEL
    if damage == "a-list":
        torch.save([1, 2], path)
    elif damage == "another-model":
        torch.save(create_model("small_cnn", "concat").state_dict(), path)
    elif damage == "a-directory":
        path.mkdir()
    elif damage == "nan":
        weights = create_model("gap_cnn", "concat").state_dict()
        torch.save({k: v.fill_(float("nan")) if v.is_floating_point() else v
                    for k, v in weights.items()}, path)  # fmt: skip
    else:
        torch.save(create_model("gap_cnn", "concat").state_dict(), path)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 3] if damage == "truncated" else os.urandom(999))
    image = a_one(tmp_path / "digit.png")
    argv = ["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]
    if command == "export":
        argv = ["export", "--run", str(run_dir), "--format", "torchscript"]
    assert exit_status(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and ("holds NaN or inf" in line) is (damage == "nan")
    assert not (run_dir / "model.torchscript.pt").exists()


def test_a_buffer_may_hold_minus_inf_a_parameter_may_not(tmp_path: Path) -> None:
    """-inf is a plausible mask buffer in a plug-in (sum logits may be -inf); a parameter of
    inf is damage, as NaN anywhere is (a buffer's too)."""
    from architectures import create_model
    from benchmark import files, rundir, runs
    from benchmark.config import TrainConfig

    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig().to_dict())
    weights = create_model("gap_cnn", "concat").state_dict()
    buffer = next(k for k in weights if k.endswith("running_mean"))
    parameter = next(k for k in weights if k.endswith("weight"))
    torch.save({**weights, buffer: torch.full_like(weights[buffer], -math.inf)},
               run_dir / rundir.MODEL)  # fmt: skip
    runs.load_run(run_dir)
    torch.save({**weights, parameter: torch.full_like(weights[parameter], math.inf)},
               run_dir / rundir.MODEL)  # fmt: skip
    with pytest.raises(files.UnreadableFileError, match=f"{parameter} holds NaN or inf"):
        runs.load_run(run_dir)
    torch.save({**weights, buffer: torch.full_like(weights[buffer], math.nan)},
               run_dir / rundir.MODEL)  # fmt: skip
    with pytest.raises(files.UnreadableFileError, match=f"{buffer} holds NaN or inf"):
        runs.load_run(run_dir)


@pytest.mark.parametrize("content, expected", CONFIG_DAMAGE)
def test_a_damaged_config_json_for_predict_is_one_line(
    content: str | None, expected: str, tmp_path: Path, capsys
) -> None:
    """``predict`` builds the model without the meta-device dry run (``runs.load_run``), and
    still refuses each damaged or edited config.json as resume does."""
    from architectures import create_model
    from benchmark import files, rundir

    run_dir = tmp_path / "run"
    rundir.write_status(run_dir, "complete")
    files.save_torch(run_dir / rundir.MODEL, create_model("gap_cnn", "concat").state_dict())
    path = run_dir / rundir.CONFIG
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content.encode(errors="surrogateescape"))
    image = a_one(tmp_path / "digit.png")
    argv = ["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]
    assert exit_status(argv) == 1
    line = one_line(capsys.readouterr().err)
    assert str(path) in line and expected in line


@pytest.mark.parametrize("name", ["config.json", "model.pt"])
def test_a_directory_in_place_of_a_run_file_for_export_is_one_line(
    name: str, tmp_path: Path, capsys
) -> None:
    """Not "no model.pt" (exit 2, train it again): the file is there but damaged, exit 1."""
    from architectures import create_model
    from benchmark import files, rundir
    from benchmark.config import TrainConfig

    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig().to_dict())
    files.save_torch(run_dir / rundir.MODEL, create_model("gap_cnn", "concat").state_dict())
    rundir.write_status(run_dir, "complete")
    (run_dir / name).unlink()
    (run_dir / name).mkdir()
    out = tmp_path / "model.onnx"
    assert (
        exit_status(["export", "--run", str(run_dir), "--format", "onnx", "--out", str(out)]) == 1
    )
    line = one_line(capsys.readouterr().err)
    assert str(run_dir / name) in line and "Is a directory" in line
    assert not out.exists()


def idx_damage() -> list[tuple[str, str, object, str]]:
    """(id, file, damage: bytes -> bytes, or "missing" / "directory", expected fragment)."""

    def put(offset: int, value: int):
        return lambda b: b[:offset] + value.to_bytes(4, "big") + b[offset + 4 :]

    def label(index: int, value: int):
        return lambda b: b[: 8 + index] + bytes([value]) + b[9 + index :]

    train, labels, test = (
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
    )
    return [
        ("truncated", labels, lambda b: b[:-100], "truncated or corrupt"),
        ("extended", labels, lambda b: b + b"\0" * 7, "truncated or corrupt"),
        ("header-only", test, lambda b: b[:16], "truncated or corrupt"),
        ("too-short", labels, lambda b: b[:5], "too short for an IDX header"),
        ("empty", labels, lambda b: b"", "too short for an IDX header"),
        ("wrong-magic", labels, put(0, 2051), "IDX magic number 2051, expected 2049"),
        ("count-vs-size", train, put(4, 59_999), "IDX header says 59999 x 28 x 28 but"),
        ("not-28x28", train, lambda b: put(8, 56)(put(12, 14)(b)), "56 x 14, expected"),
        ("other-count", labels, lambda b: put(4, 10_001)(b) + b"\1", "expected 10000 items"),
        ("label-12", labels, label(17, 12), "labels outside 0-9 (label 12 at item 17)"),
        ("label-255", "train-labels-idx1-ubyte", label(0, 255), "(label 255 at item 0)"),
        ("missing", labels, "missing", "missing (3 of the 4 MNIST files are there)"),
        ("directory", test, "directory", "a directory, not MNIST's IDX file; put the file there"),
    ]


def test_a_root_with_one_mnist_file_names_the_first_missing(tmp_path: Path) -> None:
    from benchmark.data import DataError, resolve_root

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError) as refused:
        resolve_root(tmp_path, download=False)
    assert str(refused.value).startswith(
        f"{raw / 'train-labels-idx1-ubyte'}: missing (1 of the 4 MNIST files is there); "
    )


@pytest.mark.parametrize("damage", idx_damage(), ids=lambda d: d[0])
def test_damaged_mnist_is_one_line_naming_the_file(
    damage: tuple, tmp_path: Path, synthetic_root: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Through the CLI (``--data-dir``): exit 1 (2 for a missing file), one line naming the file,
    no run directory; and
    never a fall-back to $MNIST_ROOT, which holds good files."""
    _, name, change, expected = damage
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for other in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        target = raw / f"{other}-idx{3 if 'images' in other else 1}-ubyte"
        source = synthetic_root / "MNIST" / "raw" / target.name
        if target.name != name:
            target.symlink_to(source)
        elif change == "directory":
            target.mkdir()
        elif change != "missing":
            target.write_bytes(change(source.read_bytes()))
    monkeypatch.setenv("MNIST_ROOT", str(synthetic_root))
    results = tmp_path / "results"
    argv = ["run", "--data-dir", str(tmp_path / "mnist"), "--results-dir", str(results)]
    # a file missing (or a folder in its place) is a root to complete, as none is: 2
    assert exit_status(argv) == (2 if change in ("missing", "directory") else 1)
    shown = capsys.readouterr()
    assert shown.out == ""  # the one line alone: not after the CPU probe's note on auto
    line = one_line(shown.err)
    assert str(raw / name) in line and expected in line
    assert not results.exists()


def damaged_versions(blob: bytes, seed: int, count: int = 30) -> list[bytes]:
    """Seeded random bytes, truncations and bit flips of ``blob``: ``count`` of each."""
    import random

    rng = random.Random(seed)
    out = [rng.randbytes(rng.randrange(0, 2 * len(blob) + 2)) for _ in range(count)]
    out += [blob[: rng.randrange(len(blob))] for _ in range(count)]
    for _ in range(count):
        flipped = bytearray(blob)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    return out


def json_mutations(obj: object, seed: int, count: int = 30) -> list[bytes]:
    """Valid JSON of the wrong shape: one value somewhere in ``obj`` replaced by a foreign one."""
    import json
    import random

    rng = random.Random(seed)
    foreign = [None, "x", "", [], {}, [1], {"a": 1}, True, -1, 0, 1e308, float("nan"), 2**70]

    def mutate(value: object) -> object:
        if isinstance(value, dict) and value and rng.random() < 0.7:
            key = rng.choice(list(value))
            return {**value, key: mutate(value[key])}
        return rng.choice(foreign)

    return [json.dumps(mutate(obj)).encode() for _ in range(count)]


def good_run_files(run_dir: Path) -> None:
    """Every file a run directory holds, written by the real writers (two epochs done)."""
    from architectures import create_model
    from benchmark import files, rundir
    from benchmark.config import TrainConfig
    from benchmark.metrics import names
    from benchmark.trainer import EpochStats

    cfg = TrainConfig(epochs=3)
    figures = {name: 0.5 for name in names()}
    stats = [EpochStats(e, 0.5, 0.9, dict(figures), 1e-3, 2.0) for e in (1, 2)]
    interrupted_run(run_dir, cfg)
    rundir.write_history(run_dir, [s.row() for s in stats])
    files.save_torch(run_dir / rundir.CHECKPOINT, checkpoint_of(cfg))
    files.save_torch(run_dir / rundir.MODEL, create_model(cfg.arch, cfg.fusion).state_dict())
    metrics = {"arch": cfg.arch, "fusion": cfg.fusion, "config_hash": "abc", "seed": 0}
    metrics |= {"params": 10, "tuned": False, "config": cfg.to_dict(), "test": figures}
    files.write_json(run_dir / rundir.METRICS, metrics)


def read_back(reader: str, run_dir: Path) -> None:
    """Read one damaged file the way the program does; a clean refusal raises, a read that
    succeeds must return something of the promised shape."""
    from benchmark import files, rundir, runs
    from benchmark.config import TrainConfig
    from benchmark.data import read_idx
    from benchmark.hardware import Execution

    if reader == rundir.CONFIG:
        runs.load_config(run_dir).validate()
    elif reader == rundir.METRICS:
        found = rundir.read_metrics(run_dir)
        assert all(files.is_number(files.lookup(found, k)) for k in rundir.required_numbers())
    elif reader == rundir.STATUS:
        assert all(isinstance(x, str) for x in rundir.read_status(run_dir))
    elif reader == rundir.HISTORY:
        rows = rundir.read_history(run_dir)
        assert rows is None or all(isinstance(v, float) for r in rows for v in r.values())
    elif reader == rundir.CHECKPOINT:
        runs.resume_state(run_dir, TrainConfig(epochs=3), Execution(torch.device("cpu")))
    elif reader == rundir.MODEL:
        runs.load_run(run_dir)
    else:  # an IDX file
        values = read_idx(run_dir / reader)
        assert "labels" not in reader or int(values.max()) <= 9


def test_every_file_reader_fuzzed_ends_cleanly(tmp_path: Path, synthetic_root: Path) -> None:
    """Random bytes, truncations and bit flips (and, for JSON, valid JSON of the wrong shape) of
    every file we read: each read succeeds with the promised shape or is refused with the
    reader's one clean error (one line naming the file); never another exception."""
    import json
    import shutil

    from benchmark import rundir
    from benchmark.errors import DamagedFileError

    good = tmp_path / "good"
    good_run_files(good)
    raw = synthetic_root / "MNIST" / "raw"
    for name in ("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        shutil.copy(raw / name, good / name)
    json_shapes = {rundir.CONFIG, rundir.METRICS, rundir.STATUS}
    tried = refused = 0
    for seed, name in enumerate(sorted(p.name for p in good.iterdir())):
        blob = (good / name).read_bytes()
        # fewer of the costly ones: 8 MB of images; weights, which build a model to load into
        fewer = {"t10k-images-idx3-ubyte": 4, rundir.MODEL: 15}
        damaged = damaged_versions(blob, seed, count=fewer.get(name, 30))
        if name in json_shapes:  # and nested past the parser's recursion: a RecursionError
            damaged += [*json_mutations(json.loads(blob), seed), DEEP.encode()]
        for data in damaged:  # one file damaged at a time, the others good
            (good / name).write_bytes(data)
            tried += 1
            try:
                read_back(name, good)
            except (DamagedFileError, rundir.IncompleteRun) as exc:
                message = str(exc)
                assert "\n" not in message, message
                named = isinstance(exc, rundir.IncompleteRun) or str(good / name) in message
                assert named, message
                refused += 1
        (good / name).write_bytes(blob)
    assert tried >= 600 and 0 < refused < tried  # both ends of the contract were exercised
    print(f"fuzz: {tried} damaged files, {refused} refused cleanly, the others read")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_image_reader_fuzzed_ends_cleanly(fmt: str, tmp_path: Path) -> None:
    """``predict``'s images: damaged PNGs and JPEGs are read or refused with one line naming the
    file (a bad input: ``UsageError``), never another exception (PIL raises SyntaxError,
    struct.error ... for broken chunks)."""
    from benchmark.errors import UsageError
    from benchmark.predict import load_image

    page = Image.new("L", (40, 40), 255)
    ImageDraw.Draw(page).line([(20, 8), (20, 32)], fill=0, width=3)
    buffer = io.BytesIO()
    page.save(buffer, fmt)
    path = tmp_path / f"digit.{fmt.lower()}"
    refused = 0
    for data in damaged_versions(buffer.getvalue(), seed=1, count=150):
        path.write_bytes(data)
        try:
            assert load_image(path).shape == (1, 28, 28)
        except UsageError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
            refused += 1
    assert 0 < refused < 450  # some damage is refused, some is still a readable image


def test_a_non_numeric_history_value_costs_that_run_its_curve_not_the_report(
    tmp_path: Path,
) -> None:
    """The report reads runs through these readers: the damaged history is dropped (None), the
    run's metrics still count, and nothing raises."""
    from benchmark import rundir

    run_dir = tmp_path / "run"
    good_run_files(run_dir)
    path = run_dir / rundir.HISTORY
    header, first, *rest = path.read_text().splitlines()
    path.write_text("\n".join([header, first.replace("0.5", "abc", 1), *rest]) + "\n")
    assert rundir.read_history(run_dir) is None
    assert rundir.read_metrics(run_dir)["arch"] == "gap_cnn"


class Payload:
    """Unpickling this creates ``marker``: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_by_load_run_resume_and_predict(tmp_path: Path, capsys) -> None:
    from benchmark import files, rundir, runs
    from benchmark.cli import main
    from benchmark.config import TrainConfig

    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    files.write_json(run_dir / rundir.CONFIG, TrainConfig(fusion="late_sum").to_dict())
    rundir.write_status(run_dir, "interrupted")
    for name in (rundir.MODEL, rundir.CHECKPOINT):
        torch.save({"encoder.weight": Payload(marker)}, run_dir / name)
    image = a_one(tmp_path / "digit.png")

    with pytest.raises(files.UnreadableFileError, match="refused"):
        runs.load_run(run_dir)
    assert main(["run", "--resume", str(run_dir)]) == 1
    assert "refused to load" in one_line(capsys.readouterr().err)
    assert main(["predict", "--run", str(run_dir), "--image", str(image), "--addend", "1"]) == 1
    assert "refused to load" in one_line(capsys.readouterr().err)
    assert not marker.exists()
    torch.load(run_dir / rundir.MODEL, weights_only=False)  # unsafe load: the payload does run
    assert marker.exists()


def test_resume_of_a_read_only_run_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    no_data_load(monkeypatch)
    run_dir = interrupted_run(tmp_path / "run")
    with read_only(run_dir):  # as root (CI) a read-only mount: root writes past a chmod
        assert exit_status(["run", "--resume", str(run_dir)]) == 2
    assert "cannot create its lock file" in one_line(capsys.readouterr().err)


def a_journal(path: Path) -> bytes:
    """A real Optuna journal of one study and two trials, as bytes."""
    import optuna

    from benchmark import storages

    study = optuna.create_study(storage=storages.open_storage(f"journal:{path}"), study_name="x")
    for lr in (0.01, 0.02):
        study.enqueue_trial({"lr": lr})
    return path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda good: b"garbage\n", "line 1 is not a journal record"),
        (lambda good: b"\x89PNG\r\n\x1a\n\x00\x00", "line 1 is not a journal record"),
        (lambda good: good[:-40], "its last line (3) is cut off"),  # a writer killed mid-write
        (lambda good: good.replace(b"}\n", b"\n", 1), "line 1 is not a journal record"),
    ],
    ids=["text", "binary", "cut off", "a record broken"],
)
@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_damaged_journal_is_one_line_naming_it_and_left_as_it_was(
    command: str,
    damage: Any,
    problem: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Optuna's traceback (JSONDecodeError, UnicodeDecodeError) was the answer, and a cut-off
    last line got the next record glued to it, breaking the journal for good."""
    from benchmark.cli import main

    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setattr("benchmark.storages.time.sleep", lambda s: None)  # no writer to wait for
    journal = tmp_path / "optuna.log"
    journal.write_bytes(damage(a_journal(journal)))
    capsys.readouterr()  # Optuna's own notices while the journal was made
    before = journal.read_bytes()
    argv = [command, "--storage", str(journal), "--results-dir", str(tmp_path / "r")]
    assert main([*argv, "--epochs", "1"]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{journal}: damaged Optuna journal: {problem}" in line
    assert journal.read_bytes() == before


def test_a_journal_line_another_process_is_writing_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A last line without its newline may be another worker's record half written: it is read
    again after a moment, and a journal whose record was finished meanwhile is fine."""
    from benchmark import storages

    journal = tmp_path / "optuna.log"
    good = a_journal(journal)
    journal.write_bytes(good[:-40])
    monkeypatch.setattr(storages.time, "sleep", lambda s: journal.write_bytes(good))
    storages.check_journal(journal, "optuna.log")  # no error: the record was finished


def test_a_damaged_optuna_db_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Pages damaged behind an intact header: ``tune`` names the storage in one line instead of
    the database driver's traceback."""
    import optuna

    from benchmark.cli import main

    db = tmp_path / "optuna.db"
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name="x")
    for _ in range(20):  # a few pages of trials (~150 kB: long notes, as few writes as that takes)
        study.enqueue_trial({"lr": 0.01}, user_attrs={"note": "x" * 2000})
    del study
    capsys.readouterr()  # Optuna's own notices while the file was made
    blob = bytearray(db.read_bytes())
    blob[4096:] = bytes(len(blob) - 4096)  # keep the first page (the header), wipe the rest
    db.write_bytes(bytes(blob))
    status = main(["tune", "--results-dir", str(tmp_path), "--trials", "1", "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 1  # a damaged file, not a bad flag
    assert "optuna.db" in one_line(err) and "damaged" in err


@pytest.mark.parametrize("command", [["tune"], ["compare", "--status"], ["compare"]])
def test_an_emptied_optuna_db_is_one_line_and_left_empty(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0 bytes (a crash or a full disk): Optuna made it a new storage, so ``compare --status``
    wrote its tables into it and called a finished ladder not started, and ``compare`` would
    have tuned it all again. A file just made by another process is 0 bytes for a moment only."""
    from benchmark.cli import main

    db = tmp_path / "optuna.db"
    db.touch()
    os.utime(db, (1e9, 1e9))  # empty for years
    argv = [*command, "--results-dir", str(tmp_path), "--trials", "1", "--epochs", "1"]
    assert main([*argv, "--train-subset", "256"]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{db}: empty (0 bytes), as a crash or a full disk leaves a file" in line, line
    assert db.stat().st_size == 0
    os.utime(db)  # just made: another process is making its tables
    from benchmark.storages import check_storage

    assert check_storage(f"sqlite:///{db}") == db


@pytest.mark.parametrize("command", [["compare", "--status"], ["compare"], ["tune"]])
def test_an_optuna_db_emptied_just_now_beside_its_comparison_json_is_one_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Emptied within the minute, it passed for a file another process was making: ``--status``
    wrote Optuna's tables into it, and the next ``compare`` tuned everything again (a helper's
    kill-and-resume run). comparison.json is written once a stage is done in the storage, so
    beside it an empty one was emptied, whatever its age (for ``tune``, beside the exports of its
    studies). Without it, --status writes nothing."""
    from benchmark.cli import main

    db = tmp_path / "optuna.db"
    db.touch()
    argv = [*command, "--results-dir", str(tmp_path), "--trials", "1", "--epochs", "1"]
    if "--status" in command:  # (compare would take it for one being made, and go on)
        assert main([*argv, "--train-subset", "256"]) == 0
        said = "".join(capsys.readouterr().out.split())  # a long path is folded at the width
        assert said == "".join(f"nothing started: sqlite:///{db} is empty".split())
        assert db.stat().st_size == 0
    held = {"plan": {"key": "f00dcafe", "budget": {"epochs": 1}}, "stages": {"tune": {"vm": 60.0}}}
    (tmp_path / "comparison.json").write_text(json.dumps(held))
    (tmp_path / "tuned").mkdir()  # tune's evidence that its storage held studies: their exports
    (tmp_path / "tuned" / "gap_cnn__concat__e1.json").write_text("{}")
    assert main([*argv, "--train-subset", "256"]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"{db}: empty (0 bytes), as a crash or a full disk leaves a file" in line, line
    assert db.stat().st_size == 0


@pytest.mark.parametrize("content", ['{"message": "stopped"}', '{"status": 3}', "[]", "{"])
def test_a_status_json_without_a_status_is_read_as_unreadable(content: str, tmp_path: Path) -> None:
    """The listing, the report and predict's hints read a run's status: a status.json without
    one as text is "unreadable", as bad JSON is, not a KeyError or a number shown as a status."""
    from benchmark import rundir

    run_dir = interrupted_run(tmp_path / "run")
    (run_dir / rundir.STATUS).write_text(content)
    assert rundir.read_status(run_dir) == ("unreadable", "")


def test_a_moved_runs_resume_hint_names_where_it_is_now(tmp_path: Path) -> None:
    """An interrupted run's status.json holds the resume command with the path it had: after the
    results directory was copied or moved, the report still sent the user to the old one."""
    import json

    from benchmark import rundir

    moved = tmp_path / "moved" / "runs" / "r1"
    moved.mkdir(parents=True)
    old = "`python -m benchmark run --resume /gone/runs/r1`"
    status = {"status": "interrupted", "message": f"stopped by a signal; resume with {old}"}
    (moved / rundir.STATUS).write_text(json.dumps(status))
    said = rundir.read_status(moved)
    assert said == (
        "interrupted",
        f"stopped by a signal; resume with `python -m benchmark run --resume {moved}`",
    )


# A study's rows that SQLite reads but no run of ours wrote: (SQL, what the one line says)
DAMAGED_ROWS = {
    "value gone": ("DELETE FROM trial_values", "trial 0: complete, with the value None, not an"),
    "value null": ("UPDATE trial_values SET value = NULL", "a row cannot be read (AssertionError)"),
    "value not an accuracy": ("UPDATE trial_values SET value = 5", "the value 5.0, not an"),
    "parameter out of range": (
        "UPDATE trial_params SET param_value = 99",
        "trial 0: depth=99 is outside the range it was drawn from (IntDistribution(",
    ),
    "distribution not JSON": (
        "UPDATE trial_params SET distribution_json = 'x'",
        "a row cannot be read (JSONDecodeError: Expecting value",
    ),
    "attribute not JSON": (
        "UPDATE trial_user_attributes SET value_json = '{x'",
        "a row cannot be read (JSONDecodeError: Expecting property name",
    ),
    "unknown state": ("UPDATE trials SET state = 'BOGUS'", "a row cannot be read (LookupError: "),
}


def test_an_accuracy_of_0_or_1_and_a_parameter_at_its_bounds_are_no_damage() -> None:
    """A trial that learned nothing (0) or everything (1), or drew the end of its range, is a
    trial as any other."""
    import optuna
    from optuna.distributions import IntDistribution

    from benchmark import tuning

    study = optuna.create_study(direction="maximize")
    for value, depth in ((0.0, 1), (1.0, 2)):
        study.add_trial(
            optuna.trial.create_trial(
                params={"depth": depth}, distributions={"depth": IntDistribution(1, 2)}, value=value
            )
        )
    tuning.check_study(study)


@pytest.mark.parametrize(
    ("command", "damage"),
    [pytest.param("tune", damage, id=f"tune-{what}") for what, damage in DAMAGED_ROWS.items()]
    + [  # compare reads them through the same check: one damage of each kind
        pytest.param(command, DAMAGED_ROWS[what], id=f"{command}-{what}")
        for command in ("compare", "compare --status")
        for what in ("parameter out of range", "attribute not JSON")
    ],
)
def test_damaged_rows_of_a_study_are_one_line_naming_the_storage(
    command: str,
    damage: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Optuna's traceback (JSONDecodeError, AssertionError, LookupError, or ours: comparing a
    missing value) was the answer mid-work, and a parameter outside its range went into the
    export (``depth=99``): now one line names the storage, the study and the trial, nothing is
    trained or written."""
    import sqlite3

    import optuna
    from optuna.distributions import IntDistribution

    from benchmark.cli import build_parser, main
    from benchmark.commands.compare import plans_from

    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    argv = [*command.split(), "--results-dir", str(tmp_path), "--epochs", "1"]
    if command == "tune":
        argv += ["--study", "x"]
        name = "x"
    else:
        argv += ["--arch", "gap_cnn", "--fusion", "concat", "--seeds", "0", "--trials", "1"]
        (plan,) = plans_from(build_parser().parse_args(argv))
        name = plan.study("gap_cnn", "concat")
    db = tmp_path / "optuna.db"
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name=name, direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"depth": 2},
            distributions={"depth": IntDistribution(1, 2)},
            value=0.5,
            user_attrs={"note": "a"},
        )
    )
    del study
    sql, said = damage
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute(sql)
    before = db.read_bytes()
    capsys.readouterr()  # Optuna's own notices while the study was made
    assert main(argv) == 1  # a damaged file, not a bad flag
    line = one_line(capsys.readouterr().err)
    assert f"{db}: study '{name}': " in line and said in line
    assert db.read_bytes() == before
    assert not (tmp_path / "tuned").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_config_nested_too_deeply_is_one_line(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both parsers recurse: a file nested 100,000 deep was a RecursionError traceback."""
    path = tmp_path / f"deep{suffix}"
    path.write_text(DEEP if suffix == ".json" else f"a = {DEEP}\n")
    assert exit_status(["run", "--config", str(path), "--print-config"]) == 2
    kind = suffix[1:].upper()
    assert one_line(capsys.readouterr().err).endswith(
        f"--config {path}: not valid {kind} (nested too deeply to be read)"
    )


def test_a_damaged_journal_read_by_the_report_is_named_not_read_as_no_studies(
    tmp_path: Path,
) -> None:
    """Opened by Optuna alone, a journal of text that is no record reads as a storage with no
    studies: the report would have said nothing of the studies it lost."""
    from benchmark.errors import DamagedFileError
    from benchmark.storages import open_to_read  # how the report opens a storage

    journal = tmp_path / "optuna.log"
    journal.write_bytes(b"garbage\n")
    said = f"journal:{journal}: damaged Optuna journal: line 1 is not a journal record"
    with pytest.raises(DamagedFileError, match=re.escape(said)):
        open_to_read(f"journal:{journal}")


def test_an_empty_journal_is_a_new_storage_not_an_emptied_one(tmp_path: Path) -> None:
    """Optuna makes a journal file 0 bytes long and appends to it: empty is how a journal
    starts, at any age, not the damage an emptied SQLite file is."""
    from benchmark.storages import check_storage

    journal = tmp_path / "optuna.log"
    journal.touch()
    os.utime(journal, (1e9, 1e9))  # empty for years
    assert check_storage(f"journal:{journal}") == journal
    assert check_storage(str(journal), held=True) == journal


@pytest.mark.parametrize("kind", ["sqlite:///", "journal:"])
def test_a_directory_given_as_the_storage_file_is_one_line(kind: str, tmp_path: Path) -> None:
    from benchmark.errors import UsageError
    from benchmark.storages import check_storage

    folder = tmp_path / "optuna.db"
    folder.mkdir()
    with pytest.raises(UsageError, match=re.escape(f"{folder}: a directory; expected a file")):
        check_storage(f"{kind}{folder}")
