"""Shared fixtures and helpers.

Two tiers: ``pytest -m "not slow"`` reads a synthetic MNIST written by ``synthetic_root`` (the
four IDX files at full size, seven-segment digits) and trains tiny budgets on it; only tests marked
``slow`` may read the real MNIST (``mnist_root``, ``mnist``: $MNIST_ROOT, then ./data, then
../shared/mnist). A fast test that asks for the real data is a collection error.
"""

from __future__ import annotations

import fcntl
import gc
import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# (signal, the exit status a command stopped by it ends with, the line it says)
STOPPED_BY = [
    (signal.SIGINT, 130, "interrupted (SIGINT)"),
    (signal.SIGTERM, 143, "terminated (SIGTERM)"),
]
REAL_DATA = {"mnist_root", "mnist", "real_trained_run"}
MNIST_ROOT = os.environ.get("MNIST_ROOT")  # as the session started, before any test changed it
# An execution set in full: `hardware.decide` takes it as given, with no CPU probe to run
PLAIN_CPU = {"device": "cpu", "precision": "fp32", "channels_last": False}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tier never reads the real MNIST: a test that does must be marked ``slow``. The
    soak repeats run only when ``-m`` names them (``-m soak``): ``-m slow`` leaves them out."""
    for item in items:
        real = REAL_DATA & set(getattr(item, "fixturenames", ()))
        if real and item.get_closest_marker("slow") is None:
            raise pytest.UsageError(
                f"{item.nodeid} uses {', '.join(sorted(real))} (real MNIST) but is not marked "
                "slow; use the synthetic set (synthetic_root, synthetic) or mark it slow"
            )
    if "soak" not in (config.getoption("markexpr") or ""):
        soak = [item for item in items if item.get_closest_marker("soak")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C is a KeyboardInterrupt here and in every process a test starts, even when pytest
    itself was started in the background (``nohup pytest &`` ignores SIGINT, and an ignored
    signal stays ignored through ``exec``): the signal tests test the handlers, not the shell."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    share_the_cores()
    temporaries_in_memory()
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        gc.disable()  # a process that collects and runs tests: see pytest_collection_finish


def pytest_collection_finish(session: pytest.Session) -> None:
    """A process that collected many tests (each xdist worker of a tier collects them all)
    imports the large libraries and freezes them (``freeze_the_libraries``); for a file or two of
    light tests the imports would cost more (2-4 s) than the collections they save. Collection
    itself, which imports torch, runs with the cyclic garbage collector off."""
    if len(session.items) >= FREEZE_FROM:
        freeze_the_libraries()
    gc.enable()


RAM_DISK = Path("/dev/shm")
# bytes free it must have: a session of the fast tier wrote 0.5 GiB in all (each worker's
# synthetic MNIST, 53 MB, and its copies), a test's files gone when it passes
# (``tmp_path_retention_policy``)
RAM_DISK_ROOM = 1 << 30


def temporaries_in_memory() -> None:
    """The tests' temporary files (``tmp_path``, ``tempfile``, in every process a test starts)
    go to the RAM disk where there is one with room: the suite syncs the run directories and
    studies it writes, and a disk's sync (about 7 ms on this project's VMs) cost the fast tier
    about 5 s of its 80 (docs/testing.md). A TMPDIR of the user's own is kept."""
    if "TMPDIR" in os.environ or not os.access(RAM_DISK, os.W_OK):
        return
    room = os.statvfs(RAM_DISK)
    if room.f_bavail * room.f_frsize >= RAM_DISK_ROOM:
        os.environ["TMPDIR"] = tempfile.tempdir = str(RAM_DISK)


def share_the_cores() -> None:
    """Each of pytest-xdist's workers, and every process its tests start, computes on its share
    of the cores: two workers of two threads each on two cores took 11% longer than one thread
    each (torch's default is one thread per core, in every process). Set before torch loads;
    an OMP_NUM_THREADS of the user's own is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


FREEZE_FROM = 200  # tests collected by a worker; a tier has hundreds
# what every worker of the fast tier imports: the libraries' objects are most of its heap
LIBRARIES = ("torch", "torch._dynamo", "timm", "optuna", "sqlalchemy.orm", "pandas", "scipy.stats")
LIBRARIES += ("matplotlib.pyplot",)


def freeze_the_libraries() -> None:
    """Import the large libraries while the cyclic garbage collector is off (``pytest_configure``
    turned it off), then move their objects out of its reach (``gc.freeze``). Imported test by
    test, the heap grew by a quarter time and again, and each growth cost a full collection over
    everything: 4.3-5.8 s a worker went to 17-19 of them. Frozen, later full collections pass
    over the tests' own objects only (1.1-1.8 s a worker), and the fast tier's user CPU time was
    a median 9% lower over ten A/B pairs on the 2-core Xeon (0-14% lower in nine, 2% higher in
    one). Modules live as long as the process anyway; what freezing keeps alive besides is the
    few cycles an import leaves behind."""
    import importlib

    for name in LIBRARIES:
        importlib.import_module(name)
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CPU-probe cache of the session's own (``benchmark.hardware``): tests neither read nor
    write the user's, and the command-line tests they start share it through the environment."""
    from benchmark import hardware

    path = tmp_path_factory.mktemp("probe-cache")
    before = os.environ.get("DIGITSUM_CACHE")
    os.environ["DIGITSUM_CACHE"] = str(path)
    # ``auto`` in tests is plain fp32 on every machine, without a probe taking seconds of a busy
    # machine per session (the probe itself is tested against its own caches)
    figures = {"fp32": 1000.0, "fp32+channels_last": 1000.0}
    key = hardware.machine_key()
    records = {key: hardware.probe_record(figures, 1.0, key)}
    records |= {k: hardware.probe_record(figures, 1.0, k) for k in thread_keys()}
    hardware.write_cache(hardware.cache_path(), records)
    yield path
    if before is None:
        del os.environ["DIGITSUM_CACHE"]
    else:
        os.environ["DIGITSUM_CACHE"] = before


def thread_keys() -> list[str]:
    """The probe cache's machine keys for every thread count a test may set (``--threads 1``
    and the like): the record is per thread count, and without one a run at another count than
    the session's would probe for real (seconds, and on a busy machine a figure of its own)."""
    import torch

    from benchmark import hardware

    before = torch.get_num_threads()
    keys = []
    try:
        for n in range(1, max(os.cpu_count() or 1, before, 2) + 1):
            torch.set_num_threads(n)
            keys.append(hardware.machine_key())
    finally:
        torch.set_num_threads(before)
    return keys


# ------------------------------------------------------------------------------- data sets

SEGMENTS = ["abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg"]


def digit_glyphs(stroke: int) -> list[list[list[int]]]:
    """The ten digits as seven-segment glyphs, MNIST's way: a 20-pixel-high box in a 28x28
    field, centre of mass at the centre (so ``predict``'s preprocessing gives them back)."""
    import numpy as np

    glyphs = np.zeros((10, 28, 28), np.uint8)
    top, mid, bottom, left, right = 4, 13 - stroke // 2, 24 - stroke, 8, 20 - stroke
    rows = {"a": top, "g": mid, "d": bottom}
    cols = {"f": (left, top, mid), "b": (right, top, mid), "e": (left, mid, bottom)}
    cols["c"] = (right, mid, bottom)
    for digit, segments in enumerate(SEGMENTS):
        for s in segments:
            if s in rows:
                glyphs[digit, rows[s] : rows[s] + stroke, left : right + stroke] = 255
            else:
                x, y0, y1 = cols[s]
                glyphs[digit, y0 : y1 + stroke, x : x + stroke] = 255
        ys, xs = np.nonzero(glyphs[digit])
        shift = (round(13.5 - ys.mean()), round(13.5 - xs.mean()))
        glyphs[digit] = np.roll(glyphs[digit], shift, axis=(0, 1))
    return glyphs


def write_synthetic_mnist(root: Path, seed: int = 0) -> Path:
    """The four MNIST IDX files under ``root/MNIST/raw``, at MNIST's sizes (so every check of
    ``benchmark.data`` applies), holding seven-segment digits: in training, two stroke widths
    moved up to 2 pixels and dimmed down to half; in the test file, the centred glyphs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    variants = np.stack([digit_glyphs(2), digit_glyphs(3)], 1)  # (10, 2, 28, 28)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, moved in (("train", 60_000, True), ("t10k", 10_000, False)):
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        images = variants[labels, rng.integers(0, 2, count)]
        if moved:  # one roll per offset, over the images drawn for it
            offsets = rng.integers(-2, 3, (count, 2))
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    at = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
                    images[at] = np.roll(images[at], (dy, dx), axis=(1, 2))
            light = rng.integers(128, 256, count, dtype=np.uint16)[:, None, None]
            images = (images * light >> 8).astype(np.uint8)
        head = np.array([2051, count, 28, 28], ">u4").tobytes()
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(head + images.tobytes())
        head = np.array([2049, count], ">u4").tobytes()
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(head + labels.tobytes())
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic MNIST root (``write_synthetic_mnist``), written once per session."""
    return write_synthetic_mnist(tmp_path_factory.mktemp("synthetic-mnist"))


@pytest.fixture(scope="session")
def synthetic(synthetic_root: Path):
    """Its splits, loaded once per session by the real loader, on the CPU."""
    from benchmark.data import load_mnist

    return load_mnist(synthetic_root, download=False)


@contextmanager
def plugins_undone() -> Iterator[None]:
    """Plug-ins loaded in the block (installed entry points included) are unloaded at its end:
    the registries, ``plugins``' record of what it loaded and warned about, and the plug-in
    modules, as they were before."""
    from architectures import ENCODERS, FUSIONS
    from benchmark import plugin_checks, plugins

    registries = [(registry, dict(registry.entries)) for registry in (ENCODERS, FUSIONS)]
    loaded, warned, modules = dict(plugins._loaded), set(plugins._warned), set(sys.modules)
    entry_points_done, broken = plugins._entry_points_done, set(plugins._broken)
    layouts, path = dict(plugin_checks._no_channels_last), list(sys.path)
    try:
        yield
    finally:
        plugin_checks._no_channels_last.clear()
        plugin_checks._no_channels_last.update(layouts)
        sys.path[:] = path  # a file plug-in's folder, added for its own modules
        plugins._entry_points_done = entry_points_done
        plugins._broken.clear()
        plugins._broken.update(broken)
        for registry, entries in registries:
            registry.entries.clear()
            registry.entries.update(entries)
        plugins._loaded.clear()
        plugins._loaded.update(loaded)
        plugins._warned.clear()
        plugins._warned.update(warned)
        for name in set(sys.modules) - modules:
            if name.startswith("digitsum_plugin_"):
                del sys.modules[name]


@pytest.fixture(autouse=True)
def no_installed_plugins() -> Iterator[None]:
    """A command run in a test finds no installed plug-in (the example, on a machine that
    installed it as the README shows), and what a test registers is gone after it: every test
    finds the built-ins alone, whatever ran before it in its worker and whatever is installed.
    (A test of installed plug-ins lets a command look for them: ``installed_plugins``.)"""
    from benchmark import plugins

    with plugins_undone():
        plugins._entry_points_done = True
        yield


@pytest.fixture
def installed_plugins() -> None:
    """The next command in this test loads the installed plug-ins, as outside the tests."""
    from benchmark import plugins

    plugins._entry_points_done = False


@pytest.fixture(autouse=True)
def fast_tier_data(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the fast tier, a command line that finds MNIST by itself ($MNIST_ROOT) finds the
    synthetic set; slow tests see the environment the session started with."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("MNIST_ROOT", str(request.getfixturevalue("synthetic_root")))


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST (slow tests only)."""
    from benchmark.data import candidate_roots, missing_files

    roots = [Path(MNIST_ROOT)] if MNIST_ROOT else []
    for root in roots + candidate_roots("data") + [REPO.parent / "shared" / "mnist"]:
        if not missing_files(root):
            return root.resolve()
    pytest.skip("MNIST not found: set MNIST_ROOT to a folder holding MNIST/raw/*-ubyte")


@pytest.fixture(scope="session")
def mnist(mnist_root: Path):
    """The real splits, loaded once per session, on the CPU (slow tests only)."""
    from benchmark.data import load_mnist

    return load_mnist(mnist_root, download=False)


@pytest.fixture
def small_data(synthetic, monkeypatch: pytest.MonkeyPatch):
    """Synthetic images, few of them, patched in as ``load_mnist``: the CLI trains in a second."""
    from benchmark.data import DigitSumData

    data = DigitSumData(
        synthetic.train.subset(256),
        synthetic.val.subset(100),
        synthetic.test.subset(100),
    )
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *args, **kwargs: data)
    return data


def train_run(data, folder: Path, train_subset: int):
    """A finished gap_cnn x late_sum run of one epoch, val/test cut to 1,000 images."""
    import torch

    from benchmark import hardware, runs
    from benchmark.config import TrainConfig
    from benchmark.data import DigitSumData

    cfg = TrainConfig(
        arch="gap_cnn",
        fusion="late_sum",
        epochs=1,
        train_subset=train_subset,
        batch_size=64,
        lr=8e-3,
        eval_batch_size=500,
    )
    data = DigitSumData(data.train, data.val.subset(1000), data.test.subset(1000))
    threads = torch.get_num_threads()
    try:  # on a shared 2-core machine, one thread is the faster choice
        cfg, ex = hardware.decide(replace(cfg, threads=1))
        run_dir = runs.start_run(cfg, folder)
        runs.execute(cfg, data, run_dir, ex)
    finally:
        torch.set_num_threads(threads)
    return run_dir


@pytest.fixture(scope="session")
def trained_run(synthetic, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A finished run on the synthetic set for the predict and export tests: 48 steps, ~5 s on
    2 cores, and it reads the drawn seven-segment digits right (2,048 images were not enough).
    Trained once per session: pytest-xdist's workers share it through a lock (as xdist's docs
    share a session fixture), and the tests only read it."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # the session's, above each worker's
    folder = shared / "trained"
    with FileLock(shared / "trained.lock"):
        finished = sorted(folder.glob("runs/*/metrics.json"))
        return finished[0].parent if finished else train_run(synthetic, folder, 3072)


@pytest.fixture(scope="session")
def real_trained_run(mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same on real MNIST: 12k images, ~98% digit accuracy (slow tests only)."""
    return train_run(mnist, tmp_path_factory.mktemp("real-trained"), 12_000)


# ------------------------------------------------------------------------------ helpers


def only_run(results: Path) -> Path:
    """The one run directory under ``results`` (fails if there are more)."""
    (run_dir,) = (results / "runs").iterdir()
    return run_dir


def exit_status(argv: list[str]) -> int:
    """``main``'s exit status, whether it returns it or argparse raises ``SystemExit``."""
    from benchmark.cli import main

    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def one_line(text: str) -> str:
    """The one line of an error output (fails on more, or on a traceback)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@contextmanager
def child(code: str, *args: str, ready: str) -> Iterator[subprocess.Popen]:
    """A Python process running ``code`` with ``args``, once it has printed ``ready``; killed
    (if still alive) when the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == ready
        yield proc
    finally:
        proc.kill()
        proc.wait()


# ``child``'s code for a process holding the run directory it is given, as one training in it
HOLDS_RUN = (
    "import sys, time; from pathlib import Path; from benchmark import rundir\n"
    "with rundir.claimed(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
)


def no_data_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the data fails the test: bad input must be refused before that."""
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *a, **k: pytest.fail("data loaded"))


def interrupted_run(run_dir: Path, cfg=None) -> Path:
    """A run directory as an interrupt leaves it: config.json and status.json."""
    from benchmark import files, rundir
    from benchmark.config import TrainConfig

    files.write_json(run_dir / rundir.CONFIG, (cfg or TrainConfig()).to_dict())
    rundir.write_status(run_dir, "interrupted", "stopped by a signal")
    return run_dir


def checkpoint_of(cfg, step: int = 0) -> dict:
    """A valid checkpoint of a fresh training state for ``cfg``."""
    import torch

    from benchmark.hardware import Execution
    from benchmark.trainer import build_state

    state = build_state(cfg, Execution(torch.device("cpu")))
    state.step = step
    return state.state_dict()


def queue_trial(plan, item, **kwargs):
    """A trial of ``plan``'s run queue holding ``item``, as compare's ``suggest_categorical``
    records it; ``kwargs`` go to ``create_trial`` (value, state, user_attrs)."""
    import optuna

    dist = {"item": optuna.distributions.CategoricalDistribution(plan.items())}
    return optuna.trial.create_trial(params={"item": item}, distributions=dist, **kwargs)


def one_pixel_png(fig, stamp: str | None = None) -> bytes:
    """``png_bytes`` without drawing: one blank pixel carrying the stamp ``png_bytes`` would
    give the figure, so an unchanged figure is still read back, not built again (``undrawn``)."""
    import io

    from matplotlib.image import imsave

    buf = io.BytesIO()
    metadata = {"Software": None, **({"Comment": stamp} if stamp else {})}
    imsave(buf, [[[1.0, 1.0, 1.0]]], format="png", metadata=metadata)
    return buf.getvalue()


def leave_undrawn(patch: pytest.MonkeyPatch) -> None:
    """The report's figures are built but not drawn (``one_pixel_png``) while ``patch`` holds:
    for tests of a whole report that read its words, tables and which figures it holds.
    Drawing is most of a report's time; what the figures look like is tested by the tests
    that draw them."""
    for module in ("output", "study_plots"):  # the report's own figures and Optuna's plots
        patch.setattr(f"benchmark.report.{module}.png_bytes", one_pixel_png)


@pytest.fixture
def undrawn(monkeypatch: pytest.MonkeyPatch) -> None:
    """``leave_undrawn`` for one test."""
    leave_undrawn(monkeypatch)


def level_bars(ax) -> list[tuple[float, float]]:
    """The (left, right) ends of the horizontal error bars drawn on ``ax``, sorted."""
    return sorted(
        (round(float(segment[0, 0]), 3), round(float(segment[1, 0]), 3))
        for bars in ax.collections
        for segment in bars.get_segments()
        if segment[0, 1] == segment[1, 1]
    )


def report_markdown(inputs):
    """(the summary, report.md's markdown) of ``inputs``, rendered without drawing the plots:
    for tests that read the report's words and tables (drawing is most of a report's time;
    ``write_report`` itself is tested in test_report.py). No studies or ladder sections."""
    from benchmark.report import answering, build_rungs, render_markdown

    ref, summary = answering(inputs, build_rungs(inputs))
    return summary, render_markdown(inputs, summary, {}, ref)


DEVICE = "cpu: Test CPU (2 threads)"


def cpu_file(results_dir: Path, kind: str, precision: str, suffix: str) -> Path:
    """Where ``bench`` or ``datapath`` on this machine's CPU writes (named after its model)."""
    import torch

    from benchmark.benchfile import results_path

    return results_path(results_dir, kind, torch.device("cpu"), precision, suffix)


VERSIONS = {"python": "3.11.9", "torch": "2.99.0", "torchvision": "0.99.0", "timm": "9.9.9"}


def make_run(
    root: Path,
    name: str,
    *,
    arch: str = "gap_cnn",
    fusion: str = "concat",
    seed: int = 0,
    sum_acc: float = 0.9,
    params: int = 1000,
    tuned: bool = False,
    config_hash: str = "aaaa0000",
    val_curve: tuple[float, ...] = (0.5, 0.8),
    by_class: list[float] | None = None,
) -> Path:
    """A finished run directory as `runs.finish` writes it, with values derived from sum_acc."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    test = {
        "digit_acc": min(sum_acc + 0.01, 1.0),  # fractions, as read_metrics checks
        "sum_acc": sum_acc,
        "joint_acc": sum_acc - 0.01,
        "consistency": min(sum_acc + 0.005, 1.0),
        "pairs": 100000,
        "sum_acc_by_class": by_class if by_class is not None else [sum_acc] * 19,
    }
    metrics = {
        "run_id": name,
        "arch": arch,
        "fusion": fusion,
        "seed": seed,
        "params": params,
        "epochs": len(val_curve),
        "train_seconds": 100.0 + seed,
        "compile_seconds": 0.0,
        "train_images_per_s": 1000.0 * (seed + 1),
        "device": DEVICE,
        "versions": VERSIONS,
        "git_commit": "abc123",
        "config_hash": config_hash,
        "tuned": tuned,
        "config": {"arch": arch, "fusion": fusion, "seed": seed, "epochs": len(val_curve)},
        "val": {"digit_acc": 0.9, "sum_acc": val_curve[-1], "joint_acc": 0.9, "consistency": 0.9},
        "test": test,
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "status.json").write_text(json.dumps({"status": "complete", "message": ""}))
    rows = ["epoch,train_loss,train_sum_acc,val_digit_acc,val_sum_acc,val_joint_acc,lr,seconds"]
    rows += [f"{i},0.1,0.9,0.9,{v},0.9,0.001,10.0" for i, v in enumerate(val_curve, start=1)]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")
    return run_dir


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's versioned directory (newest)."""
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    return Path(found).resolve().parent if found else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on a Unix socket (no TCP), always stopped afterwards.

    initdb refuses to run as root, so as root the server runs as the ``postgres`` user.
    """
    import psycopg2

    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt install postgresql")
    as_owner: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pg-"))  # short: socket paths are limited to ~100 bytes
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        shutil.chown(base, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    pg_ctl = [*as_owner, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [
                *as_owner,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "bench",
                "-N",
            ],
            check=True,
            capture_output=True,
        )
        options = f"-k {base} -c listen_addresses='' -F"
        subprocess.run(
            [*pg_ctl, "-l", str(base / "server.log"), "-w", "-o", options, "start"],
            check=True,
            capture_output=True,
        )
        conn = psycopg2.connect(host=str(base), user="bench", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql+psycopg2://bench@/optuna?host={base}"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """``directory`` read-only while the block runs, as a disk that turns read-only would be
    (root: a read-only bind mount over it; else chmod, which root would pass); yields what a
    write there says."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            directory.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", str(directory)], check=True)


def write_export(
    results: Path,
    epochs: int,
    arch: str = "gap_cnn",
    fusion: str = "concat",
    model_args: dict[str, Any] | None = None,
    trial: int = 0,
    **train: Any,
) -> str:
    """A ``tune`` export of ``arch x fusion`` at ``epochs`` under ``results/tuned``: the defaults
    trial's model arguments (or ``model_args``) and training parameters with ``train`` on top;
    its study's name."""
    from benchmark.config import TrainConfig
    from benchmark.tuning import budget, default_params, split_params, study_name

    cfg = TrainConfig(arch=arch, fusion=fusion, epochs=epochs)
    name = study_name(cfg, None)
    defaults, trained = split_params(default_params(arch, fusion), arch, fusion)
    record = {
        "study": name,
        "trial": trial,
        "value": 0.5,
        "budget": budget(cfg, None),
        "model_args": defaults if model_args is None else model_args,
        "train": {**trained, **train},
    }
    (results / "tuned").mkdir(exist_ok=True)
    (results / "tuned" / f"{name}.json").write_text(json.dumps(record))
    return name


CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")  # the cursor controls rich writes


def screen(raw: str, width: int = 80) -> list[str]:
    """The lines a terminal ``width`` columns wide shows after ``raw`` (the cursor controls rich
    uses: column, erase line, cursor up); a character written past the last column fails."""
    lines, row, col, at = [""], 0, 0, 0
    while at < len(raw):
        found = CSI.match(raw, at)
        if found:
            arg, code = found.groups()
            if code == "G":
                col = int(arg or 1) - 1
            elif code == "K":
                lines[row] = ""
            elif code == "A":
                row = max(row - int(arg or 1), 0)
            at = found.end()
            continue
        char = raw[at]
        at += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            lines.extend([""] * (row + 1 - len(lines)))
        else:
            assert col < width, f"wider than {width} columns: {lines[row]!r}"
            lines[row] = lines[row][:col].ljust(col) + char + lines[row][col + 1 :]
            col += 1
    return lines


def shared_lock_refused(lock: Path) -> bool:
    """Whether another open of ``lock`` is refused even a shared ``flock`` now."""
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
