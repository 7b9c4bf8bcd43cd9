"""The report on synthetic run directories with known values: no training happens here."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import (
    DEVICE,
    exit_status,
    level_bars,
    make_run,
    one_line,
    report_markdown,
    screen,
)

from benchmark import benchfile, places, report
from benchmark.cli import main
from benchmark.report.plots import CAPTIONS
from benchmark.report.render import display_table


def make_suite(root: Path) -> Path:
    """Three groups (one with three seeds, one tuned), one interrupted run and one corrupt run."""
    runs = root / "runs"
    for seed, acc, curve in ((0, 0.90, (0.5, 0.7)), (1, 0.92, (0.6, 0.8)), (2, 0.94, (0.7, 0.9))):
        make_run(runs, f"a-concat-s{seed}", seed=seed, sum_acc=acc, val_curve=curve)
    make_run(runs, "b-late-s0", arch="small_cnn", fusion="late_sum", sum_acc=0.80, params=500)
    make_run(
        runs,
        "c-tuned-s0",
        sum_acc=0.96,
        params=1000,
        tuned=True,
        config_hash="bbbb1111",
    )
    interrupted = runs / "d-interrupted"
    interrupted.mkdir()
    (interrupted / "status.json").write_text(
        json.dumps({"status": "interrupted", "message": "stopped by an interrupt"})
    )
    corrupt = runs / "e-corrupt"
    corrupt.mkdir()
    (corrupt / "metrics.json").write_text('{"arch": "gap_cnn", ')
    (corrupt / "status.json").write_text(json.dumps({"status": "complete"}))
    bench = root / "bench"
    bench.mkdir()
    (bench / "cpu.csv").write_text(
        "arch,fusion,device,precision,batch_size,params,macs_per_image,infer_images_per_s,error\n"
        "gap_cnn,concat,cpu,fp32,256,1000,50000,20000,\n"
        "gap_cnn,concat,cpu,fp32,1,1000,50000,3000,\n"
        "small_cnn,late_sum,cpu,fp32,256,500,20000,40000,\n"
        "small_cnn,late_sum,cuda,bf16,256,500,20000,,out of memory\n"
    )
    return root


def load(root: Path) -> report.Inputs:
    return report.load_inputs(str(root / "runs" / "*"), str(root / "bench" / "*.csv"))


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, list[Path]]:
    """``make_suite`` and its report in ``out``, written once for the tests that read them (a
    test that changes either works on a copy): the root, the summary, the paths written."""
    root = make_suite(tmp_path_factory.mktemp("suite"))
    summary, written = report.write_report(load(root), root / "out")
    return root, summary, written


def copy_suite(root: Path, to: Path, *outputs: str) -> Path:
    """``make_suite``'s runs and bench files copied from ``root`` to ``to``, with the outputs
    named (``out/plots``: the plots drawn of them, which a report of the same runs reads back
    instead of drawing them again)."""
    for name in ("runs", "bench", *outputs):
        shutil.copytree(root / name, to / name)
    return to


def test_summary_has_known_means_stds_and_counts(tmp_path: Path) -> None:
    inputs = load(make_suite(tmp_path))
    summary = report.summarize(inputs.runs, inputs.bench)
    assert list(summary["label"]) == [
        "gap_cnn x concat (tuned)",
        "gap_cnn x concat",
        "small_cnn x late_sum",
    ]  # best test sum accuracy first
    three = summary.iloc[1]
    assert three["n"] == 3 and three["seeds"] == "0,1,2" and not three["tuned"]
    assert three["test_sum_acc_mean"] == pytest.approx(0.92)
    assert three["test_sum_acc_std"] == pytest.approx(0.02)  # ddof=1
    assert three["test_digit_acc_mean"] == pytest.approx(0.93)
    assert three["test_joint_acc_mean"] == pytest.approx(0.91)
    assert three["test_consistency_std"] == pytest.approx(0.02)
    assert three["train_seconds_mean"] == pytest.approx(101.0)
    assert three["train_images_per_s_mean"] == pytest.approx(2000.0)
    assert three["params"] == 1000 and three["epochs"] == 2
    single = summary.iloc[2]
    assert single["n"] == 1 and math.isnan(single["test_sum_acc_std"])


def test_a_groups_seeds_are_listed_in_numeric_order_whatever_its_runs_are_named(
    tmp_path: Path,
) -> None:
    for name, seed in (("a", 10), ("b", 2), ("c", 0)):
        make_run(tmp_path / "runs", name, seed=seed)
    inputs = load(tmp_path)
    assert report.summarize(inputs.runs, inputs.bench).iloc[0]["seeds"] == "0,2,10"


def test_tuned_and_default_groups_never_mix(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "default", sum_acc=0.90, config_hash="samehash")
    for seed, acc in ((0, 0.95), (1, 0.97)):
        make_run(runs, f"tuned-{seed}", seed=seed, sum_acc=acc, params=2000,
                 config_hash="tunedhash", tuned=True)  # fmt: skip
    make_run(runs, "other", arch="small_cnn", sum_acc=0.99, tuned=True)
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none" / "*.csv"))
    summary = report.summarize(inputs.runs, inputs.bench)
    assert len(summary) == 3
    pairs = report.tuned_vs_default(summary)
    assert len(pairs) == 1  # small_cnn has no default group
    pair = pairs.iloc[0]
    assert (pair["arch"], pair["fusion"]) == ("gap_cnn", "concat")
    assert pair["test_sum_acc_mean_default"] == pytest.approx(0.90) and pair["n_default"] == 1
    assert pair["test_sum_acc_mean_tuned"] == pytest.approx(0.96) and pair["n_tuned"] == 2
    assert pair["test_sum_acc_std_tuned"] == pytest.approx(math.sqrt(2) * 0.01)
    assert pair["delta"] == pytest.approx(0.06)
    assert pair["err_delta"] == pytest.approx(-6.0) and math.isnan(pair["p"])  # n=1: no test
    section = report.tuned_vs_default_section(summary)
    # errors 10 % (one seed) and 4 ± t(0.975, 1) * sqrt(2) / sqrt(2) = 4 ± 12.71 %
    row = "| gap_cnn x concat | 10.00 | 1,000 | 4.00 ± 12.71 | 2,000 | 1/2 | -6.00 | - |"
    assert row + " untested (1 seed) |" in section
    # -0.085 shown as -0.08 beside 0.45 and 0.36: which means the column subtracts, said
    assert "*tuned - default*: of the unrounded means, so it may differ by 0.01" in section


def test_groups_that_share_a_label_are_told_apart_by_their_configuration_hash() -> None:
    """Two tuned configurations of one combination in the main comparison (a study run again):
    each gets its hash, your run of one of them its [yours]."""
    from benchmark.report.aggregate import group_labels

    group = {"arch": "gap_cnn", "fusion": "concat", "precision": "fp32", "section": "main"}
    group |= {"differs": "the reference configuration", "sizes": ""}
    summary = pd.DataFrame(
        [
            group | {"tuned": tuned, "config_hash": config_hash, "yours": yours}
            for tuned, config_hash, yours in (
                (False, "aaaa0000", False),
                (True, "bbbb1111", False),
                (True, "cccc2222", False),
                (True, "bbbb1111", True),
            )
        ]
    )
    default, first, second, yours = group_labels(summary)
    assert (default, yours) == ("gap_cnn x concat", "gap_cnn x concat (tuned) [yours]")
    assert first.startswith("gap_cnn x concat (tuned)") and first.endswith(" #bbbb1111")
    assert second.startswith("gap_cnn x concat (tuned)") and second.endswith(" #cccc2222")


def test_each_run_config_is_read_whole_and_a_run_without_one_reads_empty(tmp_path: Path) -> None:
    """``run_configs`` is the one reader of the configs ``load_inputs`` keeps: the report's
    reference, sections and defaults marks all take a run's config from it."""
    from benchmark.report.load import run_configs

    runs = tmp_path / "runs"
    for seed, extra in enumerate(({"lr": 0.01, "tuned_from": {"defaults": True}}, {"lr": 0.02})):
        path = make_run(runs, f"s{seed}", seed=seed) / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["config"].update(extra)
        path.write_text(json.dumps(metrics))
    found = report.load_inputs(str(runs / "*"), str(tmp_path / "none" / "*.csv")).runs
    configs = run_configs(found.sort_values("run"))
    assert [c["lr"] for c in configs] == [0.01, 0.02]
    assert configs[0]["tuned_from"] == {"defaults": True} and configs[0]["arch"] == "gap_cnn"
    assert run_configs(found.drop(columns="config_json")) == [{}, {}]


def test_pareto_front_is_the_known_set() -> None:
    params = pd.Series([10, 20, 20, 30, 5, 40, 40, 50])
    acc = pd.Series([0.90, 0.95, 0.93, 0.94, 0.80, 0.99, 0.99, 0.98])
    front = report.pareto_front(params, acc)
    # 20/0.93 loses to 20/0.95, 30/0.94 to 20/0.95, 50/0.98 to 40/0.99; equal points both stay.
    assert list(front[front].index) == [0, 1, 4, 5, 6]
    # as good for more parameters is dominated too
    assert list(report.pareto_front(pd.Series([10, 20]), pd.Series([0.9, 0.9]))) == [True, False]
    # a group of unknown size or accuracy is on no front, and puts no other off it
    unknown = report.pareto_front(pd.Series([10, 20, math.nan]), pd.Series([0.9, math.nan, 0.99]))
    assert list(unknown) == [True, False, False]


def test_markers_that_would_cover_each_other_are_dodged_and_all_stay_in_view() -> None:
    """Two tuned models of one size at one parameter count were drawn one over the other; now
    they are set apart, and every point, dodged or not, is inside the axis it is drawn on."""
    from benchmark.report.marks import dodges
    from benchmark.report.plots import pareto_figure

    x = pd.Series([196_437, 196_437, 196_437, 72_666, 227_165, 227_165])
    error = pd.Series([0.36, 0.37, 0.60, 0.37, 0.74, 0.73])
    assert list(dodges(x, error)) == [-4.0, 4.0, 0.0, 0.0, -4.0, 4.0]
    wide = pd.Series([10_000, 90_000, 5_000_000])  # a log axis: nearly a decade apart there
    assert list(dodges(wide, pd.Series([0.50, 0.52, 0.9]))) == [0.0, 0.0, 0.0]
    summary = pd.DataFrame({
        "label": [f"g{i}" for i in range(6)], "section": "main", "yours": False,
        "arch": ["gap_cnn"] * 4 + ["small_cnn"] * 2, "fusion": ["concat", "embed_add"] * 3,
        "tuned": [True, True, False, False, False, True], "params": x,
        "train_seconds_mean": [395.0, 319.0, 216.0, 245.0, 75.0, 77.0],
        "train_seconds_std": [60.0, 20.0, math.nan, 30.0, 10.0, 5.0],  # NaN: one seed
        "test_sum_err_mean": error, "test_sum_err_ci": 0.05,
    })  # fmt: skip
    fig = pareto_figure(summary)
    fig.canvas.draw()
    seconds = summary["train_seconds_mean"] + summary["train_seconds_std"].fillna(0)
    for ax, ends in zip(fig.axes, (summary["params"], seconds), strict=True):
        low, high = ax.get_xlim()  # the time panel's level bars in view too (455 s)
        assert low < ends.min() and ends.max() < high, (low, high)


def test_a_wide_time_bar_does_not_switch_the_time_axis_to_log() -> None:
    """The time panel's scale is chosen from the groups' mean seconds: one group's level bar
    reaching near zero (10 ± 9.5 s) had made 10 and 30 s a log axis, where with no spread it is
    linear; there the bar is ± one SD whole (it had been cut at 0.1x the mean) and in view."""
    from benchmark.report.plots import pareto_figure

    summary = pd.DataFrame({
        "label": ["a", "b"], "section": "main", "yours": False, "arch": "gap_cnn",
        "fusion": ["concat", "late_sum"], "tuned": False, "params": [1000, 2000],
        "train_seconds_mean": [10.0, 30.0], "train_seconds_std": [9.5, 1.0],
        "test_sum_err_mean": [0.5, 0.4], "test_sum_err_ci": 0.05,
    })  # fmt: skip
    fig = pareto_figure(summary)
    fig.canvas.draw()
    time_axis = fig.axes[1]
    assert time_axis.get_xscale() == "linear"
    # ± one SD whole on a linear axis: the end kept above zero is a log axis's need only
    assert level_bars(time_axis) == [(0.5, 19.5), (29.0, 31.0)]
    low, high = time_axis.get_xlim()
    assert low <= 0.5 and 31 <= high


def test_a_log_cost_axis_holds_the_ends_of_its_bars_and_a_narrow_one_stays_linear() -> None:
    """Seconds of 10 and 1,000 with bars reaching 1 and 5,000: the log axis holds both ends
    (its limits from the means alone cut the bars off); 10 to 150 is a linear axis."""
    from matplotlib.figure import Figure

    from benchmark.report.marks import cost_axis

    ax = Figure().subplots()
    cost_axis(ax, "x", pd.Series([10.0, 1000.0]), pd.Series([1.0, 5000.0]))
    low, high = ax.get_xlim()
    assert ax.get_xscale() == "log" and low < 1.0 and 5000.0 < high
    narrow = Figure().subplots()
    cost_axis(narrow, "x", pd.Series([10.0, 150.0]), pd.Series([0.5, 300.0]))
    assert narrow.get_xscale() == "linear"


def test_cost_axis_tick_labels_read_short() -> None:
    from benchmark.report.marks import compact

    values = (0.5, 12, 999, 1000, 80_000, 1_000_000, 1_500_000)
    assert [compact(v) for v in values] == ["0.5", "12", "999", "1k", "80k", "1M", "1.5M"]


def test_an_error_axis_holds_every_mean_and_interval_and_ends_at_100_percent() -> None:
    """An interval reaching below 0 leaves the axis at its mean (not down at ``FLOOR``), an
    error of 0 (no place on a log axis) gives an axis down to ``FLOOR``, and one near 100% an
    axis that ends at 100."""
    from benchmark.report.marks import FLOOR, error_span, percent_span

    rows = pd.DataFrame({"test_sum_err_mean": [0.3, 2.0], "test_sum_err_ci": [0.5, math.nan]})
    assert error_span(rows) == pytest.approx((0.24, 2.5))
    low, high = percent_span(0.0, 0.0)
    assert 0 < low <= FLOOR < high < 0.01
    low, high = percent_span(60.0, 99.0)
    assert high == 100.0 and low < 60.0


def test_a_spread_bar_on_a_log_axis_stops_above_zero_and_on_a_linear_one_is_whole() -> None:
    from benchmark.report.marks import spread_bar, spread_ends

    assert spread_bar(10.0, 20.0) == (9.0, 20.0)
    assert spread_bar(10.0, 20.0, log=False) == (20.0, 20.0)
    assert spread_bar(10.0, math.nan) == (0.0, 0.0)  # one seed: no bar
    ends = spread_ends(pd.Series([10.0, 100.0]), pd.Series([20.0, 5.0]))
    assert list(ends) == pytest.approx([1.0, 95.0, 30.0, 105.0])


def test_a_tuned_groups_point_is_filled_and_a_default_ones_hollow() -> None:
    from types import SimpleNamespace

    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure

    from benchmark.report.marks import error_point

    ax = Figure().subplots()
    for tuned in (True, False):
        row = SimpleNamespace(test_sum_err_mean=0.5, test_sum_err_ci=0.1, tuned=tuned)
        error_point(ax, 1.0, row, "tab:red", "o")
    filled, hollow = (to_hex(c.lines[0].get_markerfacecolor()) for c in ax.containers)
    assert filled == to_hex("tab:red") and hollow == "#ffffff"


def test_beside_a_reference_only_the_users_points_are_ringed() -> None:
    from matplotlib.figure import Figure

    from benchmark.report.marks import scatter

    rows = pd.DataFrame({
        "arch": "gap_cnn", "fusion": ["concat", "late_sum"], "tuned": False, "params": [10, 900],
        "yours": [True, False], "test_sum_err_mean": [0.5, 0.9], "test_sum_err_ci": 0.1,
    })  # fmt: skip
    ax = Figure().subplots()
    scatter(ax, rows, "params", {"gap_cnn": "tab:blue"}, {"concat": "o", "late_sum": "s"})
    rings = [line for line in ax.get_lines() if line.get_markersize() == 14]
    assert [(list(r.get_xdata()), r.get_markerfacecolor()) for r in rings] == [([10], "none")]


def test_a_plot_title_wraps_to_the_width_of_its_figure() -> None:
    from benchmark.report.marks import title

    text = "validation error of each group of the main comparison by epoch " * 3
    lines = title(text, 4.0, 10.0).splitlines()  # 4 in at 10 pt: 52 characters a line
    assert len(lines) > 1 and all(len(line) <= 52 for line in lines)
    assert max(map(len, title(text, 0.5, 10.0).splitlines())) > 10  # never under 20 a line


def test_pareto_column_in_summary(tmp_path: Path) -> None:
    inputs = load(make_suite(tmp_path))
    summary = report.summarize(inputs.runs, inputs.bench).set_index("label")
    # The tuned group beats the default one at the same size; the small model is cheapest.
    assert summary["pareto"].to_dict() == {
        "gap_cnn x concat (tuned)": True,
        "gap_cnn x concat": False,
        "small_cnn x late_sum": True,
    }


def test_bench_rows_give_macs_and_best_throughput(tmp_path: Path) -> None:
    root = make_suite(tmp_path)
    path = root / "runs" / "a-concat-s1" / "metrics.json"  # one seed of the group records MACs
    path.write_text(json.dumps({**json.loads(path.read_text()), "macs_per_image": 7_351_424}))
    inputs = load(root)
    summary = report.summarize(inputs.runs, inputs.bench).set_index("label")
    default = summary.loc["gap_cnn x concat"]
    assert default["macs_per_image"] == 7_351_424  # what the run recorded, not the bench's 50,000
    assert math.isnan(summary.loc["small_cnn x late_sum", "macs_per_image"])  # none recorded
    assert default["infer_images_per_s"] == 20000 and default["bench_batch_size"] == 256
    small = summary.loc["small_cnn x late_sum"]
    assert small["infer_images_per_s"] == 40000 and small["bench_device"] == "cpu"  # error row out
    markdown = report.bench_section(inputs.bench)
    assert "out of memory" in markdown and "small_cnn x late_sum" in markdown
    assert "A/B" not in markdown  # no bench --compile-ab row: no column for one
    assert "cpu features" not in markdown  # rows from before the column: none either
    # its short headers said under it ("of it train" was never defined)
    assert markdown.endswith("*train compile s*: the training step's share of it, what a "
                             "compiled run pays.")  # fmt: skip


def test_cpu_features_are_shown_where_a_row_has_them(tmp_path: Path) -> None:
    """Two CPUs of one name, told apart by their features; a row from before the column is '-'."""
    path = tmp_path / "cpu-amd-epyc-fp32.csv"
    for features in ("avx2", "avx512 bf16", ""):
        row = {"arch": "gap_cnn", "fusion": "concat", "device": "cpu: AMD EPYC (2 threads)"}
        benchfile.append_row(path, row | {"cpu_features": features})
    markdown = report.bench_section(benchfile.read_rows([path])[0])
    cells = [line.split(" | ")[2] for line in markdown.splitlines() if "gap_cnn x concat" in line]
    assert "| cpu features |" in markdown and cells == ["avx2", "avx512 bf16", "-"]


def test_bench_rows_are_listed_by_model_then_batch_each_figure_as_bench_prints_it(
    tmp_path: Path,
) -> None:
    """Rows appended in any order read by encoder, fusion, device, precision and batch size;
    a batch a whole number, MACs with thousands separators, the batch-1 latency to the
    microsecond."""
    path = tmp_path / "cpu-fp32.csv"
    cpu = {"device": "cpu", "precision": "fp32", "batch_size": 256}
    figures = {"macs_per_image": 7_351_424, "latency_ms_b1": 1.23456}
    for arch, fusion, batch in (
        ("small_cnn", "concat", 256),
        ("gap_cnn", "late_sum", 256),
        ("gap_cnn", "late_sum", 1),
        ("gap_cnn", "concat", 256),
    ):
        row = cpu | {"arch": arch, "fusion": fusion, "batch_size": batch}
        benchfile.append_row(path, row | figures)
    lines = report.bench_section(benchfile.read_rows([path])[0]).splitlines()
    header = next(line for line in lines if line.startswith("| combination")).split(" | ")
    rows = [dict(zip(header, line.split(" | "), strict=True)) for line in lines if "_cnn x" in line]
    assert [(r["| combination"], r["infer batch"]) for r in rows] == [
        ("| gap_cnn x concat", "256"),
        ("| gap_cnn x late_sum", "1"),
        ("| gap_cnn x late_sum", "256"),
        ("| small_cnn x concat", "256"),
    ]
    assert (rows[0]["MACs/img"], rows[0]["latency b1 ms"]) == ("7,351,424", "1.235")


def test_a_row_of_a_tuned_model_names_its_arguments_legibly(tmp_path: Path) -> None:
    """A tuned configuration's floats at four significant digits (the file keeps them whole),
    and the batch size it trained at."""
    path = tmp_path / "cpu-fp32.csv"
    args = {"dropout": 0.2385719484080942, "width": 24}
    row = {"arch": "gap_cnn", "fusion": "concat", "device": "cpu", "train_batch_size": 64}
    benchfile.append_row(path, row | {"model_args": benchfile.model_args_cell(args)})
    rows = benchfile.read_rows([path])[0]
    assert json.loads(rows.iloc[0]["model_args"]) == args
    markdown = report.bench_section(rows)
    assert "| gap_cnn x concat (dropout=0.2386, width=24) |" in markdown
    header = next(line for line in markdown.splitlines() if line.startswith("| combination"))
    line = next(line for line in markdown.splitlines() if "gap_cnn x concat" in line)
    cells = dict(zip(header.split(" | "), line.split(" | "), strict=True))
    assert cells["train batch"] == "64"  # a tuned batch size, beside the inference batch


@pytest.mark.parametrize(
    ("column", "header"),
    [("batch_size", "infer batch"), ("train_batch_size", "train batch")],
)
def test_a_damaged_batch_size_cell_reads_as_missing_and_the_report_goes_on(
    column: str, header: str, tmp_path: Path
) -> None:
    """A hand-edited cell (``8?``) is read as missing, ``-`` in the report's table, beside the
    file's other rows, rather than a string that stops the report with a format error."""
    csv_path = tmp_path / "cpu-fp32.csv"
    row = {"arch": "gap_cnn", "device": "cpu", "precision": "fp32"}
    row |= {"batch_size": 8, "train_batch_size": 8}
    benchfile.append_row(csv_path, row | {"fusion": "concat"})
    benchfile.append_row(csv_path, row | {"fusion": "late_sum", column: "8?"})
    rows, notes = benchfile.read_rows([csv_path])
    assert rows[column].iloc[0] == 8 and math.isnan(rows[column].iloc[1])
    assert not notes
    lines = report.bench_section(rows).splitlines()
    names = next(line for line in lines if line.startswith("| combination"))

    def cells(combination: str) -> dict[str, str]:
        line = next(line for line in lines if line.startswith(f"| {combination} |"))
        return dict(zip(names.split(" | "), line.split(" | "), strict=True))

    assert cells("gap_cnn x late_sum")[header] == "-"
    assert cells("gap_cnn x concat")[header] == "8"  # a whole number beside it, not "8.0"


def test_an_eager_bench_rows_compile_seconds_read_as_none(tmp_path: Path) -> None:
    """Rows wrote 0.0 for an eager row's compile seconds: the report printed "0.0" where bench
    printed "-" (it compiled nothing)."""
    path = tmp_path / "cpu-fp32.csv"
    row = {"device": "cpu: x", "arch": "gap_cnn", "infer_images_per_s": 100.0}
    benchfile.append_row(
        path,
        row
        | {
            "fusion": "concat",
            "compile": False,
            "compile_seconds": 0.0,
            "train_compile_seconds": 0.0,
        },
    )
    benchfile.append_row(
        path,
        row
        | {
            "fusion": "late_sum",
            "compile": True,
            "compile_seconds": 12.5,
            "train_compile_seconds": 9.5,
        },
    )
    bench, _ = benchfile.read_rows([path])
    lines = report.bench_section(bench).splitlines()
    header = next(line for line in lines if line.startswith("| combination"))
    cells = {line.split(" | ")[0]: line.split(" | ") for line in lines if line.startswith("| gap")}
    at = header.split(" | ").index("compile s")
    assert cells["| gap_cnn x concat"][at : at + 2] == ["-", "-"]
    assert cells["| gap_cnn x late_sum"][at : at + 2] == ["12.5", "9.5"]


def test_the_bench_section_says_per_machine_whether_compiling_paid(tmp_path: Path) -> None:
    """The range of the A/B medians per machine (CPUs of one name told apart by their
    features, and rows from before features were recorded said to be such, not taken for one
    of them), above the table; no line where no row is an A/B."""
    path = tmp_path / "cpu-bf16.csv"
    cpu = {"device": "cpu: AMD EPYC (2 threads)", "compile": True}
    for fusion, features, ratio in (
        ("concat", "avx512 bf16", 0.93),
        ("late_sum", "avx512 bf16", 1.114),
        ("concat", "avx2", 0.85),
        ("embed_add", "avx2", None),  # eager or compiled alone: not an A/B
        ("late_sum", None, 0.79),  # a row from before cpu_features
    ):
        row = cpu | {"arch": "gap_cnn", "fusion": fusion}
        row |= {"cpu_features": features} if features else {}
        benchfile.append_row(path, row | ({"ab_ratio": ratio} if ratio else {}))
    gpu = {"device": "cuda: NVIDIA H100 80GB HBM3", "compile": True, "ab_ratio": 1.5}
    benchfile.append_row(path, gpu | {"arch": "gap_cnn", "fusion": "concat"})
    bench, _ = benchfile.read_rows([path])
    markdown = report.bench_section(bench)
    lines = markdown.split("## Bench measurements\n\n")[1].split("\n\n| combination")[0]
    assert lines.endswith(
        "above 1x compiling pays):\n\n"
        "- cpu: AMD EPYC (2 threads) with avx2: 0.85x over 1 configuration\n"
        "- cpu: AMD EPYC (2 threads) with avx512 bf16: 0.93-1.11x over 2 configurations\n"
        "- cpu: AMD EPYC (2 threads), CPU features not recorded: 0.79x over 1 configuration\n"
        "- cuda: NVIDIA H100 80GB HBM3: 1.50x over 1 configuration"
    )
    one = bench[bench["ab_ratio"].notna()].head(1)  # a first --compile-ab: its one row
    assert (
        report.bench_section(one).count("- cpu: AMD EPYC (2 threads) with avx512 bf16: 0.93x") == 1
    )
    eager = bench[bench["ab_ratio"].isna()]
    assert "Compiled against eager" not in report.bench_section(eager)


def test_a_compile_ab_row_shows_compiled_over_eager_with_its_quartiles(tmp_path: Path) -> None:
    path = tmp_path / "cpu-fp32.csv"
    figures = {"train_images_per_s": 2000.0, "ab_rounds": 10, "ab_ratio": 1.171}
    figures |= {"ab_ratio_q1": 1.104, "ab_ratio_q3": 1.252}
    for compiled in (False, True):
        row = {"arch": "gap_cnn", "fusion": "concat", "device": "cpu", "compile": compiled}
        benchfile.append_row(path, row | (figures if compiled else {}))
    bench, _ = benchfile.read_rows([path])
    markdown = report.bench_section(bench)
    assert "train vs eager (A/B)" in markdown
    cells = [line.split(" | ") for line in markdown.splitlines() if "gap_cnn x concat" in line]
    assert [c for c in cells[0] if "x (" in c] == []  # the eager row: no ratio of its own
    assert "1.17x (1.10-1.25)" in cells[1]


def test_a_group_takes_bench_figures_from_the_device_its_runs_were_timed_on(
    tmp_path: Path,
) -> None:
    """A group trained on a CPU shows that CPU's inference throughput, not a faster GPU's (the
    committed summary.csv once gave every CPU group the H200's); a group benched only on
    another device still shows that device's figures, and names it."""
    runs = tmp_path / "runs"
    make_run(runs, "cat", fusion="concat")
    make_run(runs, "late", fusion="late_sum")
    (tmp_path / "bench.csv").write_text(
        "arch,fusion,device,precision,batch_size,infer_images_per_s,error\n"
        f"gap_cnn,concat,{DEVICE},fp32,256,20000, \n"  # an error cell of a space: no error
        "gap_cnn,concat,NVIDIA H200,bf16,8192,1800000,\n"
        "gap_cnn,late_sum,NVIDIA H200,bf16,8192,1700000,\n"
    )
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "*.csv"))
    summary = report.summarize(inputs.runs, inputs.bench).set_index("label")
    concat = summary.loc["gap_cnn x concat"]
    assert concat["infer_images_per_s"] == 20000 and concat["bench_device"] == DEVICE
    late = summary.loc["gap_cnn x late_sum"]
    assert late["infer_images_per_s"] == 1700000 and late["bench_device"] == "NVIDIA H200"


def test_a_group_takes_bench_figures_of_its_precision_and_eager_first(tmp_path: Path) -> None:
    """The committed fp32 default group showed a compiled bf16 row's throughput (the highest on
    its device): rows of its own precision, then eager ones, come first."""
    runs = tmp_path / "runs"
    make_run(runs, "cat", fusion="concat")  # fp32 (make_run's), trained eager
    rows = [
        f"gap_cnn,concat,{DEVICE},bf16,True,256,90000,",
        f"gap_cnn,concat,{DEVICE},bf16,False,256,60000,",
        f"gap_cnn,concat,{DEVICE},fp32,True,256,40000,",
        f"gap_cnn,concat,{DEVICE},fp32,False,256,20000,",
    ]
    header = "arch,fusion,device,precision,compile,batch_size,infer_images_per_s,error\n"
    for kept in (4, 3, 2):  # each time the row the group's runs are most like is left
        (tmp_path / "bench.csv").write_text(header + "\n".join(rows[:kept]) + "\n")
        inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "*.csv"))
        found = report.summarize(inputs.runs, inputs.bench).set_index("label").iloc[0]
        expected = {4: (20000, "fp32"), 3: (40000, "fp32"), 2: (60000, "bf16")}[kept]
        assert (found["infer_images_per_s"], found["bench_precision"]) == expected


def test_timings_of_two_cpus_of_one_name_are_never_averaged(tmp_path: Path) -> None:
    """Two VMs both called "AMD EPYC", one with AVX-512 and one without, trained one group: the
    report keeps the timings of the CPU most of its runs had, told apart by their features."""
    runs = tmp_path / "runs"
    for seed, features in enumerate(("avx2", "avx2", "avx512 bf16")):
        run = make_run(runs, f"s{seed}", seed=seed)  # train_seconds 100 + seed
        found = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps(found | {"cpu_features": features}))
    inputs = load(tmp_path)
    (group,) = report.summarize(inputs.runs, inputs.bench).to_dict("records")
    assert group["train_seconds_mean"] == pytest.approx(100.5)  # seeds 0 and 1, not 2
    assert group["timing_device"] == f"{DEVICE} with avx2"  # what the report names
    _, md = report_markdown(inputs)  # and its header names both CPUs, as the tables do
    assert f"- Hardware of the runs: {DEVICE} with avx2, {DEVICE} with avx512 bf16\n" in md


def test_a_groups_timings_are_its_most_common_machines_and_of_a_tie_the_first_by_name() -> None:
    """Seconds and images/s alike come from one machine: the one most of the group's runs had,
    of two with as many runs the first by name (not the first run's)."""
    from benchmark.report.aggregate import same_device_timings

    group = {"arch": "gap_cnn", "fusion": "concat", "tuned": False, "precision": "fp32"}
    found = [("tie", "cpu: Z"), ("tie", "cpu: A"), ("most", "cpu: A")]
    found += [("most", "cpu: Z"), ("most", "cpu: Z")]
    runs = pd.DataFrame(
        [
            group | {"config_hash": h, "yours": False, "device": device,
                     "train_seconds": 10.0 * i, "train_images_per_s": 100.0 * i}
            for i, (h, device) in enumerate(found, start=1)
        ]
    )  # fmt: skip
    kept = same_device_timings(runs)
    assert kept["timing_device"].tolist() == ["cpu: A"] * 2 + ["cpu: Z"] * 3
    assert kept["train_seconds"].fillna(0).tolist() == [0, 20.0, 0, 40.0, 50.0]
    assert kept["train_images_per_s"].fillna(0).tolist() == [0, 200.0, 0, 400.0, 500.0]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (("avx512 amx", "avx2", ""), (20000, " with avx2")),  # the runs' own CPU
        (("avx512 amx", ""), (25000, "")),  # a row that did not record its CPU's features
        (("avx512 amx",), (30000, " with avx512 amx")),  # another CPU of that name, not the GPU
    ],
)
def test_a_group_takes_bench_figures_from_its_own_cpu_of_a_shared_name(
    rows: tuple[str, ...], expected: tuple[int, str], tmp_path: Path
) -> None:
    """Two VMs both called "AMD EPYC" benched one model: a group timed on the one with AVX2
    takes that one's row, named with its features (it took the first row of the name)."""
    run = make_run(tmp_path / "runs", "a")
    found = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps(found | {"cpu_features": "avx2"}))
    speed = {"avx512 amx": 30000, "avx2": 20000, "": 25000}
    (tmp_path / "bench.csv").write_text(
        "arch,fusion,device,precision,batch_size,infer_images_per_s,cpu_features,error\n"
        + "".join(f"gap_cnn,concat,{DEVICE},fp32,256,{speed[f]},{f},\n" for f in rows)
        + "gap_cnn,concat,NVIDIA H200,bf16,8192,1800000,,\n"
    )
    inputs = report.load_inputs(str(tmp_path / "runs" / "*"), str(tmp_path / "*.csv"))
    (group,) = report.summarize(inputs.runs, inputs.bench).to_dict("records")
    assert (group["infer_images_per_s"], group["bench_device"]) == (
        expected[0],
        DEVICE + expected[1],
    )


@pytest.mark.parametrize("same", [True, False])
def test_the_main_table_says_whose_timings_when_machines_differ(same: bool, tmp_path: Path) -> None:
    """Groups of the main comparison timed on two machines: a column names each one's (the note
    under the table listed both devices, not which row was which); one machine: no column."""
    from benchmark.report.render import display_table

    runs = tmp_path / "runs"
    for fusion, features in (("concat", "avx2"), ("late_sum", "avx2" if same else "avx512")):
        for seed in (0, 1):
            run = make_run(runs, f"{fusion}-{seed}", fusion=fusion, seed=seed)
            found = json.loads((run / "metrics.json").read_text())
            (run / "metrics.json").write_text(json.dumps(found | {"cpu_features": features}))
    inputs = load(tmp_path)
    table = display_table(report.summarize(inputs.runs, inputs.bench))
    if same:
        assert "timed on" not in table
    else:
        timed = dict(zip(table["combination"], table["timed on"], strict=True))
        assert timed == {
            "gap_cnn x concat": f"{DEVICE} with avx2",
            "gap_cnn x late_sum": f"{DEVICE} with avx512",
        }


def test_bench_with_missing_columns_and_other_model_size(tmp_path: Path) -> None:
    """A bench row of another model size is not a group's (a tuned model does not borrow the
    default's throughput); a row that does not say its size is taken; missing columns are NaN."""
    runs = tmp_path / "runs"
    make_run(runs, "big", params=2000)
    make_run(runs, "late", fusion="late_sum", params=1000)
    (tmp_path / "partial.csv").write_text(
        "arch,fusion,params,infer_images_per_s\ngap_cnn,concat,1000,5000\ngap_cnn,late_sum,,6000\n"
    )
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "*.csv"))
    summary = report.summarize(inputs.runs, inputs.bench).set_index("label")
    assert math.isnan(summary.loc["gap_cnn x concat", "infer_images_per_s"])  # 1,000 params
    assert summary.loc["gap_cnn x late_sum", "infer_images_per_s"] == 6000
    assert summary["latency_ms_b1"].isna().all()  # no such column in the file


GOOD_ROW = "arch,fusion,device,train_images_per_s\ngap_cnn,concat,cpu,1000\n"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "empty, not a bench CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not a bench CSV (not UTF-8 text)"),
        (b'{"arch": "gap_cnn", "fusion": "concat"}\n', "not a bench CSV (columns such as"),
        (GOOD_ROW.encode()[:-8], "its last row is cut off"),
        (GOOD_ROW.encode() + b"gap_cnn,late_sum,cpu,1,2,3\n", "row 3 has 6 cells where the"),
        ((GOOD_ROW * 2).encode(), "row 3 repeats the header"),  # was a traceback
        (b"arch,fusion,device,model_args\ngap_cnn,concat,cpu,{width:8}\n", "row 2's model_args"),
    ],
    ids=["empty", "binary", "json", "cut-off", "long-row", "header-again", "args-not-json"],
)
def test_a_damaged_bench_file_is_a_note_naming_it(
    content: bytes, said: str, tmp_path: Path, capsys
) -> None:
    """Beside a good file, a damaged one is left out with a note naming it: not read into rows
    of NaN (``gap x nan``) or cells shifted by a column. Alone, it is the command's one line."""
    bad, good = tmp_path / "bench" / "bad.csv", tmp_path / "bench" / "good.csv"
    bad.parent.mkdir()
    bad.write_bytes(content)
    good.write_text(GOOD_ROW)
    bench, notes = benchfile.read_rows([bad, good])
    assert list(bench["arch"]) == ["gap_cnn"] and list(bench["train_images_per_s"]) == [1000]
    assert len(notes) == 1 and notes[0].startswith(f"bench file skipped: {bad}: {said}")
    good.unlink()
    assert main(["report", "--results-dir", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert f"nothing readable to report in {tmp_path}: bench file skipped: {bad}: " in line
    assert not (tmp_path / "report.md").exists()


def test_incomplete_and_corrupt_runs_are_listed(suite, tmp_path: Path) -> None:
    root = copy_suite(suite[0], tmp_path, "out/plots")
    bad_keys = root / "runs" / "f-no-test"
    bad_keys.mkdir()
    (bad_keys / "metrics.json").write_text(json.dumps({"arch": "gap_cnn", "fusion": "concat"}))
    killed = root / "runs" / "g-running"  # or killed: a kill -9 leaves it marked running
    killed.mkdir()
    (killed / "status.json").write_text(json.dumps({"status": "running", "message": ""}))
    inputs = load(root)
    incomplete = inputs.incomplete.set_index("run")
    assert list(incomplete.index) == ["d-interrupted", "e-corrupt", "f-no-test", "g-running"]
    assert incomplete.loc["g-running", "reason"] == (
        "no metrics.json; if no process trains it any more (killed), resume with "
        f"`python -m benchmark run --resume {killed}`"
    )
    assert incomplete.loc["d-interrupted", "status"] == "interrupted"
    assert "no metrics.json; stopped by an interrupt" == incomplete.loc["d-interrupted", "reason"]
    assert incomplete.loc["e-corrupt", "reason"].startswith("corrupt metrics.json")
    assert "test.sum_acc" in incomplete.loc["f-no-test", "reason"]
    assert incomplete.loc["f-no-test", "status"] == "missing"
    assert len(inputs.runs) == 5
    report.write_report(inputs, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    section = text[text.index("## Incomplete runs") :]
    assert "| d-interrupted | interrupted | no metrics.json; stopped by an interrupt |" in section
    assert "e-corrupt" in section and "f-no-test" in section


def test_a_seed_run_again_counts_once_and_the_repeat_is_listed(
    suite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group's seed 1 run a second time (as a rerun of the same command does): the group
    keeps n=3 and its first seed-1 run's figures; the repeat is left out of the tables and the
    curves, named in the header, listed with the run it repeats, and said on the console."""
    root = copy_suite(suite[0], tmp_path, "out/plots")
    make_run(root / "runs", "z-concat-s1-again", seed=1, sum_acc=0.50, val_curve=(0.1, 0.2))
    inputs = load(root)
    assert "z-concat-s1-again" not in set(inputs.runs["run"]) | set(inputs.history["run"])
    assert inputs.repeats.to_dict("records") == [
        {"run": "z-concat-s1-again", "seed": 1, "repeats": "a-concat-s1"}
    ]
    three = report.summarize(inputs.runs, inputs.bench).set_index("label").loc["gap_cnn x concat"]
    assert three["n"] == 3 and three["test_sum_acc_mean"] == pytest.approx(0.92)
    assert main(["report", "--runs", str(root / "runs" / "*"), "--out", str(tmp_path / "out")]) == 0
    said = "1 run repeating a seed its group already has, left out"
    assert f"{said} (listed in the report)" in " ".join(capsys.readouterr().out.split())
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"; 1 incomplete; 1 finished but damaged; {said} (below)" in text
    assert "| z-concat-s1-again | 1 | a-concat-s1 |" in text[text.index("## Repeated seeds") :]


def test_a_run_found_twice_counts_once(tmp_path: Path) -> None:
    """A copy of a results folder given beside it, or one folder's path spelled two ways, gave
    the group n=6 for 3 seeds (seeds "0,0,1,1,2,2") and an interval that much narrower: the
    copies have the run's own name, which the repeat check took for the run itself."""
    root = tmp_path / "r"
    for seed, acc in enumerate((0.90, 0.92, 0.94)):
        make_run(root / "runs", f"a-s{seed}", seed=seed, sum_acc=acc, val_curve=(0.5, 0.7))
    shutil.copytree(root, tmp_path / "copy")
    spelled = str(tmp_path / "r" / "runs" / ".." / "runs" / "*")
    for patterns in (
        [str(root / "runs" / "*"), str(tmp_path / "copy" / "runs" / "*")],
        [str(root / "runs" / "*"), spelled],
    ):
        inputs = report.load_inputs(patterns, str(tmp_path / "none"))
        group = report.summarize(inputs.runs, inputs.bench).iloc[0]
        assert group["n"] == 3 and group["seeds"] == "0,1,2", patterns
        assert len(inputs.history) == 6  # two epochs a run, once
        copies = len(inputs.repeats)
        assert copies == (3 if "copy" in patterns[1] else 0)  # the path spelled twice: one run
    inputs = report.load_inputs([str(root / "runs" / "*"), str(tmp_path / "copy" / "runs" / "*")],
                                str(tmp_path / "none"))  # fmt: skip
    assert list(inputs.repeats["repeats"]) == [f"a-s{s} (a copy of it)" for s in range(3)]
    (root / "runs" / "0-latest").symlink_to(root / "runs" / "a-s2")  # sorts first: not taken
    inputs = report.load_inputs(str(root / "runs" / "*"), str(tmp_path / "none"))
    assert sorted(inputs.runs["run"]) == ["a-s0", "a-s1", "a-s2"] and inputs.repeats.empty


@pytest.mark.parametrize(
    "damage",
    [
        "seconds 1e308",
        "seconds -5",
        "val_sum_acc 7",
        "val_sum_acc nan",
        "train_loss inf",
        "binary",
        "no val_sum_acc",
    ],
)
def test_a_damaged_history_is_named_and_its_curve_left_out(damage: str, tmp_path: Path) -> None:
    """A history.csv of 1e308 seconds made the "s to 99% val" cell 309 digits long; one of
    bytes was left out without a word. The run stays in the tables, its curve goes, and a note
    names the file."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"a{seed}", seed=seed, val_curve=(0.5, 0.9))
    path = runs / "a1" / "history.csv"
    if damage == "binary":
        path.write_bytes(bytes(range(256)))
    elif damage == "no val_sum_acc":  # the column the curves are drawn from
        pd.read_csv(path).drop(columns="val_sum_acc").to_csv(path, index=False)
    else:
        column, value = damage.split()
        frame = pd.read_csv(path)
        frame.loc[1, column] = float(value)
        frame.to_csv(path, index=False, na_rep="nan")  # written out: float() reads it
    inputs = load(tmp_path)
    assert sorted(inputs.runs["run"]) == ["a0", "a1"] and set(inputs.history["run"]) == {"a0"}
    assert f"1 history.csv unreadable, curves left out: {path}" in inputs.notes


def test_val_curves_are_means_over_seeds(tmp_path: Path) -> None:
    inputs = load(make_suite(tmp_path))
    summary = report.summarize(inputs.runs, inputs.bench)
    curves = report.val_curves(inputs.history, inputs.runs, summary)
    three = curves[curves["label"] == "gap_cnn x concat"]
    assert list(three["epoch"]) == [1, 2]
    assert list(three["val_sum_acc"]) == pytest.approx([0.6, 0.8])
    assert list(dict.fromkeys(curves["label"])) == list(summary["label"])  # summary order


def test_class_accuracy_is_mean_per_sum(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "s0", seed=0, by_class=[i / 18 for i in range(19)])
    make_run(runs, "s1", seed=1, by_class=[1.0] * 19)
    make_run(runs, "late", fusion="late_sum", sum_acc=0.95, config_hash="b0000000")
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "*.csv"))
    summary = report.summarize(inputs.runs, inputs.bench)
    classes = report.class_accuracy(inputs.runs, summary)
    assert list(classes.index) == ["gap_cnn x late_sum", "gap_cnn x concat"]  # summary order
    assert classes.shape == (2, 19) and list(classes.columns) == list(range(19))
    concat = classes.loc["gap_cnn x concat"]
    assert concat[0] == pytest.approx(0.5) and concat[18] == pytest.approx(1.0)


def test_report_files_header_and_plots(suite) -> None:
    tmp_path, summary, written = suite
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert names == [
        "plots/forest.png",
        "plots/pareto.png",
        "plots/sum_class_heatmap.png",
        "plots/val_curves.png",
        "report.html",
        "report.md",
        "summary.csv",
    ]
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG")
    text = (tmp_path / "out" / "report.md").read_text()
    header = text[: text.index("## The answer")]
    for expected in (DEVICE, "torch 2.99.0", "timm 9.9.9", "Epochs: 2", "Seeds: 0, 1, 2",
                     "Commits of the runs: abc123"):  # fmt: skip
        assert expected in header
    # the names in every table are registry entries: the header says where they are described
    assert "a fusion how its features meet the addend; `python -m benchmark list`" in header
    # no comparison.json here: nothing was damaged, so nothing is said to be unreadable
    assert "(from the budget most default runs used, as no `compare` protocol was found)" in header
    table = text[text.index("## Main comparison") : text.index("## Tuned vs default")]
    rows = [line for line in table.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    # errors 8, 10 and 6 %: mean 8, half-width t(0.975, 2) * 2 / sqrt(3) = 4.97
    # the one-seed group has the lowest mean but no test: the three-seed group is the best
    assert "gap_cnn x concat | yes | 1 | 4.00 | untested (1 seed) | - |" in rows[0]
    assert "gap_cnn x concat | no | 3 | 8.00 ± 4.97 | best |" in rows[1]
    csv = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(csv.columns) == report.summary_columns() and len(csv) == len(summary)
    # each plot is followed by what its marks are: a title and a key left them unsaid
    plots = text[text.index("## Plots") :].split("\n\n")
    for name in ("forest", "pareto", "val_curves", "sum_class_heatmap"):
        (at,) = [i for i, part in enumerate(plots) if part.endswith(f"(plots/{name}.png)")]
        assert plots[at + 1] == CAPTIONS[name]


def test_a_header_of_runs_that_recorded_no_versions_epochs_or_commit_says_so(
    tmp_path: Path,
) -> None:
    """A run written before these were recorded, or by hand: each header line reads "-", not
    a blank that looks like a line cut short."""
    run = make_run(tmp_path / "runs", "old")
    found = json.loads((run / "metrics.json").read_text())
    for key in ("versions", "git_commit", "epochs"):
        del found[key]
    (run / "metrics.json").write_text(json.dumps(found))
    text = report_markdown(load(tmp_path))[1]
    for line in ("Versions of the runs", "Epochs", "Commits of the runs"):
        assert f"\n- {line}: -\n" in text


def test_outputs_are_byte_identical_on_a_second_run(suite, tmp_path: Path) -> None:
    root = suite[0]

    def written(out: Path) -> dict[str, bytes]:
        return {
            p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }

    def outputs(out: Path) -> dict[str, bytes]:
        report.write_report(load(root), out)
        return written(out)

    first = written(root / "out")  # the first run's
    again = Path(shutil.copytree(root / "out", tmp_path / "out"))  # the second run, over them
    assert outputs(again) == first
    assert outputs(tmp_path / "elsewhere") == first
    assert len(first) == 7  # report.md, report.html, summary.csv and 4 PNGs


def test_a_figure_is_drawn_once_with_the_pixels_savefig_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``png_bytes`` lays a figure out and renders it in one draw (``savefig`` draws twice),
    and the image is ``savefig``'s to the byte: the committed plots did not change with it."""
    import io

    from matplotlib.figure import Figure

    from benchmark.report.output import DPI, new_figure, png_bytes

    def image(blob: bytes) -> list[bytes]:  # the PNG's chunks but its text (the stamp)
        chunks, at = [], 8
        while at < len(blob):
            size, kind = int.from_bytes(blob[at : at + 4], "big"), blob[at + 4 : at + 8]
            if kind != b"tEXt":
                chunks.append(blob[at + 4 : at + 8 + size])
            at += 12 + size
        return chunks

    def figure() -> Figure:
        fig, axes = new_figure(6, 3, ncols=2)
        for ax in axes:
            ax.plot([1, 2, 3], [0.5, 0.2, 0.4], marker="o", label="gap_cnn x concat (tuned)")
            ax.set_xlabel("training seconds on this machine")
            ax.legend(loc="upper right")
        axes[0].set_ylabel("test sum error (%)")
        fig.suptitle("a long title that the layout has to make room for")
        return fig

    buf = io.BytesIO()
    figure().savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    draws = []
    draw = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, r: draws.append(1) or draw(fig, r))
    fig = figure()
    canvas = fig.canvas
    fig.set_dpi(72)
    blob = png_bytes(fig, "stamp")
    assert draws == [1]
    assert fig.canvas is canvas and fig.dpi == 72  # pyplot's or a GUI's canvas is left alone
    assert image(blob) == image(buf.getvalue()) and b"Comment\x00stamp" in blob


@pytest.mark.usefixtures("undrawn")
def test_stale_plot_is_removed(suite, tmp_path: Path) -> None:
    root = copy_suite(suite[0], tmp_path, "out")  # reported once
    assert (tmp_path / "out" / "plots" / "val_curves.png").exists()
    for path in (root / "runs").glob("*/history.csv"):
        path.unlink()
    report.write_report(load(root), tmp_path / "out")
    assert not (tmp_path / "out" / "plots" / "val_curves.png").exists()


def test_the_reports_sections_come_in_reading_order(tmp_path: Path) -> None:
    """The answer, a ladder's sections right after it, the main comparison and its tuned,
    precision and other groups, then the measurements, costs, studies and plots (in ``PLOTS``
    order), and last what the tables leave out."""
    from dataclasses import replace

    from benchmark.report.plots import PLOTS

    runs = make_suite(tmp_path) / "runs"  # tuned beside default, bench rows, incomplete runs
    # and a section each for a bf16 twin, a run of 3 epochs and a seed run again
    with_precision(make_run(runs, "bf16", sum_acc=0.93), "bf16")
    make_run(runs, "long", sum_acc=0.95, config_hash="l0000000", val_curve=(0.5, 0.7, 0.9))
    make_run(runs, "z-again", seed=1, sum_acc=0.5)
    plan = {"key": "k", "pairs": [], "trials": 2, "max_params": 10, "seeds": [0]}
    comparison = {"plan": plan, "stages": {"tune": {"cpu": 60.0}}}
    inputs = replace(load(tmp_path), notes=["a note"], comparison=comparison)
    ref, summary = report.answering(inputs, report.build_rungs(inputs))
    studies, ladder = "## Tuning studies\n\n.", "## Ranks across budgets\n\n."
    text = report.render_markdown(
        inputs, summary, dict.fromkeys(PLOTS, b""), ref, studies, ladder=ladder
    )
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        "# digitsum-bench report",
        "## The answer",
        "## Ranks across budgets",
        "## Main comparison (lowest test sum error first)",
        "## Tuned vs default (main comparison)",
        "## Precision: bf16 vs fp32",
        "## Other budgets, ablations and hand-set configurations",
        "## Bench measurements",
        "## Cost of the protocol",
        "## Tuning studies",
        "## Plots",
        "## Notes on the inputs",
        "## Incomplete runs (not in the tables)",
        "## Repeated seeds (not in the tables)",
    ]
    images = [line for line in text.splitlines() if line.startswith("![")]
    assert images == [f"![{title}](plots/{name}.png)" for name, title in PLOTS.items()]


def test_only_incomplete_runs_still_report(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "crashed"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "failed", "message": "loss is nan"}))
    summary, written = report.write_report(load(tmp_path), tmp_path / "out")
    assert summary.empty and [p.name for p in written] == [
        "report.md",
        "report.html",
        "summary.csv",
    ]
    text = (tmp_path / "out" / "report.md").read_text()
    assert (
        "No complete runs." in text
        and "| crashed | failed | no metrics.json; loss is nan |" in text
    )


@pytest.mark.usefixtures("undrawn")
def test_what_a_report_wrote_wraps_at_spaces_on_a_narrow_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a pipe the line naming what the report wrote is one line (below); kept one line on
    an 80-column terminal too, the terminal cut it mid-word ("outpu" / "t/plots/"). There it
    wraps at spaces, each path whole on a line of the screen."""
    import io

    from rich.console import Console

    make_suite(tmp_path)
    monkeypatch.chdir(tmp_path)  # short paths: each fits a line, as most do
    stream = io.StringIO()
    terminal = Console(file=stream, width=80, force_terminal=True, color_system=None)
    for module in ("benchmark.progress", "benchmark.commands.common", "benchmark.commands.report"):
        monkeypatch.setattr(f"{module}.console", terminal)
    out = Path("a-folder-named-at-some-length-for-the-report")
    assert main(["report", "--runs", "runs/*", "--out", str(out)]) == 0
    lines = screen(stream.getvalue(), width=80)  # fails on a character past the last column
    start = next(i for i, line in enumerate(lines) if line.startswith("wrote "))
    assert len(lines[start:]) > 1  # it did need wrapping
    for path in (out / "report.md", out / "report.html", out / "summary.csv", out / "plots"):
        assert any(str(path) in line for line in lines[start:]), path


@pytest.mark.usefixtures("undrawn")
def test_cli_report(tmp_path: Path, capsys: Any) -> None:
    root = make_suite(tmp_path)
    out = tmp_path / "out"
    argv = ["report", "--runs", str(root / "runs" / "*"), "--out", str(out)]
    assert main([*argv, "--bench", str(root / "bench" / "*.csv")]) == 0
    assert (out / "report.md").exists() and (out / "plots" / "forest.png").exists()
    printed = capsys.readouterr().out.replace("│", "|")
    row = next(line for line in printed.splitlines() if "|    no | 3 |" in line)
    assert "gap_cnn x concat" in row and "8.00 ± 4.97" in row
    assert "listed in the report: 1 incomplete; 1 finished but damaged\n" in printed
    # a complete run's damaged metrics.json is named, as a damaged file is (the interrupted one
    # is no damage); it was in report.md alone
    damaged = [line for line in printed.splitlines() if line.startswith("damaged, left out")]
    assert damaged == ["damaged, left out: run e-corrupt: corrupt metrics.json: Expecting " + (
        "property name enclosed in double quotes: line 1 column 21 (char 20)")]  # fmt: skip
    answer = " ".join(printed[printed.index("answer: ") : printed.index("wrote ")].split())
    opening = answer_of((out / "report.md").read_text()).split("\n\n")[1]
    assert answer == f"answer: {report.answer_lead((out / 'report.md').read_text())}"
    assert opening.startswith(answer.removeprefix("answer: ")[:60])  # its first sentence
    assert " has the lowest test sum error" in answer and "**" not in answer
    # what it wrote in one line (into a pipe): its own files by name, its plots counted
    line = next(line for line in printed.splitlines() if line.startswith("wrote "))
    plots = len(list((out / "plots").glob("*.png")))
    assert line == (
        f"wrote {out / 'report.md'}, {out / 'report.html'}, {out / 'summary.csv'}, "
        f"{plots} files in {out / 'plots'}/"
    )


@pytest.mark.usefixtures("undrawn")
@pytest.mark.parametrize("width", [80, 100, 400])
def test_a_terminal_too_narrow_for_the_table_gets_the_answers_columns(
    width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Squeezed into 100 columns, the sixteen-column table read "99…" in most cells: a terminal
    narrower than the table gets the answer's columns whole and is told where the rest are; a
    wide one, and a pipe (test_cli_report), get every column."""
    import io

    from rich.console import Console

    screen = io.StringIO()
    terminal = Console(file=screen, width=width, force_terminal=True, color_system=None)
    for module in ("benchmark.progress", "benchmark.commands.common", "benchmark.commands.report"):
        monkeypatch.setattr(f"{module}.console", terminal)
    root = make_suite(tmp_path)
    for seed in (0, 1):  # the committed reference's longest name
        make_run(root / "runs", f"t{seed}", arch="tiny_resnet", fusion="embed_add", seed=seed)
    assert main(["report", "--runs", str(root / "runs" / "*"), "--out", str(tmp_path)]) == 0
    printed = screen.getvalue()
    table = printed[: printed.index("wrote ")]
    assert "gap_cnn x concat" in table and "8.00 ± 4.97" in table and "…" not in table
    if width < 400:  # each row one line: squeezed into 80 columns, the names had broken
        assert "MACs/img" not in table and "every column: " in table
        assert "│ tiny_resnet x embed_add │" in table
    else:
        assert "MACs/img" in table and "every column" not in table


def test_the_terminal_table_prints_names_whole_and_narrow_shortens_only_its_words(
    tmp_path: Path,
) -> None:
    """Cells are text, not rich markup: read as a style tag, "[yours]" vanished from the name.
    Narrow, a study that kept the default reads "= default", and names stay left-aligned."""
    import io

    from rich.console import Console

    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"d{seed}", seed=seed, sum_acc=0.95 + seed / 100, val_curve=(0.9,))
        make_run(runs, f"t{seed}", seed=seed, sum_acc=0.95 + seed / 100, tuned=True,
                 val_curve=(0.9,))  # fmt: skip
    make_run(runs, "late", fusion="late_sum", sum_acc=0.9, config_hash="l0000000", val_curve=(0.9,))
    summary = report_markdown(load(tmp_path))[0]
    summary["yours"] = summary["fusion"] == "late_sum"  # as beside a reference (--against)

    def printed(narrow: bool) -> str:
        stream = io.StringIO()
        Console(file=stream, width=300).print(report.rich_table(summary, narrow))
        return stream.getvalue()

    assert "│ gap_cnn x late_sum [yours] │" in printed(False)
    narrow = printed(True)
    assert "│ = default │" in narrow and "│ gap_cnn x concat " in narrow


def test_cli_report_without_runs_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    status = main(["report", "--runs", str(tmp_path / "nothing" / "*"), "--out", str(tmp_path)])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "matches no run directory" in err
    assert not (tmp_path / "report.md").exists()


def test_cli_report_runs_matching_only_files_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    """A ``--runs`` glob that finds files and no directory names a wrong path, not an empty
    report of one unreadable run; a file among real run directories is still listed."""
    (tmp_path / "notes.txt").write_text("not a run\n")
    out = tmp_path / "out"
    assert main(["report", "--runs", str(tmp_path / "*.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "(only 1 file: " in err and "notes.txt" in err
    assert not out.exists()
    (tmp_path / "gone.txt").symlink_to(tmp_path / "nowhere")  # was counted as a file
    assert main(["report", "--runs", str(tmp_path / "gone.*"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"(only 1 file or link: {tmp_path / 'gone.txt'} (a broken link))" in err
    assert main(["report", "--runs", str(tmp_path / "*.txt"), "--out", str(out)]) == 2
    assert "(only 2 files or links: " in capsys.readouterr().err
    root = make_suite(tmp_path / "suite")
    (root / "runs" / "notes.txt").write_text("not a run\n")
    assert main(["report", "--runs", str(root / "runs" / "*"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert (
        "| notes.txt | not a run |" in text
        and "; 1 incomplete; 1 finished but damaged; 1 other entry (not runs)\n" in text
    )


def test_runs_naming_the_folder_of_runs_is_refused_before_the_report_is_replaced(
    tmp_path: Path, capsys: Any
) -> None:
    """``--runs results/runs`` (the folder, not its runs) wrote a report of one incomplete "run"
    over the existing one and deleted its plots, exit 0. It is refused, naming the glob to give;
    a folder of directories that are not runs is refused too."""
    root = make_suite(tmp_path / "r")
    assert main(["report", "--results-dir", str(root)]) == 0
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["report", "--results-dir", str(root), "--runs", str(root / "runs")]) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{root / 'runs'} holds run directories: give '{root / 'runs' / '*'}'" in line
    (tmp_path / "pictures" / "album").mkdir(parents=True)
    assert main(["report", "--results-dir", str(root), "--runs", str(tmp_path / "pictures")]) == 2
    assert "matches no run directory (none holds a file a run writes" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("second", ["typo/*", "pictures"])
def test_each_runs_glob_of_several_must_match_a_run_directory(
    second: str, tmp_path: Path, capsys: Any
) -> None:
    """``--runs`` repeated: a glob typed wrong beside one that matched was passed over, and the
    report written without its runs, exit 0. Each is held to what one alone is, before any
    file is written."""
    root = make_suite(tmp_path / "r")
    (tmp_path / "pictures" / "album").mkdir(parents=True)
    out = tmp_path / "out"
    given = str(tmp_path / second)
    argv = ["report", "--runs", str(root / "runs" / "*"), "--runs", given, "--out", str(out)]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert f"--runs {given!r} matches no run directory" in line
    assert not out.exists()


def test_a_folder_this_user_may_not_look_into_is_no_run_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's stat in a folder without its x bit is refused (EACCES): ``--runs 'results/*'``
    with such a folder beside the runs stopped on a traceback. (Root, whom no mode stops, runs
    the tests: the refusal is stood in for.)"""
    from benchmark import rundir

    locked, exists = tmp_path / "locked", Path.exists
    locked.mkdir()

    def refused(path: Path) -> bool:
        if path.parent == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return exists(path)

    monkeypatch.setattr(Path, "exists", refused)
    assert not rundir.is_run_dir(locked)


@pytest.mark.usefixtures("undrawn")
def test_a_directory_of_tuning_studies_alone_is_reported(tmp_path: Path, capsys: Any) -> None:
    """``tune`` then ``report`` (no run yet): the studies, and an answer that says why there is
    none; so is a directory of bench CSVs alone. An empty directory, or a given ``--runs`` that
    matches nothing, is still refused."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="gap_cnn__concat__e1", storage=storage,
                                direction="maximize")  # fmt: skip
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 2)
    assert main(["report", "--results-dir", str(tmp_path)]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "No run has finished, so there is nothing to compare yet." in answer_of(text)
    assert "| gap_cnn__concat__e1 | 2 | 0 |" in text
    capsys.readouterr()
    runs = str(tmp_path / "runs" / "*")
    assert main(["report", "--results-dir", str(tmp_path), "--runs", runs]) == 2
    assert "matches no run directory" in capsys.readouterr().err
    benched = tmp_path / "benched"
    shutil.copytree(make_suite(tmp_path / "suite") / "bench", benched / "bench")
    assert main(["report", "--results-dir", str(benched)]) == 0
    assert "## Bench measurements" in (benched / "report.md").read_text()
    capsys.readouterr()
    empty = tmp_path / "empty"
    assert main(["report", "--results-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--results-dir {empty}: no such directory; expected the --results-dir of" in err
    assert not empty.exists()
    empty.mkdir()
    assert main(["report", "--results-dir", str(empty)]) == 2
    said = f"--results-dir {empty}: no run directory, bench CSV or tuning study in it"
    assert said in capsys.readouterr().err
    assert list(empty.iterdir()) == []
    # studies tuned into a journal file: the exports name it, and the line gives the flag
    (empty / "tuned").mkdir()
    (empty / "tuned" / "gap_cnn__concat__e1.json").write_text('{"storage": "journal:j.log"}')
    assert main(["report", "--results-dir", str(empty)]) == 2
    assert (
        f"{said} (its tuned/ exports name studies in journal:j.log: give --storage "
        f"journal:{empty / 'j.log'});" in one_line(capsys.readouterr().err)
    )
    (empty / "tuned" / "gap_cnn__concat__e1.json").write_text('{"storage": "j.log"}')  # bare
    assert main(["report", "--results-dir", str(empty)]) == 2
    assert f"give --storage {empty / 'j.log'});" in one_line(capsys.readouterr().err)


def test_exports_naming_the_storage_already_read_give_no_storage_hint(
    tmp_path: Path, capsys: Any
) -> None:
    """Studies tuned into the directory's own optuna.db, since emptied: --storage naming it
    again would find nothing more, so the refusal does not tell the user to give it."""
    (tmp_path / "tuned").mkdir()
    export = tmp_path / "tuned" / "gap_cnn__concat__e1.json"
    export.write_text('{"storage": "sqlite:///optuna.db"}')
    assert main(["report", "--results-dir", str(tmp_path)]) == 2
    said = one_line(capsys.readouterr().err)
    assert f"--results-dir {tmp_path}: no run directory, bench CSV or tuning study in it;" in said
    assert "--storage" not in said and sorted(tmp_path.iterdir()) == [tmp_path / "tuned"]


def test_a_runs_folder_given_for_its_results_directory_is_told_to_give_the_one_above(
    tmp_path: Path, capsys: Any
) -> None:
    """It was called empty: "no run directory, bench CSV or tuning study in it", and --against
    named a DIR/runs/runs no one had typed."""
    root = make_suite(tmp_path / "suite")
    runs = root / "runs"
    before = sorted(p.name for p in runs.iterdir())
    above = f"it holds run directories itself; give the results directory above it, {root}"
    assert main(["report", "--results-dir", str(runs)]) == 2
    assert f"--results-dir {runs}: {above}" in one_line(capsys.readouterr().err)
    out = tmp_path / "out"
    argv = ["report", "--results-dir", str(root), "--out", str(out), "--against", str(runs)]
    assert main(argv) == 2
    assert one_line(capsys.readouterr().err).endswith(f"--against {runs}: {above}")
    assert sorted(p.name for p in runs.iterdir()) == before and not out.exists()


def test_a_sweep_without_a_default_run_names_its_lowest_error(tmp_path: Path) -> None:
    """No group is in the main comparison, yet a sweep of hand-set values asks which is best:
    the answer says why there is no main comparison and names the lowest error there is."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        configured_run(runs, f"a{seed}", {"lr": 0.01}, seed=seed, sum_acc=0.95 + seed / 100)
        configured_run(runs, f"b{seed}", {"lr": 0.001}, seed=seed, sum_acc=0.90,
                       config_hash="b0000000")  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    why = "No group is a default or tuned configuration at the main comparison's budget (4 epochs"
    other = "under *Other budgets, ablations and hand-set configurations*"
    label = "gap_cnn x concat (epochs 2; lr 0.01)"
    assert why in answer
    lowest = f"{label} has the lowest: 4.50% error (mean of 2 seeds)"
    assert f"Of the 2 groups {other}, **{label}** has the lowest: 4.50% error" in answer
    lead = report.answer_lead(markdown_of(tmp_path))  # what report prints: why, then the lowest
    assert lead.startswith(why) and lowest in lead and "*" not in lead
    one = tmp_path / "one"
    configured_run(one / "runs", "a", {"lr": 0.01}, sum_acc=0.95)
    assert f"The one group {other}, **{label}**, has 5.00% error (one seed)." in answer_of(
        markdown_of(one)
    )


def test_cli_report_out_must_be_a_directory(tmp_path: Path, capsys: Any) -> None:
    root = make_suite(tmp_path)
    (tmp_path / "file").write_text("x")
    argv = ["report", "--runs", str(root / "runs" / "*"), "--out", str(tmp_path / "file")]
    assert main(argv) == 2
    assert "is a file; expected a directory" in capsys.readouterr().err


def test_a_runs_folder_of_stray_files_alone_is_nothing_to_report(tmp_path: Path, capsys) -> None:
    """Only notes.txt in runs/: it wrote an empty report, exit 0 (while an empty runs/, or --runs
    matching only files, exits 2). A stray file is no run; there is nothing to report."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "notes.txt").write_text("my notes\n")
    assert main(["report", "--results-dir", str(tmp_path)]) == 2
    assert "no run directory, bench CSV or tuning study in it" in one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("name", report.REPORT_FILES)
def test_a_report_file_that_is_a_directory_stops_it_before_it_writes(
    name: str, tmp_path: Path, capsys: Any
) -> None:
    """A directory where summary.csv goes: report.md and report.html were written, then the
    command failed (exit 1). Now it is refused first, with nothing written."""
    root = make_suite(tmp_path)
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    assert main(["report", "--runs", str(root / "runs" / "*"), "--out", str(out)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.endswith(f"--out {out}: {out / name} is a directory; expected a file or nothing")
    assert [p.name for p in out.iterdir()] == [name]


@pytest.mark.slow
def test_a_metric_added_in_one_place_reaches_metrics_json_and_the_report(
    mnist, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding a ``Metric`` to ``benchmark.metrics.METRICS`` is the only edit needed: evaluation,
    metrics.json, history.csv, the summary CSV and the report table all pick it up."""
    from benchmark import metrics, rundir, runs
    from benchmark.config import TrainConfig
    from benchmark.data import DigitSumData
    from benchmark.hardware import decide

    # a hit on every pair and its complement: exact rates, whatever the tiny model learned
    odd = metrics.Metric(
        "odd_sum_acc", "odd sum acc", "every pair", lambda pd, ps, d, a: d + a >= 0
    )
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, odd))
    data = DigitSumData(mnist.train, mnist.val.subset(300), mnist.test.subset(300))
    cfg, ex = decide(TrainConfig(epochs=1, train_subset=256, batch_size=64, eval_batch_size=300))
    run_dir = runs.start_run(cfg, tmp_path)
    found = runs.execute(cfg, data, run_dir, ex)
    assert found["test"]["odd_sum_acc"] == 1.0
    assert "val_odd_sum_acc" in (run_dir / rundir.HISTORY).read_text().splitlines()[0]
    summary, _ = report.write_report(load(tmp_path), tmp_path / "out")
    assert "test_odd_sum_acc_mean" in summary.columns
    assert "| odd sum acc % |" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.slow
def test_a_users_run_and_report_with_the_defaults_leave_the_reference_alone(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` and `report` with no --results-dir write into output/, never into results/."""
    reference = tmp_path / "results"
    (reference / "runs").mkdir(parents=True)
    (reference / "report.md").write_text("the committed reference\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    argv = ["run", "--epochs", "1", "--train-subset", "256", "--eval-batch-size", "2000"]
    assert main(argv) == 0
    assert main(["report"]) == 0
    assert len(list((tmp_path / "output" / "runs").iterdir())) == 1
    assert (tmp_path / "output" / "report.md").is_file()
    assert sorted(p.name for p in reference.rglob("*")) == ["report.md", "runs"]
    assert (reference / "report.md").read_text() == "the committed reference\n"


def test_interval_and_welch_against_hand_computation() -> None:
    from benchmark.report import stats

    # mean 2, s = 1, t(0.975, 2) = 4.30265: half-width 4.30265 / sqrt(3) = 2.48414
    assert stats.interval([1.0, 2.0, 3.0]) == pytest.approx((2.0, 2.48414), rel=1e-5)
    mean, half = stats.interval([5.0])
    assert mean == 5.0 and math.isnan(half)  # one seed: no spread to measure
    # Welch: t = -3 / sqrt(1/3 + 1/3) = -3.67423, df = (2/3)^2 / (2 * (1/3)^2 / 2) = 4,
    # two-sided p = 2 * P(T_4 > 3.67423) = 0.021312
    assert stats.welch_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.021312, rel=1e-4)
    # unequal sizes and spreads, where Welch's p (0.0083) is not Student's (0.0413)
    assert stats.welch_p([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 6.5]) == pytest.approx(0.008341, rel=1e-3)
    assert math.isnan(stats.welch_p([1.0], [4.0, 5.0]))
    # seeds that agree to the last digit: told apart unless equal (scipy would give NaN)
    assert stats.welch_p([1.0, 1.0], [2.0, 2.0]) == 0.0
    assert stats.welch_p([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert stats.indistinguishable(0.05) and not stats.indistinguishable(0.0213)
    assert not stats.indistinguishable(math.nan)
    told = stats.told_apart(pd.Series([0.05, 0.0499, math.nan]))
    assert list(told) == [False, True, False]  # the converse, NaN neither


def test_an_interval_over_no_values_has_no_mean_rather_than_a_perfect_one() -> None:
    """A precision twin whose runs gave no error is an empty list: a mean of 0 would read as
    a model that makes no mistakes."""
    from benchmark.report import stats

    mean, half = stats.interval([])
    assert math.isnan(mean) and math.isnan(half)


def test_welch_leaves_a_side_of_one_seed_untested_even_beside_a_constant_group() -> None:
    """One seed has no spread: not testable, even where the other side's seeds all agree."""
    from benchmark.report import stats

    assert math.isnan(stats.welch_p([1.0], [1.0, 1.0]))
    assert math.isnan(stats.welch_p([2.0, 2.0], [1.0]))


def test_welch_tests_a_constant_group_against_a_varied_one_rather_than_by_equality() -> None:
    """Only two constant sides are decided by equality: a group whose seeds agree beside one
    whose seeds vary is Welch's test, with the varied side's spread alone."""
    from benchmark.report import stats

    # t = -2 / sqrt(0 + 1/3) = -sqrt(12), df = 2: two-sided p = 1 - sqrt(12 / 14) = 0.074180
    assert stats.welch_p([1.0, 1.0, 1.0], [2.0, 3.0, 4.0]) == pytest.approx(0.074180, rel=1e-4)
    assert stats.welch_p([1.0, 1.0], [0.0, 2.0]) == pytest.approx(1.0)  # the same mean


def configured_run(root: Path, name: str, config: dict, **kwargs: Any) -> Path:
    """``make_run`` with a fuller config.json section (budget, flags, tuned_from)."""
    run_dir = make_run(root, name, **kwargs)
    found = json.loads((run_dir / "metrics.json").read_text())
    found["config"] = {**found["config"], **config}
    (run_dir / "metrics.json").write_text(json.dumps(found))
    return run_dir


def test_main_comparison_holds_only_the_reference_budget(tmp_path: Path) -> None:
    """Held-out, ablation, other-epoch and hand-tuned runs never enter the main table, even when
    their accuracy is the best; each says what sets it apart."""
    runs = tmp_path / "runs"
    for seed, acc in enumerate((0.95, 0.96, 0.97)):
        make_run(runs, f"ref-{seed}", seed=seed, sum_acc=acc, val_curve=(0.9,))
        make_run(runs, f"late-{seed}", fusion="late_sum", seed=seed, sum_acc=acc - 0.01,
                 val_curve=(0.9,), config_hash="late0000")  # fmt: skip
    make_run(runs, "small-0", arch="small_cnn", sum_acc=0.90, config_hash="s0000000",
             val_curve=(0.9,))  # fmt: skip
    study = "gap_cnn__concat__e1__p1000"
    tuned_from = {"study": study, "budget": {"epochs": 1, "train_subset": None}}
    for seed in (0, 1):
        configured_run(runs, f"tuned-{seed}", {"lr": 0.01, "tuned_from": tuned_from},
                       seed=seed, sum_acc=0.98, tuned=True, config_hash="t0000000",
                       val_curve=(0.9,))  # fmt: skip
    outsiders = {
        "heldout": ({"holdout_pairs": 20}, "holdout_pairs 20"),
        "augment": ({"augment": True}, "augment True"),
        "longer": ({"epochs": 4}, "epochs 4"),
        "hand-lr": ({"lr": 0.01}, "lr 0.01"),
    }
    for i, (name, (config, _)) in enumerate(outsiders.items()):
        configured_run(runs, name, config, sum_acc=0.999, config_hash=f"x000000{i}",
                       val_curve=(0.9,))  # fmt: skip
    # at the budget, but a combination the protocol did not name, or over its parameter cap
    make_run(runs, "unnamed", fusion="embed_add", sum_acc=0.999, config_hash="u0000000",
             val_curve=(0.9,))  # fmt: skip
    make_run(runs, "big", arch="small_cnn", sum_acc=0.999, params=5000, config_hash="b0000000",
             val_curve=(0.9,))  # fmt: skip
    other_study = {"study": "gap_cnn__concat__e4__p9", "budget": {"epochs": 4}}
    configured_run(runs, "tuned-elsewhere", {"tuned_from": other_study}, sum_acc=0.999,
                   tuned=True, config_hash="y0000000", val_curve=(0.9,))  # fmt: skip
    comparison = {
        "plan": {
            "key": "k",
            "budget": {"epochs": 1, "train_subset": None, "holdout_pairs": 0},
            "fixed": {},
            "studies": [study],
            "pairs": [["gap_cnn", "concat"], ["gap_cnn", "late_sum"], ["small_cnn", "concat"]],
            "seeds": [0, 1, 2],
            "trials": 20,
            "max_params": 1000,
        },
        "stages": {"tune": {"vm": 600.0}, "runs": {"vm": 120.0}},
    }
    (tmp_path / "comparison.json").write_text(json.dumps(comparison))
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none"), tmp_path)
    summary, text = report_markdown(inputs)
    sections = dict(zip(summary["config_hash"], summary["section"], strict=True))
    assert {h for h, s in sections.items() if s == "main"} == {
        "aaaa0000", "late0000", "s0000000", "t0000000",
    }  # fmt: skip
    assert sections["x0000000"] == "heldout"
    main = text[text.index("## Main comparison") : text.index("## Tuned vs default")]
    rows = [line for line in main.splitlines() if line[:3] in {f"| {i}" for i in range(10)}]
    assert len(rows) == 4  # the 99.9 % outsiders stay out
    other = text[text.index("## Other budgets") :]
    for _, differs in list(outsiders.values())[1:]:
        assert differs in other
    # sum acc 99.9 %, digit acc and consistency 100 (capped), joint acc 98.9
    assert "| gap_cnn x concat | epochs 4 | 1 | 99.90 | 100.00 | 98.90 | 100.00 | 1,000 |" in other
    assert "tuned by gap_cnn__concat__e4__p9" in other
    assert "a combination the protocol did not name" in other
    assert "5,000 parameters, over the cap of 1,000" in other
    answer = text[text.index("## The answer") : text.index("## Main comparison")]
    assert "(1 epoch on the full training split, fp32, at most 1,000 parameters)" in answer
    best = "**gap_cnn x concat (tuned)** has the lowest test sum error among the groups with at "
    assert best + "least 2 seeds: 2.00%" in answer
    assert "in fp32, under the protocol's cap of 1,000 parameters" in main
    assert "10.0 min" in text and "2.0 min" in text  # the stage wall times


def test_near_best_is_welch_at_5_percent(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    accuracies = (
        (0.97, 0.975, 0.90, 0.945),
        (0.96, 0.965, 0.91, 0.935),
        (0.95, 0.955, 0.92, 0.925),
    )
    for seed, (a, b, c, d) in enumerate(accuracies):
        make_run(runs, f"a-{seed}", seed=seed, sum_acc=a, val_curve=(0.9,))
        make_run(runs, f"b-{seed}", fusion="late_sum", seed=seed, sum_acc=b, val_curve=(0.9,),
                 config_hash="b0000000")  # fmt: skip
        make_run(runs, f"c-{seed}", fusion="embed_add", seed=seed, sum_acc=c, val_curve=(0.9,),
                 config_hash="c0000000")  # fmt: skip
        make_run(runs, f"d-{seed}", fusion="film", seed=seed, sum_acc=d, val_curve=(0.9,),
                 config_hash="d0000000")  # fmt: skip
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none"))
    summary = report.summarize(inputs.runs, inputs.bench).set_index("fusion")
    assert summary.loc["late_sum", "p_vs_best"] == 1.0  # the best: 3.5 % error
    # 4 % vs 3.5 %, s = 1 on both sides: t = 0.61, df = 4, p = 0.57
    assert summary.loc["concat", "near_best"]
    assert summary.loc["concat", "p_vs_best"] == pytest.approx(0.5734, abs=1e-3)
    assert not summary.loc["embed_add", "near_best"]  # 9 % vs 3.5 %: worse
    assert summary.loc["embed_add", "p_vs_best"] < 0.05
    # 6.5 % vs 3.5 %: t = 3.67, df = 4, p = 0.021, under 5 % though not under 1 %
    assert summary.loc["film", "p_vs_best"] == pytest.approx(0.0213, abs=1e-3)
    assert not summary.loc["film", "near_best"]


def test_of_groups_tied_on_mean_error_the_best_is_the_one_the_tables_list_first() -> None:
    """The tie goes to the first by arch, fusion, tuned, configuration and precision, whatever
    order the groups came in."""
    from benchmark.report.aggregate import best_key

    concat = ("gap_cnn", "concat", False, "b0000000", "fp32", False)
    late = ("gap_cnn", "late_sum", False, "a0000000", "fp32", False)
    for first, second in ((concat, late), (late, concat)):
        assert best_key({first: [1.5, 1.5], second: [1.0, 2.0]}) == concat


def test_studies_get_trial_csvs_and_optuna_plots(tmp_path: Path) -> None:
    import optuna

    runs = tmp_path / "runs"
    make_run(runs, "a")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(
        study_name="gap_cnn__concat__e1__p1000",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2) + t.suggest_int("w", 1, 4), 8)
    optuna.create_study(study_name="compare-runs__abc", storage=storage)  # the queue: left out
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none"), tmp_path)
    _, written = report.write_report(inputs, tmp_path / "out")
    names = {p.relative_to(tmp_path / "out").as_posix() for p in written}
    stem = "studies/gap_cnn__concat__e1__p1000"
    assert {f"{stem}.csv", f"{stem}-history.png", f"{stem}-importance.png"} <= names
    assert not any("compare-runs" in n for n in names)
    trials = pd.read_csv(tmp_path / "out" / f"{stem}.csv")
    assert len(trials) == 8 and {"params_lr", "params_w", "value", "state"} <= set(trials.columns)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Tuning studies" in text and f"[history]({stem}-history.png)" in text
    assert 'it installs with `pip install -e ".[dashboard]"`' in text  # not in the README's set-up
    assert "*Best trial*: its number among all the study's trials, those rejected" in text
    assert f"| gap_cnn__concat__e1__p1000 | 8 | 0 | {100 * study.best_value:.2f} |" in text


def test_a_report_reads_the_studies_from_the_storage_they_were_tuned_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Studies tuned in a server or a journal were never in the report, which read
    DIR/optuna.db only. ``--storage`` reads them and writes nothing there; without it the
    directory's own are read; one not there is a note beside a report still written; one of
    no storage's form is one line, exit 2, before anything is written."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    results = tmp_path / "results"
    make_run(results / "runs", "a")
    journal = tmp_path / "elsewhere" / "studies.log"
    journal.parent.mkdir()
    backend = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="gap_cnn__concat__e1__p1000", storage=backend,
                                direction="maximize")  # fmt: skip
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 3)
    before = sorted(journal.parent.iterdir()), journal.read_bytes()
    argv = ["report", "--results-dir", str(results)]
    assert main([*argv, "--storage", f"journal:{journal}"]) == 0
    assert "| gap_cnn__concat__e1__p1000 | 3 | 0 |" in (results / "report.md").read_text()
    assert (sorted(journal.parent.iterdir()), journal.read_bytes()) == before  # only read
    assert main(argv) == 0
    assert "## Tuning studies" not in (results / "report.md").read_text()
    gone = tmp_path / "gone.log"
    assert main([*argv, "--storage", f"journal:{gone}"]) == 0
    said = "".join(capsys.readouterr().out.split())  # a long path is folded at the width
    assert (
        "".join(f"journal:{gone} unreadable, studies left out: no such file: {gone}".split())
        in said
    )
    assert not gone.exists() and (results / "report.md").is_file()
    assert main([*argv, "--storage", f"journal:{journal.parent}"]) == 0  # a folder, not a file
    said = "".join(capsys.readouterr().out.split())
    assert "".join(f"{journal.parent}: a directory; expected a file".split()) in said
    # any SQLite URL SQLAlchemy takes: another driver, %-escapes, a query (as tune takes them)
    spaced = tmp_path / "my studies" / "optuna.db"
    spaced.parent.mkdir()
    optuna.copy_study(from_study_name=study.study_name, from_storage=backend,
                      to_storage=f"sqlite:///{spaced}")  # fmt: skip
    escaped = f"sqlite:///{spaced}".replace(" ", "%20") + "?timeout=30"
    assert main([*argv, "--storage", escaped]) == 0
    assert "| gap_cnn__concat__e1__p1000 | 3 | 0 |" in (results / "report.md").read_text()
    assert main([*argv, "--storage", f"sqlite+pysqlite:///{gone.with_suffix('.db')}"]) == 0
    assert not gone.with_suffix(".db").exists()  # SQLAlchemy had made it, empty
    capsys.readouterr()
    shutil.rmtree(results / "plots")
    monkeypatch.setenv("OPTUNA_STORAGE", "studies")  # not read by report: the flag is named
    assert exit_status([*argv, "--storage", "studies"]) == 2
    assert "--storage 'studies': expected an SQLAlchemy URL" in one_line(capsys.readouterr().err)
    assert exit_status([*argv, "--storage", "postgres://u@h/db"]) == 2  # was a note, exit 1
    said = "--storage 'postgres://u@h/db': no database is called 'postgres'; expected"
    assert said in one_line(capsys.readouterr().err)
    assert not (results / "plots").exists()


def test_study_plots_name_their_objective_in_the_reports_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Optuna's own labels: "Objective Value" as the axis and as a key of every series, a
    fraction where the report gives %, and a one-trial study's axis padded past 100%."""
    import optuna

    from benchmark.report import study_plots

    figures: list = []  # each figure as it would be saved
    monkeypatch.setattr(study_plots, "png_bytes", lambda fig, _: figures.append(fig) or b"")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    one = optuna.create_study(study_name="one", direction="maximize")
    one.optimize(lambda t: 0.99 + 0 * t.suggest_float("lr", 1e-3, 1e-2), 1)
    study_plots.study_plots(one)
    (ax,) = figures[-1].axes
    assert ax.get_ylabel() == "validation joint accuracy (complete trials)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "a complete trial",
        "the best so far",
    ]
    assert ax.get_ylim()[1] <= 1.0 and ax.yaxis.get_major_formatter()(0.99, 0).endswith("%")
    eight = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    eight.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 8)
    study_plots.study_plots(eight)
    importance = figures[-1].axes[0]
    assert importance.get_legend() is None
    assert importance.get_title().endswith("(PED-ANOVA over 8 complete trials)")


def test_a_study_plot_that_cannot_be_drawn_costs_its_files_not_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drawing error (Optuna refusing a study's importances) was reported as "optuna.db
    unreadable, studies left out": every study's row went, and the storage was blamed."""
    import optuna

    from benchmark.report import studies

    make_run(tmp_path / "runs", "a")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s__e1", storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 2)

    def cannot(*_: object) -> dict[str, bytes]:
        raise ValueError("Study must contain at least one completed trial")

    monkeypatch.setattr(studies, "study_plots", cannot)
    inputs = report.load_inputs(str(tmp_path / "runs" / "*"), str(tmp_path / "none"), tmp_path)
    report.write_report(inputs, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| s__e1 | 2 | 0 |" in text and "unreadable" not in text
    assert "study s__e1: its trials CSV and plots not written: Study must contain" in text


def test_a_study_plot_the_report_no_longer_draws_is_removed(tmp_path: Path) -> None:
    """An importance plot of a study that now has too few complete trials for one (its trials
    pruned, or the study started again) stayed in studies/ beside the new history plot, showing
    a study that is no more; the report says when it draws importances."""
    import optuna

    make_run(tmp_path / "runs", "a")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    name = "gap_cnn__concat__e1__p1000"
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 3)
    stale = tmp_path / "out" / "studies" / f"{name}-importance.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\x89PNG an earlier study's")
    other = stale.with_name("another-study-importance.png")  # not a study of this storage
    other.write_bytes(b"\x89PNG")
    inputs = report.load_inputs(str(tmp_path / "runs" / "*"), str(tmp_path / "none"), tmp_path)
    report.write_report(inputs, tmp_path / "out")
    assert not stale.exists() and other.exists()
    assert stale.with_name(f"{name}-history.png").exists()
    text = (tmp_path / "out" / "report.md").read_text()
    assert "where at least 8 trials completed, its parameter importances" in text


def test_the_studies_table_says_when_the_best_trial_was_the_defaults() -> None:
    from benchmark.report.studies import StudyDigest, studies_section

    common = {"epochs": 1, "finished": 20, "over_cap": 0, "best_value": 0.9, "trained": 20,
              "unpruned": 20, "pruner": None, "files": ()}  # fmt: skip
    text = studies_section([
        StudyDigest(name="kept", best_trial=0, defaults_trial=0, **common),
        StudyDigest(name="found", best_trial=7, defaults_trial=0, **common),
    ])  # fmt: skip
    assert "| over the cap (rejected) | best val joint acc % | best trial |" in text  # as tune
    assert "| kept | 20 | 0 | 90.00 | 0 (the defaults) |" in text
    assert "| found | 20 | 0 | 90.00 | 7 |" in text


def test_the_studies_table_links_each_studys_trials_and_plots_by_kind() -> None:
    from benchmark.report.studies import StudyDigest, studies_section

    files = ("studies/s__e1.csv", "studies/s__e1-history.png", "studies/s__e1-importance.png")
    text = studies_section([StudyDigest("s__e1", 1, 2, 0, 0.9, 1, 2, 2, None, files)])
    assert ("| [trials](studies/s__e1.csv), [history](studies/s__e1-history.png), "
            "[importance](studies/s__e1-importance.png) |") in text  # fmt: skip


def test_the_plots_of_a_study_whose_files_were_not_written_are_kept() -> None:
    """Its trials CSV and plots not written this time (a drawing error, noted): the report
    removes none of its earlier plots; a study with files has those it did not draw removed."""
    from benchmark.report.studies import Studies, StudyDigest

    common = (1, 2, 0, 0.9, 1, 2, 2, None)
    drawn = ("studies/b.csv", "studies/b-history.png")
    found = Studies([StudyDigest("a", *common, ()), StudyDigest("b", *common, drawn)])
    assert found.unwritten_plots() == ["studies/b-importance.png"]


def test_studies_of_one_epoch_get_no_pruning_columns() -> None:
    """Pruning saves nothing at one epoch: the columns of what it saved are for budgets over
    one epoch only."""
    from benchmark.report.studies import StudyDigest, studies_section

    common = {"finished": 20, "over_cap": 0, "best_value": 0.9, "best_trial": 3, "trained": 20,
              "unpruned": 20, "pruner": None, "files": ()}  # fmt: skip
    one = studies_section([StudyDigest(name="one", epochs=1, **common)])
    assert "trained to the end" not in one and "epochs trained / trials x E" not in one
    three = studies_section([StudyDigest(name="three", epochs=3, **common)])
    assert "| trained to the end | epochs trained / trials x E |" in three


def main_table_lines(text: str) -> list[str]:
    section = text[text.index("## Main comparison") :]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_readme_quotes_the_generated_main_table() -> None:
    """The README's table is the committed report's, as generated (not hand-edited)."""
    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    quoted = readme[readme.index("<!-- main-table:start -->") : readme.index("<!-- main-table:end")]
    generated = main_table_lines((repo / "results" / "report.md").read_text())
    assert len(generated) > 2 and quoted.splitlines()[1:] == generated


@pytest.mark.slow  # two Python processes drawing the plots: ~18 s on 2 cores
def test_study_plots_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """Optuna lists parameter names from a set; the report fixes their order, so the same study
    gives the same PNG bytes in every process (a committed study whose importance plot did
    change with the hash seed before)."""
    import hashlib
    import os
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    shutil.copy(repo / "results" / "optuna.db", tmp_path / "optuna.db")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    code = (
        "import hashlib, sys, optuna; from benchmark.report.study_plots import study_plots; "
        "s = optuna.load_study(study_name='gap_cnn__concat__e1__p227165', storage=sys.argv[1]); "
        "print(hashlib.sha256(study_plots(s)['importance']).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, storage],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1 and hashlib.sha256(b"").hexdigest() not in digests


def test_the_report_imports_no_torch_and_no_training_code() -> None:
    """The report only reads: importing it loads neither torch nor the trainer nor a command."""
    code = (
        "import sys, benchmark.report; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('benchmark.commands', "
        "'benchmark.trainer', 'benchmark.compare', 'benchmark.tuning', 'architectures'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_migrate_adds_macs_once(tmp_path: Path, capsys: Any) -> None:
    """Older runs get ``macs_per_image`` counted on their model; a second pass changes nothing,
    and the report shows it."""
    from benchmark import migrate

    root = make_suite(tmp_path)
    assert migrate.main([str(root)]) == 0
    assert "5 runs changed" in capsys.readouterr().out.splitlines()[-1]  # the complete ones
    path = root / "runs" / "a-concat-s0" / "metrics.json"
    found = json.loads(path.read_text())
    assert found["macs_per_image"] == 7_351_424  # gap_cnn x concat, as bench counts it
    assert list(found).index("macs_per_image") == list(found).index("params") + 1
    before = {p: p.read_bytes() for p in root.rglob("*.json")}
    assert migrate.main([str(root)]) == 0
    assert capsys.readouterr().out.strip() == "0 runs changed, 0 left as they are"
    assert {p: p.read_bytes() for p in root.rglob("*.json")} == before
    summary = report.summarize(load(root).runs, load(root).bench).set_index("label")
    assert summary.loc["gap_cnn x concat", "macs_per_image"] == 7_351_424


def test_migrate_counts_the_macs_of_the_model_arguments_a_run_took(tmp_path: Path) -> None:
    """A run of another width gets its own model's MACs, not the default width's."""
    from benchmark import migrate
    from benchmark.bench import model_cost

    run_dir = make_run(tmp_path / "runs", "wide")
    path = run_dir / "metrics.json"
    wide = {"config": {"model_args": {"width": 32}}}
    path.write_text(json.dumps(json.loads(path.read_text()) | wide))
    changed, left = migrate.migrate(tmp_path)
    macs = json.loads(path.read_text())["macs_per_image"]
    assert macs == model_cost("gap_cnn", "concat", {"width": 32})[1]
    assert macs != model_cost("gap_cnn", "concat", {})[1] and len(changed) == 1 and not left


def test_migrate_leaves_a_run_it_cannot_build_and_says_why(tmp_path: Path, capsys: Any) -> None:
    """A run of a model this checkout no longer has: left as it is, named with the reason, and
    the other runs still migrated."""
    from benchmark import migrate

    make_run(tmp_path / "runs", "a-gone", arch="gone_cnn")
    make_run(tmp_path / "runs", "b-kept")
    gone = (tmp_path / "runs" / "a-gone" / "metrics.json").read_bytes()
    assert migrate.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "b-kept: metrics.json + macs_per_image 7351424"
    assert lines[1].startswith("a-gone: left as it is (") and "gone_cnn" in lines[1]
    assert lines[-1] == "1 run changed, 1 left as it is"
    assert (tmp_path / "runs" / "a-gone" / "metrics.json").read_bytes() == gone


def test_migrate_refuses_a_folder_that_is_not_a_results_directory(
    tmp_path: Path, capsys: Any
) -> None:
    from benchmark import migrate

    with pytest.raises(SystemExit) as stopped:
        migrate.main([str(tmp_path)])
    assert stopped.value.code == 2
    assert "no runs/ directory there; expected a results directory" in capsys.readouterr().err


def markdown_of(root: Path) -> str:
    """The markdown of the report on ``root/runs`` (``report_markdown``: no plots drawn)."""
    return report_markdown(load(root))[1]


def answer_of(text: str) -> str:
    """The opening sentences of a report's markdown (up to the next section)."""
    start = text.index("## The answer")
    return text[start : text.index("\n## ", start)]


def test_sentences_of_a_one_group_one_seed_report(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", "only", sum_acc=0.95, val_curve=(0.9,))
    answer = answer_of(markdown_of(tmp_path))
    assert "(1 epoch on the full training split, fp32)" in answer
    assert "0.95" not in answer and "5.00% (one seed, so no interval; accuracy 95.00%)" in answer
    assert "It is the only group in the main comparison: there is nothing to compare it with." in (
        answer
    )
    for wrong in ("1 seeds", "(s)", "0 other", "too few seeds"):
        assert wrong not in answer


@pytest.mark.parametrize(
    ("accuracies", "said"),
    [
        (
            [0.09],
            "Its digit accuracy is under 20%, near chance (10%): it learned nothing at this budget",
        ),
        (
            [0.09, 0.08],
            "Every group's digit accuracy is under 20%, near chance (10%): they learned nothing "
            "at this budget, so this ranking means nothing; give more --epochs or a larger "
            "--train-subset.",
        ),
        (
            [0.95, 0.09],
            "The digit accuracy of gap_cnn x late_sum is under 20%, near chance (10%): it learned "
            "nothing at this budget, so its rank means nothing; give",
        ),
        ([0.95, 0.5], None),
    ],
)
def test_the_answer_says_which_groups_learned_nothing(
    accuracies: list[float], said: str | None, tmp_path: Path
) -> None:
    """A smoke run's 90% error was stated as the answer, without the note run gave (digit
    accuracy near chance); the terminal's lead carries the note too."""
    for fusion, acc in zip(["concat", "late_sum"], accuracies, strict=False):
        for seed in (0, 1):
            make_run(tmp_path / "runs", f"{fusion}{seed}", fusion=fusion, seed=seed, sum_acc=acc,
                     config_hash=f"{fusion[:4]}0000")  # fmt: skip
    markdown = markdown_of(tmp_path)
    if said is None:
        assert "near chance" not in markdown
        return
    assert said in answer_of(markdown)
    assert said in report.answer_lead(markdown)


def test_a_group_at_chance_is_never_offered_as_the_smaller_alternative(tmp_path: Path) -> None:
    """Two seeds gave the best an interval of ± 50 points, and a group of chance sums (9.7%,
    its digits 24%) inside it was offered in bold as the smaller alternative."""
    runs = tmp_path / "runs"
    for seed, acc in ((0, 0.31), (1, 0.39)):
        make_run(runs, f"best{seed}", fusion="late_sum", seed=seed, sum_acc=acc, params=2000,
                 config_hash="late0000")  # fmt: skip
        small = make_run(runs, f"small{seed}", seed=seed, sum_acc=0.097 + seed / 1000, params=500)
        found = json.loads((small / "metrics.json").read_text())
        found["test"]["digit_acc"] = 0.237
        (small / "metrics.json").write_text(json.dumps(found))
    answer = answer_of(markdown_of(tmp_path))
    assert "**gap_cnn x late_sum** has the lowest test sum error" in answer, answer
    assert "**gap_cnn x concat**" not in answer
    assert "near chance" not in answer  # its digits learned: 23.7%, over 20%


def test_with_no_main_comparison_every_group_that_learned_nothing_is_said(tmp_path: Path) -> None:
    """A sweep of hand-set values, every one at chance: the lowest is named, and so is the fact
    that none learned (only the lowest was checked)."""
    runs = tmp_path / "runs"
    configured_run(runs, "a", {"lr": 1e-6}, sum_acc=0.09)
    configured_run(runs, "b", {"lr": 1e-7}, sum_acc=0.08, config_hash="b0000000")
    answer = answer_of(markdown_of(tmp_path))
    assert "No group is a default or tuned configuration" in answer
    assert (
        "Every group's digit accuracy is under 20%, near chance (10%): they learned nothing"
        in answer
    )


def test_the_main_comparison_names_tuning_only_where_a_group_is_tuned(tmp_path: Path) -> None:
    """Default runs alone read "or the configuration its own tuning study found": no study ran."""
    make_run(tmp_path / "runs", "a", sum_acc=0.95)
    default_only = "in fp32, with the default configuration; nothing else differs."
    assert default_only in markdown_of(tmp_path)
    make_run(tmp_path / "runs", "b", sum_acc=0.96, tuned=True, config_hash="b0000000")
    both = "with the default configuration or the configuration its own tuning study found"
    assert both in markdown_of(tmp_path)


def test_sentences_when_every_group_has_one_seed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "a", sum_acc=0.95, val_curve=(0.9,))
    make_run(runs, "b", fusion="late_sum", sum_acc=0.90, config_hash="b0000000", val_curve=(0.9,))
    summary, text = report_markdown(load(tmp_path))
    assert summary["p_vs_best"].fillna(-1).tolist() == [1.0, -1]  # the best against itself
    answer = answer_of(text)
    assert "**gap_cnn x concat** has the lowest test sum error: 5.00% (one seed" in answer
    assert "Every group has one seed, so none can be tested against another" in answer
    assert "worse" not in answer and "group(s)" not in answer


@pytest.mark.parametrize(("trained", "said"), [(0.24, "0.2"), (2.46, "2.5"), (123.4, "123")])
def test_the_answer_gives_a_tiny_runs_seconds_in_tenths(
    trained: float, said: str, tmp_path: Path
) -> None:
    """A tiny run trained 0.24 s: "0 s of training" said it took none; a run of a few seconds
    reads to a tenth as well (2.46 s is not "2 s"), a longer one in whole seconds."""
    run = make_run(tmp_path / "runs", "a", sum_acc=0.95, val_curve=(0.9,))
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "train_seconds": trained}))
    assert f"with 1,000 parameters and {said} s of training." in answer_of(markdown_of(tmp_path))


def test_sentences_of_a_two_group_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, (a, b) in enumerate(((0.95, 0.80), (0.96, 0.81), (0.97, 0.82))):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=a, val_curve=(0.9,))
        make_run(runs, f"b{seed}", fusion="late_sum", seed=seed, sum_acc=b,
                 config_hash="b0000000", val_curve=(0.9,))  # fmt: skip
    make_run(runs, "lucky", fusion="embed_add", sum_acc=0.99, config_hash="c0000000",
             val_curve=(0.9,))  # fmt: skip
    table = markdown_of(tmp_path)
    answer = answer_of(table)
    assert "lowest test sum error among the groups with at least 2 seeds: 4.00% (95% CI" in answer
    assert "3 seeds" in answer
    assert "The other group tested, gap_cnn x late_sum, is worse by Welch's t-test" in answer
    assert "1 group has one seed and is untested (gap_cnn x embed_add)" in answer
    assert "does not make a group the best" in answer
    assert "| gap_cnn x embed_add | no | 1 | 1.00 | untested (1 seed) | - |" in table
    assert (  # what each column past the sum's counts, said under the table it heads
        "Other metrics, mean ± std over seeds: *digit acc*: predicted digit is right; *joint "
        "acc*: digit and sum both right on the same pair; *consistency*: predicted sum equals "
        "predicted digit + addend."
    ) in table


def test_the_answer_names_the_smallest_group_tied_with_the_best(tmp_path: Path) -> None:
    """Of the groups Welch cannot tell from the best, the one of fewest parameters is named,
    with its size against the best's: the reason to take it."""
    runs = tmp_path / "runs"
    errors = {("concat", 1000): (3.0, 3.1, 2.9), ("late_sum", 500): (3.05, 3.2, 2.95)}
    for (fusion, params), by_seed in errors.items():
        for seed, error in enumerate(by_seed):
            make_run(runs, f"{fusion}{seed}", fusion=fusion, seed=seed, params=params,
                     sum_acc=1 - error / 100, config_hash=f"{fusion[:4]}0000",
                     val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert "**gap_cnn x concat** has the lowest test sum error" in answer
    assert (  # its size as a fraction of the best's: under 1
        "The smallest of these is **gap_cnn x late_sum**: 500 parameters against 1,000 (0.50x)"
    ) in answer
    assert "It is also the smallest" not in answer


def test_the_answer_counts_where_tuning_lowered_the_error(tmp_path: Path) -> None:
    """Tuned 2% against a default 5%, three seeds each: lowered, not raised."""
    runs = tmp_path / "runs"
    for tuned, by_seed in ((False, (5.0, 5.1, 4.9)), (True, (2.0, 2.1, 1.9))):
        for seed, error in enumerate(by_seed):
            make_run(runs, f"{tuned}{seed}", seed=seed, tuned=tuned, sum_acc=1 - error / 100,
                     config_hash="t0000000" if tuned else "d0000000",
                     val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert (
        "lowered the error significantly in 1 of 1 combination and raised it significantly in 0"
    ) in answer


def test_the_answer_calls_a_default_group_so_beside_tuned_ones(tmp_path: Path) -> None:
    """Prose named "gap_cnn x late_sum (tuned)" and then "gap_cnn x late_sum", meaning the
    default, and said "no more parameters" for 72,666 against 85,357 and "its seeds agree" for
    an interval's half-width: each group is named as tuned or default, the sizes given."""
    runs = tmp_path / "runs"
    errors = {  # % per seed: the best; worse, fewer parameters, narrow; near, wide
        ("concat", True, 1000): (3.0, 3.1, 2.9),
        ("late_sum", False, 500): (4.0, 4.05, 3.95),
        ("embed_add", False, 800): (2.5, 4.5, 6.5),
    }
    for i, ((fusion, tuned, params), per_seed) in enumerate(errors.items()):
        for seed, error in enumerate(per_seed):
            acc = 1 - error / 100
            make_run(runs, f"{fusion}{seed}", fusion=fusion, seed=seed, sum_acc=acc, params=params,
                     tuned=tuned, config_hash=f"{i}" * 8, val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert "**gap_cnn x concat (tuned)** has the lowest test sum error" in answer
    assert (
        "cannot tell it apart from 1 of the 2 other groups tested: gap_cnn x embed_add (default)"
        in answer
    )
    assert (
        "gap_cnn x late_sum (default) has fewer parameters (500 against 800) and a lower mean "
        "error (4.00% against 4.50%) than gap_cnn x embed_add (default), yet is called worse: its "
        "seeds agree more closely (95% CI ± 0.12)"
    ) in answer
    assert "the interval of gap_cnn x embed_add (default) is wider, ± 4.97, and leaves" in answer
    assert (
        "The highest error in the comparison is 4.50%, by gap_cnn x embed_add (default)." in answer
    )
    # in paragraphs: the best; who may stand beside it and why; the rest (one block ran long)
    paragraphs = answer.strip().split("\n\n")[1:]
    assert [p.split(" ", 3)[:3] for p in paragraphs] == [
        ["At", "the", "main"], ["Welch's", "t-test", "at"], ["The", "highest", "error"]
    ]  # fmt: skip
    assert "With 2 seeds" not in answer  # 3 each
    assert (  # 4.50% against the best's 3.00% ± 0.25: not the alternative the rest are
        "gap_cnn x embed_add (default) is not offered as an alternative: its mean error (4.50%)"
    ) in answer


def test_a_group_untold_apart_only_by_a_wide_interval_is_no_alternative(tmp_path: Path) -> None:
    """Two seeds each: the answer bolded a model at 8.9% error as "the smallest of these" beside
    a best at 2.75%, because its interval ran to ± 100, and a group at 6.4% was called worse
    above it in the table without a word (it had more parameters than that one)."""
    runs = tmp_path / "runs"
    errors = {  # % per seed: the best; near, smaller, wide; worse, larger, narrow
        ("concat", 1000): (2.7, 2.8),
        ("late_sum", 300): (1.0, 16.8),
        ("embed_add", 2000): (6.3, 6.5),
        ("film", 500): (2.7, 2.9),  # near, smaller, inside the best's interval: offered
    }
    for i, ((fusion, params), per_seed) in enumerate(errors.items()):
        for seed, error in enumerate(per_seed):
            make_run(runs, f"{fusion}{seed}", fusion=fusion, seed=seed, sum_acc=1 - error / 100,
                     params=params, config_hash=f"{i}" * 8, val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert "**gap_cnn x concat** has the lowest test sum error" in answer
    assert "smallest of these" not in answer
    assert "The smallest of those still offered is **gap_cnn x film**: 500 parameters" in answer
    assert (
        "gap_cnn x late_sum is not offered as an alternative: its mean error (8.90%) lies above "
        "the best's 95% CI (up to 3.39%); the test cannot separate them at its spread (95% CI ± "
    ) in answer
    assert (
        "gap_cnn x embed_add has a lower mean error (6.40% against 8.90%) than gap_cnn x "
        "late_sum, yet is called worse"
    ) in answer
    assert "With 2 seeds a group's 95% interval is wide" in answer


def test_the_answer_counts_the_tuned_rows_that_repeat_their_default() -> None:
    """A study that kept the default adds a row of the default's own runs: "3 of the 17 other
    groups" counted four such rows as groups of their own without a word."""
    from benchmark.report.answer import repeats

    rows = pd.DataFrame({"same_as_default": [True, False, True]})
    assert repeats(rows) == " (2 of them tuned rows that repeat their default)"
    assert repeats(rows.iloc[:2]) == " (one of them a tuned row that repeats its default)"
    assert repeats(rows.iloc[1:2]) == "" and repeats(rows.iloc[:0]) == ""
    # after "3 of the 17 other groups tested", "of them" read as of the 3
    assert repeats(rows, those=True) == " (of those 3, 2 are tuned rows that repeat their default)"
    assert repeats(rows.iloc[:2], those=True) == (
        " (of those 2, 1 is a tuned row that repeats its default)"
    )


def test_an_interval_in_words_stays_within_the_errors_possible(tmp_path: Path) -> None:
    """Two seeds far apart: the t-interval of their error runs below 0% and above 100%; the
    sentences print its ends held to 0-100% (they read "95% CI -110.79-213.73")."""
    for seed, acc in enumerate((0.2, 0.9)):
        make_run(tmp_path / "runs", f"s{seed}", seed=seed, sum_acc=acc, val_curve=(0.9,))
    answer = answer_of(markdown_of(tmp_path))
    assert "45.00% (95% CI 0.00-100.00, 2 seeds" in answer


def test_a_tuned_configuration_equal_to_the_default_is_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"d{seed}", seed=seed, sum_acc=0.95 + seed / 100, val_curve=(0.9,))
        make_run(runs, f"t{seed}", seed=seed, sum_acc=0.95 + seed / 100, tuned=True,
                 val_curve=(0.9,))  # fmt: skip
        make_run(runs, f"l{seed}", seed=seed, sum_acc=0.98 + seed / 100, fusion="late_sum",
                 config_hash="cccc2222", val_curve=(0.9,))  # fmt: skip
    text = markdown_of(tmp_path)
    assert "the study's best configuration is the default itself" in answer_of(text)
    # the tuned row has the default's very errors: the highest is the default's (it named the
    # tuned row, in the committed report too, where the default's was the same)
    assert "The highest error in the comparison is 4.50%, by gap_cnn x concat (default)." in text
    assert "| yes (= default) |" in text
    assert "*= default*: the study's best configuration is the default. " in text  # the key
    # a difference and a test of a configuration against itself would read as measured
    assert "| 2/2 |  |  | the study kept the default (its best trial) |" in text


def test_a_tuned_group_is_its_defaults_twin_only_in_the_same_section_and_precision() -> None:
    """One configuration hash: a tuned group in another section than the default (tuned by a
    study outside the protocol), or in another precision, is not the default repeated."""
    from benchmark.report.aggregate import same_as_default

    group = {"arch": "gap_cnn", "fusion": "concat", "yours": False, "from_defaults": False}
    summary = pd.DataFrame(
        [
            group | {"tuned": tuned, "config_hash": h, "precision": precision, "section": section}
            for tuned, h, precision, section in (
                (False, "aaaa0000", "fp32", "main"),
                (True, "aaaa0000", "fp32", "main"),
                (True, "aaaa0000", "fp32", "other"),
                (False, "bbbb1111", "fp32", "heldout"),
                (True, "bbbb1111", "bf16", "heldout"),
            )
        ]
    )
    assert same_as_default(summary).tolist() == [False, True, False, False, False]


@pytest.mark.usefixtures("undrawn")
def test_a_tuned_group_from_the_defaults_trial_is_the_default(tmp_path: Path) -> None:
    """The study's best trial was its defaults trial: the tuned config spells out the model's
    default arguments, which the default run leaves to the registry, so the two hash apart
    though they train the same model. The report names the tuned group the default (it ranked
    them as two configurations that happened to tie)."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="gap_cnn__concat__e1", storage=storage,
                                direction="maximize")  # fmt: skip
    study.enqueue_trial({"width": 16}, user_attrs={"defaults": True})
    study.optimize(lambda t: 1.0 / t.suggest_int("width", 8, 32), 2)
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"d{seed}", seed=seed, sum_acc=0.95 + seed / 100, val_curve=(0.9,))
        configured_run(runs, f"t{seed}", {"model_args": {"width": 16}, "tuned_from": {
            "study": "gap_cnn__concat__e1", "trial": 0}}, seed=seed, sum_acc=0.95 + seed / 100,
            tuned=True, config_hash="bbbb1111", val_curve=(0.9,))  # fmt: skip
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none"), tmp_path)
    summary, text = report_markdown(inputs)
    assert summary["same_as_default"].tolist() == [False, True]
    from benchmark.report.plots import forest_figure

    names = [t.get_text() for t in forest_figure(summary).axes[0].get_yticklabels()]
    assert sorted(names) == ["gap_cnn x concat", "gap_cnn x concat (tuned = default)"]
    from benchmark.report import plots

    heatmap: list[list[str]] = []  # the twin repeated its default's row (once named "(tuned)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "plot_class_heatmap", lambda c: heatmap.append(list(c.index)))
        patch.setattr(plots, "stamped", lambda figures, stamp: {})
        plots.render_plots(inputs, summary)
    assert heatmap == [["gap_cnn x concat"]]
    assert "| yes (= default) |" in text and "the study kept the default (its best trial)" in text
    assert "the study's best configuration is the default itself" in answer_of(text)
    for seed in (0, 1):  # a second combination, whose study found another configuration
        make_run(runs, f"ld{seed}", fusion="late_sum", seed=seed, sum_acc=0.9 + seed / 100,
                 val_curve=(0.9,))  # fmt: skip
        make_run(runs, f"lt{seed}", fusion="late_sum", seed=seed, sum_acc=0.93 + seed / 100,
                 tuned=True, config_hash="cccc2222", val_curve=(0.9,))  # fmt: skip
    both = report_markdown(report.load_inputs(str(runs / "*"), str(tmp_path / "none"), tmp_path))
    assert "in 0 of 1 combination whose study found another configuration and" in both[1]
    unknown = report.load_inputs(str(runs / "*"), str(tmp_path / "none"))  # no study to ask
    assert "| yes (= default) |" not in report_markdown(unknown)[1]
    for seed in (0, 1):  # ... unless the run says so itself, as runs tuned since do
        configured_run(runs, f"t{seed}-new", {"model_args": {"width": 16}, "tuned_from": {
            "study": "gap_cnn__concat__e1", "trial": 0, "defaults": True}}, seed=seed,
            sum_acc=0.95 + seed / 100, tuned=True, config_hash="bbbb1111",
            val_curve=(0.9,))  # fmt: skip
        shutil.rmtree(runs / f"t{seed}")
    said = report.load_inputs(str(runs / "*"), str(tmp_path / "none"))
    assert "| yes (= default) |" in report_markdown(said)[1]


def test_forest_with_one_group_has_a_marker_and_ticks(tmp_path: Path) -> None:
    from benchmark.report.plots import forest_figure

    make_run(tmp_path / "runs", "only", sum_acc=0.95, val_curve=(0.9,))
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    fig = forest_figure(summary)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and ax.get_yticks().tolist() == [0]
    points = [line for line in ax.get_lines() if len(line.get_xdata()) == 1]
    assert any(p.get_marker() not in (None, "", "None") for p in points)
    assert low < 5.0 < high and ax.get_ylim()[0] < 0 < ax.get_ylim()[1]


def test_untested_groups_are_not_drawn_as_worse(tmp_path: Path) -> None:
    from matplotlib.colors import to_rgba

    from benchmark.report.plots import STANDING_STYLE, forest_figure

    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=0.95 + seed / 100, val_curve=(0.9,))
    make_run(runs, "one", fusion="late_sum", sum_acc=0.90, config_hash="b0000000",
             val_curve=(0.9,))  # fmt: skip
    inputs = load(tmp_path)
    fig = forest_figure(report.summarize(inputs.runs, inputs.bench))
    colours = {to_rgba(line.get_color()) for line in fig.axes[0].get_lines()}
    assert to_rgba(STANDING_STYLE["worse"][0]) not in colours
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "untested: one seed, no interval" in labels and "worse (Welch, 5%)" not in labels


@pytest.mark.usefixtures("undrawn")
def test_report_runs_given_twice_takes_both(tmp_path: Path) -> None:
    make_run(tmp_path / "one", "a", sum_acc=0.95, val_curve=(0.9,))
    make_run(tmp_path / "two", "b", fusion="late_sum", sum_acc=0.9, config_hash="b0000000",
             val_curve=(0.9,))  # fmt: skip
    args = ["report", "--results-dir", str(tmp_path / "out")]
    args += ["--runs", str(tmp_path / "one" / "*"), "--runs", str(tmp_path / "two" / "*")]
    assert main(args) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert sorted(summary["fusion"]) == ["concat", "late_sum"]


@pytest.mark.usefixtures("undrawn")
def test_past_three_damaged_runs_the_rest_are_counted_on_screen(tmp_path: Path, capsys) -> None:
    """Three damaged runs are named, each on its line; the others counted, all in report.md."""
    make_run(tmp_path / "runs", "a", sum_acc=0.95, val_curve=(0.9,))
    for i in range(5):
        corrupt = tmp_path / "runs" / f"corrupt-{i}"
        corrupt.mkdir()
        (corrupt / "metrics.json").write_text('{"arch": "gap_cnn", ')
        (corrupt / "status.json").write_text(json.dumps({"status": "complete"}))
    assert main(["report", "--results-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    named = [line.split(":")[1] for line in lines if line.startswith("damaged, left out: ")]
    assert named == [" run corrupt-0", " run corrupt-1", " run corrupt-2"]
    assert "and 2 more damaged (listed in the report)" in lines


def test_a_bench_glob_given_that_matches_nothing_is_refused(tmp_path: Path, capsys) -> None:
    """As a --runs glob is: it was silently ignored, and the report had no bench section."""
    make_run(tmp_path / "runs", "a", sum_acc=0.95, val_curve=(0.9,))
    args = ["report", "--results-dir", str(tmp_path), "--bench", str(tmp_path / "nomatch*.csv")]
    assert main(args) == 2
    assert "--bench" in capsys.readouterr().err and not (tmp_path / "report.md").exists()


def test_the_bench_files_of_a_results_directory_are_its_csvs_not_their_lock_files(
    tmp_path: Path,
) -> None:
    """bench leaves ``<file>.csv.lock`` beside each CSV it appends to: a report of the
    directory reads the CSV's rows, and takes the lock for no bench file of its own."""
    make_run(tmp_path / "runs", "a", sum_acc=0.95, val_curve=(0.9,))
    csv_path = tmp_path / "bench" / "cpu-fp32.csv"
    benchfile.append_row(csv_path, {"arch": "gap_cnn", "fusion": "concat", "device": "cpu"})
    assert csv_path.with_name(csv_path.name + ".lock").exists()
    inputs = report.load_inputs(places.runs_glob(tmp_path), places.bench_glob(tmp_path))
    assert list(inputs.bench["arch"]) == ["gap_cnn"] and inputs.notes == []


def test_val_curves_of_many_groups_keep_their_panels_and_whole_legends(tmp_path: Path) -> None:
    """A sweep gives one encoder thirty groups: its legend grows the figure below the panels
    (no panel squeezed to nothing, as matplotlib warned of when legends were in the layout) and
    a long entry is wrapped to the panel's width."""
    import warnings

    from benchmark.report.plots import val_curves_figure

    runs = tmp_path / "runs"
    make_run(runs, "small-0", arch="small_cnn", config_hash="s0000000")
    for i in range(30):
        config = {"lr": 0.001 * (i + 1), "batch_size": 64, "train_subset": 2048}
        configured_run(runs, f"lr-{i}", config, config_hash=f"{i:08d}", sum_acc=0.9 + i / 1000)
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    curves = report.val_curves(inputs.history, inputs.runs, summary)
    fig = val_curves_figure(curves, summary, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "constrained_layout not applied ..."
        fig.canvas.draw()
    inches = [ax.get_position().height * fig.get_figheight() for ax in fig.axes]
    assert min(inches) > 2.0
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:  # each legend whole inside the figure, none wider than its panel + gap
        box = ax.get_legend().get_window_extent(renderer)
        assert box.y0 >= 0 and box.x0 >= 0 and box.x1 <= fig.bbox.x1
        assert box.width <= 1.1 * ax.get_window_extent(renderer).width


def test_val_curves_draw_tuned_and_default_as_the_ladder_plots_do(tmp_path: Path) -> None:
    """Tuned solid and filled, default dashed and hollow (the ladder's plots' key; this plot had
    it the other way round), and every panel's legend in one order: fusion, then tuned first.
    A fusion has the marker every plot gives it and a colour that means no encoder (its lines
    were blue and orange, gap_cnn's and small_cnn's colours in the plots beside it)."""
    from matplotlib.colors import to_hex

    from benchmark.report.marks import COLOURS
    from benchmark.report.plots import val_curves_figure

    runs = tmp_path / "runs"
    for arch, best in (("gap_cnn", "late_sum"), ("small_cnn", "concat")):  # orders by error differ
        for fusion in ("concat", "late_sum"):
            acc = 0.95 if fusion == best else 0.9
            make_run(runs, f"{arch}-{fusion}", arch=arch, fusion=fusion, sum_acc=acc,
                     config_hash=f"{arch[:4]}{fusion[:4]}")  # fmt: skip
            make_run(runs, f"{arch}-{fusion}-t", arch=arch, fusion=fusion, sum_acc=acc + 0.01,
                     tuned=True, config_hash=f"t{arch[:3]}{fusion[:4]}")  # fmt: skip
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    fig = val_curves_figure(report.val_curves(inputs.history, inputs.runs, summary), summary, None)
    for ax in fig.axes:
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        # a default line says so: "concat" beside "concat, tuned" left it to the dashes
        assert legend == ["concat, tuned", "concat, default", "late_sum, tuned",
                          "late_sum, default"], legend  # fmt: skip
        for line in ax.get_lines():
            tuned = "tuned" in line.get_label()
            assert line.get_linestyle() == ("-" if tuned else "--"), line.get_label()
            assert (line.get_markerfacecolor() == "white") is not tuned, line.get_label()
            fusion = line.get_label().split(",")[0]
            assert line.get_marker() == {"concat": "o", "late_sum": "s"}[fusion]
            assert to_hex(line.get_color()) not in {to_hex(c) for c in COLOURS}
    # a study that kept the default: its tuned line hides the default's, and says so
    kept = summary.assign(same_as_default=summary["tuned"] & (summary["fusion"] == "concat"))
    curves = report.val_curves(inputs.history, inputs.runs, kept)
    legend = val_curves_figure(curves, kept, None).axes[0].get_legend().get_texts()
    assert [text.get_text() for text in legend][:2] == [
        "concat, tuned = default",
        "concat, default",
    ]
    untuned = summary[~summary["tuned"]]  # with nothing tuned beside it, no line is "default"
    curves = report.val_curves(inputs.history, inputs.runs, untuned)
    legend = val_curves_figure(curves, untuned, None).axes[0].get_legend().get_texts()
    assert [text.get_text() for text in legend] == ["concat", "late_sum"]
    # the key on a line of its own (wrapped with the sentence, it broke after "dashed,")
    assert (
        fig.texts[0].get_text().splitlines()[-1] == "tuned: solid, filled; default: dashed, hollow"
    )


def test_a_group_with_no_test_error_is_reported(tmp_path: Path) -> None:
    """Every test pair right (the synthetic digits give it in seconds): the error axes' span
    divided by 0, and report stopped with a traceback, writing nothing."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=1.0, val_curve=(0.9, 1.0))
    make_run(runs, "late", fusion="late_sum", sum_acc=0.99, config_hash="l0000000")
    _, written = report.write_report(load(tmp_path), tmp_path / "out")
    assert {"forest.png", "pareto.png", "val_curves.png"} <= {p.name for p in written}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| gap_cnn x concat | no | 2 | 0.00 ± 0.00 | best |" in text


@pytest.mark.usefixtures("undrawn")
def test_a_tiny_runs_training_seconds_never_read_as_none(tmp_path: Path) -> None:
    """Runs of a few hundredths of a second: "0.0 s of training" read as training that cost
    nothing, in the sentences and the tables alike."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        path = make_run(runs, f"a{seed}", seed=seed) / "metrics.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"train_seconds": 0.02}))
    report.write_report(load(tmp_path), tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "and <0.1 s of training" in text
    main = text.split("## Main comparison")[1].split("\n## ")[0]
    assert " | <0.1 | " in main and " | 0.0 | " not in main


def test_error_axes_of_a_narrow_spread_have_distinct_ticks_and_stay_under_100(
    tmp_path: Path,
) -> None:
    """Validation errors of 87-91% (a tiny budget) fell between two 1-2-5 ticks: the log axis
    labelled its fallback ticks 90, 90, 90, 89, 88 and ran to 180%; the heatmap's colour scale
    to 450%."""
    from benchmark.report.plots import plot_class_heatmap, val_curves_figure

    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"r{seed}", seed=seed, sum_acc=0.11, val_curve=(0.09, 0.125))
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    fig = val_curves_figure(report.val_curves(inputs.history, inputs.runs, summary), summary, None)
    fig.canvas.draw()
    (ax,) = fig.axes
    low, high = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert shown and len(set(shown)) == len(shown), shown
    assert high <= 100  # (the span above an error of 90% reached 180)
    classes = pd.DataFrame([[0.55] + [0.1] * 18], index=["gap_cnn x concat"])
    heatmap = plot_class_heatmap(classes)
    norm = heatmap.axes[0].images[0].norm
    assert norm.vmax <= 100 and norm.vmax / norm.vmin >= 10


def test_the_scope_names_the_model_arguments_a_protocol_held_fixed() -> None:
    """A compare of timm ViTs holds img_size and patch_size in every run of a model that takes
    them: the report's scope says so beside the budget, and a protocol that held none says
    nothing of them."""
    from benchmark.report.answer import scope
    from benchmark.report.reference import from_comparison

    plan = {"key": "k", "studies": [], "budget": {"epochs": 1, "train_subset": 512}}
    summary = pd.DataFrame({"section": ["main"], "precision": ["fp32"]})
    held = {"fixed": {"model_args": {"patch_size": 7, "img_size": 28}}}
    assert scope(from_comparison({"plan": plan | held}), summary) == (
        "1 epoch on 512 training images, img_size=28, patch_size=7 where a model takes them, fp32"
    )
    assert scope(from_comparison({"plan": plan}), summary) == "1 epoch on 512 training images, fp32"


def sized(run_dir: Path, **model_args: Any) -> None:
    """Give a ``make_run`` run the model arguments it was trained with (its recorded config)."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["config"]["model_args"] = model_args
    path.write_text(json.dumps(metrics))


@pytest.mark.parametrize("held", [False, True])
def test_a_vit_sized_for_mnist_is_compared_as_the_model_it_is(tmp_path: Path, held: bool) -> None:
    """A timm ViT told img_size=28 and patch_size=7 (without which it cannot run) is in the main
    comparison, named with its sizes, and tested against the best; a hand-set width is still
    another configuration. Where a protocol holds the ViT's sizes, gap_cnn beside it is still
    main and the ViT at patch_size=4 differs from it."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"g{seed}", seed=seed, sum_acc=0.98 + seed / 1000)
        sized(make_run(runs, f"w{seed}", seed=seed, config_hash="w0000000"), width=32)
        for patch in (7, 4):
            acc, name = 0.97 - seed / 1000 - patch / 1000, f"v{patch}000000"
            vit = make_run(runs, name + str(seed), arch="timm:test_vit", seed=seed, sum_acc=acc,
                           config_hash=name)  # fmt: skip
            sized(vit, img_size=28, patch_size=patch)
    if held:
        plan = {"key": "k", "budget": {"epochs": 2}, "studies": []}
        plan["fixed"] = {"model_args": {"img_size": 28, "patch_size": 7}}
        plan |= {"pairs": [["gap_cnn", "concat"], ["timm:test_vit", "concat"]], "seeds": [0, 1]}
        plan |= {"trials": 1, "max_params": 10_000}
        (tmp_path / "comparison.json").write_text(json.dumps({"plan": plan, "stages": {}}))
    inputs = report.load_inputs(str(runs / "*"), str(tmp_path / "none"), tmp_path)
    summary, text = report_markdown(inputs)
    sections = dict(zip(summary["config_hash"], summary["section"], strict=True))
    labels = dict(zip(summary["config_hash"], summary["label"], strict=True))
    assert sections["w0000000"] == "other" and "model_args width=32" in labels["w0000000"]
    assert sections["aaaa0000"] == "main"  # gap_cnn takes no sizes: not missing the ViT's
    assert sections["v7000000"] == "main"
    assert labels["v7000000"] == "timm:test_vit x concat (img_size=28, patch_size=7)"
    main = text[text.index("## Main comparison") : text.index("## Other budgets")]
    assert "| timm:test_vit x concat (img_size=28, patch_size=7) | no | 2 |" in main
    if held:  # the protocol's patch size is part of what it compares
        assert sections["v4000000"] == "other"
        assert labels["v4000000"] == (
            "timm:test_vit x concat (img_size=28, patch_size=4) (model_args patch_size=4)"
        )
    else:
        assert sections["v4000000"] == "main"


def test_what_differs_in_model_arguments_is_only_what_differs() -> None:
    """A group's model arguments against the reference's: the entries that differ, an entry it
    lacks as the default, never the whole set again."""
    from benchmark.report.reference import SAME, from_comparison

    plan = {"key": "k", "studies": [], "budget": {"epochs": 1}}
    ref = from_comparison({"plan": plan | {"fixed": {"model_args": {"width": 32, "depth": 3}}}})
    config = {"arch": "gap_cnn", "fusion": "concat", "epochs": 1}
    assert ref.differs(config | {"model_args": {"width": 16, "depth": 3}}, None) == (
        "model_args width=16"
    )
    assert ref.differs(config | {"model_args": {"depth": 3}}, None) == "model_args width=default"
    assert ref.differs(config | {"model_args": {"width": 32, "depth": 3}}, None) == SAME


def test_val_curves_draw_the_main_comparisons_groups_where_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every other budget's and variant's curve beside them, a panel of the committed
    report held 13-18 lines, most of them dotted, and could not be read; without a main
    comparison every group is still drawn."""
    from matplotlib.figure import Figure

    from benchmark.report import plots

    root = make_suite(tmp_path)
    configured_run(root / "runs", "lr", {"lr": 0.01, "train_subset": 2048}, config_hash="b0000000")
    inputs = load(root)
    summary = report.summarize(inputs.runs, inputs.bench)
    main = set(summary.loc[summary["section"] == "main", "label"])
    assert main and set(summary["label"]) - main  # a suite with groups of both kinds
    drawn = []
    monkeypatch.setattr(plots, "val_curves_figure", lambda c, *a: drawn.append(c) or Figure())
    plots.render_plots(inputs, summary)
    assert len(drawn[-1]) and set(drawn[-1]["label"]) <= main
    plots.render_plots(inputs, summary.assign(section="other"))  # no main comparison
    assert set(drawn[-1]["label"]) - main
    monkeypatch.undo()
    fig = plots.val_curves_figure(
        report.val_curves(inputs.history, inputs.runs, summary[summary["section"] == "main"]),
        summary,
        None,
    )
    assert "of the main comparison's groups" in fig.get_suptitle()


@pytest.mark.parametrize(
    ("span", "ticks"),
    [
        ((0.25, 1.0), ["0.3", "0.4", "0.5", "0.6", "0.7", "1"]),  # the main comparison's forest
        ((0.25, 15.0), ["0.3", "0.5", "1", "2", "3", "5", "10"]),  # the ladder's curves
        (
            (1.0, 5000.0),
            ["1", "2", "5", "10", "20", "50", "100", "200", "500", "1,000", "2,000", "5,000"],
        ),
    ],
)
def test_a_log_axis_gets_more_ticks_the_narrower_it_is(span: tuple, ticks: list[str]) -> None:
    """1, 2 and 5 per decade left the committed winners' 0.36-0.47% between the ticks 0.2 and
    0.5, and the forest's 0.25-1% axis with 0.3 and 0.5 alone."""
    from matplotlib.figure import Figure

    from benchmark.report.marks import plain_log_ticks

    ax = Figure().subplots()
    ax.set_yscale("log")
    ax.set_ylim(*span)
    plain_log_ticks(ax.yaxis)
    ax.figure.canvas.draw()
    low, high = span
    shown = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert shown == ticks


def test_a_tie_between_budgets_is_broken_by_the_larger_and_said() -> None:
    """One run on 3,000 images and one on 20,000, both 1 epoch: the first was taken as the
    main comparison's budget (the order of the runs), with no word of the tie."""
    from benchmark.report.reference import most_used

    ref = most_used([{"epochs": 1, "train_subset": 3000}, {"epochs": 1, "train_subset": 20000}])
    assert ref.base["train_subset"] == 20000
    assert ref.source == (
        "the budget most default runs used, as no `compare` protocol was found; tied with 1 "
        "other, it has the most epochs and images"
    )
    alone = most_used([{"epochs": 1, "train_subset": 3000}] * 2 + [{"epochs": 4}])
    assert alone.base["train_subset"] == 3000 and "tied" not in alone.source


def test_a_tie_between_budgets_goes_to_more_epochs_then_to_the_full_training_split() -> None:
    """The larger budget wins a tie in each of its parts: epochs first, and the full training
    split (``train_subset`` None) holds more images than any subset of it."""
    from benchmark.report.reference import most_used

    epochs = most_used([{"epochs": 1}, {"epochs": 3}])
    assert epochs.base["epochs"] == 3 and "tied with 1 other" in epochs.source
    split = most_used([{"epochs": 1, "train_subset": 20000}, {"epochs": 1}])
    assert split.base["train_subset"] is None


def test_val_curves_mark_the_main_budget_only_inside_the_axis(tmp_path: Path) -> None:
    """At the last epoch drawn, the budget's line sat on the right edge and took a key row in
    every panel to mark nothing; a budget before the last epoch is still marked."""
    from types import SimpleNamespace

    from benchmark.report.plots import val_curves_figure

    for seed in (0, 1):
        make_run(tmp_path / "runs", f"a{seed}", seed=seed, val_curve=(0.5, 0.8))
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    curves = report.val_curves(inputs.history, inputs.runs, summary)

    def marked(epochs: int) -> list[str]:
        ref = SimpleNamespace(base={"epochs": epochs})
        fig = val_curves_figure(curves, summary, ref)  # type: ignore[arg-type]
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        return [t for t in texts if t.startswith("main comparison")]

    assert marked(2) == []
    assert marked(1) == ["main comparison: 1 ep."]


def test_a_run_tuned_at_another_budget_is_not_in_the_main_comparison() -> None:
    """Its export was tuned for another number of epochs: a tuned group of the main comparison
    is one tuned at the comparison's own budget."""
    from benchmark.report.reference import Reference, learned

    ref = Reference(learned({"epochs": 1}), None, "x")
    tuned = {"study": "s", "trial": 0, "value": 0.5}
    assert ref.is_main({"epochs": 1}, {**tuned, "budget": {"epochs": 1}})
    assert not ref.is_main({"epochs": 1}, {**tuned, "budget": {"epochs": 3}})


def test_a_configuration_tuned_by_a_study_outside_the_protocol_is_not_in_its_main_comparison() -> (
    None
):
    """A ``compare`` protocol names its studies: a run tuned at its budget by another study (a
    ``tune`` of the user's own) is not one of its tuned configurations; beside it (``--against``),
    a user's run tuned by any study at that budget is."""
    from benchmark.report.reference import Reference, learned

    ref = Reference(learned({"epochs": 1}), frozenset({"s"}), "x")
    budget = {"budget": {"epochs": 1}}
    assert ref.is_main({"epochs": 1}, {"study": "s", **budget})
    assert not ref.is_main({"epochs": 1}, {"study": "mine", **budget})
    assert ref.opened().is_main({"epochs": 1}, {"study": "mine", **budget})


def test_a_tuned_run_that_changed_what_no_study_searches_is_not_in_the_main_comparison() -> None:
    """A study searches lr, width and the like; a tuned run with another optimizer as well
    differs from the reference in more than its tuning."""
    from benchmark.report.reference import Reference, learned

    ref = Reference(learned({"epochs": 1}), None, "x")
    tuned = {"study": "s", "budget": {"epochs": 1}}
    assert ref.is_main({"epochs": 1, "lr": 0.01}, tuned)
    assert not ref.is_main({"epochs": 1, "lr": 0.01, "optimizer": "sgd"}, tuned)
    assert ref.differs({"epochs": 1, "lr": 0.01, "optimizer": "sgd"}, tuned) == (
        "tuned by s; optimizer sgd"
    )


def test_what_sets_a_tuned_group_apart_leaves_out_what_its_study_tuned() -> None:
    """A configuration tuned at 3 epochs differs from a 1-epoch reference in its epochs: its
    study's lr and sizes are what tuning is, not a difference to list."""
    from benchmark.report.reference import Reference, learned

    ref = Reference(learned({"epochs": 1}), None, "x")
    config = {"epochs": 3, "lr": 0.01, "model_args": {"width": 24}}
    assert ref.differs(config, {"study": "s", "budget": {"epochs": 3}}) == "tuned by s; epochs 3"


def test_what_differs_says_the_full_split_in_words_and_floats_short() -> None:
    """Beside a reference of 512 training images, a run on the full split says so (not
    "train_subset None"); floats read as they would be typed (lr 1, not 1.0)."""
    from benchmark.report.reference import Reference, learned

    ref = Reference(learned({"epochs": 1, "train_subset": 512}), None, "x")
    config = {"arch": "gap_cnn", "fusion": "concat", "epochs": 1, "lr": 1.0, "weight_decay": 0.0}
    assert ref.differs(config, None) == (
        "lr 1; train_subset none (the full training split); weight_decay 0"
    )


def test_a_tie_between_budgets_goes_to_more_epochs_before_more_images() -> None:
    from benchmark.report.reference import most_used

    assert most_used([{"epochs": 3, "train_subset": 3000}, {"epochs": 1}]).base["epochs"] == 3


def test_a_reference_opened_for_a_users_runs_takes_any_combination_and_keeps_its_cap() -> None:
    """``report --against``: a user's combination the protocol never named is compared at its
    budget; the protocol's parameter cap still holds (at the cap is within it)."""
    from benchmark.report.reference import Reference, learned

    pairs = frozenset({("gap_cnn", "concat")})
    ref = Reference(learned({"epochs": 1}), frozenset({"s"}), "x", pairs, 2000)
    mine = {"arch": "my_cnn", "fusion": "gated", "epochs": 1}
    assert not ref.is_main(mine, None)
    opened = ref.opened()
    assert opened.is_main(mine, None)
    assert opened.over_cap(2001) and not opened.over_cap(2000) and not opened.over_cap(math.nan)


def test_two_seeds_in_any_tested_group_bring_the_few_seeds_note(tmp_path: Path) -> None:
    """The best has 3 seeds, the other group 2: its interval is the wide one."""
    runs = tmp_path / "runs"
    for i, (fusion, per_seed) in enumerate((("concat", (1.0, 1.1, 1.2)), ("late_sum", (3.0, 3.1)))):
        for seed, error in enumerate(per_seed):
            make_run(runs, f"{fusion}{seed}", fusion=fusion, seed=seed, sum_acc=1 - error / 100,
                     config_hash=f"{i}" * 8, val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert "**gap_cnn x concat** has the lowest test sum error" in answer
    assert "With 2 seeds a group's 95% interval is wide" in answer


@pytest.mark.parametrize(("yours", "claim"), [(4.0, ":"), (0.5, " of the reference's groups:")])
def test_the_reference_best_is_the_lowest_only_where_none_of_yours_is_lower(
    yours: float, claim: str
) -> None:
    from benchmark.report.answer import best_sentence

    main = pd.DataFrame(
        {
            "label": ["ref", "mine"],
            "yours": [False, True],
            "n": [3, 3],
            "test_sum_err_mean": [1.0, yours],
            "test_sum_err_ci": [0.1, 0.1],
            "test_sum_acc_mean": [0.99, 1 - yours / 100],
            "params": [1000, 1000],
            "train_seconds_mean": [10.0, 10.0],
        }
    )
    text = best_sentence(main.iloc[0], main, "1 epoch")
    assert f"the reference's best, **ref**, has the lowest test sum error{claim}" in text


@pytest.mark.parametrize(
    ("tuned_error", "delta", "said"),
    [(2.0, "-3.00", "better"), (8.0, "+3.00", "worse"), (5.05, "+0.05", "no difference detected")],
)
def test_the_tuning_column_calls_a_lowered_error_better(
    tuned_error: float, delta: str, said: str, tmp_path: Path
) -> None:
    """Error is what the table measures: tuning that lowered it is an improvement, and the
    column must not read it the other way round (nor a difference Welch cannot tell from none
    as either); the difference column is signed either way."""
    runs = tmp_path / "runs"
    for tuned, center in ((False, 5.0), (True, tuned_error)):
        for seed, error in enumerate((center, center + 0.1, center - 0.1)):
            make_run(runs, f"{tuned}{seed}", seed=seed, tuned=tuned, sum_acc=1 - error / 100,
                     config_hash="t0000000" if tuned else "d0000000",
                     val_curve=(0.9,))  # fmt: skip
    markdown = markdown_of(tmp_path)
    section = markdown[markdown.index("## Tuned vs default") :]
    (row,) = [line for line in section.splitlines() if line.startswith("| gap_cnn x concat |")]
    assert row.endswith(f"| {said} |"), row
    assert row.split(" | ")[6] == delta, row


def test_the_best_rows_p_cell_is_blank(tmp_path: Path) -> None:
    """The best is what the others are tested against: a p-value of it against itself would
    read as a test that was made."""
    runs = tmp_path / "runs"
    for seed, (a, b) in enumerate(((0.95, 0.80), (0.96, 0.81), (0.97, 0.82))):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=a, val_curve=(0.9,))
        make_run(runs, f"b{seed}", fusion="late_sum", seed=seed, sum_acc=b,
                 config_hash="b0000000", val_curve=(0.9,))  # fmt: skip
    rows = display_table(report_markdown(load(tmp_path))[0]).set_index("vs best")
    assert rows.loc["best", "p"] == ""
    assert rows.loc["worse", "p"] not in ("", "-")


def test_the_main_tables_columns_read_each_groups_own_figures(tmp_path: Path) -> None:
    """Every column in its place and every cell of a known group: the metrics other than the sum
    accuracy (which the error column gives) as mean ± std, a target never reached said so, and
    the Pareto mark only on the group that no smaller one beats."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=0.95 + 2 * seed / 100)
        make_run(runs, f"b{seed}", fusion="late_sum", seed=seed, sum_acc=0.90 + 2 * seed / 100,
                 params=2000, config_hash="b0000000")  # fmt: skip
    inputs = load(tmp_path)
    table = display_table(report.summarize(inputs.runs, inputs.bench))
    # errors 5 and 3 %: mean 4, half-width t(0.975, 1) * sqrt(2) / sqrt(2) = 12.71; digit
    # accuracy 96 and 98 %: mean 97, std sqrt(2) = 1.41 (joint 1 point under, consistency 0.5 over)
    assert table.iloc[0].to_dict() == {
        "#": "1",
        "combination": "gap_cnn x concat",
        "tuned": "no",
        "n": "2",
        "sum error % (95% CI)": "4.00 ± 12.71",
        "vs best": "best",
        "p": "",
        "digit acc %": "97.00 ± 1.41",
        "joint acc %": "95.00 ± 1.41",
        "consistency %": "96.50 ± 1.41",
        "params": "1,000",
        "MACs/img": "-",
        "train s": "100.5",
        "train img/s": "1,500",
        "s to 99% val": "not reached (0/2)",
        "Pareto": "*",
    }
    assert list(table.iloc[1][["combination", "params", "Pareto"]]) == [
        "gap_cnn x late_sum",
        "2,000",
        "",
    ]


def with_precision(run_dir: Path, precision: str) -> None:
    found = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**found, "precision": precision}))


def test_the_main_comparison_names_only_its_own_precision(tmp_path: Path) -> None:
    """bf16 twins go to the precision section: the sentence over the main table says what its
    rows were trained in, not every precision of the report."""
    runs = tmp_path / "runs"
    for precision in ("fp32", "bf16"):
        for seed in (0, 1):
            run = make_run(runs, f"{precision}-{seed}", seed=seed, sum_acc=0.95 + seed / 100,
                           val_curve=(0.9,))  # fmt: skip
            with_precision(run, precision)
    summary, markdown = report_markdown(load(tmp_path))
    assert set(summary["section"]) == {"main", "precision"}
    main = markdown[markdown.index("## Main comparison") :]
    assert "), in fp32, with the default configuration" in main
    assert "bf16, fp32" not in main


def test_sections_follow_in_order_each_with_its_own_precision_and_pareto_front(
    tmp_path: Path,
) -> None:
    """The main comparison first, then the precision twins, the other budgets and held-out pairs,
    though each is more accurate than the one before. The main comparison's precision is that of
    most of its own runs (bf16 is most of the report's) and its Pareto front is drawn among its
    own groups, whatever a group elsewhere scores."""
    runs = tmp_path / "runs"
    found = [("main", {}, "fp32", 0.90, 1000, "aaaa0000", 2)]
    found += [("bf16", {}, "bf16", 0.92, 1000, "aaaa0000", 1)]
    found += [("aug", {"augment": True}, "bf16", 0.94, 1000, "x0000000", 3)]
    found += [("held", {"holdout_pairs": 20}, "fp32", 0.96, 500, "h0000000", 1)]
    for name, config, precision, acc, params, config_hash, seeds in found:
        for seed in range(seeds):
            run = configured_run(runs, f"{name}-{seed}", config, seed=seed, sum_acc=acc,
                                 params=params, config_hash=config_hash,
                                 val_curve=(0.9,))  # fmt: skip
            with_precision(run, precision)
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench)
    assert summary[["section", "precision", "differs", "pareto"]].values.tolist() == [
        ["main", "fp32", "the reference configuration", True],
        ["precision", "bf16", "precision bf16", False],
        ["other", "bf16", "augment True; precision bf16", False],
        ["heldout", "fp32", "holdout_pairs 20", False],
    ]


def test_runs_with_held_out_pairs_are_never_the_main_comparison_even_of_a_held_out_protocol(
    tmp_path: Path,
) -> None:
    """A protocol planned with held-out pairs is another experiment: its runs go to the held-out
    section, not to a main comparison."""
    from benchmark.report.reference import from_comparison

    budget = {"epochs": 1, "train_subset": None, "holdout_pairs": 3}
    plan = {"key": "k", "budget": budget, "fixed": {}, "studies": []}
    configured_run(tmp_path / "runs", "held", {"holdout_pairs": 3}, val_curve=(0.9,))
    inputs = load(tmp_path)
    summary = report.summarize(inputs.runs, inputs.bench, from_comparison({"plan": plan}))
    assert summary["section"].tolist() == ["heldout"]


def test_time_to_target_is_the_mean_elapsed_time_of_the_seeds_that_reached_it(
    tmp_path: Path,
) -> None:
    """Seed 0 reaches 99% at its second epoch (20 s in), seed 1 at its first (10 s), seed 2
    never: 15 s over the two that did, and a count that says one did not."""
    runs = tmp_path / "runs"
    for seed, curve in enumerate(((0.5, 0.995), (0.995, 0.996), (0.5, 0.6))):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=0.95, val_curve=curve)
    summary = report_markdown(load(tmp_path))[0]
    (cell,) = display_table(summary)["s to 99% val"]
    assert cell == "15.0 (2/3)"


def test_time_to_target_adds_the_seconds_of_the_epochs_in_order_up_to_99_percent_itself() -> None:
    """A history listed out of epoch order is read in epoch order; 99.00% reaches the target."""
    from benchmark.report.aggregate import time_to_target

    history = pd.DataFrame({
        "run": ["a", "a", "a", "b", "b"], "epoch": [3, 1, 2, 1, 2],
        "val_sum_acc": [0.995, 0.5, 0.99, 0.9, 0.98], "seconds": [4.0, 10.0, 7.0, 10.0, 10.0],
    })  # fmt: skip
    assert time_to_target(history).to_dict() == {"a": 17.0}  # b never reached it
    assert time_to_target(history.drop(columns="seconds")).empty  # a history without times


@pytest.mark.parametrize(
    ("params", "said"),
    [
        (1000, "worse has as many parameters and a lower mean error"),
        (500, "worse has fewer parameters (500 against 1,000) and a lower mean error"),
        (2000, "worse has a lower mean error"),
    ],
)
def test_a_group_called_worse_below_a_tied_ones_mean_says_how_its_size_compares(
    params: int, said: str
) -> None:
    """Of equal size is a reason to prefer it as much as smaller: the note says so rather than
    leave its size out."""
    from benchmark.report.answer import spread_notes

    def group(label: str, size: int, mean: float, ci: float, p: float) -> pd.DataFrame:
        return pd.DataFrame([{"label": label, "params": size, "test_sum_err_mean": mean,
                              "test_sum_err_ci": ci, "p_vs_best": p}])  # fmt: skip

    (note,) = spread_notes(group("worse", params, 2.0, 0.1, 0.01), group("wide", 1000, 2.5, 3, 0.5))
    assert note.startswith(said), note


def test_a_group_called_worse_above_every_tied_ones_mean_gets_no_spread_note() -> None:
    """The note explains a lower mean called worse; a worse group whose mean is higher than the
    tied one's needs none (it read "a lower mean error (3.00% against 2.50%)")."""
    from benchmark.report.answer import spread_notes

    def group(label: str, mean: float, ci: float, p: float) -> pd.DataFrame:
        return pd.DataFrame([{"label": label, "params": 1000, "test_sum_err_mean": mean,
                              "test_sum_err_ci": ci, "p_vs_best": p}])  # fmt: skip

    assert spread_notes(group("worse", 3.0, 0.1, 0.01), group("tied", 2.5, 3, 0.5)) == []


def test_the_spread_note_names_the_widest_tied_group_above_a_worse_ones_mean() -> None:
    """Of the tied groups with a higher mean, the one of the widest interval is the plainest
    case of "indistinguishable is not better": it is the one named, whatever the row order."""
    from benchmark.report.answer import spread_notes

    worse = pd.DataFrame([{"label": "worse", "params": 1000, "test_sum_err_mean": 2.0,
                           "test_sum_err_ci": 0.1, "p_vs_best": 0.01}])  # fmt: skip
    near = pd.DataFrame(
        [{"label": label, "params": 1000, "test_sum_err_mean": 2.5, "test_sum_err_ci": ci,
          "p_vs_best": 0.5} for label, ci in (("narrow", 1.0), ("wide", 3.0))]
    )  # fmt: skip
    (note,) = spread_notes(worse, near)
    assert "than wide, yet is called worse" in note and "narrow" not in note


def test_two_groups_get_no_sentence_on_the_highest_error(tmp_path: Path) -> None:
    """Of two groups the other one is the highest: the answer has named it already."""
    runs = tmp_path / "runs"
    for seed in (0, 1):
        make_run(runs, f"a{seed}", seed=seed, sum_acc=0.95 + seed / 100, val_curve=(0.9,))
        make_run(runs, f"b{seed}", fusion="late_sum", seed=seed, sum_acc=0.90 + seed / 100,
                 config_hash="b0000000", val_curve=(0.9,))  # fmt: skip
    answer = answer_of(markdown_of(tmp_path))
    assert "gap_cnn x late_sum" in answer and "highest error" not in answer


def answer_rows(*rows: tuple) -> pd.DataFrame:
    """Main-comparison rows as the answer reads them: (label, standing, seeds, mean error %)."""
    return pd.DataFrame(
        [{"label": label, "standing": standing, "n": n, "test_sum_err_mean": mean,
          "test_sum_err_ci": 0.1 if n > 1 else float("nan"), "test_sum_acc_mean": 1 - mean / 100,
          "params": 1000, "train_seconds_mean": 10.0, "same_as_default": False,
          "p_vs_best": 0.01 if standing == "worse" else float("nan")}
         for label, standing, n, mean in rows]
    )  # fmt: skip


def test_a_best_of_two_seeds_brings_the_few_seeds_note() -> None:
    """The best's own interval is as wide as any other group's of 2 seeds."""
    from benchmark.report.answer import FEW_SEEDS, tested_sentences

    main = answer_rows(("best", "best", 2, 1.0), ("b", "worse", 3, 3.0))
    assert FEW_SEEDS in tested_sentences(main, main.iloc[0])
    main = answer_rows(("best", "best", 3, 1.0), ("b", "worse", 3, 3.0))
    assert FEW_SEEDS not in tested_sentences(main, main.iloc[0])


def test_only_a_lower_mean_from_one_seed_is_said_not_to_make_the_best() -> None:
    """An untested group whose one seed erred more than the best needs no warning."""
    from benchmark.report.answer import untested_sentences

    main = answer_rows(("best", "best", 3, 2.0), ("high", "untested", 1, 3.0),
                       ("low", "untested", 1, 1.0))  # fmt: skip
    text = " ".join(untested_sentences(main.iloc[0], main.iloc[1:]))
    assert "A lower mean error from one seed (low) does not make a group the best." in text
    assert "does not make" not in " ".join(untested_sentences(main.iloc[0], main.iloc[1:2]))


def test_a_group_of_yours_better_than_the_reference_is_not_counted_among_ties_or_worse() -> None:
    """Beside a reference (``--against``) a user's group can beat its best: with none tied, the
    answer says so, not "cannot tell it apart from 0 of the 2" nor that the other is the one
    group tested."""
    from benchmark.report.answer import tested_sentences

    main = answer_rows(("best", "best", 3, 2.0), ("mine", "better", 3, 1.0),
                       ("w", "worse", 3, 4.0))  # fmt: skip
    text = " ".join(tested_sentences(main, main.iloc[0]))
    assert "Welch's t-test at 5% finds a lower error than it for mine." in text
    assert "cannot tell it apart" not in text and "The other group tested" not in text


def test_a_sentence_calls_a_group_default_only_beside_tuned_ones_in_the_main_comparison() -> None:
    """A tuned group elsewhere (another budget) leaves the main comparison's names as they are."""
    from benchmark.report.answer import said

    summary = pd.DataFrame(
        {"section": ["main", "other"], "tuned": [False, True], "arch": "gap_cnn",
         "fusion": "concat", "sizes": "", "differs": ["", "epochs 3"], "yours": False,
         "precision": "fp32", "config_hash": ["a", "b"],
         "label": ["gap_cnn x concat", "gap_cnn x concat (epochs 3)"]}
    )  # fmt: skip
    assert list(said(summary)["label"]) == ["gap_cnn x concat", "gap_cnn x concat (epochs 3)"]
    both = summary.assign(section="main", differs="")
    assert list(said(both)["label"]) == ["gap_cnn x concat (default)", "gap_cnn x concat (tuned)"]


def test_the_answers_scope_names_the_main_comparisons_precision_only(tmp_path: Path) -> None:
    """bf16 twins of the fp32 groups are in the precision section: the answer's budget says
    fp32 alone, as the main table's sentence does."""
    for precision in ("fp32", "bf16"):
        for seed in (0, 1):
            run = make_run(tmp_path / "runs", f"{precision}-{seed}", seed=seed,
                           sum_acc=0.95 + seed / 100, val_curve=(0.9,))  # fmt: skip
            with_precision(run, precision)
    answer = answer_of(markdown_of(tmp_path))
    assert "(1 epoch on the full training split, fp32)" in answer and "bf16" not in answer


def test_with_no_main_comparison_the_answer_still_says_where_your_groups_went() -> None:
    """``--against`` a reference with no group at its own budget: the user's groups are named
    as away from the main comparison, as they are where there is one."""
    from benchmark.report.answer import no_main_sentences

    summary = pd.DataFrame(
        {"section": "other", "yours": [False, True], "n": 2, "test_sum_err_mean": [2.0, 3.0],
         "test_digit_acc_mean": 0.99, "label": ["theirs (epochs 2)", "mine (epochs 2) [yours]"]}
    )  # fmt: skip
    text = " ".join(no_main_sentences(summary, "1 epoch"))
    assert "1 group of yours is not in the main comparison" in text
    assert text.endswith("(see below): mine (epochs 2) [yours].")


def test_counts_lists_settings_and_differences_read_as_english() -> None:
    """The words every sentence of the report shares: nouns agree with their counts, thousands
    are grouped, lists end in "and", a float setting has four significant digits and a difference
    gives the found value before the wanted one."""
    from benchmark import wording

    counts = [wording.plural(n, "seed") for n in (0, 1, 2, 12_000)]
    assert counts == ["0 seeds", "1 seed", "2 seeds", "12,000 seeds"]
    assert wording.plural(2, "study", "studies") == "2 studies"
    lists = [wording.listing(items) for items in ([], ["a"], ["a", "b"], ["a", "b", "c"])]
    assert lists == ["", "a", "a and b", "a, b and c"]
    verbs = [(wording.were(n), wording.is_are(n), wording.has(n)) for n in (1, 0, 2)]
    assert verbs == [("was", "is", "has"), ("were", "are", "have"), ("were", "are", "have")]
    assert wording.percent(0.8272) == "82.72%"
    tuned = {"width": 24, "dropout": 0.2385719484080942}
    assert wording.settings(tuned) == "width=24 dropout=0.2386"
    found, wanted = {"epochs": 1, "val_subset": None}, {"epochs": 2, "val_subset": 500}
    assert wording.differences(found, wanted) == "epochs 1, not 2; val_subset None, not 500"


def test_beside_a_group_of_yours_found_better_the_worse_ones_are_still_said() -> None:
    """``--against``: a user's group better than the reference's best, none tied: the answer gave
    the better verdict alone, and the reference group Welch's test found worse went unsaid."""
    from benchmark.report.answer import tested_sentences

    main = answer_rows(("best", "best", 3, 2.0), ("mine", "better", 3, 1.0),
                       ("w", "worse", 3, 4.0))  # fmt: skip
    text = " ".join(tested_sentences(main, main.iloc[0]))
    assert "w is worse by Welch's t-test at 5%" in text
    assert "finds a lower error than it for mine." in text


def test_the_forest_puts_the_best_on_top_marks_it_and_draws_yours_and_untested_apart() -> None:
    """Best first reads top down: the best group's row is the top one, the larger marker with a
    dashed line through its mean; a group of yours is a diamond, an untested one hollow."""
    from benchmark.report.plots import STANDING_STYLE, forest_figure

    summary = pd.DataFrame({
        "label": ["best", "near", "worse", "untested"], "section": "main",
        "standing": ["best", "near", "worse", "untested"],
        "test_sum_err_mean": [0.5, 0.6, 1.5, 2.0], "test_sum_err_ci": [0.1, 0.1, 0.2, math.nan],
        "yours": [False, True, False, False], "same_as_default": False,
    })  # fmt: skip
    (ax,) = forest_figure(summary).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["untested", "worse", "near", "best"]
    points = {int(c.lines[0].get_ydata()[0]): c.lines[0] for c in ax.containers}
    assert {y: p.get_xdata()[0] for y, p in points.items()} == {0: 2.0, 1: 1.5, 2: 0.6, 3: 0.5}
    assert points[3].get_markersize() > points[2].get_markersize()
    assert [points[y].get_marker() for y in range(4)] == ["o", "o", "D", "o"]
    assert points[0].get_markerfacecolor() == "white"
    assert points[1].get_markerfacecolor() == STANDING_STYLE["worse"][0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_xdata()) for line in dashed] == [[0.5, 0.5]]


def test_each_pareto_panel_steps_through_its_lowest_error_groups_on_a_log_error_axis() -> None:
    """A group with more parameters (or seconds) and more error is off the front: the dotted
    step joins the others, cheapest first, on both panels."""
    from benchmark.report.plots import pareto_figure

    summary = pd.DataFrame({
        "label": ["a", "b", "c"], "section": "main", "yours": False, "arch": "gap_cnn",
        "fusion": ["concat", "late_sum", "film"], "tuned": False,
        "params": [1000, 3000, 2000], "train_seconds_mean": [10.0, 30.0, 20.0],
        "train_seconds_std": math.nan, "test_sum_err_mean": [1.0, 0.8, 0.5],
        "test_sum_err_ci": 0.05,
    })  # fmt: skip
    fig = pareto_figure(summary)
    for ax, cost in zip(fig.axes, ([1000, 2000], [10.0, 20.0]), strict=True):
        (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
        assert list(step.get_xdata()) == cost and list(step.get_ydata()) == [1.0, 0.5]
        assert ax.get_yscale() == "log"


def test_without_a_main_comparison_the_curves_are_every_group_but_the_held_out_ones() -> None:
    from benchmark.report.plots import curve_groups

    summary = pd.DataFrame({"label": ["a", "b", "c"], "section": ["other", "heldout", "other"]})
    assert list(curve_groups(summary)["label"]) == ["a", "c"]
    assert list(curve_groups(summary.assign(section=["main", "other", "main"]))["label"]) == [
        "a",
        "c",
    ]


def test_a_curves_key_entry_says_tuned_for_its_study_and_yours_for_yours() -> None:
    """ "tuned by <study>" is shortened to "tuned" (not said twice), the reference is left
    unsaid, and a group of yours says so."""
    from benchmark.report.plots import curve_label

    row = pd.Series({"fusion": "concat", "differs": "tuned by gap_cnn__concat__e1; lr=0.01",
                     "tuned": True, "yours": False, "same_as_default": False})  # fmt: skip
    assert curve_label(row) == "concat, tuned, lr=0.01"
    mine = pd.Series({**row, "differs": "the reference's budget", "tuned": False, "yours": True})
    assert curve_label(mine) == "concat, default, yours"


def test_val_curves_draw_error_not_accuracy_and_dot_a_second_line_of_one_fusion_and_kind() -> None:
    """Two default concat groups of one encoder (two learning rates): the second is dotted,
    the title says what dotted means; each line is 100 x (1 - accuracy) per epoch."""
    from benchmark.report.plots import val_curves_figure

    summary = pd.DataFrame({
        "label": ["a", "b"], "section": "main", "arch": "gap_cnn", "fusion": "concat",
        "tuned": False, "differs": ["", "lr=0.01"], "yours": False, "same_as_default": False,
    })  # fmt: skip
    curves = pd.DataFrame({"label": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2],
                           "val_sum_acc": [0.8, 0.9, 0.7, 0.95]})  # fmt: skip
    fig = val_curves_figure(curves, summary, None)
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert [lines[k].get_linestyle() for k in ("concat", "concat, lr=0.01")] == ["--", ":"]
    assert list(lines["concat"].get_ydata()) == pytest.approx([20.0, 10.0])
    assert list(lines["concat, lr=0.01"].get_ydata()) == pytest.approx([30.0, 5.0])
    assert "dotted: another variant of the same fusion" in " ".join(fig.get_suptitle().split())


def test_the_heatmap_shows_each_sums_error_under_its_sum() -> None:
    """A row's cells are its error % per true sum, 0 to 18 left to right."""
    from benchmark.report.plots import plot_class_heatmap

    accuracy = [1 - (s + 1) / 100 for s in range(19)]
    classes = pd.DataFrame([accuracy], index=["gap_cnn x concat"], columns=range(19))
    (ax, _) = plot_class_heatmap(classes).axes
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(s) for s in range(19)]
    assert list(ax.images[0].get_array()[0]) == pytest.approx([s + 1 for s in range(19)])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gap_cnn x concat"]


def test_validation_curves_of_one_epoch_are_dots_and_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A curve of one point is no line: a group trained one epoch has none in the validation
    plot, and with no group of two epochs or more there is no validation plot at all."""
    from types import SimpleNamespace

    from benchmark.report import plots

    summary = pd.DataFrame({"label": ["a", "b"], "section": "main", "arch": "gap_cnn",
                            "fusion": ["concat", "late_sum"],
                            "same_as_default": False})  # fmt: skip
    curves = pd.DataFrame({"label": ["a", "b", "b"], "epoch": [1, 1, 2], "val_sum_acc": 0.9})
    inputs = SimpleNamespace(runs=pd.DataFrame(), history=pd.DataFrame())
    drawn: list[set[str]] = []
    handed: list[list[str]] = []
    monkeypatch.setattr(plots, "stamped", lambda figures, stamp: drawn.append(set(figures)))
    monkeypatch.setattr(plots, "val_curves", lambda *a: curves)
    monkeypatch.setattr(plots, "val_curves_figure",
                        lambda c, *a: handed.append(sorted(set(c["label"]))))  # fmt: skip
    monkeypatch.setattr(plots, "class_accuracy", lambda *a: pd.DataFrame())
    for name in ("forest_figure", "pareto_figure"):
        monkeypatch.setattr(plots, name, lambda *a: None)
    plots.render_plots(inputs, summary)  # type: ignore[arg-type]
    assert handed == [["b"]] and drawn[-1] == {"forest", "pareto", "val_curves"}
    curves = curves.iloc[:2]
    plots.render_plots(inputs, summary)  # type: ignore[arg-type]
    assert handed == [["b"]] and drawn[-1] == {"forest", "pareto"}


def test_study_plots_name_their_study_and_count_only_complete_trials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each plot's title starts with the study it shows (a report holds several); the
    importances' note counts the complete trials they are computed from, not a failed one."""
    import optuna

    from benchmark.report import study_plots

    figures: list = []
    monkeypatch.setattr(study_plots, "png_bytes", lambda fig, _: figures.append(fig) or b"")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="gap_cnn__concat__e1", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(0))  # fmt: skip
    study.optimize(lambda t: t.suggest_float("lr", 1e-3, 1e-2), 8)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert set(study_plots.study_plots(study)) == {"history", "importance"}
    titles = [fig.axes[0].get_title() for fig in figures]
    assert all(t.startswith("gap_cnn__concat__e1: ") for t in titles), titles
    assert titles[1].endswith("(PED-ANOVA over 8 complete trials)")


def test_a_studys_plots_are_kept_only_when_every_one_carries_the_stamp(tmp_path: Path) -> None:
    """One plot drawn from other trials (or missing) and both are drawn again: a history beside
    an importance plot of other trials would contradict it."""
    from conftest import one_pixel_png

    from benchmark.report.study_plots import STUDIES_DIR, kept_plots

    folder = tmp_path / STUDIES_DIR
    folder.mkdir()
    for kind, stamp in (("history", "abc"), ("importance", "abc")):
        (folder / f"s-{kind}.png").write_bytes(one_pixel_png(None, stamp))
    assert set(kept_plots(tmp_path, "s", ["history", "importance"], "abc")) == {
        "history",
        "importance",
    }
    (folder / "s-importance.png").write_bytes(one_pixel_png(None, "old"))
    assert kept_plots(tmp_path, "s", ["history", "importance"], "abc") == {}
    (folder / "s-importance.png").unlink()
    assert kept_plots(tmp_path, "s", ["history", "importance"], "abc") == {}
    assert kept_plots(None, "s", ["history"], "abc") == {}


def test_runs_that_held_pairs_out_get_the_generalisation_plot_and_others_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The seen-vs-held-out plot is drawn where runs held pairs out, and only there."""
    from types import SimpleNamespace

    from benchmark.report import plots

    summary = pd.DataFrame({"label": ["a"], "section": "other", "arch": "gap_cnn",
                            "fusion": "concat", "same_as_default": False})  # fmt: skip
    drawn: list[set[str]] = []
    monkeypatch.setattr(plots, "stamped", lambda figures, stamp: drawn.append(set(figures)))
    monkeypatch.setattr(plots, "val_curves", lambda *a: pd.DataFrame(columns=["label", "epoch"]))
    monkeypatch.setattr(plots, "plot_generalisation", lambda runs: None)
    for held in (0.9, math.nan):
        runs = pd.DataFrame({"arch": ["gap_cnn"], "test_heldout.sum_acc": [held],
                             "config.holdout_pairs": [20]})  # fmt: skip
        inputs = SimpleNamespace(runs=runs, history=pd.DataFrame())
        plots.render_plots(inputs, summary)  # type: ignore[arg-type]
    assert drawn == [{"generalisation"}, set()]
