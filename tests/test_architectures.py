"""Registry-wide tests: every encoder x every fusion, plus the registry's own behaviour."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest
import torch
import torch.nn.functional as F

import architectures as A
from architectures.fusions import NUM_SUMS, shifted_sum_logits
from architectures.registry import Entry

PAIRS = [(e, f) for e in A.ENCODERS.names() for f in A.FUSIONS.names()]


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize(("arch", "fusion"), PAIRS)
def test_forward_backward(arch: str, fusion: str) -> None:
    torch.manual_seed(0)
    model = A.create_model(arch, fusion)
    images, addends = batch()
    digit, total = model(images, addends)
    assert digit.shape == (6, 10) and total.shape == (6, NUM_SUMS)
    assert torch.isfinite(digit).all()
    assert not torch.isnan(total).any()
    labels = torch.randint(0, 10, (6,))
    loss = F.cross_entropy(digit, labels) + F.cross_entropy(total, labels + addends)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(("arch", "fusion"), PAIRS)
def test_all_addends_matches_per_addend_forward(arch: str, fusion: str) -> None:
    torch.manual_seed(0)
    model = A.create_model(arch, fusion).eval()
    images, _ = batch(4)
    digit_all, sum_all = model.forward_all_addends(images)
    assert digit_all.shape == (4, 10, 10) and sum_all.shape == (4, 10, NUM_SUMS)
    with torch.no_grad():
        for a in (0, 3, 9):
            digit, total = model(images, torch.full((4,), a))
            torch.testing.assert_close(digit_all[:, a], digit, rtol=1e-4, atol=1e-4)
            finite = torch.isfinite(total)
            assert torch.equal(finite, torch.isfinite(sum_all[:, a]))
            torch.testing.assert_close(sum_all[:, a][finite], total[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", A.ENCODERS.names())
def test_late_sum_is_exact_shift_of_digit_distribution(arch: str) -> None:
    torch.manual_seed(0)
    model = A.create_model(arch, "late_sum").eval()
    images, addends = batch(8)
    with torch.no_grad():
        digit, total = model(images, addends)
    logp = F.log_softmax(digit, dim=1)
    for i, a in enumerate(addends.tolist()):
        torch.testing.assert_close(total[i, a : a + 10], logp[i])
        outside = torch.cat([total[i, :a], total[i, a + 10 :]])
        assert torch.isneginf(outside).all()
    assert torch.equal(total.argmax(1), digit.argmax(1) + addends)
    torch.testing.assert_close(total.exp().sum(1), torch.ones(8))


def test_shifted_sum_logits_known_values() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.5] + [0.0] * 8]).clamp(min=1e-30))
    out = shifted_sum_logits(logp, torch.tensor([9]))
    assert out[0, 9].exp().item() == pytest.approx(0.5)
    assert out[0, 10].exp().item() == pytest.approx(0.5)
    assert torch.isneginf(out[0, :9]).all()


def test_timm_encoder_through_prefix() -> None:
    model = A.create_model("timm:test_resnet", "concat")
    images, addends = batch(2)
    digit, total = model(images, addends)
    assert digit.shape == (2, 10) and total.shape == (2, NUM_SUMS)
    (digit.sum() + total.sum()).backward()
    assert model.encoder.num_features > 0
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1


# timm models whose pooled features pass through a head before the classifier, so the features
# they return are wider than their num_features: MambaOut 64 -> 256, MobileNetV3 288 -> 1,024,
# LCNet 176 -> 1,280; and one without such a head.
TIMM_HEADS = ["timm:test_mambaout", "timm:mobilenetv3_small_050", "timm:lcnet_035"]


@pytest.mark.parametrize("fusion", A.FUSIONS.names())
@pytest.mark.parametrize("arch", [*TIMM_HEADS, "timm:test_resnet"])
def test_timm_encoders_with_a_head_after_pooling_fit_every_fusion(arch: str, fusion: str) -> None:
    model = A.create_model(arch, fusion).eval()
    images, addends = batch(2)
    with torch.no_grad():
        features = model.encoder(images)
        digit, total = model(images, addends)
    assert features.shape == (2, model.encoder.num_features)
    assert digit.shape == (2, 10) and total.shape == (2, NUM_SUMS)


@pytest.mark.parametrize(
    ("arch", "fusion"),  # every fusion once, the two ViTs in turn (each build is 0.1-0.3 s)
    [
        (["timm:test_vit", "timm:test_vit_relpos"][i % 2], f)
        for i, f in enumerate(A.FUSIONS.names())
    ],
)
def test_a_timm_vit_is_sized_for_mnist_by_img_size_and_patch_size(arch: str, fusion: str) -> None:
    """timm builds its ViTs for larger images (160 pixels for these): they refuse 28x28 with
    their defaults, and train on it once told img_size=28 and a patch_size that divides it
    (7: a 4x4 grid of patches)."""
    assert {"img_size": None, "patch_size": None}.items() <= A.ENCODERS.get(arch).defaults.items()
    hint = f"({arch} takes its image size as img_size; it runs on 28x28 with --model-arg "
    with pytest.raises(
        A.CannotRunError, match=re.escape(hint + "img_size=28 --model-arg patch_size=7)")
    ) as refused:
        A.check_model(arch, fusion, {})
    assert refused.value.sizes == {"img_size": 28, "patch_size": 7}  # what a grid's line names
    A.check_model(arch, fusion, {"img_size": 28, "patch_size": 7})
    model = A.create_model(arch, fusion, img_size=28, patch_size=7)
    assert model.encoder.patch_embed.grid_size == (4, 4)
    images, addends = batch(2)
    digit, total = model(images, addends)
    assert digit.shape == (2, 10) and total.shape == (2, NUM_SUMS)
    (digit.sum() + total.sum()).backward()


def test_the_sizes_hint_is_tried_before_it_is_given() -> None:
    """A model that takes img_size but fails at 28 pixels with every patch size tried (Twins'
    stages shrink 28 pixels below a kernel) is told so, not sent to try them."""
    with pytest.raises(A.CannotRunError) as refused:
        A.check_model("timm:twins_svt_small", "concat", {})
    assert refused.value.sizes is None
    assert str(refused.value).endswith(
        "(timm:twins_svt_small takes its image size as img_size, but fails at img_size=28 "
        "with patch_size 7, 4 or 14 too)"
    )


def test_timm_sizes_are_offered_only_where_the_model_takes_them() -> None:
    """A ResNet takes no img_size; MLP-Mixer's timm entry sets its patch_size itself (passing
    one fails inside timm), so only img_size is offered; a ConvNeXt's patch_size is its stem."""
    sized = {
        name: {k for k in A.ENCODERS.get(name).defaults if not k.endswith("_rate")}
        for name in ("timm:test_resnet", "timm:mixer_s16_224", "timm:test_convnext")
    }
    assert sized == {
        "timm:test_resnet": set(),
        "timm:mixer_s16_224": {"img_size"},
        "timm:test_convnext": {"patch_size"},
    }
    with pytest.raises(ValueError, match="unknown hyperparameter 'img_size' for timm:test_resnet"):
        A.create_model("timm:test_resnet", "concat", img_size=28)


def test_unknown_names_list_valid_ones() -> None:
    with pytest.raises(A.UnknownNameError, match="valid: gap_cnn, small_cnn, tiny_resnet"):
        A.create_model("resnet9000", "concat")
    with pytest.raises(A.UnknownNameError, match="concat"):
        A.create_model("gap_cnn", "nope")
    with pytest.raises(A.UnknownNameError, match="timm model"):
        A.create_model("timm:definitely_not_a_model", "concat")
    with pytest.raises(A.UnknownNameError, match="valid: gap_cnn, small_cnn, tiny_resnet"):
        A.ENCODERS.get("timm:")  # the prefix alone names no timm model


def test_select_comma_wildcards_and_all() -> None:
    assert A.ENCODERS.select("all") == A.ENCODERS.names()
    assert A.ENCODERS.select("*cnn") == ["gap_cnn", "small_cnn"]
    assert A.ENCODERS.select("tiny_resnet,gap_cnn,tiny_resnet") == ["tiny_resnet", "gap_cnn"]
    assert A.FUSIONS.select("late_sum") == ["late_sum"]
    with pytest.raises(A.UnknownNameError, match="matches nothing"):
        A.FUSIONS.select("zz*")


@pytest.mark.parametrize(
    "registry, name",
    [(A.ENCODERS, n) for n in A.ENCODERS.names()] + [(A.FUSIONS, n) for n in A.FUSIONS.names()],
    ids=[*A.ENCODERS.names(), *A.FUSIONS.names()],
)
def test_a_mistyped_name_is_told_the_name_it_likely_meant(registry, name: str) -> None:
    """A hyphen for the underscore (tiny-resnet), or a letter too many, names the entry."""
    for typo in {name.replace("_", "-"), name + "s"} - {name}:
        with pytest.raises(A.UnknownNameError, match=f"'{typo}' \\(did you mean {name}\\?\\)"):
            registry.get(typo)


def test_a_timm_wildcard_selects_from_timms_list_and_all_leaves_timm_out() -> None:
    small = [
        "timm:mobilenetv3_small_050",
        "timm:mobilenetv3_small_075",
        "timm:mobilenetv3_small_100",
    ]
    assert A.ENCODERS.select("gap_cnn,timm:mobilenetv3_small*") == ["gap_cnn", *small]
    assert A.ENCODERS.select("timm:lcnet_0[35]?") == ["timm:lcnet_035", "timm:lcnet_050"]
    assert not any(name.startswith("timm:") for name in A.ENCODERS.select("all"))
    assert A.ENCODERS.select("*resnet") == ["tiny_resnet"]  # a bare wildcard: the registered ones
    with pytest.raises(A.UnknownNameError, match="'timm:no_such_family\\*' matches nothing"):
        A.ENCODERS.select("timm:no_such_family*")


def test_overrides_route_to_encoder_and_fusion() -> None:
    model = A.create_model("gap_cnn", "concat", width=8, hidden=32, depth=None)
    assert model.encoder.num_features == 32  # 4 x width
    assert model.fusion.digit_head.in_features == 32
    assert A.ENCODERS.get("gap_cnn").defaults["depth"] == 2
    with pytest.raises(ValueError, match="unknown hyperparameter 'bogus'.*valid: depth"):
        A.create_model("gap_cnn", "concat", bogus=1)


def test_entries_have_search_spaces_with_valid_keys() -> None:
    optuna = pytest.importorskip("optuna")
    for registry in (A.ENCODERS, A.FUSIONS):
        for name in registry.names():
            entry = registry.get(name)
            assert entry.search_space is not None, name
            params = entry.search_space(optuna.trial.FixedTrial(_first_choices(entry)))
            assert set(params) <= set(entry.defaults), (name, params)


def _first_choices(entry: A.Entry) -> dict:
    """A FixedTrial answer for every suggest call: probe the space with a recording trial."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    entry.search_space(trial)
    return dict(trial.params)


def test_register_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        A.register_encoder("gap_cnn")(lambda: None)


def test_check_model_builds_a_model_once_per_process_and_refuses_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A grid or a protocol checks the same model again and again: it is built once. A model
    that cannot run is refused at every check, and a new registration is checked anew."""
    import architectures.model as model

    monkeypatch.setattr(model, "_PASSED", set())
    built: list[tuple[str, str, dict]] = []
    create = model.create_model

    def counting(arch: str, fusion: str, **overrides: object) -> A.DigitSumModel:
        built.append((arch, fusion, overrides))
        if overrides.get("width") == 3:
            raise RuntimeError("no room")
        return create(arch, fusion, **overrides)

    monkeypatch.setattr(model, "create_model", counting)
    for _ in range(2):
        A.check_model("gap_cnn", "concat", {"width": 5})
    A.check_model("gap_cnn", "late_sum", {"width": 5})
    A.check_model("gap_cnn", "concat", {"width": 6})
    assert len(built) == 3
    for _ in range(2):
        with pytest.raises(ValueError, match="width=3 cannot run on 1x28x28 images: .*no room"):
            A.check_model("gap_cnn", "concat", {"width": 3})
    assert len(built) == 5
    entry = A.ENCODERS.get("gap_cnn")
    again = dataclasses.replace(entry, factory=lambda **kw: entry.factory(**kw))
    monkeypatch.setitem(A.ENCODERS.entries, "gap_cnn", again)  # as if registered anew
    A.check_model("gap_cnn", "concat", {"width": 5})
    assert len(built) == 6


def test_a_timm_model_whose_module_takes_no_more_is_not_built_to_find_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Listing a family of VGGs builds each once (for its width), not a second time for what it
    takes: no class of their module takes drop_path_rate or a size. A ResNet's module takes
    drop_path_rate and a ViT's the sizes as well, so their entries build to find which."""
    import timm

    from architectures.encoders import _timm_args

    built: list[str] = []
    real = timm.create_model
    monkeypatch.setattr(
        timm, "create_model", lambda name, **kw: built.append(name) or real(name, **kw)
    )
    assert _timm_args.__wrapped__("vgg11") == ("drop_rate",) and built == []
    assert _timm_args.__wrapped__("resnet18") == ("drop_rate", "drop_path_rate")
    assert built == ["resnet18"]
    every = ("drop_rate", "drop_path_rate", "img_size", "patch_size")
    assert _timm_args.__wrapped__("test_vit") == every and built == ["resnet18", "test_vit"]


def test_a_timm_model_that_refuses_drop_path_rate_is_not_offered_it() -> None:
    """A block of GhostNet's module takes drop_path_rate, its model class does not: the build
    refuses it, so its entry neither offers nor tunes it, and the model builds."""
    import optuna

    entry = A.ENCODERS.get("timm:ghostnet_050")
    assert entry.defaults == {"drop_rate": 0.0}
    trial = optuna.create_study().ask()
    assert set(entry.search_space(trial)) == {"drop_rate"}
    with pytest.raises(ValueError, match="unknown hyperparameter 'drop_path_rate'"):
        A.create_model("timm:ghostnet_050", "concat", drop_path_rate=0.1)
    model = A.create_model("timm:ghostnet_050", "concat", **entry.search_space(trial))
    digits, sums = model(torch.zeros(2, 1, 28, 28), torch.tensor([0, 9]))
    assert digits.shape == (2, 10) and sums.shape == (2, 19)


def test_a_timm_models_stochastic_depth_is_tuned_and_built() -> None:
    """Stochastic depth, timm's regulariser of residual networks, is searched beside dropout,
    and the value reaches the model: its blocks drop paths at the rate asked, none by default."""
    import optuna
    from timm.layers import DropPath

    entry = A.ENCODERS.get("timm:test_resnet")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    space = entry.search_space(trial)
    assert set(space) == {"drop_rate", "drop_path_rate"} and 0 < space["drop_path_rate"] <= 0.3

    def rates(model: torch.nn.Module) -> list[float]:
        return [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]

    assert rates(A.create_model("timm:test_resnet", "concat")) == []
    dropping = rates(A.create_model("timm:test_resnet", "concat", drop_path_rate=0.2))
    assert dropping and max(dropping) == pytest.approx(0.2)


def test_a_timm_model_that_takes_no_drop_rate_is_offered_none_and_tunes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gemma 4's ViT encoders (timm 1.0.31) take no drop_rate: passing one was a TypeError that
    ended ``list --encoders 'timm:*'`` in a traceback. Such a model's entry has no drop_rate,
    its factory passes none and its search space is empty. (A ViT stands in for it here, its
    drop_rate refused the way Gemma's is, so that the test needs no particular timm release.)"""
    import optuna
    import timm

    from architectures.encoders import _timm_args, _timm_entry

    real = timm.create_model

    def no_drop_rate(name: str, **kw):
        if "drop_rate" in kw:
            raise TypeError("VitEncoder.__init__() got an unexpected keyword argument 'drop_rate'")
        return real(name, **kw)

    monkeypatch.setattr(timm, "create_model", no_drop_rate)
    assert _timm_args.__wrapped__("test_vit") == ("drop_path_rate", "img_size", "patch_size")
    monkeypatch.setattr("architectures.encoders._timm_args", _timm_args.__wrapped__)
    entry = _timm_entry("timm:test_vit")
    assert entry.defaults == {"drop_path_rate": 0.0, "img_size": None, "patch_size": None}
    assert entry.factory(img_size=28, patch_size=7).num_features > 0  # given no drop_rate
    trial = optuna.create_study().ask()
    assert set(entry.search_space(trial)) == set(trial.params) == {"drop_path_rate"}


def test_list_shows_a_model_that_cannot_be_built_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A model that fails to build gets a row saying why, the others are listed, and a line
    names it: one of 1,371 timm models no longer ends the listing."""
    from benchmark.cli import main

    def fails(**kwargs) -> None:
        raise TypeError("Broken.__init__() got an unexpected keyword argument 'drop_rate'")

    for registry, name in ((A.ENCODERS, "tiny_resnet"), (A.FUSIONS, "film")):
        broken = dataclasses.replace(registry.entries[name], factory=fails)
        monkeypatch.setitem(registry.entries, name, broken)
    argv = ["list", "--encoders", "tiny_resnet,small_cnn,gap_cnn", "--fusions", "film,late_sum"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("cannot be built: TypeError: Broken.__init__() got an unexpected") == 2
    assert "│ small_cnn │ 128 │" in out and "│ late_sum │" in out
    said = "2 of the 3 encoders and 2 fusions listed cannot be built (their rows say why): "
    assert said + "tiny_resnet, film" in out


@pytest.mark.slow
def test_the_module_shortcut_agrees_with_building_for_every_timm_module() -> None:
    """One model of each of timm's modules: what its entry offers, where the shortcut may leave a
    build out, is what building it tried with both rates and both sizes finds it takes."""
    import timm

    from architectures.encoders import TIMM_SIZES, _timm_args

    every = {"drop_path_rate", *TIMM_SIZES}
    first: dict[str, str] = {}
    for name in timm.list_models():
        first.setdefault(timm.models.model_entrypoint(name).__module__, name)
    wrong = []
    for name in first.values():
        offered = _timm_args.__wrapped__(name)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("architectures.encoders._module_takes", lambda _: every)
            found = _timm_args.__wrapped__(name)
        if offered != found:
            wrong.append((name, offered, found))
    assert len(first) > 50 and wrong == [], (TIMM_SIZES, wrong)


def test_annotated_types_unwrap_optional_only() -> None:
    """``int | None`` and ``Optional[float]`` are checked as their class; a list of ints or a
    union of two classes is left to the factory to judge."""
    from architectures.registry import annotated_types

    def factory(
        a: int = 1,
        b: int | None = None,
        c: typing.Optional[float] = None,  # noqa: UP045 - the older spelling a plug-in may use
        d: list[int] | None = None,
        e: typing.Union[int, str] = 1,  # noqa: UP007
        f: list[int] = (),
    ) -> None: ...

    assert annotated_types(factory) == {"a": int, "b": int, "c": float}


def test_a_timm_entry_is_made_once_so_the_dry_run_builds_its_model_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check_model`` and bench's costs are cached by the entries' factories: a prefix entry
    looked up again is the same entry, so its model is not built again."""
    import timm

    assert A.ENCODERS.get("timm:test_resnet") is A.ENCODERS.get("timm:test_resnet")
    A.check_model("timm:test_resnet", "late_sum", {})
    monkeypatch.setattr(timm, "create_model", lambda *a, **kw: pytest.fail("built again"))
    A.check_model("timm:test_resnet", "late_sum", {})


@pytest.mark.parametrize(
    ("arch", "fusion"),
    [(e, "concat") for e in A.ENCODERS.names()] + [("gap_cnn", f) for f in A.FUSIONS.names()],
)
def test_a_meta_build_has_the_real_models_shapes_and_runs_no_initialiser(
    arch: str, fusion: str
) -> None:
    """``meta_build``: every parameter and buffer as a real build makes it, while no op that
    only writes values reaches the meta device (timm's ViT spent three quarters of its meta
    build there: ``list 'timm:vit_*'`` 91 s, 23 s without)."""
    from torch.overrides import TorchFunctionMode

    from architectures.meta import INITIALISING

    seen: set[str] = set()

    class Ops(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.add(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    with Ops(), A.meta_build():
        meta = A.create_model(arch, fusion)
    assert not seen & INITIALISING and "empty" in seen  # the mode saw the build
    real = A.create_model(arch, fusion)
    shapes = {name: (t.shape, t.dtype) for name, t in real.state_dict().items()}
    assert {name: (t.shape, t.dtype) for name, t in meta.state_dict().items()} == shapes
    assert all(t.is_meta for t in meta.state_dict().values())


def test_a_timm_vit_built_on_meta_skips_its_initialisers() -> None:
    """The same for a timm ViT, whose construction initialises with timm's own trunc_normal_
    (in-place ops, no torch.nn.init call), with the same parameter count."""
    from torch.overrides import TorchFunctionMode

    seen: list[str] = []

    class Ops(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    with Ops(), torch.device("meta"):
        A.create_model("timm:test_vit", "concat", img_size=28, patch_size=7)
    assert {"uniform_", "erfinv_", "mul_"} <= set(seen)  # what a plain meta build runs
    seen.clear()
    with Ops(), A.meta_build():
        meta = A.create_model("timm:test_vit", "concat", img_size=28, patch_size=7)
    assert not {"uniform_", "erfinv_", "mul_"} & set(seen)
    real = A.create_model("timm:test_vit", "concat", img_size=28, patch_size=7)
    assert A.count_params(meta) == A.count_params(real)


def test_the_sizes_the_report_names_are_the_ones_timm_models_take() -> None:
    """The report (which imports no model code) sets a model sized for 28 pixels in the main
    comparison by these names: they must be the ones the registry offers."""
    from architectures.encoders import TIMM_SIZES
    from benchmark.config import SIZING

    assert set(SIZING) == set(TIMM_SIZES)


def fusion_parts(fusion: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """A fusion on 12 features, every weight drawn at random (FiLM's scale and shift start at
    zero, where swapping them or dropping the 1 of the scale changes nothing), and a batch of
    features."""
    torch.manual_seed(0)
    module = A.FUSIONS.get(fusion).factory(12)
    with torch.no_grad():
        for weight in module.parameters():
            weight.normal_()
    return module.eval(), torch.randn(10, 12)


def by_hand(fusion: str, m: torch.nn.Module, f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The fusion's hidden layer, as its docstring writes it."""
    if fusion == "concat":  # [features, one_hot(addend)] -> linear -> relu
        return F.relu(m.body[0](torch.cat([f, F.one_hot(a, 10).float()], dim=1)))
    if fusion == "embed_add":
        return F.relu(m.proj(f) + m.embed.weight[a])
    gamma, beta = m.film.weight[a].chunk(2, dim=1)  # film
    return F.relu(m.proj(f)) * (1 + gamma) + beta


@pytest.mark.parametrize("fusion", ["concat", "embed_add", "film"])
def test_a_hidden_layer_fusion_computes_its_formula_for_every_addend(fusion: str) -> None:
    module, features = fusion_parts(fusion)
    addends = torch.arange(10)
    with torch.no_grad():
        digit, total = module(features, addends)
        h = by_hand(fusion, module, features, addends)
        torch.testing.assert_close(digit, module.digit_head(h))
        torch.testing.assert_close(total, module.sum_head(h))


def test_film_starts_from_the_addend_blind_network() -> None:
    """Its scale and shift start at zero (the docstring's promise): as built, every addend gives
    one image the same logits, and training, not the draw, makes them differ."""
    torch.manual_seed(0)
    module = A.FUSIONS.get("film").factory(12).eval()
    features = torch.randn(1, 12).expand(10, 12)
    with torch.no_grad():
        digit, total = module(features, torch.arange(10))
    torch.testing.assert_close(digit, digit[:1].expand(10, -1))
    torch.testing.assert_close(total, total[:1].expand(10, -1))


def test_the_small_linear_heads_sum_reads_the_digit_logits_and_the_addend() -> None:
    module, features = fusion_parts("small_linear_head")
    addends = torch.arange(10)
    with torch.no_grad():
        digit, total = module(features, addends)
        inputs = torch.cat([digit, F.one_hot(addends, 10).float()], dim=1)
        torch.testing.assert_close(total, module.sum_head(inputs))


DROPPED = [  # every built-in entry with a dropout, by the argument that sets it
    (registry, name, arg)
    for registry, arg in ((A.ENCODERS, "dropout"), (A.FUSIONS, "head_dropout"))
    for name in registry.names()
    if arg in registry.get(name).defaults
]


@pytest.mark.parametrize(
    ("registry", "name", "arg"), DROPPED, ids=[f"{n}-{a}" for _, n, a in DROPPED]
)
def test_dropout_is_the_rate_asked_in_training_and_off_in_evaluation(registry, name, arg) -> None:
    """At rate 0 training is deterministic, at 0.5 two calls differ; evaluation never drops."""
    model = A.create_model(
        name if registry is A.ENCODERS else "gap_cnn",
        name if registry is A.FUSIONS else "concat",
        **{arg: 0.0},
    )
    images, addends = batch(8)

    def twice(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return model(images, addends)[0], model(images, addends)[0]

    first, second = twice(model.train())
    assert torch.equal(first, second)
    dropping = A.create_model(
        name if registry is A.ENCODERS else "gap_cnn",
        name if registry is A.FUSIONS else "concat",
        **{arg: 0.5},
    )
    first, second = twice(dropping.train())
    assert not torch.equal(first, second)
    first, second = twice(dropping.eval())
    assert torch.equal(first, second)


def test_tiny_resnets_stages_work_at_14_7_and_4_pixels() -> None:
    encoder = A.create_model("tiny_resnet", "concat", blocks=2).encoder
    sizes: list[int] = []
    for block in encoder.stages:
        block.register_forward_hook(lambda m, args, out: sizes.append(out.shape[-1]))
    encoder(torch.zeros(2, 1, 28, 28))
    assert sizes == [14, 14, 7, 7, 4, 4]


def test_the_model_normalises_images_as_mnist_was_normalised() -> None:
    """MNIST's mean pixel reaches the encoder as 0, one standard deviation above it as 1."""
    seen: list[torch.Tensor] = []
    model = A.create_model("gap_cnn", "concat")
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    model.features(torch.tensor([0.1307, 0.1307 + 0.3081]).view(2, 1, 1, 1).expand(2, 1, 28, 28))
    torch.testing.assert_close(seen[0][:, 0, 0, 0], torch.tensor([0.0, 1.0]))


def test_parameter_counts_by_hand() -> None:
    """late_sum is one linear layer on gap_cnn's 64 features; gap_cnn's own count is the one
    the committed reference and docs quote."""
    model = A.create_model("gap_cnn", "late_sum")
    assert A.count_params(model.fusion) == 64 * 10 + 10
    assert A.count_params(model.encoder) == 72_016
    assert A.count_params(model) == 72_666


@pytest.mark.parametrize(
    ("key", "value", "accepted"),
    [
        ("dropout", 0.99, True),
        ("dropout", 0, True),  # an int where a float is asked: a number all the same
        ("dropout", 1.0, False),  # the rate's range is open at 1
        ("dropout", float("nan"), False),
        ("depth", 8, True),
        ("depth", 9, False),
        ("depth", True, False),  # a bool is an int to Python, not a depth
        ("depth", 2.0, False),
    ],
)
def test_an_entry_checks_each_value_against_its_type_and_range(
    key: str, value: object, accepted: bool
) -> None:
    entry = A.ENCODERS.get("gap_cnn")
    if accepted:
        assert entry.check(key, value) == value
    else:
        with pytest.raises(ValueError, match=f"^{key}=.* for gap_cnn: expected "):
            entry.check(key, value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_float_with_no_declared_range_is_still_a_finite_number(value: float) -> None:
    """A plug-in may declare no range for a float (``scale``): no range then stops a NaN or an
    infinity, which would train NaN weights; the type check's finiteness must."""

    def scaled(scale: float = 1.0) -> None:  # the factory's annotation gives the type
        return None

    entry = Entry("scaled", scaled, {"scale": 1.0})  # as a plug-in registers it, no ranges
    assert entry.check("scale", -2.5) == -2.5  # any finite value: no range was declared
    with pytest.raises(ValueError, match=r"^scale=.* for scaled: expected float$"):
        entry.check("scale", value)


def test_a_hyphen_typed_for_an_underscore_is_hinted_however_short_the_name() -> None:
    """A short name (a plug-in's ``a_b``) is too far from ``a-b`` by letters alone: the hyphen
    is read as the underscore before the names are compared."""
    from architectures.registry import did_you_mean

    assert did_you_mean("a-b", ["a_b", "c_d"]) == " (did you mean a_b?)"


def test_a_name_far_from_every_entry_is_given_no_hint() -> None:
    """``resnet9000`` shares a word with ``tiny_resnet`` and is no typo of it."""
    with pytest.raises(A.UnknownNameError) as unknown:
        A.ENCODERS.get("resnet9000")
    assert "unknown encoder 'resnet9000'; valid: " in str(unknown.value)


def test_a_bool_hyperparameter_takes_a_bool_and_no_number() -> None:
    def switched(batch_norm: bool = True) -> None:
        return None

    entry = Entry("switched", switched, {"batch_norm": True})
    assert entry.check("batch_norm", False) is False
    for value in (1, 0, 0.0):
        with pytest.raises(ValueError, match=r"^batch_norm=.* for switched: expected bool$"):
            entry.check("batch_norm", value)


def test_a_bracket_alone_makes_a_pattern_a_wildcard() -> None:
    assert A.ENCODERS.select("[gs]ap_cnn") == ["gap_cnn"]
    assert A.FUSIONS.select("late_su[m]") == ["late_sum"]


def test_an_entry_registered_outside_the_package_says_it_came_from_its_module() -> None:
    """Code that registers without a plug-in loader (a script of the user's) is not built-in."""
    from architectures.registry import BUILT_IN, Registry

    registry = Registry("encoder")

    @registry.register()
    def mine() -> None: ...

    assert registry.get("mine").origin == __name__ != BUILT_IN
    assert A.ENCODERS.get("gap_cnn").origin == BUILT_IN


def test_an_entrys_description_is_its_docstrings_first_line() -> None:
    """``list`` shows it in one cell: the rest of the docstring is for the reader of the code."""
    from architectures.registry import Registry

    registry = Registry("encoder")

    @registry.register()
    def described() -> None:
        """One strided convolution.

        Details the table has no room for."""

    assert registry.get("described").description == "One strided convolution."


def test_a_prefix_entry_is_made_once_however_often_it_is_looked_up() -> None:
    """A timm entry is made by building its model: a second look-up must not build it again."""
    from architectures.registry import Registry

    made: list[str] = []
    gap = A.ENCODERS.get("gap_cnn")

    def make(name: str) -> Entry:
        made.append(name)
        return dataclasses.replace(gap, name=name)

    registry = Registry("encoder")
    registry.register_prefix("ext:", make)
    first = registry.get("ext:one")
    assert registry.get("ext:one") is first and registry.select("ext:one") == ["ext:one"]
    assert made == ["ext:one"]


def test_a_meta_build_initialises_a_tensor_made_on_the_cpu() -> None:
    """Only meta tensors skip their initialisers: a table a module computes on the CPU in its
    ``__init__`` keeps its values."""
    with A.meta_build():
        table = torch.zeros(3, device="cpu").fill_(2.0).mul_(3.0)
        weight = torch.nn.init.ones_(torch.empty(2))
    assert table.tolist() == [6.0, 6.0, 6.0]
    assert weight.is_meta


def test_default_args_hold_the_encoders_and_the_fusions_defaults() -> None:
    assert A.default_args("gap_cnn", "concat") == {
        "width": 16,
        "depth": 2,
        "dropout": 0.0,
        "hidden": 128,
        "head_dropout": 0.0,
    }


def test_the_sizes_hint_leaves_an_img_size_the_user_gave_alone() -> None:
    """Told img_size=32 (which 16-pixel patches divide), the ViT still cannot take 28x28
    images: the refusal names no other img_size, as the user chose theirs."""
    with pytest.raises(A.CannotRunError) as refused:
        A.check_model("timm:test_vit", "late_sum", {"img_size": 32})
    assert refused.value.sizes is None and "takes its image size" not in str(refused.value)


def test_the_sizes_hint_keeps_a_patch_size_the_user_gave() -> None:
    """With patch_size=5 typed, only img_size=28 is tried, with that patch size (which does not
    divide 28): no other patch size is put in the user's mouth."""
    with pytest.raises(A.CannotRunError) as refused:
        A.check_model("timm:test_vit", "late_sum", {"patch_size": 5})
    assert refused.value.sizes is None
    assert str(refused.value).endswith(
        "(timm:test_vit takes its image size as img_size, but fails at img_size=28 too)"
    )


def test_a_model_that_cannot_run_is_told_by_the_first_line_of_its_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import architectures.model as model

    def fails(**kwargs) -> None:
        raise RuntimeError("kernel size can't be greater than actual input size\n  at layer 3")

    monkeypatch.setattr(model, "_PASSED", set())
    broken = dataclasses.replace(A.ENCODERS.get("gap_cnn"), factory=fails)
    monkeypatch.setitem(A.ENCODERS.entries, "gap_cnn", broken)
    with pytest.raises(A.CannotRunError) as refused:
        A.check_model("gap_cnn", "concat", {"width": 4})
    assert str(refused.value) == (
        "gap_cnn x concat with width=4 cannot run on 1x28x28 images: RuntimeError: kernel size "
        "can't be greater than actual input size"
    )


def test_an_unknown_model_argument_is_refused_as_unknown_not_as_a_model_that_cannot_run() -> None:
    with pytest.raises(ValueError) as refused:
        A.check_model("gap_cnn", "concat", {"widht": 8})
    assert not isinstance(refused.value, A.CannotRunError)
    assert str(refused.value).startswith("unknown hyperparameter 'widht' (did you mean width?)")


def test_a_frozen_parameter_is_counted_too() -> None:
    """A plug-in's frozen (pretrained) layers are part of the model's size."""
    model = A.create_model("gap_cnn", "late_sum")
    model.encoder.requires_grad_(False)
    assert A.count_params(model) == 72_666


def test_an_unannotated_hyperparameter_is_checked_as_its_defaults_type() -> None:
    """A plug-in that writes ``width=8`` without ``: int`` still has its widths checked."""

    def plain(width=8):  # noqa: ANN001, ANN202 - a plug-in's unannotated factory
        return None

    entry = Entry("plain", plain, {"width": 8})
    assert entry.check("width", 12) == 12
    for value in (1.5, True):
        with pytest.raises(ValueError, match=r"^width=.* for plain: expected int$"):
            entry.check("width", value)
