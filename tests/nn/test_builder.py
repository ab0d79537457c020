from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.netspec import BlockSpec, HeadSpec, NetworkSpec, StemSpec
from nas.nn import InvertedResidual, SqueezeExcite, build_network


def test_block_parts_follow_the_spec():
    block = InvertedResidual(BlockSpec(16, 64, 16, kernel=5, stride=1, se_channels=16, act="hswish"))
    assert isinstance(block.se, SqueezeExcite) and block.residual
    assert block.depthwise[0].kernel_size == (5, 5) and block.depthwise[0].groups == 64
    assert isinstance(block.depthwise[2], nn.Hardswish)
    assert isinstance(block.project[2], nn.Identity)  # linear bottleneck
    plain = InvertedResidual(BlockSpec(16, 16, 24, kernel=3, stride=2, act="relu"))
    assert isinstance(plain.expand, nn.Identity) and isinstance(plain.se, nn.Identity)
    assert not plain.residual
    x = torch.randn(2, 16, 8, 8)
    assert plain(x).shape == (2, 24, 4, 4)


def test_residual_is_added():
    block = InvertedResidual(BlockSpec(8, 16, 8, kernel=3, stride=1)).eval()
    nn.init.zeros_(block.project[1].weight)  # projection output becomes 0 (BN gamma = 0)
    x = torch.randn(1, 8, 4, 4)
    assert torch.allclose(block(x), x)


def test_se_hidden_width_and_gate():
    se = SqueezeExcite(32, 8)
    assert se.reduce.out_channels == 8 and se.expand.out_channels == 32
    x = torch.randn(2, 32, 4, 4)
    y = se(x)
    ratio = y / x
    assert torch.all(ratio >= 0) and torch.all(ratio <= 1)  # hard-sigmoid gate in [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel": 4}, "kernel must be odd"),
        ({"stride": 3}, "stride must be 1 or 2"),
        ({"act": "gelu"}, "act must be one of"),
        ({"se_channels": -1}, "se_channels"),
    ],
)
def test_block_spec_validation(kwargs, message):
    args = dict(in_channels=8, mid_channels=16, out_channels=8, kernel=3, stride=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        BlockSpec(**args)


def test_network_spec_checks_channel_chain_and_round_trips():
    stem = StemSpec(8)
    blocks = (BlockSpec(8, 16, 12, 3, 2), BlockSpec(12, 24, 12, 3, 1))
    spec = NetworkSpec("n", 3, 32, 5, stem, blocks, HeadSpec(32))
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"blocks\[1\].in_channels is 10"):
        NetworkSpec("n", 3, 32, 5, stem, (blocks[0], BlockSpec(10, 24, 12, 3, 1)), HeadSpec(32))
    model = build_network(spec)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_search_space_members_build(tiny_space):
    for seed in range(5):
        arch = tiny_space.sample(seed)
        model = build_network(tiny_space.resolve(arch, num_classes=3)).eval()
        out = model(torch.randn(2, 3, arch.resolution, arch.resolution))
        assert out.shape == (2, 3)
