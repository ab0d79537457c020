"""Channel-importance re-ordering (once-for-all): the most important mid channels first.

A subnet with a smaller expansion keeps the *first* ``mid`` channels of a block, so the order of
the stored channels decides what it inherits. :func:`reorder_channels` sorts each block's
expanded (mid) channels by importance - the L1 norm of the projection weights that read them -
and each SE's hidden units by the L1 norm of the SE expand weights that read them, and permutes
every tensor indexed by those channels together (weights, BN parameters and running statistics,
and the optimizer's per-parameter state such as SGD momentum), so the largest subnet computes
the same function before and after (up to float summation order).

Blocks where some member of the space skips the expand conv (an expansion that resolves to
``mid == in``, e.g. MobileNetV3's first bneck) are left alone: their depthwise channels are the
block's input channels, whose order the previous block fixes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["importance_order", "permute_"]


def importance_order(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Indices along ``dim`` of ``weight`` by decreasing L1 norm over the other dims (ties: stable)."""
    other = tuple(d for d in range(weight.dim()) if d != dim)
    norm = weight.detach().abs().sum(other)
    return torch.sort(norm, descending=True, stable=True).indices


def permute_(t: torch.Tensor, dim: int, order: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> None:
    """Permute ``t`` along ``dim`` in place, and the optimizer's same-shaped state of ``t`` with it."""
    t.copy_(t.index_select(dim, order.to(t.device)))
    if optimizer is not None and isinstance(t, nn.Parameter):
        for value in optimizer.state.get(t, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == t.shape:
                value.copy_(value.index_select(dim, order.to(value.device)))
