"""Static networks: layers, the builder, and reference presets."""

from nas.nn._builder import (
    FEATURE_REDUCTIONS,
    Classifier,
    FeatureExtractor,
    MobileNet,
    build_network,
    feature_info,
    features_only,
    init_weights,
)
from nas.nn._layers import ConvBNAct, InvertedResidual, SqueezeExcite, make_activation
from nas.nn._presets import PRESETS, get_preset, is_preset, preset_names

__all__ = [
    "FEATURE_REDUCTIONS",
    "PRESETS",
    "FeatureExtractor",
    "feature_info",
    "features_only",
    "Classifier",
    "ConvBNAct",
    "InvertedResidual",
    "MobileNet",
    "SqueezeExcite",
    "build_network",
    "get_preset",
    "init_weights",
    "is_preset",
    "make_activation",
    "preset_names",
]
