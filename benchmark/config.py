"""The one typed training configuration. Every field is a command-line flag of ``run``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")

# Fields that change where or how fast a run goes, not what it learns: left out of the config hash.
EXECUTION_FIELDS = frozenset(
    {
        "seed",
        "device",
        "precision",
        "channels_last",
        "compile",
        "eval_batch_size",
        "threads",
        "data_dir",
        "tuned_from",
    }
)


@dataclass
class TrainConfig:
    """Hyperparameters and run settings. Defaults are the suite's reference settings."""

    arch: str = "gap_cnn"
    fusion: str = "concat"
    model_args: dict[str, Any] = field(default_factory=dict)  # encoder/fusion overrides
    seed: int = 0
    epochs: int = 4
    batch_size: int = 128  # images per optimizer step
    optimizer: str = "adamw"
    lr: float = 4e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum / AdamW beta1
    weight_decay: float = 5e-4  # decoupled (AdamW) or L2 (SGD)
    schedule: str = "onecycle"  # per-step: linear warm-up then linear decay to 0
    warmup: float = 0.2  # fraction of all steps spent warming up (onecycle, cosine)
    label_smoothing: float = 0.0
    sum_loss_weight: float = 1.0  # total loss = CE(digit) + sum_loss_weight * CE(sum)
    augment: bool = False  # random shift/rotation per sample, on the device
    aug_shift: float = 0.1  # max translation, fraction of the image side
    aug_degrees: float = 10.0  # max rotation, degrees
    train_subset: int | None = None  # use only the first N training images (tests, tuning)
    holdout_pairs: int = 0  # (digit, addend) pairs never trained on, reported apart (holdout.py)
    eval_batch_size: int = 1000  # images per evaluation batch (x10 addends)
    device: str = "auto"  # auto = cuda when present, else cpu
    precision: str = "auto"  # auto = bf16 autocast on cuda, fp32 on cpu
    channels_last: bool | None = None  # None = on for cuda, off for cpu (measured slower there)
    compile: bool = False  # torch.compile the model (compile time is reported apart)
    threads: int | None = None  # CPU threads (torch.set_num_threads); None = torch's default
    data_dir: str | None = None  # MNIST root; None = $MNIST_ROOT, then ./data
    tuned_from: dict[str, Any] | None = None  # set by --tuned: study name, trial, value

    def validate(self) -> None:
        """Raise ``ValueError`` with one line naming the bad field and what is accepted."""
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.sum_loss_weight < 0:
            raise ValueError(f"sum_loss_weight must be >= 0, got {self.sum_loss_weight}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.aug_shift < 0 or self.aug_degrees < 0:
            raise ValueError("aug_shift and aug_degrees must be >= 0")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ValueError(
                f"train_subset must be >= batch_size ({self.batch_size}), got {self.train_subset}"
            )
        from benchmark.holdout import MAX_HOLDOUT_PAIRS

        if not 0 <= self.holdout_pairs <= MAX_HOLDOUT_PAIRS:
            raise ValueError(
                f"holdout_pairs must be in 0..{MAX_HOLDOUT_PAIRS}, got {self.holdout_pairs}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be a positive integer, got {self.threads}")
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("device", self.device, DEVICES),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in choices:
                raise ValueError(f"{name} {value!r} is not one of: {', '.join(choices)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def config_hash(self) -> str:
        """Short hash of what the run learns (not seed or hardware): groups runs in the report."""
        learned = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        blob = json.dumps(learned, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


BATCH_SIZES = (64, 128, 256)  # the batch sizes tuning may pick


def search_space(trial: Any) -> dict[str, Any]:
    """``TrainConfig`` overrides for one Optuna trial (``tune``); define-by-run like the registry's.

    Parameter names are field names and the defaults above lie inside every range, so the
    defaults are one point of the space (``tune`` evaluates them first). Epochs are the tuning
    budget, not searched.
    """
    space: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-3, 2e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "sum_loss_weight": trial.suggest_float("sum_loss_weight", 0.25, 2.0),
        "augment": trial.suggest_categorical("augment", [False, True]),
    }
    if space["augment"]:
        space["aug_shift"] = trial.suggest_float("aug_shift", 0.0, 0.15)
        space["aug_degrees"] = trial.suggest_float("aug_degrees", 0.0, 20.0)
    return space


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based); a pure function, so resume is exact."""
    import math

    if cfg.schedule == "constant":
        return cfg.lr
    warm = int(cfg.warmup * total_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total_steps - warm)
    if cfg.schedule == "onecycle":
        return cfg.lr * max(0.0, 1.0 - frac)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
