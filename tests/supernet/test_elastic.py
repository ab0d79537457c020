"""Each elastic layer equals its static counterpart at every active size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.supernet import (
    ElasticBatchNorm2d,
    ElasticConv,
    ElasticDepthwise,
    ElasticLinear,
    ElasticSqueezeExcite,
)
from nas.nn import SqueezeExcite


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("in_ch,out_ch", [(8, 16), (5, 16), (8, 9), (3, 4)])
@pytest.mark.parametrize("kernel,stride", [(1, 1), (3, 2)])
def test_conv_equals_static_conv_with_sliced_weight(in_ch, out_ch, kernel, stride):
    layer = ElasticConv(8, 16, kernel=kernel, stride=stride)
    layer.reset_parameters(_gen())
    static = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False)
    with torch.no_grad():
        static.weight.copy_(layer.weight[:out_ch, :in_ch])
    x = torch.randn(2, in_ch, 7, 7, generator=_gen(1))
    torch.testing.assert_close(layer(x, out_ch), static(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("transform", [False, True])
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("channels", [6, 12])
def test_depthwise_kernel_is_centre_crop_through_transforms(transform, kernel, channels):
    layer = ElasticDepthwise(12, (3, 5, 7), stride=1, kernel_transform=transform)
    layer.reset_parameters(_gen())
    w = layer.active_weight(channels, kernel)
    assert w.shape == (channels, 1, kernel, kernel)
    s = (7 - kernel) // 2
    if not transform or kernel == 7:
        torch.testing.assert_close(w, layer.weight[:channels, :, s : s + kernel, s : s + kernel])
    else:
        # a non-identity transform changes the crop; identity init leaves it a plain crop
        torch.testing.assert_close(w, layer.weight[:channels, :, s : s + kernel, s : s + kernel])
        with torch.no_grad():
            for t in layer.transforms.values():
                t.add_(0.1 * torch.randn(t.shape, generator=_gen(2)))
        # 7 -> 5 -> 3 applies both matrices in order
        crop5 = layer.weight[:channels, :, 1:6, 1:6].reshape(channels, 25) @ layer.transforms["7to5"].T
        expected = crop5.view(channels, 1, 5, 5)
        if kernel == 3:
            expected = (expected[:, :, 1:4, 1:4].reshape(channels, 9) @ layer.transforms["5to3"].T).view(channels, 1, 3, 3)
        torch.testing.assert_close(layer.active_weight(channels, kernel), expected)


@pytest.mark.parametrize("side", [1, 2, 3, 4, 9])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_skipping_padding_taps_changes_nothing(side, stride):
    slow = ElasticDepthwise(8, (3, 5, 7), stride=stride, kernel_transform=True, skip_padding_taps=False)
    fast = ElasticDepthwise(8, (3, 5, 7), stride=stride, kernel_transform=True, skip_padding_taps=True)
    slow.reset_parameters(_gen())
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(2, 8, side, side + 1, generator=_gen(3))
    for k in (3, 5, 7):
        torch.testing.assert_close(fast(x, k), slow(x, k), rtol=1e-5, atol=1e-6)


def test_depthwise_rejects_kernel_outside_its_choices():
    layer = ElasticDepthwise(8, (3, 5), stride=1, kernel_transform=False)
    with pytest.raises(ValueError, match=r"kernel must be one of \(3, 5\), got 7"):
        layer.active_weight(8, 7)


@pytest.mark.parametrize("channels", [4, 10])
def test_batchnorm_slices_parameters_and_running_stats(channels):
    layer = ElasticBatchNorm2d(10)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5, generator=_gen())
        layer.bias.normal_(generator=_gen(1))
    static = nn.BatchNorm2d(channels)
    with torch.no_grad():
        static.weight.copy_(layer.weight[:channels])
        static.bias.copy_(layer.bias[:channels])
    x = torch.randn(4, channels, 3, 3, generator=_gen(2)) * 2 + 1
    layer.train(), static.train()
    torch.testing.assert_close(layer(x), static(x))
    # the active slice of the running statistics moved exactly as nn.BatchNorm2d's; the rest did not
    torch.testing.assert_close(layer.running_mean[:channels], static.running_mean)
    torch.testing.assert_close(layer.running_var[:channels], static.running_var)
    assert torch.all(layer.running_mean[channels:] == 0) and torch.all(layer.running_var[channels:] == 1)
    layer.eval(), static.eval()
    torch.testing.assert_close(layer(x), static(x))


@pytest.mark.parametrize("channels,hidden", [(16, 8), (12, 8), (8, 4)])
def test_squeeze_excite_equals_static_se(channels, hidden):
    layer = ElasticSqueezeExcite(16, 8)
    layer.reset_parameters(_gen())
    with torch.no_grad():
        layer.reduce.bias.normal_(generator=_gen(1))
        layer.expand.bias.normal_(generator=_gen(2))
    static = SqueezeExcite(channels, hidden)
    with torch.no_grad():
        static.reduce.weight.copy_(layer.reduce.weight[:hidden, :channels])
        static.reduce.bias.copy_(layer.reduce.bias[:hidden])
        static.expand.weight.copy_(layer.expand.weight[:channels, :hidden])
        static.expand.bias.copy_(layer.expand.bias[:channels])
    x = torch.randn(2, channels, 5, 5, generator=_gen(3))
    torch.testing.assert_close(layer(x, hidden), static(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("in_f,out_f", [(20, 10), (12, 10), (12, 7)])
def test_linear_equals_static_linear(in_f, out_f):
    layer = ElasticLinear(20, 10)
    layer.reset_parameters(_gen())
    x = torch.randn(3, in_f, generator=_gen(1))
    torch.testing.assert_close(layer(x, out_f), F.linear(x, layer.weight[:out_f, :in_f], layer.bias[:out_f]))


def test_channels_last_input_gives_the_same_result():
    layer = ElasticDepthwise(8, (3, 5), stride=1, kernel_transform=True)
    layer.reset_parameters(_gen())
    x = torch.randn(2, 6, 5, 5, generator=_gen(1))
    ref = layer(x, 3)
    out = layer(x.contiguous(memory_format=torch.channels_last), 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_gradients_reach_only_the_active_slices():
    layer = ElasticConv(8, 16)
    layer.reset_parameters(_gen())
    layer(torch.randn(2, 5, 3, 3, generator=_gen(1)), 10).sum().backward()
    grad = layer.weight.grad
    assert grad[:10, :5].abs().sum() > 0
    assert grad[10:].abs().sum() == 0 and grad[:, 5:].abs().sum() == 0
