from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.errors import ArchError
from nas.space import Arch, BlockArch


def test_sampling_is_deterministic(tiny_space):
    assert [tiny_space.sample(s) for s in range(5)] == [tiny_space.sample(s) for s in range(5)]
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    assert [tiny_space.sample(rng_a) for _ in range(5)] == [tiny_space.sample(rng_b) for _ in range(5)]
    assert len({tiny_space.sample(s) for s in range(50)}) > 40


def test_samples_are_members_and_cover_choices(tiny_space):
    kernels, depths = set(), set()
    for s in range(200):
        arch = tiny_space.sample(s)
        tiny_space.check(arch)
        kernels |= {b.kernel for b in arch.stages[1]}
        depths.add(arch.depths[1])
    assert kernels == {3, 5} and depths == {1, 2}


def test_largest_and_smallest(tiny_space):
    big, small = tiny_space.largest(), tiny_space.smallest()
    assert big in tiny_space and small in tiny_space
    assert big.resolution == 16 and big.width == 1.0 and big.depths == (1, 2, 2)
    assert all(b.kernel == 5 and b.expand == 6 and b.se and b.act == "hswish" for b in big.stages[1])
    assert small.resolution == 12 and small.width == 0.5 and small.depths == (1, 1, 1)
    assert all(b.kernel == 3 and b.expand == 3 and not b.se and b.act == "relu" for b in small.stages[2])


def _enumerate(space) -> int:
    """Brute-force count of distinct members (tiny spaces only)."""
    cfg = space.config
    per_stage = []
    for stage in cfg.stages:
        c = stage.choice
        choices = list(itertools.product(c.kernels, c.expansions, c.se, c.acts))
        per_stage.append(sum(len(list(itertools.product(choices, repeat=d))) for d in stage.depths))
    total = len(cfg.resolutions) * len(cfg.width_multipliers)
    for n in per_stage:
        total *= n
    return total


def test_count_is_exact(tiny_space):
    # per block: 2 kernels x 2 expansions x 2 SE x 2 acts = 16; depth 1 or 2 -> 16 + 256
    assert tiny_space.count() == 2 * 2 * 1 * (16 + 256) ** 2
    assert tiny_space.count() == _enumerate(tiny_space)


def test_check_names_the_offending_choice(tiny_space):
    arch = tiny_space.sample(0)
    stages = list(arch.stages)
    stages[1] = (BlockArch(7, 3, False, "relu"),) + stages[1][1:]
    bad = Arch(arch.space, 20, 1.0, tuple(stages))
    with pytest.raises(ArchError) as info:
        tiny_space.check(bad)
    assert "stages[1][0].kernel: 7 not in {3, 5}" in str(info.value)
    assert "resolution: 20 not in {12, 16}" in str(info.value)


def test_check_rejects_wrong_depth_and_space(tiny_space):
    arch = tiny_space.largest()
    deep = Arch("other", arch.resolution, arch.width, (arch.stages[0], arch.stages[1] * 2, arch.stages[2]))
    with pytest.raises(ArchError) as info:
        tiny_space.check(deep)
    assert "stages[1].depth: 4 not in {1, 2}" in str(info.value)
    assert "space: 'other'" in str(info.value)


def test_resolve_applies_channel_rules(tiny_space):
    arch = tiny_space.largest()
    spec = tiny_space.resolve(arch, num_classes=10)
    assert spec.resolution == 16 and spec.num_classes == 10
    first = spec.blocks[0]
    assert first.mid_channels == first.in_channels == 8 and not first.has_expand
    b = spec.blocks[1]
    assert (b.in_channels, b.mid_channels, b.out_channels, b.stride) == (8, 48, 16, 2)
    assert b.se_channels == 16  # make_divisible(48 / 4, 8)
    assert spec.blocks[2].residual and not spec.blocks[1].residual
    half = tiny_space.resolve(Arch("tiny", 16, 0.5, arch.stages), num_classes=10)
    assert half.stem.out_channels == 8  # make_divisible(4) floors at 8
    assert half.blocks[-1].out_channels == 16  # make_divisible(24 * 0.5) = 16 (never below 90%)
    assert half.head.classifier_channels == 48  # hidden layer keeps its width for w <= 1
    assert tiny_space.resolve(arch, 10, resolution=32).resolution == 32


def test_resolve_refuses_non_members(tiny_space):
    arch = tiny_space.largest()
    with pytest.raises(ArchError):
        tiny_space.resolve(Arch("tiny", 99, 1.0, arch.stages), 10)
