"""The static network builder: :class:`NetworkSpec` -> ``torch.nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from nas.netspec import NetworkSpec
from nas.activations import make_activation
from nas.blocks import ConvBNAct, kind_of

__all__ = ["Classifier", "MobileNet", "FeatureExtractor", "FEATURE_REDUCTIONS", "feature_info", "features_only",
           "build_network", "init_weights"]

#: The reductions (input side / feature-map side) of the multi-scale backbone: timm's
#: ``features_only`` strides for the three maps a detection or segmentation neck takes (C3-C5).
FEATURE_REDUCTIONS = (8, 16, 32)


class Classifier(nn.Module):
    """Global average pool -> [Linear + act] -> dropout -> Linear.

    The hidden Linear is MobileNetV3's "1x1 conv, no BN" applied to the pooled vector.
    """

    def __init__(self, in_features: int, hidden: int, act: str, dropout: float, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        if hidden:
            self.hidden = nn.Sequential(nn.Linear(in_features, hidden), make_activation(act))
            in_features = hidden
        else:
            self.hidden = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.dropout(self.hidden(x)))


class MobileNet(nn.Module):
    """A static MobileNetV3-style network. ``spec`` records exactly what it was built from."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stem = ConvBNAct(
            spec.in_channels,
            spec.stem.out_channels,
            kernel=spec.stem.kernel,
            stride=spec.stem.stride,
            act=spec.stem.act,
        )
        self.blocks = nn.Sequential(*(kind_of(b).static_module(b) for b in spec.blocks))
        last = spec.blocks[-1].out_channels
        self.final_conv = ConvBNAct(last, spec.head.final_channels, act=spec.head.final_act)
        self.classifier = Classifier(
            spec.head.final_channels,
            spec.head.classifier_channels,
            spec.head.classifier_act,
            spec.head.dropout,
            spec.num_classes,
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map (after the final 1x1 conv), before pooling."""
        return self.final_conv(self.blocks(self.stem(x)))

    def forward_features(
        self, x: torch.Tensor, reductions: tuple[int, ...] = FEATURE_REDUCTIONS
    ) -> list[torch.Tensor]:
        """The feature maps at ``reductions`` (default strides 8, 16 and 32): each the output of
        the last block at that reduction, as timm's ``features_only`` returns them; described by
        :func:`feature_info`."""
        return list(features_only(self, reductions)(x))

    @property
    def feature_info(self) -> list[dict[str, int | str]]:
        """:func:`feature_info` of this network at :data:`FEATURE_REDUCTIONS`."""
        return feature_info(self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _reductions(spec: NetworkSpec) -> list[int]:
    """The cumulative stride after each block of ``spec``."""
    out, r = [], spec.stem.stride
    for block in spec.blocks:
        r *= block.stride
        out.append(r)
    return out


def feature_info(spec: NetworkSpec, reductions: tuple[int, ...] = FEATURE_REDUCTIONS) -> list[dict[str, int | str]]:
    """Where the multi-scale feature maps of ``spec`` come from, in timm's ``feature_info`` form:
    per reduction ``{"module": "blocks.I", "index": I, "num_chs": C, "reduction": R}``, the last
    block whose output has that reduction.

    Raises:
        ValueError: ``reductions`` is not increasing, or the network never reaches one of them
            (e.g. a space with only four stride-2 layers has no stride-32 map).
    """
    if not reductions or list(reductions) != sorted(set(reductions)):
        raise ValueError(f"feature reductions {reductions!r}: give distinct, increasing strides (e.g. 8 16 32)")
    cumulative = _reductions(spec)
    info = []
    for r in reductions:
        at = [i for i, c in enumerate(cumulative) if c == r]
        if not at:
            reached = sorted(set(cumulative))
            raise ValueError(f"{spec.name}: no block output at reduction {r} (the blocks reach {reached}); "
                             f"feature maps exist only at those reductions")
        i = at[-1]
        info.append({"module": f"blocks.{i}", "index": i, "num_chs": spec.blocks[i].out_channels, "reduction": r})
    return info


class FeatureExtractor(nn.Module):
    """A backbone returning the feature maps at several reductions (timm's ``features_only``).

    Shares the stem and blocks of ``model`` (no copy); blocks after the deepest requested map are
    not run. ``forward`` returns a tuple ordered like ``feature_info`` (shallowest first).
    """

    def __init__(self, model: MobileNet, reductions: tuple[int, ...] = FEATURE_REDUCTIONS) -> None:
        super().__init__()
        self.feature_info = feature_info(model.spec, reductions)
        self.spec = model.spec
        last = self.feature_info[-1]["index"]
        self.stem = model.stem
        self.blocks = nn.Sequential(*list(model.blocks)[: last + 1])
        self._taps = frozenset(int(f["index"]) for f in self.feature_info)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self._taps:
                maps.append(x)
        return tuple(maps)


def features_only(model: MobileNet, reductions: tuple[int, ...] = FEATURE_REDUCTIONS) -> FeatureExtractor:
    """``model`` as a multi-scale backbone (see :class:`FeatureExtractor`)."""
    return FeatureExtractor(model, reductions)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, small-normal linears (the torchvision MobileNet recipe)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build_network(spec: NetworkSpec) -> MobileNet:
    """Build a freshly initialised static network for ``spec``."""
    model = MobileNet(spec)
    init_weights(model)
    return model
