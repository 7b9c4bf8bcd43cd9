"""Bad values that used to pass the checks and crash later (or train something else): each is
one line naming what was wrong and what is accepted, exit 2, before the data loads, nothing
written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.test_reliability import exit_status, one_line

CASES = [
    # non-finite numbers, for every float field they reach
    (["--lr", "inf"], "lr must be a finite number"),
    (["--lr", "nan"], "lr must be a finite number"),
    (["--weight-decay", "nan"], "weight_decay must be a finite number"),
    (["--sum-loss-weight", "nan"], "sum_loss_weight must be a finite number"),
    (["--aug-degrees", "inf"], "aug_degrees must be a finite number"),
    (["--aug-shift=-inf"], "aug_shift must be a finite number"),
    (["--warmup", "nan"], "warmup must be a finite number"),
    (["--momentum", "inf"], "momentum must be a finite number"),
    (["--label-smoothing", "nan"], "label_smoothing must be a finite number"),
    # integers out of range
    (["--seed", str(2**70)], "seed must be in 0..2**63-1"),
    (["--seed", "-1"], "seed must be in 0..2**63-1"),
    (["--seeds", f"0,{2**64}"], "seed must be in 0..2**63-1"),
    (["--batch-size", "60000"], "batch_size must be <= the 55,000 training images"),
    # empty or malformed names
    (["--arch", ""], "no encoder given"),
    (["--fusion", ""], "no fusion given"),
    (["--arch", ","], "no encoder given"),
    (["--fusion", " , "], "no fusion given"),
    # model arguments of the wrong type or range
    (["--model-arg", "width=-1"], "width=-1: expected a value >= 0"),
    (["--model-arg", "width=abc"], "width='abc': expected int"),
    (["--model-arg", "width=1.5"], "width=1.5: expected int"),
    (["--model-arg", "width=true"], "width=True: expected int"),
    (["--model-arg", "dropout=2"], "dropout=2: a dropout rate must be in [0, 1)"),
    (["--model-arg", "dropout=nan"], "dropout=nan: expected float"),
    (["--model-arg", "head_dropout=1"], "a dropout rate must be in [0, 1)"),
    (["--model-arg", "depth=-2"], "depth=-2: expected a value >= 0"),
    # a timm model that cannot take 28x28 input
    (["--arch", "timm:vit_tiny_patch16_224"], "cannot run on 1x28x28 images"),
]


@pytest.mark.parametrize("flags, expected", CASES)
def test_bad_values_end_in_one_line_before_anything_is_written(
    flags: list[str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("bad input must be rejected before the data is loaded")

    monkeypatch.setattr("benchmark.data.load_mnist", no_data)
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert exit_status(["run", *flags, "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert expected in one_line(err)
    assert "Traceback" not in err
    assert not results.exists()


def test_results_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    target = tmp_path / "results"
    target.write_text("not a directory")
    assert exit_status(["run", "--results-dir", str(target / "sub")]) == 2
    assert "is a file; expected a directory" in one_line(capsys.readouterr().err)
    assert target.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_results_dir_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    tmp_path.chmod(0o500)
    try:
        assert exit_status(["run", "--results-dir", str(tmp_path / "r")]) == 2
        assert "is not writable" in one_line(capsys.readouterr().err)
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    assert exit_status(["run", "--device", "cuda", "--results-dir", str(tmp_path / "r")]) == 2
    assert "cuda" in one_line(capsys.readouterr().err).lower()
    assert not (tmp_path / "r").exists()


def test_every_registered_model_passes_the_dry_run() -> None:
    """The meta-device check must not refuse what trains: every encoder x fusion, defaults."""
    from architectures import ENCODERS, FUSIONS, check_model

    for arch in [*ENCODERS.names(), "timm:resnet10t"]:
        for fusion in FUSIONS.names():
            check_model(arch, fusion, {})


# ------------------------------------------------------------------------ config files


@pytest.mark.slow
def test_a_run_config_reprints_as_itself_and_flags_override_it(
    trained_run: Path, tmp_path: Path, capsys
) -> None:
    import json

    from benchmark.cli import main

    saved = json.loads((trained_run / "config.json").read_text())
    argv = ["run", "--config", str(trained_run / "config.json"), "--print-config"]
    assert main([*argv, "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == saved
    assert main([*argv, "--lr", "0.0123", "--results-dir", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out) == {**saved, "lr": 0.0123}
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "content, name, expected",
    [
        ("{", "c.json", "not valid JSON"),
        ("[1, 2]", "c.json", "expected an object of config fields"),
        ('{"lrr": 1}', "c.json", "unknown config key(s) lrr"),
        ('{"batch_size": 0}', "c.json", "batch_size must be a positive integer"),
        ('{"batch_size": "x"}', "c.json", "batch_size"),
        ('{"model_args": 3}', "c.json", "--config"),
        ("lr = [", "c.toml", "not valid TOML"),
        (None, "missing.json", "cannot read it"),
    ],
)
def test_bad_config_files(
    content: str | None, name: str, expected: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    argv = ["run", "--config", str(path), "--results-dir", str(tmp_path / "r")]
    assert exit_status(argv) == 2
    assert expected in one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_toml_config(tmp_path: Path, capsys) -> None:
    import json

    (tmp_path / "c.toml").write_text('arch = "small_cnn"\nlr = 0.002\n[model_args]\nwidth = 8\n')
    argv = ["run", "--config", str(tmp_path / "c.toml"), "--print-config", "--epochs", "2"]
    assert exit_status(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["arch"], printed["lr"], printed["epochs"]) == ("small_cnn", 0.002, 2)
    assert printed["model_args"] == {"width": 8}


def test_any_config_flag_sweeps_a_comma_list(capsys) -> None:
    """--lr a,b --batch-size c,d --seeds 0,1: the cartesian product, every value checked."""
    import json

    argv = ["run", "--lr", "1e-3,3e-3", "--batch-size", "64,128", "--seeds", "0,1"]
    assert exit_status([*argv, "--optimizer", "sgd", "--print-config"]) == 0
    configs = json.loads(capsys.readouterr().out)
    assert sorted((c["lr"], c["batch_size"], c["seed"]) for c in configs) == [
        (lr, b, s) for lr in (1e-3, 3e-3) for b in (64, 128) for s in (0, 1)
    ]
    assert {c["optimizer"] for c in configs} == {"sgd"}
    assert exit_status([*argv[:3], "--lr", "1e-3,inf", "--print-config"]) == 2
    assert "lr must be a finite number" in one_line(capsys.readouterr().err)
    assert exit_status(["run", "--schedule", "cosine,linear", "--print-config"]) == 2
    assert "expected one of onecycle, cosine, constant" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------ damaged files


def test_load_torch_fuzz_ends_in_one_clean_error(tmp_path: Path) -> None:
    """Random bytes, truncations and bit flips of a real checkpoint, and a directory in its
    place: every failure is ``UnreadableFileError``, never another exception."""
    import random

    from benchmark import files

    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.randn(64, 64)}, "step": 3}, good)
    blob = good.read_bytes()
    rng = random.Random(0)
    damaged = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))) for _ in range(60)]
    damaged += [blob[: rng.randrange(len(blob))] for _ in range(60)]
    for _ in range(60):
        flipped = bytearray(blob)
        for _ in range(rng.randrange(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        damaged.append(bytes(flipped))
    clean = 0
    for i, data in enumerate(damaged):
        path = tmp_path / f"bad{i}.pt"
        path.write_bytes(data)
        try:
            files.load_torch(path)
        except files.UnreadableFileError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
        clean += 1  # loaded (a flip in a tensor's data) or refused cleanly
    assert clean == len(damaged)
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(files.UnreadableFileError):
        files.load_torch(tmp_path / "dir.pt")


def test_a_16_bit_image_with_a_bright_background_is_read_at_full_depth(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from benchmark.predict import load_image

    pixels = np.full((56, 56), 65000, dtype=np.uint16)  # bright paper
    pixels[14:42, 25:31] = 1000  # a dark stroke: a "1"
    path = tmp_path / "one16.png"
    Image.fromarray(pixels).save(path)
    x = load_image(path)
    assert x.shape == (1, 28, 28) and float(x.max()) == pytest.approx(1.0)
    assert float(x[0, :, :4].max()) < 0.05  # background black after the inversion


@pytest.mark.slow
def test_two_resumes_started_at_once_train_the_run_once(tmp_path: Path, mnist_root: Path) -> None:
    import subprocess
    import sys

    from benchmark import files, runs
    from benchmark.config import TrainConfig

    cfg = TrainConfig(epochs=1, train_subset=3000, data_dir=str(mnist_root), threads=1)
    run_dir = tmp_path / "run"
    files.write_json(run_dir / runs.CONFIG, cfg.to_dict())
    runs.write_status(run_dir, "interrupted", "stopped by a signal")
    argv = [sys.executable, "-m", "benchmark", "run", "--resume", str(run_dir)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    loser = results[1][1]  # refused while the other trains, or after it finished
    assert "still running (pid" in loser or "already complete" in loser, loser
    assert loser.count("\n") == 1
    assert runs.read_metrics(run_dir)["seed"] == 0
