"""``bench``: parameters, MACs, throughput, latency and memory of each encoder x fusion, one CSV
row each under ``<results>/bench/`` (the method is described in ``benchmark.bench``)."""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from itertools import product
from typing import Any

from benchmark.commands.common import (
    EXIT_FAILED,
    UsageError,
    add_config_flags,
    add_plugin_flag,
    add_results_dir_flag,
    add_tuned_flags,
    apply_tuned_flags,
    base_config,
    config_overrides,
    console,
    interrupts_as_exceptions,
    only_fields,
    print_wide,
    require_at_least,
)
from benchmark.commands.models import grid_variants, pop_model_arg_sweeps
from benchmark.commands.values import add_model_arg_flag
from benchmark.config import BUDGET_FIELDS, TrainConfig, flag_name
from benchmark.files import check_writable
from benchmark.machines import with_features
from benchmark.places import BENCH
from benchmark.progress import prepare
from benchmark.wording import plural


def fmt(value: Any, spec: str) -> str:
    """A cell of bench's own table, "-" for a figure not measured: ``report.output.fmt`` for a
    row of plain floats, leaving pandas unimported (``bench`` only appends rows)."""
    return "-" if isinstance(value, float) and math.isnan(value) else format(value, spec)


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """The figures of this invocation; peak memory only on CUDA, compile time only if compiled."""
    from rich.markup import escape
    from rich.table import Table

    from benchmark.benchfile import HEADINGS, ab_text, model_args_text

    first = rows[0]
    ab = any(r["compile"] != first["compile"] for r in rows)
    one_batch = len({r["train_batch_size"] for r in rows}) == 1  # else a column: --tuned's
    table = Table(
        title=f"bench on {with_features(first['device'], first['cpu_features'])}, "
        f"{first['precision']}, inference batch {first['batch_size']}"
        + (f", training batch {first['train_batch_size']}" if one_batch else "")
        + f", channels_last {first['channels_last']}, "
        + ("eager and compiled taking turns" if ab else f"compile {first['compile']}"),
    )
    columns = {
        "arch": ("arch", "s"),
        "fusion": ("fusion", "s"),
        **({"tuned_from": ("tuned by", "s")} if any(r["tuned_from"] for r in rows) else {}),
        **({"model_args": ("model args", "s")} if any(r["model_args"] for r in rows) else {}),
        **({} if one_batch else {"train_batch_size": ("train batch", "d")}),
        **({"compile": ("compiled", "")} if ab else {}),
        "params": HEADINGS["params"],
        "macs_per_image": ("MMACs/img", ".2f"),  # in millions here, beside the report's MACs
        **{
            key: HEADINGS[key]
            for key in ("infer_images_per_s", "latency_ms_b1", "train_images_per_s")
        },
    }
    if first["device_type"] == "cuda":
        columns["peak_mem_mb"] = HEADINGS["peak_mem_mb"]
    if first["compile"] or ab:
        for key in ("compile_seconds", "train_compile_seconds"):
            columns[key] = HEADINGS[key]
    if ab:
        columns["ab"] = ("train vs eager", "s")
    for header, spec in columns.values():
        table.add_column(header, justify="left" if spec == "s" else "right", no_wrap=True)
    for r in rows:
        values = {**r, "macs_per_image": r["macs_per_image"] / 1e6, "ab": ab_text(r)}
        if not r["compile"]:  # an eager row compiled nothing: "-", not "0.0"
            values["compile_seconds"] = values["train_compile_seconds"] = math.nan
        values["model_args"] = model_args_text(r)
        table.add_row(*(escape(fmt(values[key], spec)) for key, (_, spec) in columns.items()))
    return table


# The run settings bench measures under, flagged and checked as ``run``'s are; and the budget
# fields, which choose the export ``--tuned`` measures (a study tuned at 9 epochs: --epochs 9).
MEASURED = ("device", "precision", "channels_last", "compile", "threads", "batch_size")
SETTINGS = only_fields(*MEASURED)
BUDGET_FLAGS = only_fields(*BUDGET_FIELDS)
FLAGGED = only_fields(*MEASURED, *BUDGET_FIELDS)  # the config fields bench has flags for


def settings_from_args(args: argparse.Namespace, base: TrainConfig) -> Any:
    """The measurement settings: the execution of ``base`` (the flags' config) decided once, as
    for a run (``auto`` resolved for this device), plus bench's own call counts; bad numbers are
    a usage error."""
    from benchmark.bench import DEFAULT_BATCH_SIZE, Settings

    require_at_least(
        [
            ("--infer-batch-size", args.infer_batch_size, 1),
            ("--iters", args.iters, 1),
            ("--warmup-calls", args.warmup_calls, 0),
            ("--compile-ab", args.compile_ab, 2),
        ]
    )
    if args.compile_ab and args.compile is not None:
        raise UsageError("--compile-ab measures eager and compiled both; drop --[no-]compile")
    check_writable(args.results_dir, folders=(BENCH,))
    try:
        base.validate()
    except ValueError as exc:
        raise UsageError(TrainConfig.in_flag_words(str(exc))) from None
    _, ex = prepare(base)
    return Settings(
        ex=ex,
        batch_size=args.infer_batch_size or DEFAULT_BATCH_SIZE.get(ex.device.type, 1024),
        warmup=args.warmup_calls,
        iters=args.iters,
    )


def measured_configs(
    args: argparse.Namespace,
    base: TrainConfig,
    sweeps: dict[str, list[Any]],
    archs: list[str],
    fusions: list[str],
) -> list[TrainConfig]:
    """Each configuration to measure, checked before anything is: arch x fusion x swept model
    argument at the typed batch size, or with ``--tuned`` the model, batch size and loss of the
    export at the typed budget (what a ``run --tuned`` of it trains); a typed ``--batch-size``
    or ``--model-arg`` pins its value against the export's."""
    typed_budget = [f for f in BUDGET_FIELDS if getattr(args, f, None) is not None]
    if typed_budget and not args.tuned:
        flag = flag_name(typed_budget[0])
        raise UsageError(f"{flag} chooses the budget of the export --tuned measures; give --tuned")
    pairs = product(archs, fusions)
    variants = grid_variants(pairs, base.model_args, sweeps, base.model_args, args.tuned)
    configs = [
        replace(base, arch=arch, fusion=fusion, model_args=model_args)
        for (arch, fusion), found in variants.items()
        for model_args in found
    ]
    return apply_tuned_flags(args, configs, config_overrides(args, skip=FLAGGED))


def cmd_bench(args: argparse.Namespace) -> int:
    """Parameters, MACs per image, inference and training throughput, batch-1 latency and peak
    memory for each encoder x fusion; one row each appended to
    <results>/bench/<device>-<precision>.csv."""
    from rich.markup import escape

    from architectures import ENCODERS, FUSIONS
    from benchmark.bench import bench_rows
    from benchmark.benchfile import (
        NOISY,
        ab_text,
        append_row,
        check_header,
        combination_of,
        results_path,
    )
    from benchmark.hardware import git_commit, machine_name

    archs, fusions = ENCODERS.select(args.arch), FUSIONS.select(args.fusion)
    sweeps = pop_model_arg_sweeps(args)  # before the config: a comma list is no value
    base = base_config(args, skip=FLAGGED)
    s = settings_from_args(args, base)
    configs = measured_configs(args, base, sweeps, archs, fusions)
    path = results_path(args.results_dir, BENCH, s.device, s.precision, ".csv")
    check_header(path)
    commit = git_commit()
    console.print(
        f"bench: {plural(len(configs), 'configuration')} on {machine_name(s.device)}, {s.precision}"
    )
    rows: list[dict[str, Any]] = []
    with interrupts_as_exceptions():
        for done, cfg in enumerate(configs, start=1):
            found = bench_rows(cfg, s, commit, args.compile_ab)
            for row in found:
                append_row(path, row)
            rows += found
            speeds = " and ".join(fmt(r["train_images_per_s"], ",.0f") for r in found)
            status = found[0]["error"] or f"{speeds} train img/s"
            if len(found) > 1 and not found[0]["error"]:
                # a median of ratios, not the ratio of the two medians above: said apart
                status += f" (eager and compiled); per round, compiled/eager {ab_text(found[1])}"
            label = combination_of(found[0])
            console.print(f"[{done}/{len(configs)}] {escape(label)}: {escape(status)}")
            for row in found:
                if (spread := row.get("timing_spread", 0)) > NOISY:  # NaN (an error): no
                    way = "compiled" if row["compile"] else "eager"  # of an A/B pair
                    whose = f"its {way} row's" if len(found) > 1 else "its"
                    console.print(
                        f"      note: {whose} timed calls varied by {spread:.1f}x "
                        "(upper over lower quartile): a busy machine or too short a warm-up; "
                        "measure again on a quiet one, or with more --warmup-calls",
                        markup=False,
                    )
    print_wide(rows_table(rows))
    failed = sum(bool(r["error"]) for r in rows)
    said = f"; {failed} failed (see its error column)" if failed else ""
    console.print(f"appended to {path}{said}", soft_wrap=True, markup=False)  # a path, whole
    return EXIT_FAILED if failed == len(rows) else 0  # nothing measured is no success


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="params, MACs, throughput, latency, memory", description=cmd_bench.__doc__
    )
    p.add_argument("--arch", default="all", help="encoder(s): comma list, wildcards, all [all]")
    p.add_argument("--fusion", default="all", help="fusion(s): comma list, wildcards, all [all]")
    add_model_arg_flag(p, sweeps=True)
    p.add_argument(
        "--infer-batch-size",
        type=int,
        metavar="N",
        help="images per inference call [1024 on cpu, 8192 on cuda]",
    )
    p.add_argument(
        "--warmup-calls", type=int, default=10, metavar="N", help="untimed calls first [10]"
    )
    p.add_argument("--iters", type=int, default=40, metavar="N", help="timed calls [40]")
    p.add_argument(
        "--compile-ab",
        type=int,
        metavar="ROUNDS",
        help="measure each configuration eager and compiled, then time their training again in "
        "ROUNDS rounds of --iters steps each, taking turns: two rows, the compiled one with "
        "compiled/eager per round (median, quartiles) [off]",
    )
    add_config_flags(p, skip=SETTINGS, title="run settings measured under (as for run)")
    add_tuned_flags(p, "measure each model and training step")
    add_config_flags(p, skip=BUDGET_FLAGS, title="with --tuned: the budget tuned at (as for run)")
    add_results_dir_flag(p, "rows go to <dir>/bench/")
    add_plugin_flag(p, cmd_bench)
