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
import math
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nas.latency._build import required_layers
from nas.latency._coverage import DEFAULT_NUM_CLASSES
from nas.export import ONNX_OPSET
from nas.latency._modules import canary_layer, layer_module, model_bytes, onnx_bytes, overhead_module
from nas.latency._runner import MANIFEST_FORMAT, RESULTS_FORMAT, MeasureSettings
from nas.latency._problems import Problems, kind_ok, read_json, short
from nas.latency._table import (
    Entry,
    LatencyTable,
    LatencyTableError,
    SpaceRef,
    TableHeader,
    check_device_name,
    spinning_of,
)
from nas.space import SearchSpace

__all__ = ["write_bundle", "import_bundle", "parse_perf_test", "write_adb_script", "check_manifest", "perf_test_results"]

#: What the adb script runs first in a probe: its networks ship without weights.
_PROBE_PREPARE = "python3 run_bundle.py --write-weights   # the networks' weights (not shipped), written here\n"

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
{prepare}mkdir -p perf_test
$ADB shell mkdir -p $DIR/models
$ADB push "$PERF_TEST" $DIR/onnxruntime_perf_test >/dev/null
$ADB shell chmod +x $DIR/onnxruntime_perf_test
$ADB push models/. $DIR/models/ >/dev/null
for f in models/*.onnx; do
  name=$(basename "$f" .onnx)
  [ -s "perf_test/$name.txt" ] && continue      # resumable
  $ADB shell "cd $DIR && $TASKSET ./onnxruntime_perf_test -e cpu -m times -r {runs} -x {threads} -y 1{no_spin} -o 99 models/$name.onnx" > "perf_test/$name.txt.part"
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
            path.write_bytes(model_bytes(layer_module(layer), layer.in_shape, settings.precision))
        models.append({"key": key, "file": rel, "input_shape": list(layer.in_shape)})
    om, oshape = overhead_module()
    (out / "models" / "overhead.onnx").write_bytes(onnx_bytes(om, oshape))
    canary = canary_layer()
    (out / "models" / "canary.onnx").write_bytes(onnx_bytes(layer_module(canary), canary.in_shape))
    manifest = {
        "format": MANIFEST_FORMAT,
        "device": device,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "opset": ONNX_OPSET,
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
    fmt = dict(
        device=device, n=len(models), out=out, threads=settings.intra_op_threads, runs=settings.rounds * settings.repeats,
        warmup=settings.warmup, rounds=settings.rounds, repeats=settings.repeats,
    )  # fmt: skip
    (out / "README.md").write_text(_README.format(**fmt))
    write_adb_script(out, settings)
    return manifest


def write_adb_script(folder: Path, settings: MeasureSettings, *, weights: bool = False) -> Path:
    """``run_perf_test_adb.sh`` in ``folder``: every model timed with ``onnxruntime_perf_test`` over
    adb, the logs kept in ``perf_test/``. ``weights``: the models ship without their weights (a
    probe), so the script first has the runner write them here."""
    script = folder / "run_perf_test_adb.sh"
    # -D: no spinning of the intra-op pool's idle threads (as MeasureSettings.spinning=False); 1 thread has no pool
    no_spin = " -D" if settings.intra_op_threads > 1 and not settings.spinning else ""
    script.write_text(_ADB_SCRIPT.format(runs=settings.rounds * settings.repeats, threads=settings.intra_op_threads,
                                         no_spin=no_spin, prepare=_PROBE_PREPARE if weights else ""))
    script.chmod(0o755)
    return script


# the value is any token, so that a "nan" or "inf" is reported as such, not as a missing line
_PERF_P50 = re.compile(r"P50 Latency:[ \t]*(\S*?)[ \t]*s")
_PERF_AVG = re.compile(r"Average inference time cost:[ \t]*(\S*?)[ \t]*ms")


def parse_perf_test(text: str) -> tuple[float, str]:
    """``(ms, statistic)`` from an ``onnxruntime_perf_test`` log: P50 if printed, else the mean.

    Raises:
        ValueError: no such line, or its value is not a positive finite time (``nan`` of a failed run).
    """
    for pattern, scale, statistic in ((_PERF_P50, 1000.0, "median"), (_PERF_AVG, 1.0, "mean")):
        m = pattern.search(text)
        if m is None:
            continue
        line = m[0].strip()
        try:
            value = float(m[1])
        except ValueError:
            raise ValueError(f"its line '{line}' holds no number") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"its line '{line}': {m[1]} is not a positive finite time")
        return value * scale, statistic
    raise ValueError("no 'P50 Latency: ... s' or 'Average inference time cost: ... ms' line")


def _check_bundle_dir(bundle: Path) -> None:
    """A clear error when ``bundle`` is not a folder holding ``manifest.json``."""
    if bundle.is_dir():
        if (bundle / "manifest.json").exists():
            return
        inner = sorted(p.parent for p in bundle.glob("*/manifest.json"))
        what = (
            f"found {inner[0] / 'manifest.json'}: import {inner[0]} instead"
            if inner
            else "make one with python -m nas.latency bundle"
        )
        raise LatencyTableError(f"{bundle} is not a bundle (no manifest.json in it); {what}")
    if not bundle.exists():
        raise LatencyTableError(f"bundle folder not found: {bundle}")
    if bundle.name == "manifest.json":
        raise LatencyTableError(f"{bundle} is the manifest; import the bundle folder that holds it: {bundle.parent}")
    kind = "tar" if tarfile.is_tarfile(bundle) else "zip" if zipfile.is_zipfile(bundle) else None
    if kind:
        raise LatencyTableError(
            f"{bundle} is a {kind} archive, not a bundle folder: unpack it and import the folder that "
            f"holds manifest.json"
        )
    raise LatencyTableError(f"{bundle} is a file, not a bundle folder (a folder holding manifest.json)")


def check_manifest(manifest: Any, path: Path, *, perf_test: bool) -> tuple[list[str], tuple[SpaceRef, ...]]:
    """The manifest's keys (in order) and spaces; every problem of the file raised as one error."""
    p = Problems(path, "re-create the bundle with python -m nas.latency bundle")
    if not isinstance(manifest, dict):
        p.add("(top level)", f"must be a JSON object, got {type(manifest).__name__}")
        p.raise_if_any()
    if manifest.get("format") != MANIFEST_FORMAT:
        raise LatencyTableError(
            f"{path}: format {short(manifest.get('format'))}, expected {MANIFEST_FORMAT!r} (not a bundle "
            f"made by python -m nas.latency bundle, or by another version)"
        )
    p.get(manifest, "opset", "", "pos_int")
    p.get(manifest, "created", "", "str", required=False)
    spaces = []
    for i, sp in enumerate(p.get(manifest, "spaces", "", "list", default=[])):
        if not isinstance(sp, dict):
            p.add(f"spaces[{i}]", f"must be a JSON object {{name, digest}}, got {short(sp)}")
            continue
        name, digest = p.get(sp, "name", f"spaces[{i}]", "key"), p.get(sp, "digest", f"spaces[{i}]", "str")
        unknown = sorted(set(sp) - {"name", "digest"})
        if unknown:
            p.add(f"spaces[{i}]", f"unknown keys {unknown}")
        elif name is not None and digest is not None:
            try:
                spaces.append(SpaceRef(name, digest))
            except ValueError as exc:
                p.add(f"spaces[{i}]", str(exc).replace("space.", "", 1))
    for i, n in enumerate(p.get(manifest, "num_classes", "", "list", required=False, default=[])):
        if not kind_ok(n, "pos_int"):
            p.add(f"num_classes[{i}]", f"must be a positive integer, got {short(n)}")
    for i, r in enumerate(p.get(manifest, "references", "", "list", required=False, default=[])):
        if not kind_ok(r, "str"):
            p.add(f"references[{i}]", f"must be a string, got {short(r)}")
    keys: list[str] = []
    models = p.get(manifest, "models", "", "list", default=[])
    if manifest.get("models") == []:
        p.add("models", "lists no model")
    for i, m in enumerate(models):
        where = f"models[{i}]"
        if not isinstance(m, dict):
            p.add(where, f"must be a JSON object {{key, file, input_shape}}, got {short(m)}")
            continue
        key = p.get(m, "key", where, "key")
        p.get(m, "file", where, "key")
        if key is not None:
            if key in keys:
                p.add(f"{where}.key", f"{key!r} is listed twice")
            keys.append(key)
    if perf_test:  # the perf_test logs are read through these
        _check_settings(p, p.get(manifest, "settings", "", "object"))
        for name in ("overhead", "canary"):
            model = p.get(manifest, name, "", "object")
            if model is not None:
                p.get(model, "file", name, "key")
    p.raise_if_any()
    return keys, tuple(spaces)


def _check_settings(p: Problems, settings: dict[str, Any] | None) -> None:
    """The timing settings a table header records (``None``: the mapping itself was bad)."""
    if settings is None:
        return
    for name in ("intra_op_threads", "inter_op_threads", "rounds", "repeats"):
        p.get(settings, name, "settings", "pos_int")
    p.get(settings, "warmup", "settings", "count")
    for name in ("provider", "graph_optimization", "statistic"):
        p.get(settings, name, "settings", "key", required=False)
    p.get(settings, "spinning", "settings", "bool", required=False)


def _check_results(res: Any, path: Path, keys: list[str]) -> None:
    """Every problem of a ``results.json`` (for the manifest's ``keys``) raised as one error."""
    p = Problems(path, "re-run run_bundle.py on the device")
    if not isinstance(res, dict):
        p.add("(top level)", f"must be a JSON object, got {type(res).__name__}")
        p.raise_if_any()
    if res.get("format") != RESULTS_FORMAT:
        raise LatencyTableError(f"{path}: format {short(res.get('format'))}, expected {RESULTS_FORMAT!r}")
    _check_settings(p, p.get(res, "settings", "", "object"))
    p.get(res, "overhead_ms", "", "ms0")
    p.get(res, "canary_ms", "", "ms0", required=False)
    for name in ("retried_chunks", "disturbed_chunks"):
        p.get(res, name, "", "count", required=False)
    p.get(res, "date", "", "str", required=False)
    info = p.get(res, "device_info", "", "object", required=False)
    if info is not None:
        p.get(info, "cpu", "device_info", "str", required=False)
        p.get(info, "cores", "device_info", "pos_int", required=False)
    results = p.get(res, "results", "", "object", default={})
    for key in keys:
        if key not in results:
            continue  # reported after the structural problems (a partial run)
        where = f"results[{key!r}]"
        value = results[key]
        if not isinstance(value, dict):
            p.add(where, f"must be a JSON object {{ms, iqr_ms}}, got {short(value)}")
            continue
        p.get(value, "ms", where, "ms")
        p.get(value, "iqr_ms", where, "ms0", required=False)
    p.raise_if_any()


def perf_test_results(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """A ``results.json``-like mapping from the ``perf_test/*.txt`` logs (manifest already checked).

    Every model needs a usable log. The error names the bad logs (to delete: the adb script skips
    every non-empty log) and the missing ones (the script times them when run again).
    """
    logs = bundle / "perf_test"
    results, statistics = {}, set()
    p = Problems(logs, "", "unusable logs")
    missing: list[str] = []
    bad: list[Path] = []

    def read(rel: str) -> float | None:
        log = logs / (Path(rel).stem + ".txt")
        try:
            text = log.read_text(encoding="utf-8")
        except FileNotFoundError:
            missing.append(log.name)
            return None
        except OSError as exc:
            p.add(log.name, f"cannot read it ({exc.strerror or exc})")
            bad.append(log)
            return None
        except UnicodeDecodeError:
            p.add(log.name, "not UTF-8 text, not an onnxruntime_perf_test log")
            bad.append(log)
            return None
        if not text.strip():
            missing.append(log.name)  # the script re-times an empty log
            return None
        try:
            ms, stat = parse_perf_test(text)
        except ValueError as exc:
            p.add(log.name, str(exc))
            bad.append(log)
            return None
        statistics.add(stat)
        return ms

    for m in manifest["models"]:
        ms = read(m["file"])
        if ms is not None:
            results[m["key"]] = {"ms": ms}
    overhead_ms = read(manifest["overhead"]["file"])
    canary_ms = read(manifest["canary"]["file"])
    if len(missing) == 1:
        p.add(missing[0], "missing or empty: run_perf_test_adb.sh has not run, or did not finish")
    elif missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        p.add("", f"{len(missing)} of the {len(manifest['models']) + 2} logs missing or empty ({shown}): "
                  "run_perf_test_adb.sh has not run, or did not finish")
    if bad:
        names = ", ".join(str(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        p.hint = (f"delete {names} first - run_perf_test_adb.sh skips every non-empty log, a bad one too - then "
                  "run it again: it times only the models whose log is missing or empty")
    else:
        p.hint = "run run_perf_test_adb.sh again: it times only the models whose log is missing or empty"
    p.raise_if_any()
    stored = manifest["settings"]
    settings = dict(stored)
    settings["statistic"] = statistics.pop() if len(statistics) == 1 else "median"
    settings["rounds"], settings["warmup"] = 1, 1
    settings["repeats"] = stored["rounds"] * stored["repeats"]
    return {
        "format": RESULTS_FORMAT,
        "device_info": {"cpu": "android (onnxruntime_perf_test)", "onnxruntime": "see perf_test logs"},
        "settings": settings,
        "overhead_ms": overhead_ms,
        "canary_ms": canary_ms,
        "retried_chunks": 0,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "results": results,
    }


def import_bundle(bundle: str | Path, *, device: str, description: str = "") -> LatencyTable:
    """Read a bundle's ``results.json`` (or ``perf_test/`` logs) into a measured table.

    Every file is checked before it is used: a malformed bundle (not a folder, an archive, no or a
    corrupted ``manifest.json``/``results.json``, missing keys, values of the wrong type, unreadable
    logs) is one :class:`LatencyTableError` naming the file and each bad key or member.

    Raises:
        LatencyTableError: a malformed bundle, no results, or keys still unmeasured.
    """
    check_device_name(device)
    bundle = Path(bundle)
    _check_bundle_dir(bundle)
    manifest_path = bundle / "manifest.json"
    manifest = read_json(manifest_path, "re-create the bundle with python -m nas.latency bundle")
    res_path = bundle / "results.json"
    perf_test = not res_path.exists() and (bundle / "perf_test").is_dir()
    keys, spaces = check_manifest(manifest, manifest_path, perf_test=perf_test)
    if res_path.exists():
        res = read_json(res_path, "re-run run_bundle.py on the device")
        _check_results(res, res_path, keys)
        runtime, source = "onnxruntime", res_path
    elif perf_test:
        res = perf_test_results(bundle, manifest)
        runtime, source = "onnxruntime (onnxruntime_perf_test)", bundle / "perf_test"
    else:
        raise LatencyTableError(
            f"{bundle} has no results.json and no perf_test/ folder: run run_bundle.py (or "
            f"run_perf_test_adb.sh) on the device first"
        )
    missing = [k for k in keys if k not in res["results"]]
    if missing:
        raise LatencyTableError(
            f"{bundle}: {len(missing)} of {len(keys)} keys have no result yet (e.g. {missing[0]}); "
            f"run the runner again - it resumes where it stopped"
        )
    s = res["settings"]
    info = res.get("device_info") or {}
    entries = {k: Entry(float(res["results"][k]["ms"]), res["results"][k].get("iqr_ms")) for k in keys}
    try:
        header = TableHeader(
            device=device,
            description=description or f"measured on {info.get('cpu', 'the target device')} via bundle",
            method="measured",
            runtime=runtime,
            runtime_version=str(info.get("onnxruntime", "unknown")),
            execution_provider=s.get("provider") or "CPUExecutionProvider",
            intra_op_threads=s["intra_op_threads"],
            inter_op_threads=s["inter_op_threads"],
            execution_mode="sequential",
            graph_optimization=s.get("graph_optimization") or "all",
            opset=manifest["opset"],
            batch=1,
            warmup=s["warmup"],
            rounds=s["rounds"],
            repeats=s["repeats"],
            statistic=s.get("statistic") or "median",
            spread="iqr",
            overhead_ms=float(res["overhead_ms"]),
            cpu=str(info.get("cpu", "unknown")) + (f", {info['cores']} cores" if info.get("cores") else ""),
            date=str(res.get("date") or ""),
            spaces=spaces,
            num_classes=tuple(manifest.get("num_classes") or ()),
            references=tuple(manifest.get("references") or ()),
            complete=True,
            n_entries=len(entries),
            canary_ms=float(res.get("canary_ms") or 0.0),
            retried_chunks=int(res.get("retried_chunks") or 0),
            disturbed_chunks=int(res.get("disturbed_chunks") or 0),
            notes=f"imported from bundle made {manifest.get('created') or '?'}; device info: {json.dumps(info)}",
            precision=s.get("precision") or "fp32",
            spinning=spinning_of(s),
        )
    except LatencyTableError as exc:  # a value the checks above let through
        raise LatencyTableError(f"{source}: {exc}") from None
    table = LatencyTable(header, entries)
    terms = table.term_problems()
    if terms:
        raise LatencyTableError(
            f"{source}: the results would make predictions negative: {'; '.join(terms)} (re-measure on the device)"
        )
    return table
