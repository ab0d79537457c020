"""Exporting a static network: ONNX (checked against PyTorch), a self-contained PyTorch program,
plain weights, and the architecture JSON.

Artifacts written by :func:`export_network` into a directory (``runs/NAME/best/``):

- ``model.onnx`` — opset :data:`ONNX_OPSET` (17), dynamic batch; ONNX Runtime output is checked
  against PyTorch. :func:`export_onnx` is the package's one ONNX exporter: the latency tables
  (``nas.latency``) export their per-layer models with it too.
- ``features.onnx`` — the multi-scale backbone (:func:`nas.nn.features_only`): one output per
  reduction 8, 16 and 32 (``features_s8``, ``features_s16``, ``features_s32``; each the output of the
  last block at that stride, timm's ``features_only`` convention), checked against PyTorch like
  ``model.onnx``; ``arch.json``'s ``feature_info`` lists each map's block, channels and reduction.
  A network that never reaches one of those strides exports the maps it has (none: no file).
- ``model.pt`` — a ``torch.export`` program with the weights baked in; the arch JSON travels inside
  it (``extra_files={"arch.json": ""}``). Load it with::

      from nas.export import load_model
      model = load_model("best/model.pt")   # reads only JSON and raw tensors: nothing is unpickled
      logits = model(images)          # float32 [N, 3, R, R], normalised like the training data

  :func:`load_model` rebuilds the network from the spec and the raw weights inside the archive and
  refuses pickled weights. ``torch.export.load`` returns the program itself without this package,
  but it unpickles members of the archive and runs code written in it (pickled weights and sample
  inputs, guard code, shape expressions): use it only on a file you wrote yourself.
- ``weights.pt`` — ``{"spec", "arch", "state_dict"}`` of plain tensors/dicts for fine-tuning with
  :func:`load_weights` (``torch.load(..., weights_only=True)``).
- ``arch.json`` — ``{"arch": ..., "network": ...}``: the search-space choices and the resolved network.

The directory is replaced as a whole and only once every file is written and checked: the files
go into a sibling ``NAME.tmp-PID`` first (see :func:`export_network`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import torch

from nas.netspec import NetworkSpec
from nas.nn import FEATURE_REDUCTIONS, MobileNet, build_network, feature_info, features_only
from nas.space import Arch

__all__ = [
    "ONNX_OPSET",
    "ExportError",
    "UnsafeModelError",
    "ExportResult",
    "export_onnx",
    "onnx_max_abs_diff",
    "save_program",
    "load_model",
    "save_weights",
    "load_weights",
    "export_network",
    "feature_reductions",
]

#: ONNX opset of every model this package exports, for deployment and for the latency tables
#: (>= 14 for HardSwish); recorded in table headers and measurement bundles.
ONNX_OPSET = 17
ARTIFACTS = ("arch.json", "model.onnx", "features.onnx", "model.pt", "weights.pt")  # what export_network writes

# Members of a torch.export archive (torch 2.13, ``torch/export/pt2_archive``) that load_model reads;
# torch.export.save names its one program "model".
_ARCH_MEMBER = "extra/arch.json"
_WEIGHTS_DIR = "data/weights/"
_WEIGHTS_CONFIG = _WEIGHTS_DIR + "model_weights_config.json"
_CONSTANTS_DIR = "data/constants/"
_CONSTANTS_CONFIG = _CONSTANTS_DIR + "model_constants_config.json"
_WEIGHT_FILE = re.compile(r"weight_\d+")
_RAW_CONSTANT_PREFIX = "tensor_"  # custom_obj_* and opaque_obj_* constants are pickles
_MEMBER_LIMIT = 1 << 30  # bytes; far above any MobileNet weight, refuses decompression bombs


class ExportError(RuntimeError):
    """An exported model does not reproduce the PyTorch network."""


class UnsafeModelError(ValueError):
    """A ``model.pt`` archive holds a pickled payload that ``torch.export.load`` would unpickle."""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    onnx_path: Path
    program_path: Path
    weights_path: Path
    arch_path: Path
    onnx_max_abs_diff: float
    program_max_abs_diff: float
    features_path: Path | None = None  # features.onnx, when the network has maps at strides 8/16/32
    feature_info: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "onnx": str(self.onnx_path),
            "features_onnx": str(self.features_path) if self.features_path else None,
            "feature_info": list(self.feature_info),
            "pytorch_program": str(self.program_path),
            "weights": str(self.weights_path),
            "arch": str(self.arch_path),
            "onnx_max_abs_diff": self.onnx_max_abs_diff,
            "pytorch_program_max_abs_diff": self.program_max_abs_diff,
        }


_Target = TypeVar("_Target", Path, BinaryIO)


def export_onnx(
    model: torch.nn.Module,
    path: _Target,
    example: torch.Tensor,
    *,
    input_name: str = "images",
    output_name: str | tuple[str, ...] = "logits",
    dynamic_batch: bool = True,
) -> _Target:
    """Write ``model`` (in eval mode) as a single-file ONNX model of opset :data:`ONNX_OPSET`.

    Uses the TorchScript exporter (``dynamo=False``): one self-contained file, and ~20x faster than
    the dynamo exporter, which matters for the thousands of tiny models of a latency table; it
    emits the same operators. Its DeprecationWarning is silenced, other warnings are not.

    Args:
        model: the module to export (put in eval mode; traced without gradients).
        path: a file to write (its folder is created) or a binary file object (e.g. ``io.BytesIO``).
        example: an input to trace with, ``[N, C, H, W]``.
        input_name: name of the graph's input.
        output_name: name of the graph's output, or a tuple of names for a model returning a tuple.
        dynamic_batch: make the batch dimension symbolic (``batch``); off, the graph keeps the
            example's batch size (the latency tables time batch-1 graphs with static shapes).

    Returns:
        ``path``.
    """
    target: str | BinaryIO
    if isinstance(path, (str, os.PathLike)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        target = str(path)
    else:
        target = path
    output_names = [output_name] if isinstance(output_name, str) else list(output_name)
    dynamic_axes = {name: {0: "batch"} for name in (input_name, *output_names)} if dynamic_batch else None
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate (see above)
        torch.onnx.export(
            model,
            (example,),
            target,
            input_names=[input_name],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def onnx_output_diff(model: torch.nn.Module, path: Path, inputs: torch.Tensor) -> tuple[float, float]:
    """``(largest |ONNX Runtime - PyTorch|, largest |PyTorch output|)`` on ``inputs`` over every
    output, for a model returning a tuple; a mismatch in their number or shapes is an infinite diff."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": inputs.numpy().astype(np.float32)})
    with torch.no_grad():
        out = model.eval()(inputs)
    want = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]
    if len(got) != len(want) or any(g.shape != w.shape for g, w in zip(got, want)):
        return float("inf"), 0.0
    return (max(float(np.max(np.abs(g - w))) for g, w in zip(got, want)),
            max(float(np.max(np.abs(w))) for w in want))


def onnx_max_abs_diff(model: torch.nn.Module, path: Path, inputs: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch outputs on ``inputs``."""
    return onnx_output_diff(model, path, inputs)[0]


def _check_diff(path: Path, diff: float, scale: float, atol: float, what: str = "") -> None:
    """float32 rounding grows with the outputs' size, and an untrained network's logits may all be
    below 1e-4: allow ``atol`` relative to the largest output (floored at 0.01); anything more, or a
    shape mismatch, is an export bug."""
    if not diff <= atol * max(scale, 0.01):
        raise ExportError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.3g} > {atol:g} x the largest "
                          f"output ({scale:.3g}){what}")


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


class _Archive:
    """Read-only view of a zip archive whose members all sit under one root folder."""

    def __init__(self, path: Path, zf: zipfile.ZipFile) -> None:
        self.path = path
        self._zf = zf
        names = zf.namelist()
        root = names[0].split("/", 1)[0] if names else ""
        if not root or any(not n.startswith(root + "/") for n in names):
            raise ValueError(f"{path}: not a torch.export archive (members must share one root folder)")
        self._root = root + "/"
        self.names = {n[len(self._root):] for n in names}

    def read(self, name: str) -> bytes:
        if name not in self.names:
            raise ValueError(f"{self.path}: member {name!r} is missing; not a model.pt written by nas.export")
        info = self._zf.getinfo(self._root + name)
        if info.file_size > _MEMBER_LIMIT:
            raise ValueError(f"{self.path}: member {name!r} is {info.file_size} bytes (at most {_MEMBER_LIMIT})")
        return self._zf.read(info)

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{self.path}: member {name!r} is not valid JSON: {exc}") from exc


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[_Archive]:
    try:
        with zipfile.ZipFile(path) as zf:
            yield _Archive(path, zf)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a torch.export archive (not a zip file: {exc})") from exc


def _payload_entries(archive: _Archive, member: str) -> dict[str, dict[str, Any]]:
    doc = archive.json(member)
    entries = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise ValueError(f"{archive.path}: {member} must be {{\"config\": {{name: entry object}}}}")
    return entries


def _refuse_pickled(
    archive: _Archive, member: str, entries: dict[str, dict[str, Any]], raw_prefix: str | None = None
) -> None:
    """Raise on the first entry ``torch.export.load`` would unpickle.

    torch 2.13 (``torch/export/pt2_archive/_package.py``) unpickles a weight or constant entry with
    ``use_pickle: true`` (``torch.load(..., weights_only=False)``), and every constant whose payload
    is a ``custom_obj_*`` (TorchScript pickle) or ``opaque_obj_*`` (``pickle.loads``) file.
    """
    folder = member.rsplit("/", 1)[0] + "/"
    for name, entry in entries.items():
        payload = f"{folder}{entry.get('path_name')}"
        if entry.get("use_pickle", False) is not False:
            raise UnsafeModelError(
                f"{archive.path}: refusing to load: {member} entry {name!r} has use_pickle: "
                f"{json.dumps(entry.get('use_pickle'))}, so torch.export.load would unpickle {payload} with "
                "weights_only=False, which runs any code it holds; only raw tensor payloads "
                "(use_pickle: false) are allowed"
            )
        if raw_prefix is not None and not str(entry.get("path_name", "")).startswith(raw_prefix):
            raise UnsafeModelError(
                f"{archive.path}: refusing to load: {member} entry {name!r} points at {payload}, not a raw "
                f"tensor (torch.export.load unpickles custom_obj_*/opaque_obj_* payloads); only "
                f"'{raw_prefix}*' payloads are allowed"
            )


def _ints(value: Any, what: str) -> list[int]:
    items = value if isinstance(value, list) else [value]
    out = [v.get("as_int") if isinstance(v, dict) else None for v in items]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in out):
        raise ValueError(f"{what} must be [{{\"as_int\": n >= 0}}, ...], got {value!r}")
    return out  # type: ignore[return-value]


def _raw_tensor(archive: _Archive, name: str, entry: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
    """The tensor of ``entry`` read from its raw payload with ``like``'s dtype and shape."""
    where = f"{archive.path}: {_WEIGHTS_CONFIG} entry {name!r}"
    meta = entry.get("tensor_meta")
    file = entry.get("path_name")
    if not isinstance(meta, dict) or not isinstance(file, str) or not _WEIGHT_FILE.fullmatch(file):
        raise ValueError(f"{where} needs a tensor_meta object and a path_name 'weight_N'")
    sizes = _ints(meta.get("sizes"), f"{where}: sizes")
    strides = _ints(meta.get("strides"), f"{where}: strides")
    (offset,) = _ints(meta.get("storage_offset"), f"{where}: storage_offset")
    if sizes != list(like.shape) or len(strides) != len(sizes):
        raise ValueError(f"{where} has shape {sizes} (strides {strides}); the network spec needs {list(like.shape)}")
    raw = archive.read(_WEIGHTS_DIR + file)
    if len(raw) % like.element_size():
        raise ValueError(f"{where}: {_WEIGHTS_DIR}{file} has {len(raw)} bytes, not a whole number of {like.dtype}")
    if not raw:
        return torch.zeros(sizes, dtype=like.dtype)  # as torch.export.load reads an empty record
    flat = torch.frombuffer(bytearray(raw), dtype=like.dtype)
    try:
        return torch.as_strided(flat, sizes, strides, offset).clone()
    except RuntimeError as exc:
        raise ValueError(f"{where}: sizes/strides/offset reach outside {_WEIGHTS_DIR}{file} "
                         f"({len(raw)} bytes)") from exc


def load_model(path: str | Path) -> MobileNet:
    """Rebuild the network stored in ``model.pt`` without running anything from the file.

    ``torch.export.load`` unpickles parts of an archive (weights flagged ``use_pickle``, the sample
    inputs) and runs code written in it (guard code, shape expressions), so a tampered ``model.pt``
    runs whatever it carries. This reads only ``extra/arch.json`` (the network spec, JSON) and the raw
    tensor payloads listed in ``data/weights/model_weights_config.json``, after refusing any weight
    or constant that is pickled, and returns the eval-mode network they describe: the same outputs as
    the exported program, which :func:`export_network` checks.

    Args:
        path: a ``model.pt`` written by :func:`export_network` or :func:`save_program`.

    Raises:
        UnsafeModelError: a weight or constant entry is pickled (``use_pickle: true``, or a custom or
            opaque object); the message names the file and the entry.
        ValueError: not an archive written by this module, or its weights do not fit its network spec.
    """
    path = Path(path)
    with _open_archive(path) as archive:
        entries = _payload_entries(archive, _WEIGHTS_CONFIG)
        _refuse_pickled(archive, _WEIGHTS_CONFIG, entries)
        if _CONSTANTS_CONFIG in archive.names:
            _refuse_pickled(archive, _CONSTANTS_CONFIG, _payload_entries(archive, _CONSTANTS_CONFIG),
                            _RAW_CONSTANT_PREFIX)
        order = archive.read("byteorder").decode(errors="replace") if "byteorder" in archive.names else sys.byteorder
        if order != sys.byteorder:
            raise ValueError(f"{path}: byteorder says the weights are {order!r}-endian; this machine is "
                             f"{sys.byteorder!r}-endian")
        doc = archive.json(_ARCH_MEMBER)
        try:
            spec = NetworkSpec.from_dict(doc["network"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {_ARCH_MEMBER} needs the network spec under 'network': {exc}") from exc
        model = build_network(spec)
        expected = model.state_dict()
        if set(entries) != set(expected):
            missing, unexpected = sorted(set(expected) - set(entries)), sorted(set(entries) - set(expected))
            raise ValueError(f"{path}: {_WEIGHTS_CONFIG} does not match the network spec in {_ARCH_MEMBER} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        state = {name: _raw_tensor(archive, name, entries[name], like) for name, like in expected.items()}
    model.load_state_dict(state)
    return model.eval()


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


# --- writing a directory atomically -------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, harmless check (os.kill(pid, 0) is CTRL_C_EVENT on Windows): keep
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, ValueError):
        return False  # not a pid this system can have
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _clean_leftovers(directory: Path) -> None:
    """Remove ``NAME.tmp-PID``/``NAME.old-PID`` siblings left by killed exports.

    A ``NAME.tmp-PID`` is never a result: it is deleted. A ``NAME.old-PID`` is the complete previous
    result, moved aside just before the new one was renamed in: it is put back if ``NAME`` is missing
    (the export was killed between the two renames), deleted otherwise. Siblings of a process that
    is still running are left alone.
    """
    pattern = re.compile(re.escape(directory.name) + r"\.(tmp|old)-(\d+)")
    if not directory.parent.is_dir():
        return
    leftovers = []
    for sibling in sorted(directory.parent.iterdir()):
        match = pattern.fullmatch(sibling.name)
        if match and (int(match[2]) == os.getpid() or not _pid_alive(int(match[2]))):
            leftovers.append((match[1], sibling))
    for kind, sibling in sorted(leftovers, key=lambda item: item[0] != "old"):  # restore before deleting
        if kind == "old" and not directory.exists() and not directory.is_symlink():
            os.replace(sibling, directory)
        else:
            _remove(sibling)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder's entries) to disk where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(staged: Path, directory: Path) -> None:
    """Rename the complete ``staged`` folder to ``directory``, replacing an old one.

    POSIX cannot rename a folder over a non-empty one, so the old folder is first renamed to
    ``NAME.old-PID``; ``directory`` is missing only between the two renames, and a killed export
    leaves the complete old result there for :func:`_clean_leftovers` to put back.
    """
    for file in staged.iterdir():
        _fsync(file)
    _fsync(staged)
    aside = None
    if directory.exists() or directory.is_symlink():
        aside = directory.with_name(f"{directory.name}.old-{os.getpid()}")
        os.replace(directory, aside)
    try:
        os.replace(staged, directory)
    except BaseException:
        if aside is not None:
            os.replace(aside, directory)
        raise
    _fsync(directory.parent)
    if aside is not None:
        _remove(aside)


def export_network(
    model: MobileNet,
    directory: str | Path,
    *,
    arch: Arch | None = None,
    resolution: int | None = None,
    check_inputs: torch.Tensor | None = None,
    atol: float = 1e-4,
    extra: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    replaces: tuple[str, ...] = (),
) -> ExportResult:
    """Write every artifact for ``model`` into ``directory`` and verify the exported copies.

    The files are written into a sibling ``NAME.tmp-PID`` and checked there; only then is that
    folder renamed to ``directory``, replacing an old one as a whole (see :func:`_publish`). A
    killed export therefore leaves the previous ``directory`` complete (or none at all), and the
    next export removes its ``NAME.tmp-PID``; an export that raises removes it itself.

    Args:
        model: the static network (its ``spec`` is recorded).
        directory: output folder (created, or replaced as a whole).
        arch: the search-space choices the network was resolved from, if any.
        resolution: input side for export and checks (default: the spec's).
        check_inputs: images to compare outputs on (default: 4 random normal images).
        atol: largest allowed difference between ONNX Runtime and PyTorch outputs relative to the
            largest output (floored at 0.01); the PyTorch rebuilds must match within ``atol``
            absolute.
        extra: more fields for ``arch.json`` (e.g. train/deploy resolutions).
        extra_files: more files to publish with the export, ``{name: content}`` (e.g.
            ``finetune.json``), written into the staged folder before it replaces ``directory``.
        replaces: names of further files an old ``directory`` may hold; they go with it (e.g. a
            fine-tuning checkpoint, no longer needed once its result is exported).

    Raises:
        ExportError: an exported model differs from PyTorch by more than ``atol``.
        ValueError: ``directory`` has no name of its own (``.``, ``..``, ``/``), or holds files an
            export does not write (it would lose them).
    """
    directory = Path(directory)
    if directory.name in ("", ".", ".."):
        raise ValueError(f"export directory {str(directory)!r} needs a name of its own (e.g. runs/NAME/best)")
    allowed = {*ARTIFACTS, *(extra_files or {}), *replaces}
    if directory.is_dir() and (others := sorted(p.name for p in directory.iterdir() if p.name not in allowed)):
        raise ValueError(f"{directory}: holds {others[:5]} besides the files of an export {list(ARTIFACTS)}; "
                         "export_network replaces the folder as a whole: choose a new or export-only folder")
    directory.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(directory)
    staged = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    staged.mkdir()
    try:
        onnx_diff, program_diff, info = _write_artifacts(model, staged, arch, resolution, check_inputs, atol, extra)
        for name, content in (extra_files or {}).items():
            if Path(name).name != name or name in ARTIFACTS:
                raise ValueError(f"extra export file {name!r}: a plain file name other than {list(ARTIFACTS)}")
            (staged / name).write_bytes(content)
        _publish(staged, directory)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return ExportResult(directory, directory / "model.onnx", directory / "model.pt", directory / "weights.pt",
                        directory / "arch.json", onnx_diff, program_diff,
                        directory / "features.onnx" if info else None, tuple(info))


def feature_reductions(spec: NetworkSpec) -> tuple[int, ...]:
    """The reductions of :data:`nas.nn.FEATURE_REDUCTIONS` (8, 16, 32) that ``spec`` reaches: all
    three for the ImageNet-layout spaces and presets; fewer for networks with fewer stride-2 layers."""
    reached = []
    for r in FEATURE_REDUCTIONS:
        try:
            feature_info(spec, (r,))
        except ValueError:
            continue
        reached.append(r)
    return tuple(reached)


def _write_artifacts(
    model: MobileNet,
    directory: Path,
    arch: Arch | None,
    resolution: int | None,
    check_inputs: torch.Tensor | None,
    atol: float,
    extra: dict[str, Any] | None,
) -> tuple[float, float, list[dict[str, Any]]]:
    """Write and check the files of :func:`export_network`; the ONNX and program differences and the
    feature maps' ``feature_info``."""
    model = model.eval()
    spec: NetworkSpec = model.spec
    res = resolution or spec.resolution
    if check_inputs is None:
        check_inputs = torch.randn(4, spec.in_channels, res, res, generator=torch.Generator().manual_seed(0))
    example = check_inputs[:2]
    reductions = feature_reductions(spec)
    info = feature_info(spec, reductions) if reductions else []
    arch_doc = {"arch": arch.to_dict() if arch is not None else None, "arch_string": str(arch) if arch else None,
                "network": spec.to_dict(), "input_resolution": res, "feature_info": info, **(extra or {})}
    arch_json = json.dumps(arch_doc, indent=2)
    (directory / "arch.json").write_text(arch_json)

    onnx_path = export_onnx(model, directory / "model.onnx", example)
    onnx_diff, scale = onnx_output_diff(model, onnx_path, check_inputs)
    _check_diff(onnx_path, onnx_diff, scale, atol)

    if info:
        backbone = features_only(model, reductions).eval()
        features_path = export_onnx(backbone, directory / "features.onnx", example,
                                    output_name=tuple(f"features_s{f['reduction']}" for f in info))
        features_diff, scale = onnx_output_diff(backbone, features_path, check_inputs)
        _check_diff(features_path, features_diff, scale, atol, " (or returns other maps than feature_info)")

    program_path = save_program(model, directory / "model.pt", example, arch_json)
    with torch.no_grad():
        want = model(check_inputs)
        # our own file, just written: torch.export.load is safe on it (and checks the program itself)
        with open(program_path, "rb") as f:
            program_diff = float((torch.export.load(f).module()(check_inputs) - want).abs().max())
        rebuilt_diff = float((load_model(program_path)(check_inputs) - want).abs().max())
    if not program_diff <= atol:
        raise ExportError(f"{program_path}: exported program differs from PyTorch by {program_diff:.3g}")
    if not rebuilt_diff <= atol:
        raise ExportError(f"{program_path}: the network load_model rebuilds differs from PyTorch "
                          f"by {rebuilt_diff:.3g}")

    weights_path = save_weights(model, directory / "weights.pt", arch)
    with torch.no_grad():
        weights_diff = float((load_weights(weights_path)(check_inputs) - want).abs().max())
    if not weights_diff <= atol:
        raise ExportError(f"{weights_path}: the network load_weights rebuilds differs from PyTorch "
                          f"by {weights_diff:.3g}")
    return onnx_diff, program_diff, info


if __name__ == "__main__":  # ``python -m nas.export``: a library, not a command; say where exporting happens
    print("nas.export is a library (export_network, load_weights, features_only), not a command. To export a "
          "search's best network, run the same `python -m nas.search ...` command again without --no-export: it "
          "reuses the finished study, supernet and fine-tunings and only exports. To export a fine-tuned or transferred "
          "network: `python -m nas.finetune` writes the same files.", file=sys.stderr)
    sys.exit(2)
