"""predict: digit and sum for your own PNG/JPEG images with a trained run.

Each image is made MNIST-like the way the MNIST digits were made (grayscale, light-on-dark,
cropped to the ink, scaled into a 20x20 box, centred by mass in a 28x28 field; see
benchmark/predict.py). An --image folder stands for its PNG and JPEG files. Give one --addend
per image, or a single one for all images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.commands.common import UsageError, add_plugin_flag, console, print_wide
from benchmark.commands.values import path_text
from benchmark.wording import listing, plural

NUM_ADDENDS = 10
SUMMARY = __doc__.splitlines()[0].removeprefix("predict: ")  # the docstring's, said once


def addend(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < NUM_ADDENDS:
        raise argparse.ArgumentTypeError(f"addend must be an integer 0..9, got {text!r}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    """Digit and sum (with probabilities) for each image and its addend."""
    import torch
    from rich.table import Table

    from benchmark import rundir, runs
    from benchmark.predict import image_files, load_image, predict

    run_dir = Path(args.run)
    rundir.check_finished(run_dir, "--run")  # first: a command typed in the wrong folder
    paths = [file for p in args.image for file in image_files(Path(p))]
    addends = args.addend
    if len(addends) == 1:
        addends = addends * len(paths)
    if len(addends) != len(paths):
        raise UsageError(
            f"{plural(len(paths), 'image')} but {plural(len(args.addend), 'addend')}; give one "
            "--addend per image, or a single --addend for all"
        )
    images = torch.stack([load_image(p) for p in paths])
    model = runs.load_run(run_dir)
    if warning := runs.guessing(run_dir, "its predictions are guesses"):
        sys.stderr.write(warning)
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
    print_wide(table)
    odd = [r for r in results if r["sum"] != r["digit"] + r["addend"]]
    if odd:  # a fusion with a sum head of its own may answer a sum its digit head does not
        named = [
            f"{Path(r['image']).name} ({r['digit']} + {r['addend']} is "
            f"{r['digit'] + r['addend']}, the sum head says {r['sum']})"
            for r in odd
        ]
        more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
        console.print(
            f"the digit and sum heads disagree for {listing(named[:3])}{more}: a fusion with a "
            "sum head of its own can answer so; late_sum cannot",
            soft_wrap=True,
            markup=False,
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help=SUMMARY.rstrip("."),
        description=SUMMARY[0].upper() + SUMMARY[1:] + " " + __doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--run", type=path_text, required=True, metavar="RUN_DIR", help="a finished run directory"
    )
    p.add_argument(
        "--image",
        type=path_text,
        required=True,
        action="append",
        metavar="PATH",
        help="PNG or JPEG (named by itself, any image Pillow reads: GIF, BMP, WebP ...), or a "
        "folder of PNG and JPEG files (repeatable)",
    )
    p.add_argument(
        "--addend",
        required=True,
        action="append",
        type=addend,
        metavar="0..9",
        help="one per image, or one for all (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_plugin_flag(p, cmd_predict)
