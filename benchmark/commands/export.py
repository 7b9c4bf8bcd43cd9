"""``export``: a trained run as a standalone ONNX or TorchScript model (see ``benchmark.export``
for the inputs and outputs of the exported graph)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmark.commands.common import UsageError, add_plugin_flag
from benchmark.commands.values import path_text
from benchmark.files import check_writable
from benchmark.progress import say_whole

# format: default file name in the run directory (the exporters are in benchmark.export)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
# what an --out name says of its format, when --format is not given or to catch a mismatch
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript"}
A_FILE = {"onnx": "an ONNX", "torchscript": "a TorchScript"}  # ... file, as errors name it


def chosen_format(given: str | None, out: str | None) -> str:
    """``--format``, else the one ``--out``'s suffix names; a suffix naming the other format is
    refused (a TorchScript file named .onnx fails to load far from here)."""
    named = SUFFIXES.get(Path(out).suffix.lower()) if out else None
    # what is wrong first: no format would make it a file; "dir/" too, which Path reads as "dir"
    if out and (Path(out).is_dir() or out.endswith(("/", os.sep))):
        raise UsageError(f"--out {out} is a directory; expected a file path")
    if given is None and named is None:
        raise UsageError(
            "--format onnx or --format torchscript is needed, or an --out ending in "
            ".onnx (ONNX) or .pt or .pth (TorchScript)"
        )
    if given is not None and named is not None and named != given:
        raise UsageError(
            f"--out {out} names {A_FILE[named]} file; give --format {named} or another name"
        )
    return given or str(named)


def cmd_export(args: argparse.Namespace) -> int:
    """Write a trained run's model as ONNX or TorchScript: (images, addends) -> both logits."""
    from benchmark import files, rundir, runs
    from benchmark.export import EXPORTERS, holds_a_model, onnx_exporter

    run_dir = Path(args.run)
    rundir.check_finished(run_dir, "--run")  # first: fixing the format would only meet it next
    kind = chosen_format(args.format, args.out)
    out = Path(args.out) if args.out else run_dir / FORMATS[kind]
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; expected a file path")
    if out.name in rundir.OWN_FILES and (out.parent / rundir.CONFIG).is_file():
        raise UsageError(  # a run's weights or records, lost to an export: never
            f"--out {out} is a run's own {out.name}; give another path, or none for "
            f"{run_dir / FORMATS[kind]}"
        )
    if out.exists() and SUFFIXES.get(out.suffix.lower()) != kind:  # optuna.db, comparison.json
        ends = " or ".join(sorted(k for k, v in SUFFIXES.items() if v == kind))
        raise UsageError(
            f"--out {out} exists and is not {A_FILE[kind]} file (it does not end in {ends}); give "
            "a new path, or that of an earlier export to replace"
        )
    if out.exists() and not holds_a_model(out, kind):  # a user's best.pt of torch.save weights
        raise UsageError(
            f"--out {out} exists and does not hold {A_FILE[kind]} model (as weights saved by "
            "torch.save, or a model of the other format, do not); give a new path, or that of an "
            "earlier export to replace"
        )
    check_writable(out.parent, "--out", out)
    try:
        data = EXPORTERS[kind](runs.load_run(run_dir))
    except ValueError as exc:  # a model this format cannot hold faithfully: nothing written
        raise UsageError(f"--format {kind}: {exc}") from None
    replaced = " (replacing the file there)" if out.exists() else ""  # said: it was someone's
    files.write_bytes(out, data)
    if warning := runs.guessing(run_dir, "the model written guesses"):
        sys.stderr.write(warning)
    how = f" with the {onnx_exporter()} exporter" if kind == "onnx" else ""
    say_whole(
        f"wrote {out}{replaced}{how} ({len(data) / 1e6:.2f} MB): inputs images (B,1,28,28) float "
        f"in [0,1] and addends (B,) int64 in 0..9 -> outputs digit_logits (B,10) and sum_logits "
        "(B,19)"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a trained run's model as ONNX or TorchScript",
        description=cmd_export.__doc__,
    )
    p.add_argument(
        "--run", type=path_text, required=True, metavar="RUN_DIR", help="a finished run directory"
    )
    p.add_argument(
        "--format",
        choices=sorted(FORMATS),
        help="output format [the one --out's suffix names: .onnx, or .pt or .pth for "
        "torchscript]; give --format, an --out with such a suffix, or both",
    )
    p.add_argument(
        "--out",
        type=path_text,
        metavar="PATH",
        help="output file [with --format: RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt]",
    )
    add_plugin_flag(p, cmd_export)
