"""The models a latency table times: the builder's own modules, exported by ``nas.export``'s one
ONNX exporter at the package's opset, as static batch-1 graphs."""

from __future__ import annotations

import io

import onnx
import torch

from nas.export import ONNX_OPSET, export_onnx
from nas.latency._modules import canary_layer, layer_module, onnx_bytes


def test_layer_models_come_from_the_one_exporter_at_the_package_opset():
    layer = canary_layer()
    module = layer_module(layer)
    model = onnx_bytes(module, layer.in_shape)
    proto = onnx.load_from_string(model)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    (graph_input,) = proto.graph.input
    assert graph_input.name == "x" and proto.graph.output[0].name == "y"
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [1, *layer.in_shape]  # static
    torch.manual_seed(0)
    buffer = io.BytesIO()
    export_onnx(module, buffer, torch.randn(1, *layer.in_shape), input_name="x", output_name="y",
                dynamic_batch=False)
    assert model == buffer.getvalue()
