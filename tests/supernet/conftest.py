"""Fixtures of the supernet tests: a tiny space (16-24 px, few channels) and synthetic data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.data import load_data
from nas.space import load_space

TINY_YAML = """\
name: tiny
description: test space exercising every elastic dimension
in_channels: 3
base_resolution: 16
resolutions: [16, 24]
width_multipliers: [0.75, 1.0]
se_reduction: 4
stem: {out_channels: 16, kernel: 3, stride: 2, act: hswish}
stages:
  - {name: first, out_channels: 16, stride: 1, depths: [1], kernels: [3], expansions: [1], se: [false], acts: [relu]}
  - {name: s1, out_channels: 32, stride: 2, depths: [1, 2], kernels: [3, 5, 7], expansions: [1, 3, 4], se: [false, true], acts: [relu, hswish]}
  - {name: s2, out_channels: 40, stride: 2, depths: [1, 2, 3], kernels: [3, 5], expansions: [2, 3], se: [false, true], acts: [relu, hswish]}
head: {final_channels: 64, final_act: hswish, pool: avg, classifier_channels: 32, classifier_act: hswish, dropout: 0.2}
"""


@pytest.fixture(scope="session")
def tiny_space_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spaces") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


@pytest.fixture(scope="session")
def tiny_space(tiny_space_path: Path):
    return load_space(tiny_space_path)


@pytest.fixture(scope="session")
def synthetic():
    return load_data("synthetic", channels=3, seed=0)


@pytest.fixture(autouse=True)
def _one_thread():
    # tests run beside timing-sensitive jobs: one thread, restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def randomize():
    return _randomize


def _randomize(supernet, seed: int = 1) -> None:
    """Give BN statistics, BN affine params, biases and kernel transforms non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, b in supernet.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0.0, 0.2, generator=g)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0, generator=g)
        for name, p in supernet.named_parameters():
            if "transforms" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bn.weight"):
                p.uniform_(0.5, 1.5, generator=g)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.2, generator=g)
            elif p.dim() == 2:  # linears start at N(0, 0.01): make logits differ visibly
                p.normal_(0.0, 0.2, generator=g)
