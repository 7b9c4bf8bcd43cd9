"""One trainer for every encoder x fusion: device-resident data, no DataLoader, exhaustive eval."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from architectures import DigitSumModel, create_model
from architectures.fusions import NUM_DIGITS, NUM_SUMS
from benchmark import metrics
from benchmark.config import TrainConfig
from benchmark.data import DigitSumData, Split, to_float, training_batches
from benchmark.errors import TrainingFailed
from benchmark.hardware import Execution
from benchmark.holdout import heldout_mask


class NonFiniteLossError(TrainingFailed):
    """Training diverged; the message names epoch, step and learning rate."""


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Cross-entropy with label smoothing spread over the *finite* logits only.

    ``late_sum`` gives -inf to impossible sums; plain label smoothing would put mass there and make
    the loss infinite. Over all-finite logits this equals ``F.cross_entropy(label_smoothing=eps)``.
    """
    if eps == 0:
        return F.cross_entropy(logits, target)
    logp = F.log_softmax(logits.float(), dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)
    finite = torch.isfinite(logits)
    smooth = -torch.where(finite, logp, 0.0).sum(1) / finite.sum(1)
    return ((1 - eps) * nll + eps * smooth).mean()


def compute_loss(
    model: DigitSumModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    addends: torch.Tensor,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and the number of correct sum predictions in the batch (a tensor: no host sync)."""
    digit_logits, sum_logits = model(images, addends)
    sums = labels + addends
    loss = smoothed_cross_entropy(digit_logits, labels, cfg.label_smoothing)
    if cfg.sum_loss_weight:
        loss = loss + cfg.sum_loss_weight * smoothed_cross_entropy(
            sum_logits, sums, cfg.label_smoothing
        )
    correct = (sum_logits.argmax(1) == sums).sum()
    return loss, correct


def train_step(
    state: TrainState,
    cfg: TrainConfig,
    images: torch.Tensor,
    labels: torch.Tensor,
    addends: torch.Tensor,
    ex: Execution,
    loss_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] = compute_loss,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step, the only one in the suite (trainer, ``bench`` and ``datapath``):
    loss under ``ex``'s autocast, backward, step. Returns the detached loss and the correct-sum
    count."""
    with ex.autocast():
        loss, correct = loss_fn(state.model, images, labels, addends, cfg)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    return loss.detach(), correct


@torch.no_grad()
def evaluate(
    model: DigitSumModel,
    split: Split,
    ex: Execution,
    batch_size: int,
    by_class: bool = False,
    holdout_pairs: int = 0,
) -> dict[str, Any]:
    """Exhaustive metrics: every image paired with all 10 addends, so no sampling noise.

    One fraction in [0, 1] per entry of ``metrics.METRICS``, plus ``pairs``. With
    ``holdout_pairs`` k > 0 (the (digit, addend) pairs a run never trained on, see
    ``holdout.heldout_mask``) the same metrics also come for the pairs training saw and the
    held-out ones, as ``seen`` and ``heldout``.
    ``ex`` is how the run computes (its device the model's).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    addends = torch.arange(NUM_DIGITS, device=device)
    k = len(metrics.METRICS)
    totals = torch.zeros(k, dtype=torch.long, device=device)
    held_totals = torch.zeros(k + 1, dtype=torch.long, device=device)  # k counts, then pairs
    heldout = heldout_mask(holdout_pairs, device=device) if holdout_pairs else None
    class_correct = torch.zeros(NUM_SUMS, dtype=torch.long, device=device)
    class_count = torch.zeros(NUM_SUMS, dtype=torch.long, device=device)
    for start in range(0, len(split), batch_size):
        images = to_float(split.images[start : start + batch_size].to(device))
        images = images.contiguous(memory_format=ex.memory_format)
        labels = split.labels[start : start + batch_size].to(device)
        with ex.autocast():
            digit_logits, sum_logits = model.forward_all_addends(images)
        pred_digit = digit_logits.argmax(-1)  # (B, 10)
        pred_sum = sum_logits.argmax(-1)  # (B, 10)
        true_sum = labels[:, None] + addends  # (B, 10)
        sum_ok = pred_sum == true_sum
        ok = torch.stack(
            [m.hit(pred_digit, pred_sum, labels[:, None], addends) for m in metrics.METRICS]
        )
        totals += ok.sum((1, 2))
        if heldout is not None:
            held = heldout[labels]  # (B, 10): the pairs training never drew
            held_totals += torch.cat([(ok & held).sum((1, 2)), held.sum()[None]])
        if by_class:
            class_count += torch.bincount(true_sum.flatten(), minlength=NUM_SUMS)
            class_correct += torch.bincount(true_sum[sum_ok], minlength=NUM_SUMS)
    model.train(was_training)
    pairs = len(split) * NUM_DIGITS
    out = metrics.rates(totals.tolist(), pairs)
    if heldout is not None:
        held_pairs = int(held_totals[k])
        out["seen"] = metrics.rates((totals - held_totals[:k]).tolist(), pairs - held_pairs)
        out["heldout"] = metrics.rates(held_totals[:k].tolist(), held_pairs)
    if by_class:
        out["sum_acc_by_class"] = (class_correct / class_count.clamp(min=1)).tolist()
    return out


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based); a pure function, so resume is exact."""
    if cfg.schedule == "constant":
        return cfg.lr
    warm = int(cfg.warmup * total_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total_steps - warm)
    if cfg.schedule == "onecycle":
        return cfg.lr * max(0.0, 1.0 - frac)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))


def final_evaluation(
    model: DigitSumModel, data: DigitSumData, ex: Execution, cfg: TrainConfig
) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """The finished model's validation and test metrics (the only test-set evaluation; per-sum
    accuracies and, with held-out pairs, seen and held-out figures) and its weights on the CPU."""
    k = cfg.holdout_pairs
    val = evaluate(model, data.val, ex, cfg.eval_batch_size, holdout_pairs=k)
    test = evaluate(model, data.test, ex, cfg.eval_batch_size, by_class=True, holdout_pairs=k)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return val, test, weights


@dataclass
class EpochStats:
    epoch: int  # 1-based
    train_loss: float
    train_sum_acc: float  # on the sampled training pairs of this epoch
    val: dict[str, float]  # one per metric; on seen pairs only when pairs are held out
    lr: float  # learning rate at the last step of the epoch
    seconds: float  # training time of this epoch (evaluation and compilation excluded)

    def __getattr__(self, name: str) -> float:
        """``val_<metric>`` (e.g. ``val_sum_acc``): a validation figure, as in history.csv."""
        if name.startswith("val_") and name[4:] in self.__dict__.get("val", {}):
            return self.val[name[4:]]
        raise AttributeError(name)

    def row(self) -> dict[str, float]:
        """The history.csv row: validation metrics flattened to ``val_<metric>`` columns."""
        values = {f"val_{k}": v for k, v in self.val.items()}
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_sum_acc": self.train_sum_acc,
            **values,
            "lr": self.lr,
            "seconds": self.seconds,
        }


@dataclass
class TrainState:
    """Everything needed to continue a run exactly: model, optimizer, step and generators."""

    model: DigitSumModel
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int = 0
    history: list[EpochStats] = field(default_factory=list)
    train_seconds: float = 0.0
    compile_seconds: float = 0.0

    def cuda_device(self) -> torch.device | None:
        """The GPU the model is on, whose own generator its dropout draws from; None on a CPU."""
        device = next(self.model.parameters()).device
        return device if device.type == "cuda" else None

    def state_dict(self) -> dict[str, Any]:
        cuda = self.cuda_device()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(cuda)} if cuda is not None else {}),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
            "history": [vars(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if (cuda := self.cuda_device()) is not None and "cuda_rng" in state:  # else: reseeded
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), cuda)
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.compile_seconds = float(state["compile_seconds"])
        self.history = [EpochStats(**h) for h in state["history"]]


def build_state(cfg: TrainConfig, ex: Execution) -> TrainState:
    """Seeded model (placed as ``ex`` says), optimizer and data generator for ``cfg``."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, cfg.fusion, **cfg.model_args)
    model = model.to(ex.device, memory_format=ex.memory_format)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            groups, lr=cfg.lr, betas=(cfg.momentum, 0.999)
        )
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    generator = torch.Generator(device=ex.device).manual_seed(cfg.seed)
    return TrainState(model=model, optimizer=optimizer, generator=generator)


@dataclass(frozen=True)
class Progress:
    """One event of a run's progress stream: every ``step_every`` steps, and once more after
    each epoch's validation with ``stats`` and ``state`` set (checkpointing, pruning, trackers
    and progress bars all listen to the same stream)."""

    step: int  # optimizer steps done in the whole run
    total: int  # optimizer steps of the whole run
    epoch: int  # 1-based epoch the step belongs to
    loss: float  # running mean training loss of this epoch
    sum_acc: float  # running training sum accuracy of this epoch (sampled pairs)
    stats: EpochStats | None = None  # set on the event that closes an epoch
    state: TrainState | None = None  # idem


Listener = Callable[[Progress], None]


def train(
    cfg: TrainConfig,
    data: DigitSumData,
    ex: Execution,
    state: TrainState | None = None,
    listen: Listener | None = None,
    step_every: int | None = 25,
) -> TrainState:
    """Train ``cfg.epochs`` epochs (continuing from ``state`` if given) as ``ex`` says; ``data``
    must already be on ``ex.device``. ``listen`` gets the progress stream: a step event every
    ``step_every`` steps (one host sync each; None: none) and an epoch event after each epoch."""
    device = ex.device
    ex.activate()
    state = state or build_state(cfg, ex)
    model = state.model
    batches = training_batches(data, cfg, ex.memory_format)
    bs = cfg.batch_size
    steps_per_epoch = batches.steps()
    total_steps = steps_per_epoch * cfg.epochs
    loss_fn = ex.compiled(compute_loss)
    compiled = False  # the first compiled step compiles: timed apart as compile_seconds
    every = step_every if listen is not None and step_every else 0
    model.train()
    start_epoch = state.step // steps_per_epoch
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct_sum = torch.zeros((), dtype=torch.long, device=device)
        lr = cfg.lr
        for i, (images, labels, addends) in enumerate(batches.epoch(state.generator)):
            lr = lr_at(cfg, state.step, total_steps)
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            if ex.compile and not compiled:
                ex.synchronize()
                c0 = time.perf_counter()
                loss, correct = train_step(state, cfg, images, labels, addends, ex, loss_fn)
                ex.synchronize()
                spent = time.perf_counter() - c0
                state.compile_seconds += spent
                t0 += spent  # not training time
                compiled = True
            else:
                loss, correct = train_step(state, cfg, images, labels, addends, ex, loss_fn)
            state.step += 1
            loss_sum += loss
            correct_sum += correct
            if every and ((i + 1) % every == 0 or i + 1 == steps_per_epoch):
                mean_loss = loss_sum.item() / (i + 1)
                if not math.isfinite(mean_loss):  # finite at the last look: the steps since
                    first = i // every * every + 1
                    steps = f"step {first}" if first == i + 1 else f"steps {first}-{i + 1}"
                    raise NonFiniteLossError(
                        f"non-finite loss at epoch {epoch + 1}, {steps}, lr {lr:.3g}"
                    )
                acc = correct_sum.item() / ((i + 1) * bs)
                listen(Progress(state.step, total_steps, epoch + 1, mean_loss, acc))
        ex.synchronize()
        seconds = time.perf_counter() - t0
        state.train_seconds += seconds
        train_loss = loss_sum.item() / steps_per_epoch
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"non-finite loss in epoch {epoch + 1} (steps 1-{steps_per_epoch}), lr {lr:.3g}"
            )
        val = evaluate(model, data.val, ex, cfg.eval_batch_size, holdout_pairs=cfg.holdout_pairs)
        if cfg.holdout_pairs:  # held-out pairs must not steer any decision (tuning, pruning)
            val = val["seen"]
        train_acc = correct_sum.item() / (steps_per_epoch * bs)
        stats = EpochStats(
            epoch=epoch + 1,
            train_loss=train_loss,
            train_sum_acc=train_acc,
            val={name: val[name] for name in metrics.names()},
            lr=lr,
            seconds=seconds,
        )
        state.history.append(stats)
        if listen is not None:
            listen(
                Progress(state.step, total_steps, epoch + 1, train_loss, train_acc, stats, state)
            )
    return state
