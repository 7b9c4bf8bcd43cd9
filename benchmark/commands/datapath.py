"""``datapath``: train images/s of the trainer against a pre-built batch and a DataLoader
(the method is described in ``benchmark.datapath``)."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark import files
from benchmark.commands.common import (
    UsageError,
    add_config_flags,
    add_plugin_flag,
    add_results_dir_flag,
    base_config,
    check_data_dir,
    console,
    interrupts_as_exceptions,
    only_fields,
    print_wide,
    require_at_least,
)
from benchmark.commands.models import dry_runs, model_args_of
from benchmark.commands.values import add_model_arg_flag, processes
from benchmark.errors import DamagedFileError
from benchmark.files import check_writable
from benchmark.progress import check_layout, prepare

# The run settings the data path is measured under, flagged and checked as ``run``'s are.
SETTINGS = only_fields("device", "precision", "channels_last", "threads", "batch_size", "data_dir")


def cmd_datapath(args: argparse.Namespace) -> int:
    """Train images/s of one model three ways: the trainer, one pre-built batch (upper bound) and
    a per-item Dataset + DataLoader; writes <results>/datapath/<device>-<precision>.json and .md."""
    import torch

    from architectures import ENCODERS, FUSIONS
    from benchmark.benchfile import combination_of, results_path
    from benchmark.config import TrainConfig
    from benchmark.data import load_mnist
    from benchmark.datapath import markdown, measure
    from benchmark.hardware import cpu_features, device_name, git_commit, machine_name

    for flag, value in (("--arch", args.arch), ("--fusion", args.fusion)):
        if "," in value or "*" in value:  # not a name the registry should call unknown
            raise UsageError(
                f"{flag} {value!r}: datapath measures one combination, so one name; bench "
                "measures several"
            )
    arch, fusion = ENCODERS.get(args.arch).name, FUSIONS.get(args.fusion).name
    require_at_least(
        [
            ("--steps", args.steps, 1),
            ("--warmup-steps", args.warmup_steps, 0),
            ("--rounds", args.rounds, 1),
            ("--num-workers", args.num_workers, 0),
        ]
    )
    check_writable(args.results_dir, folders=("datapath",))
    if args.steps % args.rounds:
        raise UsageError(f"--steps ({args.steps}) must be a multiple of --rounds ({args.rounds})")
    cfg = replace(base_config(args, skip=SETTINGS), arch=arch, fusion=fusion, epochs=1)
    dry_runs([(arch, fusion, model_args_of([(arch, fusion)], cfg.model_args)[arch, fusion])])
    check_data_dir(cfg.data_dir)
    try:
        cfg.validate()
    except ValueError as exc:  # in the flags' words, as run and bench say it
        raise UsageError(TrainConfig.in_flag_words(str(exc))) from None
    cfg, ex = prepare(cfg)  # decided once, as for a run
    check_layout([cfg.arch], ex)
    device, precision = ex.device, ex.precision
    path = results_path(args.results_dir, "datapath", device, precision, ".json")
    shown = combination_of({"arch": arch, "fusion": fusion, "model_args": cfg.model_args})
    check_replaces_own(path, shown)
    cpu_data = load_mnist(cfg.data_dir)
    needed = (args.warmup_steps + args.steps) * cfg.batch_size
    if needed > len(cpu_data.train):
        raise UsageError(
            f"(--warmup-steps + --steps) x --batch-size = {needed} images, more than the "
            f"{len(cpu_data.train)} training images; lower one of them"
        )
    data = cpu_data.to(device)
    console.print(
        f"datapath: {shown} on {machine_name(device)}, {ex.describe()}, "
        f"batch {cfg.batch_size}, "
        f"{args.steps} steps"
    )
    with interrupts_as_exceptions():
        per_round = measure(
            cfg,
            data,
            ex,
            cpu_data.train.subset(needed),
            args.steps,
            args.warmup_steps,
            args.rounds,
            args.num_workers,
        )
    ips = {way: statistics.median(figures) for way, figures in per_round.items()}
    report = {
        "arch": arch,
        "fusion": fusion,
        **({"model_args": cfg.model_args} if cfg.model_args else {}),
        "device": device_name(device),
        "device_type": device.type,
        **({"cpu_features": cpu_features()} if device.type == "cpu" else {}),
        "precision": precision,
        "channels_last": ex.channels_last,
        "torch": torch.__version__,
        "commit": git_commit(),
        "batch_size": cfg.batch_size,
        "steps": args.steps,
        "warmup": args.warmup_steps,
        "rounds": args.rounds,
        "num_workers": args.num_workers,
        "images_per_s": ips,  # the median of the rounds (see benchmark.datapath)
        "ratios": {
            "trainer_over_prebuilt": ips["trainer"] / ips["prebuilt"],
            "trainer_over_dataloader": ips["trainer"] / ips["dataloader"],
        },
        "images_per_s_per_round": per_round,
    }
    files.write_json(path, report)
    files.write_text(path.with_suffix(".md"), markdown(report))
    print_wide(report_table(report))
    console.print(f"written to {path} and .md", soft_wrap=True, markup=False)  # a path, whole
    return 0


def check_replaces_own(path: Path, shown: str) -> None:
    """A measurement is kept one per device and precision: one of another combination there
    would be replaced without a word, so it is refused before measuring (the same combination
    measured again replaces its own, as meant)."""
    from benchmark.benchfile import combination_of

    if not path.exists():
        return
    try:
        theirs = combination_of(files.read_json(path))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise DamagedFileError(f"{path}: not a datapath measurement; move it away") from None
    if theirs != shown:
        raise UsageError(
            f"{path} holds the measurement of {theirs}, which this one of {shown} would "
            "replace; pass another --results-dir, or move the file away"
        )


def report_table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    prebuilt = report["images_per_s"]["prebuilt"]
    rounds = report["rounds"]  # what was measured, and where, is the line the command began with
    table = Table(
        title=f"train images/s by data path, median of {rounds} round{'s' * (rounds > 1)}"
    )
    for col in ("data path", "train img/s", "vs prebuilt"):
        table.add_column(col, justify="left" if col == "data path" else "right")
    for way, ips in report["images_per_s"].items():
        table.add_row(way, f"{ips:,.0f}", f"{ips / prebuilt:.3f}")
    return table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datapath",
        help="trainer vs pre-built batch vs DataLoader train images/s",
        description=cmd_datapath.__doc__,
    )
    p.add_argument("--arch", default="gap_cnn", help="one encoder [gap_cnn]")
    p.add_argument("--fusion", default="concat", help="one fusion [concat]")
    for flag, default, said in (  # N, as every command's counts are named
        ("--steps", 200, "timed steps, each of the three"),
        ("--warmup-steps", 10, "untimed steps before each of the three"),
        ("--rounds", 10, "rounds in which the three take turns, each timing steps/rounds steps"),
        ("--num-workers", 0, "DataLoader worker processes"),
    ):
        kind = processes if flag == "--num-workers" else int
        p.add_argument(flag, type=kind, default=default, metavar="N", help=f"{said} [{default}]")
    add_model_arg_flag(p)
    add_config_flags(p, skip=SETTINGS, title="run settings measured under (as for run)")
    add_results_dir_flag(p, "report goes to <dir>/datapath/")
    add_plugin_flag(p, cmd_datapath)
