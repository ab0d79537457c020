"""Block kinds: one module per kind, found through a registry by name.

``bneck`` (MobileNetV3's inverted residual), ``uib`` (MobileNetV4's Universal Inverted
Bottleneck), ``fused`` (the fused inverted bottleneck) and ``conv`` (conv-BN-act). A kind owns its
resolved spec, the layer the shape walker reports and its latency-table key, its cost formula and
its static module (:class:`BlockKind`); the builder, the walker and the cost model dispatch
through :func:`kind_of` / :func:`kind_named` and know no kind by name. A new kind is one module
here with a ``@register``-ed :class:`BlockKind`.
"""

from nas.blocks._layer import LayerSpec, Shape, conv_out
from nas.blocks._modules import ConvBNAct, SqueezeExcite
from nas.blocks._registry import (
    DEFAULT_KIND,
    BlockKind,
    block_from_dict,
    block_kinds,
    block_to_dict,
    kind_named,
    kind_of,
    register,
)
from nas.blocks.bneck import BneckSpec, InvertedResidual
from nas.blocks.conv import ConvSpec
from nas.blocks.fused import FusedInvertedBottleneck, FusedSpec
from nas.blocks.uib import UIB_KERNELS, UIBSpec, UniversalInvertedBottleneck

__all__ = [
    "DEFAULT_KIND",
    "UIB_KERNELS",
    "BlockKind",
    "BneckSpec",
    "ConvBNAct",
    "ConvSpec",
    "FusedInvertedBottleneck",
    "FusedSpec",
    "InvertedResidual",
    "LayerSpec",
    "Shape",
    "SqueezeExcite",
    "UIBSpec",
    "UniversalInvertedBottleneck",
    "block_from_dict",
    "block_kinds",
    "block_to_dict",
    "conv_out",
    "kind_named",
    "kind_of",
    "register",
]
