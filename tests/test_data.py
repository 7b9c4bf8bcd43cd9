"""The shared dataset: split sizes, determinism, root resolution, on-device augmentation.

The fast tier reads the synthetic set (``conftest.write_synthetic_mnist``) through the real loader;
damaged IDX files are ``test_damaged_files.py``'s."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import one_line

from benchmark.cli import main
from benchmark.data import (
    RAW_FILES,
    DataError,
    augment,
    candidate_roots,
    load_mnist,
    resolve_root,
    to_float,
)
from benchmark.hardware import decide


def test_split_sizes_and_dtypes(synthetic) -> None:
    assert (
        len(synthetic.train) == 55_000
        and len(synthetic.val) == 5_000
        and len(synthetic.test) == 10_000
    )
    for split in (synthetic.train, synthetic.val, synthetic.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
        assert set(split.labels.unique().tolist()) == set(range(10))


def test_the_checked_training_size_is_the_one_loaded(synthetic) -> None:
    """``TrainConfig.validate`` bounds the batch size by ``MNIST_TRAIN_IMAGES`` without loading
    the data; the IDX header check is what makes that the number of images training sees."""
    from benchmark.config import MNIST_TRAIN_IMAGES

    assert len(synthetic.train) == MNIST_TRAIN_IMAGES
    assert RAW_FILES["train-images-idx3-ubyte"][1] == MNIST_TRAIN_IMAGES + len(synthetic.val)


def test_split_is_fixed_and_partitions_the_training_set(synthetic, synthetic_root: Path) -> None:
    again = load_mnist(synthetic_root, download=False)
    assert torch.equal(again.train.images, synthetic.train.images)
    assert torch.equal(again.val.labels, synthetic.val.labels)
    from torchvision.datasets import MNIST

    official = MNIST(str(synthetic_root), train=True, download=False)
    # train + val is a permutation of the official training set: same label counts, same pixel sum
    both = torch.cat([synthetic.train.labels, synthetic.val.labels])
    assert torch.equal(both.bincount(), official.targets.bincount())
    total = synthetic.train.images.sum(dtype=torch.int64) + synthetic.val.images.sum(
        dtype=torch.int64
    )
    assert total == official.data.sum(dtype=torch.int64)
    # not the trivial split (the first 55,000 in file order), and the same split as the runs
    # committed in results/ saw: these are the file's images at the split's first and last places
    assert not torch.equal(synthetic.val.labels, official.targets[-5_000:])
    ends = {0: 46907, 1: 15931, -2: 1560, -1: 6201}  # SPLIT_SEED's permutation, written out
    for at, index in ends.items():
        split = synthetic.train if at >= 0 else synthetic.val
        assert torch.equal(split.images[at, 0], official.data[index])


def test_root_order_flag_alone_else_env_then_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "env"))
    assert candidate_roots(tmp_path / "flag") == [tmp_path / "flag"]  # no silent fall-back
    assert candidate_roots(None) == [tmp_path / "env", Path("data")]
    monkeypatch.delenv("MNIST_ROOT")
    assert candidate_roots(None) == [Path("data")]


def test_a_data_dir_without_the_files_is_an_error_not_another_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthetic_root: Path
) -> None:
    monkeypatch.setenv("MNIST_ROOT", str(synthetic_root))
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        resolve_root(tmp_path / "empty", download=False)
    assert resolve_root(None, download=False) == synthetic_root


def test_missing_data_error_names_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MNIST_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        resolve_root(None, download=False)
    message = str(info.value)
    assert "data/MNIST/raw" in message and "MNIST_ROOT" in message
    with pytest.raises(DataError, match=str(tmp_path / "nowhere" / "MNIST" / "raw")):
        resolve_root(tmp_path / "nowhere", download=False)


def test_a_root_missing_one_file_names_it_and_never_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, synthetic_root: Path
) -> None:
    """Three of the four files: the fourth is named, whether the root came from --data-dir or
    $MNIST_ROOT; ./data (good here) is not tried, nothing is downloaded over the others."""
    raw = tmp_path / "partial" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in list(RAW_FILES)[:3]:
        (raw / name).symlink_to(synthetic_root / "MNIST" / "raw" / name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(synthetic_root)
    missing = raw / list(RAW_FILES)[3]
    with pytest.raises(DataError, match=f"{missing}: missing"):
        resolve_root(tmp_path / "partial", download=True)
    monkeypatch.setenv("MNIST_ROOT", str(tmp_path / "partial"))
    with pytest.raises(DataError, match=f"{missing}: missing"):
        resolve_root(None, download=True)
    assert sorted(p.name for p in raw.iterdir()) == sorted(list(RAW_FILES)[:3])


@pytest.mark.parametrize("stop", [RuntimeError("<urlopen error timed out>"), KeyboardInterrupt()])
def test_a_download_cut_short_leaves_no_file_the_next_try_would_refuse(
    stop: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision fetches MNIST file by file: the two training files of a download that then
    failed (or was interrupted) were left, and every later try said "2 of the 4 MNIST files
    are there" and would not download. A file of the user's in raw/ stays."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "notes.txt").write_text("the user's")

    class CutShort:  # the training files arrive, then the test files' download fails
        def __init__(self, root: str, train: bool, **kwargs) -> None:
            if not train:
                raise stop
            for name in RAW_FILES:
                if name.startswith("train"):
                    (raw / name).write_bytes(b"")
                    (raw / f"{name}.gz").write_bytes(b"")

    monkeypatch.setattr("torchvision.datasets.MNIST", CutShort)
    with pytest.raises(DataError if isinstance(stop, Exception) else KeyboardInterrupt):
        load_mnist(tmp_path)
    assert [p.name for p in raw.iterdir()] == ["notes.txt"]
    monkeypatch.setattr("torchvision.datasets.MNIST", CutShort)
    with (
        pytest.raises(DataError, match="the download failed")
        if isinstance(stop, Exception)
        else pytest.raises(KeyboardInterrupt)
    ):
        load_mnist(tmp_path)  # tried again, not refused as "2 of the 4 files"


def test_a_download_stopped_after_its_four_files_arrived_keeps_them(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C as torchvision read back what it had fetched: the four files are MNIST's whole,
    and the next run reads them rather than fetching them again."""
    import shutil

    raw = tmp_path / "MNIST" / "raw"

    class Interrupted:
        def __init__(self, root: str, train: bool, **kwargs) -> None:
            shutil.copytree(synthetic_root / "MNIST" / "raw", raw, dirs_exist_ok=True)
            raise KeyboardInterrupt

    monkeypatch.setattr("torchvision.datasets.MNIST", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == sorted(RAW_FILES)
    assert len(load_mnist(tmp_path, download=False).train) == 55_000


def test_empty_data_dir_lists_places_searched_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv("MNIST_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)

    class OfflineMNIST:  # what torchvision does without a network: make raw/, then fail
        def __init__(self, root: str, **kwargs) -> None:
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz:\nTried https://a.example/, got:\n"
                "<urlopen error [Errno -2] Name or service not known>\n"
            )

    monkeypatch.setattr("torchvision.datasets.MNIST", OfflineMNIST)
    with pytest.raises(DataError, match="looked in"):
        load_mnist(empty, download=False)
    code = main(["run", "--data-dir", str(empty), "--results-dir", str(tmp_path / "results")])
    assert code == 2  # a root to give, as a missing file is: not a damaged one (it said 1)
    line = one_line(capsys.readouterr().err)
    assert str(empty / "MNIST" / "raw") in line  # the flag's directory alone: no fall-back
    assert "download failed (urlopen error [Errno -2] Name or service not known); put" in line
    assert list(empty.iterdir()) == []  # the failed download left no empty folders behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    typo = tmp_path / "no" / "such"  # nor the missing parents of a root that does not exist
    assert main(["run", "--data-dir", str(typo), "--results-dir", str(tmp_path / "r")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_to_float_range() -> None:
    x = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert torch.equal(to_float(x), torch.tensor([[[[0.0, 1.0]]]]))


def test_augment_identity_and_randomness(synthetic) -> None:
    images = to_float(synthetic.test.images[:16])  # centred: the moves keep the ink
    g = torch.Generator().manual_seed(0)
    same = augment(images, 0.0, 0.0, g)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    moved = augment(images, 0.1, 10.0, torch.Generator().manual_seed(0))
    again = augment(images, 0.1, 10.0, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and torch.equal(moved, again)
    assert (moved - images).abs().mean() > 0.01
    # ink is moved, not created: total intensity stays close
    assert moved.sum() == pytest.approx(images.sum().item(), rel=0.1)


@pytest.mark.slow
def test_a_run_records_which_mnist_copy_it_read(
    mnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How the copy was found and its files' MD5, never a path of this machine."""
    from dataclasses import replace

    from benchmark import rundir, runs
    from benchmark.config import TrainConfig
    from benchmark.data import RAW_FILES, load_mnist

    monkeypatch.delenv("MNIST_ROOT", raising=False)
    data = load_mnist(str(mnist_root), download=False)
    assert data.source["found_via"] == "--data-dir"
    sums = mnist_root / "MD5SUMS"
    if sums.exists():  # the shared copy comes with its checksums
        expected = dict(line.split()[::-1] for line in sums.read_text().splitlines() if line)
        assert data.source["md5"] == {name: expected[name] for name in RAW_FILES}
    monkeypatch.setenv("MNIST_ROOT", str(mnist_root))
    assert load_mnist(download=False).source["found_via"] == "$MNIST_ROOT"
    small = replace(data, val=data.val.subset(100), test=data.test.subset(100))
    cfg, ex = decide(TrainConfig(epochs=1, train_subset=128, batch_size=64, eval_batch_size=100))
    run_dir = runs.start_run(cfg, tmp_path)
    runs.execute(cfg, small, run_dir, ex)
    recorded = rundir.read_metrics(run_dir)["data"]
    assert recorded == data.source and str(mnist_root) not in (run_dir / "metrics.json").read_text()


def test_an_epochs_batches_hold_each_image_once_with_its_label() -> None:
    """The batches of one epoch are disjoint and drop only the ragged tail, each image with its
    own label and an addend 0-9."""
    from benchmark.data import Batches, Split

    images = torch.zeros(67, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(1, 68)  # each image names itself in its first pixel
    batches = Batches(Split(images, torch.arange(67) % 10), 8, None, None, torch.channels_last)
    seen: list[int] = []
    for x, labels, addends in batches.epoch(torch.Generator().manual_seed(0)):
        assert x.shape == (8, 1, 28, 28)
        index = (x[:, 0, 0, 0] * 255).round().to(torch.int64) - 1
        assert torch.equal(labels, index % 10)
        assert 0 <= int(addends.min()) and int(addends.max()) <= 9
        seen += index.tolist()
    assert len(seen) == batches.steps() * 8 == 64 and len(set(seen)) == 64


def bar_images(n: int) -> torch.Tensor:
    """``n`` copies of a horizontal bar, 12 x 2 pixels, centred where the rotation turns."""
    images = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 13:15, 8:20] = 255
    return images


def centre_and_angle(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's ink centre (row, column) and its principal axis in degrees (0: horizontal)."""
    ink = images[:, 0].float()
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = ink.sum((1, 2))
    y, x = (ink * rows).sum((1, 2)) / mass, (ink * cols).sum((1, 2)) / mass
    dy, dx = rows - y[:, None, None], cols - x[:, None, None]
    mu_xx, mu_yy, mu_xy = ((ink * d).sum((1, 2)) / mass for d in (dx * dx, dy * dy, dx * dy))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * mu_xy, mu_xx - mu_yy))
    return torch.stack([y, x], 1), angle


@pytest.mark.parametrize(("shift", "degrees"), [(0.15, 0.0), (0.0, 30.0)])
def test_augmentation_moves_and_turns_a_digit_as_far_as_its_flags_say(
    shift: float, degrees: float
) -> None:
    """--aug-shift is a fraction of the image side and --aug-degrees degrees, each reaching
    its bound and no further: a tuned augmentation range means what the study recorded."""
    from benchmark.config import TrainConfig
    from benchmark.data import DigitSumData, Split, training_batches

    split = Split(bar_images(256), torch.zeros(256, dtype=torch.long))
    data = DigitSumData(split, split, split)
    cfg = TrainConfig(augment=True, aug_shift=shift, aug_degrees=degrees, batch_size=256)
    batches = training_batches(data, cfg, torch.contiguous_format)
    ((images, _, _),) = batches.epoch(torch.Generator().manual_seed(0))
    centre, angle = centre_and_angle(images)
    moved = (centre - 13.5).abs().amax(1)  # pixels, along the axis moved furthest
    assert float(moved.max()) == pytest.approx(shift * 28, abs=0.6)
    assert float(angle.abs().max()) == pytest.approx(degrees, abs=1.5)


def test_each_epoch_draws_its_batches_in_a_new_shuffled_order() -> None:
    """Unshuffled batches (or the same order every epoch) train on a fixed sequence: the
    order is a seeded permutation, a new one each epoch, the same for the same seed."""
    from benchmark.data import Batches, Split

    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(1, 65)  # each image names itself in its first pixel
    batches = Batches(Split(images, torch.arange(64) % 10), 8, None, None, torch.contiguous_format)

    def orders(seed: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(seed)
        return [
            torch.cat(
                [(x[:, 0, 0, 0] * 255).round().long() - 1 for x, _, _ in batches.epoch(g)]
            ).tolist()
            for g in (generator, generator)
        ]

    first, second = orders(0)
    assert sorted(first) == sorted(second) == list(range(64))
    assert first != list(range(64)) and second != first
    assert orders(0) == [first, second]
