from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

import nas.export as nas_export
from nas.export import ExportResult, UnsafeModelError, export_network, load_model, load_weights
from nas.nn import MobileNet, build_network
from nas.space import Arch, load_space
from tests.conftest import TINY_SPACE


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


def test_onnx_export_has_the_package_opset_and_a_dynamic_batch(tmp_path):
    from nas.export import ONNX_OPSET, export_onnx

    model = build_network(load_space("mobilenetv3_small32").resolve(load_space("mobilenetv3_small32").smallest(), 3))
    path = export_onnx(model, tmp_path / "sub" / "m.onnx", torch.randn(2, 3, 32, 32))
    proto = onnx.load(str(path))
    assert path == tmp_path / "sub" / "m.onnx"
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [ONNX_OPSET]
    (graph_input,) = proto.graph.input
    assert graph_input.name == "images" and proto.graph.output[0].name == "logits"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    buffer = io.BytesIO()  # a file object works too, with static shapes when asked
    assert export_onnx(model, buffer, torch.randn(1, 3, 32, 32), input_name="x", output_name="y",
                       dynamic_batch=False) is buffer
    (graph_input,) = onnx.load_from_string(buffer.getvalue()).graph.input
    assert graph_input.name == "x" and graph_input.type.tensor_type.shape.dim[0].dim_value == 1


# --- loading model.pt runs nothing from the file ---------------------------------------------------

WEIGHTS_CONFIG = "data/weights/model_weights_config.json"


@dataclass(frozen=True)
class Exported:
    model: MobileNet
    arch: Arch
    result: ExportResult


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    root = tmp_path_factory.mktemp("exported")
    (root / "tiny.yaml").write_text(TINY_SPACE)
    space = load_space(root / "tiny.yaml")
    arch = space.sample(3)
    model = build_network(space.resolve(arch, num_classes=5)).eval()
    return Exported(model, arch, export_network(model, root / "best", arch=arch))


class _Payload:
    """Unpickling this creates ``marker`` (a harmless stand-in for running a command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _torch_pickle(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    return buffer.getvalue()


def _edit_json(edit: Callable[[Any], None]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        doc = json.loads(data)
        edit(doc)
        return json.dumps(doc).encode()

    return apply


def _tampered(src: Path, dst: Path, edits: dict[str, Callable[[bytes], bytes]]) -> Path:
    """Copy of archive ``src`` with ``edits[member](old bytes)`` written for each member (new ones added)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        root = zin.namelist()[0].split("/")[0]
        todo = dict(edits)
        for info in zin.infolist():
            member = info.filename[len(root) + 1:]
            data = zin.read(info)
            zout.writestr(info.filename, todo.pop(member)(data) if member in todo else data)
        for member, make in todo.items():
            zout.writestr(f"{root}/{member}", make(b""))
    return dst


def _member(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(f"{zf.namelist()[0].split('/')[0]}/{member}")


def _first_weight(path: Path) -> tuple[str, str]:
    name, entry = next(iter(json.loads(_member(path, WEIGHTS_CONFIG))["config"].items()))
    return name, entry["path_name"]


def _pickled_weight(program: Path, marker: Path) -> tuple[dict[str, Callable[[bytes], bytes]], str]:
    name, file = _first_weight(program)
    flag = _edit_json(lambda doc: doc["config"][name].update(use_pickle=True))
    return {WEIGHTS_CONFIG: flag, f"data/weights/{file}": lambda _: _torch_pickle(marker)}, name


def _opaque_constant(program: Path, marker: Path) -> tuple[dict[str, Callable[[bytes], bytes]], str]:
    # torch.export.load calls pickle.loads on an opaque_obj_* constant even when use_pickle is false
    payload = pickle.dumps(_Payload(marker))
    meta = {"dtype": 1, "sizes": [{"as_int": len(payload)}], "strides": [{"as_int": 1}],  # uint8 [len]
            "storage_offset": {"as_int": 0}, "requires_grad": False, "device": {"type": "cpu", "index": None},
            "layout": 7}
    entry = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False, "tensor_meta": meta}
    add = _edit_json(lambda doc: doc["config"].update(planted=entry))
    return {"data/constants/model_constants_config.json": add, "data/constants/opaque_obj_0": lambda _: payload}, \
        "planted"


@pytest.mark.parametrize("plant", [_pickled_weight, _opaque_constant], ids=["use_pickle-weight", "opaque-constant"])
def test_load_model_refuses_pickled_payloads(exported, tmp_path, plant):
    marker = tmp_path / "payload-ran"
    edits, entry = plant(exported.result.program_path, marker)
    evil = _tampered(exported.result.program_path, tmp_path / "model.pt", edits)
    with pytest.raises(Exception) as info:
        load_model(evil)
    assert not marker.exists(), "the planted payload ran"
    assert info.type is UnsafeModelError, info.value
    assert str(evil) in str(info.value) and repr(entry) in str(info.value)
    x = torch.randn(2, 3, exported.arch.resolution, exported.arch.resolution)
    with torch.no_grad():  # the untouched file still loads
        assert torch.allclose(load_model(exported.result.program_path)(x), exported.model(x), atol=1e-5)


def _shape_symbol(doc: Any) -> dict[str, str]:
    values = doc["graph_module"]["graph"]["tensor_values"].values()
    return next(size["as_expr"] for value in values for size in value["sizes"] if "as_expr" in size)


def _code_in_json(where: str, marker: Path) -> dict[str, Callable[[bytes], bytes]]:
    code = f"__import__('builtins').open({str(marker)!r}, 'w') is not None"
    if where == "guards_code":  # exec'd by .module(), run on every call
        return {"models/model.json": _edit_json(lambda doc: doc["guards_code"].append(code))}
    # sympy.sympify evaluates the shape expression while deserialising
    sym = lambda doc: _shape_symbol(doc).update(expr_str=f"({code}) and {_shape_symbol(doc)['expr_str']}")
    return {"models/model.json": _edit_json(sym)}


@pytest.mark.parametrize("where", ["sample_inputs", "guards_code", "shape_expression"])
def test_load_model_runs_nothing_from_the_file(exported, tmp_path, where):
    marker = tmp_path / "payload-ran"
    if where == "sample_inputs":  # torch.export.load retries a failed weights_only load with weights_only=False
        edits = {"data/sample_inputs/model.pt": lambda _: _torch_pickle(marker)}
    else:
        edits = _code_in_json(where, marker)
    evil = _tampered(exported.result.program_path, tmp_path / "model.pt", edits)
    x = torch.randn(2, 3, exported.arch.resolution, exported.arch.resolution)
    with torch.no_grad():
        try:
            got = load_model(evil)(x)
        finally:
            assert not marker.exists(), "the planted payload ran"
        assert torch.allclose(got, exported.model(x), atol=1e-5)


# --- a killed export never leaves a half-written best/ ---------------------------------------------

_KILLED_EXPORT = """
import os, signal, sys
import nas.export as export
from nas.nn import build_network
from nas.space import load_space

space = load_space(sys.argv[1])
arch = space.sample(4)
export.save_program = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)  # after arch.json, model.onnx
export.export_network(build_network(space.resolve(arch, num_classes=7)), sys.argv[2], arch=arch)
"""


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _fail(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("disk full")


def test_killed_export_keeps_the_previous_best(exported, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(exported.result.directory, run / "best")
    before = _digests(run / "best")
    (tmp_path / "tiny.yaml").write_text(TINY_SPACE)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_EXPORT, str(tmp_path / "tiny.yaml"), str(run / "best")],
                             cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, stderr = child.communicate(timeout=600)
    assert child.returncode == -signal.SIGKILL, stderr
    assert _digests(run / "best") == before
    assert sorted(p.name for p in run.iterdir()) == ["best", f"best.tmp-{child.pid}"]

    # the next export removes the leftover, and one that fails keeps best/ as it was
    monkeypatch.setattr(nas_export, "save_program", _fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_network(exported.model, run / "best", arch=exported.arch)
    assert sorted(p.name for p in run.iterdir()) == ["best"]
    assert _digests(run / "best") == before


def test_failed_export_leaves_no_partial_best(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(nas_export, "save_program", _fail)  # after arch.json and model.onnx
    with pytest.raises(RuntimeError, match="disk full"):
        export_network(exported.model, tmp_path / "run" / "best", arch=exported.arch)
    assert list((tmp_path / "run").iterdir()) == []


def test_export_puts_back_a_best_moved_aside_by_a_killed_export(exported, tmp_path, monkeypatch):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    run = tmp_path / "run"
    # killed between renaming the old best/ aside and the complete new one in
    shutil.copytree(exported.result.directory, run / f"best.old-{dead.pid}")
    (run / f"best.tmp-{dead.pid}").mkdir()
    (run / f"best.tmp-{dead.pid}" / "arch.json").write_text("{}")
    monkeypatch.setattr(nas_export, "export_onnx", _fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_network(exported.model, run / "best", arch=exported.arch)
    assert sorted(p.name for p in run.iterdir()) == ["best"]
    assert _digests(run / "best") == _digests(exported.result.directory)


def test_export_refuses_to_replace_a_folder_with_other_files(exported, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "study.db").write_text("keep me")
    with pytest.raises(ValueError, match=r"study\.db"):
        export_network(exported.model, tmp_path / "run", arch=exported.arch)
    assert (tmp_path / "run" / "study.db").read_text() == "keep me"


def test_onnx_check_scales_with_the_outputs_and_still_catches_a_wrong_export(exported, tmp_path, monkeypatch):
    # a fresh, untrained network's feature maps reach the hundreds: float32 rounding alone then
    # exceeds an absolute 1e-4, which must not fail the export ...
    nas_export._check_diff(tmp_path / "m.onnx", 4e-3, 100.0, 1e-4)
    with pytest.raises(nas_export.ExportError, match="m.onnx"):
        nas_export._check_diff(tmp_path / "m.onnx", 2e-2, 100.0, 1e-4)
    # ... and its logits may all be ~1e-5, where an absolute 1e-4 would let anything through
    with pytest.raises(nas_export.ExportError):
        nas_export._check_diff(tmp_path / "m.onnx", 9e-6, 1e-5, 1e-4)
    with pytest.raises(nas_export.ExportError):
        nas_export._check_diff(tmp_path / "m.onnx", float("inf"), 0.0, 1e-4)
    # ... while an ONNX file that computes something else is still refused
    real = nas_export.export_onnx
    torch.manual_seed(1)
    other = build_network(exported.model.spec).eval()  # same shapes, other weights

    def swapped(model, path, example, **kw):
        return real(other if kw.get("output_name", "logits") == "logits" else model, path, example, **kw)

    monkeypatch.setattr(nas_export, "export_onnx", swapped)
    with pytest.raises(nas_export.ExportError, match="model.onnx: ONNX Runtime differs"):
        export_network(exported.model, tmp_path / "best", arch=exported.arch)
