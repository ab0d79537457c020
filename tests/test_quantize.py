"""Int8 static quantization of ONNX models and scoring an ONNX model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from nas.quantize import check_precision, onnx_model_fn, quantize_int8


def _float_model(tmp_path):
    from nas.export import export_onnx
    from nas.nn import build_network
    from nas.space import load_space

    space = load_space("mobilenetv3_small32")
    net = build_network(space.resolve(space.smallest(), num_classes=10)).eval()
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "m.onnx"
    export_onnx(net, path, x)
    return net, path, x


def test_int8_model_is_qdq_with_int8_weights_and_close_to_float(tmp_path):
    net, path, x = _float_model(tmp_path)
    rng = np.random.default_rng(0)
    q = quantize_int8(path, [rng.standard_normal((4, 3, 32, 32)).astype(np.float32) for _ in range(4)])
    proto = onnx.load_from_string(q)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(i.data_type == onnx.TensorProto.INT8 for i in proto.graph.initializer)
    want = onnx_model_fn(path)(x)
    got = onnx_model_fn(q)(x)
    assert got.shape == want.shape == (2, 10)
    assert torch.allclose(want, net(x).detach(), atol=1e-4 * max(1.0, float(want.abs().max())) + 1e-5)
    # int8 is an approximation, not noise: its logits follow the float ones
    assert float(torch.corrcoef(torch.stack([got.flatten(), want.flatten()]))[0, 1]) > 0.9


def test_quantization_needs_calibration_data(tmp_path):
    _, path, _ = _float_model(tmp_path)
    with pytest.raises(ValueError, match="at least one calibration batch"):
        quantize_int8(path, [])


def test_precision_names_are_checked():
    assert check_precision("int8") == "int8"
    with pytest.raises(ValueError, match="precision: 'int4' is not one of fp32, int8"):
        check_precision("int4")
