"""MobileNetV4's Universal Inverted Bottleneck (UIB).

Optional ``start_kernel`` depthwise conv on the input (BN, no activation) -> 1x1 expansion to
``mid_channels`` (BN, act) -> optional ``mid_kernel`` depthwise conv (BN, act) -> optional SE ->
1x1 linear projection (BN). The stride sits on the mid depthwise conv when there is one, otherwise
on the start one; the residual is added when ``stride == 1`` and the channels match. The four
instances of the paper: ExtraDW (start and mid), IB (mid only: MobileNetV2's inverted residual),
ConvNext-like (start only) and FFN (neither). Layer order and stride placement follow timm's
``UniversalInvertedResidual`` (no layer scale, no end depthwise conv: the conv models have none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import BlockShape, ConvBNAct, SqueezeExcite, bn_params
from nas.blocks._registry import BlockKind, register
from nas.channels import check_act, check_positive

__all__ = ["UIBSpec", "UniversalInvertedBottleneck", "UIB", "UIB_KERNELS"]

#: Depthwise kernels a UIB may have at its start and mid positions (0: none).
UIB_KERNELS = (0, 3, 5, 7)


@dataclass(frozen=True)
class UIBSpec(BlockShape):
    in_channels: int
    mid_channels: int
    out_channels: int
    start_kernel: int
    mid_kernel: int
    stride: int
    se_channels: int = 0
    act: str = "relu"

    def __post_init__(self) -> None:
        check_positive("uib", in_channels=self.in_channels, mid_channels=self.mid_channels,
                       out_channels=self.out_channels)
        for name in ("start_kernel", "mid_kernel"):
            if getattr(self, name) not in UIB_KERNELS:
                raise ValueError(f"uib.{name} must be one of {UIB_KERNELS} (0: no depthwise conv), "
                                 f"got {getattr(self, name)!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"uib.stride must be 1 or 2, got {self.stride!r}")
        if self.stride == 2 and not (self.start_kernel or self.mid_kernel):
            raise ValueError("uib.stride 2 needs a depthwise conv (start_kernel or mid_kernel); an FFN block has none")
        if not isinstance(self.se_channels, int) or self.se_channels < 0:
            raise ValueError(f"uib.se_channels must be an integer >= 0, got {self.se_channels!r}")
        check_act("uib", "act", self.act)

    @property
    def start_stride(self) -> int:
        return 1 if self.mid_kernel else self.stride


class UniversalInvertedBottleneck(nn.Module):
    def __init__(self, spec: UIBSpec) -> None:
        super().__init__()
        self.spec = spec
        ci, m = spec.in_channels, spec.mid_channels
        # depth-wise at the start (no activation)
        self.start = (ConvBNAct(ci, ci, kernel=spec.start_kernel, stride=spec.start_stride, groups=ci, act=None)
                      if spec.start_kernel else nn.Identity())
        # point-wise expansion
        self.expand = ConvBNAct(ci, m, act=spec.act)
        # depth-wise in the middle
        self.mid = (ConvBNAct(m, m, kernel=spec.mid_kernel, stride=spec.stride, groups=m, act=spec.act)
                    if spec.mid_kernel else nn.Identity())
        # squeeze-excitation
        self.se = SqueezeExcite(m, spec.se_channels) if spec.has_se else nn.Identity()
        # point-wise linear projection
        self.project = ConvBNAct(m, spec.out_channels, act=None)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.mid(self.expand(self.start(x)))))
        return out + x if self.residual else out


@register
class UIB(BlockKind):
    name = "uib"
    spec_type = UIBSpec

    def layer(self, spec: UIBSpec, in_shape: Shape, index: int) -> LayerSpec:
        _, h, w = in_shape
        if spec.start_kernel:
            h, w = conv_out(h, spec.start_kernel, spec.start_stride), conv_out(w, spec.start_kernel, spec.start_stride)
        if spec.mid_kernel:
            h, w = conv_out(h, spec.mid_kernel, spec.stride), conv_out(w, spec.mid_kernel, spec.stride)
        return LayerSpec(self.name, in_shape, (spec.out_channels, h, w), kernel=spec.mid_kernel, stride=spec.stride,
                         mid_channels=spec.mid_channels, se_channels=spec.se_channels, act=spec.act,
                         residual=spec.residual, index=index, start_kernel=spec.start_kernel)

    def key(self, layer: LayerSpec) -> str:
        return (f"e{layer.mid_channels}-a{layer.start_kernel}-k{layer.kernel}-s{layer.stride}-se{layer.se_channels}"
                f"-{layer.act}-r{int(layer.residual)}")

    def cost(self, layer: LayerSpec) -> tuple[int, int, int, int]:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        m, se, ks, km = layer.mid_channels, layer.se_channels, layer.start_kernel, layer.kernel
        keep = ci * hi * wi if layer.residual else 0
        params = madds = written = 0
        steps = []
        h, w = hi, wi
        live = ci * hi * wi
        if ks:
            s = 1 if km else layer.stride
            h, w = conv_out(hi, ks, s), conv_out(wi, ks, s)
            params += ks * ks * ci + bn_params(ci)
            madds += ks * ks * ci * h * w
            written += ci * h * w
            steps.append(live + ci * h * w)
            live = keep + ci * h * w
        params += ci * m + bn_params(m)  # expansion
        madds += ci * m * h * w
        written += m * h * w
        steps.append(live + m * h * w)
        live = keep + m * h * w
        if km:
            params += km * km * m + bn_params(m)
            madds += km * km * m * ho * wo
            written += m * ho * wo
            steps.append(live + m * ho * wo)
            live = keep + m * ho * wo
        if se:
            params += m * se + se + se * m + m
            madds += m * se + se * m
            written += m * ho * wo
            steps.append(live + m * ho * wo)
        params += m * co + bn_params(co)  # projection
        madds += m * co * ho * wo
        written += co * ho * wo
        steps.append(live + co * ho * wo)
        return params, madds, written, max(steps)

    def static_module(self, spec: UIBSpec) -> nn.Module:
        return UniversalInvertedBottleneck(spec)

    def spec_from_layer(self, layer: LayerSpec) -> UIBSpec:
        return UIBSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.start_kernel, layer.kernel,
                       layer.stride, layer.se_channels, layer.act)
