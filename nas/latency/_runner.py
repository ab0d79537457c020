#!/usr/bin/env python3
"""The timing protocol, standalone: needs only Python 3.8+, numpy and onnxruntime.

This one file is both the timing core of ``nas.latency`` (build and validate use it) and the
runner copied into a measurement bundle (``python -m nas.latency bundle``), so a table measured
on a target device follows exactly the protocol of a table measured here.

In a bundle folder::

    python3 run_bundle.py                 # times every model in manifest.json -> results.json
    python3 run_bundle.py --threads 2     # other settings are recorded in results.json

It is resumable: results.json is rewritten after every chunk, and keys already in it are skipped.
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


def run_bundle(bundle, settings=None, chunk_size=None, progress=True, sleep=time.sleep):
    """Time every model listed in ``bundle/manifest.json`` and write ``bundle/results.json``."""
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{bundle}/manifest.json: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    settings = settings or MeasureSettings(**manifest["settings"])
    out_path = os.path.join(bundle, "results.json")
    results = {}
    if os.path.exists(out_path):
        with open(out_path) as f:
            old = json.load(f)
        if old.get("settings") == asdict(settings):
            results = old["results"]
    models = manifest["models"]
    todo = [m for m in models if m["key"] not in results]

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
            unit = "networks" if "probe" in manifest else "keys"
            print(f"\r{done}/{len(models)} {unit}  {rate:.2f} {unit}/s", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return out_path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Time the models of a latency bundle with ONNX Runtime.")
    parser.add_argument("--bundle", default=os.path.dirname(os.path.abspath(__file__)), help="bundle folder")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: the bundle's, usually 1)")
    parser.add_argument("--chunk-size", type=int, help="models timed interleaved (default: the bundle's, or 32)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--write-weights", action="store_true",
                        help="only write the weights of the models shipped without them (a probe's networks), "
                             "e.g. before pushing the models to a phone for onnxruntime_perf_test; then exit")
    args = parser.parse_args(argv)
    with open(os.path.join(args.bundle, "manifest.json")) as f:
        manifest = json.load(f)
    if args.write_weights:
        written = [materialise_weights(args.bundle, m) for m in manifest["models"]]
        total = sum(os.path.getsize(w) for w in written if w)
        print(f"wrote the weights of {sum(1 for w in written if w)} models ({total / 1e6:.1f} MB) in "
              f"{os.path.join(args.bundle, 'models')}")
        return 0
    stored = manifest["settings"]
    if args.threads:
        stored["intra_op_threads"] = args.threads
    path = run_bundle(args.bundle, MeasureSettings(**stored), args.chunk_size, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
