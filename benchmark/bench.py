"""Throughput for ``bench``: size, cost and speed of each encoder x fusion, one CSV row each.

The method follows timm's ``benchmark.py``: untimed warm-up calls, then timed calls with the device
synchronised around each one; bf16 autocast on CUDA by default. Unlike timm, throughput is the
batch over the *median* call time (latency too is a median): on a shared machine one load spike
would otherwise decide the mean. Every configuration's first call is timed on its own and kept out
of the figures: with ``--compile`` it is the compilation, reported in ``compile_seconds`` (all of a
row's compiles) and ``train_compile_seconds`` (the training step's, what a compiled run pays).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` over the configuration's inference and
training (reset before each configuration). On the CPU it is left empty (NaN): the only
process-wide figure, ``ru_maxrss``, is a high-water mark that never comes down, so after the first
configuration of a sweep it cannot tell what a smaller one needs.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from architectures import DigitSumModel, count_params
from architectures.fusions import NUM_DIGITS
from benchmark.benchfile import FIGURES, model_args_cell
from benchmark.config import TrainConfig
from benchmark.hardware import Execution, cpu_features, device_name
from benchmark.trainer import build_state, compute_loss, train_step

DEFAULT_BATCH_SIZE = {"cpu": 1024, "cuda": 8192}
ERROR_CHARS = 300  # an error row's message is cut here: one readable line in the CSV


@dataclass(frozen=True)
class Settings:
    """What a measurement depends on besides the configuration measured (its ``TrainConfig``:
    model, batch size and loss); every field ends up in the row."""

    ex: Execution  # device, precision, layout, compile: decided once, as for a run
    batch_size: int  # images per inference call
    warmup: int
    iters: int

    @property
    def device(self) -> torch.device:
        return self.ex.device

    @property
    def precision(self) -> str:
        return self.ex.precision

    @property
    def channels_last(self) -> bool:
        return self.ex.channels_last

    @property
    def compile(self) -> bool:
        return self.ex.compile


def timed_call(fn: Callable[[], Any], ex: Execution) -> float:
    """Seconds for one call, the device synchronised before and after (timm's method)."""
    ex.synchronize()
    t0 = time.perf_counter()
    fn()
    ex.synchronize()
    return time.perf_counter() - t0


def measure(fn: Callable[[], Any], s: Settings) -> tuple[float, list[float]]:
    """(seconds of the first call, seconds of each timed call after ``s.warmup`` untimed ones).

    The first call is where ``torch.compile`` compiles (or recompiles for a new shape)."""
    first = timed_call(fn, s.ex)
    for _ in range(s.warmup):
        fn()
    return first, [timed_call(fn, s.ex) for _ in range(s.iters)]


def quartile_ratio(times: list[float]) -> float:
    """The upper quartile of ``times`` over the lower; 1 for a single call."""
    if len(times) < 2:
        return 1.0
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q3 / q1


def random_batch(n: int, ex: Execution) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images in [0, 1] in ``ex``'s layout, digit labels and addends: what the model sees, with
    random content."""
    device = ex.device
    images = torch.rand(n, 1, 28, 28, device=device).contiguous(memory_format=ex.memory_format)
    labels = torch.randint(0, NUM_DIGITS, (n,), device=device)
    addends = torch.randint(0, NUM_DIGITS, (n,), device=device)
    return images, labels, addends


def macs_per_image(model: DigitSumModel, device: torch.device) -> int:
    """Multiply-accumulates of one image's forward pass: FlopCounterMode's flops / 2."""
    images, _, addends = random_batch(1, Execution(device))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(images, addends)
    return counter.get_total_flops() // 2


_COSTS: dict[tuple[Any, Any, str], tuple[int, int]] = {}  # model_cost's, by ``model_key``


def model_cost(arch: str, fusion: str, model_args: dict[str, Any]) -> tuple[int, int]:
    """(parameters, MACs per image) of a configuration's model, built and run on the meta
    device: no memory, and the global RNG untouched (a resumed run's is restored). That takes
    40-80 ms for the core models on a CPU, so a process measures each model once. A forward
    that reads its data (``.item()``) cannot run on meta tensors and runs on the CPU instead,
    as the registry's dry run does."""
    from architectures import create_model, meta_build, model_key, needs_values

    key = model_key(arch, fusion, model_args)
    if key not in _COSTS:
        with meta_build():
            model = create_model(arch, fusion, **model_args).eval()
        try:
            _COSTS[key] = count_params(model), macs_per_image(model, torch.device("meta"))
        except Exception as exc:
            if not needs_values(exc):
                raise
            with torch.random.fork_rng(devices=[]):
                model = create_model(arch, fusion, **model_args).eval()
                _COSTS[key] = count_params(model), macs_per_image(model, torch.device("cpu"))
    return _COSTS[key]


def measure_pair(cfg: TrainConfig, s: Settings) -> tuple[dict[str, float], Callable[[], None]]:
    """Every figure of one configuration (``cfg``'s model, and its training step at its batch
    size and loss, as a run of it trains), and that step, compiled and warm (what
    ``compile_ab`` times again); raises what torch raises (out of memory, unsupported)."""
    if s.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(s.device)
    if s.compile:  # compiled code is specialised per model; stale entries would hit the cache limit
        torch.compiler.reset()
    state = build_state(cfg, s.ex)  # the trainer's model and AdamW
    model = state.model.eval()
    params = count_params(model)
    macs = macs_per_image(model, s.device)
    forward = s.ex.compiled(model)

    def infer_fn(images: torch.Tensor, addends: torch.Tensor) -> Callable[[], Any]:
        def infer() -> Any:
            with torch.no_grad(), s.ex.autocast():
                return forward(images, addends)

        return infer

    images, _, addends = random_batch(s.batch_size, s.ex)
    compile_infer, infer_times = measure(infer_fn(images, addends), s)
    del images, addends
    images, _, addends = random_batch(1, s.ex)
    compile_b1, latency_times = measure(infer_fn(images, addends), s)

    model.train()
    loss_fn = s.ex.compiled(compute_loss)
    images, labels, addends = random_batch(cfg.batch_size, s.ex)

    def step() -> None:
        train_step(state, cfg, images, labels, addends, s.ex, loss_fn)

    compile_train, train_times = measure(step, s)
    peak = math.nan
    if s.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(s.device) / 2**20
    return {
        "params": params,
        "macs_per_image": macs,
        "infer_images_per_s": s.batch_size / statistics.median(infer_times),
        "latency_ms_b1": 1000 * statistics.median(latency_times),
        "train_images_per_s": cfg.batch_size / statistics.median(train_times),
        "peak_mem_mb": peak,
        # the upper quartile of the timed calls over the lower, of the figure whose calls varied
        # most (one slow call among 40 is no matter: the median holds): a busy machine, or a
        # compiled model still warming up (batch-1 calls of 100 ms, then 0.5 ms)
        "timing_spread": max(map(quartile_ratio, (infer_times, latency_times, train_times))),
        # an eager row compiled nothing: blank, not 0.0 (the report and bench print "-")
        "compile_seconds": compile_infer + compile_b1 + compile_train if s.compile else math.nan,
        "train_compile_seconds": compile_train if s.compile else math.nan,
    }, step


def compile_ab(
    cfg: TrainConfig, s: Settings, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """The figures of one configuration eager and compiled, their training taken again in
    ``rounds`` rounds of ``s.iters`` steps each, eager and compiled taking turns (the order
    alternating), so that both come from the same minutes of a machine whose speed drifts by
    tens of percent between sittings. The compiled row gets the per-round ratio of compiled to
    eager training speed: its median and quartiles (``ab_*``)."""
    figures, steps = {}, {}
    for compiled in (False, True):
        settings = replace(s, ex=replace(s.ex, compile=compiled))
        figures[compiled], steps[compiled] = measure_pair(cfg, settings)
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for compiled in (False, True) if r % 2 == 0 else (True, False):
            calls = [timed_call(steps[compiled], s.ex) for _ in range(s.iters)]
            times[compiled].append(statistics.median(calls))
    ratios = [eager / compiled for eager, compiled in zip(times[False], times[True], strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    for compiled in (False, True):
        figures[compiled]["train_images_per_s"] = cfg.batch_size / statistics.median(
            times[compiled]
        )
    figures[True] |= {"ab_rounds": rounds, "ab_ratio": median, "ab_ratio_q1": q1, "ab_ratio_q3": q3}
    return figures[False], figures[True]


def error_cell(exc: BaseException) -> str:
    """A failed configuration's ``error`` field: the whole message on one line (the reason
    may be past its first), cut to fit a CSV cell."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def bench_rows(
    cfg: TrainConfig, s: Settings, commit: str | None, ab_rounds: int | None = None
) -> list[dict[str, Any]]:
    """The CSV rows of one configuration: one as ``s`` says, or with ``ab_rounds`` an eager and a
    compiled one measured taking turns (``compile_ab``). A configuration that fails, or that
    cannot take 28x28 images (the dry run's reason, not a traceback from the first call), gets
    NaN figures and the error: the sweep goes on."""
    from architectures import check_model

    variants = [s.compile] if ab_rounds is None else [False, True]
    rows = [
        {
            "arch": cfg.arch,
            "fusion": cfg.fusion,
            "model_args": model_args_cell(cfg.model_args),
            "tuned_from": (cfg.tuned_from or {}).get("study", ""),
            "device": device_name(s.device),
            "device_type": s.device.type,
            "cpu_features": cpu_features() if s.device.type == "cpu" else "",
            "precision": s.precision,
            "batch_size": s.batch_size,
            "train_batch_size": cfg.batch_size,
            "channels_last": s.channels_last,
            "compile": compiled,
            **dict.fromkeys(FIGURES, math.nan),
            "torch": torch.__version__,
            "commit": commit,
            "error": "",
        }
        for compiled in variants
    ]
    try:
        check_model(cfg.arch, cfg.fusion, cfg.model_args)
        if ab_rounds is None:
            rows[0].update(measure_pair(cfg, s)[0])
        else:
            measured = compile_ab(cfg, s, ab_rounds)
            for row, figures in zip(rows, measured, strict=True):
                row.update(figures)
    except (RuntimeError, ValueError, MemoryError) as exc:  # torch.OutOfMemoryError included
        for row in rows:  # figures are filled in only once all are measured: they stay NaN
            row["error"] = error_cell(exc)
    if s.device.type == "cuda":
        torch.cuda.empty_cache()  # give a failed configuration's blocks back before the next
    return rows
