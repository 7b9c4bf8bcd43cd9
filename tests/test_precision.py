"""``auto`` precision and layout on a CPU: the probe, its cache, the choice a run records, and
the report keeping the precisions apart."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import DEVICE, cpu_file, make_run, report_markdown

from benchmark import hardware, report, rundir, runs
from benchmark.config import TrainConfig

CPU = torch.device("cpu")
NAMES = ("fp32", "fp32+channels_last", "bf16", "bf16+channels_last")


def figures(*images_per_s: float) -> dict[str, float]:
    """Probe figures in ``NAMES`` order (two values: a CPU without bf16)."""
    return dict(zip(NAMES, images_per_s, strict=False))


BF16_WINS = figures(1000, 1050, 1500, 2000)


@pytest.mark.parametrize(
    ("measured", "precision", "chosen"),
    [
        (BF16_WINS, "auto", ("bf16", True)),
        (figures(1000, 1080, 1090, 1050), "auto", ("fp32", False)),  # all within 10%: no flip
        (figures(1000, 1200), "auto", ("fp32", True)),  # no bf16 kernels
        (figures(1000, 1100), "auto", ("fp32", True)),  # 10% faster: "at least 10%"
        (figures(1000, 900, 800, 700), "auto", ("fp32", False)),
        (BF16_WINS, "fp32", ("fp32", False)),  # precision set: only its layouts compete
        (figures(1000, 1500, 1500, 2000), "fp32", ("fp32", True)),
        (BF16_WINS, "bf16", ("bf16", True)),
        (figures(1000, 1200), "bf16", ("bf16", False)),  # bf16 set but not measured
    ],
)
def test_choose(measured: dict[str, float], precision: str, chosen: tuple[str, bool]) -> None:
    assert hardware.choose(measured, precision) == chosen


def test_probe_measures_every_variant_and_leaves_the_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    measured, spread = hardware.probe_cpu(rounds=2)
    assert spread == 1.0  # one timed pass per variant: nothing to disagree
    assert torch.equal(before, torch.get_rng_state())  # seeded runs never see the probe
    assert list(measured) == [hardware.variant_name(*v) for v in hardware.cpu_variants()]
    assert all(v > 0 for v in measured.values())
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert set(measured) == {"fp32", "fp32+channels_last"}


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """A fresh cache and a probe that counts its calls and measures ``BF16_WINS``."""
    calls: list[int] = []

    def probe(rounds: int = 0) -> tuple[dict[str, float], float]:
        calls.append(1)
        return dict(BF16_WINS), 1.0

    monkeypatch.setenv("DIGITSUM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hardware, "_chosen", {})
    monkeypatch.setattr(hardware, "probe_cpu", probe)
    return calls


def test_the_choice_is_measured_once_per_machine(fake_probe: list[int]) -> None:
    record = hardware.cpu_choice()
    assert (record["precision"], record["channels_last"]) == ("bf16", True)
    assert record["images_per_s"] == BF16_WINS and record["machine"] == hardware.machine_key()
    on_disk = json.loads(hardware.cache_path().read_text())
    assert on_disk == {hardware.machine_key(): record}
    hardware._chosen.clear()  # another process: reads the file, measures nothing
    assert hardware.cpu_choice() == record and len(fake_probe) == 1


def test_a_cpu_of_the_same_name_without_native_bf16_probes_for_itself(
    fake_probe: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two VMs named alike, one with native bf16: a cache they share keeps a record for each."""
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    native = hardware.cpu_choice()
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert hardware.cpu_choice()["machine"] != native["machine"] and len(fake_probe) == 2
    assert len(json.loads(hardware.cache_path().read_text())) == 2


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"KEY": {"precision": "fp16"}}'])
def test_a_damaged_cache_is_measured_over(fake_probe: list[int], damage: str) -> None:
    path = hardware.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(damage.replace("KEY", hardware.machine_key()))
    assert hardware.cpu_choice()["precision"] == "bf16" and len(fake_probe) == 1
    assert json.loads(path.read_text())[hardware.machine_key()]["precision"] == "bf16"


def test_an_unwritable_cache_still_chooses(
    fake_probe: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("DIGITSUM_CACHE", str(blocker / "cache"))  # under a file: no directory
    assert hardware.cpu_choice()["precision"] == "bf16"
    assert hardware.cpu_choice()["precision"] == "bf16" and len(fake_probe) == 1  # in-process


def test_a_cache_write_that_fails_leaves_no_temporary_behind(
    fake_probe: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cache is written as every file is (``files.write_json``): a write that fails (a
    full disk at the rename, here) removes its temporary; the hand-written one left it."""
    import errno
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("DIGITSUM_CACHE", str(cache))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert hardware.cpu_choice()["precision"] == "bf16"
    assert [p.name for p in cache.iterdir()] == ["cpu-probe.lock"]  # the probe's, kept


def test_resolution_follows_the_probe_and_the_flags(fake_probe: list[int]) -> None:
    assert hardware.resolve_precision("auto", CPU) == "bf16"
    assert hardware.resolve_channels_last(None, CPU) is True
    assert hardware.resolve_precision("fp32", CPU) == "fp32"
    assert hardware.resolve_channels_last(None, CPU, "fp32") is False  # 1050 < 1.1 x 1000
    assert hardware.resolve_channels_last(False, CPU) is False
    cuda = torch.device("cuda")  # the CUDA rule needs no GPU to check, and no probe
    assert hardware.resolve_precision("auto", cuda) == "bf16"
    assert hardware.resolve_channels_last(None, cuda) is True
    resolved = hardware.resolve_execution(TrainConfig(), CPU)
    assert (resolved.precision, resolved.channels_last) == ("bf16", True)
    assert resolved.auto_probe == hardware.cpu_choice()
    assert resolved.config_hash() == TrainConfig().config_hash()  # what is learned is the same
    set_both = hardware.resolve_execution(TrainConfig(precision="fp32", channels_last=False), CPU)
    assert set_both.auto_probe is None
    assert hardware.resolve_execution(resolved, CPU) == resolved  # idempotent


def test_a_run_records_the_choice_and_its_resume_keeps_it(
    fake_probe: list[int], small_data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.json holds the resolved precision and layout with the probe's figures; metrics.json
    the precision and layout used; a resume after the machine's choice changed keeps the run's."""
    cfg = TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1, batch_size=64)
    cfg = replace(cfg, eval_batch_size=100)  # the smallest model: bf16 may be emulated here
    run_dir = runs.start_run(hardware.decide(cfg)[0], tmp_path)
    saved = json.loads((run_dir / rundir.CONFIG).read_text())
    assert (saved["precision"], saved["channels_last"]) == ("bf16", True)
    assert saved["auto_probe"]["images_per_s"] == BF16_WINS
    # the cache now says fp32 (another machine, a new probe): the run keeps what it started with
    monkeypatch.setattr(hardware, "_chosen", {})
    monkeypatch.setattr(hardware, "probe_cpu", lambda rounds=0: ({"fp32": 1.0, "bf16": 0.5}, 1.0))
    hardware.cache_path().unlink()
    assert hardware.cpu_choice()["precision"] == "fp32"
    resumed, ex = hardware.decide(runs.load_config(run_dir))
    metrics = runs.execute(resumed, small_data, run_dir, ex)
    assert (metrics["precision"], metrics["channels_last"]) == ("bf16", True)
    assert metrics["config"]["auto_probe"]["images_per_s"] == BF16_WINS
    cfg, ex = hardware.decide(cfg)
    fresh = runs.execute(cfg, small_data, runs.start_run(cfg, tmp_path), ex)
    assert (fresh["precision"], fresh["channels_last"]) == ("fp32", False)


def test_cli_run_says_what_auto_chose(
    fake_probe: list[int], small_data: Any, tmp_path: Path, capsys: Any
) -> None:
    from benchmark.cli import main

    small = ["--arch", "small_cnn", "--fusion", "late_sum", "--epochs", "1"]
    assert main(["run", *small, "--results-dir", str(tmp_path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "auto on this cpu: bf16, channels_last" in out and "bf16+channels_last 2,000" in out
    assert main(["run", *small, "--precision", "fp32", "--no-channels-last",
                 "--results-dir", str(tmp_path)]) == 0  # fmt: skip
    out = " ".join(capsys.readouterr().out.split())
    machine = hardware.machine_name(torch.device("cpu"))  # its CPU's features named
    assert "auto on this cpu" not in out and f"on {machine}, fp32" in out


def test_a_grid_trained_two_ways_names_each_runs_way_in_its_progress(
    small_data: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """A grid sweeping precisions (or devices) trains its runs different ways, so each run's
    progress line names its machine and way; a grid trained one way leaves that out."""
    from benchmark import progress
    from benchmark.cli import main

    labels = []
    train = progress.RunsProgress.train
    monkeypatch.setattr(progress.RunsProgress, "train",
                        lambda self, *a: labels.append(a[-1]) or train(self, *a))  # fmt: skip
    small = ["--arch", "small_cnn", "--fusion", "late_sum", "--epochs", "1", "--no-channels-last",
             "--batch-size", "256"]  # fmt: skip
    assert main(["run", *small, "--precision", "fp32,bf16", "--results-dir", str(tmp_path)]) == 0
    machine = hardware.machine_name(torch.device("cpu"))
    assert [label.split(" (", 1)[1] for label in labels] == [
        f"{machine}, fp32)",
        f"{machine}, bf16)",
    ]
    labels.clear()
    assert main(["run", *small, "--precision", "fp32", "--seeds", "0,1",
                 "--results-dir", str(tmp_path)]) == 0  # fmt: skip
    assert len(labels) == 2 and not any(machine in label for label in labels), labels


def test_a_probe_of_a_cpu_of_the_same_name_without_native_bf16_is_not_this_ones(
    monkeypatch: Any,
) -> None:
    """VMs name CPUs with and without AVX-512 BF16 alike: a config's probe from the other kind
    is not "auto on this cpu", and its bf16 figure (emulated, or native) times nothing here."""
    from benchmark.progress import probed_here

    here = "cpu: AMD EPYC (2 threads) | torch 2.5.0 | native bf16"
    monkeypatch.setattr(hardware, "machine_key", lambda: here)
    assert probed_here({"machine": here.replace("torch 2.5.0", "torch 2.4.1")})
    assert not probed_here({"machine": here.replace("native bf16", "no native bf16")})
    assert probed_here({"machine": "cpu: AMD EPYC (2 threads) | torch 2.4.1"})  # said neither
    assert not probed_here({"machine": here.replace("AMD EPYC", "Intel Xeon")})


def test_a_config_from_another_machine_is_not_called_this_cpus_choice(
    fake_probe: list[int], small_data: Any, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    """A config.json written on another CPU carries that CPU's probe: ``run --config`` says the
    config chose, not "auto on this cpu", and estimates nothing from the other CPU's figures;
    bf16 where it is emulated gets a warning."""
    from benchmark.cli import main

    small = TrainConfig(arch="small_cnn", fusion="late_sum", epochs=1, batch_size=64)
    cfg = hardware.decide(replace(small, eval_batch_size=100))[0]
    elsewhere = {**cfg.auto_probe, "machine": "cpu: Far Away CPU (2 threads) | torch 0"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**cfg.to_dict(), "auto_probe": elsewhere}))
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    hardware.cache_path().unlink()  # this CPU has no figure of its own
    assert main(["run", "--config", str(path), "--results-dir", str(tmp_path / "r")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "auto on this cpu" not in out
    assert "bf16, channels_last: as the config says (chosen by the CPU probe of Far Away" in out
    assert "time: no estimate" in out  # the far CPU's figure is not this one's
    assert "bf16 on this CPU is emulated" in out
    assert main(["run", "--config", str(path), "--precision", "fp32",
                 "--results-dir", str(tmp_path / "r")]) == 0  # fmt: skip
    assert "emulated" not in capsys.readouterr().out


def test_bench_and_datapath_measure_what_auto_chose(
    fake_probe: list[int], tmp_path: Path, synthetic_root: Path
) -> None:
    from benchmark.cli import main

    tiny = ["--device", "cpu", "--infer-batch-size", "8", "--batch-size", "8", "--iters", "1"]
    assert main(["bench", "--arch", "small_cnn", "--fusion", "concat", *tiny,
                 "--warmup-calls", "0", "--results-dir", str(tmp_path)]) == 0  # fmt: skip
    with cpu_file(tmp_path, "bench", "bf16", ".csv").open(newline="") as fh:
        row = next(csv.DictReader(fh))
    measured = ("precision", "batch_size", "train_batch_size", "channels_last")
    assert [row[k] for k in measured] == ["bf16", "8", "8", "True"]
    args = ["--steps", "2", "--rounds", "1", "--warmup-steps", "0", "--batch-size", "16"]
    argv = ["datapath", *args, "--device", "cpu", "--data-dir", str(synthetic_root)]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 0
    written = cpu_file(tmp_path, "datapath", "bf16", ".json")
    assert json.loads(written.read_text())["precision"] == "bf16"


def twin_runs(
    root: Path,
    precision: str,
    errors: tuple[float, ...],
    speed: float,
    fusion: str = "concat",
    device: str = DEVICE,
) -> None:
    """Default gap_cnn x ``fusion`` runs in ``precision`` on ``device`` with the given test sum
    errors (%)."""
    for seed, err in enumerate(errors):
        run_dir = make_run(root, f"{fusion}-{precision}-{seed}", fusion=fusion, seed=seed,
                           sum_acc=1 - err / 100, val_curve=(0.9,))  # fmt: skip
        found = json.loads((run_dir / "metrics.json").read_text())
        found.update(precision=precision, channels_last=precision == "bf16", device=device)
        found["train_images_per_s"] = speed
        (run_dir / "metrics.json").write_text(json.dumps(found))


def test_report_keeps_precisions_apart_and_compares_them(tmp_path: Path) -> None:
    """bf16 twins of main-comparison groups leave the main table for a precision section that
    sets their error beside the fp32 group's, with Welch's test and the speed-up."""
    runs_dir = tmp_path / "runs"
    twin_runs(runs_dir, "fp32", (1.0, 1.2, 1.4), 1000.0)
    twin_runs(runs_dir, "bf16", (1.1, 1.3, 1.5), 2500.0)
    inputs = report.load_inputs(str(runs_dir / "*"), str(tmp_path / "none"))
    summary, text = report_markdown(inputs)
    assert sorted(summary["precision"]) == ["bf16", "fp32"]  # a group each, never pooled
    by_precision = summary.set_index("precision")
    assert by_precision.loc["fp32", "section"] == "main" and by_precision.loc["fp32", "n"] == 3
    assert by_precision.loc["bf16", "section"] == "precision"
    assert by_precision.loc["fp32", "label"] == "gap_cnn x concat"  # main labels unchanged
    assert by_precision.loc["bf16", "label"] == "gap_cnn x concat (precision bf16)"
    main = text[text.index("## Main comparison") : text.index("## Precision")]
    assert "| 1 | gap_cnn x concat |" in main and "| 2 |" not in main
    section = text[text.index("## Precision: bf16 vs fp32") :]
    # 1.2 vs 1.3 % with s = 0.2 on both sides: t = 0.61, df = 4, p = 0.57; speed 2.5x
    assert "| gap_cnn x concat | 3/3 | 1.20 ± 0.50 | 1.30 ± 0.50 | +0.10 | 0.573 |" in section
    assert "no difference detected | 1,000 | 2,500 | 2.50 |" in section
    assert "no difference in 1" in section and "2.50x fp32's" in section


def test_a_twin_timed_on_another_device_gets_no_speed_up(tmp_path: Path) -> None:
    """Throughputs of two devices are not a speed-up: such a pair's cell is "-", the line
    under the heading names only the devices of pairs compared, and without any such pair it
    gives no throughput at all; a one-seed pair is untested, and each side's seeds counted."""
    from benchmark.report import precision

    runs_dir = tmp_path / "runs"
    twin_runs(runs_dir, "fp32", (1.0, 1.2, 1.4), 1000.0)
    twin_runs(runs_dir, "bf16", (1.1, 1.3), 2500.0)
    gpu = "cuda: NVIDIA H100 80GB HBM3"
    twin_runs(runs_dir, "fp32", (1.0,), 1000.0, fusion="late_sum", device=gpu)
    twin_runs(runs_dir, "bf16", (1.0,), 3000.0, fusion="late_sum")
    inputs = report.load_inputs(str(runs_dir / "*"), str(tmp_path / "none"))
    summary, text = report_markdown(inputs)
    section = text[text.index("## Precision: bf16 vs fp32") :]
    assert f"2.50x fp32's (median; 2.50-2.50x) on the same kind of device ({DEVICE})." in section
    assert "| gap_cnn x concat | 3/2 |" in section
    assert "| gap_cnn x late_sum | 1/1 | 1.00 | 1.00 | +0.00 | - | - | 1,000 | 3,000 | - |" in (
        section
    )
    apart = precision.precision_section(summary[summary["fusion"] == "late_sum"], inputs.runs)
    assert apart.startswith("## Precision: bf16 vs fp32") and "Training throughput" not in apart


def test_older_runs_without_a_recorded_precision_read_the_old_rule(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "cpu-run")
    gpu = make_run(tmp_path / "runs", "gpu-run", seed=1)
    found = json.loads((gpu / "metrics.json").read_text())
    found["device"] = "NVIDIA H100 80GB HBM3"
    (gpu / "metrics.json").write_text(json.dumps(found))
    set_run = make_run(tmp_path / "runs", "set-run", seed=2)
    found = json.loads((set_run / "metrics.json").read_text())
    found["config"]["precision"] = "bf16"
    (set_run / "metrics.json").write_text(json.dumps(found))
    frame = report.load_inputs(str(tmp_path / "runs" / "*"), str(tmp_path / "none")).runs
    assert dict(zip(frame["run"], frame["precision"], strict=True)) == {
        "cpu-run": "fp32", "gpu-run": "bf16", "set-run": "bf16",
    }  # fmt: skip


def test_a_cached_record_missing_a_field_is_measured_over(fake_probe: list[int]) -> None:
    """A record written by an older version or edited by hand is never half-used."""
    record = hardware.cpu_choice()
    del record["probed"]
    hardware.write_cache(hardware.cache_path(), {hardware.machine_key(): record})
    hardware._chosen.clear()
    again = hardware.cpu_choice()
    assert len(fake_probe) == 2 and isinstance(again["probed"], str)
    assert hardware.valid_record(again) and not hardware.valid_record(record)


def test_timings_name_a_machine_shared_by_several_processes() -> None:
    """A run of ``compare --jobs N`` names its device with the N processes that shared it, so
    the report never pools its timings with those of a machine that trained alone."""
    cpu = hardware.Execution(device=torch.device("cpu"))
    alone = cpu.timing_name()
    assert alone == hardware.device_name(torch.device("cpu"))
    shared = hardware.Execution(device=torch.device("cpu"), sharing=12).timing_name()
    assert shared == alone + ", shared by 12 processes"
    assert rundir.run_precision({"device": shared}) == rundir.run_precision({"device": alone})


@pytest.mark.parametrize(
    ("precision", "native", "warned"),
    [("bf16", False, True), ("bf16", True, False), ("fp32", False, False)],
)
def test_emulated_bf16_is_warned_of_once(
    precision: str, native: bool, warned: bool, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notice ``run``, ``tune`` and ``compare`` give (``say_emulated``) when their bf16 is
    emulated on this CPU: one line, however many runs share the execution, none otherwise."""
    from benchmark.progress import say_emulated

    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    say_emulated([hardware.Execution(device=CPU, precision=precision)] * 3)
    assert capsys.readouterr().out.count("bf16 on this CPU is emulated") == int(warned)


def test_the_precision_section_counts_each_verdict_and_gives_the_median_speed_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three twins: one bf16 error told higher, one not told apart, one untestable; speed-ups
    1.0, 1.1 and 4.0, whose median (1.10x) is not their mean (2.03x)."""
    import pandas as pd

    from benchmark.report import precision

    pairs = pd.DataFrame(
        {
            "label_main": ["a", "b", "c"],
            "precision_main": "fp32",
            "precision_other": "bf16",
            "n_main": 3,
            "n_other": 3,
            "err_main": [1.1, 1.0, 1.0],
            "ci_main": 0.1,
            "err_other": [2.1, 0.9, 1.2],
            "ci_other": 0.1,
            "p": [0.0003, 0.5, float("nan")],
            "train_images_per_s_mean_main": 1000.0,
            "train_images_per_s_mean_other": [1000.0, 1100.0, 4000.0],
            "speedup": [1.0, 1.1, 4.0],
            "timing_device_main": "cpu: x",
        }
    )
    monkeypatch.setattr(precision, "precision_pairs", lambda summary, runs: pairs)
    text = " ".join(precision.precision_section(pd.DataFrame({"x": [1]}), pd.DataFrame()).split())
    said = "a higher one in 1 and no difference in 1 (1 untested: one seed on a side)."
    assert f"finds a lower bf16 error in 0, {said}" in text
    assert "Training throughput was 1.10x fp32's (median; 1.00-4.00x)" in text


def test_auto_device_is_cuda_where_present_and_a_missing_cuda_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hardware.resolve_device("auto") == torch.device("cuda")
    assert hardware.resolve_device("cuda") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.resolve_device("auto") == CPU
    with pytest.raises(ValueError, match="CUDA is not available"):
        hardware.resolve_device("cuda")


def test_an_execution_autocasts_lays_out_names_and_compiles_as_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hardware, "compile_backend", lambda device: f"backend for {device}")
    monkeypatch.setattr(torch, "compile", lambda fn, backend: (fn, backend))  # (imports take 9 s)
    plain = hardware.Execution(CPU)
    bf16 = hardware.Execution(CPU, "bf16", channels_last=True, compile=True)
    with bf16.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with plain.autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert bf16.memory_format == torch.channels_last
    assert plain.memory_format == torch.contiguous_format
    assert (bf16.describe(), plain.describe()) == ("bf16, channels_last, compiled", "fp32")

    def fn(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    assert plain.compiled(fn) is fn and bf16.compiled(fn) == (fn, "backend for cpu")


def test_decide_sets_the_thread_count_before_the_probe_and_hands_on_every_setting(
    fake_probe: list[int],
) -> None:
    """The probe's record is per thread count: ``--threads N`` is set before it is asked for, so
    the choice is the one measured at N threads; the execution keeps layout, compile, threads."""
    before = torch.get_num_threads()
    threads = before + 1
    try:
        cfg, ex = hardware.decide(TrainConfig(device="cpu", threads=threads, compile=True))
        assert f"({threads} threads)" in cfg.auto_probe["machine"]
        decided = (ex.precision, ex.channels_last, ex.compile, ex.threads)
        assert decided == ("bf16", True, True, threads)
        torch.set_num_threads(before)
        ex.activate()
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_settle_writes_the_decision_in_and_keeps_a_configs_own_probe() -> None:
    kept = {"machine": "elsewhere"}
    cfg = TrainConfig(auto_probe=kept)
    settled = hardware.Execution(CPU, "bf16", channels_last=True).settle(cfg)
    assert (settled.precision, settled.channels_last, settled.auto_probe) == ("bf16", True, kept)


def test_bf16_is_measured_only_where_its_kernels_are_native(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert hardware.cpu_variants() == [("fp32", False), ("fp32", True)]
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    assert [hardware.variant_name(*v) for v in hardware.cpu_variants()] == list(NAMES)


@pytest.mark.parametrize(
    "damage",
    [
        {"precision": "fp16"},  # every field there, of its type: a value no run computes in
        {"images_per_s": {}},
        {"images_per_s": {"fp32": True}},
        {"channels_last": "yes"},
        {"spread": None},
    ],
)
def test_a_cached_record_of_a_bad_value_is_not_valid(damage: dict[str, Any]) -> None:
    record = hardware.probe_record(dict(BF16_WINS), 1.0, "key")
    assert hardware.valid_record(record)
    assert not hardware.valid_record(record | damage)


def test_the_probe_is_asked_for_each_setting_left_to_it_on_a_cpu_only(
    fake_probe: list[int],
) -> None:
    """A set precision with ``auto`` layout: the layout is the probe's, and its record goes into
    config.json; on CUDA nothing is left to the probe."""
    layout_left = hardware.resolve_execution(TrainConfig(precision="fp32"), CPU)
    assert layout_left.auto_probe == hardware.cpu_choice()
    assert hardware.auto_record("bf16", None, CPU) == hardware.cpu_choice()
    assert hardware.auto_record("auto", None, torch.device("cuda")) is None


def test_synchronize_waits_for_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    hardware.synchronize(CPU)
    hardware.Execution(torch.device("cuda")).synchronize()
    assert waited == [torch.device("cuda")]


def test_a_gpu_is_named_without_the_cpus_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100")
    monkeypatch.setattr(hardware, "cpu_features", lambda: "avx2")
    assert hardware.machine_name(torch.device("cuda")) == "NVIDIA H100"
    assert hardware.machine_name(CPU) == f"{hardware.device_name(CPU)} with avx2"


def test_a_shared_machines_name_keeps_its_sharing_apart_from_its_cpu_features() -> None:
    """A timing device's parts each come back whole: the features sit on the machine, before
    how many processes shared it, so runs pool by machine, by features and by sharing alike."""
    from benchmark.machines import features_of, machine_of, with_features, without_features

    shared = "cpu: AMD EPYC (2 threads), shared by 2 processes"
    named = with_features(shared, "avx2 avx512")
    assert named == "cpu: AMD EPYC (2 threads) with avx2 avx512, shared by 2 processes"
    assert with_features(shared, "") == shared  # features not recorded: the name as it was
    assert without_features(named) == shared
    assert features_of(named) == "avx2 avx512"
    assert features_of(shared) == ""
    assert machine_of(named) == machine_of(shared) == "cpu: AMD EPYC (2 threads)"
