"""A synthetic latency table for the tiny test space (latency grows with multiply-adds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cost import layer_cost


def write_fake_table(space, path: Path, num_classes=(4, 10), device: str = "fake_phone") -> Path:
    from nas.latency import Entry, LatencyTable, SpaceRef, TableHeader, space_layers

    layers = space_layers(space, num_classes)
    entries = {key: Entry(ms=0.01 + layer_cost(layer).madds / 1e5) for key, layer in layers.items()}
    header = TableHeader(
        device=device, description="synthetic test table", method="estimated", runtime="onnxruntime",
        runtime_version="test", execution_provider="CPUExecutionProvider", intra_op_threads=1,
        inter_op_threads=1, execution_mode="sequential", graph_optimization="all", opset=17, batch=1,
        warmup=1, rounds=1, repeats=1, statistic="median", spread="iqr", overhead_ms=0.005,
        cpu="test", date="2026-01-01T00:00:00+00:00",
        spaces=(SpaceRef(space.name, space.digest),), num_classes=tuple(num_classes), n_entries=len(entries),
    )  # fmt: skip
    LatencyTable(header, entries).save(path)
    return path


@pytest.fixture
def fake_table(tmp_path, tiny_space) -> Path:
    return write_fake_table(tiny_space, tmp_path / "fake_phone.json")
