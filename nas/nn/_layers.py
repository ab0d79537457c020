"""The static layers (their home is :mod:`nas.blocks`; re-exported here for ``nas.nn`` users)."""

from __future__ import annotations

from nas.activations import make_activation
from nas.blocks import ConvBNAct, InvertedResidual, SqueezeExcite

__all__ = ["make_activation", "ConvBNAct", "SqueezeExcite", "InvertedResidual"]
