"""A search space: sampling, extremes, counting, membership, and resolution to a network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nas.errors import ArchError
from nas.netspec import BlockSpec, HeadSpec, NetworkSpec, StemSpec, make_divisible
from nas.space._arch import Arch, BlockArch
from nas.space._schema import SpaceConfig, StageConfig, load_space_config

__all__ = ["SearchSpace", "load_space"]


def _fmt(values: tuple) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"


class SearchSpace:
    """Wraps a validated :class:`SpaceConfig` with the operations the pipeline needs."""

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config

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
        for stage in self.stages:
            depth = int(pick(stage.depths))
            stages.append(
                tuple(
                    BlockArch(
                        kernel=int(pick(stage.kernels)),
                        expand=float(pick(stage.expansions)),
                        se=bool(pick(stage.se)),
                        act=str(pick(stage.acts)),
                    )
                    for _ in range(depth)
                )
            )
        return Arch(self.name, resolution, width, tuple(stages))

    def _extreme(self, index: int) -> Arch:
        # index -1: largest (choices are sorted ascending, hswish after relu, True after False)
        stages = tuple(
            tuple(
                BlockArch(
                    kernel=stage.kernels[index],
                    expand=stage.expansions[index],
                    se=stage.se[index],
                    act=stage.acts[index],
                )
                for _ in range(stage.depths[index])
            )
            for stage in self.stages
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
        for stage in self.stages:
            total *= sum(stage.block_choices**d for d in stage.depths)
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
                where = f"stages[{i}][{j}]"
                if b.kernel not in stage.kernels:
                    problems.append(f"{where}.kernel: {b.kernel} not in {_fmt(stage.kernels)}")
                if b.expand not in stage.expansions:
                    problems.append(f"{where}.expand: {b.expand:g} not in {_fmt(stage.expansions)}")
                if b.se not in stage.se:
                    problems.append(f"{where}.se: {b.se} not in {_fmt(stage.se)}")
                if b.act not in stage.acts:
                    problems.append(f"{where}.act: {b.act!r} not in {_fmt(stage.acts)}")
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

        The width multiplier is applied here, once (``make_divisible(c * width, 8)``), to the stem,
        every stage and the final 1x1 expansion; the classifier's hidden layer keeps its width for
        multipliers <= 1, as in MobileNetV2/V3. ``resolution`` overrides the arch's (deployment at
        another size than the one searched).
        """
        self.check(arch)
        cfg = self.config
        w = arch.width
        stem = StemSpec(
            out_channels=make_divisible(cfg.stem.out_channels * w),
            kernel=cfg.stem.kernel,
            stride=cfg.stem.stride,
            act=cfg.stem.act,
        )
        blocks = []
        in_ch = stem.out_channels
        for stage, stage_arch in zip(self.stages, arch.stages):
            out_ch = make_divisible(stage.out_channels * w)
            for j, b in enumerate(stage_arch):
                mid = in_ch if b.expand == 1.0 else make_divisible(in_ch * b.expand)
                blocks.append(
                    BlockSpec(
                        in_channels=in_ch,
                        mid_channels=mid,
                        out_channels=out_ch,
                        kernel=b.kernel,
                        stride=stage.stride if j == 0 else 1,
                        se_channels=make_divisible(mid / cfg.se_reduction) if b.se else 0,
                        act=b.act,
                    )
                )
                in_ch = out_ch
        hidden = cfg.head.classifier_channels
        if hidden and w > 1.0:
            hidden = make_divisible(hidden * w)
        head = HeadSpec(
            final_channels=make_divisible(cfg.head.final_channels * w),
            final_act=cfg.head.final_act,
            classifier_channels=hidden,
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


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a shipped space by name (``mobilenetv3_large``) or any YAML file by path."""
    return SearchSpace.load(name_or_path)
