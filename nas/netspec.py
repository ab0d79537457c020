"""Concrete description of one static network: every channel count resolved.

A :class:`NetworkSpec` is what the builder, the shape walker and the cost model consume. It is
produced either by resolving an :class:`~nas.space.Arch` against its search space, or directly by a
reference preset (MobileNetV3-Large/Small, MobileNetV2, MnasNet-A1) whose published tables give
explicit expansion channel counts that no single expansion ratio reproduces.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from nas.activations import ACTIVATIONS

__all__ = [
    "ACTIVATIONS",
    "StemSpec",
    "BlockSpec",
    "HeadSpec",
    "NetworkSpec",
    "make_divisible",
]



def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it.

    The rule of the MobileNet reference implementations (``_make_divisible``).
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def _check_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _check_act(owner: str, name: str, act: str) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"{owner}.{name} must be one of {ACTIVATIONS}, got {act!r}")


@dataclass(frozen=True)
class StemSpec:
    """First convolution: ``kernel x kernel`` conv, BatchNorm, activation."""

    out_channels: int
    kernel: int = 3
    stride: int = 2
    act: str = "hswish"

    def __post_init__(self) -> None:
        _check_positive("stem", out_channels=self.out_channels, kernel=self.kernel, stride=self.stride)
        _check_act("stem", "act", self.act)


@dataclass(frozen=True)
class BlockSpec:
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
        _check_positive(
            "block",
            in_channels=self.in_channels,
            mid_channels=self.mid_channels,
            out_channels=self.out_channels,
            kernel=self.kernel,
        )
        if self.kernel % 2 != 1:
            raise ValueError(f"block.kernel must be odd, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"block.stride must be 1 or 2, got {self.stride!r}")
        if not isinstance(self.se_channels, int) or self.se_channels < 0:
            raise ValueError(f"block.se_channels must be an integer >= 0, got {self.se_channels!r}")
        _check_act("block", "act", self.act)

    @property
    def has_expand(self) -> bool:
        return self.mid_channels != self.in_channels

    @property
    def has_se(self) -> bool:
        return self.se_channels > 0

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class HeadSpec:
    """Final 1x1 expansion + BN + act, global average pool, optional hidden 1x1 (no BN) + act,
    dropout, linear classifier. ``classifier_channels == 0`` means no hidden layer (MobileNetV2)."""

    final_channels: int
    final_act: str = "hswish"
    classifier_channels: int = 0
    classifier_act: str = "hswish"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check_positive("head", final_channels=self.final_channels)
        if not isinstance(self.classifier_channels, int) or self.classifier_channels < 0:
            raise ValueError(
                f"head.classifier_channels must be an integer >= 0, got {self.classifier_channels!r}"
            )
        _check_act("head", "final_act", self.final_act)
        _check_act("head", "classifier_act", self.classifier_act)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head.dropout must be in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True)
class NetworkSpec:
    """A whole static network. ``resolution`` is the input side it is meant to run at."""

    name: str
    in_channels: int
    resolution: int
    num_classes: int
    stem: StemSpec
    blocks: tuple[BlockSpec, ...]
    head: HeadSpec

    def __post_init__(self) -> None:
        _check_positive(
            "network",
            in_channels=self.in_channels,
            resolution=self.resolution,
            num_classes=self.num_classes,
        )
        if not self.blocks:
            raise ValueError("network.blocks must not be empty")
        prev = self.stem.out_channels
        for i, block in enumerate(self.blocks):
            if block.in_channels != prev:
                raise ValueError(
                    f"network.blocks[{i}].in_channels is {block.in_channels} but the previous layer "
                    f"outputs {prev} channels"
                )
            prev = block.out_channels

    def replace(self, **changes: Any) -> NetworkSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        try:
            return cls(
                name=data["name"],
                in_channels=data["in_channels"],
                resolution=data["resolution"],
                num_classes=data["num_classes"],
                stem=StemSpec(**data["stem"]),
                blocks=tuple(BlockSpec(**b) for b in data["blocks"]),
                head=HeadSpec(**data["head"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a valid network spec: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
