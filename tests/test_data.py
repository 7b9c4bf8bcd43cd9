"""The shared dataset: split sizes, determinism, root resolution, on-device augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.data import (
    RAW_FILES,
    DataError,
    augment,
    candidate_roots,
    has_raw_files,
    load_mnist,
    resolve_root,
    to_float,
)


def test_split_sizes_and_dtypes(mnist) -> None:
    assert len(mnist.train) == 55_000 and len(mnist.val) == 5_000 and len(mnist.test) == 10_000
    for split in (mnist.train, mnist.val, mnist.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
        assert set(split.labels.unique().tolist()) == set(range(10))


def test_split_is_fixed_and_partitions_the_training_set(mnist, mnist_root: Path) -> None:
    again = load_mnist(mnist_root, download=False)
    assert torch.equal(again.train.images, mnist.train.images)
    assert torch.equal(again.val.labels, mnist.val.labels)
    from torchvision.datasets import MNIST

    official = MNIST(str(mnist_root), train=True, download=False)
    # train + val is a permutation of the official training set: same label counts, same pixel sum
    both = torch.cat([mnist.train.labels, mnist.val.labels])
    assert torch.equal(both.bincount(), official.targets.bincount())
    total = mnist.train.images.sum(dtype=torch.int64) + mnist.val.images.sum(dtype=torch.int64)
    assert total == official.data.sum(dtype=torch.int64)
    # not the trivial split (the first 55,000 in file order)
    assert not torch.equal(mnist.val.labels, official.targets[-5_000:])


def test_root_order_flag_then_env_then_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "env"))
    assert candidate_roots(tmp_path / "flag") == [tmp_path / "flag", tmp_path / "env", Path("data")]
    monkeypatch.delenv("MNIST_ROOT")
    assert candidate_roots(None) == [Path("data")]


def test_root_prefers_first_that_holds_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mnist_root: Path
) -> None:
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    assert resolve_root(tmp_path / "empty", download=False) == mnist_root
    assert not has_raw_files(tmp_path / "empty")


def test_missing_data_error_names_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MNIST_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        resolve_root(tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "data/MNIST/raw" in message and "MNIST_ROOT" in message
    assert len(RAW_FILES) == 4


def test_to_float_range() -> None:
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert torch.equal(to_float(x), torch.tensor([[[[0.0, 1.0]]]]))


def test_augment_identity_and_randomness(mnist) -> None:
    images = to_float(mnist.train.images[:16])
    g = torch.Generator().manual_seed(0)
    same = augment(images, 0.0, 0.0, g)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    moved = augment(images, 0.1, 10.0, torch.Generator().manual_seed(0))
    again = augment(images, 0.1, 10.0, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and torch.equal(moved, again)
    assert (moved - images).abs().mean() > 0.01
    # ink is moved, not created: total intensity stays close
    assert moved.sum() == pytest.approx(images.sum().item(), rel=0.1)
