"""Elastic layers: weights stored at the largest size, the active size passed to ``forward``.

Each layer slices the *first* N channels of its stored tensors (once-for-all's width rule) and
never remembers the size it ran at: the caller passes it on every call, so there is no hidden
``active_*`` state. The functional calls mirror :mod:`nas.nn._layers` exactly (same ops, same
order), which is what makes an extracted static network reproduce the supernet's output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.activations import apply_activation
from nas.blocks._reorder import importance_order, permute_

__all__ = [
    "ElasticConv",
    "ElasticBiasConv",
    "ElasticDepthwise",
    "ElasticBatchNorm2d",
    "ElasticSqueezeExcite",
    "ElasticLinear",
    "ElasticConvBN",
    "ElasticDepthwiseBN",
    "activation",
]


activation = apply_activation  # the name the elastic layers use


def _kaiming_fan_out(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    # nn.init.kaiming_normal_(mode="fan_out") with an explicit generator (no global RNG).
    fan_out = weight.shape[0] * weight[0][0].numel()
    std = math.sqrt(2.0) / math.sqrt(fan_out)
    with torch.no_grad():
        weight.normal_(0.0, std, generator=generator)


def _like_input(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # oneDNN picks a slow path when a channels-last input meets a sliced or transformed
    # (non-channels-last) weight; one small copy of the weight is much cheaper.
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
        o, i, kh, kw = weight.shape
        if i == 1:  # size-1 dim: make the strides say channels-last too, as .to(channels_last) does
            weight = weight.as_strided(weight.shape, (kh * kw, 1, kw, 1))
    return weight


class ElasticConv(nn.Module):
    """A dense ``kernel x kernel`` conv (no bias) whose input and output channels are sliced.

    The stem (fixed kernel) and every 1x1 conv (expansion, projection, final conv);
    ``forward(x, out_channels)`` takes the input width from ``x``.
    """

    def __init__(self, max_in: int, max_out: int, *, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel, kernel))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        _kaiming_fan_out(self.weight, generator)

    def active_weight(self, in_channels: int, out_channels: int) -> torch.Tensor:
        w = self.weight
        if out_channels != w.shape[0]:
            w = w[:out_channels]
        if in_channels != w.shape[1]:
            w = w[:, :in_channels]
        return w

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        w = _like_input(self.active_weight(x.shape[1], out_channels), x)
        return F.conv2d(x, w, None, self.stride, self.kernel // 2)


def _transform_name(big: int, small: int) -> str:
    return f"{big}to{small}"


def _centre_taps(big: int, small: int) -> torch.Tensor:
    """Row-major indices of the centre ``small x small`` taps of a ``big x big`` kernel."""
    start = (big - small) // 2
    rows = torch.arange(start, start + small)
    return (rows[:, None] * big + rows[None, :]).reshape(-1)


class ElasticDepthwise(nn.Module):
    """Depthwise conv storing the largest kernel; smaller kernels are centre crops.

    With ``kernel_transform`` each step down the kernel ladder (e.g. 7 -> 5 -> 3) passes the crop
    through a small learned ``k^2 x k^2`` matrix shared by all channels (once-for-all), initialised
    to the identity so an untrained transform is a plain crop.

    ``skip_padding_taps`` drops the taps that can only multiply zero padding (maps smaller than
    the kernel); it changes the cost, never the result (beyond float rounding).
    """

    def __init__(
        self,
        max_channels: int,
        kernels: tuple[int, ...],
        *,
        stride: int,
        kernel_transform: bool,
        skip_padding_taps: bool = True,
    ) -> None:
        super().__init__()
        self.skip_padding_taps = skip_padding_taps
        if not kernels or any(k % 2 != 1 for k in kernels):
            raise ValueError(f"kernels must be a non-empty list of odd sizes, got {kernels!r}")
        self.kernels = tuple(sorted(kernels))
        self.max_kernel = self.kernels[-1]
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_channels, 1, self.max_kernel, self.max_kernel))
        self.transforms = nn.ParameterDict()
        if kernel_transform:
            ladder = self.kernels[::-1]
            for big, small in zip(ladder, ladder[1:]):
                self.transforms[_transform_name(big, small)] = nn.Parameter(torch.eye(small * small))
                # flat indices of the centre small x small taps inside big x big (not saved)
                self.register_buffer(f"_centre_{big}to{small}", _centre_taps(big, small), persistent=False)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        _kaiming_fan_out(self.weight, generator)
        with torch.no_grad():
            for t in self.transforms.values():
                t.copy_(torch.eye(t.shape[0]))

    def active_weight(self, channels: int, kernel: int) -> torch.Tensor:
        """The ``[channels, 1, kernel, kernel]`` filter the subnet uses (differentiable).

        With transforms, each step down the ladder is ``crop`` then ``T``: the steps compose
        into one ``kernel^2 x max_kernel^2`` matrix applied to the stored taps in a single matmul
        (the same values as cropping and transforming step by step, far fewer autograd nodes).
        """
        if kernel not in self.kernels:
            raise ValueError(f"kernel must be one of {self.kernels}, got {kernel}")
        w = self.weight if channels == self.weight.shape[0] else self.weight[:channels]
        if kernel == self.max_kernel:
            return w
        if not self.transforms:
            start = (self.max_kernel - kernel) // 2
            return w[:, :, start : start + kernel, start : start + kernel]
        taps = self.max_kernel * self.max_kernel
        return F.linear(w.reshape(channels, taps), self.tap_matrix(kernel)).view(channels, 1, kernel, kernel)

    def tap_matrix(self, kernel: int) -> torch.Tensor:
        """``[kernel^2, max_kernel^2]``: the stored taps -> the ``kernel`` taps, through the transforms."""
        matrix = None
        current = self.max_kernel
        for small in reversed(self.kernels):
            if small >= current or small < kernel:
                continue
            t = self.transforms[_transform_name(current, small)]
            centre = getattr(self, f"_centre_{current}to{small}")
            if matrix is None:  # T @ crop: T's columns scattered to the centre taps
                matrix = t.new_zeros(small * small, current * current).index_copy(1, centre, t)
            else:  # T @ crop @ matrix
                matrix = t @ matrix.index_select(0, centre)
            current = small
        return matrix

    def forward(self, x: torch.Tensor, kernel: int, stride: int | None = None) -> torch.Tensor:
        """``kernel`` x ``kernel`` depthwise conv of the first ``x.shape[1]`` channels, at ``stride``
        (default: the stored one; a UIB's start depthwise takes its stride per member)."""
        stride = self.stride if stride is None else stride
        c, h, w = x.shape[1:]
        weight = _like_input(self.active_weight(c, kernel), x)
        if self.skip_padding_taps and (h < kernel // 2 + 1 or w < kernel // 2 + 1):
            # On a map smaller than the kernel's reach, taps further than side-1 from the centre
            # only ever see zero padding: drop them. Same output shape and values (up to float
            # summation order), much less work at proxy resolutions where late stages are 1x1/2x2.
            kh, kw = min(kernel, 2 * h - 1), min(kernel, 2 * w - 1)
            sh, sw = (kernel - kh) // 2, (kernel - kw) // 2
            weight = weight[:, :, sh : sh + kh, sw : sw + kw]
            return F.conv2d(x, weight, None, stride, (kh // 2, kw // 2), 1, c)
        return F.conv2d(x, weight, None, stride, kernel // 2, 1, c)


class ElasticBatchNorm2d(nn.Module):
    """BatchNorm over the first ``C`` channels of its stored affine parameters and running stats.

    In training mode the running statistics of the active slice are updated in place (a view of
    the stored buffers), as ``nn.BatchNorm2d`` would; BN recalibration resets them per subnet
    before scoring anyway.
    """

    def __init__(self, max_channels: int, *, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(max_channels))
        self.bias = nn.Parameter(torch.zeros(max_channels))
        self.register_buffer("running_mean", torch.zeros(max_channels))
        self.register_buffer("running_var", torch.ones(max_channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(1.0)
            self.bias.zero_()
            self.running_mean.zero_()
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def permute(self, order: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-order the stored channels (affine parameters, their optimizer state, statistics)."""
        for t in (self.weight, self.bias, self.running_mean, self.running_var):
            permute_(t, 0, order, optimizer)

    @torch.no_grad()
    def copy_into(self, dst: nn.BatchNorm2d) -> None:
        """Copy the first ``dst.num_features`` channels (affine parameters and statistics) into ``dst``."""
        c = dst.num_features
        dst.weight.copy_(self.weight[:c])
        dst.bias.copy_(self.bias[:c])
        dst.running_mean.copy_(self.running_mean[:c])
        dst.running_var.copy_(self.running_var[:c])
        dst.num_batches_tracked.copy_(self.num_batches_tracked)
        dst.eps, dst.momentum = self.eps, self.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        full = c == self.weight.shape[0]
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x,
            self.running_mean if full else self.running_mean[:c],
            self.running_var if full else self.running_var[:c],
            self.weight if full else self.weight[:c],
            self.bias if full else self.bias[:c],
            self.training,
            self.momentum,
            self.eps,
        )


class ElasticSqueezeExcite(nn.Module):
    """SE whose reduce/expand 1x1 convs are sliced to the active channels and hidden units."""

    def __init__(self, max_channels: int, max_hidden: int) -> None:
        super().__init__()
        self.reduce = ElasticBiasConv(max_channels, max_hidden)
        self.expand = ElasticBiasConv(max_hidden, max_channels)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.reduce.reset_parameters(generator)
        self.expand.reset_parameters(generator)

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = F.relu(self.reduce(s, hidden))
        s = F.hardsigmoid(self.expand(s, x.shape[1]))
        return x * s

    @torch.no_grad()
    def copy_into(self, dst: nn.Module, channels: int, hidden: int) -> None:
        """Copy the slice of ``channels`` and ``hidden`` units into a static ``SqueezeExcite``."""
        for src, conv, n_in, n_out in ((self.reduce, dst.reduce, channels, hidden),
                                       (self.expand, dst.expand, hidden, channels)):
            w, b = src.active(n_in, n_out)
            conv.weight.copy_(w)
            conv.bias.copy_(b)

    @torch.no_grad()
    def reorder(self, channels: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Follow the block's new channel order, then sort the hidden units by importance (the L1
        norm of the expand weights that read them); the optimizer's state moves along."""
        permute_(self.reduce.weight, 1, channels, optimizer)
        permute_(self.expand.weight, 0, channels, optimizer)
        permute_(self.expand.bias, 0, channels, optimizer)
        hidden = importance_order(self.expand.weight, 1)
        permute_(self.reduce.weight, 0, hidden, optimizer)
        permute_(self.reduce.bias, 0, hidden, optimizer)
        permute_(self.expand.weight, 1, hidden, optimizer)


class ElasticBiasConv(nn.Module):
    """1x1 conv with bias (the SE layers), sliced like :class:`ElasticConv`."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(max_out))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        _kaiming_fan_out(self.weight, generator)
        with torch.no_grad():
            self.bias.zero_()

    def active(self, in_features: int, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight[:out_features, :in_features], self.bias[:out_features]

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        w, b = self.active(x.shape[1], out_features)
        return F.conv2d(x, w, b)


class ElasticLinear(nn.Module):
    """Linear layer with sliced input features (and optionally sliced outputs)."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # The builder's recipe for linears: N(0, 0.01), zero bias.
        with torch.no_grad():
            self.weight.normal_(0.0, 0.01, generator=generator)
            self.bias.zero_()

    def active(self, in_features: int, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight
        if out_features != w.shape[0]:
            w = w[:out_features]
        if in_features != w.shape[1]:
            w = w[:, :in_features]
        b = self.bias if out_features == self.bias.shape[0] else self.bias[:out_features]
        return w, b

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        w, b = self.active(x.shape[1], out_features)
        return F.linear(x, w, b)


class ElasticConvBN(nn.Module):
    """Elastic conv -> elastic BN -> activation (the elastic twin of ``ConvBNAct``)."""

    def __init__(self, max_in: int, max_out: int, *, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = ElasticConv(max_in, max_out, kernel=kernel, stride=stride)
        self.bn = ElasticBatchNorm2d(max_out)

    def forward(self, x: torch.Tensor, out_channels: int, act: str | None) -> torch.Tensor:
        return activation(self.bn(self.conv(x, out_channels)), act, inplace=True)

    @torch.no_grad()
    def permute_outputs(self, order: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-order the output channels (conv filters and BN) with the optimizer's state."""
        permute_(self.conv.weight, 0, order, optimizer)
        self.bn.permute(order, optimizer)

    @torch.no_grad()
    def copy_into(self, dst: nn.Sequential) -> None:
        """Copy the active slice into a static ``ConvBNAct`` (conv, BN[, act])."""
        conv, bn = dst[0], dst[1]
        conv.weight.copy_(self.conv.active_weight(conv.in_channels, conv.out_channels))
        self.bn.copy_into(bn)


class ElasticDepthwiseBN(nn.Module):
    """Elastic depthwise conv -> elastic BN -> activation."""

    def __init__(
        self, max_channels: int, kernels: tuple[int, ...], *, stride: int, kernel_transform: bool, skip_padding_taps: bool
    ) -> None:
        super().__init__()
        self.conv = ElasticDepthwise(
            max_channels, kernels, stride=stride, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps
        )
        self.bn = ElasticBatchNorm2d(max_channels)

    def forward(self, x: torch.Tensor, kernel: int, act: str | None, stride: int | None = None) -> torch.Tensor:
        """Depthwise conv (at ``stride``, default the stored one) -> BN -> ``act`` (``None``: linear)."""
        return activation(self.bn(self.conv(x, kernel, stride)), act, inplace=True)

    @torch.no_grad()
    def copy_into(self, dst: nn.Sequential, channels: int, kernel: int) -> None:
        """Copy the slice of ``channels`` at ``kernel`` into a static depthwise ``ConvBNAct``."""
        dst[0].weight.copy_(self.conv.active_weight(channels, kernel))
        self.bn.copy_into(dst[1])

    @torch.no_grad()
    def permute(self, order: torch.Tensor, optimizer: torch.optim.Optimizer | None = None) -> None:
        permute_(self.conv.weight, 0, order, optimizer)
        self.bn.permute(order, optimizer)
