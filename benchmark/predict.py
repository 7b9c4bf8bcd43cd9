"""predict: digit and sum for your own images with a trained run.

Each PNG/JPEG is turned into an MNIST-like input the way the MNIST digits were made (LeCun et al.):

1. grayscale (transparent pixels count as white paper; EXIF rotation applied);
2. light-on-dark: if the border pixels are mostly light (dark ink on paper), the image is inverted;
   the border's median level is then taken as background and the contrast stretched so the
   background is 0 and the strongest ink 1;
3. crop to the bounding box of the ink (pixels above 0.2 after stretching);
4. scale the crop to fit a 20x20 box, keeping its aspect ratio (antialiased);
5. paste it into a 28x28 black field so that its centre of mass sits at the centre of the field
   (moved only as far as keeps the whole digit inside).

The model then sees floats in [0, 1], as in training. Give one --addend per --image, or
a single one for all images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from architectures import DigitSumModel
from architectures.fusions import NUM_DIGITS

SIDE = 28  # MNIST field
BOX = 20  # the digit's bounding box is scaled to fit this
INK = 0.2  # ink threshold after contrast stretching, for the bounding box
MIN_CONTRAST = 0.1  # below this, the image holds no visible digit


def to_gray(image: Image.Image) -> torch.Tensor:
    """(H, W) float in [0, 1]; transparent areas become white, EXIF orientation applied."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
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
        raise ValueError("no digit found (the image is blank or has almost no contrast)")
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


def load_image(path: Path) -> torch.Tensor:
    """Read and preprocess one file; any problem is a one-line ``UsageError`` naming it."""
    from benchmark.cli import UsageError

    if not path.is_file():
        raise UsageError(f"--image {path}: no such file")
    try:
        with Image.open(path) as image:
            image.load()
            return preprocess(image)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise UsageError(f"--image {path}: cannot read it as an image ({exc})") from None
    except ValueError as exc:
        raise UsageError(f"--image {path}: {exc}") from None


def addend(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < NUM_DIGITS:
        raise argparse.ArgumentTypeError(f"addend must be an integer 0..9, got {text!r}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    """Digit and sum (with probabilities) for each image and its addend."""
    from rich.table import Table

    from benchmark import runs
    from benchmark.cli import UsageError, console

    paths = [Path(p) for p in args.image]
    addends = args.addend
    if len(addends) == 1:
        addends = addends * len(paths)
    if len(addends) != len(paths):
        raise UsageError(
            f"{len(paths)} image(s) but {len(args.addend)} addend(s); give one --addend per "
            f"--image, or a single --addend for all"
        )
    images = torch.stack([load_image(p) for p in paths])
    run_dir = Path(args.run)
    if not (run_dir / runs.MODEL).is_file() or not (run_dir / runs.CONFIG).is_file():
        raise UsageError(
            f"--run {run_dir}: no {runs.MODEL} and {runs.CONFIG} there; expected a finished run "
            f"directory (results/runs/<run-id>)"
        )
    model = runs.load_run(run_dir)
    results = [
        {"image": str(path), **result}
        for path, result in zip(paths, predict(model, images, torch.tensor(addends)), strict=True)
    ]
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
        return 0
    table = Table(title=f"predictions of {run_dir.name}")
    for col in ("image", "addend", "digit", "p(digit)", "sum", "p(sum)"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for r in results:
        table.add_row(
            r["image"],
            str(r["addend"]),
            str(r["digit"]),
            f"{r['digit_prob']:.3f}",
            str(r["sum"]),
            f"{r['sum_prob']:.3f}",
        )
    console.print(table)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="digit and sum for your own PNG/JPEG images with a trained run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished run directory")
    p.add_argument(
        "--image", required=True, action="append", metavar="PATH", help="PNG or JPEG (repeatable)"
    )
    p.add_argument(
        "--addend",
        required=True,
        action="append",
        type=addend,
        metavar="0..9",
        help="one per --image, or one for all (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_predict)
