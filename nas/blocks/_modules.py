"""The static layers block kinds are built from: conv-BN-act and squeeze-excitation."""

from __future__ import annotations

import torch
from torch import nn

from nas.activations import make_activation

__all__ = ["ConvBNAct", "SqueezeExcite", "bn_params", "BlockShape"]


class BlockShape:
    """What every block spec with ``in/out_channels``, ``stride`` (and ``se_channels``) shares."""

    in_channels: int
    out_channels: int
    stride: int

    @property
    def has_se(self) -> bool:
        return getattr(self, "se_channels", 0) > 0

    @property
    def residual(self) -> bool:
        """The input is added to the output: same channels and no stride."""
        return self.stride == 1 and self.in_channels == self.out_channels


def bn_params(channels: int) -> int:
    """BatchNorm's parameters: gamma and beta (running statistics are buffers)."""
    return 2 * channels


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
            nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups,
                      bias=False),
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
