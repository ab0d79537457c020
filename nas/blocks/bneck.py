"""MobileNetV3's inverted residual ("bneck"): 1x1 expansion -> kxk depthwise -> SE -> 1x1 linear projection."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import BlockShape, ConvBNAct, SqueezeExcite, bn_params
from nas.blocks._registry import BlockKind, register
from nas.channels import check_act, check_positive

__all__ = ["BneckSpec", "InvertedResidual", "Bneck"]


@dataclass(frozen=True)
class BneckSpec(BlockShape):
    """One inverted-residual "bneck" block.

    1x1 expansion (omitted when ``mid_channels == in_channels``) -> ``kernel x kernel`` depthwise ->
    optional squeeze-excitation with ``se_channels`` hidden units (0 = no SE) -> 1x1 linear
    projection. The residual is added when ``stride == 1`` and ``in_channels == out_channels``.
    """

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    se_channels: int = 0
    act: str = "relu"

    def __post_init__(self) -> None:
        check_positive("block", in_channels=self.in_channels, mid_channels=self.mid_channels,
                       out_channels=self.out_channels, kernel=self.kernel)
        if self.kernel % 2 != 1:
            raise ValueError(f"block.kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"block.stride must be 1 or 2, got {self.stride!r}")
        if not isinstance(self.se_channels, int) or self.se_channels < 0:
            raise ValueError(f"block.se_channels must be an integer >= 0, got {self.se_channels!r}")
        check_act("block", "act", self.act)

    @property
    def has_expand(self) -> bool:
        return self.mid_channels != self.in_channels


class InvertedResidual(nn.Module):
    """MobileNetV3 bneck: 1x1 expand -> kxk depthwise -> SE -> 1x1 linear projection (+ residual)."""

    def __init__(self, spec: BneckSpec) -> None:
        super().__init__()
        self.spec = spec
        # point-wise expansion (absent when the block does not widen its input)
        self.expand = ConvBNAct(spec.in_channels, spec.mid_channels, act=spec.act) if spec.has_expand else nn.Identity()
        # depth-wise
        self.depthwise = ConvBNAct(spec.mid_channels, spec.mid_channels, kernel=spec.kernel, stride=spec.stride,
                                   groups=spec.mid_channels, act=spec.act)
        # squeeze-excitation
        self.se = SqueezeExcite(spec.mid_channels, spec.se_channels) if spec.has_se else nn.Identity()
        # point-wise linear projection
        self.project = ConvBNAct(spec.mid_channels, spec.out_channels, act=None)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.residual else out


@register
class Bneck(BlockKind):
    name = "bneck"
    spec_type = BneckSpec

    def layer(self, spec: BneckSpec, in_shape: Shape, index: int) -> LayerSpec:
        _, h, w = in_shape
        out = (spec.out_channels, conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride))
        return LayerSpec(self.name, in_shape, out, kernel=spec.kernel, stride=spec.stride,
                         mid_channels=spec.mid_channels, se_channels=spec.se_channels, act=spec.act,
                         residual=spec.residual, index=index)

    def key(self, layer: LayerSpec) -> str:
        return (f"e{layer.mid_channels}-k{layer.kernel}-s{layer.stride}-se{layer.se_channels}-{layer.act}"
                f"-r{int(layer.residual)}")

    def cost(self, layer: LayerSpec) -> tuple[int, int, int, int]:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        k, m, se = layer.kernel, layer.mid_channels, layer.se_channels
        n_in, n_out = ci * hi * wi, co * ho * wo
        expands = m != ci
        params = madds = written = 0
        steps = []  # live elements at each step
        keep = n_in if layer.residual else 0
        if expands:
            params += ci * m + bn_params(m)
            madds += ci * m * hi * wi
            written += m * hi * wi
            steps.append(n_in + m * hi * wi)
        mid_in, mid_out = m * hi * wi, m * ho * wo
        params += k * k * m + bn_params(m)  # depthwise
        madds += k * k * m * ho * wo
        written += mid_out
        steps.append((keep if expands else n_in) + mid_in * (1 if expands else 0) + mid_out)
        if se:
            params += m * se + se + se * m + m
            madds += m * se + se * m
            written += mid_out  # scaled copy
            steps.append(keep + 2 * mid_out)
        params += m * co + bn_params(co)  # projection
        madds += m * co * ho * wo
        written += n_out
        steps.append(keep + mid_out + n_out)
        return params, madds, written, max(steps)

    def static_module(self, spec: BneckSpec) -> nn.Module:
        return InvertedResidual(spec)

    def spec_from_layer(self, layer: LayerSpec) -> BneckSpec:
        return BneckSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.kernel, layer.stride,
                         layer.se_channels, layer.act)
