"""Int8 ONNX models: ONNX Runtime static quantization, and scoring an ONNX model on a data split.

One recipe for everything this package quantizes (the latency tables' per-layer models and whole
networks with ``--precision int8``, and ``best/model.int8.onnx`` of a search): ONNX Runtime's
:func:`onnxruntime.quantization.quantize_static` in the QDQ format, weights int8 per output channel,
activations uint8 with min/max calibration (the choice ONNX Runtime recommends for x86 and ARM
CPUs), after its shape-inference pre-processing. Whether int8 is faster than float on a CPU is
not assumed anywhere: int8 tables are measured, and an int8 export reports its accuracy next to
the float model's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["PRECISIONS", "INT8_RECIPE", "check_precision", "quantize_int8", "onnx_model_fn"]

#: Precisions of a latency table / of timed models.
PRECISIONS = ("fp32", "int8")

#: What :func:`quantize_int8` does, recorded with every int8 artefact.
INT8_RECIPE = {
    "tool": "onnxruntime.quantization.quantize_static",
    "format": "QDQ",
    "weights": "int8, per channel",
    "activations": "uint8, min/max calibration",
}


def check_precision(value: str, field: str = "precision") -> str:
    if value not in PRECISIONS:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(PRECISIONS)}")
    return value


class _Reader:
    """The calibration data reader ``quantize_static`` asks for: one input batch per call."""

    def __init__(self, name: str, batches: Iterable[np.ndarray]) -> None:
        self._it = iter({name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches)

    def get_next(self):
        return next(self._it, None)


def quantize_int8(model: bytes | str | Path, calibration: Sequence[np.ndarray]) -> bytes:
    """The int8 (QDQ) version of a float ONNX model, calibrated on ``calibration`` input batches.

    Args:
        model: ONNX bytes or file of a model with one float input.
        calibration: input batches (``N, C, H, W`` float32), e.g. training images normalised as
            the model expects; at least one.
    """
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("int8 quantization needs at least one calibration batch")
    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    name = proto.graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "float.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs every op at INFO/WARNING
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(out), _Reader(name, calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            logging.getLogger().setLevel(level)
        return out.read_bytes()


def onnx_model_fn(model: bytes | str | Path, *, threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ONNX model as a function of a tensor batch (for :func:`nas.evaluate.score_model`)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.detach().cpu().float().numpy()})[0])

    return run
