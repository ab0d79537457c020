"""A search space: sampling, extremes, counting, membership, and resolution to a network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nas.blocks import kind_of_arch
from nas.blocks import fmt_set as _fmt
from nas.errors import ArchError
from nas.netspec import HeadSpec, NetworkSpec, StemSpec, classifier_hidden, scaled_channels
from nas.space._arch import Arch
from nas.space._schema import SpaceConfig, StageConfig, load_space_config
from nas.space._slots import Slot, stage_slots

__all__ = ["SearchSpace", "load_space"]


class SearchSpace:
    """Wraps a validated :class:`SpaceConfig` with the operations the pipeline needs."""

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config
        self._slots = tuple(stage_slots(stage) for stage in config.stages)

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        return cls(load_space_config(name_or_path))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def digest(self) -> str:
        return self.config.digest

    @property
    def stages(self) -> tuple[StageConfig, ...]:
        return self.config.stages

    def slot(self, stage: int, position: int) -> Slot:
        """The picks block ``position`` of stage ``stage`` may take (the first block's stride differs)."""
        first, later = self._slots[stage]
        return first if position == 0 else later

    def slots(self, stage: int) -> tuple[Slot, Slot]:
        """``(first, later)``: the picks of the stage's first block and of any later one."""
        return self._slots[stage]

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, stages={len(self.stages)}, size={self.count():.3g})"

    # -- members -----------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """Draw a member: every choice (resolution, width, depth, each block's settings) uniform.

        Args:
            rng: a ``numpy.random.Generator`` or a seed; the same seed gives the same arch.
        """
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

        def pick(values: tuple):
            return values[int(rng.integers(len(values)))]

        resolution = int(pick(self.config.resolutions))
        width = float(pick(self.config.width_multipliers))
        stages = []
        for i, stage in enumerate(self.stages):
            depth = int(pick(stage.depths))
            stages.append(tuple(self.slot(i, j).sample(rng) for j in range(depth)))
        return Arch(self.name, resolution, width, tuple(stages))

    def _extreme(self, index: int) -> Arch:
        # index -1: largest (choices are sorted ascending, hswish after relu, True after False)
        stages = tuple(
            tuple(self.slot(i, j).extreme(index) for j in range(stage.depths[index]))
            for i, stage in enumerate(self.stages)
        )
        return Arch(
            self.name,
            self.config.resolutions[index],
            self.config.width_multipliers[index],
            stages,
        )

    def largest(self) -> Arch:
        """Max resolution, width, depth, kernel and expansion; SE and h-swish where allowed."""
        return self._extreme(-1)

    def smallest(self) -> Arch:
        """Min resolution, width, depth, kernel and expansion; no SE and ReLU where allowed."""
        return self._extreme(0)

    def count(self) -> int:
        """Number of distinct architectures in the space (exact integer)."""
        total = len(self.config.resolutions) * len(self.config.width_multipliers)
        for (first, later), stage in zip(self._slots, self.stages):
            total *= sum(first.count() * later.count() ** (d - 1) for d in stage.depths)
        return total

    def log10_count(self) -> float:
        return math.log10(self.count())

    def check(self, arch: Arch) -> None:
        """Raise :class:`ArchError` naming every choice of ``arch`` that the space does not allow."""
        problems = []
        if arch.space != self.name:
            problems.append(f"space: {arch.space!r} is not this space ({self.name!r})")
        if arch.resolution not in self.config.resolutions:
            problems.append(f"resolution: {arch.resolution} not in {_fmt(self.config.resolutions)}")
        if arch.width not in self.config.width_multipliers:
            problems.append(f"width: {arch.width:g} not in {_fmt(self.config.width_multipliers)}")
        if len(arch.stages) != len(self.stages):
            problems.append(f"stages: {len(arch.stages)} stages, the space has {len(self.stages)}")
        for i, (blocks, stage) in enumerate(zip(arch.stages, self.stages)):
            if len(blocks) not in stage.depths:
                problems.append(f"stages[{i}].depth: {len(blocks)} not in {_fmt(stage.depths)}")
            for j, b in enumerate(blocks):
                problems.extend(self.slot(i, j).problems(b, f"stages[{i}][{j}]"))
        if problems:
            raise ArchError(f"arch is not in space {self.name!r}: " + "; ".join(problems))

    def __contains__(self, arch: Arch) -> bool:
        try:
            self.check(arch)
        except ArchError:
            return False
        return True

    # -- resolution to a concrete network ---------------------------------------------------------
    def resolve(self, arch: Arch, num_classes: int, resolution: int | None = None) -> NetworkSpec:
        """Turn ``arch`` into a :class:`NetworkSpec` with every channel count fixed.

        The width multiplier is applied here, once, with the channel rules of :mod:`nas.channels`
        (``make_divisible(c * width, 8)``) to the stem, every stage and the final 1x1 expansion; the
        classifier's hidden layer keeps its width for multipliers <= 1, as in MobileNetV2/V3. Each
        block's kind resolves its own channels (mid, SE) from its input and output channels. ``resolution`` overrides the arch's (deployment at
        another size than the one searched).
        """
        self.check(arch)
        cfg = self.config
        w = arch.width
        stem = StemSpec(
            out_channels=scaled_channels(cfg.stem.out_channels, w),
            kernel=cfg.stem.kernel,
            stride=cfg.stem.stride,
            act=cfg.stem.act,
        )
        blocks = []
        in_ch = stem.out_channels
        for stage, stage_arch in zip(self.stages, arch.stages):
            out_ch = scaled_channels(stage.out_channels, w)
            for j, b in enumerate(stage_arch):
                blocks.append(kind_of_arch(b).resolve(b, in_channels=in_ch, out_channels=out_ch,
                                                      stride=stage.stride if j == 0 else 1,
                                                      se_reduction=cfg.se_reduction))
                in_ch = out_ch
        head = HeadSpec(
            final_channels=scaled_channels(cfg.head.final_channels, w),
            final_act=cfg.head.final_act,
            classifier_channels=classifier_hidden(cfg.head.classifier_channels, w),
            classifier_act=cfg.head.classifier_act,
            dropout=cfg.head.dropout,
        )
        return NetworkSpec(
            name=arch.to_string(),
            in_channels=cfg.in_channels,
            resolution=resolution if resolution is not None else arch.resolution,
            num_classes=num_classes,
            stem=stem,
            blocks=tuple(blocks),
            head=head,
        )


    def covering_archs(self, resolution: int, width: float) -> list[Arch]:
        """Members that together hold every pick of every block position at ``resolution`` and
        ``width``: arch ``i`` takes pick ``i`` (mod the slot's count) in every block of each stage
        at the stage's largest depth. A block's channels and table key depend only on its own pick,
        the width and its position (first block of a stage or a later one), so these members reach
        every layer any member can have (the supernet's stored sizes, the latency table's keys)."""
        slots = [(first.options, later.options) for first, later in self._slots]
        n = max(max(len(f), len(l)) for f, l in slots)
        return [
            Arch(
                self.name,
                resolution,
                width,
                tuple(
                    (first[i % len(first)],) + (later[i % len(later)],) * (stage.depths[-1] - 1)
                    for (first, later), stage in zip(slots, self.stages)
                ),
            )
            for i in range(n)
        ]


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a shipped space by name (``mobilenetv3_large``) or any YAML file by path."""
    return SearchSpace.load(name_or_path)
