"""What each encoder and fusion a plug-in registers is checked for before any command goes on
(``plugins.imported`` calls ``check_entry``): hyperparameter names that clash, and a real
forward on a few CPU images, in the contiguous layout and in channels_last.

Torch-free at import: commands' ``--help`` must stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark.errors import one_line

if TYPE_CHECKING:
    import torch

PARTNERS = {"encoder": "concat", "fusion": "gap_cnn"}  # what a new entry is checked beside
CHECK_BATCH = 4


def check_entry(kind: str, name: str) -> str | None:
    """What is wrong with a newly registered entry, or None: a hyperparameter name the other
    kind already uses (overrides are routed by name), or a model that cannot be built or whose
    real forward on a few CPU images raises or gives wrong shapes or non-finite values. The
    registry's meta-device dry run (``check_model``) is left to the commands that build the
    model: the CPU forward finds what it would, and meta kernels import torch._dynamo (2-3 s),
    which ``predict`` does not otherwise need (with neither dry run, 2.2-2.4 s here against
    4.7-5.2 s; ``runs.load_run``)."""
    import dataclasses

    from architectures import ENCODERS, FUSIONS
    from benchmark.config import TrainConfig, flag_name

    own, other = (ENCODERS, FUSIONS) if kind == "encoder" else (FUSIONS, ENCODERS)
    training = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in own.get(name).defaults:
        if key in training:  # a study's parameters are named so: one could not be tuned
            return (
                f"has hyperparameter {key!r}, a name training uses ({flag_name(key)}): "
                f"tuning names both by it, so rename it"
            )
        users = [e.name for e in other.entries.values() if key in e.defaults]
        if users:
            return (
                f"has hyperparameter {key!r}, which {other.kind} {users[0]} also has: overrides "
                f"are routed by name, so rename it"
            )
    arch, fusion = (name, PARTNERS[kind]) if kind == "encoder" else (PARTNERS[kind], name)
    problem = check_outputs(arch, fusion)
    if problem is None and kind == "encoder":
        note_layout(arch, fusion)
    return problem


_no_channels_last: dict[str, str] = {}  # plug-in encoders whose forward fails in it: why


def note_layout(arch: str, fusion: str) -> None:
    """Run the check's forward again in the channels_last layout, as training converts model and
    images when it is chosen (by the CPU probe, unasked), and note a failure: ``.view`` after a
    convolution, a common way to flatten, fails there, and did so at the first training step
    in a traceback. The meta device cannot tell: its convolutions return contiguous tensors."""
    import torch

    from architectures import create_model
    from architectures.fusions import NUM_DIGITS

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        model = create_model(arch, fusion).eval().to(memory_format=torch.channels_last)
        images = torch.rand(CHECK_BATCH, 1, 28, 28).to(memory_format=torch.channels_last)
        try:
            model(images, torch.arange(CHECK_BATCH) % NUM_DIGITS)
        except Exception as exc:  # noqa: BLE001 - whatever a plug-in's forward raises
            _no_channels_last[arch] = one_line(exc)


def layout_problem(arch: str, channels_last: bool) -> str | None:
    """Why plug-in encoder ``arch`` cannot train in the layout chosen, or None (a usage error
    for the commands that train: said before anything is written)."""
    if not channels_last or arch not in _no_channels_last:
        return None
    why = _no_channels_last[arch].rstrip(".")
    return (
        f"encoder {arch} fails in the channels_last memory layout chosen for training here "
        f"(by --channels-last, or as this machine's default): {why}; flatten with .flatten or "
        f".reshape rather than .view, or give --no-channels-last"
    )


def check_outputs(arch: str, fusion: str) -> str | None:
    """Run ``arch`` x ``fusion`` at its defaults on a few random images on the CPU (eval mode,
    the global RNG untouched), then on one image, and say what is wrong with the features and
    logits, if anything. One image catches what only a batch of one breaks: ``.squeeze()`` to
    flatten drops the batch dimension too, and ``predict`` of one image and the time estimate
    run such batches."""
    import torch

    from architectures import create_model

    with torch.random.fork_rng(devices=[]):  # the forwards may draw numbers too (dropout)
        torch.manual_seed(0)
        try:
            model = create_model(arch, fusion).eval()
        except Exception as exc:  # noqa: BLE001 - whatever a plug-in's factory raises
            return f"with {arch} x {fusion}: building it raised {one_line(exc)}"
        images = torch.rand(CHECK_BATCH, 1, 28, 28)
        for b in (CHECK_BATCH, 1):
            problem = _check_batch(model, images[:b], f"with {arch} x {fusion}")
            if problem is not None:
                return problem
    return None


def _check_batch(model: torch.nn.Module, images: torch.Tensor, with_: str) -> str | None:
    """What is wrong with ``model``'s features and logits for ``images``, or None."""
    import torch

    from architectures.fusions import NUM_DIGITS, NUM_SUMS

    b = len(images)
    on = f"on {b} CPU image{'s' if b > 1 else ''} of 1x28x28"
    try:
        with torch.no_grad():
            features = model.features(images)
            width = model.encoder.num_features
            if not isinstance(features, torch.Tensor) or tuple(features.shape) != (b, width):
                # before the fusion's forward, which would fail on them with its own message
                shape = (
                    tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
                )
                return (
                    f"returns features of shape {shape}, expected ({b}, num_features={width}) "
                    f"({with_} {on})"
                )
            outputs = model(images, torch.arange(b) % NUM_DIGITS)
    except Exception as exc:  # noqa: BLE001 - whatever a plug-in's forward raises
        return f"{with_} {on} raised {one_line(exc)}"
    with_ = f"({with_} {on})"
    if not torch.isfinite(features).all():
        return f"returns non-finite features {with_}"
    if not (isinstance(outputs, tuple | list) and len(outputs) == 2):
        return f"returns {type(outputs).__name__}, expected (digit_logits, sum_logits) {with_}"
    for label, logits, classes in (
        ("digit", outputs[0], NUM_DIGITS),
        ("sum", outputs[1], NUM_SUMS),
    ):
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (b, classes):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            return f"returns {label} logits of shape {shape}, expected ({b}, {classes}) {with_}"
    digit, total = outputs
    # sum logits may be -inf for sums an addend makes impossible (late_sum), never NaN or +inf
    if not torch.isfinite(digit).all() or total.isnan().any() or (total == float("inf")).any():
        return f"returns non-finite logits {with_}"
    if not torch.isfinite(total).any(dim=1).all():
        return f"returns sum logits that are all -inf for some image {with_}"
    return None
