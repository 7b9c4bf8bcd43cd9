"""Command line: ``python -m benchmark <command>``. Each command is a function of parsed args."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmark import bench, datapath, export, predict, report, tune
from benchmark.config import TrainConfig

console = Console(highlight=False)
EXIT_USAGE = 2
EXIT_FAILED = 1

# Config fields that get dedicated flags (lists, grids) rather than the generated ones.
SPECIAL_FIELDS = {"arch", "fusion", "seed", "model_args", "tuned_from"}


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2, nothing written."""


class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an interrupt, so the same clean-up path serves both signals."""

    exit_status = 143


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid seed list {text!r}; expected comma-separated integers such as 0,1,2"
        ) from None


def parse_value(text: str) -> Any:
    """A model-argument value: int, float, bool or None if it reads as one, else the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(value.strip())


def optional(cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.lower() == "none" else cast(text)

    convert.__name__ = cast.__name__
    return convert


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``TrainConfig`` field (``--batch-size``, ``--no-augment`` ...), default None
    so that only what the user typed overrides the config (or the resumed/tuned one)."""
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    group = parser.add_argument_group("training config (defaults in brackets)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in SPECIAL_FIELDS:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint)
        is_optional = isinstance(hint, types.UnionType) and type(None) in args
        base = next(a for a in args if a is not type(None)) if is_optional else hint
        flag = "--" + f.name.replace("_", "-")
        helptext = f"[{getattr(defaults, f.name)}]"
        if base is bool:
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=helptext
            )
        else:
            cast = optional(base) if is_optional else base
            group.add_argument(
                flag, type=cast, default=None, metavar=base.__name__.upper(), help=helptext
            )


def add_device_flags(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``, shared by the measuring commands."""
    from benchmark.config import DEVICES, PRECISIONS

    parser.add_argument("--device", choices=DEVICES, default="auto", help="[auto]")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="autocast dtype; auto = bf16 on cuda, fp32 on cpu [auto]",
    )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(TrainConfig)} - SPECIAL_FIELDS
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


@contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt) for the duration of the block."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  train sum acc {task.fields[acc]:.4f}"),
        TextColumn("{task.fields[val]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


# ---------------------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    """Encoders and fusions with parameter counts (encoder alone; fusion on the default gap_cnn)."""
    from architectures import ENCODERS, FUSIONS, count_params, create_model

    table = Table(title="encoders (features D, parameters)")
    for col in ("encoder", "D", "params", "defaults", "description"):
        table.add_column(col)
    for name in ENCODERS.select(args.encoders):
        entry = ENCODERS.get(name)
        enc = entry.factory()
        table.add_row(
            name,
            str(enc.num_features),
            f"{count_params(enc):,}",
            str(entry.defaults),
            entry.description,
        )
    console.print(table)
    table = Table(title="fusions (parameters on gap_cnn features; with gap_cnn total)")
    for col in ("fusion", "params", "model params", "defaults", "description"):
        table.add_column(col)
    for name in FUSIONS.select(args.fusions):
        entry = FUSIONS.get(name)
        model = create_model("gap_cnn", name)
        table.add_row(
            name,
            f"{count_params(model.fusion):,}",
            f"{count_params(model):,}",
            str(entry.defaults),
            entry.description,
        )
    console.print(table)
    console.print(
        "Any timm model: --arch timm:<name> (e.g. timm:resnet18); see timm.list_models()."
    )
    return 0


# ----------------------------------------------------------------------------------------- run


def grid_configs(args: argparse.Namespace, base: TrainConfig) -> list[TrainConfig]:
    """Every arch x fusion x seed the flags ask for, validated before anything is written."""
    from architectures import ENCODERS, FUSIONS, split_overrides

    archs = ENCODERS.select(args.arch) if args.arch else [base.arch]
    fusions = FUSIONS.select(args.fusion) if args.fusion else [base.fusion]
    if args.seeds is not None and args.seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    seeds = (
        args.seeds
        if args.seeds is not None
        else [args.seed if args.seed is not None else base.seed]
    )
    if not seeds:
        raise UsageError("--seeds is empty; expected comma-separated integers such as 0,1,2")
    configs = []
    for arch in archs:
        for fusion in fusions:
            for seed in seeds:
                cfg = replace(base, arch=arch, fusion=fusion, seed=seed)
                try:
                    cfg.validate()
                    split_overrides(arch, fusion, cfg.model_args)
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
                configs.append(cfg)
    return configs


def base_config(args: argparse.Namespace) -> TrainConfig:
    cfg = TrainConfig(**config_overrides(args))
    cfg.model_args = dict(args.model_arg or [])
    return cfg


def train_with_progress(
    cfg: TrainConfig, data: Any, run_dir: Path, state: Any = None
) -> dict[str, Any]:
    from benchmark import runs

    steps = len(data.train.subset(cfg.train_subset)) // cfg.batch_size
    done = state.step if state is not None else 0
    label = f"{cfg.arch} x {cfg.fusion} seed {cfg.seed}"
    with progress_bar() as progress:
        task = progress.add_task(
            label,
            total=steps * cfg.epochs,
            completed=done,
            loss=float("nan"),
            acc=float("nan"),
            val="",
        )

        epochs_done = [done // steps]

        def on_step(i: int, n: int, loss: float, acc: float) -> None:
            progress.update(task, completed=epochs_done[0] * n + i, loss=loss, acc=acc)

        def on_epoch(st: Any, stats: Any) -> None:
            epochs_done[0] = stats.epoch
            progress.update(task, val=f"val sum {stats.val_sum_acc:.4f} (epoch {stats.epoch})")

        return runs.execute(cfg, data, run_dir, state=state, on_step=on_step, on_epoch=on_epoch)


def summary_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="test metrics (exhaustive: every image x all 10 addends)")
    for col in (
        "arch",
        "fusion",
        "seed",
        "params",
        "digit",
        "sum",
        "joint",
        "consistency",
        "train s",
        "img/s",
        "run",
    ):
        table.add_column(col, justify="right" if col not in ("arch", "fusion", "run") else "left")
    for m in rows:
        t = m["test"]
        table.add_row(
            m["arch"],
            m["fusion"],
            str(m["seed"]),
            f"{m['params']:,}",
            f"{t['digit_acc']:.4f}",
            f"{t['sum_acc']:.4f}",
            f"{t['joint_acc']:.4f}",
            f"{t['consistency']:.4f}",
            f"{m['train_seconds']:.1f}",
            f"{m['train_images_per_s']:,.0f}",
            m["run_id"],
        )
    return table


def cmd_run(args: argparse.Namespace) -> int:
    """Train one run or a grid (arch x fusion x seed), one after another."""
    import torch

    from benchmark import runs
    from benchmark.data import load_mnist
    from benchmark.trainer import resolve_device

    if args.resume:
        return resume(args)
    base = base_config(args)
    configs = grid_configs(args, base)
    if args.tuned:
        configs = [
            tune.apply_tuned(cfg, config_overrides(args), Path(args.results_dir)) for cfg in configs
        ]
    device = resolve_device(base.device)
    if base.threads:
        torch.set_num_threads(base.threads)
    data = load_mnist(base.data_dir).to(device)
    results_dir = Path(args.results_dir)
    finished: list[dict[str, Any]] = []
    with interrupts_as_exceptions():
        for i, cfg in enumerate(configs):
            run_dir = runs.start_run(cfg, results_dir)
            console.print(
                f"[{i + 1}/{len(configs)}] {cfg.arch} x {cfg.fusion} seed {cfg.seed} "
                f"on {runs.device_name(device)} -> {run_dir}"
            )
            try:
                finished.append(train_with_progress(cfg, data, run_dir))
            except KeyboardInterrupt:
                console.print(
                    f"interrupted: {len(finished)} run(s) finished and kept; resume this "
                    f"one with `python -m benchmark run --resume {run_dir}`; "
                    f"{len(configs) - i - 1} run(s) of the grid not started"
                )
                raise
    console.print(summary_table(finished))
    return 0


def resume(args: argparse.Namespace) -> int:
    """Continue ``--resume RUN_DIR`` from its last finished epoch (optimizer and RNGs restored)."""
    import torch

    from benchmark import runs
    from benchmark.data import load_mnist
    from benchmark.trainer import resolve_device

    run_dir = Path(args.resume)
    grid = ("arch", "fusion", "seed", "seeds", "model_arg")
    given = [*config_overrides(args), *(k for k in grid if getattr(args, k) is not None)]
    given += ["tuned"] if args.tuned else []
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in sorted(given))
        raise UsageError(f"--resume continues the saved config; drop {flags}")
    if not (run_dir / runs.CONFIG).exists():
        raise UsageError(f"--resume {run_dir}: no {runs.CONFIG} there; expected a run directory")
    if (run_dir / runs.METRICS).exists():
        raise UsageError(f"--resume {run_dir}: the run is already complete")
    pid = runs.live_pid(run_dir)
    if pid is not None:
        raise UsageError(f"--resume {run_dir}: still running (pid {pid}); stop it first")
    try:
        cfg = runs.load_config(run_dir)
    except ValueError as exc:  # JSONDecodeError included
        raise UsageError(f"--resume {run_dir}: unreadable {runs.CONFIG} ({exc})") from None
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # the same thread count keeps CPU results bit-exact
    state = runs.resume_state(run_dir, cfg, device)
    data = load_mnist(cfg.data_dir).to(device)
    console.print(f"resuming {run_dir} at epoch {len(state.history) + 1 if state else 1}")
    with interrupts_as_exceptions():
        metrics = train_with_progress(cfg, data, run_dir, state=state)
    console.print(summary_table([metrics]))
    return 0


def add_run_parser(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--results-dir", default="results", help="where runs/ is written [results]")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument(
        "--tuned",
        action="store_true",
        help="train with the parameters exported by `tune` for each arch x fusion",
    )
    add_config_flags(p)
    p.set_defaults(func=cmd_run)


def add_list_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="registered encoders and fusions with parameter counts")
    p.add_argument("--encoders", default="all", help="names or wildcards [all]")
    p.add_argument("--fusions", default="all", help="names or wildcards [all]")
    p.set_defaults(func=cmd_list)


# Each entry adds one subcommand's parser; a command module owns its own flags.
PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_list_parser,
    add_run_parser,
    report.add_parser,
    bench.add_parser,
    datapath.add_parser,
    tune.add_parser,
    predict.add_parser,
    export.add_parser,
]


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmark",
        description="digitsum-bench: compare architectures on MNIST digit + addend",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for add in PARSERS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and turn expected failures into one line and an exit status."""
    from architectures import UnknownNameError
    from benchmark.data import DataError
    from benchmark.io import UnreadableFileError
    from benchmark.trainer import NonFiniteLossError

    args = build_parser().parse_args(argv)
    prog = f"python -m benchmark {args.command}"
    try:
        return int(args.func(args) or 0)
    except (UsageError, UnknownNameError) as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_USAGE
    except (DataError, UnreadableFileError) as exc:
        sys.stderr.write(f"{prog}: error: {exc}\n")
        return EXIT_FAILED
    except NonFiniteLossError as exc:
        sys.stderr.write(f"{prog}: training stopped: {exc}\n")
        return EXIT_FAILED
    except Terminated:
        sys.stderr.write(f"{prog}: terminated (SIGTERM)\n")
        return Terminated.exit_status
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted (SIGINT)\n")
        return 130
