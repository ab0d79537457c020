"""Fixtures for the latency tests: a very small space and a table measured once per session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

#: One resolution, one width, two searchable stages with two block choices each: 16 keys.
MICRO_SPACE = textwrap.dedent(
    """
    name: micro
    in_channels: 3
    base_resolution: 32
    resolutions: [32]
    width_multipliers: [1.0]
    stem: {out_channels: 8, kernel: 3, stride: 2, act: hswish}
    stages:
      - {out_channels: 8, stride: 1, depths: [1], kernels: [3], expansions: [1], se: [false], acts: [relu]}
      - {out_channels: 16, stride: 2, depths: [1, 2], kernels: [3, 5], expansions: [3], se: [false], acts: [relu]}
      - {out_channels: 24, stride: 2, depths: [1, 2], kernels: [3], expansions: [3], se: [false, true], acts: [hswish]}
    head: {final_channels: 32, classifier_channels: 48, dropout: 0.0}
    """
)


def make_header(**changes):
    """A valid measured-table header with test values, overridden by ``changes``."""
    from nas.latency import TableHeader

    values = dict(
        device="fake_dev", description="synthetic", method="measured", runtime="onnxruntime",
        runtime_version="1.0", execution_provider="CPUExecutionProvider", intra_op_threads=1,
        inter_op_threads=1, execution_mode="sequential", graph_optimization="all", opset=17, batch=1,
        warmup=1, rounds=1, repeats=1, statistic="median", spread="iqr", overhead_ms=0.005,
        cpu="test cpu", date="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    values.update(changes)
    return TableHeader(**values)


@pytest.fixture(scope="session")
def header_factory():
    return make_header


@pytest.fixture(scope="session")
def micro_space_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "micro.yaml"
    path.write_text(MICRO_SPACE)
    return path


@pytest.fixture(scope="session")
def micro_space(micro_space_file: Path):
    from nas.space import load_space

    return load_space(micro_space_file)


@pytest.fixture(scope="session")
def fast_settings():
    from nas.latency import MeasureSettings

    return MeasureSettings(warmup=1, rounds=2, repeats=3, max_retries=0)


@pytest.fixture(scope="session")
def micro_table(tmp_path_factory: pytest.TempPathFactory, micro_space, fast_settings):
    """A table of the micro space measured here (a few seconds)."""
    from nas.latency._build import build_table

    path = tmp_path_factory.mktemp("tables") / "micro_dev.json"
    return build_table(
        "micro_dev", path, spaces=[micro_space], num_classes=(10,), references=False,
        settings=fast_settings, composition_subnets=4, progress=False,
    )  # fmt: skip
