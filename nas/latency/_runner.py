#!/usr/bin/env python3
"""The timing protocol, standalone: needs only Python 3.8+, numpy and onnxruntime.

This one file is both the timing core of ``nas.latency`` (build and validate use it) and the
runner copied into a measurement bundle (``python -m nas.latency bundle``), so a table measured
on a target device follows exactly the protocol of a table measured here.

In a bundle folder::

    python3 run_bundle.py                 # times every model in manifest.json -> results.json
    python3 run_bundle.py --threads 2     # other settings are recorded in results.json

It is resumable: results.json is rewritten after every chunk, and keys already in it are skipped.
It never discards measured work silently: a results.json of other settings (another --threads) is
refused until it is moved away (or --overwrite is given); a complete one is left as it is. To time
the models a second time, extract the bundle again into another folder and run it there.
"""

import argparse
import datetime
import gc
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort

RESULTS_FORMAT = "nas-latency-results/1"
MANIFEST_FORMAT = "nas-latency-bundle/1"

GRAPH_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


@dataclass(frozen=True)
class MeasureSettings:
    """How each model is timed. Defaults: 1 thread, 6 interleaved rounds of (5 untimed warm-up runs
    + 8 timed runs) per model: 48 samples, median and interquartile range.

    ``tolerance``: a chunk whose canary is this much slower than its baseline is re-measured,
    at most ``max_retries`` times.

    ``spinning``: whether the idle threads of ONNX Runtime's intra-op pool busy-wait for work
    (``session.intra_op.allow_spinning``; ``onnxruntime_perf_test -D`` turns it off). Off by default:
    with 2 threads on 2 vCPUs, spinning made the same networks' times differ by a median 29% between
    passes (1.6% without; benchmarks/LATENCY.md), and at 1 thread there is no pool to spin.
    """

    warmup: int = 5
    rounds: int = 6
    repeats: int = 8
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    provider: str = "CPUExecutionProvider"
    statistic: str = "median"
    tolerance: float = 0.08
    max_retries: int = 3
    precision: str = "fp32"  # of the timed models (fp32, or int8 from static quantization)
    spinning: bool = False

    def __post_init__(self):
        problems = []
        if not isinstance(self.spinning, bool):
            problems.append(f"spinning must be true or false, got {self.spinning!r}")
        for name in ("rounds", "repeats", "intra_op_threads", "inter_op_threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                problems.append(f"{name} must be a positive integer, got {v!r}")
        for name in ("warmup", "max_retries"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                problems.append(f"{name} must be an integer >= 0, got {v!r}")
        if self.graph_optimization not in GRAPH_LEVELS:
            problems.append(
                f"graph_optimization must be one of {sorted(GRAPH_LEVELS)}, got {self.graph_optimization!r}"
            )
        if self.precision not in ("fp32", "int8"):
            problems.append(f"precision must be 'fp32' or 'int8', got {self.precision!r}")
        if self.statistic != "median":
            problems.append(f"statistic must be 'median', got {self.statistic!r}")
        if not 0 < self.tolerance < 1:
            problems.append(f"tolerance must be in (0, 1), got {self.tolerance!r}")
        if problems:
            raise ValueError("invalid measurement settings: " + "; ".join(problems))


@dataclass(frozen=True)
class Timing:
    ms: float  # median
    iqr_ms: float
    samples: int


def make_session(model, settings):
    """An ONNX Runtime session (``model``: bytes or a path) configured as the protocol says."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.intra_op_threads
    so.inter_op_num_threads = settings.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = GRAPH_LEVELS[settings.graph_optimization]
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so, providers=[settings.provider])


def _summary(samples_ns):
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Timing(float(med), float(q3 - q1), int(a.size))


def time_interleaved(sessions, settings, rounds=None):
    """``rounds`` passes over all sessions; in each, ``warmup`` untimed runs then ``repeats`` timed.

    Args:
        sessions: ``[(InferenceSession, input shape without batch)]``.
    Returns:
        one :class:`Timing` per session.
    """
    rng = np.random.default_rng(0)
    prepared = []
    for sess, shape in sessions:
        feed = {sess.get_inputs()[0].name: rng.standard_normal((1, *shape)).astype(np.float32)}
        prepared.append((sess.run, [sess.get_outputs()[0].name], feed))
    samples = [[] for _ in prepared]
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds or settings.rounds):
            for (run, out, feed), acc in zip(prepared, samples):
                # after the other models of the chunk ran, caches hold their weights: a network
                # needs a few runs to reach its steady state again, so every round warms up first
                for _ in range(settings.warmup):
                    run(out, feed)
                for _ in range(settings.repeats):
                    t0 = clock()
                    run(out, feed)
                    acc.append(clock() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return [_summary(a) for a in samples]


class ChunkTimer:
    """Times chunks of sessions next to a canary (disturbance check) and the overhead model.

    Args:
        canary, overhead: ``(session, shape)`` of the canary block and of the one-ReLU model.
        settings: the protocol.
        sleep: wait before re-measuring a disturbed chunk (tests pass a no-op).
    """

    def __init__(self, canary, overhead, settings, sleep=time.sleep):
        self.settings = settings
        self._canary, self._overhead = canary, overhead
        self._sleep = sleep
        self.retried_chunks = 0
        self.disturbed_chunks = 0  # still over tolerance after every retry: figures are suspect
        self.overhead_chunks = []
        best = None
        for _ in range(3):  # baseline: the quietest of three passes
            t = time_interleaved([canary, overhead], settings, rounds=2 * settings.rounds)
            if best is None or t[0].ms < best[0].ms:
                best = t
        self.canary_ms = best[0].ms
        self.overhead_chunks.append(best[1].ms)

    @property
    def overhead_ms(self):
        """Median over chunks of the per-call overhead (robust to a few disturbed chunks)."""
        return float(np.median(self.overhead_chunks))

    def time_sessions(self, sessions):
        s = self.settings
        best, best_ratio = None, float("inf")
        for attempt in range(s.max_retries + 1):
            timings = time_interleaved([self._canary, self._overhead, *sessions], s)
            ratio = timings[0].ms / self.canary_ms
            if ratio < best_ratio:
                best, best_ratio = timings, ratio
            if ratio < 1 - s.tolerance:
                self.canary_ms = timings[0].ms  # the baseline was taken on a busy machine
            if ratio <= 1 + s.tolerance:
                break
            if attempt == s.max_retries:
                self.disturbed_chunks += 1
                break
            self.retried_chunks += 1
            self._sleep(0.5 * (attempt + 1))
        self.overhead_chunks.append(best[1].ms)
        return best[2:]


def _cpuinfo():
    """``(model name, flags)`` from ``/proc/cpuinfo`` (empty where there is none)."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Hardware", "Processor") and not name:
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return name, flags


def cpu_model():
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux), with core count and vector ISA: the
    ``cpu`` of a table header, so a table can tell whether it is on the machine that measured it."""
    name, flags = _cpuinfo()
    name = name or platform.processor() or platform.machine() or "unknown-cpu"
    isa = next((f for f in ("avx512f", "avx2", "avx", "asimd", "neon") if f in flags), "")
    isa = {"avx512f": "avx512", "asimd": "neon"}.get(isa, isa)
    cores = os.cpu_count() or 1
    return f"{name}, {cores} cores" + (f", {isa}" if isa else "")


def device_info():
    """What the runner can learn about the machine it runs on."""
    cpu = _cpuinfo()[0]
    return {
        "cpu_model": cpu_model(),
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
    }


# -- bundle runner -----------------------------------------------------------------------------------
def materialise_weights(bundle, entry):
    """Write the weights of a model shipped without them (a probe bundle's whole networks).

    Such a model keeps its float tensors in an external data file that is not in the bundle; its
    manifest entry lists them (``weights``: file, total bytes, seed, and one ``[bytes, std, dtype]``
    per tensor, in file order; dtype float32, int8 or int32). Latency does not depend on the values, so each tensor gets normal
    noise of the trained-from-scratch weights' scale; the file is regenerated the same way from
    its seed. Returns its path, or ``None`` for a model that carries its weights.
    """
    w = entry.get("weights")
    if not w:
        return None
    path = os.path.join(bundle, w["file"])
    if os.path.exists(path) and os.path.getsize(path) == w["bytes"]:
        return path
    rng = np.random.default_rng(w["seed"])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for nbytes, std, *dtype in w["tensors"]:
            kind = np.dtype(dtype[0] if dtype else "float32")
            noise = rng.standard_normal(nbytes // kind.itemsize) * std
            if kind.kind == "i":  # int8 weights, int32 biases of a quantized model
                info = np.iinfo(kind)
                noise = np.clip(np.rint(noise), info.min + 1, info.max)
            f.write(noise.astype(kind).tobytes())
    if os.path.getsize(tmp) != w["bytes"]:
        os.remove(tmp)
        raise ValueError(f"{entry['file']}: the weights listed in the manifest do not add up to {w['bytes']} bytes")
    os.replace(tmp, path)
    return path


def _write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


class BundleError(ValueError):
    """A bundle folder, one of its files or an argument the runner cannot use: one line for the user."""


def _read_json(path, what):
    """The parsed JSON file ``path`` (``what`` names it in errors), or a :class:`BundleError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{path}: {what} is not UTF-8 text (corrupted)") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise BundleError(f"{path}: {what} is corrupted or truncated, not valid JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{path}: {what} is nested too deeply to be JSON of a bundle") from None


def load_manifest(bundle):
    """``bundle/manifest.json``, checked enough to be run; a :class:`BundleError` naming what is wrong."""
    if not os.path.exists(bundle):
        raise BundleError(f"--bundle {bundle}: no such folder (give the folder extracted from the bundle or probe)")
    if not os.path.isdir(bundle):
        raise BundleError(f"--bundle {bundle}: a file, not a folder (give the folder extracted from the bundle "
                          "or probe, the one holding manifest.json)")
    path = os.path.join(bundle, "manifest.json")
    if not os.path.isfile(path):
        raise BundleError(f"--bundle {bundle}: no manifest.json in it (give the folder extracted from the bundle "
                          "or probe, the one holding manifest.json)")
    manifest = _read_json(path, "the file")
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    problems = []
    for name in ("canary", "overhead"):
        entry = manifest.get(name)
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and "input_shape" in entry):
            problems.append(f"{name} must be an object with file and input_shape")
    models = manifest.get("models")
    if not isinstance(models, list) or not all(
        isinstance(m, dict) and isinstance(m.get("key"), str) and isinstance(m.get("file"), str)
        and "input_shape" in m for m in models
    ):
        problems.append("models must be a list of objects with key, file and input_shape")
    if not isinstance(manifest.get("settings"), dict):
        problems.append("settings must be a JSON object")
    if problems:
        raise BundleError(f"{path}: " + "; ".join(problems) + " (make the bundle or probe again)")
    return manifest


def _settings_text(settings, names):
    return ", ".join(f"{k}={settings[k]!r}" if k in settings else f"{k} not recorded" for k in names)


class _Plan:
    """What a run has to do: the manifest, the results kept from ``results.json``, the models to time."""

    def __init__(self, bundle, manifest, settings, out_path, results, todo):
        self.bundle, self.manifest, self.settings = bundle, manifest, settings
        self.out_path, self.results, self.todo = out_path, results, todo
        self.unit = "networks" if "probe" in manifest else "keys"


def _kept_results(out_path, manifest, settings, overwrite):
    """The results of an earlier run in ``out_path`` to go on from; a :class:`BundleError` where using or
    replacing them is not clear (another protocol, another probe, a corrupted file), never a silent loss."""
    if overwrite or not os.path.exists(out_path):
        return {}
    remedy = "move it away (or delete it) to time the models from the start, or pass --overwrite to replace it"
    try:
        old = _read_json(out_path, "the file")
    except BundleError as exc:
        raise BundleError(f"{exc}: {remedy}") from None
    if not isinstance(old, dict) or not isinstance(old.get("results"), dict) or not isinstance(old.get("settings"), dict):
        raise BundleError(f"{out_path}: not the results.json of a run of this runner ({remedy})")
    if old.get("format") != RESULTS_FORMAT:
        raise BundleError(f"{out_path}: format {old.get('format')!r}, expected {RESULTS_FORMAT!r} ({remedy})")
    n_old, n = len(old["results"]), len(manifest["models"])
    unit = "networks" if "probe" in manifest else "keys"
    old_probe, probe = old.get("probe"), manifest.get("probe")
    old_id, new_id = (p.get("id") if isinstance(p, dict) else p for p in (old_probe, probe))
    if old_id != new_id:
        def name(i):
            return "a per-key bundle" if i is None else f"probe {i}"

        raise BundleError(f"{out_path} holds the results of {name(old_id)}, but this folder's manifest.json is "
                          f"{name(new_id)}: {remedy}")
    want = asdict(settings)
    changed = sorted(k for k in set(old["settings"]) | set(want) if old["settings"].get(k, None) != want.get(k, None)
                     or (k in old["settings"]) != (k in want))
    if changed:
        kept = (f"results-{old['settings']['intra_op_threads']}thread.json"
                if "intra_op_threads" in changed and "intra_op_threads" in old["settings"] else "results-old.json")
        raise BundleError(
            f"{out_path} holds {n_old} of {n} {unit} timed with {_settings_text(old['settings'], changed)}; this "
            f"run asks for {_settings_text(want, changed)} and would discard them. Move that results.json away "
            f"first (e.g. to {kept}) to time with the new settings, or pass --overwrite to replace it; run with "
            "the earlier settings to go on with it")
    return old["results"]


def _plan(bundle, settings=None, overwrite=False):
    manifest = load_manifest(bundle)
    if settings is None:
        try:
            settings = MeasureSettings(**manifest["settings"])
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{os.path.join(bundle, 'manifest.json')}: settings: {exc}") from None
    out_path = os.path.join(bundle, "results.json")
    results = dict(_kept_results(out_path, manifest, settings, overwrite))
    todo = [m for m in manifest["models"] if m["key"] not in results]
    for entry in [manifest["canary"], manifest["overhead"]] + todo:
        path = os.path.join(bundle, entry["file"])
        if not os.path.isfile(path):
            raise BundleError(f"{path}: model file missing (an incomplete copy or extraction?): extract the "
                              "bundle or probe again")
    return _Plan(bundle, manifest, settings, out_path, results, todo)


def _check_chunk_size(chunk_size):
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise BundleError(f"--chunk-size must be a positive integer (models timed together), got {chunk_size!r}")


def run_bundle(bundle, settings=None, chunk_size=None, progress=True, sleep=time.sleep, overwrite=False):
    """Time every model listed in ``bundle/manifest.json`` and write ``bundle/results.json``.

    Resumes from a ``results.json`` of the same settings (returning it untouched where it already holds
    every model); ``overwrite`` starts over instead. Raises :class:`BundleError` for a folder, file or
    argument it cannot use, and for a ``results.json`` of other settings (whose results it would lose).
    """
    _check_chunk_size(chunk_size)
    return _run(_plan(bundle, settings, overwrite), chunk_size, progress, sleep)


def _run(plan, chunk_size=None, progress=True, sleep=time.sleep):
    bundle, manifest, settings, out_path = plan.bundle, plan.manifest, plan.settings, plan.out_path
    results, todo = plan.results, plan.todo
    models = manifest["models"]
    if not todo:
        return out_path

    def load(entry):
        weights = materialise_weights(bundle, entry)
        try:
            return make_session(os.path.join(bundle, entry["file"]), settings), tuple(entry["input_shape"])
        finally:
            if weights is not None:  # read into the session; regenerated if needed again
                os.remove(weights)

    timer = ChunkTimer(load(manifest["canary"]), load(manifest["overhead"]), settings, sleep=sleep)
    info = device_info()
    start = time.time()
    chunk_size = chunk_size or manifest.get("chunk_size", 32)
    _check_chunk_size(chunk_size)
    for i in range(0, len(todo), chunk_size):
        chunk = todo[i : i + chunk_size]
        timings = timer.time_sessions([load(m) for m in chunk])
        for m, t in zip(chunk, timings):
            results[m["key"]] = {"ms": round(t.ms, 6), "iqr_ms": round(t.iqr_ms, 6)}
        _write_json(out_path, {
            "format": RESULTS_FORMAT,
            "device_info": info,
            "settings": asdict(settings),
            "overhead_ms": round(timer.overhead_ms, 6),
            "canary_ms": round(timer.canary_ms, 6),
            "retried_chunks": timer.retried_chunks,
            "disturbed_chunks": timer.disturbed_chunks,
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "complete": len(results) == len(models),
            "results": results,
            **({"probe": manifest["probe"]} if "probe" in manifest else {}),
        })  # fmt: skip
        if progress:
            done = len(models) - len(todo) + i + len(chunk)
            rate = (i + len(chunk)) / max(time.time() - start, 1e-9)
            print(f"\r{done}/{len(models)} {plan.unit}  {rate:.2f} {plan.unit}/s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out_path


def _positive_int(what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer ({what}), got {text!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as the runner's other errors
        self.exit(2, f"error: {message} (see python3 {self.prog} --help)\n")


def main(argv=None):
    parser = _Parser(prog="run_bundle.py", description="Time the models of a latency bundle with ONNX Runtime.")
    parser.add_argument("--bundle", default=os.path.dirname(os.path.abspath(__file__)), help="bundle folder")
    parser.add_argument("--threads", type=_positive_int("intra-op threads"),
                        help="intra-op threads (default: the bundle's, usually 1)")
    parser.add_argument("--chunk-size", type=_positive_int("models timed together"),
                        help="models timed interleaved (default: the bundle's, or 32)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over: replace an existing results.json (of these or other settings) "
                             "instead of going on from it")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--write-weights", action="store_true",
                        help="only write the weights of the models shipped without them (a probe's networks), "
                             "e.g. before pushing the models to a phone for onnxruntime_perf_test; then exit")
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file the runner cannot read or write (permissions, a full disk)
        print(f"error: {exc.filename or args.bundle}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: results.json holds the chunks timed so far; run again to go on", file=sys.stderr)
        return 130


def _main(args):
    manifest = load_manifest(args.bundle)
    if args.write_weights:
        written = [materialise_weights(args.bundle, m) for m in manifest["models"]]
        total = sum(os.path.getsize(w) for w in written if w)
        print(f"wrote the weights of {sum(1 for w in written if w)} models ({total / 1e6:.1f} MB) in "
              f"{os.path.join(args.bundle, 'models')}")
        return 0
    stored = dict(manifest["settings"])
    if args.threads is not None:
        stored["intra_op_threads"] = args.threads
    try:
        settings = MeasureSettings(**stored)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{os.path.join(args.bundle, 'manifest.json')}: settings: {exc}") from None
    plan = _plan(args.bundle, settings, args.overwrite)
    if not plan.todo:
        n, what = len(plan.manifest["models"]), "probe" if "probe" in plan.manifest else "bundle"
        print(f"all {n} {plan.unit} are already measured in {plan.out_path}: nothing timed, nothing written. "
              f"To time them again (another pass), extract the {what} archive again into another folder and run "
              f"run_bundle.py there (a copy of a folder holding results.json copies its results too), or move "
              f"results.json away (or delete it) first, or pass --overwrite to replace it.")
        return 0
    path = _run(plan, args.chunk_size, progress=not args.quiet)
    print(f"wrote {path} ({len(plan.todo)} {plan.unit} timed, {len(plan.results)} of "
          f"{len(plan.manifest['models'])} in it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
