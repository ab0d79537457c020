"""The static network builder: :class:`NetworkSpec` -> ``torch.nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from nas.netspec import NetworkSpec
from nas.activations import make_activation
from nas.blocks import ConvBNAct, kind_of

__all__ = ["Classifier", "MobileNet", "build_network", "init_weights"]


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
        return self.final_conv(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


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
