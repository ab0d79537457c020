"""One layer of the shape walker -> the ``nn.Module`` the static builder would use -> ONNX bytes.

The modules are the builder's own (``ConvBNAct``, ``InvertedResidual``, ``Classifier``), so a block
measured alone runs exactly the operators it runs inside a whole network; they are exported by the
package's one ONNX exporter, :func:`nas.export.export_onnx`, at its opset
(:data:`nas.export.ONNX_OPSET`).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from nas.export import export_onnx as _export_onnx
from nas.blocks import kind_named
from nas.nn import Classifier, ConvBNAct
from nas.shapes import LayerSpec

__all__ = ["layer_module", "onnx_bytes", "model_bytes", "overhead_module", "canary_layer"]



def layer_module(layer: LayerSpec) -> nn.Module:
    """Build the module of one walker layer in eval mode (BatchNorm uses running statistics)."""
    ci, co = layer.in_shape[0], layer.out_shape[0]
    if layer.kind == "stem":
        m: nn.Module = ConvBNAct(ci, co, kernel=layer.kernel, stride=layer.stride, act=layer.act)
    elif layer.kind == "final_conv":
        m = ConvBNAct(ci, co, act=layer.act)
    elif layer.kind == "classifier":
        m = Classifier(ci, layer.hidden, layer.hidden_act or "hswish", 0.0, co)
    else:  # a block: its kind builds the module the builder would use
        m = kind_named(layer.kind).module_for_layer(layer)
    return m.eval()


class _Overhead(nn.Module):
    """The cheapest possible model: one ReLU on one number. Its run time is the per-call cost."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def overhead_module() -> tuple[nn.Module, tuple[int, int, int]]:
    return _Overhead().eval(), (1, 1, 1)


def canary_layer() -> LayerSpec:
    """A fixed block timed alongside every chunk to detect a disturbed machine.

    Its expanded tensor (240 x 56 x 56 floats, 3 MB) does not fit in a core's L2 cache, so it slows
    down both when another process takes the core and when one saturates the shared caches and
    memory bandwidth - the disturbance that hurts whole networks most.
    """
    return LayerSpec(
        "bneck", (40, 56, 56), (40, 56, 56), kernel=5, stride=1, mid_channels=240, act="hswish", residual=True
    )


def onnx_bytes(module: nn.Module, in_shape: tuple[int, ...], *, seed: int = 0) -> bytes:
    """Export ``module`` for a batch-1 input of ``in_shape`` (C, H, W) and return the ONNX bytes.

    The graph has static shapes (batch 1, input ``x``, output ``y``), as every table key is timed;
    the export itself is :func:`nas.export.export_onnx` (the fast TorchScript exporter).
    """
    torch.manual_seed(seed)
    x = torch.randn(1, *in_shape)
    buf = io.BytesIO()
    _export_onnx(module, buf, x, input_name="x", output_name="y", dynamic_batch=False)
    return buf.getvalue()


def model_bytes(module: nn.Module, in_shape: tuple[int, ...], precision: str = "fp32", *, seed: int = 0) -> bytes:
    """The ONNX model that is timed for ``precision``: :func:`onnx_bytes`, or its int8 version
    (:func:`nas.quantize.quantize_int8`, calibrated on two seeded normal batches: the scales do
    not change the operators that run, so the timing does not depend on them)."""
    data = onnx_bytes(module, in_shape, seed=seed)
    if precision == "fp32":
        return data
    from nas.quantize import check_precision, quantize_int8

    check_precision(precision)
    rng = np.random.default_rng(seed)
    return quantize_int8(data, [rng.standard_normal((1, *in_shape)).astype(np.float32) for _ in range(2)])


#: Former name of :func:`onnx_bytes`, still imported by ``_build.py``, ``_bundle.py``,
#: ``benchmarks/search_quality.py`` and ``tests/latency/test_build.py``; not a second exporter.
