"""Real-data runs through the CLI: files, metric fields and ranges, load_run, determinism."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmark import load_run
from benchmark.cli import main
from benchmark.hardware import Execution, cpu_features, decide
from benchmark.trainer import evaluate

pytestmark = pytest.mark.slow

SHORT = ["--epochs", "1", "--train-subset", "5000", "--batch-size", "50"]


def run_cli(tmp_path: Path, mnist_root: Path, *extra: str) -> list[Path]:
    before = set((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else set()
    code = main(
        ["run", *SHORT, "--data-dir", str(mnist_root), "--results-dir", str(tmp_path), *extra]
    )
    assert code == 0
    return sorted(set((tmp_path / "runs").glob("*")) - before)


@pytest.fixture(scope="module")
def concat_run(tmp_path_factory: pytest.TempPathFactory, mnist_root: Path) -> Path:
    tmp = tmp_path_factory.mktemp("concat")
    (run_dir,) = run_cli(tmp, mnist_root, "--arch", "gap_cnn", "--fusion", "concat")
    return run_dir


def test_run_writes_every_file_with_valid_fields(concat_run: Path) -> None:
    for name in ("config.json", "history.csv", "metrics.json", "model.pt", "status.json"):
        assert (concat_run / name).is_file(), name
    m = json.loads((concat_run / "metrics.json").read_text())
    for key in (
        "arch",
        "fusion",
        "seed",
        "params",
        "epochs",
        "train_seconds",
        "train_images_per_s",
        "device",
        "versions",
        "git_commit",
        "config",
        "val",
        "test",
    ):
        assert key in m, key
    assert (m["arch"], m["fusion"], m["seed"], m["epochs"]) == ("gap_cnn", "concat", 0, 1)
    assert m["cpu_features"] == cpu_features()  # (the tests run on the CPU)
    assert m["params"] > 1000 and m["train_seconds"] > 0 and m["train_images_per_s"] > 0
    assert set(m["versions"]) == {"python", "torch", "torchvision", "timm"}
    assert m["config"]["train_subset"] == 5000 and m["config"]["batch_size"] == 50
    for split in ("val", "test"):
        for key in ("digit_acc", "sum_acc", "joint_acc", "consistency"):
            assert 0.0 <= m[split][key] <= 1.0
        assert m[split]["joint_acc"] <= min(m[split]["digit_acc"], m[split]["sum_acc"])
    assert m["test"]["pairs"] == 100_000 and m["val"]["pairs"] == 50_000
    assert len(m["test"]["sum_acc_by_class"]) == 19
    assert all(0.0 <= v <= 1.0 for v in m["test"]["sum_acc_by_class"])
    # 5,000 images for one epoch is enough to learn digits well above chance
    assert m["test"]["digit_acc"] > 0.8
    assert json.loads((concat_run / "status.json").read_text())["status"] == "complete"
    rows = list(csv.DictReader((concat_run / "history.csv").open()))
    assert len(rows) == 1 and float(rows[0]["seconds"]) > 0
    assert float(rows[0]["val_sum_acc"]) == pytest.approx(m["val"]["sum_acc"])


def test_load_run_reproduces_test_accuracy(concat_run: Path, mnist) -> None:
    model = load_run(concat_run)
    assert not model.training and next(model.parameters()).device == torch.device("cpu")
    m = json.loads((concat_run / "metrics.json").read_text())
    ex = Execution(torch.device("cpu"), m["precision"], m["channels_last"])  # as it ran
    model = model.to(memory_format=ex.memory_format)
    again = evaluate(model, mnist.test, ex, m["config"]["eval_batch_size"])
    for key in ("digit_acc", "sum_acc", "joint_acc", "consistency"):
        assert again[key] == m["test"][key]


def test_same_seed_same_metrics_on_cpu(concat_run: Path, tmp_path: Path, mnist_root: Path) -> None:
    (again,) = run_cli(tmp_path, mnist_root, "--arch", "gap_cnn", "--fusion", "concat")
    a = json.loads((concat_run / "metrics.json").read_text())
    b = json.loads((again / "metrics.json").read_text())
    assert a["val"] == b["val"] and a["test"] == b["test"]
    assert again.name != concat_run.name


def test_late_sum_sum_accuracy_equals_digit_accuracy(tmp_path: Path, mnist_root: Path) -> None:
    (run_dir,) = run_cli(tmp_path, mnist_root, "--arch", "small_cnn", "--fusion", "late_sum")
    m = json.loads((run_dir / "metrics.json").read_text())
    for split in ("val", "test"):
        assert m[split]["sum_acc"] == m[split]["digit_acc"] == m[split]["joint_acc"]
        assert m[split]["consistency"] == 1.0


def test_grid_runs_each_combination_and_seed(tmp_path: Path, mnist_root: Path) -> None:
    dirs = run_cli(
        tmp_path,
        mnist_root,
        "--arch",
        "small_cnn",  # the grid's mechanics, not a model: the cheapest encoder to evaluate
        "--fusion",
        "late_sum,embed_add",
        "--seeds",
        "0,1",
        "--train-subset",
        "500",
        "--eval-batch-size",
        "5000",
    )
    seen = sorted(
        (m["fusion"], m["seed"])
        for m in (json.loads((d / "metrics.json").read_text()) for d in dirs)
    )
    assert seen == [("embed_add", 0), ("embed_add", 1), ("late_sum", 0), ("late_sum", 1)]


def test_a_threads_sweep_runs_each_run_with_its_own_thread_count(
    tmp_path: Path, mnist_root: Path
) -> None:
    before = torch.get_num_threads()
    try:
        dirs = run_cli(tmp_path, mnist_root, "--threads", "1,2", "--train-subset", "500",
                       "--eval-batch-size", "5000", "--arch", "small_cnn")  # fmt: skip
    finally:
        torch.set_num_threads(before)
    found = sorted(
        (json.loads((d / "config.json").read_text())["threads"],
         json.loads((d / "metrics.json").read_text())["device"])
        for d in dirs
    )  # fmt: skip
    assert [t for t, _ in found] == [1, 2]
    assert found[0][1].endswith("(1 thread)") and found[1][1].endswith("(2 threads)")


def test_every_data_dir_of_a_sweep_is_checked_before_the_first_run(
    tmp_path: Path, mnist_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged second MNIST copy stops the grid before anything trains (it used to be
    ignored: every run read the first copy)."""
    import shutil

    raw = tmp_path / "copy" / "MNIST" / "raw"
    shutil.copytree(mnist_root / "MNIST" / "raw", raw)
    data = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    data[8 + 17] = 12
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(data))
    argv = ["run", *SHORT, "--data-dir", f"{mnist_root},{tmp_path / 'copy'}"]
    assert main([*argv, "--results-dir", str(tmp_path / "out")]) == 1  # a damaged file
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "copy/MNIST/raw/t10k-labels-idx1-ubyte" in err
    assert not (tmp_path / "out" / "runs").exists() or not any(
        (tmp_path / "out" / "runs").iterdir()
    )


def test_a_data_dir_with_a_comma_in_its_name_is_one_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--data-dir`` sweeps a comma list, but a folder named ``mn,ist`` is one folder: it was
    split into ``mn`` and ``ist``, and MNIST looked for in a path never typed."""
    folder = tmp_path / "mn,ist"
    folder.mkdir()
    assert main(["run", "--data-dir", str(folder), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(folder)
    (tmp_path / "other").mkdir()
    assert main(["run", "--data-dir", f"{folder},{tmp_path / 'other'}", "--print-config"]) == 0
    swept = [c["data_dir"] for c in json.loads(capsys.readouterr().out)]
    assert swept == [str(tmp_path / "mn"), "ist", str(tmp_path / "other")]  # no such folder whole


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_run_bf16_matches_cpu_closely(mnist) -> None:
    """The CUDA path (bf16 autocast, channels_last) learns like the CPU path on the same data."""
    from benchmark.config import TrainConfig
    from benchmark.hardware import decide
    from benchmark.trainer import train

    cfg = TrainConfig(fusion="late_sum", epochs=1, train_subset=5000, batch_size=50)
    cuda_cfg, cuda_ex = decide(replace(cfg, device="cuda"))
    cuda_state = train(cuda_cfg, mnist.to("cuda"), cuda_ex)
    cpu_cfg, cpu_ex = decide(replace(cfg, device="cpu"))
    cpu_state = train(cpu_cfg, mnist, cpu_ex)
    cuda_acc = cuda_state.history[-1].val_sum_acc
    assert cuda_acc > 0.8
    assert abs(cuda_acc - cpu_state.history[-1].val_sum_acc) < 0.05


@pytest.mark.slow
def test_grid_progress_shows_the_grid_and_the_final_evaluation(
    mnist_root: Path, tmp_path: Path, capsys
) -> None:
    """Piped output: a grid bar (runs done of total) and a status during the test evaluation."""
    from benchmark.cli import main

    argv = ["run", "--seeds", "0,1", "--epochs", "1", "--train-subset", "256"]
    argv += ["--arch", "small_cnn", "--eval-batch-size", "5000"]
    argv += ["--data-dir", str(mnist_root), "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "grid: 2 runs (2 seeds)" in out
    assert "1/2" in out
    assert "now the test split" in out


def test_the_commit_is_dirty_for_edited_code_and_clean_for_written_results(tmp_path: Path) -> None:
    """Results appended inside the checkout (a bench CSV, run directories) are not code: the
    rows written after the first one used to carry ``-dirty`` for the first one's file."""
    import subprocess

    from benchmark.hardware import git_commit

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    for name in ("benchmark/step.py", "results/bench/cpu.csv", "pyproject.toml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "first")
    sha = git("rev-parse", "HEAD")
    (tmp_path / "results/bench/cpu.csv").write_text("a\nb\n")
    assert git_commit(tmp_path) == sha
    (tmp_path / "benchmark/step.py").write_text("b\n")
    assert git_commit(tmp_path) == sha + "-dirty"
    assert git_commit(tmp_path.parent / "nowhere") is None


def test_the_commit_is_read_as_training_starts(
    small_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics.json names the checkout the imported code came from, not one edited since."""
    from benchmark import runs
    from benchmark.config import TrainConfig

    checkout = {"commit": "abc123"}
    monkeypatch.setattr(runs, "git_commit", lambda: checkout["commit"])

    def edited(*_: object) -> None:  # a file edited while the run trains
        checkout["commit"] = "abc123-dirty"

    cfg, ex = decide(TrainConfig(epochs=1, batch_size=64, eval_batch_size=100))
    metrics = runs.execute(cfg, small_data, runs.start_run(cfg, tmp_path), ex, listen=edited)
    assert metrics["git_commit"] == "abc123"
