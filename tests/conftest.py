"""Shared fixtures: tiny search spaces written on the fly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY_SPACE = textwrap.dedent(
    """
    name: tiny
    in_channels: 3
    base_resolution: 16
    resolutions: [12, 16]
    width_multipliers: [0.5, 1.0]
    stem: {out_channels: 8, kernel: 3, stride: 2, act: hswish}
    stages:
      - {out_channels: 8, stride: 1, depths: [1], kernels: [3], expansions: [1], se: [false], acts: [relu]}
      - {out_channels: 16, stride: 2, depths: [1, 2], kernels: [3, 5], expansions: [3, 6], se: [false, true], acts: [relu, hswish]}
      - {out_channels: 24, stride: 1, depths: [1, 2], kernels: [3, 5], expansions: [3, 6], se: [false, true], acts: [relu, hswish]}
    head: {final_channels: 32, classifier_channels: 48, dropout: 0.0}
    """
)


@pytest.fixture
def tiny_space_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def tiny_space(tiny_space_file: Path):
    from nas.space import load_space

    return load_space(tiny_space_file)
