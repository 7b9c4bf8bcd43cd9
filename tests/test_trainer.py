"""The trainer's parts taken one at a time: the learning-rate schedule, the step, the losses,
evaluation's mode, the optimizer's groups and the state a resume restores. The runs that go
through all of them are other files' (``test_holdout``, ``test_progress``, ``test_faults``)."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from conftest import PLAIN_CPU
from torch import nn

from benchmark import hardware
from benchmark.config import TrainConfig
from benchmark.data import DigitSumData, to_float
from benchmark.trainer import (
    EpochStats,
    NonFiniteLossError,
    TrainState,
    build_state,
    compute_loss,
    evaluate,
    final_evaluation,
    lr_at,
    smoothed_cross_entropy,
    train,
    train_step,
)

TINY = TrainConfig(
    arch="small_cnn", fusion="late_sum", batch_size=32, train_subset=256, **PLAIN_CPU
)


@pytest.fixture
def tiny(synthetic) -> DigitSumData:
    return DigitSumData(
        synthetic.train.subset(256),
        synthetic.val.subset(64),
        synthetic.test.subset(96),
    )


def test_the_schedules_by_hand() -> None:
    """Warm-up climbs linearly to the peak at its last step; onecycle then falls linearly
    towards 0 at the end, cosine by half a cosine; constant never moves."""
    cfg = TrainConfig(lr=0.1, warmup=0.2, schedule="onecycle")
    rates = [lr_at(cfg, step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(0.1 / 20) and rates[19] == pytest.approx(0.1)
    assert rates[20] == pytest.approx(0.1) and rates[60] == pytest.approx(0.05)
    assert rates[99] == pytest.approx(0.1 / 80)
    assert all(a < b for a, b in zip(rates[:19], rates[1:20], strict=True))
    cosine = replace(cfg, schedule="cosine")
    assert lr_at(cosine, 60, 100) == pytest.approx(0.05) and lr_at(cosine, 40, 100) > 0.05
    assert lr_at(cosine, 5, 100) == pytest.approx(rates[5])  # the same warm-up
    assert {lr_at(replace(cfg, schedule="constant"), s, 100) for s in (0, 50, 99)} == {0.1}
    assert lr_at(replace(cfg, warmup=0.0), 0, 100) == pytest.approx(0.1)


def test_training_steps_at_the_schedules_rate(tiny) -> None:
    cfg, ex = hardware.decide(replace(TINY, epochs=2, schedule="onecycle", warmup=0.25))
    state = train(cfg, tiny, ex, step_every=None)
    total = 2 * (256 // 32)
    last = lr_at(cfg, total - 1, total)
    assert last < cfg.lr / 2  # so that a rate never written would be told apart
    assert [g["lr"] for g in state.optimizer.param_groups] == [last, last]
    assert state.history[-1].lr == last and len(state.history) == 2 and state.step == total


def test_an_epochs_loss_and_accuracy_are_the_means_of_its_steps(tiny) -> None:
    """The last step event of an epoch carries the running means over all its steps; the
    epoch's figures are the same means."""
    cfg, ex = hardware.decide(replace(TINY, epochs=1))
    events = []
    train(cfg, tiny, ex, listen=events.append, step_every=1)
    *steps, epoch = events
    assert len(steps) == 256 // 32 and epoch.stats is not None
    assert epoch.stats.train_loss == pytest.approx(steps[-1].loss)
    assert epoch.stats.train_sum_acc == pytest.approx(steps[-1].sum_acc)
    assert steps[0].loss != pytest.approx(steps[-1].loss)  # a running mean, not one value


def test_a_step_follows_its_own_gradient_only(tiny) -> None:
    """Plain SGD, twice on one batch: the second step moves each weight by lr x the gradient
    at the weights the first left, not by the two gradients summed."""
    cfg, ex = hardware.decide(TINY)
    torch.manual_seed(0)
    state = build_state(cfg, ex)
    state = TrainState(
        state.model.eval(), torch.optim.SGD(state.model.parameters(), lr=0.1), state.generator
    )
    images = to_float(tiny.train.images[:32])
    labels, addends = tiny.train.labels[:32], torch.arange(32) % 10
    train_step(state, cfg, images, labels, addends, ex)
    probe = copy.deepcopy(state.model)
    compute_loss(probe, images, labels, addends, cfg)[0].backward()
    before = [p.detach().clone() for p in state.model.parameters()]
    train_step(state, cfg, images, labels, addends, ex)
    for p, q, old in zip(state.model.parameters(), probe.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), old - 0.1 * q.grad)


class Fixed(nn.Module):
    """A model answering the given logits whatever it is shown."""

    def __init__(self, digit_logits: torch.Tensor, sum_logits: torch.Tensor) -> None:
        super().__init__()
        self.digit_logits, self.sum_logits = digit_logits, sum_logits

    def forward(self, images: torch.Tensor, addends: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.digit_logits, self.sum_logits


def test_the_loss_weighs_the_sum_head_and_the_count_is_of_right_sums() -> None:
    labels, addends = torch.tensor([1, 2, 3, 4]), torch.tensor([9, 0, 5, 5])
    sums = labels + addends
    digit_logits = F.one_hot((labels + 1) % 10, 10).float() * 5  # every digit wrong
    sum_logits = torch.randn(4, 19, generator=torch.Generator().manual_seed(0))
    sum_logits[0] = -5.0
    sum_logits[0, sums[0]] = 5.0  # the first sum right, by a margin
    model, images = Fixed(digit_logits, sum_logits), torch.zeros(4, 1, 28, 28)
    weighted, correct = compute_loss(
        model, images, labels, addends, TrainConfig(sum_loss_weight=0.3)
    )
    alone, _ = compute_loss(model, images, labels, addends, TrainConfig(sum_loss_weight=0.0))
    assert float(alone) == pytest.approx(float(F.cross_entropy(digit_logits, labels)))
    expected = alone + 0.3 * F.cross_entropy(sum_logits, sums)
    assert float(weighted) == pytest.approx(float(expected))
    assert int(correct) == int((sum_logits.argmax(1) == sums).sum()) >= 1
    model = Fixed(F.one_hot(labels, 10).float(), sum_logits)  # every digit right: same count
    assert int(compute_loss(model, images, labels, addends, TINY)[1]) == int(correct)


def test_label_smoothing_smooths_the_sum_loss_as_well_as_the_digit_loss() -> None:
    """--label-smoothing is "label smoothing of both losses": a tuned value that reached the
    digit head alone would train a different model than the one the study recorded."""
    labels, addends = torch.tensor([1, 2, 3, 4]), torch.tensor([9, 0, 5, 5])
    digit_logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(3))
    sum_logits = torch.randn(4, 19, generator=torch.Generator().manual_seed(4))
    model, images = Fixed(digit_logits, sum_logits), torch.zeros(4, 1, 28, 28)
    cfg = TrainConfig(label_smoothing=0.2, sum_loss_weight=0.5)
    loss, _ = compute_loss(model, images, labels, addends, cfg)
    digit = F.cross_entropy(digit_logits, labels, label_smoothing=0.2)
    total = digit + 0.5 * F.cross_entropy(sum_logits, labels + addends, label_smoothing=0.2)
    assert float(loss) == pytest.approx(float(total))


def test_label_smoothing_spreads_over_the_finite_logits_only() -> None:
    """late_sum's impossible sums are -inf: smoothing over the others is cross-entropy with
    label smoothing on the possible columns alone."""
    logits = torch.randn(5, 19, generator=torch.Generator().manual_seed(1))
    logits[:, 10:] = float("-inf")
    target = torch.tensor([0, 3, 9, 4, 7])
    got = smoothed_cross_entropy(logits, target, 0.1)
    want = F.cross_entropy(logits[:, :10], target, label_smoothing=0.1)
    assert torch.isfinite(got) and float(got) == pytest.approx(float(want))
    finite = torch.randn(5, 19, generator=torch.Generator().manual_seed(2))
    want = F.cross_entropy(finite, target, label_smoothing=0.1)
    assert float(smoothed_cross_entropy(finite, target, 0.1)) == pytest.approx(float(want))


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_uses_running_statistics_and_leaves_the_mode(tiny, training: bool) -> None:
    """Batch statistics would make a figure depend on the batch it was computed in, and
    update the running ones; the model comes back in the mode it was in."""
    cfg, ex = hardware.decide(replace(TINY, arch="gap_cnn"))
    model = build_state(cfg, ex).model.train(training)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    running = [m.running_mean.clone() for m in norms]
    first = evaluate(model, tiny.test, ex, 16)
    assert evaluate(model, tiny.test, ex, 64) == first  # batch size changes nothing
    assert all(torch.equal(m.running_mean, r) for m, r in zip(norms, running, strict=True))
    assert model.training is training


def test_per_sum_accuracies_weighted_by_their_pairs_are_the_sum_accuracy(
    trained_run, synthetic
) -> None:
    from benchmark.runs import load_run

    cfg, ex = hardware.decide(TINY)
    test = synthetic.test.subset(200)
    out = evaluate(load_run(trained_run), test, ex, 100, by_class=True)
    true_sums = (test.labels[:, None] + torch.arange(10)).flatten()
    counts = torch.bincount(true_sums, minlength=19).float()
    by_class = torch.tensor(out["sum_acc_by_class"])
    assert out["sum_acc"] > 0.5  # a trained model: the check has hits to count
    assert float((by_class * counts).sum() / counts.sum()) == pytest.approx(out["sum_acc"])


def test_weight_decay_spares_biases_and_norms() -> None:
    cfg, ex = hardware.decide(replace(TINY, arch="gap_cnn", weight_decay=0.05))
    state = build_state(cfg, ex)
    for group in state.optimizer.param_groups:
        shapes = {p.ndim > 1 for p in group["params"]}
        assert shapes == {group["weight_decay"] == 0.05}
    assert sum(len(g["params"]) for g in state.optimizer.param_groups) == len(
        list(state.model.parameters())
    )


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [("adamw", {"betas": (0.8, 0.999)}), ("sgd", {"momentum": 0.8, "nesterov": True})],
)
def test_the_optimizer_takes_the_configured_momentum(
    optimizer: str, expected: dict[str, object]
) -> None:
    """--momentum is SGD's (Nesterov) momentum and AdamW's beta1: a flag the optimizer
    ignored would record runs as trained with a momentum they never had."""
    cfg, ex = hardware.decide(replace(TINY, optimizer=optimizer, momentum=0.8))
    for group in build_state(cfg, ex).optimizer.param_groups:
        assert {key: group[key] for key in expected} == expected


def test_the_seed_sets_the_batch_order_and_addends_not_only_the_weights(tiny) -> None:
    """Seeds are replicates: each must draw its own batches and addends, else the spread
    over seeds leaves out the data order's share of the variance."""
    from benchmark.data import training_batches

    def first_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg, ex = hardware.decide(replace(TINY, seed=seed))
        batches = training_batches(tiny, cfg, ex.memory_format)
        state = build_state(cfg, ex)
        images, labels, addends = next(batches.epoch(state.generator))
        return images, addends, next(state.model.parameters()).detach()

    # torch's generator drawn on in between, as by whatever ran before: the seed sets the weights
    same, again, other = first_batch(1), first_batch(1), first_batch(2)
    assert all(torch.equal(a, b) for a, b in zip(same, again, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(same, other, strict=True))


def test_a_state_restores_both_generators() -> None:
    """Dropout draws from torch's generator, batches, addends and augmentation from the
    run's: a resumed run draws what the uninterrupted one would have."""
    cfg, ex = hardware.decide(TINY)
    state = build_state(cfg, ex)
    saved = state.state_dict()
    want = (torch.rand(3), torch.rand(3, generator=state.generator))
    torch.rand(5), torch.rand(5, generator=state.generator)  # drawn on, as training would
    state.load_state_dict(saved)
    got = (torch.rand(3), torch.rand(3, generator=state.generator))
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_a_state_restores_its_step_history_and_times() -> None:
    """A resumed run goes on from its step, keeps the epochs it had and adds its training and
    compilation times to those before the interruption (metrics.json's, and the throughput)."""
    cfg, ex = hardware.decide(TINY)
    state = build_state(cfg, ex)
    state.step, state.train_seconds, state.compile_seconds = 8, 3.5, 1.25
    state.history = [EpochStats(1, 0.5, 0.25, {"sum_acc": 0.5}, 1e-3, 3.5)]
    resumed = build_state(cfg, ex)
    resumed.load_state_dict(state.state_dict())
    kept = ("step", "train_seconds", "compile_seconds", "history")
    assert [getattr(resumed, name) for name in kept] == [getattr(state, name) for name in kept]


def test_a_state_on_a_gpu_keeps_the_gpu_generator_its_dropout_draws_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On CUDA, dropout draws from the GPU's own generator, which ``build_state`` reseeds: a
    resume that did not restore it replayed the masks of the run's first steps. Stood in for
    here (no GPU); ``test_..._on_a_real_gpu`` below draws on one."""
    cfg, ex = hardware.decide(TINY)
    state = build_state(cfg, ex)
    gpu = torch.device("cuda", 0)
    restored: list[tuple[torch.Tensor, torch.device]] = []
    monkeypatch.setattr(TrainState, "cuda_device", lambda self: gpu)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: torch.tensor([7, device.index]))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append((s, device)))
    saved = state.state_dict()
    state.load_state_dict(saved)
    ((kept, on),) = restored
    assert kept.tolist() == [7, 0] and on == gpu
    monkeypatch.undo()
    assert "cuda_rng" not in build_state(cfg, ex).state_dict()  # a CPU run has none to keep


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_state_on_a_gpu_keeps_the_gpu_generator_on_a_real_gpu() -> None:
    cfg, ex = hardware.decide(replace(TINY, device="cuda"))
    state = build_state(cfg, ex)
    saved = state.state_dict()
    want = torch.rand(3, device=ex.device)
    torch.rand(5, device=ex.device)
    state.load_state_dict(saved)
    assert torch.equal(torch.rand(3, device=ex.device), want)


def test_a_diverged_epoch_is_an_error_even_with_no_listener(tiny) -> None:
    """The listener's step check is not the only one: training with none stops too."""
    cfg, ex = hardware.decide(replace(TINY, epochs=1, lr=1e30, schedule="constant"))
    with pytest.raises(NonFiniteLossError, match="non-finite loss in epoch 1"):
        train(cfg, tiny, ex, listen=None)


@pytest.mark.parametrize(("every", "said"), [(2, "steps 5-6"), (1, "step 5")])
def test_a_divergence_names_the_steps_since_the_last_finite_look(
    tiny, monkeypatch: pytest.MonkeyPatch, every: int, said: str
) -> None:
    """The loss is looked at every ``step_every`` steps: one non-finite from step 5 on is
    found at the next look and said to lie in the steps since the last, not from step 1."""
    from benchmark import trainer

    steps = itertools.count(1)

    def diverging_at_step_5(*args: object) -> tuple[torch.Tensor, torch.Tensor]:
        loss, correct = compute_loss(*args)
        return (loss * math.nan if next(steps) >= 5 else loss), correct

    monkeypatch.setattr(trainer, "compute_loss", diverging_at_step_5)
    cfg, ex = hardware.decide(replace(TINY, epochs=1))
    with pytest.raises(NonFiniteLossError, match=f"non-finite loss at epoch 1, {said}, lr "):
        train(cfg, tiny, ex, listen=lambda event: None, step_every=every)


def test_every_step_trains_in_training_mode_whatever_mode_the_model_came_in(
    tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model handed over in evaluation mode (a plug-in's, built so) still trains with its
    dropout and batch statistics on, from the first step."""
    from benchmark import trainer

    modes = []

    def recorded(model: nn.Module, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
        modes.append(model.training)
        return compute_loss(model, *args)

    monkeypatch.setattr(trainer, "compute_loss", recorded)
    cfg, ex = hardware.decide(replace(TINY, epochs=1))
    state = build_state(cfg, ex)
    state.model.eval()
    train(cfg, tiny, ex, state=state, step_every=None)
    assert modes == [True] * (256 // 32)


def test_the_first_compiled_steps_time_is_compilation_not_training(
    tiny, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step that compiles is timed apart: its time is compile_seconds, and the epoch's
    training time (the throughput's) is the rest. The clock is a stand-in read in order: epoch
    start, the compiling step's start and end, epoch end."""
    from types import SimpleNamespace

    from benchmark import trainer

    readings = iter([0.0, 1.0, 11.0, 12.0])
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: next(readings)))
    monkeypatch.setattr(hardware.Execution, "compiled", lambda self, fn: fn)  # no torch.compile
    cfg, ex = hardware.decide(replace(TINY, epochs=1))
    ex = replace(ex, compile=True)
    state = train(cfg, tiny, ex, step_every=None)
    assert (state.compile_seconds, state.train_seconds, state.history[0].seconds) == (10, 2, 2)


def test_the_final_evaluation_reads_validation_and_test_each_from_its_own_split(tiny) -> None:
    cfg, ex = hardware.decide(TINY)
    val, test, weights = final_evaluation(build_state(cfg, ex).model, tiny, ex, cfg)
    assert (val["pairs"], test["pairs"]) == (640, 960)  # every image with all 10 addends
    assert "sum_acc_by_class" in test and "sum_acc_by_class" not in val
    assert all(w.device.type == "cpu" for w in weights.values())
