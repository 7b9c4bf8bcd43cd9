"""Held-out pairs on the training device and in any batch: the masks and the addends are made
where the labels are (a CUDA run indexes them with CUDA labels), and a batch of one label draws
one addend, not a scalar. The meta device stands in for an accelerator: no GPU is needed."""

from __future__ import annotations

import pytest
import torch

from benchmark import holdout


@pytest.mark.parametrize(
    "make",
    [
        lambda device: holdout.heldout_mask(20, device=device),
        lambda device: holdout.allowed_mask(20, device=device),
    ],
    ids=["heldout_mask", "allowed_mask"],
)
def test_the_pair_masks_are_made_on_the_device_asked_for(make) -> None:
    assert make("meta").device.type == "meta"


@pytest.mark.parametrize("k", [0, 20])
def test_the_addends_are_drawn_on_the_labels_device(k: int) -> None:
    """With or without held-out pairs: a plain draw on the CPU beside CUDA labels failed the
    first batch of a GPU run."""
    labels = torch.zeros(8, dtype=torch.long, device="meta")
    allowed = holdout.allowed_mask(k, device="meta")
    drawn = holdout.sample_addends(labels, allowed, torch.Generator().manual_seed(0))
    assert drawn.device.type == "meta" and drawn.shape == (8,)


@pytest.mark.parametrize("k", [0, 20])
def test_a_batch_of_one_label_draws_one_addend_not_a_scalar(k: int) -> None:
    labels = torch.tensor([3])
    drawn = holdout.sample_addends(
        labels, holdout.allowed_mask(k), torch.Generator().manual_seed(0)
    )
    assert drawn.shape == (1,) and drawn.dtype == torch.int64
