"""pixel_cpu calibration: NNLS, mapping of the published block table, the fit on synthetic data."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from nas.latency import LatencyTable
from nas.latency._calibrate import (_lut_key, calibrate_pixel, default_reference_dir, layer_features,
                                    load_observations, nnls)
from nas.latency._coverage import layers_of, proxyless_lut_specs
from nas.shapes import LayerSpec

REF = default_reference_dir()
TABLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "latency_tables"


def test_nnls_matches_an_exact_non_negative_solution():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(40, 5))
    x = np.array([1.0, 0.0, 2.5, 0.0, 0.3])
    assert np.allclose(nnls(a, a @ x), x, atol=1e-8)
    # a solution that would need a negative weight is clipped to zero
    b = a @ np.array([1.0, -1.0, 0.0, 0.0, 0.0])
    assert (nnls(a, b) >= 0).all()


def test_proxyless_keys_map_onto_walker_keys():
    keys = set(layers_of(proxyless_lut_specs()))
    assert _lut_key("Conv-input:224x224x3-output:112x112x32") == "stem-i3x224x224-o32x112x112-k3-s2-relu6"
    assert _lut_key("Logits-input:7x7x1280-output:1000") == "classifier-i1280x7x7-o1000x1x1-h0-"
    k = _lut_key("expanded_conv-input:56x56x24-output:28x28x40-expand:6-kernel:5-stride:2-idskip:0")
    assert k == "bneck-i24x56x56-o40x28x28-e144-k5-s2-se0-relu6-r0" and k in keys
    k = _lut_key("expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:7-stride:1-idskip:0")
    assert k == "bneck-i32x112x112-o16x112x112-e32-k7-s1-se0-relu6-r0" and k in keys


def test_features_of_a_block():
    layer = LayerSpec("bneck", (16, 8, 8), (16, 8, 8), kernel=3, stride=1, mid_channels=64, se_channels=16,
                      act="hswish", residual=True)  # fmt: skip
    f = dict(zip(
        ("host_ms", "dense_mmacs", "depthwise_mmacs", "se_melems", "written_melems", "hswish_melems", "layer"),
        layer_features(layer, 0.5),
    ))  # fmt: skip
    assert f["host_ms"] == 0.5 and f["layer"] == 1.0
    assert f["dense_mmacs"] == pytest.approx(2 * 16 * 64 * 64 / 1e6)
    assert f["depthwise_mmacs"] == pytest.approx(9 * 64 * 64 / 1e6)
    assert f["hswish_melems"] == pytest.approx(2 * 64 * 64 / 1e6)


def test_published_rows_are_read_with_their_precision():
    obs = load_observations(REF)
    lut = [o for o in obs if o.kind == "layer"]
    nets = [o for o in obs if o.kind == "network"]
    assert len(lut) == 72 and len(nets) == 54
    quant = {o.name for o in nets if o.precision == "uint8"}
    assert quant == {"mnv3_large_1.0@224/uint8", "mnv3_small_1.0@224/uint8", "mnv3_large_minimalistic_1.0@224/uint8"}


def test_calibration_beats_a_global_scale_on_synthetic_phone_data(header_factory):
    """A fake 'phone' whose cost is a known mix of features: the fit must recover it on held-out
    rows far better than one scale factor. Uses a synthetic host table (no measuring)."""
    from nas.latency import Entry, LatencyTable
    from nas.latency._calibrate import _evaluate, split_holdout
    from nas.latency._coverage import reference_layers

    layers = reference_layers()
    host_ms = {k: 0.01 + 1e-4 * layer_features(l, 0)[1] * 10 + 1e-4 * layer_features(l, 0)[2] for k, l in layers.items()}
    host = LatencyTable(header_factory(overhead_ms=0.0, n_entries=len(layers)), {k: Entry(v) for k, v in host_ms.items()})
    obs = load_observations(REF)
    fit, held = split_holdout(obs)
    assert held and all(o.precision == "float" for o in fit + held)
    report = _evaluate(fit, held, host)
    assert report["calibrated"]["median_abs_error_pct"] < report["global_scale"]["median_abs_error_pct"]


def test_the_published_data_ships_with_the_package_as_the_shipped_estimate_recorded_it():
    assert REF.parent.name == "latency" and (REF / "README.md").is_file()
    recorded = LatencyTable.read(TABLES / "pixel_cpu.json").header.calibration["reference"]
    assert set(recorded) == {"pixel1_proxylessnas_block_lut.yaml", "pixel1_published_latency.csv"}
    for name, digest in recorded.items():
        assert hashlib.sha256((REF / name).read_bytes()).hexdigest()[:16] == digest, name


def test_the_shipped_pixel_cpu_estimate_is_rebuilt_from_the_repository(tmp_path):
    shipped = LatencyTable.read(TABLES / "pixel_cpu.json")
    cal = shipped.header.calibration
    host = LatencyTable.read(TABLES / f"{cal['source_table']['device']}.json")
    table, report = calibrate_pixel(REF, host=host, device="pixel_cpu")
    assert table.header.calibration["theta"] == pytest.approx(cal["theta"], rel=1e-6, abs=1e-9)
    table.save(tmp_path / "pixel_cpu.json")  # the values as the file rounds them
    rebuilt = LatencyTable.read(tmp_path / "pixel_cpu.json")
    assert rebuilt.entries == shipped.entries
    assert report["holdout"]["calibrated"]["median_abs_error_pct"] == cal["holdout"]["calibrated"]["median_abs_error_pct"]


def test_missing_reference_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="pixel1_proxylessnas_block_lut.yaml"):
        load_observations(tmp_path)
