"""Export a trained model as a standalone ONNX or TorchScript model.

The exported model is the whole DigitSumModel. Inputs: images float32 (B, 1, 28, 28) in
[0, 1], a white digit on black as predict prepares it (the model normalises it itself), and
addends int64 (B,) in 0..9. Outputs: digit_logits (B, 10) and sum_logits (B, 19); for
late_sum the impossible sums are -inf, as in PyTorch. The batch size B is free.

ONNX goes through torch's ``dynamo=True`` exporter (torch.export, then onnxscript) when
onnxscript is installed (the ``dev`` extra has it), else through the TorchScript-based one, which
torch deprecates. TorchScript is a torch.jit.trace, checked by the tracer at a second batch size
(``to_torchscript``); load it with torch.jit.load.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from architectures import DigitSumModel
from architectures.fusions import NUM_DIGITS

INPUTS = ("images", "addends")
OUTPUTS = ("digit_logits", "sum_logits")
OPSET = 17


def holds_a_model(path: Path, kind: str) -> bool:
    """Whether the file at ``path`` holds a model of format ``kind``, as an earlier export
    wrote it (an export replaces no other file): a TorchScript archive is a zip with compiled
    code in it, which ``torch.save``'s weights lack; an ONNX model is a protobuf that begins
    with its IR version (field 1, a varint: the byte 0x08)."""
    try:
        if kind == "torchscript":
            with zipfile.ZipFile(path) as archive:
                return any("/code/" in name for name in archive.namelist())
        with open(path, "rb") as fh:
            return fh.read(1) == b"\x08"
    except (OSError, zipfile.BadZipFile):
        return False


def example_inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(batch, 1, 28, 28), torch.arange(batch) % NUM_DIGITS


def onnx_exporter() -> str:
    """``dynamo`` when onnxscript is installed, else the legacy ``torchscript`` exporter."""
    return "dynamo" if importlib.util.find_spec("onnxscript") else "torchscript"


def to_onnx(model: DigitSumModel, exporter: str | None = None) -> bytes:
    """The ONNX model as bytes, with a dynamic batch axis on every input and output. A model the
    exporter cannot convert (timm's relative-position ViTs: a view torch.export cannot take with
    a free batch) is a one-line ``ValueError`` naming the cause, not the exporter's page."""
    exporter = exporter or onnx_exporter()
    model = model.eval()
    if exporter == "dynamo":
        batch = torch.export.Dim("batch")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # progress lines and notices of the exporter
            try:
                program = torch.onnx.export(
                    model,
                    example_inputs(),
                    input_names=list(INPUTS),
                    output_names=list(OUTPUTS),
                    dynamic_shapes={name: {0: batch} for name in INPUTS},
                    opset_version=max(OPSET, 18),  # the lowest opset onnxscript's library targets
                    dynamo=True,
                )
            except torch.onnx.OnnxExporterError as exc:
                cause = exc.__cause__ or exc
                lines = str(cause).strip().splitlines() or [""]
                raise ValueError(
                    f"the ONNX exporter cannot convert this model ({type(cause).__name__}: "
                    f"{lines[0]}); export --format torchscript instead"
                ) from None
        return program.model_proto.SerializeToString()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(
            model,
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
    """The traced model as ``torch.jit.save`` bytes, traced at batch 2 and checked by the tracer
    against PyTorch at batch 3: a model whose Python code reads a tensor's value (timm's ViTs
    assert their image size) is traced with that value as a constant, which is harmless where
    the check passes and a ``ValueError`` where it does not."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the check below decides
        try:
            traced = torch.jit.trace(
                model.eval(), example_inputs(), check_inputs=[example_inputs(3)]
            )
        except torch.jit.TracingCheckError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(
                f"the traced model does not match PyTorch at another batch size ({first}); "
                "export --format onnx instead"
            ) from None
        torch.jit.save(traced, buf)
    return buf.getvalue()


EXPORTERS: dict[str, Callable[[DigitSumModel], bytes]] = {
    "onnx": to_onnx,
    "torchscript": to_torchscript,
}
