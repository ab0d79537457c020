from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.cost import network_cost
from nas.nn import preset_names, build_network, get_preset
from nas.space import load_space


def _flops(model, resolution: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, resolution, resolution))
    return counter.get_total_flops()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("space_name, resolution", [("mobilenetv3_large", 96), ("mobilenetv3_small32", None)])
def test_madds_match_torch_flop_counter_on_random_archs(space_name, resolution, seed):
    space = load_space(space_name)
    arch = space.sample(seed)
    spec = space.resolve(arch, num_classes=10, resolution=resolution)
    model = build_network(spec).eval()
    cost = network_cost(spec)
    assert 2 * cost.madds == _flops(model, spec.resolution)
    assert cost.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", preset_names())
def test_presets_match_flop_counter(name):
    spec = get_preset(name, resolution=128)
    assert 2 * network_cost(spec).madds == _flops(build_network(spec).eval(), 128)


def test_depthwise_separable_formula():
    # one bneck without expansion or SE: D_K^2 * M * D_F^2 + M * N * D_F^2
    spec = get_preset("mobilenetv3_large")
    first = network_cost(spec).layers[1]
    assert first.layer.kind == "bneck"
    m, n, df, dk = 16, 16, 112, 3
    assert first.madds == dk * dk * m * df * df + m * n * df * df


def test_activation_memory_is_reported():
    cost = network_cost(get_preset("mobilenetv3_small"))
    assert cost.peak_bytes > 0 and cost.activation_bytes > cost.peak_bytes
    # stem output 16x112x112 float32
    assert cost.layers[0].activation_bytes == 16 * 112 * 112 * 4
