"""MobileNetV4's Universal Inverted Bottleneck (UIB).

Optional ``start_kernel`` depthwise conv on the input (BN, no activation) -> 1x1 expansion to
``mid_channels`` (BN, act) -> optional ``mid_kernel`` depthwise conv (BN, act) -> optional SE ->
1x1 linear projection (BN). The stride sits on the mid depthwise conv when there is one, otherwise
on the start one; the residual is added when ``stride == 1`` and the channels match. The four
instances of the paper: ExtraDW (start and mid), IB (mid only: MobileNetV2's inverted residual),
ConvNext-like (start only) and FFN (neither). Layer order and stride placement follow timm's
``UniversalInvertedResidual`` (no layer scale, no end depthwise conv: the conv models have none).

Searchable: per block a start kernel and a mid kernel (each 0 = none, or a kernel), an expansion
ratio (of the input channels), SE on/off and the activation; token ``uib_s3m5e4sh`` (start 3, mid
5, expansion 4, SE, h-swish). A block with neither depthwise conv (FFN) cannot carry a stride of 2:
at a stage's first, strided block such picks are not members of the space.

:class:`ElasticUIB` stores one UIB block at the largest size any member of its position needs and
runs any member through ``forward(x, spec)``: the first ``in`` / ``mid`` / ``out`` channels and
``se`` hidden units, the spec's kernels centre-cropped from the largest stored ones (through the
learned kernel transforms when there are any), the start and mid depthwise convs skipped when the
spec's kernel is 0. The stride sits where the static block puts it: on the mid depthwise conv when
the spec has one, else on the start one, so the stored start depthwise conv runs at stride 1 or at
the block's stride depending on the member.
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

__all__ = ["UIBSpec", "UniversalInvertedBottleneck", "UIB", "UIB_KERNELS", "UIBChoices", "UIBArch", "ElasticUIB"]

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


def _check_kernels(name: str, kernels: tuple[int, ...]) -> tuple[int, ...]:
    kernels = tuple(kernels)
    if any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2 != 1 for k in kernels):
        raise ValueError(
            f"{name} must hold odd positive kernels (the depthwise convs a member may use; "
            f"no 0: leave the tuple empty for a block that never has one), got {kernels!r}"
        )
    return tuple(sorted(set(kernels)))


class ElasticUIB(nn.Module):
    """A UIB block at its largest size; ``forward(x, spec)`` runs it as the resolved ``spec``.

    Args:
        max_in: the most input channels any member reads.
        max_mid: the most expanded (mid) channels.
        max_out: the most output channels.
        max_se: the most SE hidden units (0: no member has SE; the SE is not stored).
        start_kernels: the non-zero start depthwise kernels a member may use (empty: no member has
            a start depthwise conv; it is not stored). The largest is stored, the others are crops.
        mid_kernels: the non-zero mid depthwise kernels a member may use, likewise.
        stride: the block's stride (1 or 2); every member runs at it.
        kernel_transform: learned kernel transforms between kernel sizes (once-for-all) on both
            depthwise convs; without them a smaller kernel is a plain centre crop.
        skip_padding_taps: let the depthwise convs skip kernel taps that only see zero padding
            (same outputs up to float rounding).

    The weights are left uninitialised, as :class:`~nas.blocks.ElasticBneck`'s are: the owner
    initialises the elastic leaves (``Supernet.reset_parameters`` visits them).
    """

    def __init__(
        self,
        *,
        max_in: int,
        max_mid: int,
        max_out: int,
        max_se: int,
        start_kernels: tuple[int, ...],
        mid_kernels: tuple[int, ...],
        stride: int,
        kernel_transform: bool = False,
        skip_padding_taps: bool = True,
    ) -> None:
        super().__init__()
        start_kernels = _check_kernels("start_kernels", start_kernels)
        mid_kernels = _check_kernels("mid_kernels", mid_kernels)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if stride == 2 and not (start_kernels or mid_kernels):
            raise ValueError("a stride-2 UIB needs a depthwise conv (start_kernels or mid_kernels)")
        self.stride = stride
        self.start_kernels = start_kernels
        self.mid_kernels = mid_kernels
        # every member has the expand conv (a UIB always expands, even to mid == in), so the mid
        # channels are this block's own and may be re-ordered (``reorderable``)
        self.reorderable = True
        # depth-wise at the start (BN, no activation): on the input channels; stride 1 when the
        # member has a mid depthwise conv, else the block's stride
        self.start = (
            ElasticDepthwiseBN(
                max_in, start_kernels, stride=1, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps
            )
            if start_kernels
            else None
        )
        # point-wise expansion
        self.expand = ElasticConvBN(max_in, max_mid)
        # depth-wise in the middle: carries the block's stride
        self.mid = (
            ElasticDepthwiseBN(
                max_mid, mid_kernels, stride=stride, kernel_transform=kernel_transform,
                skip_padding_taps=skip_padding_taps,
            )
            if mid_kernels
            else None
        )
        # squeeze-excitation: present when some member has SE
        self.se = ElasticSqueezeExcite(max_mid, max_se) if max_se else None
        # point-wise linear projection
        self.project = ElasticConvBN(max_mid, max_out)

    def _check(self, spec: UIBSpec) -> None:
        expand, project = self.expand.conv.weight, self.project.conv.weight
        stored = (expand.shape[1], expand.shape[0], project.shape[0])
        wanted = (spec.in_channels, spec.mid_channels, spec.out_channels)
        if any(w > s for w, s in zip(wanted, stored)):
            raise ValueError(f"spec's (in, mid, out) channels {wanted} exceed this block's {stored}")
        if spec.stride != self.stride:
            raise ValueError(f"spec.stride is {spec.stride}, this block's stride is {self.stride}")
        if spec.start_kernel and spec.start_kernel not in self.start_kernels:
            raise ValueError(f"spec.start_kernel must be 0 or one of {self.start_kernels}, got {spec.start_kernel}")
        if spec.mid_kernel and spec.mid_kernel not in self.mid_kernels:
            raise ValueError(f"spec.mid_kernel must be 0 or one of {self.mid_kernels}, got {spec.mid_kernel}")
        if spec.has_se and (self.se is None or spec.se_channels > self.se.reduce.weight.shape[0]):
            units = 0 if self.se is None else self.se.reduce.weight.shape[0]
            raise ValueError(f"spec.se_channels is {spec.se_channels}, this block stores {units}")

    def forward(self, x: torch.Tensor, spec: UIBSpec) -> torch.Tensor:
        """Run member ``spec`` on ``x`` (``spec.in_channels`` channels); nothing is remembered."""
        self._check(spec)
        if x.shape[1] != spec.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels, spec.in_channels is {spec.in_channels}")
        out = x
        if spec.start_kernel:
            out = self.start(out, spec.start_kernel, None, spec.start_stride)
        out = self.expand(out, spec.mid_channels, spec.act)
        if spec.mid_kernel:
            out = self.mid(out, spec.mid_kernel, spec.act)
        if spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.project(out, spec.out_channels, None)
        return out + x if spec.residual else out

    @torch.no_grad()
    def copy_into(self, dst: UniversalInvertedBottleneck) -> None:
        """Copy the weights of ``dst.spec``'s slice (transformed kernels, BN statistics) into the
        static block ``dst`` (extraction); ``dst`` holds copies, not views."""
        spec = dst.spec
        self._check(spec)
        if spec.start_kernel:
            self.start.copy_into(dst.start, spec.in_channels, spec.start_kernel)
        self.expand.copy_into(dst.expand)
        if spec.mid_kernel:
            self.mid.copy_into(dst.mid, spec.mid_channels, spec.mid_kernel)
        if spec.has_se:
            self.se.copy_into(dst.se, spec.mid_channels, spec.se_channels)
        self.project.copy_into(dst.project)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Sort the mid channels (and SE hidden units) by importance, with the optimizer's state.

        The mid channels by the L1 norm of the projection weights that read them, the SE hidden
        units by that of the SE expand weights (see :mod:`nas.blocks._reorder`); every tensor
        indexed by them is permuted alike, so the largest member computes the same function. The
        start depthwise conv works on the input channels, whose order the previous block fixes:
        it is left alone (and the kernel transforms are shared by all channels).
        """

        mid = importance_order(self.project.conv.weight, 1)
        self.expand.permute_outputs(mid, optimizer)
        if self.mid is not None:
            self.mid.permute(mid, optimizer)
        if self.se is not None:
            self.se.reorder(mid, optimizer)
        permute_(self.project.conv.weight, 1, mid, optimizer)


@pydantic_dataclass(frozen=True, config=CHOICES_CONFIG)
class UIBChoices:
    """A stage's UIB choices in YAML: ``start_kernels`` and ``mid_kernels`` (0: no depthwise conv
    there), ``expansions``, ``se``, ``acts``."""

    start_kernels: Annotated[tuple[StrictInt, ...], AfterValidator(sorted_choices(UIB_KERNELS))]
    mid_kernels: Annotated[tuple[StrictInt, ...], AfterValidator(sorted_choices(UIB_KERNELS))]
    expansions: Expansions
    se: SEChoices = (False,)
    acts: ActChoices = ("relu",)


_TOKEN_RE = re.compile(r"^s(\d+)m(\d+)e(\d+(?:\.\d+)?)(s?)([" + "".join(CODE_ACTIVATIONS) + r"])$")


@dataclass(frozen=True)
class UIBArch:
    """Choices of one UIB block: start and mid depthwise kernels (0: none), expansion, SE, activation."""

    start: int
    mid: int
    expand: float
    se: bool
    act: str

    def __post_init__(self) -> None:
        check_int("start", self.start)
        check_int("mid", self.mid)
        check_common(self)

    def to_string(self) -> str:
        return f"s{self.start}m{self.mid}e{self.expand:g}{'s' if self.se else ''}{act_code(self.act)}"


@register
class UIB(SearchableKind):
    name = "uib"
    spec_type = UIBSpec
    choices_type = UIBChoices
    arch_type = UIBArch
    token_prefix = "uib"

    # -- search side --------------------------------------------------------------------------------
    def axes(self, choices: UIBChoices) -> dict[str, tuple]:
        return {"start": choices.start_kernels, "mid": choices.mid_kernels, "expand": choices.expansions,
                "se": choices.se, "act": choices.acts}

    def problem(self, arch: UIBArch, stride: int) -> str | None:
        if stride != 1 and not (arch.start or arch.mid):
            return f"a stride-{stride} UIB needs a depthwise conv (start or mid kernel), an FFN block has none"
        return None

    def token(self, arch: UIBArch) -> str:
        return arch.to_string()

    def parse_token(self, text: str) -> UIBArch:
        m = _TOKEN_RE.match(text)
        if not m:
            raise ArchError(f"bad block token 'uib_{text}': expected uib_s<start>m<mid>e<expand>[s]<r|h> "
                            f"(kernels 0 for none), e.g. 'uib_s3m5e4sh'")
        return UIBArch(int(m[1]), int(m[2]), float(m[3]), m[4] == "s", CODE_ACTIVATIONS[m[5]])

    def resolve(self, arch: UIBArch, *, in_channels: int, out_channels: int, stride: int,
                se_reduction: int) -> UIBSpec:
        mid = expanded_channels(in_channels, arch.expand)
        return UIBSpec(in_channels, mid, out_channels, arch.start, arch.mid, stride,
                       se_units(mid, se_reduction) if arch.se else 0, arch.act)

    def elastic_module(self, specs: Sequence[UIBSpec], *, kernel_transform: bool,
                       skip_padding_taps: bool) -> ElasticUIB:
        return ElasticUIB(
            max_in=max(b.in_channels for b in specs),
            max_mid=max(b.mid_channels for b in specs),
            max_out=max(b.out_channels for b in specs),
            max_se=max(b.se_channels for b in specs),
            start_kernels=tuple(sorted({b.start_kernel for b in specs} - {0})),
            mid_kernels=tuple(sorted({b.mid_kernel for b in specs} - {0})),
            stride=specs[0].stride,
            kernel_transform=kernel_transform,
            skip_padding_taps=skip_padding_taps,
        )

    # -- network side -------------------------------------------------------------------------------

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

    def op_counts(self, layer: LayerSpec) -> OpCounts:
        ci, hi, wi = layer.in_shape
        co, ho, wo = layer.out_shape
        m, ks, km = layer.mid_channels, layer.start_kernel, layer.kernel
        # the expansion runs after the start depthwise conv: at its output size (stride there when no mid)
        h, w = (conv_out(hi, ks, 1 if km else layer.stride), conv_out(wi, ks, 1 if km else layer.stride)) if ks \
            else (hi, wi)
        return OpCounts(
            dense_madds=ci * m * h * w + m * co * ho * wo,
            depthwise_madds=ks * ks * ci * h * w + km * km * m * ho * wo,
            se_work=2.0 * m * ho * wo + 2 * m * layer.se_channels if layer.se_channels else 0.0,
            hswish_elements=m * h * w + (m * ho * wo if km else 0) if layer.act == "hswish" else 0.0,
        )

    def static_module(self, spec: UIBSpec) -> nn.Module:
        return UniversalInvertedBottleneck(spec)

    def spec_from_layer(self, layer: LayerSpec) -> UIBSpec:
        return UIBSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.start_kernel, layer.kernel,
                       layer.stride, layer.se_channels, layer.act)
