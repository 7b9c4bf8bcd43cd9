"""The one typed training configuration. Every field is a command-line flag of ``run``."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmark import files
from benchmark.wording import closest

# MNIST's training file holds 60,000 images (``benchmark.data`` refuses an IDX file whose header
# says otherwise); 5,000 of them are the validation split, so training sees the other 55,000.
MNIST_TRAIN_FILE_IMAGES = 60_000
MNIST_VAL_IMAGES = 5_000
MNIST_TRAIN_IMAGES = MNIST_TRAIN_FILE_IMAGES - MNIST_VAL_IMAGES
# Runs that trained fewer images than this say little of a rate: warm-up (the first steps,
# oneDNN's kernels chosen) dominates them. A 2,048-image smoke run trained at 271 img/s, and the
# default run it then timed at 14 min took 4 (3,900 img/s). Estimates and the report use it.
MIN_TRAINED = 20_000
MAX_THREADS = 256  # torch accepts more, then its thread pool fails (a crash at exit with 100,000)


def flag_name(field: str) -> str:
    """The command-line flag of a config field: ``train_subset``: ``--train-subset``."""
    return "--" + field.replace("_", "-")


def seed_problem(seed: int) -> str | None:
    """What is wrong with ``seed`` (torch's generators take 0..2**63-1), or None."""
    return None if 0 <= seed < 2**63 else f"must be in 0..2**63-1, got {seed}"


FLOAT32_MAX = 3.4028234663852886e38  # the largest float32: an optimizer holds its lr as one
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
TRACKERS = ("none", "tensorboard", "mlflow")

# What each field *is*: the one catalogue. Every TrainConfig field declares one kind in its
# ``option()``; the config hash, the tuning budget and study names, the compare key, the flags and
# the report's grouping all read it through ``fields_of``.
KINDS = {
    "name": "names the combination (arch, fusion): a group's identity, set by dedicated flags",
    "model": "encoder/fusion hyperparameters: learned, and tuning may change them",
    "searched": "training hyperparameters the tuning search space sets",
    "budget": "how much training a run gets: a comparison is made at one budget",
    "experiment": "changes what is learned and measured (held-out pairs): its own experiment",
    "setting": "training settings held fixed by tuning (optimizer, schedule, ...)",
    "seed": "the replicate: pooled over in a group",
    "execution": "where and how fast a run goes, not what it learns",
    "record": "written by the program (tuned_from, auto_probe, ...), never typed as a flag",
}
LEARNED_KINDS = ("name", "model", "searched", "budget", "experiment", "setting")


def option(
    default: Any = None,
    help: str = "",
    choices: tuple[str, ...] | None = None,
    kind: str = "setting",
    sweep: bool = True,
    path: bool = False,
) -> Any:
    """A config field: its ``--help`` line and choices (the flag is built from them), its kind
    (one of ``KINDS``), whether ``run`` sweeps a comma list of it (not where every value would
    train the same run again) and whether it is a path (a comma may be part of its name)."""
    if kind not in KINDS:
        raise ValueError(f"unknown field kind {kind!r}; expected one of {', '.join(KINDS)}")
    meta = {"help": help, "choices": choices, "kind": kind, "sweep": sweep, "path": path}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Hyperparameters and run settings. Defaults are the suite's reference settings."""

    arch: str = option("gap_cnn", "image encoder (see `list`)", kind="name")
    fusion: str = option("concat", "fusion of image features and addend (see `list`)", kind="name")
    model_args: dict[str, Any] = option({}, "encoder/fusion hyperparameter overrides", kind="model")
    seed: int = option(0, "seed of initialisation, batch order and addends", kind="seed")
    epochs: int = option(4, "passes over the training split", kind="budget")
    batch_size: int = option(128, "images per optimizer step", kind="searched")
    optimizer: str = option("adamw", "optimizer", OPTIMIZERS, kind="setting")
    lr: float = option(4e-3, "peak learning rate", kind="searched")
    momentum: float = option(0.9, "SGD (Nesterov) momentum / AdamW beta1", kind="setting")
    weight_decay: float = option(
        5e-4, "decoupled (AdamW) or L2 (SGD) weight decay", kind="searched"
    )
    schedule: str = option(
        "onecycle",
        "per-step schedule: onecycle = linear warm-up then linear decay",
        SCHEDULES,
        kind="setting",
    )
    warmup: float = option(
        0.2, "fraction of all steps spent warming up (onecycle, cosine)", kind="setting"
    )
    label_smoothing: float = option(0.0, "label smoothing of both losses", kind="searched")
    sum_loss_weight: float = option(1.0, "loss = CE(digit) + weight * CE(sum)", kind="searched")
    augment: bool = option(
        False, "random shift/rotation per sample, on the device", kind="searched"
    )
    aug_shift: float = option(0.1, "max translation, fraction of the image side", kind="searched")
    aug_degrees: float = option(10.0, "max rotation, degrees", kind="searched")
    train_subset: int | None = option(
        None, "train on the first N training images only; unset: all of them", kind="budget"
    )
    holdout_pairs: int = option(
        0, "(digit, addend) pairs never trained on, reported apart", kind="experiment"
    )
    eval_batch_size: int = option(
        1000, "images per evaluation batch (x10 addends)", kind="execution"
    )
    device: str = option("auto", "auto = cuda when present, else cpu", DEVICES, kind="execution")
    precision: str = option(
        "auto",
        "autocast dtype; auto = bf16 on cuda, on a cpu what its probe measured faster",
        PRECISIONS,
        kind="execution",
    )
    channels_last: bool | None = option(
        None,
        "channels_last memory; unset: on for cuda, on a cpu what its probe measured faster",
        kind="execution",
    )
    compile: bool = option(
        False, "torch.compile the loss step (compile time reported apart)", kind="execution"
    )
    threads: int | None = option(
        None, "CPU threads (torch.set_num_threads); unset: torch's default", kind="execution"
    )
    data_dir: str | None = option(
        None, "MNIST root; unset: $MNIST_ROOT, then ./data", kind="execution", path=True
    )
    log: str = option(
        "none",
        "also log to an experiment tracker: tensorboard (<run>/tensorboard) or mlflow "
        "($MLFLOW_TRACKING_URI, else <results>/mlflow.db)",
        TRACKERS,
        kind="execution",
        sweep=False,  # one tracker per run: a list would train the run once for each
    )
    keep_checkpoint: bool = option(
        False,
        "keep checkpoint.pt once the run is complete (only a resume reads it)",
        kind="execution",
    )
    tuned_from: dict[str, Any] | None = option(
        None, "set by --tuned: study, trial, value", kind="record"
    )
    auto_probe: dict[str, Any] | None = option(
        None,
        "set when a cpu's probe chose precision or channels_last: its figures",
        kind="record",
    )
    plugins: list[dict[str, Any]] | None = option(
        None,
        "set when the encoder or fusion came from a plug-in: each one's module or file as "
        "given, the SHA-256 of its code and its entries (see docs/plugins.md)",
        kind="record",
    )

    def validate(self) -> None:
        """Raise ``ValueError`` with one line naming the bad field and what is accepted."""
        self.check_types()
        if (problem := tuned_from_problem(self.tuned_from)) is not None:
            raise ValueError(problem)
        if problem := seed_problem(self.seed):
            raise ValueError(f"seed {problem}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value}")
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError(f"{f.name} must fit in 64 bits (at most 2**63-1), got {value}")
        for name in ("arch", "fusion"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} is empty; see `python -m benchmark list` for the names")
        if self.data_dir is not None and not self.data_dir.strip():
            raise ValueError(
                "data_dir is empty; give the MNIST root, or leave it out ($MNIST_ROOT)"
            )
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
        for name in ("lr", "weight_decay"):  # the optimizers hold them as float32: else a traceback
            if getattr(self, name) > FLOAT32_MAX:
                raise ValueError(f"{name} must be <= {FLOAT32_MAX:.8g}, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.sum_loss_weight < 0:
            raise ValueError(f"sum_loss_weight must be >= 0, got {self.sum_loss_weight}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0 <= self.aug_shift < 1:  # a fraction of the side: at 1 the digit is gone
            raise ValueError(f"aug_shift must be in [0, 1), got {self.aug_shift}")
        if not 0 <= self.aug_degrees <= 180:  # either way round: more is a smaller turn
            raise ValueError(f"aug_degrees must be in [0, 180], got {self.aug_degrees}")
        if self.batch_size > MNIST_TRAIN_IMAGES:
            raise ValueError(
                f"batch_size must be <= the {MNIST_TRAIN_IMAGES:,} training images, "
                f"got {self.batch_size}"
            )
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ValueError(
                f"train_subset must be >= batch_size ({self.batch_size}), got {self.train_subset}"
            )
        if self.train_subset is not None and self.train_subset > MNIST_TRAIN_IMAGES:
            raise ValueError(  # more would train on all of them, recorded as a subset
                f"train_subset must be <= the {MNIST_TRAIN_IMAGES:,} training images (unset "
                f"for all of them), got {self.train_subset}"
            )
        from benchmark.holdout import MAX_HOLDOUT_PAIRS

        if not 0 <= self.holdout_pairs <= MAX_HOLDOUT_PAIRS:
            raise ValueError(
                f"holdout_pairs must be in 0..{MAX_HOLDOUT_PAIRS}, got {self.holdout_pairs}"
            )
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads must be in 1..{MAX_THREADS}, got {self.threads}")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ValueError(f"{f.name} {value!r} is not one of: {', '.join(choices)}")

    @staticmethod
    def in_flag_words(message: str) -> str:
        """A ``validate`` message as the command line says it, where flags set the values:
        ``train_subset must be >= batch_size (128)`` reads ``--train-subset must be >=
        --batch-size (128)`` (a config file's message keeps the file's field names)."""
        flagged = [f for f in dataclasses.fields(TrainConfig) if f.metadata["kind"] != "record"]
        names = {f.name for f in flagged} - {"model_args"}  # its flag: --model-arg KEY=VALUE

        def flag(found: re.Match[str]) -> str:
            name = found.group(0)
            named = name in names and (found.start() == 0 or "_" in name)
            return flag_name(name) if named else name

        # words only: not a part of a path (/home/me/data_dir), a file name or a flag
        return re.sub(r"(?<![/.\-\w])[a-z]+(?:_[a-z]+)*\b(?![/\w-])", flag, message)

    def check_types(self) -> None:
        """Each field of its annotated type (a config file may hold ``"batch_size": "x"``)."""
        accepted = {int: (int,), float: (int, float), bool: (bool,), str: (str,), dict: (dict,)}
        for name, hint in field_types().items():
            value = getattr(self, name)
            union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
            members = typing.get_args(hint) if union else (hint,)
            if value is None and type(None) in members:
                continue
            kinds = [k for k in members if k is not type(None)]
            base = typing.get_origin(kinds[0]) or kinds[0]
            ok = isinstance(value, accepted.get(base, (object,)))
            if base is not bool and isinstance(value, bool):
                ok = False
            if not ok:
                raise ValueError(f"{name} must be of type {base.__name__}, got {value!r}")

    def with_floats(self) -> TrainConfig:
        """The config with a float field's whole number (a config file's ``aug_degrees = 15``)
        as the float a flag gives (``--aug-degrees 15``: 15.0), so that the two hash alike."""
        hints = field_types()
        whole = {
            name: float(getattr(self, name))
            for name, hint in hints.items()
            if float in (typing.get_args(hint) or (hint,)) and type(getattr(self, name)) is int
        }
        return dataclasses.replace(self, **whole) if whole else self

    def steps_per_epoch(self, train_images: int) -> int:
        """Optimizer steps per epoch over ``train_images`` (before ``train_subset``): the ragged
        tail is dropped, so every step has the same shape."""
        used = train_images if self.train_subset is None else min(self.train_subset, train_images)
        return used // self.batch_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            named = [
                k + (f" (did you mean {m}?)" if (m := closest(k, known)) else "") for k in unknown
            ]
            raise ValueError(
                f"unknown config {'key' if len(unknown) == 1 else 'keys'} {', '.join(named)}; "
                f"valid: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def config_hash(self) -> str:
        """Short hash of what the run learns (not seed or hardware): groups runs in the report."""
        blob = json.dumps(learned_values(self.to_dict()), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


@functools.cache
def field_types() -> dict[str, Any]:
    """Each ``TrainConfig`` field's annotated type, resolved once: ``typing.get_type_hints``
    evaluates every annotation string again on each call, which every CLI start (one flag per
    field) and every config check paid."""
    return typing.get_type_hints(TrainConfig)


@functools.cache  # a report asks for the same kinds some 300 times
def fields_of(*kinds: str) -> tuple[str, ...]:
    """The ``TrainConfig`` fields of the given kinds (see ``KINDS``), in declaration order."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown field kind(s) {sorted(unknown)}; expected some of {list(KINDS)}")
    return tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata["kind"] in kinds)


# A study's budget: values tuned at one budget (or experiment) are not comparable with another.
BUDGET_FIELDS = fields_of("budget", "experiment")


def learned_values(config: dict[str, Any], *, names: bool = True) -> dict[str, Any]:
    """What a run learns from ``config`` (a ``TrainConfig.to_dict()`` or part of one, missing
    fields at their defaults): the fields of ``LEARNED_KINDS``, the combination's names left out
    when ``names`` is false. The config hash, the report's groups and ``compare``'s key use it."""
    kinds = LEARNED_KINDS if names else tuple(k for k in LEARNED_KINDS if k != "name")
    full = {**default_values(), **config}
    values = {k: full[k] for k in fields_of(*kinds)}
    return {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}  # each its own


@functools.cache
def default_values() -> dict[str, Any]:
    """``TrainConfig()``'s fields, made once: a report fills hundreds of configs with them, and
    ``asdict`` copies deeply (a dict field, model_args, is copied again where it is used)."""
    return TrainConfig().to_dict()


BATCH_SIZES = (64, 128, 256)  # the batch sizes tuning may pick
# Model arguments that fit a model to MNIST's 28x28 images (a timm ViT's; architectures'
# TIMM_SIZES): which model it is, as its name is, rather than a hand-set hyperparameter. The
# report names them beside the combination and sets such a model in the main comparison.
SIZING = ("img_size", "patch_size")
SEARCHED = fields_of("searched")  # ``tune`` takes no flag for them, ``run --tuned`` sets them
# What only a run directory has: a tracker mirroring it, a checkpoint kept in it. Tuning trials
# have none, so ``tune`` takes no flag for them either (it took them and did nothing).
RUN_DIRECTORY_ONLY = ("log", "keep_checkpoint")


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


# What ``--tuned`` records of the trial a run took its parameters from, with the types the
# report and the run's own line read them as; budget and file only in newer records.
TUNED_FROM = {
    "study": (str,),
    "trial": (int,),
    "value": (int, float),
    "budget": (dict,),
    "file": (str,),
}
TUNED_FROM_OPTIONAL = ("budget", "file")


def tuned_from_problem(found: Any, whole: bool = True) -> str | None:
    """What in a ``tuned_from`` is not what ``--tuned`` records (``whole``: a field missing
    too; else only the types of those there, all a report reads), or None: a hand-written one
    (``{"trial": [1]}`` in a ``--config``) trained, then stopped every report of its results
    directory with a traceback."""
    if found is None:
        return None
    accepted = "tuned_from must be what --tuned records ({study: name, trial: int, value: number})"
    if not isinstance(found, dict):
        return f"{accepted}, got {found!r}"
    lacking = [k for k in TUNED_FROM if k not in found and k not in TUNED_FROM_OPTIONAL]
    if whole and lacking:
        return f"{accepted}; it lacks {lacking[0]}"
    if (key := files.mistyped(found, TUNED_FROM)) is not None:
        return f"{accepted}; its {key} is {found[key]!r}"
    return None
