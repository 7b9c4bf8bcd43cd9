"""``python -m benchmark datapath``: the three data paths measured and reported (synthetic set)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import PLAIN_CPU, cpu_file, exit_status, one_line

from benchmark import hardware
from benchmark.cli import main
from benchmark.datapath import NaiveDigitSumDataset


def test_naive_dataset_items_and_batches(synthetic) -> None:
    split = synthetic.train.subset(64)
    dataset = NaiveDigitSumDataset(split)
    assert len(dataset) == 64
    image, addend, one_hot, label = dataset[5]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert torch.equal(image, split.images[5].float() / 255)
    assert addend.dtype == torch.int64 and 0 <= addend.item() <= 9
    assert torch.equal(one_hot, F.one_hot(addend, 10).float())
    assert label == split.labels[5]
    loader = torch.utils.data.DataLoader(dataset, batch_size=16)
    images, addends, one_hots, labels = next(iter(loader))
    assert images.shape == (16, 1, 28, 28) and one_hots.shape == (16, 10)
    assert addends.shape == labels.shape == (16,)
    assert torch.equal(one_hots.argmax(1), addends)
    torch.manual_seed(0)  # the naive dataset draws from the global generator, as such code does
    assert {int(dataset[i % 64][1]) for i in range(300)} == set(range(10))  # every addend


def test_each_rounds_trainer_figure_is_that_rounds_images_over_its_own_seconds(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer continues one state over the rounds: its seconds are the round's share of
    the state's running total, not the total."""
    from benchmark.config import TrainConfig
    from benchmark.datapath import measure

    def two_seconds_a_round(cfg, data, ex, state=None) -> None:
        state.train_seconds += 2.0

    monkeypatch.setattr("benchmark.datapath.train", two_seconds_a_round)
    cfg = TrainConfig(batch_size=16, **PLAIN_CPU)
    cfg, ex = hardware.decide(cfg)
    ips = measure(cfg, synthetic, ex, synthetic.train.subset(64), 4, 0, 2, 0)
    assert ips["trainer"] == [2 * 16 / 2.0] * 2  # 2 steps of 16 images a round, in 2 s
    assert len(ips["prebuilt"]) == len(ips["dataloader"]) == 2


def test_every_way_warms_up_untimed_and_then_times_its_share_of_the_steps_each_round(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer warms up in a run of its own (the timed one starts with a fresh model), the
    two references take their warm-up steps untimed; each round then times ``steps / rounds``
    steps of each way, and the trainer's epoch-end evaluation is of one batch. Without the
    warm-up, the first round's figure held the start-up cost."""
    from benchmark.config import TrainConfig
    from benchmark.datapath import measure

    trained, stepped = [], {"prebuilt": 0, "dataloader": 0}

    def recorded(cfg, data, ex, state=None) -> None:
        trained.append((cfg.epochs, cfg.train_subset, state is None, len(data.val)))
        if state is not None:
            state.train_seconds += 1.0

    def counted(way):
        def step() -> None:
            stepped[way] += 1

        return lambda *a: step

    monkeypatch.setattr("benchmark.datapath.train", recorded)
    monkeypatch.setattr("benchmark.datapath.prebuilt_step", counted("prebuilt"))
    monkeypatch.setattr("benchmark.datapath.dataloader_step", counted("dataloader"))
    cfg, ex = hardware.decide(TrainConfig(batch_size=16, **PLAIN_CPU))
    ips = measure(cfg, synthetic, ex, synthetic.train.subset(64), 4, 3, 2, 0)
    assert trained == [(1, 48, True, 16), (1, 32, False, 16), (2, 32, False, 16)]
    assert stepped == {"prebuilt": 3 + 4, "dataloader": 3 + 4}
    assert ips["trainer"] == [2 * 16 / 1.0] * 2


def test_tiny_run_writes_the_three_figures_and_ratios(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--steps", "4", "--rounds", "2", "--warmup-steps", "1", "--batch-size", "16"]
    args += ["--device", "cpu", "--precision", "fp32"]  # auto is test_precision's
    args += ["--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert main(["datapath", *args]) == 0
    path = cpu_file(tmp_path, "datapath", "fp32", ".json")
    out = capsys.readouterr().out
    assert f"written to {path} and .md\n" in out  # whole, on one line
    report = json.loads(path.read_text())
    machine = f"{report['device']} with {hardware.cpu_features()}"  # as the report names it
    assert out.startswith(f"datapath: gap_cnn x concat on {machine}, ")
    assert out.count("gap_cnn x concat") == 1  # the table below the line does not say it again
    assert "train images/s by data path, median of 2 rounds" in " ".join(out.split())
    assert (report["arch"], report["fusion"]) == ("gap_cnn", "concat")
    assert (report["batch_size"], report["steps"], report["warmup"]) == (16, 4, 1)
    assert report["rounds"] == 2
    assert report["device"].startswith("cpu") and report["torch"] == torch.__version__
    assert report["cpu_features"] == hardware.cpu_features()  # VMs of one name told apart
    ips = report["images_per_s"]
    assert set(ips) == {"trainer", "prebuilt", "dataloader"}
    assert all(v > 0 for v in ips.values())
    assert set(report["images_per_s_per_round"]) == set(ips)
    for way, figures in report["images_per_s_per_round"].items():
        assert len(figures) == 2 and ips[way] == pytest.approx(sum(figures) / 2)  # median of 2
    ratios = report["ratios"]
    assert ratios["trainer_over_prebuilt"] == pytest.approx(ips["trainer"] / ips["prebuilt"])
    assert ratios["trainer_over_dataloader"] == pytest.approx(ips["trainer"] / ips["dataloader"])
    md = cpu_file(tmp_path, "datapath", "fp32", ".md").read_text()
    assert f"{ips['trainer']:,.0f}" in md and f"{ratios['trainer_over_prebuilt']:.3f}" in md
    assert f"with {hardware.cpu_features()}" in md
    # the layout measured is recorded (the console said it, the files did not)
    assert isinstance(report["channels_last"], bool)
    assert (", channels_last, DataLoader" in md) is report["channels_last"]
    assert "| one pre-built batch (no data path: the ceiling, up to noise) |" in md


def test_another_combinations_measurement_is_not_replaced(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file is one per device and precision: datapath of small_cnn replaced gap_cnn's
    measurement without a word. It is refused before measuring; a damaged file is named."""
    path = cpu_file(tmp_path, "datapath", "fp32", ".json")
    path.parent.mkdir(parents=True)
    theirs = {"arch": "gap_cnn", "fusion": "concat", "images_per_s": {"trainer": 1.0}}
    path.write_text(json.dumps(theirs))
    args = ["--arch", "small_cnn", "--device", "cpu", "--precision", "fp32"]
    args += ["--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert main(["datapath", *args]) == 2
    line = one_line(capsys.readouterr().err)
    assert "holds the measurement of gap_cnn x concat, which this one of small_cnn x concat" in line
    assert json.loads(path.read_text()) == theirs
    path.write_text("{")
    assert main(["datapath", *args]) == 1
    assert f"{path}: not a datapath measurement" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "100000"],  # more images than the training split
        ["--steps", "0"],
        ["--steps", "10", "--rounds", "3"],  # not a whole number of steps per round
        ["--rounds", "0"],
        ["--arch", "gap*"],  # one name, not a pattern
        ["--num-workers", "9999"],  # hung, its workers left behind when killed
        ["--num-workers", "-1"],
    ],
)
def test_bad_input_is_a_usage_error(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    common = ["--device", "cpu", "--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert exit_status(["datapath", *common, *args]) == 2  # argparse's refusals too
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "datapath").exists()


def test_a_bad_run_setting_is_said_by_its_flag(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "batch_size must be ...", the config field, where run and bench name the flag."""
    args = ["--batch-size", "0", "--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert exit_status(["datapath", *args]) == 2
    assert "error: --batch-size must be a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--arch", "gap_cnn,small_cnn"), ("--fusion", "concat,late_sum"), ("--arch", "gap*")],
)
def test_a_list_of_names_says_datapath_takes_one(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "unknown encoder 'gap_cnn,small_cnn'", as if the names were wrong; a wildcard
    is several names too."""
    assert main(["datapath", flag, value, "--results-dir", str(tmp_path)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.endswith(
        f"{flag} {value!r}: datapath measures one combination, so one name; bench measures several"
    )


def test_a_timm_vit_is_measured_at_the_sizes_given_and_refused_without_them(
    tmp_path: Path, synthetic_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--model-arg`` as for run and bench: the report records the sizes and names the model
    with them; without them, the dry run's one line, and nothing is written."""
    args = ["--arch", "timm:test_vit", "--fusion", "late_sum", "--steps", "2", "--rounds", "1"]
    args += ["--warmup-steps", "0", "--batch-size", "8", "--device", "cpu", "--precision", "fp32"]
    args += ["--data-dir", str(synthetic_root), "--results-dir", str(tmp_path / "r")]
    assert main(["datapath", *args]) == 2
    assert "it runs on 28x28 with --model-arg img_size=28" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    sized = ["--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    assert main(["datapath", *args, *sized]) == 0
    path = cpu_file(tmp_path / "r", "datapath", "fp32", ".json")
    assert json.loads(path.read_text())["model_args"] == {"img_size": 28, "patch_size": 7}
    title = path.with_suffix(".md").read_text().splitlines()[0]
    assert title == "# Data path: timm:test_vit x late_sum (img_size=28, patch_size=7)"
    out = capsys.readouterr().out
    assert out.startswith("datapath: timm:test_vit x late_sum (img_size=28, patch_size=7) on ")


def measured_without_a_model(monkeypatch: pytest.MonkeyPatch, synthetic, measure) -> None:
    """``datapath`` up to ``measure`` (given), with the session's synthetic set and no dry run
    of the model: what is asked of the figures, quickly."""
    monkeypatch.setattr("benchmark.commands.datapath.dry_runs", lambda *a: None)
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: synthetic)
    monkeypatch.setattr("benchmark.datapath.measure", measure)


def test_the_figure_of_each_data_path_is_the_median_of_its_rounds(
    tmp_path: Path, synthetic_root: Path, synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slow round (a page-in, another process) must not move the figure: the median is
    kept, not the mean."""
    rounds = {"trainer": [100.0, 110.0, 990.0], "prebuilt": [200.0, 50.0, 210.0]}
    rounds["dataloader"] = [10.0, 20.0, 30.0]
    measured_without_a_model(monkeypatch, synthetic, lambda *a: rounds)
    args = ["--steps", "3", "--rounds", "3", "--warmup-steps", "0", "--batch-size", "8"]
    args += ["--device", "cpu", "--precision", "fp32"]
    args += ["--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert main(["datapath", *args]) == 0
    report = json.loads(cpu_file(tmp_path, "datapath", "fp32", ".json").read_text())
    assert report["images_per_s"] == {"trainer": 110.0, "prebuilt": 200.0, "dataloader": 20.0}
    assert report["ratios"] == {"trainer_over_prebuilt": 0.55, "trainer_over_dataloader": 5.5}


def test_the_warmup_steps_count_in_the_images_a_measurement_needs(
    tmp_path: Path, synthetic_root: Path, synthetic, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The timed steps alone fit the training split (10 x 5000 of 55000 images); with the
    warm-up steps before them (12 x 5000) they do not, and nothing is measured. 11 x 5000,
    the whole split, is measured."""
    args = ["--steps", "10", "--rounds", "1", "--batch-size", "5000"]
    args += ["--device", "cpu", "--precision", "fp32", "--data-dir", str(synthetic_root)]
    figures = {way: [1000.0] for way in ("trainer", "prebuilt", "dataloader")}
    measured_without_a_model(monkeypatch, synthetic, lambda *a: figures)
    whole = ["--warmup-steps", "1", "--results-dir", str(tmp_path / "whole")]
    assert main(["datapath", *args, *whole]) == 0
    capsys.readouterr()
    monkeypatch.setattr("benchmark.datapath.measure", lambda *a: pytest.fail("measured"))
    assert main(["datapath", *args, "--warmup-steps", "2", "--results-dir", str(tmp_path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert "(--warmup-steps + --steps) x --batch-size = 60000 images, more than the 55000" in line
    assert not (tmp_path / "datapath").exists() or not any((tmp_path / "datapath").iterdir())


def test_the_console_table_gives_each_paths_figure_and_its_share_of_the_prebuilt_one() -> None:
    """Each way's median with thousands separators and over the pre-built batch's (the
    trainer at 0.550 of it, not 1.818); one round is said as one."""
    from rich.console import Console

    from benchmark.commands.datapath import report_table

    ips = {"trainer": 1100.0, "prebuilt": 2000.0, "dataloader": 500.0}
    term = Console(file=io.StringIO(), width=100, color_system=None)
    term.print(report_table({"rounds": 1, "images_per_s": ips}))
    words = " ".join(term.file.getvalue().split())
    assert "train images/s by data path, median of 1 round " in words
    assert "trainer │ 1,100 │ 0.550 │" in words and "dataloader │ 500 │ 0.250 │" in words


@pytest.mark.parametrize("found", ["[]", "{}", '{"arch": "gap_cnn"}', '"gap_cnn"'])
def test_a_file_of_another_shape_where_the_measurement_goes_is_named_not_a_traceback(
    found: str,
    tmp_path: Path,
    synthetic_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A list, a string, an object without the combination: one line naming the file, which
    is left as it was (it was a traceback, AttributeError or KeyError)."""
    monkeypatch.setattr("benchmark.commands.datapath.dry_runs", lambda *a: None)
    path = cpu_file(tmp_path, "datapath", "fp32", ".json")
    path.parent.mkdir(parents=True)
    path.write_text(found)
    args = ["--device", "cpu", "--precision", "fp32"]
    args += ["--data-dir", str(synthetic_root), "--results-dir", str(tmp_path)]
    assert main(["datapath", *args]) == 1
    assert f"{path}: not a datapath measurement; move it away" in one_line(capsys.readouterr().err)
    assert path.read_text() == found


def test_a_timing_waits_for_the_device_before_its_clock_starts_and_after_the_last_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CUDA runs asynchronously: a clock started with work still queued, or read before the
    last step has run, times the launches, not the steps."""
    from benchmark import datapath

    calls, clock = [], iter([10.0, 12.5])
    monkeypatch.setattr(
        datapath, "time", SimpleNamespace(perf_counter=lambda: calls.append("clock") or next(clock))
    )
    ex = SimpleNamespace(synchronize=lambda: calls.append("sync"))
    assert datapath.timed_seconds(lambda: calls.append("step"), 2, ex) == 2.5
    assert calls == ["sync", "clock", "step", "step", "sync", "clock"]


def test_the_dataloader_way_loads_with_the_workers_and_batch_size_asked_for(
    synthetic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--num-workers`` is recorded beside the figure: the loader must have used it."""
    from benchmark.config import TrainConfig
    from benchmark.datapath import dataloader_step

    made = []

    class Loader:
        def __init__(self, dataset: object, **kwargs: object) -> None:
            made.append(kwargs)

        def __iter__(self) -> Iterator[object]:
            return iter(())

    monkeypatch.setattr(torch.utils.data, "DataLoader", Loader)
    cfg, ex = hardware.decide(TrainConfig(batch_size=16, **PLAIN_CPU))
    dataloader_step(cfg, synthetic.train.subset(64), 3, ex)
    assert [(kw["num_workers"], kw["batch_size"]) for kw in made] == [(3, 16)]


def test_the_markdown_gives_each_paths_figure_in_its_own_row_and_the_warmup_as_run() -> None:
    from benchmark.datapath import markdown

    report = {"arch": "gap_cnn", "fusion": "concat", "device": "cpu: a CPU", "torch": "2.x"}
    report |= {"commit": "abc1234", "batch_size": 64, "steps": 40, "warmup": 5, "rounds": 4}
    report |= {"precision": "fp32", "channels_last": False, "num_workers": 2}
    report["images_per_s"] = {"trainer": 3000.0, "prebuilt": 4000.0, "dataloader": 1000.0}
    report["ratios"] = {"trainer_over_prebuilt": 0.75, "trainer_over_dataloader": 3.0}
    md = markdown(report)
    assert "| trainer (device-resident, `benchmark.trainer.train`) | 3,000 |" in md
    assert "| one pre-built batch (no data path: the ceiling, up to noise) | 4,000 |" in md
    assert "| per-item Dataset + DataLoader | 1,000 |" in md
    assert "40 timed steps each after 5 warm-up steps, interleaved in 4 rounds" in md
    assert "- trainer / prebuilt: 0.750\n- trainer / dataloader: 3.00\n" in md
