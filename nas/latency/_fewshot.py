"""Few-shot calibration: a table for a new device from an existing table and N whole networks
measured on the device.

The model is the one of the ``pixel_cpu`` calibration (:mod:`nas.latency._calibrate`),
generalised: a layer's time on the new device is

    new_ms(layer) = theta . features(layer),   theta >= 0

with features the layer's time on the base table (net of the per-call overhead, with its
composition correction), its dense and depthwise multiply-adds, squeeze-excitation work, elements
written, h-swish elements and a per-layer constant; a network is the sum of its layers plus the
new device's per-call overhead (measured by the probe). ``theta`` is fitted by non-negative least
squares on the *relative* error of the N measured networks. Three nested models are tried:

* ``scale``: ``theta`` on the base time only (one factor: another machine of the same kind);
* ``affine``: base time and a per-layer constant (a factor, plus a fixed cost per operator);
* ``per-op``: every feature (another ISA, thread count or precision shifts the operation classes
  differently).

``auto`` keeps the one with the lowest leave-one-out mean error; a model is only fitted with at least
:data:`EXTRA_NETWORKS` more networks than it has terms. The new table has the base table's keys
(the same spaces), ``method: calibrated`` and the fit, its N and its cross-validated error in its
header. Measurements of ``validate`` on a measured table fit the same way: a residual correction
of that table on its own device.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.latency._bundle import check_manifest, perf_test_results
from nas.latency._problems import Problems, read_json, short
from nas.latency._calibrate import FEATURES, layer_features, nnls
from nas.latency._composition import errors, fit_nested
from nas.latency._coverage import reference_layers, space_layers
from nas.latency._modules import canary_layer
from nas.latency._probe_bundle import PROBE_FORMAT, probe_id
from nas.latency._runner import RESULTS_FORMAT, MeasureSettings
from nas.latency._table import Entry, LatencyTable, LatencyTableError, check_device_name, spinning_of
from nas.latency._validate import VALIDATION_FORMAT
from nas.shapes import LayerSpec, walk
from nas.space import Arch, SearchSpace, load_space

__all__ = ["MODELS", "EXTRA_NETWORKS", "NOISY_CV_PCT", "CHECKED_NETWORKS", "VALIDATION_FORMAT", "Measurements",
           "FewShotFit", "read_measurements", "combine_measurements", "fit_fewshot", "fit_warning", "precision_warning",
           "calibrate_table"]

#: The nested models and their terms (names of :data:`nas.latency._calibrate.FEATURES`).
MODELS: dict[str, tuple[str, ...]] = {
    "scale": ("host_ms",),
    "affine": ("host_ms", "layer"),
    "per-op": FEATURES,
}

#: A model with p terms needs at least p + EXTRA_NETWORKS measured networks.
EXTRA_NETWORKS = 3

#: A fit on at least CHECKED_NETWORKS networks whose leave-one-out median |error| exceeds
#: NOISY_CV_PCT gets a warning. On the AMD EPYC VM (benchmarks/LATENCY.md, "Both passes as
#: samples", 14 fits per probe size) it flagged 6 of the 8 fits of 20 networks that missed the
#: targets on held-out subnets and none of the 6 that met them (40 networks: 7 of 8, none); at 10
#: networks the leave-one-out estimate is too rough (it would also flag 3 of the 6 good fits).
NOISY_CV_PCT = 5.0
CHECKED_NETWORKS = 20


_HINT = "measure the probe again with run_bundle.py, or make one with python -m nas.latency probe"


@dataclass(frozen=True)
class Measurements:
    """Whole networks timed on one device: a probe's ``results.json`` or a ``validate`` report."""

    path: str
    kind: str  # probe | validation
    space: str
    space_digest: str
    num_classes: int
    archs: tuple[str, ...]
    ms: tuple[float, ...]
    overhead_ms: float
    settings: dict[str, Any]
    cpu: str
    runtime_version: str
    canary_ms: float = 0.0
    probe_id: str | None = None
    device: str = ""  # the validated table (validation reports)
    disturbed_chunks: int = 0
    runs: tuple[str, ...] = ()  # the files of several runs combined into these (combine_measurements)

    def __len__(self) -> int:
        return len(self.archs)


def _finite_ms(p: Problems, where: str, value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        p.add(where, f"must be a finite number > 0 (milliseconds), got {short(value)}")
        return None
    return float(value)


def _check_settings(p: Problems, settings: dict[str, Any]) -> None:
    """The timing protocol a measurements file records, checked as the runner checks its own."""
    known = {f.name for f in fields(MeasureSettings)}
    try:
        MeasureSettings(**{k: v for k, v in settings.items() if k in known})
    except (TypeError, ValueError) as exc:
        p.add("settings", str(exc).removeprefix("invalid measurement settings: "))


def read_measurements(path: str | Path, *, probe: dict[str, Any] | None = None) -> Measurements:
    """Read and check a measurements file; every problem is raised as one :class:`LatencyTableError`.

    Args:
        path: a probe's ``results.json`` (written by ``run_bundle.py``) or a ``validate --report``.
        probe: the probe's manifest (``--probe``): the results must be of that probe.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "results.json").is_file():
            path = path / "results.json"
        elif (path / "perf_test").is_dir():
            return _read_probe(path, _perf_test_probe(path), probe)
        else:
            raise LatencyTableError(f"{path} is a folder without results.json or perf_test/ logs: run run_bundle.py "
                                    "(or run_perf_test_adb.sh) in it first")
    data = read_json(path, _HINT)
    if not isinstance(data, dict):
        raise LatencyTableError(f"{path}: must be a JSON object, got {type(data).__name__} ({_HINT})")
    if data.get("format") == VALIDATION_FORMAT:
        return _read_validation(path, data)
    if data.get("format") != RESULTS_FORMAT:
        raise LatencyTableError(
            f"{path}: format {short(data.get('format'))}, expected {RESULTS_FORMAT!r} (a probe's results.json) "
            f"or {VALIDATION_FORMAT!r} (python -m nas.latency validate --report)")
    if "probe" not in data:
        raise LatencyTableError(f"{path} holds the results of a per-key bundle, not of a probe: turn it into a "
                                "table with python -m nas.latency import")
    return _read_probe(path, data, probe)


def combine_measurements(runs: Sequence[Measurements]) -> Measurements:
    """Several timings of the same probe (``run_bundle.py`` run more than once, minutes apart) as
    one: each network's median over the runs, the median per-call overhead and canary.

    On a device whose speed drifts (a shared VM) one pass measures that minute's speed as much as
    the networks; averaged passes fitted the held-out subnets' averaged times within the targets
    in 13 of 15 fits where single passes did in 18 of 30 (``benchmarks/LATENCY.md``).

    Raises:
        LatencyTableError: the runs are not all of one probe, timed with one protocol.
    """
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    for other in runs:
        if other.kind != "probe":
            raise LatencyTableError(
                f"{other.path}: only a probe's results can be combined (several runs of run_bundle.py on one probe); "
                "give a validate --report alone")
    for other in runs[1:]:
        if (other.probe_id, other.archs) != (first.probe_id, first.archs):
            raise LatencyTableError(f"{other.path}: results of probe {other.probe_id}, but {first.path} holds probe "
                                    f"{first.probe_id}: combine runs of one probe only")
        changed = sorted(k for k in set(first.settings) | set(other.settings)
                         if first.settings.get(k) != other.settings.get(k))
        if changed:
            raise LatencyTableError(f"{other.path}: timed with other settings than {first.path} ({', '.join(changed)}): "
                                    "combine runs of one protocol only")
    for i, other in enumerate(runs):
        for earlier in runs[:i]:
            if other.ms == earlier.ms:
                raise LatencyTableError(
                    f"{other.path} and {earlier.path} hold the same times, network for network: one run given "
                    "twice (or a folder copied with its results.json, where run_bundle.py had nothing left to "
                    "time); time the probe again in a fresh copy of it (extract the archive anew)")
    ms = np.median(np.array([r.ms for r in runs]), axis=0)
    return replace(
        first, path=" + ".join(r.path for r in runs), runs=tuple(r.path for r in runs),
        ms=tuple(float(v) for v in ms),
        overhead_ms=float(np.median([r.overhead_ms for r in runs])),
        canary_ms=float(np.median([r.canary_ms for r in runs])),
        disturbed_chunks=sum(r.disturbed_chunks for r in runs),
    )


def _perf_test_probe(folder: Path) -> dict[str, Any]:
    """A probe's ``results.json``-like mapping from its ``perf_test/`` logs (``run_perf_test_adb.sh``)."""
    manifest = read_json(folder / "manifest.json", _HINT)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("probe"), dict):
        raise LatencyTableError(f"{folder}/manifest.json is not a probe's manifest: give --measurements the "
                                "folder of a probe made by python -m nas.latency probe")
    check_manifest(manifest, folder / "manifest.json", perf_test=True)  # what the logs are read through
    data = perf_test_results(folder, manifest)
    data["probe"] = manifest["probe"]
    data["disturbed_chunks"] = 0
    return data


def _read_probe(path: Path, data: dict[str, Any], probe: dict[str, Any] | None) -> Measurements:
    p = Problems(path, _HINT, "not usable measurements")
    meta = p.get(data, "probe", "", "object", default={})
    if meta.get("format") != PROBE_FORMAT:
        p.add("probe.format", f"expected {PROBE_FORMAT!r}, got {short(meta.get('format'))}")
        p.raise_if_any()
    space = p.get(meta, "space", "probe", "object", default={})
    name, digest = p.get(space, "name", "probe.space", "key"), p.get(space, "digest", "probe.space", "key")
    num_classes = p.get(meta, "num_classes", "probe", "pos_int", default=1)
    listed = p.get(meta, "networks", "probe", "list", default=[])
    p.raise_if_any()
    keys, archs = [], []
    for i, n in enumerate(listed):
        if not isinstance(n, dict) or not isinstance(n.get("key"), str) or not isinstance(n.get("arch"), str):
            p.add(f"probe.networks[{i}]", f"must be an object with key and arch strings, got {short(n)}")
            continue
        keys.append(n["key"])
        archs.append(n["arch"])
    p.raise_if_any()
    pid = p.get(meta, "id", "probe", "key")
    if pid is not None and pid != probe_id(name, digest, num_classes, archs):
        p.add("probe.id", "does not match the networks listed: the file was edited or mixes two probes")
    if probe is not None:
        want = (probe.get("probe") or {}).get("id")
        if want != pid:
            raise LatencyTableError(
                f"{path}: measurements of probe {pid}, but --probe is probe {want}: these are the results of "
                "another probe; measure this probe's networks (run_bundle.py in its folder)")
    results = p.get(data, "results", "", "object", default={})
    missing = [k for k in keys if k not in results]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        p.add("results", f"{len(missing)} of the probe's {len(keys)} networks were not measured ({shown}): the run "
                         "was interrupted; run run_bundle.py again in the probe folder to finish it")
    extra = sorted(set(results) - set(keys))
    if extra:
        p.add("results", f"networks not in the probe: {extra[:5]} (results of another probe merged in?)")
    ms = []
    for k in keys:
        if k in results:
            row = results[k]
            value = row.get("ms") if isinstance(row, dict) else row
            ms.append(_finite_ms(p, f"results.{k}.ms", value))
    overhead = p.get(data, "overhead_ms", "", "ms0", default=0.0)
    settings = p.get(data, "settings", "", "object", default={})
    _check_settings(p, settings)
    info = p.get(data, "device_info", "", "object", required=False, default={})
    p.raise_if_any()
    return Measurements(
        path=str(path), kind="probe", space=name, space_digest=digest, num_classes=num_classes, archs=tuple(archs),
        ms=tuple(ms), overhead_ms=float(overhead), settings=settings,
        cpu=str(info.get("cpu_model") or info.get("cpu") or "unknown"),
        runtime_version=str(info.get("onnxruntime", "unknown")), canary_ms=float(data.get("canary_ms") or 0.0),
        probe_id=pid, disturbed_chunks=int(data.get("disturbed_chunks") or 0),
    )  # fmt: skip


def _read_validation(path: Path, data: dict[str, Any]) -> Measurements:
    p = Problems(path, "re-run python -m nas.latency validate --report FILE", "not usable measurements")
    name = p.get(data, "space", "", "key")
    digest = p.get(data, "space_digest", "", "key")
    num_classes = p.get(data, "num_classes", "", "pos_int", default=1)
    settings = p.get(data, "settings", "", "object", default={})
    _check_settings(p, settings)
    overhead = p.get(data, "overhead_ms", "", "ms0", default=0.0)
    subnets = p.get(data, "subnets", "", "list", default=[])
    archs, ms = [], []
    for i, s in enumerate(subnets):
        if not isinstance(s, dict) or not isinstance(s.get("arch"), str):
            p.add(f"subnets[{i}]", f"must be an object with an arch string, got {short(s)}")
            continue
        archs.append(s["arch"])
        ms.append(_finite_ms(p, f"subnets[{i}].measured_ms", s.get("measured_ms")))
    p.raise_if_any()
    return Measurements(
        path=str(path), kind="validation", space=name, space_digest=digest, num_classes=num_classes,
        archs=tuple(archs), ms=tuple(ms), overhead_ms=float(overhead), settings=settings,
        cpu=str(data.get("cpu") or "unknown"), runtime_version=str(data.get("runtime_version") or "unknown"),
        canary_ms=float(settings.get("canary_ms") or 0.0), device=str(data.get("device") or ""),
        disturbed_chunks=int(settings.get("disturbed_chunks") or 0),
    )  # fmt: skip


# -- the fit -----------------------------------------------------------------------------------------
def network_features(base: LatencyTable, layers: Sequence[LayerSpec]) -> np.ndarray:
    """The sum over a network's layers of their :data:`FEATURES` on ``base``."""
    return sum(layer_features(layer, base.in_network_ms(layer)) for layer in layers)


def _solve(rows: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """NNLS on relative error: ``min sum ((rows . theta - ms) / ms)^2``, ``theta >= 0``."""
    a = rows / ms[:, None]
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    return nnls(a / scale, np.ones(len(ms))) / scale


@dataclass(frozen=True)
class FewShotFit:
    """The chosen model, its coefficients, and every candidate's in-sample and leave-one-out error."""

    model: str
    terms: tuple[str, ...]
    theta: tuple[float, ...]
    networks: int
    overhead_ms: float
    cv: dict[str, float]
    in_sample: dict[str, float]
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_cv: dict[str, float] = field(default_factory=dict)  # the base table as it is (no fit)

    def coefficients(self) -> dict[str, float]:
        return dict(zip(self.terms, self.theta))

    def full_theta(self) -> np.ndarray:
        theta = np.zeros(len(FEATURES))
        for name, value in zip(self.terms, self.theta):
            theta[FEATURES.index(name)] = value
        return theta


def min_networks(model: str) -> int:
    """Measured networks a model needs (``auto``: the simplest model's)."""
    return min(min_networks(m) for m in MODELS) if model == "auto" else len(MODELS[model]) + EXTRA_NETWORKS


def fit_fewshot(rows: np.ndarray, ms: np.ndarray, overhead_ms: float, *, model: str = "auto") -> FewShotFit:
    """Fit ``model`` (or choose one: ``auto``) on network feature ``rows`` and measured ``ms``.

    Raises:
        ValueError: an unknown model, or too few networks for the model's terms.
    """
    n = len(ms)
    if model != "auto" and model not in MODELS:
        raise ValueError(f"model must be 'auto' or one of {sorted(MODELS)}, got {model!r}")
    if model == "auto":
        names = [m for m in MODELS if n >= min_networks(m)]
        if not names:
            raise ValueError(f"{n} measured networks are too few for any model: the simplest ('scale', "
                             f"{len(MODELS['scale'])} term) needs {min_networks('scale')}")
    else:
        if n < min_networks(model):
            raise ValueError(f"{n} measured networks are too few for model {model!r} ({len(MODELS[model])} terms: "
                             f"it needs at least {min_networks(model)}); measure a probe with more --networks "
                             f"or choose a simpler --model ({', '.join(m for m in MODELS if n >= min_networks(m)) or 'none fits'})")
        names = [model]
    y = ms - overhead_ms
    if (y <= 0).any():
        raise ValueError("a measured network is not slower than the per-call overhead: the measurements are broken")
    base = np.full(n, overhead_ms)
    best, candidates = fit_nested(names, MODELS, FEATURES, rows, base, ms, lambda name, x, y, keep: _solve(x, y))
    c = candidates[best]
    base_pred = rows[:, FEATURES.index("host_ms")] + overhead_ms
    return FewShotFit(
        model=best, terms=MODELS[best], theta=tuple(float(t) for t in c["theta"]), networks=n, overhead_ms=overhead_ms,
        cv=c["cv"], in_sample=c["in_sample"],
        candidates={k: {"cv": v["cv"], "in_sample": v["in_sample"],
                        "theta": dict(zip(MODELS[k], (float(t) for t in v["theta"])))} for k, v in candidates.items()},
        base_cv=errors(base_pred, ms),
    )  # fmt: skip


def fit_warning(fit: FewShotFit) -> str | None:
    """Why the new table is probably off (its fit's own leave-one-out error), or None."""
    median = fit.cv["median_abs_error_pct"]
    if fit.networks < CHECKED_NETWORKS:
        return (f"note: {fit.networks} networks give only a rough leave-one-out estimate; measure {CHECKED_NETWORKS} "
                f"or more to have the fit checked, and validate the table on the device")
    if median <= NOISY_CV_PCT:
        return None
    return (f"warning: leave-one-out median |error| {median:.1f}% > {NOISY_CV_PCT:g}% on the measured networks: the "
            f"new table is probably off by about as much. The usual cause is a busy device while the probe ran "
            f"(time it again with nothing else running); otherwise the base table is too unlike the device "
            f"(another precision or kind of CPU): start from a closer one")


def precision_warning(base_device: str, base_precision: str, measured_precision: str) -> str | None:
    """A warning when a few-shot fit maps a table of one precision onto networks timed in another."""
    if base_precision == measured_precision:
        return None
    hint = (" start from an int8 table of any CPU instead (e.g. --base-table intel_xeon_avx512_2c_int8): measured "
            "from a float table, int8 few-shot tables were 4-9% off, from an int8 one 2.6-3.8% on a quiet machine "
            "(benchmarks/LATENCY.md, 'Both passes as samples')" if measured_precision == "int8" else "")
    return (f"warning: the base table {base_device!r} is {base_precision} but the networks are timed in "
            f"{measured_precision}: which operators get faster or slower is not a function of the base "
            f"table's times;{hint or ' start from a table of the same precision if there is one'}")


# -- the table ---------------------------------------------------------------------------------------
def _space_of(ref_name: str, digest: str, spaces: Sequence[SearchSpace], what: str) -> SearchSpace:
    for s in spaces:
        if s.digest == digest:
            return s
    try:
        shipped = load_space(ref_name)
    except Exception:  # noqa: BLE001 - a custom space: the user must pass its file
        shipped = None
    if shipped is not None and shipped.digest == digest:
        return shipped
    raise LatencyTableError(
        f"{what} is for space {ref_name!r} (digest {digest}), which is neither a shipped space with that digest "
        f"nor one given with --space: pass its YAML file with --space")


def table_layers(base: LatencyTable, spaces: Sequence[SearchSpace] = ()) -> dict[str, LayerSpec]:
    """Walker layers of ``base``'s keys, regenerated from the spaces (and references) it covers."""
    layers: dict[str, LayerSpec] = {}
    for ref in base.header.spaces:
        space = _space_of(ref.name, ref.digest, spaces, f"table {base.device!r}")
        layers.update(space_layers(space, base.header.num_classes or (1000,)))
    if base.header.references:
        layers.update(reference_layers())
    return {k: v for k, v in layers.items() if k in base}


def _file_names(meas: Measurements) -> str:
    """The measurements' file name, or ``folder/name`` of each of several combined runs."""
    if not meas.runs:
        return Path(meas.path).name
    return " + ".join(f"{Path(f).parent.name}/{Path(f).name}" for f in meas.runs)


def calibrate_table(
    base: LatencyTable,
    meas: Measurements,
    *,
    name: str,
    model: str = "auto",
    spaces: Sequence[SearchSpace] = (),
    description: str = "",
) -> tuple[LatencyTable, FewShotFit]:
    """The table of the device ``meas`` was measured on: ``base`` mapped through the fitted model.

    Raises:
        LatencyTableError: the base table does not cover the measured networks' space.
        ValueError: too few networks for the model, or an invalid name.
    """
    check_device_name(name)
    if not base.header.covers(meas.space_digest):
        covered = ", ".join(f"{s.name} ({s.digest})" for s in base.header.spaces) or "no space"
        raise LatencyTableError(
            f"the base table {base.device!r} covers {covered}, not the measured networks' space {meas.space!r} "
            f"(digest {meas.space_digest}): make the probe for a space the table covers, or build the table for it")
    slow = [(a, m) for a, m in zip(meas.archs, meas.ms) if m <= meas.overhead_ms]
    if slow:
        raise LatencyTableError(
            f"{meas.path}: {len(slow)} network(s) timed at or below the per-call overhead of {meas.overhead_ms:g} ms "
            f"(first: {slow[0][1]:g} ms for {slow[0][0]}): a network cannot run faster than an empty call, so the "
            "file's times or overhead_ms are broken; measure the probe again")
    space = _space_of(meas.space, meas.space_digest, spaces, f"{meas.path}")
    nets = [walk(space.resolve(Arch.from_string(a), num_classes=meas.num_classes)) for a in meas.archs]
    rows = np.stack([network_features(base, layers) for layers in nets])
    ms = np.asarray(meas.ms)
    fit = fit_fewshot(rows, ms, meas.overhead_ms, model=model)
    theta = fit.full_theta()
    layers = table_layers(base, spaces)
    entries = {k: Entry(round(meas.overhead_ms + float(layer_features(l, base.in_network_ms(l)) @ theta), 6))
               for k, l in layers.items()}
    dropped = len(base) - len(entries)
    s = meas.settings
    h = base.header
    what = ("a residual correction of the table on its own device" if meas.kind == "validation"
            else f"{len(meas)} whole networks of a probe measured on the device")
    header = replace(
        h,
        device=name,
        description=description or f"calibrated from {h.device} and {what} ({meas.cpu})",
        method="calibrated",
        runtime_version=meas.runtime_version if meas.runtime_version != "unknown" else h.runtime_version,
        execution_provider=s.get("provider", h.execution_provider),
        intra_op_threads=int(s.get("intra_op_threads", h.intra_op_threads)),
        inter_op_threads=int(s.get("inter_op_threads", h.inter_op_threads)),
        graph_optimization=s.get("graph_optimization", h.graph_optimization),
        warmup=int(s.get("warmup", h.warmup)),
        rounds=int(s.get("rounds", h.rounds)),
        repeats=int(s.get("repeats", h.repeats)),
        overhead_ms=meas.overhead_ms,
        precision=s.get("precision", "fp32"),
        spinning=spinning_of(s) if "spinning" in s or "intra_op_threads" in s else h.spinning,
        cpu=meas.cpu,
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        layer_correction_ms=0.0,
        composition=None,
        canary_ms=meas.canary_ms,
        canary_key=canary_layer().key if meas.canary_ms else "",
        retried_chunks=0,
        disturbed_chunks=meas.disturbed_chunks,
        n_entries=len(entries),
        calibration={
            "method": "few-shot" if meas.kind == "probe" else "residual",
            "base_table": {"device": h.device, "method": h.method, "cpu": h.cpu, "date": h.date},
            "measurements": {"kind": meas.kind, "file": _file_names(meas), "runs": max(1, len(meas.runs)),
                             "probe_id": meas.probe_id, "space": meas.space, "networks": len(meas), "cpu": meas.cpu},
            "model": fit.model,
            "formula": "ms(layer) = overhead_ms + theta . features(layer) (NNLS on relative error, theta >= 0)",
            "coefficients": fit.coefficients(),
            "cross_validation": {"method": "leave-one-out"} | fit.cv,
            "in_sample": fit.in_sample,
            "base_table_error": fit.base_cv,
            "candidates": fit.candidates,
        },
        notes=(f"{dropped} keys of {h.device} that its spaces no longer produce were left out; " if dropped else "")
        + "calibrated table: per-key values are the model's, fitted on whole networks; validate it on the device",
    )
    return LatencyTable(header, entries), fit


def write_report(path: str | Path, fit: FewShotFit, meas: Measurements) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"measurements": meas.path, "networks": len(meas), "model": fit.model,
                                      "coefficients": fit.coefficients(), "cross_validation": fit.cv,
                                      "in_sample": fit.in_sample, "base_table_error": fit.base_cv,
                                      "candidates": fit.candidates}, indent=1) + "\n")
