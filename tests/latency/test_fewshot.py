"""Few-shot calibration: the fit, the calibrated table end to end, and refused measurements."""

from __future__ import annotations

import json
import math
import tarfile

import numpy as np
import pytest

from nas.latency import LatencyTableError, load_table, predict_latency, validate_table
from nas.latency._calibrate import FEATURES
from nas.latency._fewshot import calibrate_table, fit_fewshot, read_measurements
from nas.latency._probe_bundle import write_probe
from nas.latency._runner import run_bundle


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.uniform(0.5, 2.0, size=(n, len(FEATURES)))
    rows[:, FEATURES.index("layer")] = rng.integers(10, 30, n)
    return rows


def test_a_known_per_operation_model_is_recovered_and_chosen():
    rows = _rows(30)
    theta = np.array([0.6, 0.0, 0.4, 0.2, 0.0, 0.1, 0.01])
    ms = rows @ theta + 0.005
    fit = fit_fewshot(rows, ms, 0.005)
    assert fit.model == "per-op"
    assert fit.cv["median_abs_error_pct"] < 0.01
    assert np.allclose(fit.full_theta(), theta, atol=1e-6)
    assert fit.base_cv["median_abs_error_pct"] > 10  # the base time alone is far off


def test_a_pure_scale_is_kept_as_the_simpler_model():
    rows = _rows(20, seed=1)
    ms = 0.8 * rows[:, 0] + 0.005
    fit = fit_fewshot(rows, ms, 0.005)
    assert fit.model == "scale" and fit.coefficients() == pytest.approx({"host_ms": 0.8})


@pytest.mark.parametrize("model, n, message", [
    ("per-op", 9, "9 measured networks are too few for model 'per-op' (7 terms: it needs at least 10)"),
    ("auto", 3, "3 measured networks are too few for any model"),
    ("affine", 4, "too few for model 'affine'"),
])
def test_too_few_networks_for_the_model_are_refused(model, n, message):
    rows = _rows(n)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit_fewshot(rows, rows[:, 0] + 0.01, 0.005, model=model)


def test_auto_uses_only_the_models_the_networks_allow():
    rows = _rows(6)
    fit = fit_fewshot(rows, 0.9 * rows[:, 0] + 0.005, 0.005)
    assert set(fit.candidates) == {"scale", "affine"}


@pytest.fixture(scope="module")
def measured_probe(tmp_path_factory, micro_space, fast_settings):
    """A 12-network probe of the micro space, written, unpacked and timed here."""
    base = tmp_path_factory.mktemp("fewshot")
    write_probe(base / "probe.tar", space=micro_space, networks=12, num_classes=10, settings=fast_settings,
                progress=False)
    with tarfile.open(base / "probe.tar") as tar:
        tar.extractall(base, filter="data")
    run_bundle(str(base / "probe"), progress=False)
    return base / "probe.tar", base / "probe" / "results.json"


def test_probe_to_calibrated_table_to_validate(measured_probe, micro_table, micro_space, micro_space_file, tmp_path):
    _, results = measured_probe
    meas = read_measurements(results)
    assert len(meas) == 12 and meas.kind == "probe"
    table, fit = calibrate_table(micro_table, meas, name="micro_new", spaces=[micro_space])
    h = table.header
    assert h.method == "calibrated" and h.device == "micro_new" and len(table) == len(micro_table)
    assert h.covers(micro_space.digest) and h.overhead_ms == meas.overhead_ms
    cal = h.calibration
    assert cal["base_table"]["device"] == "micro_dev" and cal["measurements"]["networks"] == 12
    assert cal["model"] == fit.model and set(cal["coefficients"]) == set(fit.terms)
    assert cal["cross_validation"]["method"] == "leave-one-out"
    assert all(e.ms > 0 for e in table.entries.values())
    path = table.save(tmp_path / "micro_new.json")
    loaded = load_table(path, space=micro_space)  # what nas.search --device does
    assert predict_latency(loaded, micro_space.largest(), space=micro_space, num_classes=10) > 0
    report = validate_table(loaded, micro_space, 4, num_classes=10, progress=False)
    assert report.device == "micro_new" and math.isfinite(report.metrics["median_abs_error_pct"])
    # a validate report feeds back as measurements: a residual correction of the table
    (tmp_path / "val.json").write_text(json.dumps(report.to_dict()))
    again = read_measurements(tmp_path / "val.json")
    assert again.kind == "validation" and len(again) == 4 and again.space_digest == micro_space.digest
    corrected, _ = calibrate_table(loaded, again, name="micro_corrected", spaces=[micro_space], model="scale")
    assert corrected.header.calibration["method"] == "residual"


def _broken(results, tmp_path, change):
    data = json.loads(results.read_text())
    change(data)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    return path


def _drop_two(d):
    for k in ("net-003", "net-007"):
        del d["results"][k]


@pytest.mark.parametrize("change, message", [
    (_drop_two, "2 of the probe's 12 networks were not measured (net-003, net-007): the run was interrupted"),
    (lambda d: d["results"]["net-002"].update(ms=float("nan")), "results.net-002.ms: must be a finite number > 0"),
    (lambda d: d["results"]["net-004"].update(ms=-1.0), "results.net-004.ms: must be a finite number > 0"),
    (lambda d: d["probe"]["networks"].reverse(), "probe.id: does not match the networks listed"),
    (lambda d: d.pop("probe"), "results of a per-key bundle, not of a probe"),
    (lambda d: d.update(format="something/1"), "format 'something/1', expected 'nas-latency-results/1'"),
    (lambda d: d["results"].update({"net-999": {"ms": 1.0}}), "networks not in the probe: ['net-999']"),
])
def test_broken_measurements_are_refused_with_one_clear_message(measured_probe, tmp_path, change, message):
    _, results = measured_probe
    with pytest.raises(LatencyTableError) as err:
        read_measurements(_broken(results, tmp_path, change))
    assert message in str(err.value)
    assert str(err.value).count("\n") == 0


def test_measurements_of_another_probe_are_refused(measured_probe, micro_space, fast_settings, tmp_path):
    _, results = measured_probe
    other = write_probe(tmp_path / "other.tar", space=micro_space, networks=10, num_classes=10, seed=5,
                        settings=fast_settings, progress=False)
    with pytest.raises(LatencyTableError, match="these are the results of another probe"):
        read_measurements(results, probe=other)


def test_a_base_table_for_another_space_is_refused(measured_probe, micro_space, tmp_path):
    from tests.search.conftest import write_fake_table
    from nas.latency import LatencyTable
    from nas.space import load_space

    _, results = measured_probe
    other = LatencyTable.read(write_fake_table(load_space("mobilenetv3_small32"), tmp_path / "t.json"))
    with pytest.raises(LatencyTableError, match="not the measured networks' space 'micro'"):
        calibrate_table(other, read_measurements(results), name="x", spaces=[micro_space])


def test_a_fit_that_misses_its_own_networks_is_flagged():
    from nas.latency._fewshot import CHECKED_NETWORKS, fit_warning

    rows = _rows(CHECKED_NETWORKS, seed=3)
    clean = rows @ np.array([0.8, 0.01, 0.02, 0, 0, 0, 0.001]) + 0.005
    assert fit_warning(fit_fewshot(rows, clean, 0.005)) is None
    noisy = clean * np.random.default_rng(4).uniform(0.8, 1.25, len(clean))  # a busy device: +-20%
    warning = fit_warning(fit_fewshot(rows, noisy, 0.005))
    assert warning.startswith("warning: leave-one-out median |error|") and "time it again" in warning
    few = fit_fewshot(rows[:12], clean[:12], 0.005)
    assert fit_warning(few).startswith("note: 12 networks give only a rough leave-one-out estimate")


def test_calibrate_warns_when_the_base_table_has_another_precision():
    from nas.latency._fewshot import precision_warning

    assert precision_warning("t", "int8", "int8") is None
    assert precision_warning("t", "fp32", "fp32") is None
    warning = precision_warning("host_fp", "fp32", "int8")
    assert "'host_fp' is fp32" in warning and "timed in int8" in warning and "intel_xeon_avx512_2c_int8" in warning
    assert "same precision" in precision_warning("q", "int8", "fp32")


def test_runs_of_one_probe_combine_into_each_networks_median(measured_probe):
    from dataclasses import replace

    from nas.latency._fewshot import combine_measurements

    _, results = measured_probe
    one = read_measurements(results)
    slower = replace(one, ms=tuple(1.2 * m for m in one.ms), overhead_ms=2 * one.overhead_ms, path="again.json")
    both = combine_measurements([one, slower])
    assert both.ms == pytest.approx([1.1 * m for m in one.ms]) and both.overhead_ms == pytest.approx(1.5 * one.overhead_ms)
    assert both.archs == one.archs and both.path == f"{one.path} + again.json"
    assert combine_measurements([one]) is one
    with pytest.raises(LatencyTableError, match="combine runs of one probe only"):
        combine_measurements([one, replace(slower, probe_id="0123456789abcdef")])
    with pytest.raises(LatencyTableError, match=r"other settings .* \(rounds\)"):
        combine_measurements([one, replace(slower, settings={**one.settings, "rounds": 99})])
    with pytest.raises(LatencyTableError, match="only a probe's results can be combined"):
        combine_measurements([one, replace(slower, kind="validation")])

