"""``datapath``: what the trainer's data path costs, measured against two references.

Same model, batch size, optimizer and number of timed steps, three ways:

1. ``trainer``: ``benchmark.trainer.train`` on device-resident data, one epoch of
   ``steps / rounds`` batches per round (images / ``state.train_seconds``, which leaves the
   epoch-end evaluation out);
2. ``prebuilt``: the same loss / backward / AdamW step on ONE pre-built batch, no data work at all:
   the upper bound for any data path;
3. ``dataloader``: the usual per-item ``Dataset`` + ``DataLoader`` pipeline (addend and one-hot
   drawn and the image converted to float in ``__getitem__``, default collate).

The three are interleaved in ``--rounds`` rounds, so that a change in load on a shared machine
slows all of them alike, and each figure is the median of its rounds, so that a load spike during
one round does not decide it. Warm-up steps run first (for the trainer: a separate warm-up run
of the same configuration) and are not timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.table import Table

from architectures import ENCODERS, FUSIONS
from architectures.fusions import NUM_DIGITS
from benchmark import io as atomic
from benchmark.bench import resolve_precision, results_path, synchronize
from benchmark.config import TrainConfig
from benchmark.data import DigitSumData, Split, load_mnist, to_float
from benchmark.runs import device_name, git_commit
from benchmark.trainer import (
    TrainState,
    autocast,
    build_state,
    compute_loss,
    resolve_device,
    train,
    use_channels_last,
)

WAYS = ("trainer", "prebuilt", "dataloader")


class NaiveDigitSumDataset(torch.utils.data.Dataset):
    """A per-item dataset as a typical pipeline writes it; items are
    ``(image float (1, 28, 28) in [0, 1], addend int64, one_hot float (10,), label int64)``.

    The one-hot is computed although the model builds its own: a naive pipeline pays for it.
    """

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        addend = torch.randint(0, NUM_DIGITS, ())
        one_hot = F.one_hot(addend, NUM_DIGITS).float()
        return to_float(self.split.images[i]), addend, one_hot, self.split.labels[i]


def fit_step(
    state: TrainState,
    cfg: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    addends: torch.Tensor,
) -> None:
    """One optimizer step as the trainer takes it: ``compute_loss`` under autocast, AdamW."""
    device = images.device
    if use_channels_last(cfg, device):
        images = images.contiguous(memory_format=torch.channels_last)
    with autocast(device, cfg.precision):
        loss, _ = compute_loss(state.model, images, labels, addends, cfg)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()


def prebuilt_step(cfg: TrainConfig, split: Split) -> Callable[[], None]:
    """The step on one batch built once: the model's own speed, the data path's ceiling."""
    device = split.images.device
    state = build_state(cfg, device)
    bs = cfg.batch_size
    images = to_float(split.images[:bs])
    labels = split.labels[:bs]
    addends = torch.randint(0, NUM_DIGITS, (bs,), device=device, generator=state.generator)
    return lambda: fit_step(state, cfg, images, labels, addends)


def dataloader_step(
    cfg: TrainConfig, split: Split, num_workers: int, device: torch.device
) -> Callable[[], None]:
    """The step fed by a DataLoader over ``NaiveDigitSumDataset(split)`` (on the CPU); one pass,
    so ``split`` must hold a batch for every call."""
    state = build_state(cfg, device)
    loader = torch.utils.data.DataLoader(
        NaiveDigitSumDataset(split),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    batches = iter(loader)

    def step() -> None:
        images, addends, one_hot, labels = next(batches)
        one_hot.to(device)  # moved like the rest of the batch, then unused: the model has its own
        fit_step(state, cfg, images.to(device), labels.to(device), addends.to(device))

    return step


def timed_seconds(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` calls, synchronised once at the end like the trainer's epoch timer."""
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - t0


def measure(
    cfg: TrainConfig,
    data: DigitSumData,
    loader_split: Split,
    steps: int,
    warmup: int,
    rounds: int,
    num_workers: int,
) -> dict[str, list[float]]:
    """Train images/s of each way in each round; every round times ``steps / rounds`` steps of
    each way in turn.

    Interleaving makes a change in machine load (a shared CPU) slow all three alike, so the
    ratios stay meaningful. The trainer trains one epoch of ``steps / rounds`` batches per round,
    continuing its state as a resumed run does; its epoch-end evaluation (outside
    ``train_seconds``) gets a one-batch validation split.
    """
    device = data.train.images.device
    bs = cfg.batch_size
    per_round = steps // rounds
    data = dataclasses.replace(data, val=data.val.subset(bs))
    if warmup:  # a separate run: the timed one starts with a fresh model, as a real run does
        train(dataclasses.replace(cfg, epochs=1, train_subset=warmup * bs), data)
    others = {
        "prebuilt": prebuilt_step(cfg, data.train),
        "dataloader": dataloader_step(cfg, loader_split, num_workers, device),
    }
    for step in others.values():
        timed_seconds(step, warmup, device)  # warm-up, not counted
    trainer_cfg = dataclasses.replace(cfg, train_subset=per_round * bs)
    state = build_state(trainer_cfg, device)
    images = per_round * bs
    per_round_ips: dict[str, list[float]] = {way: [] for way in WAYS}
    for r in range(rounds):
        before = state.train_seconds
        train(dataclasses.replace(trainer_cfg, epochs=r + 1), data, state=state)
        per_round_ips["trainer"].append(images / (state.train_seconds - before))
        for name, step in others.items():
            per_round_ips[name].append(images / timed_seconds(step, per_round, device))
    return per_round_ips


def markdown(report: dict[str, Any]) -> str:
    ips = report["images_per_s"]
    ratios = report["ratios"]
    lines = [
        f"# Data path: {report['arch']} x {report['fusion']}",
        "",
        f"- device: {report['device']}",
        f"- torch {report['torch']}, commit {report['commit']}",
        f"- batch size {report['batch_size']}, {report['steps']} timed steps each after "
        f"{report['warmup']} warm-up steps, interleaved in {report['rounds']} rounds "
        "(figures: median of the rounds); "
        f"precision {report['precision']}, DataLoader workers {report['num_workers']}",
        "",
        "| data path | train images/s |",
        "|---|---:|",
        f"| trainer (device-resident, `benchmark.trainer.train`) | {ips['trainer']:,.0f} |",
        f"| one pre-built batch (upper bound) | {ips['prebuilt']:,.0f} |",
        f"| per-item Dataset + DataLoader | {ips['dataloader']:,.0f} |",
        "",
        f"- trainer / prebuilt: {ratios['trainer_over_prebuilt']:.3f}",
        f"- trainer / dataloader: {ratios['trainer_over_dataloader']:.2f}",
        "",
    ]
    return "\n".join(lines)


def cmd_datapath(args: argparse.Namespace) -> int:
    """Train images/s of one model three ways: the trainer, one pre-built batch (upper bound) and
    a per-item Dataset + DataLoader; writes <results>/datapath/<device>.json and .md."""
    # Not at the top: benchmark.cli imports this module.
    from benchmark.cli import UsageError, console, interrupts_as_exceptions

    arch, fusion = ENCODERS.get(args.arch).name, FUSIONS.get(args.fusion).name
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for name, value, low in (
        ("--batch-size", args.batch_size, 1),
        ("--steps", args.steps, 1),
        ("--warmup", args.warmup, 0),
        ("--rounds", args.rounds, 1),
        ("--num-workers", args.num_workers, 0),
    ):
        if value < low:
            raise UsageError(f"{name} must be an integer >= {low}, got {value}")
    if args.steps % args.rounds:
        raise UsageError(f"--steps ({args.steps}) must be a multiple of --rounds ({args.rounds})")
    precision = resolve_precision(args.precision, device)
    cfg = TrainConfig(
        arch=arch,
        fusion=fusion,
        epochs=1,
        batch_size=args.batch_size,
        device=device.type,
        precision=precision,
    )
    cpu_data = load_mnist(args.data_dir)
    needed = (args.warmup + args.steps) * args.batch_size
    if needed > len(cpu_data.train):
        raise UsageError(
            f"(--warmup + --steps) x --batch-size = {needed} images, more than the "
            f"{len(cpu_data.train)} training images; lower one of them"
        )
    data = cpu_data.to(device)
    console.print(
        f"datapath: {arch} x {fusion} on {device_name(device)}, batch {args.batch_size}, "
        f"{args.steps} steps"
    )
    with interrupts_as_exceptions():
        per_round = measure(
            cfg,
            data,
            cpu_data.train.subset(needed),
            args.steps,
            args.warmup,
            args.rounds,
            args.num_workers,
        )
    ips = {way: statistics.median(figures) for way, figures in per_round.items()}
    report = {
        "arch": arch,
        "fusion": fusion,
        "device": device_name(device),
        "device_type": device.type,
        "precision": precision,
        "torch": torch.__version__,
        "commit": git_commit(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "num_workers": args.num_workers,
        "images_per_s": ips,  # the median of the rounds (see the module docstring)
        "ratios": {
            "trainer_over_prebuilt": ips["trainer"] / ips["prebuilt"],
            "trainer_over_dataloader": ips["trainer"] / ips["dataloader"],
        },
        "images_per_s_per_round": per_round,
    }
    path = results_path(args.results_dir, "datapath", device, precision, ".json")
    atomic.write_json(path, report)
    atomic.write_text(path.with_suffix(".md"), markdown(report))
    console.print(report_table(report, path))
    return 0


def report_table(report: dict[str, Any], path: Path) -> Table:
    prebuilt = report["images_per_s"]["prebuilt"]
    table = Table(
        title=f"data path: {report['arch']} x {report['fusion']} on {report['device']}, "
        f"batch {report['batch_size']}, {report['steps']} steps",
        caption=f"written to {path} and .md",
    )
    for col in ("data path", "train img/s", "vs prebuilt"):
        table.add_column(col, justify="left" if col == "data path" else "right")
    for way in WAYS:
        ips = report["images_per_s"][way]
        table.add_row(way, f"{ips:,.0f}", f"{ips / prebuilt:.3f}")
    return table


def add_parser(sub: argparse._SubParsersAction) -> None:
    from benchmark.cli import add_device_flags

    p = sub.add_parser(
        "datapath",
        help="trainer vs pre-built batch vs DataLoader train images/s",
        description=cmd_datapath.__doc__,
    )
    p.add_argument("--arch", default="gap_cnn", help="one encoder [gap_cnn]")
    p.add_argument("--fusion", default="concat", help="one fusion [concat]")
    p.add_argument("--batch-size", type=int, default=128, help="images per step, all three [128]")
    p.add_argument("--steps", type=int, default=200, help="timed steps, each of the three [200]")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before each [10]")
    p.add_argument(
        "--rounds", type=int, default=10, help="the three alternate, steps/rounds each time [10]"
    )
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes [0]")
    add_device_flags(p)
    p.add_argument("--data-dir", help="MNIST root [$MNIST_ROOT, then ./data]")
    p.add_argument(
        "--results-dir", default="results", help="report goes to <dir>/datapath/ [results]"
    )
    p.set_defaults(func=cmd_datapath)
