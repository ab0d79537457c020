"""The fused inverted bottleneck (FusedIB, timm's ``er_`` EdgeResidual): a kxk full conv that
expands to ``mid_channels`` (BN, act), then a 1x1 linear projection (BN); residual when shapes allow."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import BlockShape, ConvBNAct, bn_params
from nas.blocks._registry import BlockKind, OpCounts, register
from nas.channels import check_act, check_positive

__all__ = ["FusedSpec", "FusedInvertedBottleneck", "Fused"]


@dataclass(frozen=True)
class FusedSpec(BlockShape):
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    act: str = "relu"

    def __post_init__(self) -> None:
        check_positive("fused", in_channels=self.in_channels, mid_channels=self.mid_channels,
                       out_channels=self.out_channels, kernel=self.kernel)
        if self.kernel % 2 != 1:
            raise ValueError(f"fused.kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"fused.stride must be 1 or 2, got {self.stride!r}")
        check_act("fused", "act", self.act)


class FusedInvertedBottleneck(nn.Module):
    def __init__(self, spec: FusedSpec) -> None:
        super().__init__()
        self.spec = spec
        # full kxk conv doing the expansion
        self.expand = ConvBNAct(spec.in_channels, spec.mid_channels, kernel=spec.kernel, stride=spec.stride,
                                act=spec.act)
        # point-wise linear projection
        self.project = ConvBNAct(spec.mid_channels, spec.out_channels, act=None)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.expand(x))
        return out + x if self.residual else out


@register
class Fused(BlockKind):
    name = "fused"
    spec_type = FusedSpec

    def layer(self, spec: FusedSpec, in_shape: Shape, index: int) -> LayerSpec:
        _, h, w = in_shape
        out = (spec.out_channels, conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride))
        return LayerSpec(self.name, in_shape, out, kernel=spec.kernel, stride=spec.stride,
                         mid_channels=spec.mid_channels, act=spec.act, residual=spec.residual, index=index)

    def key(self, layer: LayerSpec) -> str:
        return f"e{layer.mid_channels}-k{layer.kernel}-s{layer.stride}-{layer.act}-r{int(layer.residual)}"

    def cost(self, layer: LayerSpec) -> tuple[int, int, int, int]:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        k, m = layer.kernel, layer.mid_channels
        keep = ci * hi * wi if layer.residual else 0
        params = k * k * ci * m + bn_params(m) + m * co + bn_params(co)
        madds = k * k * ci * m * ho * wo + m * co * ho * wo
        written = m * ho * wo + co * ho * wo
        peak = max(ci * hi * wi + m * ho * wo, keep + m * ho * wo + co * ho * wo)
        return params, madds, written, peak

    def op_counts(self, layer: LayerSpec) -> OpCounts:
        co, ho, wo = layer.out_shape
        m = layer.mid_channels
        madds = self.cost(layer)[1]
        return OpCounts(dense_madds=madds, hswish_elements=m * ho * wo if layer.act == "hswish" else 0.0)

    def static_module(self, spec: FusedSpec) -> nn.Module:
        return FusedInvertedBottleneck(spec)

    def spec_from_layer(self, layer: LayerSpec) -> FusedSpec:
        return FusedSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.kernel, layer.stride,
                         layer.act)
