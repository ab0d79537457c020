"""BN recalibration re-estimates statistics as the plain average over the given batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.supernet import Supernet, calibrated_subnet, recalibrate_bn


def test_statistics_are_the_average_over_batches():
    model = nn.Sequential(nn.BatchNorm2d(3))
    batches = [torch.randn(8, 3, 4, 4) * (i + 1) + i for i in range(3)]
    stats = recalibrate_bn(model, batches)
    assert (stats.images, stats.batches) == (24, 3)
    mean = torch.stack([b.mean((0, 2, 3)) for b in batches]).mean(0)
    var = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0)
    torch.testing.assert_close(model[0].running_mean, mean)
    torch.testing.assert_close(model[0].running_var, var)


def test_mode_and_momentum_are_restored():
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, momentum=0.3)).eval()
    recalibrate_bn(model, [(torch.randn(4, 3, 2, 2), torch.zeros(4))])
    assert not model.training and model[1].momentum == 0.3


def test_empty_batches_and_models_without_bn_are_refused():
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(nn.Sequential(nn.BatchNorm2d(3)), [])
    with pytest.raises(ValueError, match="no BatchNorm"):
        recalibrate_bn(nn.Sequential(nn.Conv2d(3, 3, 1)), [torch.randn(1, 3, 2, 2)])


def test_calibrated_subnet_leaves_the_supernet_untouched(tiny_space):
    supernet = Supernet(tiny_space, 4).eval()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    arch = tiny_space.sample(0)
    batches = [torch.randn(8, 3, arch.resolution, arch.resolution) + 2 for _ in range(2)]
    net, stats = calibrated_subnet(supernet, arch, batches)
    assert stats.images == 16 and not net.training
    assert float(net.stem[1].running_mean.abs().sum()) > 0
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
