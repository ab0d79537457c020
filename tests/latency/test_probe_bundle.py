"""The probe bundle: which networks, weight-free ONNX files, the standalone runner on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import onnxruntime as ort
import pytest

from nas.latency._probe_bundle import probe_networks, read_probe_manifest, strip_weights, write_probe
from nas.latency._runner import materialise_weights


def test_the_networks_are_distinct_and_include_the_smallest_and_largest(micro_space):
    picks = probe_networks(micro_space, 8, num_classes=10, seed=0)
    assert len(picks) == 8
    assert picks[0] == ("smallest", micro_space.smallest()) and picks[1] == ("largest", micro_space.largest())
    assert len({a.to_string() for _, a in picks}) == 8
    assert probe_networks(micro_space, 8, num_classes=10, seed=0) == picks  # deterministic
    with pytest.raises(ValueError, match="networks must be an integer >= 2"):
        probe_networks(micro_space, 1, num_classes=10)


def test_spread_picks_cover_more_of_the_space_than_the_first_random_members(micro_space):
    """Max-min selection reaches both depths of both searchable stages with few networks."""
    picks = probe_networks(micro_space, 6, num_classes=10, seed=1)
    depths = {tuple(len(stage) for stage in a.stages) for _, a in picks}
    assert len(depths) >= 3


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_stripped_model_runs_once_its_weights_are_written(tmp_path, precision):
    from torch import nn

    from nas.latency._modules import model_bytes

    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3)).eval()
    full = model_bytes(model, (3, 16, 16), precision)
    stripped, weights = strip_weights(full, "m.weights", seed=3)
    assert len(stripped) < len(full) / 2
    assert weights["bytes"] == sum(n for n, _, _ in weights["tensors"]) > 0
    kinds = {k for _, _, k in weights["tensors"]}
    assert kinds == ({"float32"} if precision == "fp32" else {"int8"})  # int8 weights; small biases stay
    (tmp_path / "m.onnx").write_bytes(stripped)
    entry = {"file": "m.onnx", "weights": weights | {"file": "m.weights"}}
    path = materialise_weights(str(tmp_path), entry)
    assert os.path.getsize(path) == weights["bytes"]
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": np.ones((1, 3, 16, 16), np.float32)})[0]
    assert out.shape == (1, 32, 12, 12) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory, micro_space, fast_settings):
    out = tmp_path_factory.mktemp("probe") / "probe.tar"
    manifest = write_probe(out, space=micro_space, networks=10, num_classes=10, settings=fast_settings,
                           chunk_size=5, progress=False)
    with tarfile.open(out) as tar:
        tar.extractall(out.parent, filter="data")
    return out, out.parent / "probe", manifest


def test_the_runner_alone_times_every_network_of_the_probe(probe_dir):
    tar, folder, manifest = probe_dir
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "manifest.json", "models", "run_bundle.py"]
    assert read_probe_manifest(tar) == manifest
    # the runner needs only numpy and onnxruntime: run it as the device would, from the folder
    subprocess.run([sys.executable, "run_bundle.py", "--quiet"], cwd=folder, check=True, env={"PATH": os.environ["PATH"]})
    results = json.loads((folder / "results.json").read_text())
    keys = [n["key"] for n in manifest["probe"]["networks"]]
    assert results["complete"] and sorted(results["results"]) == sorted(keys)
    assert results["probe"] == manifest["probe"]
    assert all(v["ms"] > 0 for v in results["results"].values())
    assert not list((folder / "models").glob("*.weights"))  # written for loading, then removed
    assert "cpu_model" in results["device_info"]
