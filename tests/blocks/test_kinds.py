"""Block kinds: the registry, a toy kind added by this test alone, UIB against its definition,
and exact cost formulas (MAdds == torch's FLOP counter / 2) for every kind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import (
    BlockKind,
    BneckSpec,
    ConvSpec,
    FusedSpec,
    LayerSpec,
    UIBSpec,
    block_from_dict,
    block_kinds,
    conv_out,
    kind_of,
    register,
)
from nas.blocks._registry import _BY_TYPE, _KINDS
from nas.cost import network_cost
from nas.netspec import HeadSpec, NetworkSpec, StemSpec
from nas.nn import build_network
from nas.shapes import walk


def _net(*blocks, resolution: int = 32) -> NetworkSpec:
    return NetworkSpec("t", 3, resolution, 10, StemSpec(16), tuple(blocks), HeadSpec(64, classifier_channels=32))


def _exact_madds(spec: NetworkSpec) -> None:
    model = build_network(spec).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, spec.resolution, spec.resolution))
    cost = network_cost(spec)
    assert 2 * cost.madds == counter.get_total_flops()
    assert cost.params == sum(p.numel() for p in model.parameters())


def test_registry_names_every_kind():
    assert {"bneck", "uib", "fused", "conv"} <= set(block_kinds())
    assert type(block_from_dict({"in_channels": 16, "mid_channels": 16, "out_channels": 16, "kernel": 3,
                                 "stride": 1})) is BneckSpec  # files from before kinds existed
    with pytest.raises(ValueError, match="unknown block kind 'mqa'"):
        block_from_dict({"kind": "mqa"})
    with pytest.raises(ValueError, match="not a valid uib block"):
        block_from_dict({"kind": "uib", "in_channels": 8})


@pytest.mark.parametrize("start, mid, stride", [(3, 5, 2), (0, 3, 2), (5, 0, 2), (0, 0, 1), (3, 3, 1), (5, 0, 1)])
@pytest.mark.parametrize("se", [0, 16])
def test_uib_cost_is_exact_and_spec_round_trips(start, mid, stride, se):
    spec = _net(UIBSpec(16, 64, 16 if stride == 1 else 24, start, mid, stride, se, "hswish"))
    _exact_madds(spec)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec


def test_uib_layer_order_and_stride_placement_follow_mobilenetv4():
    extra_dw = build_network(_net(UIBSpec(16, 64, 24, 3, 5, 2, 0, "relu"))).blocks[0]
    assert [type(m).__name__ for m in extra_dw.children()][:5] == ["ConvBNAct", "ConvBNAct", "ConvBNAct",
                                                                   "Identity", "ConvBNAct"]
    assert extra_dw.start[0].stride == (1, 1) and extra_dw.mid[0].stride == (2, 2)  # stride on the mid DW
    assert isinstance(extra_dw.start[2], nn.Identity)  # no activation after the start DW
    assert extra_dw.start[0].groups == 16 and extra_dw.mid[0].groups == 64
    convnext = build_network(_net(UIBSpec(16, 64, 24, 5, 0, 2, 0, "relu"))).blocks[0]
    assert convnext.start[0].stride == (2, 2) and isinstance(convnext.mid, nn.Identity)  # stride on the start DW
    ffn = build_network(_net(UIBSpec(16, 32, 16, 0, 0, 1, 0, "relu"))).blocks[0]
    assert ffn.residual and isinstance(ffn.start, nn.Identity) and isinstance(ffn.mid, nn.Identity)
    with pytest.raises(ValueError, match="stride 2 needs a depthwise conv"):
        UIBSpec(16, 32, 16, 0, 0, 2)
    with pytest.raises(ValueError, match="uib.mid_kernel must be one of"):
        UIBSpec(16, 32, 16, 0, 4, 1)


def test_uib_keys_tell_the_variants_apart():
    keys = {walk(_net(UIBSpec(16, 64, 16, s, m, 1)))[1].key for s, m in [(3, 3), (0, 3), (3, 0), (0, 0)]}
    assert len(keys) == 4 and all(k.startswith("uib-i16x16x16-o16x16x16-e64-") for k in keys)


def test_fused_and_conv_costs_are_exact():
    _exact_madds(_net(FusedSpec(16, 64, 24, 3, 2, "relu"), FusedSpec(24, 96, 24, 3, 1, "hswish"),
                      ConvSpec(24, 32, 3, 2, "relu"), ConvSpec(32, 32, 1, 1, "relu6")))


def test_bneck_keys_are_unchanged():
    layer = walk(_net(BneckSpec(16, 64, 24, 5, 2, 16, "hswish")))[1]
    assert layer.key == "bneck-i16x16x16-o24x8x8-e64-k5-s2-se16-hswish-r0"


# --- a further kind, added by this test alone: everything it needs lives in its BlockKind ---

@dataclass(frozen=True)
class _DoubleConvSpec:
    in_channels: int
    out_channels: int
    stride: int = 1


class _DoubleConv(nn.Sequential):
    def __init__(self, spec: _DoubleConvSpec) -> None:
        super().__init__(nn.Conv2d(spec.in_channels, spec.out_channels, 3, spec.stride, 1, bias=False),
                         nn.Conv2d(spec.out_channels, spec.out_channels, 1, bias=False))


@pytest.fixture
def toy_kind():
    class DoubleConv(BlockKind):
        name = "toy_doubleconv"
        spec_type = _DoubleConvSpec

        def layer(self, spec, in_shape, index):
            _, h, w = in_shape
            out = (spec.out_channels, conv_out(h, 3, spec.stride), conv_out(w, 3, spec.stride))
            return LayerSpec(self.name, in_shape, out, kernel=3, stride=spec.stride, index=index)

        def key(self, layer):
            return f"s{layer.stride}"

        def cost(self, layer):
            ci, hi, wi = layer.in_shape
            co, ho, wo = layer.out_shape
            params = 9 * ci * co + co * co
            return params, params * ho * wo, 2 * co * ho * wo, ci * hi * wi + 2 * co * ho * wo

        def static_module(self, spec):
            return _DoubleConv(spec)

        def spec_from_layer(self, layer):
            return _DoubleConvSpec(layer.in_shape[0], layer.out_shape[0], layer.stride)

    register(DoubleConv)
    yield DoubleConv
    del _KINDS["toy_doubleconv"], _BY_TYPE[_DoubleConvSpec]


def test_a_new_kind_works_through_builder_walker_cost_and_json(toy_kind):
    spec = _net(_DoubleConvSpec(16, 24, 2), BneckSpec(24, 96, 24, 3, 1))
    assert kind_of(spec.blocks[0]).name == "toy_doubleconv"
    assert walk(spec)[1].key == "toy_doubleconv-i16x16x16-o24x8x8-s2"
    _exact_madds(spec)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="registered twice"):
        register(toy_kind)


@pytest.mark.parametrize("block", [BneckSpec(16, 64, 24, 5, 2, 16, "hswish"), UIBSpec(16, 64, 16, 3, 5, 1, 0, "relu"),
                                   FusedSpec(16, 64, 24, 3, 2, "relu"), ConvSpec(16, 24, 3, 1, "relu6")])
def test_latency_tables_measure_the_module_the_builder_uses(block):
    """A table key's layer gives back its block's static module (what `nas.latency` times)."""
    from nas.latency._modules import layer_module

    layer = walk(_net(block))[1]
    module = layer_module(layer)
    assert type(module) is type(build_network(_net(block)).blocks[0])
    x = torch.randn(1, *layer.in_shape)
    assert module(x).shape[1:] == layer.out_shape
    wrong = LayerSpec(layer.kind, layer.in_shape, layer.out_shape, kernel=layer.kernel, stride=layer.stride,
                      mid_channels=layer.mid_channels, se_channels=layer.se_channels, act=layer.act,
                      residual=not layer.residual, index=layer.index, start_kernel=layer.start_kernel)
    with pytest.raises(ValueError, match="disagree"):
        layer_module(wrong)
