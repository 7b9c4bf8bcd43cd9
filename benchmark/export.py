"""Export a trained model as a standalone ONNX or TorchScript model.

The exported model is the whole DigitSumModel. Inputs: images float32 (B, 1, 28, 28) in
[0, 1], a white digit on black as predict prepares it (the model normalises it itself), and
addends int64 (B,) in 0..9. Outputs: digit_logits (B, 10) and sum_logits (B, 19); for
late_sum the impossible sums are -inf, as in PyTorch. The batch size B is free.

ONNX goes through the TorchScript-based exporter (dynamo=False): the newer torch.export one
needs onnxscript, which this project does not depend on. TorchScript is a torch.jit.trace
(the model has no data-dependent control flow); load it with torch.jit.load.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

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


EXPORTERS: dict[str, Callable[[DigitSumModel], bytes]] = {
    "onnx": to_onnx,
    "torchscript": to_torchscript,
}
