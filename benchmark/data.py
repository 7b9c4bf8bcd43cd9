"""The one shared dataset: MNIST splits held as uint8 tensors on the training device.

No DataLoader: batches are index slices of a device-side ``randperm``, addends are drawn on the
device from a seeded generator, and images become floats in [0, 1] only inside the step.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.errors import DamagedFileError

SPLIT_SEED = 20_241_124  # fixed: every run sees the same train/validation split
NUM_VAL = 5_000
RAW_FILES = {
    # name: (IDX magic number, expected size in bytes)
    "train-images-idx3-ubyte": (2051, 16 + 60_000 * 28 * 28),
    "train-labels-idx1-ubyte": (2049, 8 + 60_000),
    "t10k-images-idx3-ubyte": (2051, 16 + 10_000 * 28 * 28),
    "t10k-labels-idx1-ubyte": (2049, 8 + 10_000),
}


class DataError(DamagedFileError):
    """MNIST could not be found, fetched or read; the message says where and what to do."""


def candidate_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where MNIST is looked for: the flag's directory alone when given (never a silent fall
    back to another copy), else ``$MNIST_ROOT``, then ``./data``."""
    if data_dir:
        return [Path(data_dir)]
    roots = [os.environ.get("MNIST_ROOT"), "data"]
    return [Path(r) for r in roots if r]


def has_raw_files(root: Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all((raw / name).is_file() for name in RAW_FILES)


def check_raw_files(root: Path) -> None:
    """Reject truncated or foreign IDX files with a message naming the file."""
    raw = root / "MNIST" / "raw"
    for name, (magic, size) in RAW_FILES.items():
        path = raw / name
        actual = path.stat().st_size
        if actual != size:
            raise DataError(f"{path}: size {actual} bytes, expected {size}: truncated or corrupt")
        dims = 3 if magic == 2051 else 1
        with path.open("rb") as fh:
            header = [int.from_bytes(fh.read(4), "big") for _ in range(1 + dims)]
        if header[0] != magic:
            raise DataError(
                f"{path}: IDX magic number {header[0]}, expected {magic}: not an MNIST file"
            )
        count = (size - 4 * (1 + dims)) // (28 * 28 if dims == 3 else 1)
        wanted = [magic, count, 28, 28][: 1 + dims]
        if header != wanted:
            raise DataError(
                f"{path}: IDX header says {' x '.join(map(str, header[1:]))}, expected "
                f"{' x '.join(map(str, wanted[1:]))} for its {actual} bytes: corrupt"
            )


def resolve_root(data_dir: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """The first candidate root that holds MNIST; else download into the first candidate."""
    roots = candidate_roots(data_dir)
    for root in roots:
        if has_raw_files(root):
            check_raw_files(root)
            return root
    searched = ", ".join(str(r / "MNIST" / "raw") for r in roots)
    if download:
        from torchvision.datasets import MNIST

        folders = (roots[0], roots[0] / "MNIST", roots[0] / "MNIST" / "raw")
        created = [folder for folder in folders if not folder.exists()]
        try:
            MNIST(str(roots[0]), train=True, download=True)
            MNIST(str(roots[0]), train=False, download=True)
        except Exception as exc:  # noqa: BLE001 - any network failure means the same to the user
            for folder in reversed(created):  # leave no empty folders behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise DataError(
                f"MNIST not found (looked in {searched}) and the download failed "
                f"({type(exc).__name__}); put the four IDX files in <root>/MNIST/raw/ and pass "
                f"--data-dir <root> or set MNIST_ROOT=<root>"
            ) from None
        return roots[0]
    raise DataError(
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
    root: Path

    def to(self, device: torch.device | str) -> DigitSumData:
        return DigitSumData(
            self.train.to(device), self.val.to(device), self.test.to(device), self.root
        )


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> DigitSumData:
    """55,000 train / 5,000 validation (fixed seed) from the official train set; official test."""
    from torchvision.datasets import MNIST

    root = resolve_root(data_dir, download=download)
    train_full = MNIST(str(root), train=True, download=False)
    test = MNIST(str(root), train=False, download=False)
    perm = torch.randperm(
        len(train_full.targets), generator=torch.Generator().manual_seed(SPLIT_SEED)
    )
    for split, name in ((train_full, "train"), (test, "t10k")):
        targets = split.targets
        if targets.numel() and not (0 <= int(targets.min()) and int(targets.max()) <= 9):
            path = root / "MNIST" / "raw" / f"{name}-labels-idx1-ubyte"
            raise DataError(f"{path}: labels outside 0-9 (corrupt)")
    images = train_full.data.unsqueeze(1)
    labels = train_full.targets.long()
    train_idx, val_idx = perm[:-NUM_VAL], perm[-NUM_VAL:]
    return DigitSumData(
        train=Split(images[train_idx].contiguous(), labels[train_idx].contiguous()),
        val=Split(images[val_idx].contiguous(), labels[val_idx].contiguous()),
        test=Split(test.data.unsqueeze(1).contiguous(), test.targets.long().contiguous()),
        root=root,
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
