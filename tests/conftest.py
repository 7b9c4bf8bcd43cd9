"""Shared fixtures. Real-data tests find MNIST like the CLI does ($MNIST_ROOT, then ./data)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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
