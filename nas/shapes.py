"""The one shape walker: a network (+ input resolution) -> ordered list of :class:`LayerSpec`.

Every computation that needs per-layer shapes (cost model, latency table keys, latency
measurement) goes through :func:`walk`; there is no second walker.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.netspec import NetworkSpec

__all__ = ["LayerSpec", "walk", "conv_out"]

Shape = tuple[int, int, int]  # (channels, height, width)


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output side of a 'same'-padded conv (padding = kernel // 2)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class LayerSpec:
    """One measurable layer of a network, with its input and output shapes.

    ``kind`` is ``stem`` (conv-BN-act), ``bneck`` (an inverted-residual block), ``final_conv``
    (1x1 expansion before pooling) or ``classifier`` (pool -> [hidden] -> logits; shapes of the
    pooled vector are reported as (C, 1, 1)).
    """

    kind: str
    in_shape: Shape
    out_shape: Shape
    kernel: int = 1
    stride: int = 1
    mid_channels: int = 0
    se_channels: int = 0
    act: str = ""
    residual: bool = False
    hidden: int = 0
    hidden_act: str = ""
    index: int = -1  # block index for bnecks

    @property
    def key(self) -> str:
        """Identity of the layer for latency tables: everything that changes its cost."""
        ci, hi, wi = self.in_shape
        co, ho, wo = self.out_shape
        base = f"{self.kind}-i{ci}x{hi}x{wi}-o{co}x{ho}x{wo}"
        if self.kind == "stem":
            return f"{base}-k{self.kernel}-s{self.stride}-{self.act}"
        if self.kind == "bneck":
            return (
                f"{base}-e{self.mid_channels}-k{self.kernel}-s{self.stride}"
                f"-se{self.se_channels}-{self.act}-r{int(self.residual)}"
            )
        if self.kind == "final_conv":
            return f"{base}-{self.act}"
        return f"{base}-h{self.hidden}-{self.hidden_act}"


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

    for i, b in enumerate(spec.blocks):
        ho, wo = conv_out(h, b.kernel, b.stride), conv_out(w, b.kernel, b.stride)
        layers.append(
            LayerSpec(
                "bneck",
                (c, h, w),
                (b.out_channels, ho, wo),
                kernel=b.kernel,
                stride=b.stride,
                mid_channels=b.mid_channels,
                se_channels=b.se_channels,
                act=b.act,
                residual=b.residual,
                index=i,
            )
        )
        c, h, w = b.out_channels, ho, wo

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
