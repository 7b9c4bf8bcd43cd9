"""``python -m benchmark bench``: full rows appended atomically; failures become error rows."""

from __future__ import annotations

import csv
import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import PLAIN_CPU, cpu_file, one_line, write_export

from architectures import count_params, create_model
from benchmark import benchfile, hardware
from benchmark.benchfile import COLUMNS, EARLIER, FIGURES, results_path
from benchmark.cli import main

# small_cnn (width 16, 128 features) x concat (hidden 128), by hand: conv 1->16 at 28x28,
# conv 16->32 at 14x14, fc 32*7*7->128, fusion MLP (128+10)->128, heads 128->10 and 128->19.
SMALL_CNN_MACS = 1 * 16 * 9 * 28 * 28 + 16 * 32 * 9 * 14 * 14 + 32 * 7 * 7 * 128
CONCAT_MACS = 138 * 128 + 128 * 10 + 128 * 19
SMALL_CNN_CONCAT_MACS = SMALL_CNN_MACS + CONCAT_MACS
TINY = ["--device", "cpu", "--precision", "fp32", "--no-channels-last"]  # auto: test_precision
TINY += ["--infer-batch-size", "8", "--batch-size", "8"]
TINY += ["--warmup-calls", "1", "--iters", "2"]


def bench(tmp_path: Path, *args: str) -> int:
    return main(["bench", *args, *TINY, "--results-dir", str(tmp_path)])


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "cpu-intel-xeon-platinum-8480-bf16.csv"),
        ("Intel(R) Xeon(R) Processor", "cpu-intel-xeon-processor-bf16.csv"),
        ("AMD EPYC", "cpu-amd-epyc-bf16.csv"),
        ("AMD EPYC 7763 64-Core Processor", "cpu-amd-epyc-7763-64-core-processor-bf16.csv"),
        ("", "cpu-bf16.csv"),
    ],
)
def test_a_cpu_results_file_is_named_after_the_cpu_model(
    model: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two machines sharing a results folder append to files of their own (a Xeon's rows used to
    land in the file of an AMD EPYC, both ``cpu-bf16.csv``)."""
    import torch

    monkeypatch.setattr(hardware, "cpu_model", lambda: model)
    path = results_path(tmp_path, "bench", torch.device("cpu"), "bf16", ".csv")
    assert path == tmp_path / "bench" / name


@pytest.mark.parametrize(
    ("level", "native", "flags", "features"),
    [
        ("AVX2", False, "fpu sse avx2", "avx2"),
        ("AVX512", True, "avx512f avx512_bf16", "avx512 bf16"),
        ("AVX512", True, "avx512_bf16 amx_bf16 amx_tile amx_int8", "avx512 bf16 amx"),
        ("DEFAULT", False, None, "default"),  # no /proc/cpuinfo
    ],
)
def test_cpu_features_tell_apart_cpus_of_one_name(
    level: str, native: bool, flags: str | None, features: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two ``AMD EPYC`` VMs (one with AVX-512 BF16) name themselves alike: the features
    column is what their bench rows differ in."""
    import torch

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: level)
    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    monkeypatch.setattr(hardware, "cpuinfo", {"flags": flags}.get)
    assert hardware.cpu_features() == features


def test_cpuinfo_reads_the_kernels_fields() -> None:
    """This machine's own: the model name is cpu_model's, and the flags hold the vector level
    torch computes with."""
    import torch

    flags = hardware.cpuinfo("flags")
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags here")
    assert hardware.cpu_model() == hardware.cpuinfo("model name")
    assert hardware.cpuinfo("no such field") is None
    level = torch.backends.cpu.get_cpu_capability().lower()
    flag = {"avx2": "avx2", "avx512": "avx512f"}.get(level)
    assert flag is None or flag in flags.split()


def test_bench_one_pair_on_cpu_appends_a_full_row(tmp_path: Path, capsys) -> None:
    csv_path = cpu_file(tmp_path, "bench", "fp32", ".csv")
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 0
    df = pd.read_csv(csv_path)
    machine = f"{df['device'][0]} with {hardware.cpu_features()}"  # the first line as the table
    assert f"bench: 1 configuration on {machine}, fp32\n" in capsys.readouterr().out
    assert tuple(df.columns) == COLUMNS
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["arch"], row["fusion"], row["device_type"]) == ("small_cnn", "concat", "cpu")
    assert row["device"].startswith("cpu")
    assert row["cpu_features"] == hardware.cpu_features()
    assert row["precision"] == "fp32"
    assert (row["batch_size"], row["train_batch_size"]) == (8, 8)
    assert not row["channels_last"] and not row["compile"]
    assert row["params"] == count_params(create_model("small_cnn", "concat"))
    assert row["macs_per_image"] == SMALL_CNN_CONCAT_MACS
    for name in ("infer_images_per_s", "latency_ms_b1", "train_images_per_s"):
        assert row[name] > 0, name
    assert math.isnan(row["peak_mem_mb"])  # not measured on the CPU (see the module docstring)
    assert row["timing_spread"] >= 1  # slowest over fastest timed call
    assert math.isnan(row["compile_seconds"]) and math.isnan(row["train_compile_seconds"])
    assert pd.isna(row["error"])
    cells = next(csv.DictReader(csv_path.open()))  # not measured: blank, not the text "nan"
    assert cells["peak_mem_mb"] == cells["compile_seconds"] == cells["train_compile_seconds"] == ""
    assert row["torch"] and row["commit"]

    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 0
    df = pd.read_csv(csv_path)
    assert len(df) == 2
    assert csv_path.read_text().count("arch,fusion,") == 1  # one header
    assert (df["macs_per_image"] == SMALL_CNN_CONCAT_MACS).all()
    assert not list(csv_path.parent.glob(".*.tmp"))  # no leftover of the atomic write


def test_failing_configuration_writes_an_error_row_and_the_sweep_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    impossible = ["--infer-batch-size", str(10**12)]  # ~3 PB of images: the allocation fails
    args = ["--arch", "small_cnn", "--fusion", "concat,late_sum", *TINY[:5]]
    rc = main(["bench", *args, *impossible, "--iters", "1", "--results-dir", str(tmp_path)])
    assert rc == 1  # every configuration failed: nothing was measured (it said 0, as if done)
    csv = cpu_file(tmp_path, "bench", "fp32", ".csv")
    # the file named whole on one line, however long its path (a table caption broke it)
    assert f"appended to {csv}; 2 failed (see its error column)\n" in capsys.readouterr().out
    df = pd.read_csv(csv)
    assert list(df["fusion"]) == ["concat", "late_sum"]
    for _, row in df.iterrows():
        assert row["error"].startswith("RuntimeError: ")
        assert "\n" not in row["error"]
        assert row[list(FIGURES)].isna().all()
        assert row["batch_size"] == 10**12


@pytest.mark.parametrize(
    "args",
    [
        ["--infer-batch-size", "0"],
        ["--iters", "0"],
        ["--warmup-calls", "-1"],
        ["--batch-size", "0"],
        ["--arch", "no_such_encoder"],
        ["--compile-ab", "1"],
        ["--compile-ab", "3", "--compile"],
    ],
)
def test_bad_input_is_a_usage_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(A measurement reached fails at once: a refusal dropped had gone on to measure.)"""
    monkeypatch.setattr("benchmark.bench.bench_rows", lambda *a: pytest.fail("measured"))
    rc = main(["bench", "--device", "cpu", *args, "--results-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "bench").exists()


def test_a_csv_with_other_columns_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = cpu_file(tmp_path, "bench", "fp32", ".csv")
    csv_path.parent.mkdir()
    csv_path.write_text("arch,fusion,something\nx,y,1\n")
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 2
    assert "other columns" in capsys.readouterr().err
    assert csv_path.read_text() == "arch,fusion,something\nx,y,1\n"


def with_model_args(text: str, cell: str) -> bytes:
    """The CSV with its first row's model_args cell set to ``cell`` (a report stopped on it)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    rows[1][rows[0].index("model_args")] = cell
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda text: text.encode()[:-1] + b"\xff\xfe\n", "not a bench CSV (not UTF-8 text)"),
        (lambda text: text.encode()[:-5], "its last row is cut off (no line end)"),
        (lambda text: (text + "a,b,c\n").encode(), "row 3 has 3 cells where the header has"),
        (lambda text: (text + text).encode(), "row 3 repeats the header"),  # two files joined
        (lambda text: with_model_args(text, "[1, 2]"), "row 2's model_args is '[1, 2]', not a"),
        (lambda text: with_model_args(text, "{width:8}"), "model_args is '{width:8}', not a JSON"),
    ],
    ids=["binary", "cut-off", "short-row", "header-again", "args-list", "args-not-json"],
)
def test_a_damaged_csv_is_named_before_anything_is_measured(
    damage, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Appending to a file cut off mid-row glued the new row onto the broken one, and the report
    then dropped the whole file; now ``bench`` names it (exit 1) and leaves it as it was."""
    from benchmark import bench as measure

    csv_path = cpu_file(tmp_path, "bench", "fp32", ".csv")
    csv_path.parent.mkdir()
    benchfile.append_row(csv_path, {"arch": "gap_cnn", "fusion": "concat", "device": "cpu"})
    damaged = damage(csv_path.read_text())
    csv_path.write_bytes(damaged)
    monkeypatch.setattr(measure, "bench_rows", lambda *a, **k: pytest.fail("measured"))
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 1
    line = one_line(capsys.readouterr().err)
    assert f"error: {csv_path}: " in line and said in line
    assert csv_path.read_bytes() == damaged


@pytest.mark.parametrize(
    "old",
    EARLIER,
    ids=[
        "no train compile",
        "no A/B",
        "no cpu features",
        "no model args",
        "no tuned_from",
        "no timing spread",
    ],
)
def test_a_csv_of_an_earlier_layout_is_upgraded_as_a_row_is_appended(
    old: tuple[str, ...], tmp_path: Path
) -> None:
    """A file written before the later columns keeps its rows, their new cells blank."""
    csv_path = cpu_file(tmp_path, "bench", "fp32", ".csv")
    csv_path.parent.mkdir()
    cells = dict.fromkeys(old, "") | {"arch": "gap_cnn", "fusion": "concat"}
    cells["compile_seconds"] = "12.5"
    csv_path.write_text(",".join(old) + "\n" + ",".join(cells[c] for c in old) + "\n")
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 0
    df = pd.read_csv(csv_path)
    assert tuple(df.columns) == COLUMNS and list(df["arch"]) == ["gap_cnn", "small_cnn"]
    assert df["compile_seconds"][0] == 12.5 and math.isnan(df["compile_seconds"][1])  # eager
    assert df["train_compile_seconds"].isna().all()  # before the column; eager
    assert pd.isna(df["cpu_features"][0]) and df["cpu_features"][1] == hardware.cpu_features()
    assert df["model_args"].isna().all()  # the defaults, before the column and since
    assert df["tuned_from"].isna().all()


def test_a_csv_of_the_first_layout_is_accepted_and_upgraded(tmp_path: Path) -> None:
    """The oldest files, written before any of the added columns, are spelled out here rather
    than taken from ``EARLIER``: a slip there refused them as having "other columns"."""
    added = {"train_compile_seconds", "ab_rounds", "ab_ratio", "ab_ratio_q1", "ab_ratio_q3"}
    added |= {"cpu_features", "model_args", "tuned_from", "timing_spread"}
    first = [c for c in COLUMNS if c not in added]
    csv_path = tmp_path / "cpu-fp32.csv"
    cells = dict.fromkeys(first, "") | {"arch": "gap_cnn", "fusion": "concat"}
    csv_path.write_text(",".join(first) + "\n" + ",".join(cells[c] for c in first) + "\n")
    benchfile.check_header(csv_path)
    benchfile.append_row(csv_path, {"arch": "small_cnn", "fusion": "concat"})
    rows = benchfile.read_table(csv_path)
    assert tuple(rows[0]) == COLUMNS and [row[0] for row in rows[1:]] == ["gap_cnn", "small_cnn"]


def test_model_args_are_measured_and_recorded_and_a_model_refusing_28_pixels_is_an_error_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timm ViT benches with the img_size and patch_size given (its row records them, and
    the report names them beside the combination); left at timm's 224 pixels it gets an error
    row saying what to set, not a traceback, and the sweep goes on."""
    from benchmark.report.render import bench_section

    sized = ["--model-arg", "img_size=28", "--model-arg", "patch_size=7"]
    assert bench(tmp_path, "--arch", "timm:test_vit,gap_cnn", "--fusion", "late_sum", *sized) == 0
    assert bench(tmp_path, "--arch", "timm:test_vit,timm:test_resnet", "--fusion", "late_sum") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "timm:test_vit x late_sum (img_size=28, patch_size=7): " in out
    assert "img_size=28 patch_size=7: not taken by gap_cnn x late_sum, built without" in out
    df = pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv"))
    assert list(df["arch"]) == ["timm:test_vit", "gap_cnn", "timm:test_vit", "timm:test_resnet"]
    sized_row, unsized, refused, other = df.to_dict("records")
    assert pd.isna(unsized["model_args"]) and pd.isna(unsized["error"])  # gap_cnn: as ever
    assert json.loads(sized_row["model_args"]) == {"img_size": 28, "patch_size": 7}
    built = create_model("timm:test_vit", "late_sum", img_size=28, patch_size=7)
    assert sized_row["params"] == count_params(built) and sized_row["train_images_per_s"] > 0
    assert pd.isna(refused["model_args"]) and math.isnan(refused["params"])
    assert refused["error"].startswith("CannotRunError: timm:test_vit x late_sum with its defaults")
    assert "runs on 28x28 with --model-arg img_size=28 --model-arg patch_size=7" in refused["error"]
    assert pd.isna(other["error"]) and other["train_images_per_s"] > 0
    section = bench_section(df.assign(file="x.csv"))
    assert "| timm:test_vit x late_sum (img_size=28, patch_size=7) |" in section


def test_a_model_argument_comma_list_is_measured_value_by_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model-arg width=4,8: a row for each width of each combination taking it (the cost of
    each size), one row for a combination that takes none; a bad value measures nothing."""
    argv = ["--arch", "gap_cnn,timm:test_resnet", "--fusion", "late_sum", "--model-arg"]
    assert bench(tmp_path, *argv, "width=4,8") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "bench: 3 configurations on " in out
    assert "model args width=4,8: not taken by timm:test_resnet x late_sum" in out
    df = pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv"))
    assert list(df["arch"]) == ["gap_cnn", "gap_cnn", "timm:test_resnet"]
    assert list(df["model_args"].iloc[:2]) == ['{"width": 4}', '{"width": 8}']
    assert pd.isna(df["model_args"].iloc[2])  # its defaults
    assert df["params"].iloc[0] < df["params"].iloc[1]
    assert bench(tmp_path / "bad", *argv, "width=4,0") == 2
    assert "width=0 for gap_cnn: expected int in 1..256" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_tuned_measures_the_exported_model_batch_and_loss_at_the_budget_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench --tuned --epochs 3`` measures what ``run --tuned --epochs 3`` trains: each
    export's model, batch size and loss (the final runs' label smoothing is more work per step
    than the defaults' plain cross-entropy); a typed --batch-size pins its value."""
    from benchmark import bench as bench_module

    seen = []
    measure = bench_module.measure_pair
    monkeypatch.setattr(
        bench_module, "measure_pair", lambda cfg, s: seen.append(cfg) or measure(cfg, s)
    )
    names = [
        write_export(
            tmp_path, 3, "small_cnn", f, {"width": 8}, 3, batch_size=4, label_smoothing=0.1
        )
        for f in ("concat", "late_sum")
    ]
    # another budget: not this one
    write_export(tmp_path, 1, "small_cnn", "concat", {"width": 8}, 3, batch_size=16)
    argv = ["bench", "--arch", "small_cnn", "--fusion", "concat,late_sum", "--tuned"]
    argv += ["--epochs", "3", *TINY[:-6], *TINY[-4:], "--results-dir", str(tmp_path)]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"small_cnn x concat: tuned parameters of study {names[0]} (trial 3, " in out
    assert f"small_cnn x concat (tuned by {names[0]}; width=8): " in out
    df = pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv"))
    assert list(df["tuned_from"]) == names and list(df["train_batch_size"]) == [4, 4]
    assert [json.loads(a) for a in df["model_args"]] == [{"width": 8}] * 2
    assert [(c.batch_size, c.label_smoothing, c.model_args) for c in seen] == [
        (4, 0.1, {"width": 8})
    ] * 2
    assert main([*argv, "--batch-size", "6"]) == 0
    assert (
        pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv"))["train_batch_size"].iloc[-1] == 6
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--epochs", "3"],
            "--epochs chooses the budget of the export --tuned measures; give --tuned",
        ),
        (["--tuned-study", "x"], "--tuned-study chooses the export --tuned uses; give --tuned too"),
        (["--tuned", "--epochs", "9"], "--tuned: small_cnn x concat was tuned at another budget"),
        (["--tuned", "--fusion", "late_sum"], "--tuned: no export for small_cnn x late_sum in"),
    ],
)
def test_tuned_flags_out_of_place_are_one_line_and_nothing_is_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    write_export(tmp_path, 3, "small_cnn", "concat", {"width": 8}, 3)
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err
    assert not (tmp_path / "bench").exists()


def test_a_model_arg_no_combination_takes_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = bench(tmp_path, "--arch", "gap_cnn", "--fusion", "concat", "--model-arg", "img_size=28")
    assert rc == 2
    assert "unknown hyperparameter 'img_size' for gap_cnn x concat" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()


def test_compile_ab_writes_an_eager_and_a_compiled_row_measured_in_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rounds' plumbing, with compiling left out (``Execution.compiled`` hands the function
    back; a real compile is in test_compile): two rows, the compiled one with its ratio, from
    rounds of 2 steps in which eager and compiled take turns, the order alternating."""
    from benchmark import bench as measure
    from benchmark import hardware

    monkeypatch.setattr(hardware.Execution, "compiled", lambda self, fn: fn)
    called = []
    real = measure.timed_call
    monkeypatch.setattr(measure, "timed_call", lambda fn, ex: called.append(fn) or real(fn, ex))
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "late_sum", "--compile-ab", "3") == 0
    rounds = called[-3 * 2 * 2 :]  # 3 rounds of eager and compiled, 2 steps each
    turns = [(fn, len(list(same))) for fn, same in itertools.groupby(rounds)]
    eager_step, compiled_step = turns[0][0], turns[1][0]
    assert eager_step is not compiled_step
    order = [eager_step, compiled_step, eager_step, compiled_step]
    assert turns == list(zip(order, [2, 4, 4, 2], strict=True))  # AB, BA, AB
    eager, compiled = pd.read_csv(cpu_file(tmp_path, "bench", "fp32", ".csv")).to_dict("records")
    assert (eager["compile"], compiled["compile"]) == (False, True)
    assert eager["train_images_per_s"] > 0 and compiled["train_images_per_s"] > 0
    assert math.isnan(eager["ab_ratio"]) and compiled["ab_rounds"] == 3
    assert 0 < compiled["ab_ratio_q1"] <= compiled["ab_ratio"] <= compiled["ab_ratio_q3"]
    out = " ".join(capsys.readouterr().out.split())  # the table's title wraps with the CPU's name
    assert "eager and compiled taking turns" in out
    assert "train img/s (eager and compiled); per round, compiled/eager " in " ".join(out.split())


def test_model_cost_is_measured_once_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run and every progress line asks for its model's cost: built once per process."""
    import architectures
    from benchmark import bench

    monkeypatch.setattr(bench, "_COSTS", {})
    built = []
    monkeypatch.setattr(
        architectures, "create_model", lambda *a, **kw: built.append(a) or create_model(*a, **kw)
    )
    first = bench.model_cost("small_cnn", "concat", {})
    assert first == (count_params(create_model("small_cnn", "concat")), SMALL_CNN_CONCAT_MACS)
    assert bench.model_cost("small_cnn", "concat", {}) == first and len(built) == 1
    assert bench.model_cost("small_cnn", "concat", {"width": 8})[1] < first[1]
    assert len(built) == 2


def test_two_processes_appending_to_one_file_at_once_keep_every_row(tmp_path: Path) -> None:
    """Each read the file, appended and renamed its copy over it: the second rename dropped
    the first's row. Appends now take turns under a lock beside the file."""
    import threading

    csv_path = tmp_path / "bench" / "cpu-bf16.csv"
    csv_path.parent.mkdir()

    def append(fusion: str) -> None:
        for i in range(60):
            benchfile.append_row(csv_path, {"arch": f"a{i}", "fusion": fusion, "device": "cpu"})

    threads = [threading.Thread(target=append, args=(f,)) for f in ("concat", "late_sum")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(benchfile.read_table(csv_path)) == 1 + 120


def test_the_table_names_both_batches_and_leaves_an_eager_rows_compile_time_blank() -> None:
    """ "batch 1024 (train 128)" read as the batch --batch-size sets, and an eager row showed
    "compile s 0.0" beside the compiled one of an A/B."""
    import io

    from rich.console import Console

    from benchmark.commands.bench import rows_table

    row = {"arch": "gap_cnn", "fusion": "concat", "tuned_from": "", "model_args": "",
           "device": "cpu: AMD EPYC (2 threads)", "device_type": "cpu", "cpu_features": "avx2",
           "precision": "bf16", "batch_size": 1024, "train_batch_size": 128,
           "channels_last": True, "params": 85357, "macs_per_image": 7.35e6,
           "infer_images_per_s": 20000.0, "latency_ms_b1": 1.2,
           "train_images_per_s": 4000.0}  # fmt: skip
    eager = {**row, "compile": False, "compile_seconds": 0.0, "train_compile_seconds": 0.0}
    compiled = {**row, "compile": True, "compile_seconds": 12.5, "train_compile_seconds": 9.5,
                "ab_ratio": 1.1, "ab_ratio_q1": 1.0, "ab_ratio_q3": 1.2}  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(rows_table([eager, compiled]))
    text = out.getvalue()
    assert "inference batch 1024, training batch 128" in text
    for name in ("MMACs/img", "infer img/s", "latency b1 ms", "train img/s"):  # the report's
        assert name in text
    lines = [line for line in text.splitlines() if "gap_cnn" in line]
    eager_cells = [c.strip() for c in lines[0].split("│")]
    assert eager_cells[-4:-1] == ["-", "-", "-"]  # compile s, train compile s, train vs eager
    assert "12.5" in lines[1] and "9.5" in lines[1]


def settings(compile: bool = False, warmup: int = 2, iters: int = 3):
    from benchmark.bench import Settings
    from benchmark.config import TrainConfig

    cfg = TrainConfig(arch="small_cnn", fusion="concat", batch_size=8, **PLAIN_CPU)
    cfg, ex = hardware.decide(cfg)
    return cfg, Settings(ex=replace(ex, compile=compile), batch_size=16, warmup=warmup, iters=iters)


def test_a_measurement_times_its_calls_after_the_first_and_the_warm_up() -> None:
    from benchmark.bench import measure

    calls = []
    _, s = settings(warmup=2, iters=3)
    first, times = measure(lambda: calls.append(1), s)
    assert len(calls) == 1 + 2 + 3 and len(times) == 3 and first >= 0


def test_each_figure_is_its_batch_over_its_median_time_and_compiling_adds_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inference at the bench batch (16), training at the configuration's (8); compile time is
    the three first calls' (inference, batch 1, training) and the training one's apart."""
    from benchmark import bench

    timings = iter([(1.0, [0.5, 0.4, 0.6]), (2.0, [0.25]), (4.0, [0.1, 0.125, 0.2])])
    monkeypatch.setattr(bench, "measure", lambda fn, s: next(timings))
    cfg, s = settings(compile=True)
    figures, _ = bench.measure_pair(cfg, s)
    assert figures["infer_images_per_s"] == pytest.approx(16 / 0.5)
    assert figures["latency_ms_b1"] == pytest.approx(250.0)
    assert figures["train_images_per_s"] == pytest.approx(8 / 0.125)
    assert (figures["compile_seconds"], figures["train_compile_seconds"]) == (7.0, 4.0)
    # training's quartiles, 0.1125 and 0.1625: those of inference, 0.45 and 0.55, are closer
    assert figures["timing_spread"] == pytest.approx(0.1625 / 0.1125)


def test_a_row_whose_timed_calls_varied_is_said_to_be_noisy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A compiled model's batch-1 calls took 100 ms for a second after compiling, then 0.5 ms:
    the row recorded the median, 128 ms, as a measurement, without a word."""
    from benchmark import bench as measuring

    slow_then_fast = [0.1] * 15 + [0.0005] * 25  # quartiles 0.0005 and 0.1 (one slow call: no)
    timings = iter([(0.0, [0.5, 9.0, *[0.4] * 38]), (0.0, slow_then_fast), (0.0, [0.1] * 40)])
    monkeypatch.setattr(measuring, "measure", lambda fn, s: next(timings))
    assert bench(tmp_path, "--arch", "small_cnn", "--fusion", "concat") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: its timed calls varied by 200.0x (upper over lower quartile)" in out  # one row
    (csv_path,) = (tmp_path / "bench").glob("*.csv")
    assert pd.read_csv(csv_path)["timing_spread"].tolist() == [pytest.approx(200.0)]


def test_the_compile_ab_ratio_is_compiled_speed_over_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark import bench

    steps = {False: lambda: None, True: lambda: None}
    monkeypatch.setattr(
        bench, "measure_pair", lambda cfg, s: ({"train_images_per_s": 0.0}, steps[s.compile])
    )
    seconds = {steps[False]: 1.0, steps[True]: 0.5}  # compiled twice as fast
    monkeypatch.setattr(bench, "timed_call", lambda fn, ex: seconds[fn])
    cfg, s = settings()
    eager, compiled = bench.compile_ab(cfg, s, rounds=4)
    assert compiled["ab_ratio"] == compiled["ab_ratio_q1"] == compiled["ab_ratio_q3"] == 2.0
    assert (eager["train_images_per_s"], compiled["train_images_per_s"]) == (8.0, 16.0)


def test_the_compile_ab_quartiles_are_the_lower_and_upper_of_the_rounds_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rounds whose compiled speed-ups were 2x, 4x, 1x and 2x: the row's range reads
    1.75x-2.50x, lower quartile first, not the other way round."""
    from benchmark import bench

    steps = {False: lambda: None, True: lambda: None}
    monkeypatch.setattr(
        bench, "measure_pair", lambda cfg, s: ({"train_images_per_s": 0.0}, steps[s.compile])
    )
    compiled_seconds = iter([0.5] * 3 + [0.25] * 3 + [1.0] * 3 + [0.5] * 3)  # iters=3 a round
    monkeypatch.setattr(
        bench, "timed_call", lambda fn, ex: 1.0 if fn is steps[False] else next(compiled_seconds)
    )
    cfg, s = settings()
    _, compiled = bench.compile_ab(cfg, s, rounds=4)
    assert compiled["ab_ratio"] == 2.0
    assert (compiled["ab_ratio_q1"], compiled["ab_ratio_q3"]) == (1.75, 2.5)
    assert benchfile.ab_text(compiled) == "2.00x (1.75-2.50)"


def test_a_long_error_is_cut_to_one_readable_cell() -> None:
    """A long message (a failed compile's runs to kilobytes) is cut to ``ERROR_CHARS`` with an
    ellipsis, its lines joined: an error row stays one readable line of the CSV and the table."""
    from benchmark.bench import ERROR_CHARS, error_cell

    cell = error_cell(RuntimeError("out of memory\n" + "tried to allocate " * 60))
    assert len(cell) == ERROR_CHARS and cell.endswith("...")
    assert cell.startswith("RuntimeError: out of memory tried to allocate ")
    short = RuntimeError("CUDA out of memory")
    assert error_cell(short) == "RuntimeError: CUDA out of memory"


# Mutation audit: each test below fails with one hand mutant of benchmark/bench.py or
# benchmark/commands/bench.py that the tests above let through. Measuring is stubbed.

FAKE_FIGURES = {"params": 1, "macs_per_image": 2, "infer_images_per_s": 3.0,
                "latency_ms_b1": 4.0, "train_images_per_s": 5.0, "peak_mem_mb": math.nan,
                "timing_spread": 1.0, "compile_seconds": math.nan,
                "train_compile_seconds": math.nan}  # fmt: skip


def stub_measure_pair(monkeypatch: pytest.MonkeyPatch, **figures: float) -> list:
    """``measure_pair`` answering ``FAKE_FIGURES`` (with ``figures``) at once: the settings it
    was asked to measure under, in a list."""
    from benchmark import bench as measuring

    seen = []

    def measure_pair(cfg, s):
        seen.append(s)
        return {**FAKE_FIGURES, **figures}, lambda: None

    monkeypatch.setattr(measuring, "measure_pair", measure_pair)
    return seen


def bench_untimed(tmp_path: Path, *args: str) -> int:
    """``bench`` of small_cnn x concat on the CPU in fp32, leaving the call counts to ``args``."""
    argv = ["bench", "--arch", "small_cnn", "--fusion", "concat", *TINY[:5], *args]
    return main([*argv, "--results-dir", str(tmp_path)])


def test_the_call_counts_and_inference_batch_default_to_those_the_help_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--warmup-calls [10]``, ``--iters [40]``, ``--infer-batch-size [1024 on cpu]``."""
    seen = stub_measure_pair(monkeypatch)
    assert bench_untimed(tmp_path) == 0
    ((s),) = seen
    assert (s.warmup, s.iters, s.batch_size) == (10, 40, 1024)


def test_no_warm_up_calls_is_allowed_and_each_typed_count_reaches_the_measurement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--warmup-calls 0`` is the least (-1 is refused), and no count stands in for another."""
    seen = stub_measure_pair(monkeypatch)
    counts = ["--warmup-calls", "0", "--iters", "3", "--infer-batch-size", "5"]
    assert bench_untimed(tmp_path, *counts) == 0
    ((s),) = seen
    assert (s.warmup, s.iters, s.batch_size) == (0, 3, 5)


def test_compile_ab_with_no_compile_is_a_usage_error_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--no-compile`` as well as ``--compile``: A/B measures both ways itself."""
    monkeypatch.setattr("benchmark.bench.bench_rows", lambda *a: pytest.fail("measured"))
    rc = bench_untimed(tmp_path, "--compile-ab", "3", "--no-compile")
    assert rc == 2
    assert "--compile-ab measures eager and compiled both" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()


def test_a_row_whose_timed_calls_agreed_gets_no_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a spread above ``NOISY`` is said: a note on every row would be read as none."""
    stub_measure_pair(monkeypatch, timing_spread=benchfile.NOISY)
    assert bench_untimed(tmp_path) == 0
    assert "note:" not in capsys.readouterr().out


def test_a_compiled_rows_table_shows_its_compile_times() -> None:
    """``--compile`` without A/B: the compile time columns are there, filled in."""
    import io

    from rich.console import Console

    from benchmark.commands.bench import rows_table

    row = {"arch": "gap_cnn", "fusion": "concat", "tuned_from": "", "model_args": "",
           "device": "cpu", "device_type": "cpu", "cpu_features": "avx2",
           "precision": "fp32", "batch_size": 8, "train_batch_size": 8, "channels_last": False,
           "compile": True, **FAKE_FIGURES, "compile_seconds": 12.5,
           "train_compile_seconds": 9.5}  # fmt: skip
    out = io.StringIO()
    Console(file=out, width=300, color_system=None).print(rows_table([row]))
    text = out.getvalue()
    assert "compile True" in text
    assert "compile s" in text and "12.5" in text and "9.5" in text


def test_the_spread_of_two_timed_calls_is_measured() -> None:
    """1 (no spread) is for a single call only: ``--iters 2`` calls of 1 s and 2 s spread."""
    from benchmark.bench import quartile_ratio

    assert quartile_ratio([0.5]) == 1.0
    assert quartile_ratio([1.0, 2.0]) == pytest.approx(1.75 / 1.25)


def test_a_compiled_measurement_starts_from_a_reset_compiler_and_an_eager_one_leaves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stale compiled code of the sweep's earlier models would hit the recompile limit."""
    import torch

    from benchmark import bench

    resets = []
    monkeypatch.setattr(torch.compiler, "reset", lambda: resets.append(1))
    monkeypatch.setattr(hardware.Execution, "compiled", lambda self, fn: fn)
    monkeypatch.setattr(bench, "measure", lambda fn, s: (0.0, [0.1]))
    cfg, s = settings(compile=False)
    bench.measure_pair(cfg, s)
    assert resets == []
    bench.measure_pair(cfg, replace(s, ex=replace(s.ex, compile=True)))
    assert resets == [1]


def test_inference_latency_and_training_are_measured_at_their_own_batch_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inference at the bench batch (16), latency at 1, training at the configuration's (8)."""
    from benchmark import bench

    sizes = []
    real = bench.random_batch
    monkeypatch.setattr(bench, "random_batch", lambda n, ex: sizes.append(n) or real(n, ex))
    monkeypatch.setattr(bench, "measure", lambda fn, s: (0.0, [0.1]))
    cfg, s = settings()
    bench.measure_pair(cfg, s)
    assert sizes[-3:] == [16, 1, 8]  # (before them: the MACs count's one image)


def test_an_error_of_exactly_the_cells_length_is_kept_whole() -> None:
    from benchmark.bench import ERROR_CHARS, error_cell

    exc = RuntimeError("x" * (ERROR_CHARS - len("RuntimeError: ")))
    assert error_cell(exc) == f"RuntimeError: {exc}"


def test_a_compiled_measurement_is_recorded_as_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmark import bench

    stub_measure_pair(monkeypatch)
    cfg, s = settings(compile=True)
    (row,) = bench.bench_rows(cfg, s, "abc")
    assert row["compile"] is True and row["train_images_per_s"] == 5.0


@pytest.mark.parametrize("error", [RuntimeError, ValueError, MemoryError])
def test_each_kind_of_measuring_failure_becomes_an_error_row(
    error: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch says an unsupported case with a ValueError too: the sweep goes on past it."""
    from benchmark import bench

    def fail(cfg, s):
        raise error("no kernel for this")

    monkeypatch.setattr(bench, "measure_pair", fail)
    cfg, s = settings()
    (row,) = bench.bench_rows(cfg, s, "abc")
    assert row["error"] == f"{error.__name__}: no kernel for this"
    assert math.isnan(row["train_images_per_s"])


def test_a_failed_compile_ab_gives_both_its_rows_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The eager row too: blank figures beside no error would read as a row not measured yet."""
    from benchmark import bench

    def fail(cfg, s, rounds):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(bench, "compile_ab", fail)
    cfg, s = settings()
    rows = bench.bench_rows(cfg, s, "abc", ab_rounds=2)
    assert [(r["compile"], r["error"]) for r in rows] == [
        (False, "RuntimeError: compile failed"),
        (True, "RuntimeError: compile failed"),
    ]
