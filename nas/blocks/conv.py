"""A plain conv-BN-act block (MobileNetV4-Conv-S's first stages: timm's ``cn_`` blocks).

Searchable: per block a kernel (1, 3, 5) and the activation; token ``cn_k3r``. The elastic
module stores the largest kernel and centre-crops the smaller ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, StrictInt
from pydantic.dataclasses import dataclass as pydantic_dataclass
from torch import nn

from nas.activations import CODE_ACTIVATIONS, TOKEN_CODES
from nas.blocks._choices import CHOICES_CONFIG, ActChoices, act_code, check_int, sorted_choices
from nas.blocks._elastic import ElasticConvBN, activation
from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import ConvBNAct, bn_params
from nas.blocks._registry import OpCounts, SearchableKind, register
from nas.channels import check_act, check_positive
from nas.errors import ArchError

__all__ = ["ConvSpec", "ConvBlock", "ConvChoices", "ConvArch", "ElasticConvBlock", "CONV_KERNELS"]

#: Kernels a searchable conv block may have.
CONV_KERNELS = (1, 3, 5)


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


@pydantic_dataclass(frozen=True, config=CHOICES_CONFIG)
class ConvChoices:
    """A stage's conv choices in YAML: ``kernels`` and ``acts``."""

    kernels: Annotated[tuple[StrictInt, ...], AfterValidator(sorted_choices(CONV_KERNELS))]
    acts: ActChoices = ("relu",)


@dataclass(frozen=True)
class ConvArch:
    """Choices of one conv block: kernel and activation."""

    kernel: int
    act: str

    def __post_init__(self) -> None:
        check_int("kernel", self.kernel)
        if self.act not in TOKEN_CODES:
            raise ArchError(f"act must be one of {tuple(TOKEN_CODES)}, got {self.act!r}")


_TOKEN_RE = re.compile(r"^k(\d+)([" + "".join(CODE_ACTIVATIONS) + r"])$")


class ElasticConvBlock(nn.Module):
    """A conv-BN-act block at its largest size: the first ``in`` / ``out`` channels, the spec's
    kernel centre-cropped from the stored largest one."""

    reorderable = False  # its output channels are the next block's input: their order is shared

    def __init__(self, *, max_in: int, max_out: int, kernels: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernels = tuple(sorted(kernels))
        self.stride = stride
        self.conv = ElasticConvBN(max_in, max_out, kernel=self.kernels[-1], stride=stride)

    def _weight(self, spec: ConvSpec) -> torch.Tensor:
        if spec.kernel not in self.kernels:
            raise ValueError(f"spec.kernel must be one of {self.kernels}, got {spec.kernel}")
        w = self.conv.conv.active_weight(spec.in_channels, spec.out_channels)
        off = (self.kernels[-1] - spec.kernel) // 2
        return w[:, :, off : off + spec.kernel, off : off + spec.kernel] if off else w

    def forward(self, x: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
        out = F.conv2d(x, self._weight(spec), None, self.stride, spec.kernel // 2)
        return activation(self.conv.bn(out), spec.act, inplace=True)

    @torch.no_grad()
    def copy_into(self, dst: nn.Module) -> None:
        dst[0].weight.copy_(self._weight(dst.spec))
        self.conv.bn.copy_into(dst[1])

    def reorder(self, optimizer=None) -> None:
        raise RuntimeError("a conv block is not re-orderable")


@register
class ConvBlock(SearchableKind):
    name = "conv"
    spec_type = ConvSpec
    choices_type = ConvChoices
    arch_type = ConvArch
    token_prefix = "cn"

    # -- search side --------------------------------------------------------------------------------
    def axes(self, choices: ConvChoices) -> dict[str, tuple]:
        return {"kernel": choices.kernels, "act": choices.acts}

    def token(self, arch: ConvArch) -> str:
        return f"k{arch.kernel}{act_code(arch.act)}"

    def parse_token(self, text: str) -> ConvArch:
        m = _TOKEN_RE.match(text)
        if not m:
            raise ArchError(f"bad block token 'cn_{text}': expected cn_k<kernel><r|h>, e.g. 'cn_k3r'")
        return ConvArch(int(m[1]), CODE_ACTIVATIONS[m[2]])

    def resolve(self, arch: ConvArch, *, in_channels: int, out_channels: int, stride: int,
                se_reduction: int) -> ConvSpec:
        return ConvSpec(in_channels, out_channels, arch.kernel, stride, arch.act)

    def elastic_module(self, specs: Sequence[ConvSpec], *, kernel_transform: bool,
                       skip_padding_taps: bool) -> ElasticConvBlock:
        return ElasticConvBlock(max_in=max(b.in_channels for b in specs), max_out=max(b.out_channels for b in specs),
                                kernels=tuple(sorted({b.kernel for b in specs})), stride=specs[0].stride)

    # -- network side -------------------------------------------------------------------------------

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
