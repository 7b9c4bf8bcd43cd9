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
