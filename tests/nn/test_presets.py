from __future__ import annotations

import pytest
import torch

from nas.cost import network_cost
from nas.nn import build_network, get_preset, is_preset, preset_names

# MobileNetV3 paper (Howard et al. 2019), Table 3, 224 px, multiplier 1.0: (MAdds, params)
PAPER = {
    "mobilenetv3_large": (219e6, 5.4e6),
    "mobilenetv3_small": (56e6, 2.5e6),
    # MobileNetV2 (tensorflow/models slim README: 300M, 3.47M) and MnasNet-A1 paper Table 1
    "mobilenetv2": (300e6, 3.47e6),
    "mnasnet_a1": (312e6, 3.9e6),
}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_builds_and_runs(name):
    spec = get_preset(name, num_classes=7, resolution=64)
    model = build_network(spec).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["mobilenetv3_large", "mobilenetv3_small"])
def test_mobilenetv3_matches_paper_within_2_percent(name):
    madds, params = PAPER[name]
    cost = network_cost(get_preset(name))
    assert abs(cost.madds - madds) / madds < 0.02
    assert abs(cost.params - params) / params < 0.02


@pytest.mark.parametrize("name", ["mobilenetv2", "mnasnet_a1"])
def test_other_presets_match_their_papers_within_3_percent(name):
    madds, params = PAPER[name]
    cost = network_cost(get_preset(name))
    assert abs(cost.madds - madds) / madds < 0.03
    assert abs(cost.params - params) / params < 0.03


def test_mobilenetv3_large_layout():
    spec = get_preset("mobilenetv3_large")
    assert len(spec.blocks) == 15
    assert [b.mid_channels for b in spec.blocks][:4] == [16, 64, 72, 72]
    assert not spec.blocks[0].has_expand and spec.blocks[0].residual
    assert spec.blocks[3].se_channels == 24  # make_divisible(72 / 4, 8)
    assert spec.head.final_channels == 960 and spec.head.classifier_channels == 1280


def test_width_suffix_scales_channels_but_not_hidden_layer():
    spec = get_preset("mobilenetv3_small_0.75")
    assert spec.stem.out_channels == 16  # make_divisible(12) = 16
    assert spec.blocks[-1].out_channels == 72
    assert spec.head.classifier_channels == 1024
    assert network_cost(spec).params < network_cost(get_preset("mobilenetv3_small")).params


def test_mobilenetv2_width_rows_match_published_params():
    # Pixel-1 reference table (tensorflow/models slim README): params in millions
    for width, params in [(1.0, 3.47), (0.75, 2.61), (0.5, 1.95), (0.35, 1.66)]:
        got = network_cost(get_preset(f"mobilenetv2_{width:g}")).params / 1e6
        assert abs(got - params) / params < 0.02, (width, got)


def test_unknown_preset():
    assert not is_preset("resnet50") and not is_preset("mobilenetv2_x")
    with pytest.raises(KeyError, match="known"):
        get_preset("resnet50")


def test_mobilenetv4_conv_presets_match_the_paper_and_timm():
    """Conv-S: paper 3.8 M params / 0.2 G MACs at 224 px; Conv-M: paper 9.2 M / 1.0 G at 256 px
    (timm's mobilenetv4_conv_medium has 9.7 M: the paper's figure is rounded from another count)."""
    small = network_cost(get_preset("mobilenetv4_conv_small"))
    assert abs(small.params - 3.8e6) / 3.8e6 < 0.02 and abs(small.madds - 0.19e9) / 0.19e9 < 0.05
    medium = network_cost(get_preset("mobilenetv4_conv_medium"))
    assert medium.resolution == 256
    assert abs(medium.params - 9.72e6) / 9.72e6 < 0.01 and abs(medium.madds - 1.0e9) / 1.0e9 < 0.1
    kinds = [type(b).__name__ for b in get_preset("mobilenetv4_conv_small").blocks]
    assert kinds[:4] == ["ConvSpec"] * 4 and set(kinds[4:]) == {"UIBSpec"}
    assert type(get_preset("mobilenetv4_conv_medium").blocks[0]).__name__ == "FusedSpec"
