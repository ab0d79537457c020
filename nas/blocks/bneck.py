"""MobileNetV3's inverted residual ("bneck"): 1x1 expansion -> kxk depthwise -> SE -> 1x1 linear projection.

Searchable: per block a kernel, an expansion ratio, SE on/off and the activation; token
``k5e6sh`` (kernel 5, expansion 6, SE, h-swish; ``ir_`` may prefix it, as timm writes it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import AfterValidator, StrictInt
from pydantic.dataclasses import dataclass as pydantic_dataclass
from torch import nn

from nas.activations import CODE_ACTIVATIONS
from nas.blocks._choices import (CHOICES_CONFIG, ActChoices, Expansions, SEChoices, act_code, check_common,
                                 check_int, sorted_choices)
from nas.blocks._elastic import ElasticConvBN, ElasticDepthwiseBN, ElasticSqueezeExcite
from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import BlockShape, ConvBNAct, SqueezeExcite, bn_params
from nas.blocks._registry import OpCounts, SearchableKind, register
from nas.blocks._reorder import importance_order, permute_
from nas.channels import check_act, check_positive, expanded_channels, se_units
from nas.errors import ArchError

__all__ = ["BneckSpec", "InvertedResidual", "Bneck", "BneckChoices", "BlockArch", "ElasticBneck", "BNECK_KERNELS"]

#: Depthwise kernels a searchable bneck may have.
BNECK_KERNELS = (3, 5, 7)


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


@pydantic_dataclass(frozen=True, config=CHOICES_CONFIG)
class BneckChoices:
    """A stage's bneck choices in YAML: ``kernels``, ``expansions``, ``se``, ``acts``."""

    kernels: Annotated[tuple[StrictInt, ...], AfterValidator(sorted_choices(BNECK_KERNELS))]
    expansions: Expansions
    se: SEChoices = (False,)
    acts: ActChoices = ("relu",)


_TOKEN_RE = re.compile(r"^k(\d+)e(\d+(?:\.\d+)?)(s?)([" + "".join(CODE_ACTIVATIONS) + r"])$")


@dataclass(frozen=True)
class BlockArch:
    """Choices of one bneck block: depthwise kernel, expansion ratio, SE on/off, activation."""

    kernel: int
    expand: float
    se: bool
    act: str

    def __post_init__(self) -> None:
        check_int("kernel", self.kernel)
        check_common(self)

    def to_string(self) -> str:
        return f"k{self.kernel}e{self.expand:g}{'s' if self.se else ''}{act_code(self.act)}"

    @classmethod
    def from_string(cls, text: str) -> BlockArch:
        m = _TOKEN_RE.match(text)
        if not m:
            raise ArchError(f"bad block token {text!r}: expected k<kernel>e<expand>[s]<r|h>, e.g. 'k5e6sh'")
        return cls(kernel=int(m[1]), expand=float(m[2]), se=m[3] == "s", act=CODE_ACTIVATIONS[m[4]])


class ElasticBneck(nn.Module):
    """A bneck block at its largest size; ``forward(x, spec)`` runs it as the resolved ``spec``."""

    def __init__(
        self,
        *,
        max_in: int,
        max_mid: int,
        max_out: int,
        max_se: int,
        kernels: tuple[int, ...],
        stride: int,
        has_expand: bool,
        kernel_transform: bool,
        skip_padding_taps: bool = True,
        always_expands: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        # every member of the space has the expand conv here (none resolves to mid == in), so the
        # mid channels are this block's own and may be re-ordered (Supernet.reorder_channels)
        self.reorderable = always_expands and has_expand
        # point-wise expansion: present when some member of the space widens this block's input
        self.expand = ElasticConvBN(max_in, max_mid) if has_expand else None
        # depth-wise
        self.depthwise = ElasticDepthwiseBN(
            max_mid, kernels, stride=stride, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps
        )
        # squeeze-excitation: present when the stage allows SE
        self.se = ElasticSqueezeExcite(max_mid, max_se) if max_se else None
        # point-wise linear projection
        self.project = ElasticConvBN(max_mid, max_out)

    def forward(self, x: torch.Tensor, spec: BneckSpec) -> torch.Tensor:
        out = x
        if spec.has_expand:
            out = self.expand(out, spec.mid_channels, spec.act)
        out = self.depthwise(out, spec.kernel, spec.act)
        if spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.project(out, spec.out_channels, None)
        return out + x if spec.residual else out

    @torch.no_grad()
    def copy_into(self, dst: nn.Module) -> None:
        """Copy the weights of ``dst.spec``'s slice (transformed kernels, BN statistics) into the
        static block ``dst`` (extraction)."""
        spec = dst.spec
        if spec.has_expand:
            self.expand.copy_into(dst.expand)
        self.depthwise.copy_into(dst.depthwise, spec.mid_channels, spec.kernel)
        if spec.has_se:
            self.se.copy_into(dst.se, spec.mid_channels, spec.se_channels)
        self.project.copy_into(dst.project)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Sort the mid channels (and SE hidden units) by importance, with the optimizer's state
        (see :mod:`nas.blocks._reorder`). Only for blocks that always expand."""

        mid = importance_order(self.project.conv.weight, 1)
        self.expand.permute_outputs(mid, optimizer)
        self.depthwise.permute(mid, optimizer)
        if self.se is not None:
            self.se.reorder(mid, optimizer)
        permute_(self.project.conv.weight, 1, mid, optimizer)


@register
class Bneck(SearchableKind):
    name = "bneck"
    spec_type = BneckSpec
    choices_type = BneckChoices
    arch_type = BlockArch
    token_prefix = "ir"

    # -- search side --------------------------------------------------------------------------------
    def axes(self, choices: BneckChoices) -> dict[str, tuple]:
        return {"kernel": choices.kernels, "expand": choices.expansions, "se": choices.se, "act": choices.acts}

    def token(self, arch: BlockArch) -> str:
        return arch.to_string()

    def parse_token(self, text: str) -> BlockArch:
        return BlockArch.from_string(text)

    def resolve(self, arch: BlockArch, *, in_channels: int, out_channels: int, stride: int,
                se_reduction: int) -> BneckSpec:
        mid = expanded_channels(in_channels, arch.expand)
        return BneckSpec(in_channels, mid, out_channels, arch.kernel, stride,
                         se_units(mid, se_reduction) if arch.se else 0, arch.act)

    def elastic_module(self, specs: Sequence[BneckSpec], *, kernel_transform: bool,
                       skip_padding_taps: bool) -> ElasticBneck:
        return ElasticBneck(
            max_in=max(b.in_channels for b in specs),
            max_mid=max(b.mid_channels for b in specs),
            max_out=max(b.out_channels for b in specs),
            max_se=max(b.se_channels for b in specs),
            kernels=tuple(sorted({b.kernel for b in specs})),
            stride=specs[0].stride,
            has_expand=any(b.has_expand for b in specs),
            always_expands=all(b.has_expand for b in specs),
            kernel_transform=kernel_transform,
            skip_padding_taps=skip_padding_taps,
        )

    # -- network side -------------------------------------------------------------------------------

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

    def op_counts(self, layer: LayerSpec) -> OpCounts:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        m = layer.mid_channels
        expands = m != ci
        return OpCounts(
            dense_madds=m * co * ho * wo + (ci * m * hi * wi if expands else 0),
            depthwise_madds=layer.kernel**2 * m * ho * wo,
            se_work=2.0 * m * ho * wo + 2 * m * layer.se_channels if layer.se_channels else 0.0,
            hswish_elements=m * ho * wo + (m * hi * wi if expands else 0) if layer.act == "hswish" else 0.0,
        )

    def static_module(self, spec: BneckSpec) -> nn.Module:
        return InvertedResidual(spec)

    def spec_from_layer(self, layer: LayerSpec) -> BneckSpec:
        return BneckSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.kernel, layer.stride,
                         layer.se_channels, layer.act)
