"""Image encoders: (B, 1, 28, 28) normalised images -> (B, D) features, D in ``num_features``."""

from __future__ import annotations

import difflib
import functools
import inspect
import sys
import warnings
from typing import Any

import torch
from torch import nn

from architectures.meta import meta_build
from architectures.registry import (
    ENCODERS,
    RATE,
    Entry,
    Range,
    UnknownNameError,
    register_encoder,
    signature_defaults,
)


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Plain CNN, no normalisation layers: conv-pool, conv-pool, then a fully connected layer."""

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 7x7
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * width * 7 * 7, hidden),
            nn.ReLU(inplace=True),
        )
        self.num_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class GapCNN(nn.Module):
    """Conv-BN-ReLU stages at 28, 14 and 7 pixels, then global average pooling."""

    def __init__(self, width: int, depth: int, dropout: float) -> None:
        super().__init__()
        widths = (width, 2 * width, 4 * width)
        layers: list[nn.Module] = []
        cin = 1
        for stage, cout in enumerate(widths):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(depth):
                layers.append(conv_bn_relu(cin, cout))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))


class TinyResNet(nn.Module):
    """A stride-2 stem, then three stages of timm ResNet ``BasicBlock``s at 14, 7 and 4 pixels."""

    def __init__(self, width: int, blocks: int, dropout: float) -> None:
        from timm.models.resnet import BasicBlock

        super().__init__()
        self.stem = conv_bn_relu(1, width, stride=2)
        stages: list[nn.Module] = []
        cin = width
        for stage in range(3):
            cout = width * 2**stage
            for i in range(blocks):
                stride = 2 if (stage > 0 and i == 0) else 1
                downsample = None
                if stride != 1 or cin != cout:
                    downsample = nn.Sequential(
                        nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                    )
                stages.append(BasicBlock(cin, cout, stride=stride, downsample=downsample))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.num_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x)))


def _cnn_space(trial: Any) -> dict[str, Any]:
    return {
        "width": trial.suggest_categorical("width", [8, 16, 24, 32]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
    }


def _small_cnn_space(trial: Any) -> dict[str, Any]:
    return {
        **_cnn_space(trial),
        "fc_features": trial.suggest_categorical("fc_features", [64, 128, 256]),
    }


def _gap_cnn_space(trial: Any) -> dict[str, Any]:
    return {**_cnn_space(trial), "depth": trial.suggest_int("depth", 1, 2)}


def _tiny_resnet_space(trial: Any) -> dict[str, Any]:
    return {**_cnn_space(trial), "blocks": trial.suggest_int("blocks", 1, 2)}


# What each hyperparameter accepts (beyond these, a layer is empty or the model cannot fit).
WIDTH = Range(1, 256)  # channels of the first stage; later stages double it
REPEATS = Range(1, 8)  # conv layers or residual blocks per stage


@register_encoder(
    search_space=_small_cnn_space,
    ranges={"width": WIDTH, "fc_features": Range(1, 4096), "dropout": RATE},
)
def small_cnn(width: int = 16, fc_features: int = 128, dropout: float = 0.0) -> nn.Module:
    """Plain conv-pool-conv-pool CNN with a fully connected feature layer (no BatchNorm)."""
    return SmallCNN(width, fc_features, dropout)


@register_encoder(
    search_space=_gap_cnn_space, ranges={"width": WIDTH, "depth": REPEATS, "dropout": RATE}
)
def gap_cnn(width: int = 16, depth: int = 2, dropout: float = 0.0) -> nn.Module:
    """Conv-BN-ReLU stages with global average pooling; few parameters."""
    return GapCNN(width, depth, dropout)


@register_encoder(
    search_space=_tiny_resnet_space, ranges={"width": WIDTH, "blocks": REPEATS, "dropout": RATE}
)
def tiny_resnet(width: int = 16, blocks: int = 1, dropout: float = 0.0) -> nn.Module:
    """Small residual network built from timm's ResNet BasicBlock."""
    return TinyResNet(width, blocks, dropout)


# What timm's vision transformers, Swins and the like are sized by. timm builds them for 224-pixel
# images and they refuse 28 until told (img_size=28, with a patch_size that divides it: 4, 7 or
# 14); ``None`` keeps timm's value for the model. Exposed only where the model's class takes them.
TIMM_SIZES = {"img_size": Range(1, 1024), "patch_size": Range(1, 28)}


def _module_takes(model_name: str) -> set[str]:
    """Which of drop_path_rate and ``TIMM_SIZES`` any model class of the module of timm's entry
    for ``model_name`` names in its signature. Where none (DenseNets, Inceptions, VGGs: 16 of
    timm 1.0.31's 98 modules), the model takes none either, and listing a family of them builds
    each model once, not twice; where no size, a ResNet is not built again for each size."""
    import timm

    names = vars(sys.modules[timm.models.model_entrypoint(model_name).__module__]).values()
    classes = [c for c in names if isinstance(c, type) and issubclass(c, nn.Module)]
    more = {"drop_path_rate", *TIMM_SIZES}
    return set().union(*(more & set(inspect.signature(c.__init__).parameters) for c in classes))


@functools.cache
def _timm_args(model_name: str) -> tuple[str, ...]:
    """Which of drop_rate, drop_path_rate and ``TIMM_SIZES`` ``model_name`` takes, found by
    building it on the meta device with them (0.02-0.5 s a build, once per model and process): a
    ``TypeError`` naming one means the class does not take it (Gemma 4's ViT encoders take no
    drop_rate, GhostNets no drop_path_rate though a block of their module does), or timm's entry
    for the model sets it itself (MLP-Mixer's patch_size), and the build is tried again without
    it. A model of a module where no class takes drop_path_rate or a size is taken to take
    drop_rate alone, unbuilt, and one where no class takes a size to take none (in timm 1.0.31,
    one model of each module, built, does: a slow test)."""
    import timm

    takes = _module_takes(model_name)
    if not takes:
        return ("drop_rate",)
    probe: dict[str, float] = {"drop_rate": 0.0, "drop_path_rate": 0.0}
    if takes & TIMM_SIZES.keys():
        probe.update(img_size=28, patch_size=4)
    while probe:
        try:
            with meta_build(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                timm.create_model(model_name, pretrained=False, in_chans=1, num_classes=0, **probe)
        except TypeError as exc:  # "unexpected keyword argument", "got multiple values for"
            named = [key for key in probe if repr(key) in str(exc)]
            if not named:
                return ("drop_rate",)  # a TypeError of another kind: offer no more, not guess
            del probe[named[0]]
            continue
        except Exception:  # taken, though these values fail it: the dry run names the reason
            pass
        return tuple(probe)
    return ()


def _timm_entry(name: str) -> Entry:
    """``timm:<model>``: any timm model as a feature extractor, from scratch on 1 channel."""
    model_name = name.split(":", 1)[1]

    import timm

    if not timm.list_models(model_name):
        near = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.75)
        hint = f" (did you mean {' or '.join(f'timm:{n}' for n in near)}?)" if near else ""
        raise UnknownNameError(
            f"unknown timm model {model_name!r}{hint}; valid: any name from timm.list_models()"
        )
    exposed = _timm_args(model_name)

    def factory(
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        img_size: int | None = None,
        patch_size: int | None = None,
    ) -> nn.Module:
        given = {
            "drop_rate": drop_rate,
            "drop_path_rate": drop_path_rate,
            "img_size": img_size,
            "patch_size": patch_size,
        }
        model = timm.create_model(
            model_name,
            pretrained=False,
            in_chans=1,
            num_classes=0,
            **{key: value for key, value in given.items() if key in exposed and value is not None},
        )
        # Without a classifier a timm model returns its pre-logits features, which timm sizes
        # as head_hidden_size: wider than num_features where a head follows the pooling
        # (MobileNetV3 and V4, GhostNet, LCNet: 288 channels pooled, then 1,024 features).
        model.num_features = getattr(model, "head_hidden_size", None) or model.num_features
        return model

    def search_space(trial: Any) -> dict[str, Any]:
        """Dropout on the pooled features and stochastic depth, where the model takes them."""
        rates = [key for key in ("drop_rate", "drop_path_rate") if key in exposed]
        return {key: trial.suggest_float(key, 0.0, 0.3) for key in rates}

    return Entry(
        name=name,
        factory=factory,
        defaults={k: v for k, v in signature_defaults(factory).items() if k in exposed},
        search_space=search_space,
        description=f"timm model {model_name} (in_chans=1, num_classes=0, pretrained=False)",
        origin=f"timm {timm.__version__}",  # not this package's: timm's, at this version
        ranges={
            k: v
            for k, v in {"drop_rate": RATE, "drop_path_rate": RATE, **TIMM_SIZES}.items()
            if k in exposed
        },
    )


def _timm_names(wildcard: str) -> list[str]:
    import timm

    return timm.list_models(wildcard)


ENCODERS.register_prefix("timm:", _timm_entry, _timm_names)
