"""Architecture encoding: the choices that pick one network out of a search space.

An :class:`Arch` holds a resolution, a width multiplier and, per stage, the active blocks' picks:
each one arch of a searchable block kind (:mod:`nas.blocks`: a bneck's ``BlockArch``, a UIB's
``UIBArch``, ...), written as that kind's token in the string form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nas.blocks import BlockArch, arch_from_dict, arch_from_token, arch_to_dict, arch_to_token, kind_of_arch
from nas.errors import ArchError

__all__ = ["BlockArch", "Arch"]


@dataclass(frozen=True)
class Arch:
    """One member of a search space.

    ``stages[i]`` holds the active blocks of stage ``i``: its depth is ``len(stages[i])``.
    ``space`` names the search space the choices refer to.
    """

    space: str
    resolution: int
    width: float
    stages: tuple[tuple[BlockArch, ...], ...]

    def __post_init__(self) -> None:
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int):
            raise ArchError(f"resolution must be an integer, got {self.resolution!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)):
            raise ArchError(f"width must be a number, got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))
        stages = tuple(tuple(stage) for stage in self.stages)
        object.__setattr__(self, "stages", stages)
        for i, stage in enumerate(stages):
            if not stage:
                raise ArchError(f"stages[{i}] has no blocks (depth must be >= 1)")
            for j, block in enumerate(stage):
                try:
                    kind_of_arch(block)
                except ArchError as exc:
                    raise ArchError(f"stages[{i}][{j}]: {exc}") from None

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(stage) for stage in self.stages)

    @property
    def blocks(self) -> tuple[Any, ...]:
        return tuple(block for stage in self.stages for block in stage)

    # -- dict / JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "resolution": self.resolution,
            "width": self.width,
            "stages": [[arch_to_dict(b) for b in stage] for stage in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Parse the output of :meth:`to_dict`, strictly (unknown or missing keys are errors)."""
        if not isinstance(data, dict):
            raise ArchError(f"an arch must be a mapping, got {type(data).__name__}")
        expected = {"space", "resolution", "width", "stages"}
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise ArchError(f"arch keys: missing {sorted(missing)}, unknown {sorted(extra)}")
        if not isinstance(data["stages"], list):
            raise ArchError("arch.stages must be a list of lists of blocks")
        stages = []
        for i, stage in enumerate(data["stages"]):
            if not isinstance(stage, list):
                raise ArchError(f"arch.stages[{i}] must be a list of blocks")
            blocks = []
            for j, block in enumerate(stage):
                try:
                    blocks.append(arch_from_dict(block))
                except ArchError as exc:
                    raise ArchError(f"arch.stages[{i}][{j}]: {exc}") from None
            stages.append(tuple(blocks))
        return cls(
            space=str(data["space"]),
            resolution=data["resolution"],
            width=data["width"],
            stages=tuple(stages),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- compact string ----------------------------------------------------------------------------
    def to_string(self) -> str:
        """Compact form, e.g. ``mobilenetv3_large r224 w1 | k3e1r | k5e4r k3e3r | ...`` (a UIB block: ``uib_s3m5e4sh``)."""
        stages = " | ".join(" ".join(arch_to_token(b) for b in stage) for stage in self.stages)
        return f"{self.space} r{self.resolution} w{self.width:g} | {stages}"

    @classmethod
    def from_string(cls, text: str) -> Arch:
        parts = [p.strip() for p in text.split("|")]
        header = parts[0].split()
        if len(header) != 3 or not header[1].startswith("r") or not header[2].startswith("w"):
            raise ArchError(f"bad arch string header {parts[0]!r}: expected '<space> r<res> w<width>'")
        try:
            resolution = int(header[1][1:])
            width = float(header[2][1:])
        except ValueError:
            raise ArchError(f"bad arch string header {parts[0]!r}") from None
        stages = tuple(tuple(arch_from_token(tok) for tok in p.split()) for p in parts[1:])
        return cls(space=header[0], resolution=resolution, width=width, stages=stages)

    def __str__(self) -> str:
        return self.to_string()
