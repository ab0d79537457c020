"""``probe``: a few dozen whole networks of a space, to measure on a new device (``calibrate`` fits them).

A per-key bundle (``python -m nas.latency bundle``) times every table key on the device: about 8000
tiny models, 0.7 GB for the large space. A probe times N whole subnets instead (N = 40 by default)
and :mod:`nas.latency._fewshot` maps an existing table onto the device from them. The networks are
chosen to spread over what a table has to get right: total work, its split between dense,
depthwise and squeeze-excitation operations, memory traffic, h-swish, depth, resolution and width;
the space's smallest and largest members are always in.

The probe is a tar archive of a bundle folder (``manifest.json``, ``models/``, ``run_bundle.py``,
``README.md``) that the bundle runner times as it times a per-key bundle. Its ONNX files carry no
weights: their float tensors point to an external data file that the runner writes from a seed
just before loading each model (latency does not depend on the values), so 40 networks of the large
space take a few MB instead of ~1 GB.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import shutil
import sys
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from nas.export import ONNX_OPSET
from nas.latency._bundle import write_adb_script
from nas.latency._modules import canary_layer, layer_module, model_bytes, onnx_bytes, overhead_module
from nas.latency._runner import MANIFEST_FORMAT, MeasureSettings
from nas.shapes import walk
from nas.space import Arch, SearchSpace

__all__ = ["PROBE_FORMAT", "DEFAULT_PROBE_NETWORKS", "probe_id", "probe_networks", "strip_weights", "write_probe"]

PROBE_FORMAT = "nas-latency-probe/1"

#: Networks in a probe unless told otherwise.
DEFAULT_PROBE_NETWORKS = 40

#: Float tensors at least this large (bytes) leave the ONNX file; smaller ones (and every integer
#: tensor, e.g. a Reshape's shape) stay in it.
EXTERNAL_MIN_BYTES = 1024

#: Random members of the space the networks are picked from.
POOL_SIZE = 600

_README = """# Latency probe: {n} networks of space `{space}`

Made by `python -m nas.latency probe`. Each network is a whole subnet of the space, exported to
ONNX without its weights (the runner writes random weights of the right scale next to each model
just before timing it, then deletes them).

## On the device

Linux board, Raspberry Pi, Chromebook, x86 or ARM server - anything with Python 3.8+:

    tar xf {tar_name}
    cd {folder}
    pip install numpy onnxruntime
    python3 run_bundle.py                # writes results.json (resumable); {threads} intra-op thread(s)

Another protocol (`--threads 4`, recorded in results.json) or a second pass of the same one
(calibrate combines passes) needs a folder of its own, extracted from the archive again - not a
copy of this folder once it holds results.json: there the runner finds every network measured and
times nothing. From the folder holding the archive:

    mkdir pass2 && tar xf {tar_name} -C pass2 && cd pass2/{folder} && python3 run_bundle.py

and give calibrate both passes of one protocol: `--measurements {folder}/ pass2/{folder}/`.

Android with Python: in Termux (`pkg install python python-numpy`) with an onnxruntime build for
Android's Python, the same commands (ONNX Runtime publishes no such wheel: build its Python
package for Termux).

Android without Python: ONNX Runtime's own benchmark tool, `onnxruntime_perf_test`, built for
arm64-v8a (`./build.sh --android --android_abi arm64-v8a --build_dir build_android ...` in the
ONNX Runtime source; the binary is in `build_android/Release/`), over adb from this folder:

    ./run_perf_test_adb.sh /path/to/onnxruntime_perf_test [adb serial]

It first writes the networks' weights here (`python3 run_bundle.py --write-weights`: Python with
numpy and onnxruntime on this computer, not on the phone), pushes the models, runs each with `-e cpu -x {threads}
-y 1 -r {runs}`, and keeps every log in `perf_test/` (resumable; edit TASKSET to pin a big core).
Then give calibrate the folder: `--measurements {folder}/` reads the logs.

Keep the device quiet (no other load, screen on, charger in) while it runs: about {minutes} min on a
phone-class CPU, less on a desktop.

## Back here

    python -m nas.latency calibrate --base-table TABLE --measurements {folder}/results.json --name NEW_DEVICE
    python -m nas.latency validate --device NEW_DEVICE --samples 20 --space {space}   # when NEW_DEVICE is this machine
    python -m nas.search --device NEW_DEVICE --space {space} --budget 20ms   # your budget

Protocol: warm-up {warmup}, {rounds} interleaved rounds x {repeats} repeats, median, networks timed
{chunk} at a time next to a canary block (a disturbed chunk is re-measured).
"""


def _descriptor(layers) -> np.ndarray:
    """What a table has to get right about a network, as numbers: log of its work, the shares of
    dense / depthwise / SE work, memory traffic per operation, h-swish share, depth."""
    from nas.latency._calibrate import layer_features  # the features the few-shot model fits

    f = sum(layer_features(layer, 0.0) for layer in layers)
    _, dense, dw, se, written, hswish, count = f
    work = dense + dw + se + 1e-9
    return np.array([np.log(work), dense / work, dw / work, se / work, np.log(written / work + 1e-9),
                     hswish / (written + 1e-9), np.log(count)])


def probe_networks(
    space: SearchSpace, networks: int, *, num_classes: int, seed: int = 0, pool: int = POOL_SIZE
) -> list[tuple[str, Arch]]:
    """``networks`` members of ``space``: its smallest and largest, then the random members farthest
    (max-min distance over standardised descriptors, resolution and width) from those already picked.

    Returns ``(role, arch)`` pairs, roles ``smallest``, ``largest``, ``spread``.
    """
    if isinstance(networks, bool) or not isinstance(networks, int) or networks < 2:
        raise ValueError(f"networks must be an integer >= 2, got {networks!r}")
    rng = np.random.default_rng(seed)
    picks: dict[str, tuple[str, Arch]] = {}
    for role, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        picks.setdefault(arch.to_string(), (role, arch))
    candidates: dict[str, Arch] = {}
    for _ in range(max(pool, 4 * networks)):
        arch = space.sample(rng)
        key = arch.to_string()
        if key not in picks:
            candidates.setdefault(key, arch)
    archs = [a for _, a in picks.values()] + list(candidates.values())
    res = np.array(space.config.resolutions, dtype=float)
    wid = np.array(space.config.width_multipliers, dtype=float)
    rows = []
    for a in archs:
        spec = space.resolve(a, num_classes=num_classes)
        rows.append(np.concatenate([_descriptor(walk(spec)), [a.resolution / res.max(), a.width / wid.max()]]))
    x = np.stack(rows)
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-9)
    chosen = list(range(len(picks)))
    dist = np.min(np.linalg.norm(x[:, None, :] - x[None, chosen, :], axis=2), axis=1)
    while len(chosen) < min(networks, len(archs)):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(x - x[j], axis=1))
    fixed = list(picks.values())
    return [fixed[i] if i < len(fixed) else ("spread", archs[i]) for i in chosen][:networks]


def strip_weights(model: bytes, weights_file: str, *, seed: int) -> tuple[bytes, dict[str, Any]]:
    """Move an ONNX model's float tensors into an external data file that is not written.

    Float tensors, and the int8 weights and int32 biases of a quantized model, leave the file.
    Returns the model bytes and the manifest's ``weights`` entry (see
    :func:`nas.latency._runner.materialise_weights`): the file name, its size, the seed, and each
    tensor's ``[bytes, std, dtype]``, so the runner can write noise of the same scale.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    offset = 0
    tensors = []
    kinds = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT8: "int8", onnx.TensorProto.INT32: "int32"}
    for init in proto.graph.initializer:
        if init.data_type not in kinds:  # zero points (uint8), shapes (int64) stay in the file
            continue
        values = numpy_helper.to_array(init)
        if values.nbytes < EXTERNAL_MIN_BYTES:
            continue
        std = float(values.astype(np.float64).std()) or 1e-3
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        del init.external_data[:]
        for k, v in (("location", weights_file), ("offset", str(offset)), ("length", str(values.nbytes))):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
        tensors.append([int(values.nbytes), round(std, 6), kinds[init.data_type]])
        offset += values.nbytes
    return proto.SerializeToString(), {"bytes": offset, "seed": seed, "tensors": tensors}


def probe_id(space_name: str, space_digest: str, num_classes: int, archs: list[str]) -> str:
    """A short hash of what a probe measures: its space, classifier width and networks in order."""
    text = json.dumps([space_name, space_digest, num_classes, list(archs)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_probe(
    out: str | Path,
    *,
    space: SearchSpace,
    networks: int = DEFAULT_PROBE_NETWORKS,
    num_classes: int = 1000,
    seed: int = 0,
    settings: MeasureSettings | None = None,
    chunk_size: int = 10,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the probe archive ``out`` (a ``.tar``, or ``.tar.gz``/``.tgz``) and return its manifest."""
    from tqdm import tqdm

    settings = settings or MeasureSettings()
    out = Path(out)
    name = out.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            folder = name[: -len(suffix)] or "probe"
            break
    else:
        raise ValueError(f"--out must name a .tar, .tar.gz or .tgz file, got {out}")
    picks = probe_networks(space, networks, num_classes=num_classes, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / folder
        (root / "models").mkdir(parents=True)
        models, listed = [], []
        from nas.nn import build_network

        bar = tqdm(picks, desc="probe export", unit="net", disable=not progress, file=sys.stderr)
        for i, (role, arch) in enumerate(bar):
            key = f"net-{i:03d}"
            spec = space.resolve(arch, num_classes=num_classes)
            shape = (spec.in_channels, spec.resolution, spec.resolution)
            model, weights = strip_weights(model_bytes(build_network(spec), shape, settings.precision, seed=i),
                                           f"{key}.weights", seed=i)
            (root / "models" / f"{key}.onnx").write_bytes(model)
            models.append({"key": key, "file": f"models/{key}.onnx", "input_shape": list(shape),
                           "weights": weights | {"file": f"models/{key}.weights"}})
            listed.append({"key": key, "role": role, "arch": arch.to_string()})
        om, oshape = overhead_module()
        (root / "models" / "overhead.onnx").write_bytes(onnx_bytes(om, oshape))
        canary = canary_layer()
        (root / "models" / "canary.onnx").write_bytes(onnx_bytes(layer_module(canary), canary.in_shape))
        manifest = {
            "format": MANIFEST_FORMAT,
            "device": "probe",
            "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "opset": ONNX_OPSET,
            "settings": asdict(settings),
            "spaces": [{"name": space.name, "digest": space.digest}],
            "num_classes": [num_classes],
            "references": [],
            "overhead": {"file": "models/overhead.onnx", "input_shape": list(oshape)},
            "canary": {"file": "models/canary.onnx", "input_shape": list(canary.in_shape)},
            "chunk_size": chunk_size,
            "models": models,
            "probe": {
                "format": PROBE_FORMAT,
                "id": probe_id(space.name, space.digest, num_classes, [n["arch"] for n in listed]),
                "space": {"name": space.name, "digest": space.digest},
                "num_classes": num_classes,
                "seed": seed,
                "networks": listed,
            },
        }
        (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        shutil.copyfile(Path(__file__).with_name("_runner.py"), root / "run_bundle.py")
        write_adb_script(root, settings, weights=True)
        runs = settings.rounds * (settings.warmup + settings.repeats)
        (root / "README.md").write_text(_README.format(
            n=len(models), space=space.name, tar_name=out.name, folder=folder, threads=settings.intra_op_threads,
            minutes=max(1, round(len(models) * runs * 0.08 / 60)), warmup=settings.warmup, rounds=settings.rounds,
            repeats=settings.repeats, chunk=chunk_size, runs=settings.rounds * settings.repeats))  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
        tmp_out = out.with_name(out.name + ".part")
        with tarfile.open(tmp_out, mode) as tar:
            tar.add(root, arcname=folder)
        tmp_out.replace(out)
    return manifest


def read_probe_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a probe archive (or of an unpacked probe folder)."""
    path = Path(path)
    if path.is_dir():
        return json.loads((path / "manifest.json").read_text())
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/manifest.json"):
                f = tar.extractfile(member)
                assert f is not None
                return json.load(io.TextIOWrapper(f, encoding="utf-8"))
    raise ValueError(f"{path}: no manifest.json in the archive: not a probe made by python -m nas.latency probe")
