"""The multi-scale backbone: feature_info, features_only / forward_features and features.onnx."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from nas.export import export_network, feature_reductions
from nas.nn import FEATURE_REDUCTIONS, build_network, feature_info, features_only, get_preset
from nas.space import load_space


@pytest.mark.parametrize("name", ["mobilenetv3_large", "mobilenetv3_small", "mobilenetv4_conv_small"])
def test_feature_maps_have_the_strides_and_channels_of_feature_info(name):
    model = build_network(get_preset(name, num_classes=7, resolution=96)).eval()
    info = model.feature_info
    assert [f["reduction"] for f in info] == list(FEATURE_REDUCTIONS)
    with torch.no_grad():
        maps = model.forward_features(torch.randn(2, 3, 96, 96))
    assert [tuple(m.shape) for m in maps] == [(2, f["num_chs"], 96 // f["reduction"], 96 // f["reduction"])
                                             for f in info]
    # each map is the output of the last block at its stride: the next block halves the side (or is the end)
    strides = [b.stride for b in model.spec.blocks]
    for f in info:
        assert f["index"] == len(strides) - 1 or strides[f["index"] + 1] == 2


def test_features_only_shares_the_weights_and_matches_the_classifier_path():
    model = build_network(get_preset("mobilenetv3_small", num_classes=3, resolution=64)).eval()
    backbone = features_only(model)
    assert backbone.stem is model.stem and backbone.blocks[0] is model.blocks[0]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        deepest = backbone(x)[-1]
        last = model.blocks(model.stem(x))  # the stride-32 map is the last block's output here
    assert torch.equal(deepest, last)


def test_feature_info_refuses_a_stride_the_network_never_reaches():
    spec = load_space("mobilenetv3_small32").resolve(load_space("mobilenetv3_small32").smallest(), 3)
    reached = feature_reductions(spec)
    missing = next(r for r in (8, 16, 32, 64) if r not in reached)
    with pytest.raises(ValueError, match=f"no block output at reduction {missing}"):
        feature_info(spec, (*reached, missing) if missing > max(reached, default=0) else (missing,))
    with pytest.raises(ValueError, match="increasing"):
        feature_info(spec, (16, 8))


def test_features_onnx_returns_three_maps_whose_shapes_match_feature_info(tmp_path):
    space = load_space("mobilenetv3_large")
    arch = space.sample(1)
    model = build_network(space.resolve(arch, num_classes=4))
    model.train()
    with torch.no_grad():  # non-trivial BN statistics
        for _ in range(2):
            model(torch.randn(4, 3, 64, 64))
    result = export_network(model.eval(), tmp_path / "best", arch=arch, resolution=64)
    doc = json.loads(result.arch_path.read_text())
    assert doc["feature_info"] == list(result.feature_info) and len(doc["feature_info"]) == 3
    session = ort.InferenceSession(str(result.features_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["features_s8", "features_s16", "features_s32"]
    x = torch.randn(3, 3, 64, 64)
    got = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        want = model.forward_features(x)
    for g, w, f in zip(got, want, doc["feature_info"]):
        assert g.shape == (3, f["num_chs"], 64 // f["reduction"], 64 // f["reduction"])
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4)


def test_a_network_without_stride_8_exports_no_features_onnx(tmp_path, tiny_space):
    arch = tiny_space.sample(0)
    spec = tiny_space.resolve(arch, num_classes=3)  # stem and one stage stride 2: reduction 4 at most
    assert feature_reductions(spec) == ()
    result = export_network(build_network(spec).eval(), tmp_path / "best", arch=arch)
    assert result.features_path is None and result.feature_info == ()
    assert not (tmp_path / "best" / "features.onnx").exists() and (tmp_path / "best" / "model.onnx").exists()
    assert json.loads(result.arch_path.read_text())["feature_info"] == []


def test_a_network_with_only_stride_8_exports_that_one_map(tmp_path):
    space = load_space("mobilenetv3_small32")
    arch = space.smallest()
    result = export_network(build_network(space.resolve(arch, 3)).eval(), tmp_path / "best", arch=arch)
    assert [f["reduction"] for f in result.feature_info] == [8]
    session = ort.InferenceSession(str(result.features_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["features_s8"]


def test_the_documented_detection_head_example_runs(tmp_path):
    """docs/search.md's backbone example, on a freshly exported network."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "search.md").read_text()
    section = text[text.index("### Backbone for detection and segmentation"):]
    code = section[section.index("```python") + len("```python"): section.index("```", section.index("```python") + 9)]
    space = load_space("mobilenetv3_large")
    arch = space.sample(2)
    export_network(build_network(space.resolve(arch, num_classes=4)).eval(), tmp_path / "best", arch=arch,
                   resolution=64)
    code = code.replace("runs/NAME/best/weights.pt", str(tmp_path / "best" / "weights.pt"))
    scope: dict = {}
    exec(compile(code, "docs/search.md", "exec"), scope)
    assert tuple(scope["pred"].shape) == (1, 4, 28, 28)
    assert [tuple(m.shape[1:2]) for m in scope["maps"]] == [(c,) for c in scope["channels"]]
