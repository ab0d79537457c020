"""The supernet stores every layer at its largest size and runs any member explicitly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.errors import ArchError
from nas.space import load_space
from nas.supernet import Supernet, max_specs


def test_stored_sizes_are_the_largest_any_member_needs(tiny_space):
    supernet = Supernet(tiny_space, 4)
    rng = np.random.default_rng(0)
    archs = [tiny_space.largest(), tiny_space.smallest()] + [tiny_space.sample(rng) for _ in range(200)]
    for arch in archs:
        spec = tiny_space.resolve(arch, 4)
        assert spec.stem.out_channels <= supernet.stem.conv.weight.shape[0]
        for block, b in zip(supernet.blocks_of(arch), spec.blocks):
            assert b.mid_channels <= block.depthwise.conv.weight.shape[0]
            assert b.out_channels <= block.project.conv.weight.shape[0]
            assert not b.has_expand or b.mid_channels <= block.expand.conv.weight.shape[0]
            assert not b.has_se or b.se_channels <= block.se.reduce.weight.shape[0]
    # ... and that bound is reached (nothing stored that no member uses)
    largest = tiny_space.resolve(tiny_space.largest(), 4)
    assert supernet.stem.conv.weight.shape[0] == largest.stem.out_channels
    assert supernet.final_conv.conv.weight.shape[0] == largest.head.final_channels
    assert [b.depthwise.conv.weight.shape[0] for b in supernet.blocks_of(tiny_space.largest())] == [
        b.mid_channels for b in largest.blocks
    ]


def test_expand_conv_exists_only_where_some_member_expands(tiny_space):
    supernet = Supernet(tiny_space, 4)
    assert supernet.stages[0][0].expand is None  # stage 'first' has expansion 1 only
    assert supernet.stages[1][0].expand is not None  # expansions {1, 3, 4}
    n_picks = max(max(f.count(), l.count()) for f, l in map(tiny_space.slots, range(len(tiny_space.stages))))
    assert len(max_specs(tiny_space, 4)) == 2 * n_picks  # widths x covering members


@pytest.mark.parametrize("seed", range(5))
def test_forward_gives_logits_for_any_member_at_its_resolution(tiny_space, seed):
    supernet = Supernet(tiny_space, 4).eval()
    arch = tiny_space.sample(seed)
    x = torch.randn(2, 3, arch.resolution, arch.resolution)
    assert supernet(x, arch).shape == (2, 4)


def test_arch_of_another_space_is_refused(tiny_space):
    supernet = Supernet(tiny_space, 4)
    other = load_space("mobilenetv3_small32").largest()
    with pytest.raises(ArchError, match="not in space 'tiny'"):
        supernet(torch.randn(1, 3, 16, 16), other)


def test_bad_num_classes_is_refused(tiny_space):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        Supernet(tiny_space, 1)


def test_initialisation_is_seeded_and_leaves_global_rng_alone(tiny_space):
    state = torch.get_rng_state()
    a, b, c = Supernet(tiny_space, 4, seed=3), Supernet(tiny_space, 4, seed=3), Supernet(tiny_space, 4, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.stem.conv.weight, c.stem.conv.weight)


def test_forward_has_no_hidden_state(tiny_space):
    # running two archs in any order gives the same outputs: no active-subnet state survives a call
    supernet = Supernet(tiny_space, 4).eval()
    big, small = tiny_space.largest(), tiny_space.smallest()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        first = supernet(x, small)
        supernet(x, big)
        again = supernet(x, small)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
