"""Exporting a static network: ONNX (checked against PyTorch), a self-contained PyTorch program,
plain weights, and the architecture JSON.

Artifacts written by :func:`export_network` into a directory (``runs/NAME/best/``):

- ``model.onnx`` — opset 17, dynamic batch; ONNX Runtime output is checked against PyTorch.
- ``model.pt`` — a ``torch.export`` program with the weights baked in, usable without this package::

      import torch
      model = torch.export.load(open("best/model.pt", "rb")).module()
      logits = model(images)          # float32 [N, 3, R, R], normalised like the training data

  The arch JSON travels inside it (``extra_files={"arch.json": ""}``).
- ``weights.pt`` — ``{"spec", "arch", "state_dict"}`` of plain tensors/dicts for fine-tuning with
  :func:`load_weights` (``torch.load(..., weights_only=True)``).
- ``arch.json`` — ``{"arch": ..., "network": ...}``: the search-space choices and the resolved network.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.netspec import NetworkSpec
from nas.nn import MobileNet, build_network
from nas.space import Arch

__all__ = [
    "ExportError",
    "ExportResult",
    "export_onnx",
    "onnx_max_abs_diff",
    "save_program",
    "load_model",
    "save_weights",
    "load_weights",
    "export_network",
]

ONNX_OPSET = 17


class ExportError(RuntimeError):
    """An exported model does not reproduce the PyTorch network."""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    onnx_path: Path
    program_path: Path
    weights_path: Path
    arch_path: Path
    onnx_max_abs_diff: float
    program_max_abs_diff: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": str(self.onnx_path),
            "pytorch_program": str(self.program_path),
            "weights": str(self.weights_path),
            "arch": str(self.arch_path),
            "onnx_max_abs_diff": self.onnx_max_abs_diff,
            "pytorch_program_max_abs_diff": self.program_max_abs_diff,
        }


def export_onnx(model: torch.nn.Module, path: Path, example: torch.Tensor) -> Path:
    """Write ``model`` as a single-file ONNX model with a dynamic batch dimension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate (see below)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: fast, and one self-contained file
        )
    return path


def onnx_max_abs_diff(model: torch.nn.Module, path: Path, inputs: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch outputs on ``inputs``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": inputs.numpy().astype(np.float32)})[0]
    with torch.no_grad():
        want = model.eval()(inputs).numpy()
    return float(np.max(np.abs(got - want)))


def save_program(model: torch.nn.Module, path: Path, example: torch.Tensor, arch_json: str) -> Path:
    """Save a ``torch.export`` program (weights included, dynamic batch) with the arch inside."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={"arch.json": arch_json})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def load_model(path: str | Path) -> torch.nn.Module:
    """Load ``model.pt`` written by :func:`save_program`: one call, no search code needed."""
    with open(path, "rb") as f:
        return torch.export.load(f).module()


def save_weights(model: MobileNet, path: Path, arch: Arch | None = None) -> Path:
    """Plain checkpoint for fine-tuning: the network spec, the arch and the state dict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "spec": model.spec.to_dict(),
            "arch": arch.to_dict() if arch is not None else None,
            "state_dict": model.state_dict(),
        },
        path,
    )
    return path


def load_weights(path: str | Path) -> MobileNet:
    """Rebuild the static network of ``weights.pt`` (``torch.load(..., weights_only=True)``)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or not {"spec", "state_dict"} <= set(data):
        raise ValueError(f"{path}: not a weights file written by nas.export (needs 'spec' and 'state_dict')")
    model = build_network(NetworkSpec.from_dict(data["spec"]))
    model.load_state_dict(data["state_dict"])
    return model.eval()


def export_network(
    model: MobileNet,
    directory: str | Path,
    *,
    arch: Arch | None = None,
    resolution: int | None = None,
    check_inputs: torch.Tensor | None = None,
    atol: float = 1e-4,
    extra: dict[str, Any] | None = None,
) -> ExportResult:
    """Write every artifact for ``model`` into ``directory`` and verify the exported copies.

    Args:
        model: the static network (its ``spec`` is recorded).
        directory: output folder (created).
        arch: the search-space choices the network was resolved from, if any.
        resolution: input side for export and checks (default: the spec's).
        check_inputs: images to compare outputs on (default: 4 random normal images).
        atol: largest allowed absolute difference between exported and PyTorch outputs.
        extra: more fields for ``arch.json`` (e.g. train/deploy resolutions).

    Raises:
        ExportError: an exported model differs from PyTorch by more than ``atol``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    spec: NetworkSpec = model.spec
    res = resolution or spec.resolution
    if check_inputs is None:
        check_inputs = torch.randn(4, spec.in_channels, res, res, generator=torch.Generator().manual_seed(0))
    example = check_inputs[:2]
    arch_doc = {"arch": arch.to_dict() if arch is not None else None, "arch_string": str(arch) if arch else None,
                "network": spec.to_dict(), "input_resolution": res, **(extra or {})}
    arch_json = json.dumps(arch_doc, indent=2)
    arch_path = directory / "arch.json"
    arch_path.write_text(arch_json)

    onnx_path = export_onnx(model, directory / "model.onnx", example)
    onnx_diff = onnx_max_abs_diff(model, onnx_path, check_inputs)
    if not onnx_diff <= atol:
        raise ExportError(f"{onnx_path}: ONNX Runtime differs from PyTorch by {onnx_diff:.3g} > {atol:g}")

    program_path = save_program(model, directory / "model.pt", example, arch_json)
    with torch.no_grad():
        program_diff = float((load_model(program_path)(check_inputs) - model(check_inputs)).abs().max())
    if not program_diff <= atol:
        raise ExportError(f"{program_path}: exported program differs from PyTorch by {program_diff:.3g}")

    weights_path = save_weights(model, directory / "weights.pt", arch)
    return ExportResult(directory, onnx_path, program_path, weights_path, arch_path, onnx_diff, program_diff)
