"""The UIB spaces: MobileNetV4-Conv-S is a member of its space, the mixed space offers both kinds
per block, strided UIB positions exclude the FFN pick, and the Optuna parameters reach every kind."""

from __future__ import annotations

import optuna
import pytest

from nas.blocks import ConvArch, UIBArch, kind_of_arch
from nas.cost import network_cost
from nas.errors import ArchError, ConfigError
from nas.nn import get_preset
from nas.search import arch_to_params, suggest_arch
from nas.space import Arch, load_space, parse_space


def _conv_small_arch(space) -> Arch:
    uib3 = [(5, 5, 3)] + [(0, 3, 2)] * 4 + [(3, 0, 4)]
    uib4 = [(3, 3, 6), (5, 5, 4), (0, 5, 4), (0, 5, 3), (0, 3, 4), (0, 3, 4)]
    stages = ((ConvArch(3, "relu"),), (ConvArch(1, "relu"),), (ConvArch(3, "relu"),), (ConvArch(1, "relu"),),
              tuple(UIBArch(a, m, e, False, "relu") for a, m, e in uib3),
              tuple(UIBArch(a, m, e, False, "relu") for a, m, e in uib4))
    return Arch(space.name, 224, 1.0, stages)


def test_mobilenetv4_conv_small_is_a_member_of_its_space():
    space = load_space("mobilenetv4_conv_small")
    arch = _conv_small_arch(space)
    assert arch in space
    spec, preset = space.resolve(arch, 1000), get_preset("mobilenetv4_conv_small", num_classes=1000)
    assert spec.blocks == preset.blocks and spec.head == preset.head and spec.stem == preset.stem
    cost = network_cost(spec)
    assert cost.params == network_cost(preset).params and 3.7e6 < cost.params < 3.9e6
    assert Arch.from_string(arch.to_string()) == arch
    assert "uib_s5m5e3r uib_s0m3e2r" in arch.to_string() and arch.to_string().split(" | ")[1] == "cn_k3r"


def test_strided_uib_positions_exclude_ffn():
    space = load_space("mobilenetv4_conv_small")
    first, later = space.slots(4)
    assert all(a.start or a.mid for a in first.options) and any(not (a.start or a.mid) for a in later.options)
    assert first.count() == 8 * 4 and later.count() == 9 * 4
    ffn_first = _conv_small_arch(space)
    stages = list(ffn_first.stages)
    stages[4] = (UIBArch(0, 0, 2, False, "relu"),) + stages[4][1:]
    with pytest.raises(ArchError, match=r"stages\[4\]\[0\]: a stride-2 UIB needs a depthwise conv"):
        space.check(Arch(space.name, 224, 1.0, tuple(stages)))
    assert space.smallest() in space and space.smallest().stages[4][0].mid == 3  # nearest valid pick
    # counted per position: first block 32 picks, later blocks 36
    assert space.count() == 3 * 2 * sum(32 * 36 ** (d - 1) for d in (4, 5, 6)) ** 2


def test_mixed_space_offers_both_kinds_and_suggests_them():
    space = load_space("mobilenet_mixed_small32")
    archs = [space.sample(seed) for seed in range(30)]
    assert {kind_of_arch(b).name for a in archs for b in a.blocks[1:]} == {"bneck", "uib"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    suggested = [suggest_arch(study.ask(), space) for _ in range(30)]
    assert all(a in space for a in suggested)
    assert {kind_of_arch(b).name for a in suggested for b in a.blocks[1:]} == {"bneck", "uib"}
    for arch in archs[:5] + [space.largest(), space.smallest()]:
        study.enqueue_trial(arch_to_params(arch, space))
        assert suggest_arch(study.ask(), space) == arch


def test_stage_choices_are_checked_per_kind():
    base = load_space("mobilenet_mixed_small32").config.to_dict()
    stages = [dict(s) for s in base["stages"]]
    stages[1] = {**stages[1], "choices": [{"block": "uib", "start_kernels": [0], "mid_kernels": [0],
                                           "expansions": [2]},
                                          {"block": "bneck", "kernels": [4], "expansions": [3]},
                                          {"block": "fused", "kernels": [3]}, {"kernels": [3]}]}
    with pytest.raises(ConfigError) as info:
        parse_space({**base, "stages": stages})
    problems = info.value.problems
    assert any(p.startswith("stages[1].choices[0]: no block of these choices can have stride 2") for p in problems)
    assert "stages[1].choices[1].kernels: 4 not in {3, 5, 7}" in problems
    assert any(p.startswith("stages[1].choices[2].block: block kind 'fused' cannot be searched") for p in problems)
    assert any(p.startswith("stages[1].choices[3].block: required key is missing") for p in problems)
