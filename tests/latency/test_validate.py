"""validate: metrics, and predicted vs measured on the micro space (smoke: tiny nets are noisy)."""

from __future__ import annotations

import numpy as np
import pytest

from nas.latency import LatencyTableError
from nas.latency._validate import error_metrics, kendall_tau, validate_table


def test_kendall_tau_known_values():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair out of six: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    assert kendall_tau(x, x + 1e-3 * rng.normal(size=50)) > 0.9


def test_error_metrics():
    m = error_metrics([10.0, 10.5, 12.0, 8.0], [10.0, 10.0, 10.0, 10.0])
    assert m["median_abs_error_pct"] == pytest.approx(12.5)
    assert m["max_abs_error_pct"] == pytest.approx(20.0)
    assert m["within_5pct"] == pytest.approx(0.5)
    assert m["within_10pct"] == pytest.approx(0.5)


def test_validate_runs_end_to_end(micro_table, micro_space):
    report = validate_table(micro_table, micro_space, 4, seed=0, num_classes=10, progress=False)
    assert report.samples == 4 and len(report.subnets) == 4
    assert all(s["measured_ms"] > 0 and s["predicted_ms"] > 0 for s in report.subnets)
    # whole networks of 32 px take tens of microseconds: only a loose sanity bound here
    assert report.metrics["median_abs_error_pct"] < 100
    assert "Kendall tau" in report.summary()


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
