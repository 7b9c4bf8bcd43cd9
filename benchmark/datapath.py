"""The ``datapath`` measurement: what the trainer's data path costs, against two references.

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

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from architectures.fusions import NUM_DIGITS
from benchmark.benchfile import combination_of
from benchmark.config import TrainConfig
from benchmark.data import DigitSumData, Split, to_float
from benchmark.hardware import Execution, way_text
from benchmark.machines import with_features
from benchmark.trainer import TrainState, build_state, train, train_step

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
    ex: Execution,
) -> None:
    """The trainer's own step on a batch from elsewhere, in the trainer's memory layout."""
    images = images.contiguous(memory_format=ex.memory_format)
    train_step(state, cfg, images, labels, addends, ex)


def prebuilt_step(cfg: TrainConfig, split: Split, ex: Execution) -> Callable[[], None]:
    """The step on one batch built once: the model's own speed, the data path's ceiling."""
    device = ex.device
    state = build_state(cfg, ex)
    bs = cfg.batch_size
    images = to_float(split.images[:bs])
    labels = split.labels[:bs]
    addends = torch.randint(0, NUM_DIGITS, (bs,), device=device, generator=state.generator)
    return lambda: fit_step(state, cfg, images, labels, addends, ex)


def dataloader_step(
    cfg: TrainConfig, split: Split, num_workers: int, ex: Execution
) -> Callable[[], None]:
    """The step fed by a DataLoader over ``NaiveDigitSumDataset(split)`` (on the CPU); one pass,
    so ``split`` must hold a batch for every call."""
    device = ex.device
    state = build_state(cfg, ex)
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
        fit_step(state, cfg, images.to(device), labels.to(device), addends.to(device), ex)

    return step


def timed_seconds(step: Callable[[], None], steps: int, ex: Execution) -> float:
    """Seconds for ``steps`` calls, synchronised once at the end like the trainer's epoch timer."""
    ex.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    ex.synchronize()
    return time.perf_counter() - t0


def measure(
    cfg: TrainConfig,
    data: DigitSumData,
    ex: Execution,
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
    bs = cfg.batch_size
    per_round = steps // rounds
    data = dataclasses.replace(data, val=data.val.subset(bs))
    if warmup:  # a separate run: the timed one starts with a fresh model, as a real run does
        train(dataclasses.replace(cfg, epochs=1, train_subset=warmup * bs), data, ex)
    others = {
        "prebuilt": prebuilt_step(cfg, data.train, ex),
        "dataloader": dataloader_step(cfg, loader_split, num_workers, ex),
    }
    for step in others.values():
        timed_seconds(step, warmup, ex)  # warm-up, not counted
    trainer_cfg = dataclasses.replace(cfg, train_subset=per_round * bs)
    state = build_state(trainer_cfg, ex)
    images = per_round * bs
    per_round_ips: dict[str, list[float]] = {way: [] for way in WAYS}
    for r in range(rounds):
        before = state.train_seconds
        train(dataclasses.replace(trainer_cfg, epochs=r + 1), data, ex, state=state)
        per_round_ips["trainer"].append(images / (state.train_seconds - before))
        for name, step in others.items():
            per_round_ips[name].append(images / timed_seconds(step, per_round, ex))
    return per_round_ips


def markdown(report: dict[str, Any]) -> str:
    ips = report["images_per_s"]
    ratios = report["ratios"]
    lines = [
        f"# Data path: {combination_of(report)}",
        "",
        f"- device: {with_features(report['device'], report.get('cpu_features', ''))}",
        f"- torch {report['torch']}, commit {report['commit']}",
        f"- batch size {report['batch_size']}, {report['steps']} timed steps each after "
        f"{report['warmup']} warm-up steps, interleaved in {report['rounds']} rounds "
        "(figures: median of the rounds); "
        f"precision {way_text(report['precision'], bool(report.get('channels_last')))}"
        + f", DataLoader workers {report['num_workers']}",
        "",
        "| data path | train images/s |",
        "|---|---:|",
        f"| trainer (device-resident, `benchmark.trainer.train`) | {ips['trainer']:,.0f} |",
        f"| one pre-built batch (no data path: the ceiling, up to noise) | "
        f"{ips['prebuilt']:,.0f} |",
        f"| per-item Dataset + DataLoader | {ips['dataloader']:,.0f} |",
        "",
        f"- trainer / prebuilt: {ratios['trainer_over_prebuilt']:.3f}",
        f"- trainer / dataloader: {ratios['trainer_over_dataloader']:.2f}",
        "",
    ]
    return "\n".join(lines)
