"""The tables committed in latency_tables/: valid, covering the shipped spaces, predicting presets."""

from __future__ import annotations

import pytest

from nas.latency import TABLES_DIR, available_devices, load_table, min_latency, predict_latency
from nas.nn import get_preset
from nas.space import load_space

SHIPPED = available_devices()
pytestmark = pytest.mark.skipif(not SHIPPED, reason=f"no tables in {TABLES_DIR}")


@pytest.mark.parametrize("device", SHIPPED)
def test_shipped_table_loads_for_the_shipped_spaces(device):
    for name in ("mobilenetv3_large", "mobilenetv3_small32"):
        space = load_space(name)
        table = load_table(device, space=space)
        floor, fastest = min_latency(table, space)
        assert 0 < floor <= predict_latency(table, space.largest(), space=space)
        assert predict_latency(table, fastest, space=space) == pytest.approx(floor)


@pytest.mark.parametrize("device", ["pixel_cpu", "amd_epyc_avx2_2c"])
def test_tables_cover_the_block_kind_spaces(device):
    for name in ("mobilenetv4_conv_small", "mobilenetv4_small32", "mobilenet_mixed_small32"):
        space = load_space(name)
        table = load_table(device, space=space)
        floor, fastest = min_latency(table, space)
        assert 0 < floor <= predict_latency(table, space.largest(), space=space)
        assert predict_latency(table, fastest, space=space) == pytest.approx(floor)
        assert fastest in space


def test_pixel_cpu_is_labelled_an_estimate():
    table = load_table("pixel_cpu")
    assert table.header.method == "estimated"
    assert "ESTIMATE" in table.header.description
    assert table.header.calibration and "holdout" in table.header.calibration


@pytest.mark.parametrize(
    ("preset", "published_ms"),
    [("mobilenetv2", 73.8), ("mnasnet_a1", 78.0), ("mobilenetv3_large_0.75", 39.8), ("mobilenetv3_small_0.75", 12.8)],
)
def test_pixel_cpu_predicts_published_float_latencies(preset, published_ms):
    ms = predict_latency(load_table("pixel_cpu"), get_preset(preset, resolution=224))
    assert ms == pytest.approx(published_ms, rel=0.2)
