from __future__ import annotations

import json

import onnx
import torch

from nas.export import export_network, load_model, load_weights
from nas.nn import build_network


def test_export_round_trip(tmp_path, tiny_space):
    arch = tiny_space.sample(3)
    model = build_network(tiny_space.resolve(arch, num_classes=5))
    # non-trivial BN statistics so that eval-mode export is really exercised
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, arch.resolution, arch.resolution))
    model.eval()
    result = export_network(model, tmp_path / "best", arch=arch)
    assert result.onnx_max_abs_diff <= 1e-4 and result.program_max_abs_diff <= 1e-4
    onnx.checker.check_model(str(result.onnx_path))
    x = torch.randn(3, 3, arch.resolution, arch.resolution)
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(load_model(result.program_path)(x), want, atol=1e-5)
        assert torch.allclose(load_weights(result.weights_path)(x), want, atol=1e-5)
    doc = json.loads(result.arch_path.read_text())
    assert doc["arch_string"] == str(arch) and doc["network"]["num_classes"] == 5
    extra = {"arch.json": ""}
    with open(result.program_path, "rb") as f:
        torch.export.load(f, extra_files=extra)
    assert json.loads(extra["arch.json"])["arch_string"] == str(arch)
