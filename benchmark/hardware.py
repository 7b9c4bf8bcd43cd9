"""Where and how tensors run: the one place that resolves device, precision and memory layout,
plus the names and versions recorded beside every figure."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import torch

from benchmark import files
from benchmark.config import TrainConfig
from benchmark.errors import WriteFailed
from benchmark.inductor import compile_backend
from benchmark.machines import timing_device, with_features
from benchmark.wording import plural


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


F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Execution:
    """Where and how a run computes, decided once (``decide``) and handed to the trainer,
    evaluation, ``bench`` and ``datapath``, which never resolve anything themselves (as timm
    resolves its autocast once and passes the callable down)."""

    device: torch.device
    precision: str = "fp32"  # resolved: fp32 or bf16
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None  # None: torch's own
    probe: dict[str, Any] | None = None  # the CPU probe's record when it decided an ``auto``
    sharing: int = 1  # processes training side by side on this machine (``compare --jobs``)

    def activate(self) -> None:
        """Apply the thread count (process-wide; the same count keeps CPU results bit-exact)."""
        if self.threads:
            torch.set_num_threads(self.threads)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast when the precision is bf16, else nothing."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout of the model's weights and of every image batch fed to it."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def synchronize(self) -> None:
        synchronize(self.device)

    def compiled(self, fn: F) -> F:
        """``fn`` under ``torch.compile`` when this execution compiles, else ``fn`` itself: the
        trainer and ``bench`` compile through here, with ``benchmark.inductor``'s backend."""
        if not self.compile:
            return fn
        return torch.compile(fn, backend=compile_backend(self.device))  # type: ignore[return-value]

    def settle(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` (of the same execution settings as the one decided) with the decision
        written in, as config.json keeps it."""
        return replace(
            cfg,
            precision=self.precision,
            channels_last=self.channels_last,
            auto_probe=self.probe if self.probe is not None else cfg.auto_probe,
        )

    def timing_name(self) -> str:
        """The device as a run's timings name it: its ``device_name`` and, when several
        processes shared the machine, how many (their timings are shared ones; the report
        never pools them with a machine's own)."""
        return timing_device(device_name(self.device), self.sharing)

    def describe(self) -> str:
        """``bf16, channels_last`` or ``fp32`` (+ ``, compiled``): how it computes."""
        return way_text(self.precision, self.channels_last) + (", compiled" if self.compile else "")


def decide(cfg: TrainConfig) -> tuple[TrainConfig, Execution]:
    """The one place a run's execution is decided: the device (a missing one is a ValueError),
    its thread count, and ``auto`` precision and layout (on a CPU, the probe's choice). Returns
    the config with those written in (what config.json keeps: a resume, or a rerun of that
    config, computes the same way; deciding again on it changes nothing) and the context."""
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # before the probe: its record is per thread count
    resolved = resolve_execution(cfg, device)
    return resolved, Execution(
        device=device,
        precision=resolved.precision,
        channels_last=bool(resolved.channels_last),
        compile=resolved.compile,
        threads=resolved.threads,
        probe=resolved.auto_probe,
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
# A variant's slowest pass over its fastest: near 1 on a quiet machine; above this the machine
# was busy (other processes took the cores), so the figures are not cached.
PROBE_SPREAD = 1.5
_chosen: dict[str, dict[str, Any]] = {}  # this process's choices, by machine key


def variant_name(precision: str, channels_last: bool) -> str:
    return precision + ("+channels_last" if channels_last else "")


def way_text(precision: str, channels_last: bool) -> str:
    """``bf16, channels_last`` or ``fp32``: how a run computes, as every line names it."""
    return precision + (", channels_last" if channels_last else "")


def cpu_variants() -> list[tuple[str, bool]]:
    """(precision, channels_last) pairs worth measuring: bf16 only where oneDNN has native bf16
    kernels (emulated bf16 is slow, and accuracy was checked only on native ones)."""
    precisions = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    return [(p, cl) for p in precisions for cl in (False, True)]


def native_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def probe_cpu(rounds: int = PROBE_ROUNDS) -> tuple[dict[str, float], float]:
    """Training images/s (forward + backward of the default model on random images) of each
    CPU variant, the median of ``rounds - 1`` passes taken in turn (a load spike hits all of
    them alike), and the widest spread of a variant's passes (slowest over fastest: how busy
    the machine was). The global RNG is left as it was, so seeded runs do not see the probe."""
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
                ex = Execution(cpu, precision, channels_last)
                model = model.to(memory_format=ex.memory_format)
                x = images.contiguous(memory_format=ex.memory_format)
                t0 = time.perf_counter()
                with ex.autocast():
                    digit, total = model(x, addends)
                (digit.float().logsumexp(1).mean() + total.float().logsumexp(1).mean()).backward()
                model.zero_grad(set_to_none=True)
                if r:
                    times[variant_name(precision, channels_last)].append(time.perf_counter() - t0)
    figures = {name: round(PROBE_BATCH / statistics.median(t), 1) for name, t in times.items()}
    return figures, max((max(t) / min(t) for t in times.values() if t), default=1.0)


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
    """The probe cache's key: the CPU (model and threads), the torch release, and whether the
    CPU has native bf16. VMs name CPUs with and without AVX-512 BF16 alike (``AMD EPYC``), and a
    cache shared between such machines must not hand one's bf16 choice to the other."""
    bf16 = "native bf16" if native_bf16() else "no native bf16"
    return f"{device_name(torch.device('cpu'))} | torch {torch.__version__} | {bf16}"


def cache_path() -> Path:
    root = os.environ.get("DIGITSUM_CACHE") or Path.home() / ".cache" / "digitsum-bench"
    return Path(root) / "cpu-probe.json"


def cpu_choice() -> dict[str, Any]:
    """This machine's probe record: ``precision``, ``channels_last`` (the choice for ``auto``),
    the measured ``images_per_s`` per variant, ``machine``, ``probed`` (when) and ``spread``
    (``probe_cpu``'s). Read from the cache, else measured (about two seconds) and cached unless
    the spread says the machine was busy, twice over (a quiet 2-core VM gave one spread of 2.9x
    in eight fresh probes, the others 1.2-1.5x); an unreadable cache is measured over.
    Processes starting at once take turns (an ``flock``), so all of them get one record."""
    key = machine_key()
    if key not in _chosen:
        path = cache_path()
        with files.locked(path.with_suffix(".lock")):  # without a cache dir, each probes
            found = read_cache(path)
            cached = found.get(key)
            if not valid_record(cached):
                figures, spread = probe_cpu()
                if spread > PROBE_SPREAD:  # one slow pass (a spike) is measured again, once
                    figures, spread = probe_cpu()
                cached = probe_record(figures, spread, key)
                if spread <= PROBE_SPREAD:
                    write_cache(path, {**found, key: cached})
                else:
                    say_contended(cached)
        _chosen[key] = cached
    return _chosen[key]


def say_contended(record: dict[str, Any]) -> None:
    """One line (on stdout, with the other notes of a command: stderr is for its errors): a
    probe taken on a busy machine decides for this process only."""
    how = way_text(record["precision"], record["channels_last"])
    sys.stdout.write(
        f"warning: the CPU probe's repeated passes disagree (slowest {record['spread']:.1f}x "
        f"the fastest): this machine looks busy, so its choice ({how}) holds for this process "
        f"only and is not cached; it is measured again next time\n"
    )


def probe_record(figures: dict[str, float], spread: float, key: str) -> dict[str, Any]:
    """The cache's record of one probe: the choice for ``auto`` and what it rests on."""
    precision, channels_last = choose(figures)
    return {
        "precision": precision,
        "channels_last": channels_last,
        "images_per_s": figures,
        "machine": key,
        "probed": time.strftime("%Y-%m-%d %H:%M:%S"),
        "spread": round(spread, 2),
    }


def valid_record(record: Any) -> bool:
    """A cached record has every field ``probe_record`` writes, of its type (one edited or
    written by an older version is measured over, never half-used)."""
    shape = {"precision": str, "channels_last": bool, "images_per_s": dict, "machine": str}
    shape |= {"probed": str, "spread": (int, float)}
    if not isinstance(record, dict) or record.keys() != shape.keys():
        return False
    if not all(isinstance(record[k], kind) for k, kind in shape.items()):
        return False
    figures = record["images_per_s"]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in figures.values())
    return record["precision"] in ("fp32", "bf16") and bool(figures) and numbers


def read_cache(path: Path) -> dict[str, Any]:
    """The cache's records by machine key; empty when missing or damaged (measured over)."""
    try:
        found = files.parse_json(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_cache(path: Path, records: dict[str, Any]) -> None:
    """Replace the cache file atomically; an unwritable cache is no error (the choice then
    holds for this process only)."""
    with contextlib.suppress(WriteFailed):
        files.write_json(path, records)


def auto_record(
    precision: str, channels_last: bool | None, device: torch.device
) -> dict[str, Any] | None:
    """What decided an ``auto`` setting on the CPU (the probe's record), for the run's files;
    None when nothing was left to the probe (both set, or not a CPU)."""
    if device.type != "cpu" or (precision != "auto" and channels_last is not None):
        return None
    return cpu_choice()


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a host clock measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpuinfo(field: str) -> str | None:
    """The first ``field`` of /proc/cpuinfo as the kernel reports it (None where it has none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``platform`` where there is no
    /proc/cpuinfo)."""
    return cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_features() -> str:
    """What tells apart CPUs sold under one name (``AMD EPYC`` with and without AVX-512): torch's
    vector level, ``bf16`` where oneDNN has native bf16 kernels, ``amx`` where the kernel reports
    AMX tiles, as in ``avx512 bf16 amx``."""
    found = [torch.backends.cpu.get_cpu_capability().lower()]
    found += ["bf16"] if native_bf16() else []
    found += ["amx"] if "amx_tile" in (cpuinfo("flags") or "").split() else []
    return " ".join(found)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model and the thread count torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu: {cpu_model()} ({plural(torch.get_num_threads(), 'thread')})"


def machine_name(device: torch.device) -> str:
    """``device_name`` with the CPU's features, as bench rows and run timings name the machine
    (``cpu: AMD EPYC (2 threads) with avx2``)."""
    return with_features(device_name(device), cpu_features() if device.type == "cpu" else "")


def versions() -> dict[str, str]:
    """The versions a run computed with, read without importing timm or torchvision (together
    about two seconds of every process start) when the run itself does not use them."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
        "timm": package_version("timm"),
    }


def package_version(name: str) -> str:
    """``name.__version__`` as the package would say it (torchvision's carries its CUDA build,
    ``0.29.1+cu130``, which the wheel's metadata lacks): from its ``version.py`` when it has
    one, else from the installed metadata."""
    module = sys.modules.get(name)
    if module is not None:
        return str(module.__version__)
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.origin:
        source = Path(spec.origin).with_name("version.py")
        with contextlib.suppress(OSError):
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", source.read_text(), re.M)
            if found:
                return found.group(1)
    return metadata.version(name)


SOURCES = ("benchmark", "architectures", "pyproject.toml")  # the code a record's commit names


def git_commit(checkout: Path | None = None) -> str | None:
    """The commit of the checkout this package runs from (or ``checkout``), with ``-dirty``
    when its code (``SOURCES``) has uncommitted changes. Results written into the checkout
    (``results/``, a bench CSV appended a moment ago) are not code and leave it clean."""
    root = checkout or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCES],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")
