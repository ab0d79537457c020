"""Concrete description of one static network: every channel count resolved.

A :class:`NetworkSpec` is what the builder, the shape walker and the cost model consume; its
blocks are resolved specs of any registered block kind (:mod:`nas.blocks`), serialised with their
kind's name (a block without one is a bneck, as every file written before kinds existed). It is
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
from nas.blocks import BneckSpec, block_from_dict, block_to_dict, kind_of
from nas.channels import (check_act, check_positive, classifier_hidden, expanded_channels, make_divisible,
                          scaled_channels, se_units)

#: The MobileNetV3 bneck's spec (the block of every space so far); other kinds: ``nas.blocks``.
BlockSpec = BneckSpec

__all__ = [
    "ACTIVATIONS",
    "StemSpec",
    "BlockSpec",
    "HeadSpec",
    "NetworkSpec",
    "make_divisible",
    "expanded_channels",
    "se_units",
    "scaled_channels",
    "classifier_hidden",
]



@dataclass(frozen=True)
class StemSpec:
    """First convolution: ``kernel x kernel`` conv, BatchNorm, activation."""

    out_channels: int
    kernel: int = 3
    stride: int = 2
    act: str = "hswish"

    def __post_init__(self) -> None:
        check_positive("stem", out_channels=self.out_channels, kernel=self.kernel, stride=self.stride)
        check_act("stem", "act", self.act)


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
        check_positive("head", final_channels=self.final_channels)
        if not isinstance(self.classifier_channels, int) or self.classifier_channels < 0:
            raise ValueError(
                f"head.classifier_channels must be an integer >= 0, got {self.classifier_channels!r}"
            )
        check_act("head", "final_act", self.final_act)
        check_act("head", "classifier_act", self.classifier_act)
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
    blocks: tuple[Any, ...]  # resolved specs of registered block kinds (nas.blocks)
    head: HeadSpec

    def __post_init__(self) -> None:
        check_positive(
            "network",
            in_channels=self.in_channels,
            resolution=self.resolution,
            num_classes=self.num_classes,
        )
        if not self.blocks:
            raise ValueError("network.blocks must not be empty")
        prev = self.stem.out_channels
        for i, block in enumerate(self.blocks):
            try:
                kind_of(block)
            except TypeError as exc:
                raise ValueError(f"network.blocks[{i}]: {exc}") from None
            if block.in_channels != prev:
                raise ValueError(
                    f"network.blocks[{i}].in_channels is {block.in_channels} but the previous layer "
                    f"outputs {prev} channels"
                )
            prev = block.out_channels

    def replace(self, **changes: Any) -> NetworkSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["blocks"] = [block_to_dict(b) for b in self.blocks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        try:
            return cls(
                name=data["name"],
                in_channels=data["in_channels"],
                resolution=data["resolution"],
                num_classes=data["num_classes"],
                stem=StemSpec(**data["stem"]),
                blocks=tuple(block_from_dict(b) for b in data["blocks"]),
                head=HeadSpec(**data["head"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a valid network spec: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
