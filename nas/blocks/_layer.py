"""What the shape walker reports per layer: :class:`LayerSpec`, and the 'same'-padding rule."""

from __future__ import annotations

from dataclasses import dataclass

from nas.blocks._registry import kind_named

__all__ = ["LayerSpec", "Shape", "conv_out"]

Shape = tuple[int, int, int]  # (channels, height, width)


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output side of a 'same'-padded conv (padding = kernel // 2)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass(frozen=True)
class LayerSpec:
    """One measurable layer of a network, with its input and output shapes.

    ``kind`` is ``stem`` (conv-BN-act), a block kind (``bneck``, ``uib``, ...: one whole block),
    ``final_conv`` (1x1 expansion before pooling) or ``classifier`` (pool -> [hidden] -> logits;
    shapes of the pooled vector are reported as (C, 1, 1)). ``start_kernel`` is a UIB block's
    depthwise conv before its expansion (0: none); ``kernel`` is the main (or mid) kernel.
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
    index: int = -1  # block index for blocks
    start_kernel: int = 0

    @property
    def key(self) -> str:
        """Identity of the layer for latency tables: everything that changes its cost."""
        ci, hi, wi = self.in_shape
        co, ho, wo = self.out_shape
        base = f"{self.kind}-i{ci}x{hi}x{wi}-o{co}x{ho}x{wo}"
        if self.kind == "stem":
            return f"{base}-k{self.kernel}-s{self.stride}-{self.act}"
        if self.kind == "final_conv":
            return f"{base}-{self.act}"
        if self.kind == "classifier":
            return f"{base}-h{self.hidden}-{self.hidden_act}"
        return f"{base}-{kind_named(self.kind).key(self)}"
