"""The one shape walker: a network (+ input resolution) -> ordered list of :class:`LayerSpec`.

Every computation that needs per-layer shapes (cost model, latency table keys, latency
measurement) goes through :func:`walk`; there is no second walker.
"""

from __future__ import annotations

from nas.blocks import LayerSpec, conv_out, kind_of
from nas.netspec import NetworkSpec

__all__ = ["LayerSpec", "walk", "conv_out"]

def walk(spec: NetworkSpec, resolution: int | None = None) -> list[LayerSpec]:
    """Walk ``spec`` at ``resolution`` (default: the spec's own) and return its layers in order."""
    res = spec.resolution if resolution is None else resolution
    if res <= 0:
        raise ValueError(f"resolution must be positive, got {res}")
    layers: list[LayerSpec] = []
    c, h, w = spec.in_channels, res, res

    stem = spec.stem
    ho, wo = conv_out(h, stem.kernel, stem.stride), conv_out(w, stem.kernel, stem.stride)
    layers.append(
        LayerSpec("stem", (c, h, w), (stem.out_channels, ho, wo), stem.kernel, stem.stride, act=stem.act)
    )
    c, h, w = stem.out_channels, ho, wo

    for i, b in enumerate(spec.blocks):  # each block kind reports its own layer
        layer = kind_of(b).layer(b, (c, h, w), i)
        layers.append(layer)
        c, h, w = layer.out_shape

    head = spec.head
    layers.append(LayerSpec("final_conv", (c, h, w), (head.final_channels, h, w), act=head.final_act))
    layers.append(
        LayerSpec(
            "classifier",
            (head.final_channels, h, w),
            (spec.num_classes, 1, 1),
            hidden=head.classifier_channels,
            hidden_act=head.classifier_act if head.classifier_channels else "",
        )
    )
    return layers
