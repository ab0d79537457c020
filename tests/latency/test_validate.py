"""validate: metrics, and predicted vs measured on the micro space (smoke: tiny nets are noisy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.latency import LatencyTableError, predict_latency
from nas.latency._validate import error_metrics, validate_table
from nas.space import Arch


def test_error_metrics():
    m = error_metrics([10.0, 10.5, 12.0, 8.0], [10.0, 10.0, 10.0, 10.0])
    assert m["median_abs_error_pct"] == pytest.approx(12.5)
    assert m["max_abs_error_pct"] == pytest.approx(20.0)
    assert m["within_5pct"] == pytest.approx(0.5)
    assert m["within_10pct"] == pytest.approx(0.5)
    # tau-b of predicted vs measured: measured is constant here, so it ranks nothing
    assert math.isnan(m["kendall_tau"])


def test_error_metrics_kendall_tau_is_tau_b():
    # predicted ties two subnets that measure apart: 5 concordant pairs of 6, 1 tied in predicted only
    m = error_metrics([1.0, 2.0, 2.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert m["kendall_tau"] == pytest.approx(5 / np.sqrt(5 * 6))
    assert math.isnan(error_metrics([10.0], [11.0])["kendall_tau"])  # one subnet ranks nothing either


def test_validate_runs_end_to_end(micro_table, micro_space):
    # whole networks of 32 px take tens of microseconds: how close predictions come depends on the
    # machine's load, so this checks that the report is consistent, not how small its errors are
    report = validate_table(micro_table, micro_space, 4, seed=0, num_classes=10, progress=False)
    assert report.samples == 4 and len(report.subnets) == 4
    assert report.device == micro_table.device and report.space == micro_space.name
    assert report.overhead_ms == micro_table.header.overhead_ms
    for s in report.subnets:
        assert s["measured_ms"] > 0 and s["iqr_ms"] >= 0
        # the prediction is the table's, for the arch the subnet names
        arch = Arch.from_string(s["arch"])
        assert s["predicted_ms"] == round(predict_latency(micro_table, arch, space=micro_space, num_classes=10), 4)
        # error_pct is (predicted - measured) / measured, up to the 4-decimal rounding of both times
        p, m = s["predicted_ms"], s["measured_ms"]
        m_low = m - 5e-5
        rounding = 100 * 5e-5 * (1 / m_low + (p + 5e-5) / m_low**2) + 0.005
        assert s["error_pct"] == pytest.approx(100 * (p - m) / m, abs=rounding)
    # the metrics summarise the subnets' errors (each error_pct is rounded to 0.005)
    errors = np.array([s["error_pct"] for s in report.subnets])
    m = report.metrics
    assert m["median_abs_error_pct"] == pytest.approx(np.median(np.abs(errors)), abs=0.01)
    assert m["max_abs_error_pct"] == pytest.approx(np.max(np.abs(errors)), abs=0.005)
    assert m["mean_abs_error_pct"] == pytest.approx(np.mean(np.abs(errors)), abs=0.005)
    assert m["mean_signed_error_pct"] == pytest.approx(np.mean(errors), abs=0.005)
    assert m["median_abs_error_pct"] <= m["max_abs_error_pct"]
    assert 0 <= m["within_5pct"] <= m["within_10pct"] <= 1 and 4 * m["within_10pct"] == int(4 * m["within_10pct"])
    assert -1 <= m["kendall_tau"] <= 1
    assert report.settings["retried_chunks"] >= 0 and report.settings["disturbed_chunks"] >= 0
    summary = report.summary()
    assert "Kendall tau" in summary and f"{m['median_abs_error_pct']:.2f}%" in summary


def test_validate_refuses_an_estimated_table(micro_table, micro_space):
    from dataclasses import replace

    from nas.latency import LatencyTable

    est = LatencyTable(replace(micro_table.header, method="estimated"), micro_table.entries)
    with pytest.raises(LatencyTableError, match="estimated"):
        validate_table(est, micro_space, 2, progress=False)


def test_validate_refuses_a_table_from_another_machine(micro_table, micro_space):
    from dataclasses import replace

    from nas.latency import LatencyTable

    other = LatencyTable(replace(micro_table.header, cpu="ARM Cortex-A73, 4 cores, neon"), micro_table.entries)
    with pytest.raises(LatencyTableError, match="this machine is"):
        validate_table(other, micro_space, 2, progress=False)
