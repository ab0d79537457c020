"""Extraction: a subnet of the supernet as a plain static network from the builder."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from nas.nn import MobileNet, build_network
from nas.space import Arch

if TYPE_CHECKING:
    from nas.supernet._supernet import ElasticBlock, ElasticConvBN, Supernet
    from nas.supernet._elastic import ElasticBatchNorm2d

__all__ = ["extract"]


def _copy_bn(dst: nn.BatchNorm2d, src: ElasticBatchNorm2d) -> None:
    c = dst.num_features
    dst.weight.copy_(src.weight[:c])
    dst.bias.copy_(src.bias[:c])
    dst.running_mean.copy_(src.running_mean[:c])
    dst.running_var.copy_(src.running_var[:c])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


def _copy_conv_bn(dst: nn.Sequential, src: ElasticConvBN) -> None:
    conv, bn = dst[0], dst[1]
    conv.weight.copy_(src.conv.active_weight(conv.in_channels, conv.out_channels))
    _copy_bn(bn, src.bn)


def _copy_block(dst: nn.Module, src: ElasticBlock) -> None:
    spec = dst.spec
    if spec.has_expand:
        _copy_conv_bn(dst.expand, src.expand)
    dst.depthwise[0].weight.copy_(src.depthwise.conv.active_weight(spec.mid_channels, spec.kernel))
    _copy_bn(dst.depthwise[1], src.depthwise.bn)
    if spec.has_se:
        w, b = src.se.reduce.active(spec.mid_channels, spec.se_channels)
        dst.se.reduce.weight.copy_(w)
        dst.se.reduce.bias.copy_(b)
        w, b = src.se.expand.active(spec.se_channels, spec.mid_channels)
        dst.se.expand.weight.copy_(w)
        dst.se.expand.bias.copy_(b)
    _copy_conv_bn(dst.project, src.project)


@torch.no_grad()
def extract(supernet: Supernet, arch: Arch) -> MobileNet:
    """The static network of ``arch`` (from :func:`nas.nn.build_network`) with the supernet's
    sliced weights, transformed kernels and BatchNorm statistics copied in.

    The result is independent of the supernet (copies, not views), on the supernet's device and
    dtype, and in the supernet's train/eval mode. In eval mode its output equals
    ``supernet(x, arch)``.
    """
    spec = supernet.resolve(arch)
    ref = next(supernet.parameters())
    net = build_network(spec).to(device=ref.device, dtype=ref.dtype)
    _copy_conv_bn(net.stem, supernet.stem)
    for dst, src in zip(net.blocks, supernet.blocks_of(arch)):
        _copy_block(dst, src)
    _copy_conv_bn(net.final_conv, supernet.final_conv)
    head = spec.head
    if head.classifier_channels:
        w, b = supernet.hidden.active(head.final_channels, head.classifier_channels)
        net.classifier.hidden[0].weight.copy_(w)
        net.classifier.hidden[0].bias.copy_(b)
    fc_in = head.classifier_channels or head.final_channels
    w, b = supernet.fc.active(fc_in, spec.num_classes)
    net.classifier.fc.weight.copy_(w)
    net.classifier.fc.bias.copy_(b)
    return net.train(supernet.training)
