"""BatchNorm recalibration: re-estimate a subnet's BN statistics on a few training batches.

The running statistics a supernet accumulates during training mix every subnet it ran; a
subnet's own statistics are re-estimated before it is scored (once-for-all, BigNAS). This is done
on the *extracted* static network, so the supernet's shared buffers are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from nas.space import Arch

__all__ = ["CalibrationStats", "recalibrate_bn", "calibrated_subnet"]


@dataclass(frozen=True)
class CalibrationStats:
    """What a recalibration used and cost."""

    images: int
    batches: int
    seconds: float


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor | tuple[torch.Tensor, ...]]) -> CalibrationStats:
    """Reset every ``BatchNorm2d`` of ``model`` and re-estimate its statistics on ``batches``.

    Statistics are the plain average over the batches (``momentum=None``). ``batches`` yields
    input tensors or ``(inputs, labels)`` pairs, already on the model's device and resolution.
    The model's train/eval mode and BN momenta are restored afterwards.

    Raises:
        ValueError: ``batches`` is empty, or ``model`` has no BatchNorm layer.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ValueError("recalibrate_bn: the model has no BatchNorm layer")
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    start = time.perf_counter()
    images = count = 0
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average = mean over the batches
        model.train()
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
            images += x.shape[0]
            count += 1
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.train(was_training)
    if count == 0:
        raise ValueError("recalibrate_bn: no batches were given")
    return CalibrationStats(images=images, batches=count, seconds=time.perf_counter() - start)


def calibrated_subnet(supernet, arch: Arch, batches: Iterable) -> tuple[nn.Module, CalibrationStats]:
    """Extract ``arch`` from ``supernet``, recalibrate its BN on ``batches``; return it in eval mode."""
    net = supernet.extract(arch)
    stats = recalibrate_bn(net, batches)
    return net.eval(), stats
