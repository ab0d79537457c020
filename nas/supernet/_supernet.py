"""The weight-sharing supernet of a search space: ``supernet(x, arch)`` runs one subnet.

Every channel count of the active subnet comes from ``space.resolve(arch, num_classes)`` (the
one rule for widths, expansions and SE sizes); the supernet only stores each layer at the largest
size that any member of the space needs and slices it per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ArchError
from nas.netspec import BlockSpec, NetworkSpec
from nas.nn import MobileNet, build_network
from nas.space import Arch, BlockArch, SearchSpace
from nas.supernet._elastic import (
    ElasticBatchNorm2d,
    ElasticConv,
    ElasticDepthwise,
    ElasticLinear,
    ElasticSqueezeExcite,
    activation,
)
from nas.supernet._reorder import importance_order, permute_

__all__ = ["Supernet", "ElasticConvBN", "ElasticBlock", "max_specs", "extract", "reorder_channels"]

_SPEC_CACHE_SIZE = 4096


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


class ElasticBlock(nn.Module):
    """A bneck block at its largest size; ``forward(x, spec)`` runs it as the resolved ``spec``."""

    def __init__(
        self,
        *,
        max_in: int,
        max_mid: int,
        max_out: int,
        max_se: int,
        kernels: tuple[int, ...],
        stride: int,
        has_expand: bool,
        kernel_transform: bool,
        skip_padding_taps: bool = True,
        always_expands: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        # every member of the space has the expand conv here (none resolves to mid == in), so the
        # mid channels are this block's own and may be re-ordered (nas.supernet.reorder_channels)
        self.always_expands = always_expands and has_expand
        # point-wise expansion: present when some member of the space widens this block's input
        self.expand = ElasticConvBN(max_in, max_mid) if has_expand else None
        # depth-wise
        self.depthwise = ElasticDepthwiseBN(
            max_mid, kernels, stride=stride, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps
        )
        # squeeze-excitation: present when the stage allows SE
        self.se = ElasticSqueezeExcite(max_mid, max_se) if max_se else None
        # point-wise linear projection
        self.project = ElasticConvBN(max_mid, max_out)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = x
        if spec.has_expand:
            out = self.expand(out, spec.mid_channels, spec.act)
        out = self.depthwise(out, spec.kernel, spec.act)
        if spec.has_se:
            out = self.se(out, spec.se_channels)
        out = self.project(out, spec.out_channels, None)
        return out + x if spec.residual else out

    @torch.no_grad()
    def copy_into(self, dst: nn.Module) -> None:
        """Copy the weights of ``dst.spec``'s slice (transformed kernels, BN statistics) into the
        static block ``dst`` (extraction)."""
        spec = dst.spec
        if spec.has_expand:
            self.expand.copy_into(dst.expand)
        self.depthwise.copy_into(dst.depthwise, spec.mid_channels, spec.kernel)
        if spec.has_se:
            self.se.copy_into(dst.se, spec.mid_channels, spec.se_channels)
        self.project.copy_into(dst.project)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Sort the mid channels (and SE hidden units) by importance, with the optimizer's state
        (see :mod:`nas.supernet._reorder`). Only for blocks that always expand."""

        mid = importance_order(self.project.conv.weight, 1)
        self.expand.permute_outputs(mid, optimizer)
        self.depthwise.permute(mid, optimizer)
        if self.se is not None:
            self.se.reorder(mid, optimizer)
        permute_(self.project.conv.weight, 1, mid, optimizer)


def max_specs(space: SearchSpace, num_classes: int) -> list[NetworkSpec]:
    """Resolved networks that together reach every layer's largest size in ``space``.

    One per (width multiplier, expansion choice index): the deepest, largest-kernel, SE-where-allowed
    member at that width using each stage's ``k``-th expansion. Channel counts depend only on the
    width, a block's own expansion and SE (never on the depth or the other blocks), so the
    element-wise maximum over these networks is the maximum over the whole space.
    """
    cfg = space.config
    n_exp = max(len(stage.expansions) for stage in cfg.stages)
    specs = []
    for width in cfg.width_multipliers:
        for k in range(n_exp):
            stages = tuple(
                tuple(
                    BlockArch(
                        kernel=stage.kernels[-1],
                        expand=stage.expansions[min(k, len(stage.expansions) - 1)],
                        se=stage.se[-1],
                        act=stage.acts[-1],
                    )
                    for _ in range(stage.depths[-1])
                )
                for stage in cfg.stages
            )
            arch = Arch(space.name, cfg.resolutions[-1], width, stages)
            specs.append(space.resolve(arch, num_classes))
    return specs


class Supernet(nn.Module):
    """All members of ``space`` in one network; ``supernet(x, arch)`` runs member ``arch``.

    Args:
        space: the search space.
        num_classes: classifier outputs.
        kernel_transform: learned kernel transforms between kernel sizes (once-for-all);
            without them a smaller kernel is a plain centre crop.
        skip_padding_taps: let depthwise convs skip kernel taps that only see zero padding (late
            stages at proxy resolutions); same outputs up to float rounding, far fewer operations.
        seed: seed of the weight initialisation (a private ``torch.Generator``).

    The input must already be at the resolution the caller wants the subnet to run at (the
    network is fully convolutional); the training loop and :mod:`nas.evaluate` resize batches.
    """

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int,
        *,
        kernel_transform: bool = True,
        skip_padding_taps: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        self.space = space
        self.num_classes = num_classes
        self.kernel_transform = kernel_transform
        specs = max_specs(space, num_classes)
        ref = specs[0]
        stem_out = max(s.stem.out_channels for s in specs)
        self.stem = ElasticConvBN(ref.in_channels, stem_out, kernel=ref.stem.kernel, stride=ref.stem.stride)

        self.stages = nn.ModuleList()
        index = 0
        for stage in space.config.stages:
            blocks = nn.ModuleList()
            for _ in range(stage.depths[-1]):
                column = [s.blocks[index] for s in specs]
                blocks.append(
                    ElasticBlock(
                        max_in=max(b.in_channels for b in column),
                        max_mid=max(b.mid_channels for b in column),
                        max_out=max(b.out_channels for b in column),
                        max_se=max(b.se_channels for b in column),
                        kernels=stage.kernels,
                        stride=column[0].stride,
                        has_expand=any(b.has_expand for b in column),
                        always_expands=all(b.has_expand for b in column),
                        kernel_transform=kernel_transform,
                        skip_padding_taps=skip_padding_taps,
                    )
                )
                index += 1
            self.stages.append(blocks)

        last = max(s.blocks[-1].out_channels for s in specs)
        final = max(s.head.final_channels for s in specs)
        hidden = max(s.head.classifier_channels for s in specs)
        self.final_conv = ElasticConvBN(last, final)
        self.hidden = ElasticLinear(final, hidden) if hidden else None
        self.fc = ElasticLinear(hidden or final, num_classes)
        self.dropout = ref.head.dropout
        self._specs: dict[Arch, NetworkSpec] = {}
        self.reset_parameters(seed)

    def reset_parameters(self, seed: int = 0) -> None:
        """Initialise as the builder does (Kaiming fan-out convs, unit BN, N(0, 0.01) linears)."""
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                if isinstance(module, ElasticBatchNorm2d):
                    module.reset_parameters()
                elif not isinstance(module, ElasticSqueezeExcite):  # its convs are visited too
                    module.reset_parameters(generator)

    # -- subnets -----------------------------------------------------------------------------------
    def resolve(self, arch: Arch) -> NetworkSpec:
        """``space.resolve(arch, num_classes)``, memoised (pure: the same arch, the same spec)."""
        spec = self._specs.get(arch)
        if spec is None:
            if not isinstance(arch, Arch):
                raise TypeError(f"arch must be an Arch, got {type(arch).__name__}")
            spec = self.space.resolve(arch, self.num_classes)
            if len(self._specs) >= _SPEC_CACHE_SIZE:
                self._specs.clear()
            self._specs[arch] = spec
        return spec

    def blocks_of(self, arch: Arch) -> list[ElasticBlock]:
        """The stored blocks that ``arch`` uses, in order: the first ``depth`` of each stage."""
        if len(arch.depths) != len(self.stages):
            raise ArchError(f"arch has {len(arch.depths)} stages, the supernet {len(self.stages)}")
        return [block for stage, depth in zip(self.stages, arch.depths) for block in stage[:depth]]

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        spec = self.resolve(arch)
        x = self.stem(x, spec.stem.out_channels, spec.stem.act)
        for block, block_spec in zip(self.blocks_of(arch), spec.blocks):
            x = block(x, block_spec)
        x = self.final_conv(x, spec.head.final_channels, spec.head.final_act)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if spec.head.classifier_channels:
            x = activation(self.hidden(x, spec.head.classifier_channels), spec.head.classifier_act, inplace=True)
        x = F.dropout(x, self.dropout, self.training)
        return self.fc(x, self.num_classes)

    @torch.no_grad()
    def reorder_channels(self, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Sort every re-orderable block's mid channels (and SE hidden units) by importance, in place.

        Pass the training ``optimizer`` so that its per-parameter state (momentum) is permuted with
        the weights. Returns the number of blocks re-ordered.
        """
        blocks = [block for stage in self.stages for block in stage if block.always_expands]
        for block in blocks:
            block.reorder(optimizer)
        return len(blocks)

    @torch.no_grad()
    def extract(self, arch: Arch) -> MobileNet:
        """The static network of ``arch`` (from :func:`nas.nn.build_network`) with this supernet's
        sliced weights, transformed kernels and BatchNorm statistics copied in.

        The result is independent of the supernet (copies, not views), on the supernet's device and
        dtype, and in the supernet's train/eval mode. In eval mode its output equals ``self(x, arch)``.
        """
        spec = self.resolve(arch)
        ref = next(self.parameters())
        net = build_network(spec).to(device=ref.device, dtype=ref.dtype)
        self.stem.copy_into(net.stem)
        for dst, src in zip(net.blocks, self.blocks_of(arch)):
            src.copy_into(dst)
        self.final_conv.copy_into(net.final_conv)
        head = spec.head
        if head.classifier_channels:
            w, b = self.hidden.active(head.final_channels, head.classifier_channels)
            net.classifier.hidden[0].weight.copy_(w)
            net.classifier.hidden[0].bias.copy_(b)
        fc_in = head.classifier_channels or head.final_channels
        w, b = self.fc.active(fc_in, spec.num_classes)
        net.classifier.fc.weight.copy_(w)
        net.classifier.fc.bias.copy_(b)
        return net.train(self.training)


def extract(supernet: Supernet, arch: Arch) -> MobileNet:
    """The static network of ``arch`` with the supernet's weights (:meth:`Supernet.extract`)."""
    return supernet.extract(arch)


def reorder_channels(supernet: Supernet, optimizer: torch.optim.Optimizer | None = None) -> int:
    """Channel-importance re-ordering of every re-orderable block (:meth:`Supernet.reorder_channels`)."""
    return supernet.reorder_channels(optimizer)
