"""The host table's start-up probe: a few whole networks timed here against the table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nas.latency import Entry, LatencyTable, host_device_name, min_latency, probe_applies, probe_table


def _scaled(table: LatencyTable, factor: float, **header) -> LatencyTable:
    h = table.header
    h = replace(h, overhead_ms=h.overhead_ms * factor, layer_correction_ms=h.layer_correction_ms * factor, **header)
    return LatencyTable(h, {k: Entry(e.ms * factor, e.iqr_ms) for k, e in table.entries.items()})


def test_probe_times_the_extremes_and_random_members(micro_table, micro_space):
    fastest = min_latency(micro_table, micro_space, num_classes=10)[1]
    report = probe_table(micro_table, micro_space, num_classes=10, fastest=fastest, networks=5)
    assert [n["role"] for n in report.networks] == ["fastest", "smallest", "largest", "random", "random"]
    assert report.networks[0]["arch"] == str(fastest)
    assert len({n["arch"] for n in report.networks[2:]}) == 3
    for n in report.networks:
        assert n["measured_ms"] > 0 and n["predicted_ms"] > 0
    d = report.to_dict()
    assert d["ok"] == (d["metrics"]["median_abs_error_pct"] <= d["tolerance_pct"])
    assert d["space"] == micro_space.name and d["num_classes"] == 10 and d["seconds"] > 0


def test_a_table_far_off_this_machine_is_reported_with_the_fix(micro_table, micro_space):
    # tiny networks are noisy, but not by a factor of 5
    # (canary_ms 0: no canary to compare with, as in tables older than it)
    off = _scaled(micro_table, 5.0, cpu="Some Other CPU, 2 cores, avx2", canary_ms=0.0)
    report = probe_table(off, micro_space, num_classes=10, networks=3)
    assert not report.ok and report.metrics["mean_signed_error_pct"] > 100
    text = report.summary()
    assert text.startswith("WARNING") and "predicts more" in text
    assert "'Some Other CPU, 2 cores, avx2'" in text  # names both machines
    assert f"--space {micro_space.name} --num-classes 10" in text and "nas.latency build --device host" in text
    assert "nas.latency calibrate --base-table micro_dev --here" in text
    low = probe_table(_scaled(micro_table, 0.2, canary_ms=0.0), micro_space, num_classes=10, networks=3)
    assert not low.ok and "predicts less" in low.summary() and "same CPU model" in low.summary()
    assert low.canary_slower_than_at_build_pct is None


def test_a_calibrated_table_of_this_cpu_is_not_called_another_machines(micro_table, micro_space):
    cal = {"base_table": {"device": "micro_dev"}, "measurements": {"networks": 6}, "model": "scale",
           "cross_validation": {"median_abs_error_pct": 7.5}}
    fit = _scaled(micro_table, 0.2, canary_ms=0.0, method="calibrated", device="board", calibration=cal)
    report = probe_table(fit, micro_space, num_classes=10, networks=3)
    text = report.summary()
    assert not report.ok and report.calibration["networks"] == 6
    assert "a few-shot calibration of 'micro_dev' from 6 networks" in text and "7.5%" in text
    assert "not this machine's" not in text
    assert "calibrate --base-table micro_dev --here" in text  # from the measured base, not from the fit


def test_a_busy_machine_is_told_apart_from_another_machine(micro_table, micro_space):
    # the canary block ran 10x faster when the table was built: this machine is busy now
    h = micro_table.header
    busy = probe_table(_scaled(micro_table, 0.2, canary_ms=h.canary_ms / 10), micro_space, num_classes=10, networks=2)
    assert busy.canary_slower_than_at_build_pct > 500
    assert "busy now" in busy.summary() and "quiet" in busy.summary()


def test_probe_applies_to_tables_that_claim_this_machine(micro_table):
    assert probe_applies(micro_table, "host")
    assert probe_applies(micro_table, "micro_dev")  # measured here: this machine's CPU
    other = LatencyTable(replace(micro_table.header, cpu="ARM Cortex-A76, 4 cores, neon"), micro_table.entries)
    assert not probe_applies(other, "micro_dev")  # a measured table of another device
    mine = LatencyTable(replace(other.header, device=host_device_name()), micro_table.entries)
    assert probe_applies(mine, "some/path.json")
    calibrated = LatencyTable(replace(micro_table.header, method="calibrated"), micro_table.entries)
    assert probe_applies(calibrated, "micro_dev")
    estimated = LatencyTable(replace(mine.header, method="estimated"), mine.entries)
    assert not probe_applies(estimated, "host")


@pytest.mark.parametrize("n", [1, 0, True, 2.5])
def test_probe_needs_two_networks(micro_table, micro_space, n):
    with pytest.raises(ValueError, match="networks"):
        probe_table(micro_table, micro_space, num_classes=10, networks=n)
