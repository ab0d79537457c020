"""The weight-sharing supernet of a search space: ``supernet(x, arch)`` runs one subnet.

Every channel count of the active subnet comes from ``space.resolve(arch, num_classes)`` (the
one rule for widths, expansions and SE sizes); the supernet only stores each layer at the largest
size that any member of the space needs and slices it per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import (ElasticBatchNorm2d, ElasticBneck, ElasticConvBN, ElasticLinear, ElasticSqueezeExcite,
                        kind_of, searchable_kind)
from nas.activations import apply_activation as activation
from nas.errors import ArchError
from nas.netspec import NetworkSpec
from nas.nn import MobileNet, build_network
from nas.space import Arch, SearchSpace

__all__ = ["Supernet", "ElasticConvBN", "ElasticBlock", "KindChoice", "max_specs", "extract", "reorder_channels"]

_SPEC_CACHE_SIZE = 4096

#: The bneck's elastic block under its name from before block kinds.
ElasticBlock = ElasticBneck


class KindChoice(nn.ModuleDict):
    """A block position whose stage offers several block kinds: one elastic module per kind
    (no weights shared between kinds), the spec's kind picks which one runs."""

    def forward(self, x: torch.Tensor, spec) -> torch.Tensor:
        return self[kind_of(spec).name](x, spec)

    @property
    def reorderable(self) -> bool:
        return any(module.reorderable for module in self.values())

    @torch.no_grad()
    def copy_into(self, dst: nn.Module) -> None:
        self[kind_of(dst.spec).name].copy_into(dst)

    @torch.no_grad()
    def reorder(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        for module in self.values():
            if module.reorderable:
                module.reorder(optimizer)


def max_specs(space: SearchSpace, num_classes: int) -> list[NetworkSpec]:
    """Resolved networks that together hold every size and kind each block position of ``space``
    can take: the covering members (:meth:`SearchSpace.covering_archs`) at every width.

    Channel counts depend only on the width and a block's own pick and position (never on the
    depth or the other blocks), so the element-wise maximum over these networks is the maximum
    over the whole space.
    """
    cfg = space.config
    return [
        space.resolve(arch, num_classes)
        for width in cfg.width_multipliers
        for arch in space.covering_archs(cfg.resolutions[-1], width)
    ]


def _position_module(column: list, kinds: tuple[str, ...], *, kernel_transform: bool,
                     skip_padding_taps: bool) -> nn.Module:
    """The elastic module of one block position from the specs it can take (``column``)."""
    modules = {}
    for name in kinds:
        specs = [b for b in column if kind_of(b).name == name]
        if specs:
            modules[name] = searchable_kind(name).elastic_module(
                specs, kernel_transform=kernel_transform, skip_padding_taps=skip_padding_taps)
    if len(modules) == 1:  # one kind: the module itself (state-dict names as before kinds)
        return next(iter(modules.values()))
    return KindChoice(modules)


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
                blocks.append(_position_module(column, stage.kinds, kernel_transform=kernel_transform,
                                               skip_padding_taps=skip_padding_taps))
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

    def blocks_of(self, arch: Arch) -> list[nn.Module]:
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
        blocks = [block for stage in self.stages for block in stage if block.reorderable]
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
