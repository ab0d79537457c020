"""A plain conv-BN-act block (MobileNetV4-Conv-S's first stages: timm's ``cn_`` blocks)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import ConvBNAct, bn_params
from nas.blocks._registry import BlockKind, OpCounts, register
from nas.channels import check_act, check_positive

__all__ = ["ConvSpec", "ConvBlock"]


@dataclass(frozen=True)
class ConvSpec:
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    act: str = "relu"

    def __post_init__(self) -> None:
        check_positive("conv", in_channels=self.in_channels, out_channels=self.out_channels, kernel=self.kernel)
        if self.kernel % 2 != 1:
            raise ValueError(f"conv.kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"conv.stride must be 1 or 2, got {self.stride!r}")
        check_act("conv", "act", self.act)


@register
class ConvBlock(BlockKind):
    name = "conv"
    spec_type = ConvSpec

    def layer(self, spec: ConvSpec, in_shape: Shape, index: int) -> LayerSpec:
        _, h, w = in_shape
        out = (spec.out_channels, conv_out(h, spec.kernel, spec.stride), conv_out(w, spec.kernel, spec.stride))
        return LayerSpec(self.name, in_shape, out, kernel=spec.kernel, stride=spec.stride, act=spec.act, index=index)

    def key(self, layer: LayerSpec) -> str:
        return f"k{layer.kernel}-s{layer.stride}-{layer.act}"

    def cost(self, layer: LayerSpec) -> tuple[int, int, int, int]:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        k = layer.kernel
        return (k * k * ci * co + bn_params(co), k * k * ci * co * ho * wo, co * ho * wo,
                ci * hi * wi + co * ho * wo)

    def op_counts(self, layer: LayerSpec) -> OpCounts:
        co, ho, wo = layer.out_shape
        return OpCounts(dense_madds=self.cost(layer)[1], hswish_elements=co * ho * wo if layer.act == "hswish" else 0.0)

    def static_module(self, spec: ConvSpec) -> nn.Module:
        module = ConvBNAct(spec.in_channels, spec.out_channels, kernel=spec.kernel, stride=spec.stride, act=spec.act)
        module.spec = spec
        return module

    def spec_from_layer(self, layer: LayerSpec) -> ConvSpec:
        return ConvSpec(layer.in_shape[0], layer.out_shape[0], layer.kernel, layer.stride, layer.act)
