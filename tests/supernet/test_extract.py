"""Conformance: an extracted static network computes exactly what the supernet computes.

Run over every elastic dimension of a tiny space (kernel with learned transforms, expansion
including 1 = no expand conv, SE, activation, depth, width multiplier, resolution), 20 random
members plus the largest and smallest; the shipped spaces are checked at small resolution.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.nn import MobileNet
from nas.space import load_space
from nas.supernet import Supernet, extract


def _archs(space, n=20, seed=0):
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n)]


def _conformance(space, randomize, *, skip_padding_taps, dtype, atol, resolution=None, n=20):
    supernet = Supernet(space, 10, skip_padding_taps=skip_padding_taps).to(dtype)
    randomize(supernet)
    supernet.eval()
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for arch in _archs(space, n):
        res = resolution or arch.resolution
        x = torch.randn(3, space.config.in_channels, res, res, generator=g, dtype=dtype)
        net = extract(supernet, arch)
        assert isinstance(net, MobileNet) and not net.training
        assert net.spec == space.resolve(arch, 10)
        with torch.no_grad():
            expected, got = supernet(x, arch), net(x)
        worst = max(worst, float((expected - got).abs().max()))
        torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=lambda m: f"{arch}: {m}")
    return worst


@pytest.mark.parametrize("skip_padding_taps", [False, True])
def test_extracted_equals_supernet_on_tiny_space(tiny_space, randomize, skip_padding_taps):
    _conformance(tiny_space, randomize, skip_padding_taps=skip_padding_taps, dtype=torch.float32, atol=1e-5)


def test_extracted_equals_supernet_in_float64(tiny_space, randomize):
    _conformance(tiny_space, randomize, skip_padding_taps=True, dtype=torch.float64, atol=1e-10)


def test_extracted_without_padding_skip_is_bit_identical(tiny_space, randomize):
    worst = _conformance(tiny_space, randomize, skip_padding_taps=False, dtype=torch.float32, atol=1e-5)
    assert worst == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name,resolution", [("mobilenetv3_small32", None), ("mobilenetv3_large", 32),
                                             ("mobilenet_mixed_small32", None), ("mobilenetv4_conv_small", 64)])
def test_extracted_equals_supernet_on_shipped_spaces(name, resolution, randomize):
    _conformance(load_space(name), randomize, skip_padding_taps=True, dtype=torch.float32, atol=1e-4,
                 resolution=resolution, n=20)


def test_extracted_copies_the_weights(tiny_space):
    supernet = Supernet(tiny_space, 4)
    net = supernet.extract(tiny_space.largest())
    with torch.no_grad():
        net.stem[0].weight.add_(1.0)
    assert not torch.equal(net.stem[0].weight, supernet.stem.conv.weight[: net.stem[0].out_channels])


def test_extracted_follows_the_supernet_mode(tiny_space):
    supernet = Supernet(tiny_space, 4)
    assert supernet.train().extract(tiny_space.smallest()).training
    assert not supernet.eval().extract(tiny_space.smallest()).training


def test_extracted_in_train_mode_matches_without_dropout(tiny_space, randomize):
    # batch statistics path of the elastic BN: equal to nn.BatchNorm2d's (dropout p=0.2 is the only
    # random op, so compare the features before the classifier)
    supernet = Supernet(tiny_space, 4)
    randomize(supernet)
    for arch in _archs(tiny_space, 5):
        x = torch.randn(4, 3, arch.resolution, arch.resolution)
        supernet.train()
        net = supernet.extract(arch)
        with torch.no_grad():
            feats = net.features(x)
            spec = supernet.resolve(arch)
            y = supernet.stem(x, spec.stem.out_channels, spec.stem.act)
            for block, b in zip(supernet.blocks_of(arch), spec.blocks):
                y = block(y, b)
            y = supernet.final_conv(y, spec.head.final_channels, spec.head.final_act)
        torch.testing.assert_close(y, feats, rtol=1e-5, atol=1e-5)
