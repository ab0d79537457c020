"""Shared set-up of the search tests: a synthetic latency table for the tiny test space (latency
grows with multiply-adds), synthetic data, and the smoke settings of an end-to-end search."""

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


@pytest.fixture(scope="module")
def splits():
    from nas.data import load_data

    return load_data("synthetic", synthetic_size=384, channels=3)


def search_config(tmp_path: Path, tiny_space_file: Path, fake_table: Path, **changes):
    """Smoke settings of a search on the tiny space with the synthetic table and data, without the
    confirmation step unless ``changes`` asks for it (``finetune_top``)."""
    from nas.search._inputs import SearchConfig

    values = dict(
        device=str(fake_table), budget="2.5ms", space=str(tiny_space_file), data="synthetic",
        trials=6, run_dir=str(tmp_path / "run"), supernet=str(tmp_path / "supernet"), smoke=True,
        calib_images=64, val_limit=64, seed=0, finetune_top=0,
    )  # fmt: skip
    values.update(changes)
    return SearchConfig(**values)
