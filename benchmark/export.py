"""export: a trained run as a standalone ONNX or TorchScript model.

The exported model is the whole DigitSumModel. Inputs: images float32 (B, 1, 28, 28) in
[0, 1], a white digit on black as predict prepares it (the model normalises it itself), and
addends int64 (B,) in 0..9. Outputs: digit_logits (B, 10) and sum_logits (B, 19); for
late_sum the impossible sums are -inf, as in PyTorch. The batch size B is free.

ONNX goes through the TorchScript-based exporter (dynamo=False): the newer torch.export one
needs onnxscript, which this project does not depend on. TorchScript is a torch.jit.trace
(the model has no data-dependent control flow); load it with torch.jit.load.
"""

from __future__ import annotations

import argparse
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from architectures import DigitSumModel
from architectures.fusions import NUM_DIGITS

INPUTS = ("images", "addends")
OUTPUTS = ("digit_logits", "sum_logits")
OPSET = 17


def example_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(batch, 1, 28, 28), torch.arange(batch) % NUM_DIGITS


def to_onnx(model: DigitSumModel) -> bytes:
    """The ONNX model as bytes, with a dynamic batch axis on every input and output."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(
            model.eval(),
            example_inputs(),
            buf,
            input_names=list(INPUTS),
            output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in INPUTS + OUTPUTS},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def to_torchscript(model: DigitSumModel) -> bytes:
    """The traced model as ``torch.jit.save`` bytes."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.trace(model.eval(), example_inputs()), buf)
    return buf.getvalue()


EXPORTERS: dict[str, tuple[Callable[[DigitSumModel], bytes], str]] = {
    # format: (exporter, default file name in the run directory)
    "onnx": (to_onnx, "model.onnx"),
    "torchscript": (to_torchscript, "model.torchscript.pt"),
}


def cmd_export(args: argparse.Namespace) -> int:
    """Write a trained run's model as ONNX or TorchScript: (images, addends) -> both logits."""
    from benchmark import io as atomic
    from benchmark import runs
    from benchmark.cli import UsageError, console

    run_dir = Path(args.run)
    if not (run_dir / runs.MODEL).is_file() or not (run_dir / runs.CONFIG).is_file():
        raise UsageError(
            f"--run {run_dir}: no {runs.MODEL} and {runs.CONFIG} there; expected a finished run "
            f"directory (results/runs/<run-id>)"
        )
    exporter, default_name = EXPORTERS[args.format]
    out = Path(args.out) if args.out else run_dir / default_name
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; expected a file path")
    data = exporter(runs.load_run(run_dir))
    atomic.write_bytes(out, data)
    console.print(
        f"wrote {out} ({len(data) / 1e6:.2f} MB): inputs images (B,1,28,28) float in [0,1] and "
        f"addends (B,) int64 -> outputs digit_logits (B,10) and sum_logits (B,19)",
        soft_wrap=True,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a trained run's model as ONNX or TorchScript",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="a finished run directory")
    p.add_argument("--format", required=True, choices=sorted(EXPORTERS), help="output format")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="output file [RUN_DIR/model.onnx or RUN_DIR/model.torchscript.pt]",
    )
    p.set_defaults(func=cmd_export)
