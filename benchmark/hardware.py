"""Where and how tensors run: the one place that resolves device, precision and memory layout,
plus the names and versions recorded beside every figure."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmark.config import TrainConfig


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; a device that is not there is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 autocast on CUDA; on the CPU it is what this machine's probe measured
    fastest (``cpu_choice``: fp32 unless bf16 is clearly faster here)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" else cpu_choice()["precision"]


def resolve_channels_last(
    channels_last: bool | None, device: torch.device, precision: str = "auto"
) -> bool:
    """``None`` is on for CUDA; on the CPU it is the probe's choice, for ``precision`` when that
    is set (the faster layout measured at it) and with ``auto`` precision when not."""
    if channels_last is not None:
        return channels_last
    if device.type == "cuda":
        return True
    probed = cpu_choice()
    if precision == "auto":
        return probed["channels_last"]
    return choose(probed["images_per_s"], precision)[1]


def resolve_execution(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``cfg`` with ``auto`` precision and layout replaced by what they are on ``device`` (on a
    CPU, the probe's choice, whose figures go into ``auto_probe``): what config.json keeps, so
    that a resume, or a rerun of that config elsewhere, computes the same way."""
    probe = auto_record(cfg.precision, cfg.channels_last, device)
    return replace(
        cfg,
        precision=resolve_precision(cfg.precision, device),
        channels_last=resolve_channels_last(cfg.channels_last, device, cfg.precision),
        auto_probe=probe if probe is not None else cfg.auto_probe,
    )


# ------------------------------------------------------------------------- the CPU probe
#
# Whether bf16 autocast and channels_last pay on a CPU depends on the CPU (AMX, AVX-512 BF16 or
# neither) and on torch's kernels: training with both ran 2.8x fp32's speed on one Xeon with
# AMX, bf16 alone 1.3x on one AMD EPYC with AVX-512 BF16. So ``auto`` decides per machine from a
# short measurement, done once and cached per (CPU model, thread count, torch version) under
# $DIGITSUM_CACHE (default ~/.cache/digitsum-bench). A run writes the choice into its
# config.json, so a resume or a rerun of that config never depends on the cache.

PROBE_MODEL = ("gap_cnn", "concat")  # the suite's default model ...
PROBE_BATCH = 128  # ... at the default training batch size
PROBE_ROUNDS = 6  # forward+backward passes per variant, interleaved; the first is warm-up
PROBE_MARGIN = 1.10  # a variant replaces plain fp32 only when at least 10% faster
_chosen: dict[str, dict[str, Any]] = {}  # this process's choices, by machine key


def variant_name(precision: str, channels_last: bool) -> str:
    return precision + ("+channels_last" if channels_last else "")


def cpu_variants() -> list[tuple[str, bool]]:
    """(precision, channels_last) pairs worth measuring: bf16 only where oneDNN has native bf16
    kernels (emulated bf16 is slow, and accuracy was checked only on native ones)."""
    precisions = ["fp32"]
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        precisions.append("bf16")
    return [(p, cl) for p in precisions for cl in (False, True)]


def probe_cpu(rounds: int = PROBE_ROUNDS) -> dict[str, float]:
    """Training images/s (forward + backward of the default model on random images) of each
    CPU variant, the median of ``rounds - 1`` passes taken in turn (a load spike hits all of
    them alike). The global RNG is left as it was, so seeded runs do not see the probe."""
    from architectures import create_model

    cpu = torch.device("cpu")
    times: dict[str, list[float]] = {variant_name(*v): [] for v in cpu_variants()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(*PROBE_MODEL).train()
        images = torch.rand(PROBE_BATCH, 1, 28, 28)
        addends = torch.randint(0, 10, (PROBE_BATCH,))
        for r in range(rounds):
            for precision, channels_last in cpu_variants():
                fmt = torch.channels_last if channels_last else torch.contiguous_format
                model = model.to(memory_format=fmt)
                x = images.contiguous(memory_format=fmt)
                t0 = time.perf_counter()
                with autocast(cpu, precision):
                    digit, total = model(x, addends)
                (digit.float().logsumexp(1).mean() + total.float().logsumexp(1).mean()).backward()
                model.zero_grad(set_to_none=True)
                if r:
                    times[variant_name(precision, channels_last)].append(time.perf_counter() - t0)
    return {name: round(PROBE_BATCH / statistics.median(t), 1) for name, t in times.items()}


def choose(figures: dict[str, float], precision: str = "auto") -> tuple[str, bool]:
    """The fastest measured variant (of ``precision`` unless ``auto``) if it beats the plain one
    (fp32, or ``precision``, contiguous) by ``PROBE_MARGIN``, else the plain one: probe noise
    between two near-equal variants never flips the choice."""
    plain = "fp32" if precision == "auto" else precision
    measured = [
        (p, cl)
        for p in ("fp32", "bf16")
        for cl in (False, True)
        if variant_name(p, cl) in figures and precision in ("auto", p)
    ]
    if not measured:
        return plain, False
    best = max(measured, key=lambda v: figures[variant_name(*v)])
    if figures[variant_name(*best)] >= PROBE_MARGIN * figures.get(plain, 0.0):
        return best
    return plain, False


def machine_key() -> str:
    return f"{device_name(torch.device('cpu'))} | torch {torch.__version__}"


def cache_path() -> Path:
    root = os.environ.get("DIGITSUM_CACHE") or Path.home() / ".cache" / "digitsum-bench"
    return Path(root) / "cpu-probe.json"


def cpu_choice() -> dict[str, Any]:
    """This machine's probe record: ``precision``, ``channels_last`` (the choice for ``auto``),
    the measured ``images_per_s`` per variant, ``machine`` and ``probed`` (when). Read from the
    cache, else measured (about two seconds) and cached; an unreadable cache is measured over.
    Processes starting at once take turns (an ``flock``), so all of them get one record."""
    key = machine_key()
    if key not in _chosen:
        path = cache_path()
        with cache_locked(path):
            found = read_cache(path)
            cached = found.get(key)
            if not valid_record(cached):
                figures = probe_cpu()
                precision, channels_last = choose(figures)
                cached = {
                    "precision": precision,
                    "channels_last": channels_last,
                    "images_per_s": figures,
                    "machine": key,
                    "probed": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
                write_cache(path, {**found, key: cached})
        _chosen[key] = cached
    return _chosen[key]


@contextlib.contextmanager
def cache_locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` beside the cache file while it is read and probed into; without
    a writable cache directory, no lock (each process then probes for itself)."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def valid_record(record: Any) -> bool:
    return (
        isinstance(record, dict)
        and record.get("precision") in ("fp32", "bf16")
        and isinstance(record.get("channels_last"), bool)
        and isinstance(record.get("images_per_s"), dict)
    )


def read_cache(path: Path) -> dict[str, Any]:
    """The cache's records by machine key; empty when missing or damaged (measured over)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_cache(path: Path, records: dict[str, Any]) -> None:
    """Replace the cache file atomically; an unwritable cache is no error (the choice then
    holds for this process only)."""
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(records, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def auto_record(
    precision: str, channels_last: bool | None, device: torch.device
) -> dict[str, Any] | None:
    """What decided an ``auto`` setting on the CPU (the probe's record), for the run's files;
    None when nothing was left to the probe (both set, or not a CPU)."""
    if device.type != "cpu" or (precision != "auto" and channels_last is not None):
        return None
    return cpu_choice()


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when ``precision`` resolves to bf16 on ``device``, else nothing."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a host clock measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model and the thread count torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model} ({torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    import timm
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
    }


def git_commit() -> str | None:
    """The commit of this checkout, with ``-dirty`` when it has uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")
