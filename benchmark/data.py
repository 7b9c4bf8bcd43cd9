"""The one shared dataset: MNIST splits held as uint8 tensors on the training device.

No DataLoader: batches are index slices of a device-side ``randperm``, addends are drawn on the
device from a seeded generator, and images become floats in [0, 1] only inside the step.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmark.config import MNIST_TRAIN_FILE_IMAGES, MNIST_VAL_IMAGES, TrainConfig
from benchmark.errors import DamagedFileError, UsageError
from benchmark.holdout import allowed_mask, sample_addends
from benchmark.wording import is_are

SPLIT_SEED = 20_241_124  # fixed: every run sees the same train/validation split
NUM_VAL = MNIST_VAL_IMAGES
IMAGES, LABELS = 2051, 2049  # IDX magic numbers: unsigned bytes in 3 dimensions / in 1
SIDE = 28
RAW_FILES = {
    # name: (IDX magic number, number of items)
    "train-images-idx3-ubyte": (IMAGES, MNIST_TRAIN_FILE_IMAGES),
    "train-labels-idx1-ubyte": (LABELS, MNIST_TRAIN_FILE_IMAGES),
    "t10k-images-idx3-ubyte": (IMAGES, 10_000),
    "t10k-labels-idx1-ubyte": (LABELS, 10_000),
}


class DataError(DamagedFileError):
    """MNIST could not be found, fetched or read; the message says where and what to do."""


class DataNotFoundError(DataError, UsageError):
    """An MNIST file missing where it was looked for (all four, or some): a root to give or
    complete (exit 2, as any missing file is), not a damaged file."""


def download_reason(exc: Exception) -> str:
    """Why torchvision's download failed, in a few words: its message's last ``got:`` line
    (``urlopen error [Errno -2] Name or service not known``), else the exception's type."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Tried ", "Error downloading"))]
    return said[-1].strip("<>") if said else type(exc).__name__


def candidate_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where MNIST is looked for: the flag's directory alone when given (never a silent fall
    back to another copy), else ``$MNIST_ROOT``, then ``./data``."""
    if data_dir:
        return [Path(data_dir)]
    roots = [os.environ.get("MNIST_ROOT"), "data"]
    return [Path(r) for r in roots if r]


def missing_files(root: Path) -> list[Path]:
    raw = root / "MNIST" / "raw"
    return [raw / name for name in RAW_FILES if not (raw / name).is_file()]


def layout(path: Path) -> tuple[list[int], int]:
    """(the IDX header MNIST's file of this name has, the bytes of one item: image or label)."""
    magic, count = RAW_FILES[path.name]
    if magic == IMAGES:
        return [magic, count, SIDE, SIDE], SIDE * SIDE
    return [magic, count], 1


def check_header(path: Path) -> None:
    """The IDX header against the file's size and against MNIST's file of this name, without
    reading the pixels: a refused file is a ``DataError`` naming it and the problem."""
    wanted, item = layout(path)
    try:
        actual = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(4 * len(wanted))
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    header = [int.from_bytes(head[i : i + 4], "big") for i in range(0, len(head) // 4 * 4, 4)]
    if len(header) < len(wanted):
        raise DataError(f"{path}: {actual} bytes, too short for an IDX header: truncated")
    if header[0] != wanted[0]:
        raise DataError(
            f"{path}: IDX magic number {header[0]}, expected {wanted[0]}: not an MNIST file"
        )
    said = " x ".join(map(str, header[1:]))
    if header[2:] != wanted[2:]:
        raise DataError(
            f"{path}: IDX header says {said}, expected {' x '.join(map(str, wanted[1:]))}: "
            f"corrupt (MNIST images are {SIDE}x{SIDE})"
        )
    if actual != 4 * len(wanted) + header[1] * item:
        raise DataError(
            f"{path}: IDX header says {said} but the file has {actual} bytes: truncated or corrupt"
        )
    if header[1] != wanted[1]:
        raise DataError(f"{path}: IDX header says {said}, expected {wanted[1]} items: not MNIST's")


def read_idx(path: Path, digests: dict[str, str] | None = None) -> torch.Tensor:
    """One checked IDX file: images (N, 1, 28, 28) uint8 or labels (N,) int64 in 0-9; with
    ``digests``, the MD5 of the bytes read is recorded there under the file's name."""
    check_header(path)
    wanted, item = layout(path)
    size = 4 * len(wanted) + wanted[1] * item
    try:
        blob = bytearray(path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(blob) != size:  # changed since its header was checked
        raise DataError(f"{path}: {len(blob)} bytes, expected {size}: truncated or corrupt")
    if digests is not None:
        digests[path.name] = hashlib.md5(blob).hexdigest()
    values = torch.frombuffer(blob, dtype=torch.uint8, offset=4 * len(wanted))
    if wanted[0] == IMAGES:
        return values.view(wanted[1], 1, SIDE, SIDE)
    bad = (values > 9).nonzero()
    if len(bad):
        first = int(bad[0])
        raise DataError(
            f"{path}: labels outside 0-9 (label {int(values[first])} at item {first}): corrupt"
        )
    return values.long()


def check_raw_files(root: Path) -> None:
    """Reject truncated or foreign IDX files with a message naming the file."""
    for name in RAW_FILES:
        check_header(root / "MNIST" / "raw" / name)


def resolve_root(data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """The first candidate root that holds MNIST; else download into the first candidate. A
    root holding some of the four files but not all is an error naming a missing one (never a
    fall-back to the next root, nor a download over the others)."""
    roots = candidate_roots(data_dir)
    for root in roots:
        missing = missing_files(root)
        if not missing:
            check_raw_files(root)
            return root
        if folder := next((path for path in missing if path.is_dir()), None):  # not "missing"
            raise DataNotFoundError(
                f"{folder}: a directory, not MNIST's IDX file; put the file there"
            )
        if len(missing) < len(RAW_FILES):
            there = len(RAW_FILES) - len(missing)
            raise DataNotFoundError(
                f"{missing[0]}: missing ({there} of the 4 MNIST files {is_are(there)} there); "
                f"put all four IDX files in {missing[0].parent}"
            )
    searched = ", ".join(str(r / "MNIST" / "raw") for r in roots)
    if download:
        from torchvision.datasets import MNIST

        # what the download creates, deepest first: the root's missing parents too (a typo's
        # --data-dir a/b left an empty a/ behind)
        raw = roots[0] / "MNIST" / "raw"
        folders = (raw, roots[0] / "MNIST", roots[0], *roots[0].parents)
        created = list(itertools.takewhile(lambda f: not f.exists(), folders))
        before = set(raw.iterdir()) if raw.is_dir() else set()
        try:
            MNIST(str(roots[0]), train=True, download=True)
            MNIST(str(roots[0]), train=False, download=True)
        except BaseException as exc:  # noqa: BLE001 - any failure, or an interrupt, means the same
            # torchvision fetches file by file: those it got would make the next try "2 of the
            # 4 files", refused; so they go (all four there: kept, checked when next read), and
            # the folders it made for them
            fetched = (set(raw.iterdir()) if raw.is_dir() else set()) - before
            for path in fetched if missing_files(roots[0]) else ():
                with contextlib.suppress(OSError):
                    path.unlink()
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if not isinstance(exc, Exception):  # KeyboardInterrupt: stopped, not failed
                raise
            raise DataNotFoundError(
                f"MNIST not found (looked in {searched}) and the download failed "
                f"({download_reason(exc)}); put the four IDX files in <root>/MNIST/raw/ and pass "
                f"--data-dir <root> or set MNIST_ROOT=<root>"
            ) from None
        return roots[0]
    raise DataNotFoundError(
        f"MNIST not found (looked in {searched}); put the four IDX files in <root>/MNIST/raw/ "
        f"and pass --data-dir <root> or set MNIST_ROOT=<root>"
    )


@dataclass
class Split:
    images: torch.Tensor  # (N, 1, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def subset(self, n: int | None) -> Split:
        return self if n is None or n >= len(self) else Split(self.images[:n], self.labels[:n])


@dataclass
class DigitSumData:
    train: Split
    val: Split
    test: Split
    # which copy was read, without a machine path: how it was found and each file's MD5
    source: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> DigitSumData:
        return DigitSumData(
            self.train.to(device), self.val.to(device), self.test.to(device), self.source
        )


def found_via(root: Path, data_dir: str | os.PathLike[str] | None) -> str:
    """How ``root`` was found: ``--data-dir``, ``$MNIST_ROOT`` or ``./data`` (no machine path)."""
    if data_dir:
        return "--data-dir"
    if os.environ.get("MNIST_ROOT") and Path(os.environ["MNIST_ROOT"]) == root:
        return "$MNIST_ROOT"
    return "./data"


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> DigitSumData:
    """55,000 train / 5,000 validation (fixed seed) from the official train set; official test.

    Every file is checked on the way in (``read_idx``): header against size, labels in 0-9."""
    root = resolve_root(data_dir, download=download)
    raw = root / "MNIST" / "raw"
    md5: dict[str, str] = {}
    images = read_idx(raw / "train-images-idx3-ubyte", md5)
    labels = read_idx(raw / "train-labels-idx1-ubyte", md5)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    train_idx, val_idx = perm[:-NUM_VAL], perm[-NUM_VAL:]
    return DigitSumData(
        train=Split(images[train_idx].contiguous(), labels[train_idx].contiguous()),
        val=Split(images[val_idx].contiguous(), labels[val_idx].contiguous()),
        test=Split(
            read_idx(raw / "t10k-images-idx3-ubyte", md5),
            read_idx(raw / "t10k-labels-idx1-ubyte", md5),
        ),
        source={"found_via": found_via(root, data_dir), "md5": md5},
    )


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (normalisation proper belongs to the model)."""
    return images_u8.float().div_(255.0)


def augment(
    images: torch.Tensor, shift: float, degrees: float, generator: torch.Generator
) -> torch.Tensor:
    """Per-sample random translation (fraction of the image) and rotation, on the device.

    One ``affine_grid`` + ``grid_sample`` for the whole batch: no Python loop over samples.
    """
    b = images.shape[0]
    dev = images.device
    angle = (torch.rand(b, device=dev, generator=generator) * 2 - 1) * math.radians(degrees)
    txy = (torch.rand(b, 2, device=dev, generator=generator) * 2 - 1) * (2 * shift)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, txy[:, 0]], 1), torch.stack([sin, cos, txy[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class Batches:
    """A run's training batches, drawn on the device from one generator (airbench's way: a
    ``randperm`` per epoch, no DataLoader): images as floats in the model's memory layout,
    labels, and one addend per image from the pairs training may see, augmented when asked.
    The ragged tail of an epoch is dropped, so every step has the same shape."""

    split: Split
    batch_size: int
    allowed: torch.Tensor | None  # (10, 10) 0/1 mask of the pairs training may draw; None: all
    augment: tuple[float, float] | None  # (shift, degrees), or None for no augmentation
    memory_format: torch.memory_format  # the run's (``Execution.memory_format``)

    def steps(self) -> int:
        return len(self.split) // self.batch_size

    def epoch(
        self, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One epoch of (images, labels, addends); draws from ``generator`` in the same order
        as ever (the permutation, then per step the addends, then the augmentation)."""
        bs = self.batch_size
        perm = torch.randperm(len(self.split), device=self.split.images.device, generator=generator)
        for i in range(self.steps()):
            idx = perm[i * bs : (i + 1) * bs]
            images = to_float(self.split.images[idx])
            labels = self.split.labels[idx]
            addends = sample_addends(labels, self.allowed, generator)
            if self.augment is not None:
                images = augment(images, *self.augment, generator)
            yield images.contiguous(memory_format=self.memory_format), labels, addends


def training_batches(
    data: DigitSumData, cfg: TrainConfig, memory_format: torch.memory_format
) -> Batches:
    """The batches ``cfg`` trains on: its training subset, batch size, held-out pairs (never
    drawn) and augmentation."""
    split = data.train.subset(cfg.train_subset)
    aug = (cfg.aug_shift, cfg.aug_degrees) if cfg.augment else None
    allowed = allowed_mask(cfg.holdout_pairs, data.train.images.device)
    return Batches(split, cfg.batch_size, allowed, aug, memory_format)
