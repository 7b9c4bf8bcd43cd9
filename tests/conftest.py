"""Shared fixtures. Real-data tests find MNIST like the CLI does ($MNIST_ROOT, then ./data)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CPU-probe cache of the session's own (``benchmark.hardware``): tests neither read nor
    write the user's, and the command-line tests they start share it through the environment."""
    path = tmp_path_factory.mktemp("probe-cache")
    before = os.environ.get("DIGITSUM_CACHE")
    os.environ["DIGITSUM_CACHE"] = str(path)
    yield path
    if before is None:
        del os.environ["DIGITSUM_CACHE"]
    else:
        os.environ["DIGITSUM_CACHE"] = before


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    from benchmark.data import candidate_roots, has_raw_files

    for root in candidate_roots(None) + [REPO.parent / "shared" / "mnist"]:
        if has_raw_files(root):
            return root.resolve()
    pytest.skip("MNIST not found: set MNIST_ROOT to a folder holding MNIST/raw/*-ubyte")


@pytest.fixture(scope="session")
def mnist(mnist_root: Path):
    """The real splits, loaded once per session, on the CPU."""
    from benchmark.data import load_mnist

    return load_mnist(mnist_root, download=False)


@pytest.fixture
def small_data(mnist, monkeypatch: pytest.MonkeyPatch):
    """Real images, few of them, patched in as ``load_mnist``: the CLI trains in a second."""
    from benchmark.data import DigitSumData

    data = DigitSumData(
        mnist.train.subset(256), mnist.val.subset(100), mnist.test.subset(100), mnist.root
    )
    monkeypatch.setattr("benchmark.data.load_mnist", lambda *args, **kwargs: data)
    return data


@pytest.fixture(scope="session")
def trained_run(mnist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished gap_cnn x late_sum run (1 epoch on 12k images, ~98% digit accuracy) for the
    predict and export tests; val/test cut to 1,000 images to keep the final evaluation short."""
    import torch

    from benchmark import runs
    from benchmark.config import TrainConfig
    from benchmark.data import DigitSumData

    cfg = TrainConfig(
        arch="gap_cnn",
        fusion="late_sum",
        epochs=1,
        train_subset=12_000,
        batch_size=64,
        lr=8e-3,
        eval_batch_size=500,
    )
    data = DigitSumData(mnist.train, mnist.val.subset(1000), mnist.test.subset(1000), mnist.root)
    run_dir = runs.start_run(cfg, tmp_path_factory.mktemp("trained"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine, one thread is the faster choice
    try:
        runs.execute(cfg, data, run_dir)
    finally:
        torch.set_num_threads(threads)
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
