"""Measuring on a device you own: ``bundle`` (models + runner) and ``import`` (results -> table).

A bundle folder holds::

    manifest.json        keys, model files, input shapes, protocol, spaces covered
    models/*.onnx        one tiny model per key, plus canary.onnx and overhead.onnx
    run_bundle.py        the standalone runner (Python + numpy + onnxruntime)
    run_perf_test_adb.sh the same models timed with onnxruntime_perf_test over adb (Android)
    README.md            what to do on the device

The runner writes ``results.json``; the adb script writes ``perf_test/*.txt``. ``import`` reads
either and writes a measured table whose header records the device's runtime and protocol.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nas.latency._build import required_layers
from nas.latency._coverage import DEFAULT_NUM_CLASSES
from nas.latency._modules import OPSET, canary_layer, export_onnx, layer_module, overhead_module
from nas.latency._runner import MANIFEST_FORMAT, RESULTS_FORMAT, MeasureSettings
from nas.latency._table import Entry, LatencyTable, LatencyTableError, SpaceRef, TableHeader, check_device_name
from nas.space import SearchSpace

__all__ = ["write_bundle", "import_bundle", "parse_perf_test"]

_RUNNER = Path(__file__).with_name("_runner.py")

_README = """# Latency bundle for device `{device}`

{n} ONNX models (one per latency-table key), made by `python -m nas.latency bundle`.

## Option A - Python on the device (Linux board, Raspberry Pi, Termux on Android, ...)

    pip install numpy onnxruntime
    python3 run_bundle.py                  # writes results.json; resumable, re-run after an interruption

## Option B - Android without Python: onnxruntime_perf_test over adb

Build or download `onnxruntime_perf_test` for arm64-v8a (from an ONNX Runtime Android build:
`./build.sh --android --android_abi arm64-v8a --build_dir build_android ...`; the binary is in
`build_android/Release/`), then on the host:

    ./run_perf_test_adb.sh /path/to/onnxruntime_perf_test [adb serial]

It pushes the models, runs each with `-e cpu -x {threads} -y 1 -r {runs}`, and pulls the logs into
`perf_test/`. Pin the process to a big core with `taskset` on the device if you can (edit TASKSET).

## Back on the host

    python -m nas.latency import {out} --device {device}

Protocol: warm-up {warmup}, {rounds} interleaved rounds x {repeats} repeats, median; {threads} intra-op thread(s).
"""

_ADB_SCRIPT = """#!/bin/sh
# Time every model of this bundle on an Android device with onnxruntime_perf_test.
# usage: ./run_perf_test_adb.sh /path/to/onnxruntime_perf_test [adb-serial]
set -eu
PERF_TEST="$1"
ADB="adb${{2:+ -s $2}}"
DIR=/data/local/tmp/nas_latency
TASKSET=""            # e.g. "taskset f0" to run on the big cores
cd "$(dirname "$0")"
mkdir -p perf_test
$ADB shell mkdir -p $DIR/models
$ADB push "$PERF_TEST" $DIR/onnxruntime_perf_test >/dev/null
$ADB shell chmod +x $DIR/onnxruntime_perf_test
$ADB push models/. $DIR/models/ >/dev/null
for f in models/*.onnx; do
  name=$(basename "$f" .onnx)
  [ -s "perf_test/$name.txt" ] && continue      # resumable
  $ADB shell "cd $DIR && $TASKSET ./onnxruntime_perf_test -e cpu -m times -r {runs} -x {threads} -y 1 -o 99 models/$name.onnx" > "perf_test/$name.txt.part"
  mv "perf_test/$name.txt.part" "perf_test/$name.txt"
  echo "$name"
done
"""


def write_bundle(
    out: str | Path,
    *,
    device: str,
    spaces: Sequence[SearchSpace],
    num_classes: Sequence[int] = DEFAULT_NUM_CLASSES,
    references: bool = True,
    settings: MeasureSettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Export every key of ``spaces`` (+ references) to ``out`` with the runner; return the manifest."""
    check_device_name(device)
    settings = settings or MeasureSettings()
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    layers = required_layers(spaces, num_classes, references)
    models = []
    from tqdm import tqdm

    for i, key in enumerate(tqdm(sorted(layers), desc="export", unit="key", disable=not progress, file=sys.stderr)):
        layer = layers[key]
        rel = f"models/{i:05d}.onnx"
        path = out / rel
        if not path.exists():  # resumable export
            path.write_bytes(export_onnx(layer_module(layer), layer.in_shape))
        models.append({"key": key, "file": rel, "input_shape": list(layer.in_shape)})
    om, oshape = overhead_module()
    (out / "models" / "overhead.onnx").write_bytes(export_onnx(om, oshape))
    canary = canary_layer()
    (out / "models" / "canary.onnx").write_bytes(export_onnx(layer_module(canary), canary.in_shape))
    manifest = {
        "format": MANIFEST_FORMAT,
        "device": device,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "opset": OPSET,
        "settings": asdict(settings),
        "spaces": [{"name": s.name, "digest": s.digest} for s in spaces],
        "num_classes": list(num_classes) if spaces else [],
        "references": ["presets", "proxyless_lut"] if references else [],
        "overhead": {"file": "models/overhead.onnx", "input_shape": list(oshape)},
        "canary": {"file": "models/canary.onnx", "input_shape": list(canary.in_shape)},
        "models": models,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.copyfile(_RUNNER, out / "run_bundle.py")
    runs = settings.rounds * settings.repeats
    fmt = dict(
        device=device, n=len(models), out=out, threads=settings.intra_op_threads, runs=runs,
        warmup=settings.warmup, rounds=settings.rounds, repeats=settings.repeats,
    )  # fmt: skip
    (out / "README.md").write_text(_README.format(**fmt))
    script = out / "run_perf_test_adb.sh"
    script.write_text(_ADB_SCRIPT.format(**fmt))
    script.chmod(0o755)
    return manifest


_PERF_P50 = re.compile(r"P50 Latency:\s*([0-9.eE+-]+)\s*s")
_PERF_AVG = re.compile(r"Average inference time cost:\s*([0-9.eE+-]+)\s*ms")


def parse_perf_test(text: str) -> tuple[float, str]:
    """``(ms, statistic)`` from an ``onnxruntime_perf_test`` log: P50 if printed, else the mean."""
    m = _PERF_P50.search(text)
    if m:
        return float(m[1]) * 1000.0, "median"
    m = _PERF_AVG.search(text)
    if m:
        return float(m[1]), "mean"
    raise ValueError("no 'P50 Latency: ... s' or 'Average inference time cost: ... ms' line")


def _perf_test_results(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    logs = bundle / "perf_test"
    results, statistics = {}, set()
    problems = []

    def read(rel: str) -> float:
        log = logs / (Path(rel).stem + ".txt")
        ms, stat = parse_perf_test(log.read_text())
        statistics.add(stat)
        return ms

    for m in manifest["models"]:
        try:
            results[m["key"]] = {"ms": read(m["file"])}
        except FileNotFoundError:
            continue
        except ValueError as exc:
            problems.append(f"{Path(m['file']).stem}.txt: {exc}")
    if problems:
        raise LatencyTableError(f"{logs}: unreadable perf_test logs: " + "; ".join(problems[:5]))
    settings = dict(manifest["settings"])
    settings["statistic"] = statistics.pop() if len(statistics) == 1 else "median"
    settings["rounds"], settings["warmup"] = 1, 1
    settings["repeats"] = manifest["settings"]["rounds"] * manifest["settings"]["repeats"]
    return {
        "format": RESULTS_FORMAT,
        "device_info": {"cpu": "android (onnxruntime_perf_test)", "onnxruntime": "see perf_test logs"},
        "settings": settings,
        "overhead_ms": read(manifest["overhead"]["file"]),
        "canary_ms": read(manifest["canary"]["file"]),
        "retried_chunks": 0,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "results": results,
    }


def import_bundle(bundle: str | Path, *, device: str, description: str = "") -> LatencyTable:
    """Read a bundle's ``results.json`` (or ``perf_test/`` logs) into a measured table.

    Raises:
        LatencyTableError: no results, results for another bundle, or keys still unmeasured.
    """
    check_device_name(device)
    bundle = Path(bundle)
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except FileNotFoundError:
        raise LatencyTableError(f"{bundle} is not a bundle (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"{bundle}/manifest.json is corrupted: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise LatencyTableError(f"{bundle}/manifest.json: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    res_path = bundle / "results.json"
    if res_path.is_file():
        try:
            res = json.loads(res_path.read_text())
        except json.JSONDecodeError as exc:
            raise LatencyTableError(f"{res_path} is corrupted ({exc}); re-run run_bundle.py") from None
        if res.get("format") != RESULTS_FORMAT:
            raise LatencyTableError(f"{res_path}: format {res.get('format')!r}, expected {RESULTS_FORMAT!r}")
        runtime = "onnxruntime"
    elif (bundle / "perf_test").is_dir():
        res = _perf_test_results(bundle, manifest)
        runtime = "onnxruntime (onnxruntime_perf_test)"
    else:
        raise LatencyTableError(
            f"{bundle} has no results.json and no perf_test/ folder: run run_bundle.py (or "
            f"run_perf_test_adb.sh) on the device first"
        )
    keys = [m["key"] for m in manifest["models"]]
    missing = [k for k in keys if k not in res["results"]]
    if missing:
        raise LatencyTableError(
            f"{bundle}: {len(missing)} of {len(keys)} keys have no result yet (e.g. {missing[0]}); "
            f"run the runner again - it resumes where it stopped"
        )
    s = res["settings"]
    info = res.get("device_info", {})
    entries = {k: Entry(float(res["results"][k]["ms"]), res["results"][k].get("iqr_ms")) for k in keys}
    header = TableHeader(
        device=device,
        description=description or f"measured on {info.get('cpu', 'the target device')} via bundle",
        method="measured",
        runtime=runtime,
        runtime_version=str(info.get("onnxruntime", "unknown")),
        execution_provider=s.get("provider", "CPUExecutionProvider"),
        intra_op_threads=int(s["intra_op_threads"]),
        inter_op_threads=int(s["inter_op_threads"]),
        execution_mode="sequential",
        graph_optimization=s.get("graph_optimization", "all"),
        opset=int(manifest["opset"]),
        batch=1,
        warmup=int(s["warmup"]),
        rounds=int(s["rounds"]),
        repeats=int(s["repeats"]),
        statistic=s.get("statistic", "median"),
        spread="iqr",
        overhead_ms=float(res["overhead_ms"]),
        cpu=str(info.get("cpu", "unknown")) + (f", {info['cores']} cores" if info.get("cores") else ""),
        date=str(res.get("date", "")),
        spaces=tuple(SpaceRef(**sp) for sp in manifest["spaces"]),
        num_classes=tuple(manifest.get("num_classes", ())),
        references=tuple(manifest.get("references", ())),
        complete=True,
        n_entries=len(entries),
        canary_ms=float(res.get("canary_ms", 0.0)),
        retried_chunks=int(res.get("retried_chunks", 0)),
        disturbed_chunks=int(res.get("disturbed_chunks", 0)),
        notes=f"imported from bundle made {manifest.get('created', '?')}; device info: {json.dumps(info)}",
    )
    return LatencyTable(header, entries)
