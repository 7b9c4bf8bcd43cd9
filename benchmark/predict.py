"""Digit and sum for your own images with a trained model (the ``predict`` command's library).

Each PNG/JPEG is turned into an MNIST-like input the way the MNIST digits were made (LeCun et al.):

1. grayscale (transparent pixels count as white paper; EXIF rotation applied);
2. light-on-dark: if the border pixels are mostly light (dark ink on paper), the image is inverted;
   the border's median level is then taken as background and the contrast stretched so the
   background is 0 and the strongest ink 1;
3. crop to the bounding box of the ink (pixels above 0.2 after stretching);
4. scale the crop to fit a 20x20 box, keeping its aspect ratio (antialiased);
5. paste it into a 28x28 black field so that its centre of mass sits at the centre of the field
   (moved only as far as keeps the whole digit inside).

The model then sees floats in [0, 1], as in training.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from architectures import DigitSumModel
from benchmark.errors import UsageError

SIDE = 28  # MNIST field
BOX = 20  # the digit's bounding box is scaled to fit this
INK = 0.2  # ink threshold after contrast stretching, for the bounding box
MIN_CONTRAST = 0.1  # below this, the image holds no visible digit


class BlankImageError(ValueError):
    """A readable image with no digit in it (nothing but background)."""


def to_gray(image: Image.Image) -> torch.Tensor:
    """(H, W) float in [0, 1]; transparent areas become white, EXIF orientation applied."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: keep the full depth
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or wide.max() > 255 else 255.0
        return torch.from_numpy(wide / top).float().clamp(0.0, 1.0)
    gray = image.convert("L")
    pixels = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8)
    return pixels.view(gray.height, gray.width).float() / 255.0


def border(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])


def preprocess(image: Image.Image) -> torch.Tensor:
    """One image -> (1, 28, 28) float in [0, 1], white digit on black, MNIST-style (see above)."""
    x = to_gray(image)
    if border(x).mean() > 0.5:
        x = 1.0 - x
    x = x - border(x).median()
    peak = x.max()
    if peak < MIN_CONTRAST:
        raise BlankImageError("no digit found (the image is blank or has almost no contrast)")
    x = (x / peak).clamp(min=0.0)
    ink = x > INK
    rows = ink.any(1).nonzero()[:, 0].tolist()
    cols = ink.any(0).nonzero()[:, 0].tolist()
    x = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = x.shape
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    glyph = F.interpolate(x[None, None], size=size, mode="bilinear", antialias=True)[0, 0]
    glyph = glyph.clamp(0.0, 1.0)
    mass = glyph.sum()
    cy = (glyph.sum(1) * torch.arange(size[0])).sum() / mass
    cx = (glyph.sum(0) * torch.arange(size[1])).sum() / mass
    centre = (SIDE - 1) / 2
    top = min(max(round(float(centre - cy)), 0), SIDE - size[0])
    left = min(max(round(float(centre - cx)), 0), SIDE - size[1])
    field = torch.zeros(SIDE, SIDE)
    field[top : top + size[0], left : left + size[1]] = glyph
    return field[None]


@torch.no_grad()
def predict(
    model: DigitSumModel, images: torch.Tensor, addends: torch.Tensor
) -> list[dict[str, Any]]:
    """Predictions for preprocessed ``images`` (N, 1, 28, 28) and ``addends`` (N,) int64."""
    digit_logits, sum_logits = model.eval()(images, addends)
    digit_probs = digit_logits.float().softmax(1)
    sum_probs = sum_logits.float().softmax(1)  # late_sum's -inf logits get probability 0
    out = []
    for i in range(len(images)):
        digit = int(digit_probs[i].argmax())
        total = int(sum_probs[i].argmax())
        out.append(
            {
                "addend": int(addends[i]),
                "digit": digit,
                "digit_prob": float(digit_probs[i, digit]),
                "sum": total,
                "sum_prob": float(sum_probs[i, total]),
                "digit_probs": digit_probs[i].tolist(),
                "sum_probs": sum_probs[i].tolist(),
            }
        )
    return out


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(path: Path) -> list[Path]:
    """What ``--image PATH`` names: the file, or a folder's PNG and JPEG files in name order
    (not its subfolders); a folder without any is a one-line ``UsageError``."""
    try:  # is_dir raises on a name too long or a folder we may not read
        if not path.is_dir():
            return [path]
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise UsageError(f"--image {path}: cannot read it ({exc.strerror or exc})") from None
    if not found:
        raise UsageError(f"--image {path}: a folder without PNG or JPEG files")
    return found


def load_image(path: Path) -> torch.Tensor:
    """Read and preprocess one file; any problem is a one-line ``UsageError`` naming it."""
    try:  # is_dir and is_file raise on a name too long or a file we may not stat
        kind = "dir" if path.is_dir() else "file" if path.is_file() else None
    except OSError as exc:
        raise UsageError(f"--image {path}: cannot read it ({exc.strerror or exc})") from None
    if kind == "dir":
        raise UsageError(f"--image {path}: a directory; expected an image file (PNG, JPEG, ...)")
    if kind is None:  # /dev/null, a pipe: there, but no file to read an image from
        there = path.exists() or path.is_symlink()
        what = "not a regular file" if there else "no such file"
        raise UsageError(f"--image {path}: {what}; expected an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():  # Pillow's warning of a huge image: one line, not two
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if (frames := getattr(image, "n_frames", 1)) > 1:  # which one? the first, unsaid
                    raise UsageError(f"--image {path}: {frames} frames; give one image of a digit")
                image.load()
                return preprocess(image)
    except UsageError:
        raise
    except BlankImageError as exc:
        raise UsageError(f"--image {path}: {exc}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        size = str(exc).split(", could be")[0]  # Pillow's: "... pixels, could be decompression"
        raise UsageError(
            f"--image {path}: too large to read ({size}); scale it down (the model sees 28x28)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a damaged file makes PIL raise many kinds
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"--image {path}: cannot read it as an image ({reason})") from None
