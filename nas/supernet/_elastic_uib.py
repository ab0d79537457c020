"""The elastic Universal Inverted Bottleneck (MobileNetV4's UIB) of a weight-sharing supernet.

:class:`ElasticUIB` stores one UIB block at the largest size any member of its stage needs and
runs any member through ``forward(x, spec)`` with a resolved :class:`~nas.blocks.UIBSpec`: the
first ``in`` / ``mid`` / ``out`` channels and ``se`` hidden units, the spec's kernels centre-cropped
from the largest stored ones (through the learned kernel transforms when there are any), the start
and mid depthwise convs skipped when the spec's kernel is 0. It computes exactly what the static
:class:`~nas.blocks.UniversalInvertedBottleneck` of that spec computes once :meth:`ElasticUIB.copy_into`
has copied the active weights into it.

The stride sits where the static block puts it: on the mid depthwise conv when the spec has one,
else on the start depthwise conv, so the stored start depthwise conv runs at stride 1 or at the
block's stride depending on the member.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.blocks.uib import UIBSpec, UniversalInvertedBottleneck
from nas.supernet._elastic import ElasticSqueezeExcite
from nas.supernet._reorder import importance_order, permute_
from nas.supernet._supernet import ElasticConvBN, ElasticDepthwiseBN

__all__ = ["ElasticUIB"]


def _check_kernels(name: str, kernels: tuple[int, ...]) -> tuple[int, ...]:
    kernels = tuple(kernels)
    if any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2 != 1 for k in kernels):
        raise ValueError(
            f"{name} must hold odd positive kernels (the depthwise convs a member may use; "
            f"no 0: leave the tuple empty for a block that never has one), got {kernels!r}"
        )
    return tuple(sorted(set(kernels)))


class ElasticUIB(nn.Module):
    """A UIB block at its largest size; ``forward(x, spec)`` runs it as the resolved ``spec``.

    Args:
        max_in: the most input channels any member reads.
        max_mid: the most expanded (mid) channels.
        max_out: the most output channels.
        max_se: the most SE hidden units (0: no member has SE; the SE is not stored).
        start_kernels: the non-zero start depthwise kernels a member may use (empty: no member has
            a start depthwise conv; it is not stored). The largest is stored, the others are crops.
        mid_kernels: the non-zero mid depthwise kernels a member may use, likewise.
        stride: the block's stride (1 or 2); every member runs at it.
        kernel_transform: learned kernel transforms between kernel sizes (once-for-all) on both
            depthwise convs; without them a smaller kernel is a plain centre crop.
        skip_padding_taps: let the depthwise convs skip kernel taps that only see zero padding
            (same outputs up to float rounding).

    The weights are left uninitialised, as :class:`~nas.supernet.ElasticBlock`'s are: the owner
    initialises the elastic leaves (``Supernet.reset_parameters`` visits them).
    """

    def __init__(
        self,
        *,
        max_in: int,
        max_mid: int,
        max_out: int,
        max_se: int,
        start_kernels: tuple[int, ...],
        mid_kernels: tuple[int, ...],
        stride: int,
        kernel_transform: bool = False,
        skip_padding_taps: bool = True,
    ) -> None:
        super().__init__()
        start_kernels = _check_kernels("start_kernels", start_kernels)
        mid_kernels = _check_kernels("mid_kernels", mid_kernels)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if stride == 2 and not (start_kernels or mid_kernels):
            raise ValueError("a stride-2 UIB needs a depthwise conv (start_kernels or mid_kernels)")
        self.stride = stride
        self.start_kernels = start_kernels
        self.mid_kernels = mid_kernels
        # every member has the expand conv (a UIB always expands, even to mid == in), so the mid
        # channels are this block's own and may be re-ordered (Supernet.reorder_channels' flag)
        self.always_expands = True
        # depth-wise at the start (BN, no activation): on the input channels; stride 1 when the
        # member has a mid depthwise conv, else the block's stride
        self.start = (
            ElasticDepthwiseBN(
                max_in, start_kernels, stride=1, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps
            )
            if start_kernels
            else None
        )
        # point-wise expansion
        self.expand = ElasticConvBN(max_in, max_mid)
        # depth-wise in the middle: carries the block's stride
        self.mid = (
            ElasticDepthwiseBN(
                max_mid, mid_kernels, stride=stride, kernel_transform=kernel_transform,
                skip_padding_taps=skip_padding_taps,
            )
            if mid_kernels
            else None
        )
        # squeeze-excitation: present when some member has SE
        self.se = ElasticSqueezeExcite(max_mid, max_se) if max_se else None
        # point-wise linear projection
        self.project = ElasticConvBN(max_mid, max_out)

    def _check(self, spec: UIBSpec) -> None:
        expand, project = self.expand.conv.weight, self.project.conv.weight
        stored = (expand.shape[1], expand.shape[0], project.shape[0])
        wanted = (spec.in_channels, spec.mid_channels, spec.out_channels)
        if any(w > s for w, s in zip(wanted, stored)):
            raise ValueError(f"spec's (in, mid, out) channels {wanted} exceed this block's {stored}")
        if spec.stride != self.stride:
            raise ValueError(f"spec.stride is {spec.stride}, this block's stride is {self.stride}")
        if spec.start_kernel and spec.start_kernel not in self.start_kernels:
            raise ValueError(f"spec.start_kernel must be 0 or one of {self.start_kernels}, got {spec.start_kernel}")
        if spec.mid_kernel and spec.mid_kernel not in self.mid_kernels:
            raise ValueError(f"spec.mid_kernel must be 0 or one of {self.mid_kernels}, got {spec.mid_kernel}")
        if spec.has_se and (self.se is None or spec.se_channels > self.se.reduce.weight.shape[0]):
            units = 0 if self.se is None else self.se.reduce.weight.shape[0]
            raise ValueError(f"spec.se_channels is {spec.se_channels}, this block stores {units}")

    def forward(self, x: torch.Tensor, spec: UIBSpec) -> torch.Tensor:
        """Run member ``spec`` on ``x`` (``spec.in_channels`` channels); nothing is remembered."""
        self._check(spec)
        if x.shape[1] != spec.in_channels:
            raise ValueError(f"x has {x.shape[1]} channels, spec.in_channels is {spec.in_channels}")
        out = x
        if spec.start_kernel:
            out = self.start(out, spec.start_kernel, None, spec.start_stride)
        out = self.expand(out, spec.mid_channels, spec.act)
        if spec.mid_kernel:
            out = self.mid(out, spec.mid_kernel, spec.act)
        if spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.project(out, spec.out_channels, None)
        return out + x if spec.residual else out

    @torch.no_grad()
    def copy_into(self, dst: UniversalInvertedBottleneck) -> None:
        """Copy the weights of ``dst.spec``'s slice (transformed kernels, BN statistics) into the
        static block ``dst`` (extraction); ``dst`` holds copies, not views."""
        spec = dst.spec
        self._check(spec)
        if spec.start_kernel:
            self.start.copy_into(dst.start, spec.in_channels, spec.start_kernel)
        self.expand.copy_into(dst.expand)
        if spec.mid_kernel:
            self.mid.copy_into(dst.mid, spec.mid_channels, spec.mid_kernel)
        if spec.has_se:
            self.se.copy_into(dst.se, spec.mid_channels, spec.se_channels)
        self.project.copy_into(dst.project)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Sort the mid channels (and SE hidden units) by importance, with the optimizer's state.

        The mid channels by the L1 norm of the projection weights that read them, the SE hidden
        units by that of the SE expand weights (see :mod:`nas.supernet._reorder`); every tensor
        indexed by them is permuted alike, so the largest member computes the same function. The
        start depthwise conv works on the input channels, whose order the previous block fixes:
        it is left alone (and the kernel transforms are shared by all channels).
        """

        mid = importance_order(self.project.conv.weight, 1)
        self.expand.permute_outputs(mid, optimizer)
        if self.mid is not None:
            self.mid.permute(mid, optimizer)
        if self.se is not None:
            self.se.reorder(mid, optimizer)
        permute_(self.project.conv.weight, 1, mid, optimizer)
