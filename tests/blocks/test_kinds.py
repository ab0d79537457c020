"""Block kinds: the registry, a toy searchable kind added by this test alone (this file is the
whole diff that adds it), UIB against its definition, and exact cost formulas (MAdds == torch's
FLOP counter / 2) for every kind."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pytest
import torch
from pydantic.dataclasses import dataclass as pydantic_dataclass
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import (
    CHOICES_CONFIG,
    ActChoices,
    BlockShape,
    Expansions,
    BneckSpec,
    ConvBNAct,
    ConvSpec,
    ElasticConvBN,
    FusedSpec,
    LayerSpec,
    OpCounts,
    SearchableKind,
    UIBSpec,
    block_from_dict,
    block_kinds,
    conv_out,
    kind_of,
    kind_of_arch,
    register,
    unregister,
)
from nas.channels import expanded_channels
from nas.errors import ConfigError
from nas.latency import space_layers
from nas.search import arch_to_params, suggest_arch
from nas.space import Arch, SearchSpace, parse_space
from nas.supernet import Supernet
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


# --- a further kind, added by this test alone: everything it needs lives in its kind class ---
# "toy_wide": 1x1 conv to expanded channels (BN, act; carries the stride) -> 1x1 linear projection
# (BN) -> residual when shapes allow. Searchable: expansion and activation; token ``toy_e3r``.

@dataclass(frozen=True)
class _WideSpec(BlockShape):
    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int = 1
    act: str = "relu"
    se_channels: int = 0  # BlockShape reads it


class _Wide(nn.Module):
    def __init__(self, spec: _WideSpec) -> None:
        super().__init__()
        self.spec = spec
        self.expand = ConvBNAct(spec.in_channels, spec.mid_channels, stride=spec.stride, act=spec.act)
        self.project = ConvBNAct(spec.mid_channels, spec.out_channels, act=None)

    def forward(self, x):
        out = self.project(self.expand(x))
        return out + x if self.spec.residual else out


class _ElasticWide(nn.Module):
    reorderable = False

    def __init__(self, max_in: int, max_mid: int, max_out: int, stride: int) -> None:
        super().__init__()
        self.expand = ElasticConvBN(max_in, max_mid, stride=stride)
        self.project = ElasticConvBN(max_mid, max_out)

    def forward(self, x, spec: _WideSpec):
        out = self.project(self.expand(x, spec.mid_channels, spec.act), spec.out_channels, None)
        return out + x if spec.residual else out

    def copy_into(self, dst: _Wide) -> None:
        self.expand.copy_into(dst.expand)
        self.project.copy_into(dst.project)


@pydantic_dataclass(frozen=True, config=CHOICES_CONFIG)
class _WideChoices:
    expansions: Expansions
    acts: ActChoices = ("relu",)


@dataclass(frozen=True)
class _WideArch:
    expand: float
    act: str


@pytest.fixture
def toy_kind():
    class Wide(SearchableKind):
        name = "toy_wide"
        spec_type = _WideSpec
        choices_type = _WideChoices
        arch_type = _WideArch
        token_prefix = "toy"

        def layer(self, spec, in_shape, index):
            _, h, w = in_shape
            out = (spec.out_channels, conv_out(h, 1, spec.stride), conv_out(w, 1, spec.stride))
            return LayerSpec(self.name, in_shape, out, stride=spec.stride, mid_channels=spec.mid_channels,
                             act=spec.act, residual=spec.residual, index=index)

        def key(self, layer):
            return f"e{layer.mid_channels}-s{layer.stride}-{layer.act}-r{int(layer.residual)}"

        def cost(self, layer):
            ci, hi, wi = layer.in_shape
            co, ho, wo = layer.out_shape
            m = layer.mid_channels
            params = ci * m + 2 * m + m * co + 2 * co
            madds = (ci * m + m * co) * ho * wo
            return params, madds, (m + co) * ho * wo, ci * hi * wi + (m + co) * ho * wo

        def op_counts(self, layer):
            return OpCounts(dense_madds=self.cost(layer)[1])

        def static_module(self, spec):
            return _Wide(spec)

        def spec_from_layer(self, layer):
            return _WideSpec(layer.in_shape[0], layer.mid_channels, layer.out_shape[0], layer.stride, layer.act)

        def axes(self, choices):
            return {"expand": choices.expansions, "act": choices.acts}

        def token(self, arch):
            return f"e{arch.expand:g}{arch.act[0]}"

        def parse_token(self, text):
            return _WideArch(float(text[1:-1]), {"r": "relu", "h": "hswish"}[text[-1]])

        def resolve(self, arch, *, in_channels, out_channels, stride, se_reduction):
            return _WideSpec(in_channels, expanded_channels(in_channels, arch.expand), out_channels, stride, arch.act)

        def elastic_module(self, specs, *, kernel_transform, skip_padding_taps):
            return _ElasticWide(max(s.in_channels for s in specs), max(s.mid_channels for s in specs),
                                max(s.out_channels for s in specs), specs[0].stride)

    register(Wide)
    yield Wide
    unregister("toy_wide")


def _toy_space():
    return SearchSpace(parse_space({
        "name": "toy", "base_resolution": 16, "resolutions": [12, 16], "width_multipliers": [0.5, 1.0],
        "stem": {"out_channels": 16},
        "stages": [
            {"out_channels": 16, "stride": 1, "depths": [1], "kernels": [3], "expansions": [1]},
            {"out_channels": 24, "stride": 2, "depths": [1, 2], "block": "toy_wide", "expansions": [2, 4],
             "acts": ["relu", "hswish"]},
            {"out_channels": 32, "stride": 2, "depths": [1, 2], "choices": [
                {"block": "bneck", "kernels": [3, 5], "expansions": [3]},
                {"block": "toy_wide", "expansions": [1, 3]}]},
        ],
        "head": {"final_channels": 64, "classifier_channels": 32},
    }))


def test_a_new_kind_works_through_builder_walker_cost_and_json(toy_kind):
    spec = _net(_WideSpec(16, 32, 24, 2), BneckSpec(24, 96, 24, 3, 1))
    assert kind_of(spec.blocks[0]).name == "toy_wide"
    assert walk(spec)[1].key == "toy_wide-i16x16x16-o24x8x8-e32-s2-relu-r0"
    _exact_madds(spec)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="registered twice"):
        register(toy_kind)


def test_a_new_kind_is_searchable_end_to_end(toy_kind):
    """Space YAML (flat and mixed stages), arch strings, sampling, counting, the supernet and its
    extraction, the Optuna parameters and the latency-table keys: all from the kind class above."""
    space = _toy_space()
    data = space.config.to_dict()
    assert parse_space(data).digest == space.digest  # YAML round trip
    bad = {**data, "stages": [data["stages"][0], {**data["stages"][1], "kernels": [3]}, data["stages"][2]]}
    with pytest.raises(ConfigError, match=r"stages\[1\]\.kernels: unknown key"):
        parse_space(bad)
    # per resolution and width: stage 1 has 4 picks per block, stage 2 has 2 bneck + 2 toy picks
    assert space.count() == 2 * 2 * 1 * (4 + 4**2) * (4 + 4**2)
    archs = [space.sample(seed) for seed in range(12)] + [space.largest(), space.smallest()]
    assert {kind_of_arch(b).name for a in archs for b in a.stages[2]} == {"bneck", "toy_wide"}
    assert all(a.to_string().split(" | ")[2].startswith("toy_e") for a in archs)
    supernet = Supernet(space, 10).eval()
    for arch in archs:
        assert arch in space
        assert Arch.from_string(arch.to_string()) == arch and Arch.from_json(arch.to_json()) == arch
        x = torch.randn(2, 3, arch.resolution, arch.resolution)
        torch.testing.assert_close(supernet(x, arch), supernet.extract(arch).eval()(x), rtol=1e-4, atol=1e-5)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for arch in archs[:4]:
        study.enqueue_trial(arch_to_params(arch, space))
    assert [suggest_arch(study.ask(), space) for _ in range(4)] == archs[:4]
    assert any(key.startswith("toy_wide-") for key in space_layers(space, (10,)))
