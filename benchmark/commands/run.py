"""``run``: train one run or a grid (arch x fusion x seed), or ``--resume`` an interrupted one."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

from benchmark.commands.common import (
    OUTPUT,
    UsageError,
    add_config_file_flags,
    add_config_flags,
    base_config,
    config_overrides,
    console,
    int_list,
    interrupts_as_exceptions,
    key_value,
    print_wide,
    progress,
)
from benchmark.config import TrainConfig
from benchmark.trackers import check_available


def pop_sweeps(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The config flags given a comma list of several values (``--lr 1e-3,3e-3``); each flag in
    ``args`` is left holding its first value, so that ``base_config`` sees plain values."""
    sweeps = {}
    for name, values in config_overrides(args).items():
        if isinstance(values, list):
            setattr(args, name, values[0])
            if len(values) > 1:
                sweeps[name] = values
    return sweeps


def grid_configs(
    args: argparse.Namespace, base: TrainConfig, sweeps: dict[str, list[Any]] | None = None
) -> list[TrainConfig]:
    """Every arch x fusion x swept setting x seed the flags ask for, validated before anything
    is written."""
    from architectures import ENCODERS, FUSIONS, check_model, split_overrides

    archs = ENCODERS.select(args.arch) if args.arch is not None else [base.arch]
    fusions = FUSIONS.select(args.fusion) if args.fusion is not None else [base.fusion]
    if args.seeds is not None and args.seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    seeds = (
        args.seeds
        if args.seeds is not None
        else [args.seed if args.seed is not None else base.seed]
    )
    if not seeds:
        raise UsageError("--seeds is empty; expected comma-separated integers such as 0,1,2")
    sweeps = sweeps or {}
    points = [dict(zip(sweeps, values, strict=True)) for values in product(*sweeps.values())]
    configs = []
    for arch, fusion, point, seed in product(archs, fusions, points, seeds):
        cfg = replace(base, arch=arch, fusion=fusion, seed=seed, **point)
        try:
            cfg.validate()
            split_overrides(arch, fusion, cfg.model_args)
            if seed == seeds[0]:
                check_model(arch, fusion, cfg.model_args)
        except (ValueError, TypeError) as exc:  # TypeError: a config file's "x" for 1
            raise UsageError(str(exc)) from None
        configs.append(cfg)
    return configs


def train_with_progress(
    cfg: TrainConfig,
    data: Any,
    run_dir: Path,
    state: Any = None,
    grid: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """``runs.execute`` with a progress bar: steps, running loss, last validation figure, a
    status while the test split is evaluated, and, given ``grid`` (runs done, total), a bar for
    the whole grid."""
    from rich.progress import TextColumn

    from benchmark import runs

    steps = cfg.steps_per_epoch(len(data.train))
    done = state.step if state is not None else 0
    label = f"{cfg.arch} x {cfg.fusion} seed {cfg.seed}"
    columns = (
        TextColumn("{task.fields[loss]}"),
        TextColumn("{task.fields[val]}"),
    )
    with progress(*columns) as bar:
        if grid is not None and grid[1] > 1:
            bar.add_task("grid", total=grid[1], completed=grid[0], loss="runs", val="")
        task = bar.add_task(label, total=steps * cfg.epochs, completed=done, loss="", val="")
        epochs_done = [done // steps]

        def on_step(i: int, n: int, loss: float, acc: float) -> None:
            text = f"loss {loss:.4f}  train sum acc {acc:.4f}"
            bar.update(task, completed=epochs_done[0] * n + i, loss=text)

        def on_epoch(st: Any, stats: Any) -> None:
            epochs_done[0] = stats.epoch
            val = f"val sum {stats.val_sum_acc:.4f} (epoch {stats.epoch})"
            if stats.epoch == cfg.epochs:
                val += "; evaluating on the test split (every image x 10 addends) ..."
            bar.update(task, val=val)

        return runs.execute(cfg, data, run_dir, state=state, on_step=on_step, on_epoch=on_epoch)


def summary_table(rows: list[dict[str, Any]]) -> Any:
    """The finished runs' test metrics, one row each (metrics from ``benchmark.metrics``)."""
    from rich.table import Table

    from benchmark import metrics

    table = Table(title="test metrics (exhaustive: every image x all 10 addends)")
    for col in ("arch", "fusion", "seed", "params"):
        table.add_column(col, justify="right" if col in ("seed", "params") else "left")
    for m in metrics.METRICS:
        table.add_column(m.label.removesuffix(" acc"), justify="right")
    for col in ("train s", "img/s"):
        table.add_column(col, justify="right")
    table.add_column("run")
    for m in rows:
        table.add_row(
            m["arch"],
            m["fusion"],
            str(m["seed"]),
            f"{m['params']:,}",
            *(f"{m['test'][name]:.4f}" for name in metrics.names()),
            f"{m['train_seconds']:.1f}",
            f"{m['train_images_per_s']:,.0f}",
            m["run_id"],
        )
    return table


def check_writable(results_dir: Path) -> None:
    """The results directory is a directory we may write in (or can be created): checked before
    the data loads, so that a typo costs nothing."""
    import os

    existing = next((p for p in (results_dir, *results_dir.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"--results-dir {results_dir}: {existing} is a file; expected a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--results-dir {results_dir}: {existing} is not writable")


def prepare_device(cfg: TrainConfig) -> Any:
    """The training device (a missing one is a usage error) with the thread count applied."""
    import torch

    from benchmark.hardware import resolve_device

    try:
        device = resolve_device(cfg.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # the same thread count keeps CPU results bit-exact
    return device


def execution_text(precision: str, channels_last: bool | None) -> str:
    """``bf16, channels_last`` or ``fp32``: how a resolved config computes."""
    return precision + (", channels_last" if channels_last else "")


def say_probe(configs: list[TrainConfig]) -> None:
    """One line on what a CPU probe chose for ``auto``, with its figures, when one chose."""
    probe = next((c.auto_probe for c in configs if c.auto_probe), None)
    if probe is None:
        return
    figures = ", ".join(f"{k} {v:,.0f}" for k, v in probe["images_per_s"].items())
    console.print(
        f"auto on this cpu: {execution_text(probe['precision'], probe['channels_last'])} "
        f"(probed {probe['probed']}; training images/s {figures}; --precision and "
        f"--[no-]channels-last choose instead)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Train one run or a grid (arch x fusion x seed), one after another."""
    from benchmark import hardware, runs
    from benchmark.data import load_mnist
    from benchmark.hardware import device_name

    if args.resume:
        return resume(args)
    sweeps = pop_sweeps(args)
    base = base_config(args)
    configs = grid_configs(args, base, sweeps)
    results_dir = Path(args.results_dir)
    if args.tuned:
        from benchmark import tuned  # optuna only when asked for

        typed = config_overrides(args)
        configs = [
            tuned.apply_tuned(cfg, typed, results_dir, args.tuned_study, args.tuned_any_budget)
            for cfg in configs
        ]
        for cfg in configs:
            spent = cfg.tuned_from
            console.print(
                f"{cfg.arch} x {cfg.fusion}: tuned parameters of study {spent['study']} "
                f"(trial {spent['trial']}, val joint {spent['value']:.4f})"
            )
    if args.print_config:
        resolved = [cfg.to_dict() for cfg in configs]
        print(json.dumps(resolved[0] if len(resolved) == 1 else resolved, indent=2))
        return 0
    check_writable(results_dir)
    if len(configs) > 1:
        sizes = [
            (len(set(c.arch for c in configs)), "arch"),
            (len(set(c.fusion for c in configs)), "fusion"),
            *((len(v), "--" + k.replace("_", "-")) for k, v in sweeps.items()),
            (len(set(c.seed for c in configs)), "seed"),
        ]
        console.print(
            f"grid: {len(configs)} runs ("
            + " x ".join(f"{n} {what}" for n, what in sizes if n > 1)
            + ")"
        )
    for cfg in configs:  # every device and tracker asked for exists (a sweep may name several)
        prepare_device(cfg)
        check_available(cfg.log)
    configs = [hardware.resolve_execution(cfg, prepare_device(cfg)) for cfg in configs]
    say_probe(configs)
    datasets: dict[tuple[str | None, str], Any] = {}
    for cfg in configs:  # every MNIST copy on every device the grid names, loaded and checked
        if (cfg.data_dir, cfg.device) not in datasets:
            datasets[cfg.data_dir, cfg.device] = load_mnist(cfg.data_dir).to(prepare_device(cfg))
    finished: list[dict[str, Any]] = []
    with interrupts_as_exceptions():
        for i, cfg in enumerate(configs):
            device = prepare_device(cfg)  # its device and thread count (a grid may sweep them)
            data = datasets[cfg.data_dir, cfg.device]
            run_dir = runs.start_run(cfg, results_dir)
            how = execution_text(cfg.precision, cfg.channels_last)
            console.print(
                f"[{i + 1}/{len(configs)}] {cfg.arch} x {cfg.fusion} seed {cfg.seed} "
                f"on {device_name(device)}, {how} -> {run_dir}"
            )
            try:
                finished.append(train_with_progress(cfg, data, run_dir, grid=(i, len(configs))))
            except KeyboardInterrupt:
                done = runs.completed_anyway(run_dir) if i + 1 == len(configs) else None
                if done is not None:  # the signal came as the last run closed: all done
                    finished.append(done)
                    break
                console.print(
                    f"interrupted: {len(finished)} run(s) finished and kept; resume this "
                    f"one with `python -m benchmark run --resume {run_dir}`; "
                    f"{len(configs) - i - 1} run(s) of the grid not started"
                )
                raise
    print_wide(summary_table(finished))
    return 0


def resume(args: argparse.Namespace) -> int:
    """Continue ``--resume RUN_DIR`` from its last finished epoch (optimizer and RNGs restored)."""
    from benchmark import runs
    from benchmark.data import load_mnist

    run_dir = Path(args.resume)
    grid = ("arch", "fusion", "seed", "seeds", "model_arg")
    given = [*config_overrides(args), *(k for k in grid if getattr(args, k) is not None)]
    given += ["tuned"] if args.tuned else []
    given += [k for k in ("config", "print_config") if getattr(args, k)]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise UsageError(f"--resume continues the saved config; drop {flags}")
    if not (run_dir / runs.CONFIG).exists():
        raise UsageError(f"--resume {run_dir}: no {runs.CONFIG} there; expected a run directory")
    if (run_dir / runs.METRICS).exists():
        raise UsageError(f"--resume {run_dir}: the run is already complete")
    with runs.claimed(run_dir):  # held from here to the end: one resume at a time
        if (run_dir / runs.METRICS).exists():  # another resume finished it just before
            raise UsageError(f"--resume {run_dir}: the run is already complete")
        cfg = runs.load_config(run_dir)  # checked: a damaged config.json is one line naming it
        device = prepare_device(cfg)
        check_available(cfg.log)
        state = runs.resume_state(run_dir, cfg, device)
        data = load_mnist(cfg.data_dir).to(device)
        console.print(
            f"resuming {run_dir} at epoch {len(state.history) + 1 if state else 1} "
            f"({execution_text(cfg.precision, cfg.channels_last)}, as saved)"
        )
        with interrupts_as_exceptions():
            try:
                metrics = train_with_progress(cfg, data, run_dir, state=state)
            except KeyboardInterrupt:
                metrics = runs.completed_anyway(run_dir)  # the signal came as it closed
                if metrics is None:
                    raise
    print_wide(summary_table([metrics]))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train arch x fusion x seed runs", description=cmd_run.__doc__)
    p.add_argument("--arch", help="encoder(s): comma list, wildcards, or all [gap_cnn]")
    p.add_argument("--fusion", help="fusion(s): comma list, wildcards, or all [concat]")
    p.add_argument("--seed", type=int, help="one seed [0]")
    p.add_argument("--seeds", type=int_list, help="several seeds, e.g. 0,1,2 (one run each)")
    p.add_argument(
        "--model-arg",
        type=key_value,
        action="append",
        metavar="KEY=VALUE",
        help="encoder/fusion hyperparameter override, e.g. width=32 (repeatable)",
    )
    p.add_argument("--results-dir", default=OUTPUT, help=f"where runs/ is written [{OUTPUT}]")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="train with the parameters `tune` exported for each arch x fusion at this budget",
    )
    p.add_argument(
        "--tuned-study",
        metavar="NAME",
        help="with --tuned: use this study's export (e.g. one tuned at another budget)",
    )
    p.add_argument(
        "--tuned-any-budget",
        action="store_true",
        help="with --tuned: accept the one export of a pair although tuned at another budget",
    )
    add_config_file_flags(p)
    add_config_flags(p, sweep=True)
    p.set_defaults(func=cmd_run)
