"""Block kinds: one module per kind, found through a registry by name or arch-token prefix.

``bneck`` (MobileNetV3's inverted residual), ``uib`` (MobileNetV4's Universal Inverted
Bottleneck) and ``conv`` (conv-BN-act, MobileNetV4-Conv-S's first stages) are searchable; ``fused``
(the fused inverted bottleneck) appears in presets. A kind owns its resolved spec, the layer the shape walker reports and its
latency-table key, its cost formula and operation counts and its static module
(:class:`BlockKind`); a searchable kind also its YAML choice fields, its per-block arch and token,
how a pick resolves to channels and its elastic supernet module (:class:`SearchableKind`). The
builder, the walker, the cost model, the search space, the search, the supernet and the latency
tables dispatch through the registry and know no kind by name. A new kind is one module here with
a ``@register``-ed kind class (see docs/blocks.md).
"""

from nas.blocks._choices import (
    CHOICES_CONFIG,
    MAX_SHOWN_CHARS,
    ActChoices,
    Expansions,
    Number,
    PositiveInt,
    SearchAct,
    choice_list,
    fmt_set,
    member,
    short,
)
from nas.blocks._elastic import (
    ElasticBatchNorm2d,
    ElasticBiasConv,
    ElasticConv,
    ElasticConvBN,
    ElasticDepthwise,
    ElasticDepthwiseBN,
    ElasticLinear,
    ElasticSqueezeExcite,
)
from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import BlockShape, ConvBNAct, SqueezeExcite
from nas.blocks._registry import (
    DEFAULT_KIND,
    BlockKind,
    OpCounts,
    SearchableKind,
    arch_from_dict,
    arch_from_token,
    arch_to_dict,
    arch_to_token,
    block_from_dict,
    block_kinds,
    block_to_dict,
    kind_named,
    kind_of,
    kind_of_arch,
    kind_of_choices,
    register,
    searchable_kind,
    searchable_kinds,
    unregister,
)
from nas.blocks._reorder import importance_order, permute_
from nas.blocks.bneck import BNECK_KERNELS, BlockArch, BneckChoices, BneckSpec, ElasticBneck, InvertedResidual
from nas.blocks.conv import CONV_KERNELS, ConvArch, ConvChoices, ConvSpec, ElasticConvBlock
from nas.blocks.fused import FusedInvertedBottleneck, FusedSpec
from nas.blocks.uib import UIB_KERNELS, ElasticUIB, UIBArch, UIBChoices, UIBSpec, UniversalInvertedBottleneck

__all__ = [
    "ActChoices",
    "BlockShape",
    "CHOICES_CONFIG",
    "Expansions",
    "MAX_SHOWN_CHARS",
    "Number",
    "PositiveInt",
    "SearchAct",
    "choice_list",
    "fmt_set",
    "member",
    "short",
    "BNECK_KERNELS",
    "DEFAULT_KIND",
    "UIB_KERNELS",
    "BlockArch",
    "BlockKind",
    "BneckChoices",
    "BneckSpec",
    "ConvBNAct",
    "CONV_KERNELS",
    "ConvArch",
    "ConvChoices",
    "ConvSpec",
    "ElasticConvBlock",
    "ElasticBatchNorm2d",
    "ElasticBiasConv",
    "ElasticBneck",
    "ElasticConv",
    "ElasticConvBN",
    "ElasticDepthwise",
    "ElasticDepthwiseBN",
    "ElasticLinear",
    "ElasticSqueezeExcite",
    "ElasticUIB",
    "FusedInvertedBottleneck",
    "FusedSpec",
    "InvertedResidual",
    "LayerSpec",
    "OpCounts",
    "SearchableKind",
    "Shape",
    "SqueezeExcite",
    "UIBArch",
    "UIBChoices",
    "UIBSpec",
    "UniversalInvertedBottleneck",
    "arch_from_dict",
    "arch_from_token",
    "arch_to_dict",
    "arch_to_token",
    "block_from_dict",
    "block_kinds",
    "block_to_dict",
    "conv_out",
    "importance_order",
    "kind_named",
    "kind_of",
    "kind_of_arch",
    "kind_of_choices",
    "permute_",
    "register",
    "searchable_kind",
    "searchable_kinds",
    "unregister",
]
