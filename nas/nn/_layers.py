"""Building blocks of MobileNetV3-style networks: activations, conv-BN-act, SE, bneck."""

from __future__ import annotations

import torch
from torch import nn

from nas.activations import make_activation
from nas.netspec import BlockSpec

__all__ = ["make_activation", "ConvBNAct", "SqueezeExcite", "InvertedResidual"]


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation (``act=None`` for a linear projection)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel,
                stride=stride,
                padding=kernel // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            make_activation(act) if act is not None else nn.Identity(),
        )


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> hard-sigmoid -> channel-wise scale."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.expand(self.act(self.reduce(s))))
        return x * s


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck: 1x1 expand -> kxk depthwise -> SE -> 1x1 linear projection (+ residual)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        # point-wise expansion (absent when the block does not widen its input)
        self.expand = (
            ConvBNAct(spec.in_channels, spec.mid_channels, act=spec.act)
            if spec.has_expand
            else nn.Identity()
        )
        # depth-wise
        self.depthwise = ConvBNAct(
            spec.mid_channels,
            spec.mid_channels,
            kernel=spec.kernel,
            stride=spec.stride,
            groups=spec.mid_channels,
            act=spec.act,
        )
        # squeeze-excitation
        self.se = SqueezeExcite(spec.mid_channels, spec.se_channels) if spec.has_se else nn.Identity()
        # point-wise linear projection
        self.project = ConvBNAct(spec.mid_channels, spec.out_channels, act=None)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.residual else out
