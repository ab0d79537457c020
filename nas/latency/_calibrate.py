"""``pixel_cpu``: a phone table *estimated* from host measurements and published Pixel-1 data.

No phone is at hand, so each key's Pixel-1 latency is predicted from what we know about the layer:

    phone_ms(layer) = theta . features(layer),   theta >= 0 except for h-swish

with features ``host_ms`` (the layer's measured ONNX Runtime time here, net of the per-call
overhead), dense and depthwise multiply-adds, squeeze-excitation work, elements written, h-swish
elements, and a per-layer constant. ``theta`` is fitted by non-negative least squares on relative
error to two kinds of published data (``nas/latency/reference/``, with their sources):

* the ProxylessNAS per-block Pixel-1 table (72 layers at 224 px: kernels 3/5/7, expansions 3/6,
  ReLU6, no SE) - each row is one layer;
* end-to-end float32 latencies of MobileNetV2 (5 widths x 5 resolutions + 2), MnasNet-A1 (5 x 5)
  and MobileNetV3 (the float rows) - each row is the sum over the network's layers.

The uint8 MobileNetV3 rows measure a quantised network: they are never fitted, only reported.
A single global scale (``phone = s * host``) is the baseline the fit has to beat on held-out rows.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.blocks import BneckSpec, block_kinds, kind_named, kind_of
from nas._yaml import load_yaml_file
from nas.cost import layer_cost
from nas.latency._composition import written_melems
from nas.latency._coverage import layers_of, minimalistic_spec, proxyless_lut_specs, reference_layers, space_layers
from nas.latency._table import Entry, LatencyTable, LatencyTableError, SpaceRef
from nas.nn import get_preset
from nas.shapes import LayerSpec, walk
from nas.space import load_space

__all__ = [
    "FEATURES",
    "Observation",
    "default_reference_dir",
    "load_observations",
    "layer_features",
    "nnls",
    "fit_linear",
    "predict_linear",
    "fit_scale",
    "split_holdout",
    "calibrate_pixel",
]

FEATURES = (
    "host_ms",
    "dense_mmacs",
    "depthwise_mmacs",
    "se_melems",
    "written_melems",
    "hswish_melems",
    "layer",
)

#: Total weight of each family of rows in the fit. MobileNetV3 - the layout of the search spaces,
#: and the only rows with SE and h-swish - weighs the most.
FAMILY_WEIGHTS = {"proxyless": 1.0, "mobilenetv2": 1.0, "mnasnet": 1.0, "mobilenetv3": 1.0}

#: Features whose coefficient may be negative. h-swish is one fused, cheap op in TFLite but a
#: separate element-wise pass in ONNX Runtime on x86, so part of the host time it brings in through
#: ``host_ms`` must be taken back out. Every other coefficient is >= 0.
SIGNED = ("hswish_melems",)

_LUT_FILE = "pixel1_proxylessnas_block_lut.yaml"
_CSV_FILE = "pixel1_published_latency.csv"
_CSV_MODELS = {"mnv2": "mobilenetv2", "mnasnet_a1": "mnasnet_a1", "mnv3_large": "mobilenetv3_large", "mnv3_small": "mobilenetv3_small"}


def default_reference_dir() -> Path:
    """``nas/latency/reference/``: the published data, shipped with the package (see its README)."""
    return Path(__file__).resolve().parent / "reference"


@dataclass(frozen=True)
class Observation:
    """One published latency: a single layer (block table) or a whole network (end-to-end row)."""

    name: str
    family: str  # proxyless_lut | mobilenetv2 | mnasnet_a1 | mobilenetv3_large | mobilenetv3_small
    kind: str  # layer | network
    precision: str  # float | uint8
    layers: tuple[LayerSpec, ...]
    ms: float
    resolution: int = 224
    width: float = 1.0


# -- published data ----------------------------------------------------------------------------------
_LUT_RE = re.compile(
    r"^expanded_conv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)-expand:(\d+)-kernel:(\d+)"
    r"-stride:(\d+)-idskip:([01])$"
)


def _lut_key(name: str) -> str:
    """ProxylessNAS key -> our walker key (ReLU6, no SE, as that network is built)."""
    m = re.match(r"^Conv-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)$", name)
    if m:
        h, w, c, ho, wo, co = map(int, m.groups())
        return f"stem-i{c}x{h}x{w}-o{co}x{ho}x{wo}-k3-s2-relu6"
    m = re.match(r"^Conv_1-input:(\d+)x(\d+)x(\d+)-output:(\d+)x(\d+)x(\d+)$", name)
    if m:
        h, w, c, ho, wo, co = map(int, m.groups())
        return f"final_conv-i{c}x{h}x{w}-o{co}x{ho}x{wo}-relu6"
    m = re.match(r"^Logits-input:(\d+)x(\d+)x(\d+)-output:(\d+)$", name)
    if m:
        h, w, c, n = map(int, m.groups())
        return f"classifier-i{c}x{h}x{w}-o{n}x1x1-h0-"
    m = _LUT_RE.match(name)
    if not m:
        raise ValueError(f"{_LUT_FILE}: unrecognised key {name!r}")
    h, w, c, ho, wo, co, e, k, s, r = map(int, m.groups())
    # the key the shape walker gives this block (its kind formats it), checked against the name
    layer = kind_of(spec := BneckSpec(c, c * e, co, k, s, 0, "relu6")).layer(spec, (c, h, w), -1)
    if layer.out_shape != (co, ho, wo) or layer.residual != bool(r):
        raise ValueError(f"{_LUT_FILE}: key {name!r} does not describe a bneck block (output or residual flag)")
    return layer.key


def load_observations(ref_dir: str | Path) -> list[Observation]:
    """Read both published files into observations over walker layers."""
    ref_dir = Path(ref_dir)
    lut_path, csv_path = ref_dir / _LUT_FILE, ref_dir / _CSV_FILE
    for p in (lut_path, csv_path):
        if not p.is_file():
            raise FileNotFoundError(f"published reference data not found: {p} (the package ships it in "
                                    f"{default_reference_dir()})")
    obs: list[Observation] = []
    lut_layers = layers_of(proxyless_lut_specs())
    lut = load_yaml_file(lut_path)  # ConfigError naming the file when it is not clean YAML
    if not isinstance(lut, dict):
        raise ValueError(f"{lut_path}: expected a mapping of key -> {{mean, var, count}}")
    for name, row in lut.items():
        key = _lut_key(name)
        if key not in lut_layers:
            raise ValueError(f"{lut_path}: {name!r} maps to {key!r}, which no ProxylessNAS layer produces")
        obs.append(Observation(name, "proxyless_lut", "layer", "float", (lut_layers[key],), float(row["mean"])))
    with csv_path.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for row in rows:
        model = row["model"]
        base, _, width = model.rpartition("_")
        res = int(row["resolution"])
        minimal = base.endswith("_minimalistic")
        base = base.removesuffix("_minimalistic")
        if base not in _CSV_MODELS:
            raise ValueError(f"{csv_path}: unknown model {model!r}")
        family = _CSV_MODELS[base]
        if minimal:
            spec = minimalistic_spec(family.split("_")[1], num_classes=1000, resolution=res)
        else:
            spec = get_preset(f"{family}_{width}", num_classes=1000, resolution=res)
        precision = row["precision"].strip()
        obs.append(
            Observation(
                f"{model}@{res}" + ("" if precision == "float" else f"/{precision}"),
                family, "network", precision, tuple(walk(spec)), float(row["pixel1_ms"]), res, float(width),
            )  # fmt: skip
        )
    return obs


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# -- features ----------------------------------------------------------------------------------------
def layer_features(layer: LayerSpec, host_ms: float) -> np.ndarray:
    """The feature vector of :data:`FEATURES` for one layer (host_ms already net of overhead)."""
    ci, hi, wi = layer.in_shape
    co, ho, wo = layer.out_shape
    lc = layer_cost(layer)
    dense = dw = se = hsw = 0.0
    if layer.kind in block_kinds():  # a block: its kind counts its work by operation class
        ops = kind_named(layer.kind).op_counts(layer)
        dense, dw, se, hsw = ops.dense_madds, ops.depthwise_madds, ops.se_work, ops.hswish_elements
    else:
        dense = lc.madds
        if layer.act == "hswish":
            hsw = co * ho * wo
        if layer.hidden_act == "hswish":
            hsw += layer.hidden
    return np.array([host_ms, dense / 1e6, dw / 1e6, se / 1e6, written_melems(layer), hsw / 1e6, 1.0])


def _row(obs: Observation, host: LatencyTable) -> np.ndarray:
    return sum(layer_features(l, host.in_network_ms(l)) for l in obs.layers)


def _host_pred(obs: Observation, host: LatencyTable) -> float:
    return host.predict_layers(obs.layers)


# -- fitting -----------------------------------------------------------------------------------------
def nnls(a: np.ndarray, b: np.ndarray, tol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """Non-negative least squares ``min ||a x - b||, x >= 0`` (Lawson-Hanson active set)."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    for _ in range(max_iter):
        if passive.all() or w[~passive].max() <= tol:
            break
        j = int(np.argmax(np.where(passive, -np.inf, w)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                break
            bad = passive & (z <= tol)
            alpha = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        x = z
        w = a.T @ (b - a @ x)
    return x


def fit_linear(obs: Sequence[Observation], host: LatencyTable, iterations: int = 30) -> tuple[np.ndarray, float]:
    """``(theta >= 0, lut_scale)`` minimising the squared *relative* error over ``obs``.

    The block table was measured one block at a time, which on the phone costs more than the same
    block inside a network (the sum of its blocks over-predicts a whole network by ~1.3x), so its
    rows get their own factor ``lut_scale``: ``lut_ms ~ lut_scale * theta . features``. Fitted by
    alternating NNLS for theta and the closed form for the factor.
    """
    # every family weighs the same in total: the four MobileNetV3 rows (the layout of our spaces)
    # count as much as the 25 MnasNet rows or the 72 block-table rows
    fam = [o.family.split("_")[0] for o in obs]
    weight = np.sqrt(np.array([FAMILY_WEIGHTS.get(f, 1.0) / fam.count(f) for f in fam]))
    rows = np.stack([_row(o, host) / o.ms for o in obs]) * weight[:, None]
    signed = [FEATURES.index(f) for f in SIGNED]
    rows = np.concatenate([rows, -rows[:, signed]], axis=1)  # x = x+ - x- for the signed ones
    is_lut = np.array([o.family == "proxyless_lut" for o in obs])
    scale = np.maximum(np.abs(rows).max(axis=0), 1e-12)  # column scaling for conditioning
    lut_scale = 1.0
    theta = np.zeros(rows.shape[1])
    for _ in range(iterations if is_lut.any() and (~is_lut).any() else 1):
        a = rows * np.where(is_lut, lut_scale, 1.0)[:, None]
        theta = nnls(a / scale, weight) / scale
        if is_lut.any() and (~is_lut).any():
            p = rows[is_lut] @ theta / weight[is_lut]
            lut_scale = float(p.sum() / (p * p).sum())
    n = len(FEATURES)
    out = theta[:n].copy()
    out[signed] -= theta[n:]
    return out, lut_scale


def fit_scale(obs: Sequence[Observation], host: LatencyTable) -> float:
    """The baseline: one factor ``s`` with ``phone = s * host`` (least squares on relative error),
    fitted on the whole-network rows."""
    r = np.array([_host_pred(o, host) / o.ms for o in obs if o.kind == "network"])
    return float(r.sum() / (r * r).sum())


def predict_linear(o: Observation, host: LatencyTable, theta: np.ndarray) -> float:
    return float(_row(o, host) @ theta)


def split_holdout(obs: Sequence[Observation]) -> tuple[list[Observation], list[Observation]]:
    """Fixed split of the float rows. Held out (never fitted): every network row at width 0.75 or
    at 160 px (interpolation in both axes) and MobileNetV3-Small 0.75 (SE + h-swish); fitted: the
    block table and every other float row. uint8 rows are in neither."""
    fit, held = [], []
    for o in obs:
        if o.precision != "float":
            continue
        if o.kind == "network" and (o.width == 0.75 and o.family != "mobilenetv3_large" or o.resolution == 160):
            held.append(o)
        else:
            fit.append(o)
    return fit, held


def _errors(pred: Sequence[float], obs: Sequence[Observation]) -> dict[str, Any]:
    e = np.array([100 * (p - o.ms) / o.ms for p, o in zip(pred, obs)])
    return {
        "rows": len(obs),
        "median_abs_error_pct": round(float(np.median(np.abs(e))), 2),
        "mean_abs_error_pct": round(float(np.mean(np.abs(e))), 2),
        "max_abs_error_pct": round(float(np.max(np.abs(e))), 2),
    }


def _evaluate(fit: list[Observation], test: list[Observation], host: LatencyTable) -> dict[str, Any]:
    theta, _ = fit_linear(fit, host)
    s = fit_scale(fit, host)
    return {
        "calibrated": _errors([predict_linear(o, host, theta) for o in test], test),
        "global_scale": _errors([s * _host_pred(o, host) for o in test], test),
        "rows": {
            o.name: {
                "published_ms": o.ms,
                "calibrated_ms": round(predict_linear(o, host, theta), 2),
                "global_scale_ms": round(s * _host_pred(o, host), 2),
            }
            for o in test
            if o.kind == "network"
        },
    }


def _host_layers(host: LatencyTable) -> dict[str, LayerSpec]:
    """LayerSpecs of the host table's keys, regenerated with the walker from what it covers."""
    layers: dict[str, LayerSpec] = {}
    for ref in host.header.spaces:
        space = load_space(ref.name)
        if space.digest != ref.digest:
            raise LatencyTableError(
                f"host table {host.device!r} covers space {ref.name!r} digest {ref.digest}, but the "
                f"shipped {ref.name} now has digest {space.digest}; rebuild the host table first"
            )
        layers.update(space_layers(space, host.header.num_classes or (1000,)))
    layers.update(reference_layers())
    return {k: v for k, v in layers.items() if k in host}


def calibrate_pixel(
    ref_dir: str | Path, *, host: LatencyTable | None = None, device: str = "pixel_cpu"
) -> tuple[LatencyTable, dict[str, Any]]:
    """Fit the phone model and return ``(estimated table, report)``.

    Args:
        ref_dir: folder holding the published files.
        host: a *measured* table covering the reference networks (default: this machine's).
        device: name of the estimated table.
    """
    if host is None:
        from nas.latency._predict import load_table

        host = load_table("host")
    if host.header.method != "measured":
        raise LatencyTableError(f"calibration needs a measured host table, {host.device!r} is {host.header.method}")
    ref_dir = Path(ref_dir)
    obs = load_observations(ref_dir)
    floats = [o for o in obs if o.precision == "float"]
    nets = [o for o in floats if o.kind == "network"]
    fit, held = split_holdout(obs)

    report: dict[str, Any] = {"features": list(FEATURES)}
    report["holdout"] = _evaluate(fit, held, host)
    report["holdout"]["split"] = split_holdout.__doc__.split("Held out", 1)[1].strip()
    families = ("mobilenetv2", "mnasnet_a1", "mobilenetv3")
    report["leave_one_family_out"] = {
        fam: {k: v for k, v in _evaluate(
            [o for o in floats if not o.family.startswith(fam)], [o for o in floats if o.family.startswith(fam)], host
        ).items() if k != "rows"}  # fmt: skip
        for fam in families
    }
    theta, lut_scale = fit_linear(floats, host)  # the shipped table: every float row
    s = fit_scale(floats, host)
    report["final_fit"] = {
        "rows": len(floats),
        "theta": {f: float(t) for f, t in zip(FEATURES, theta)},
        "lut_scale": lut_scale,
        "global_scale": s,
        "in_sample": _errors([predict_linear(o, host, theta) for o in nets], nets),
    }
    quant = [o for o in obs if o.precision != "float"]
    report["uint8_rows_not_fitted"] = {
        o.name: {"published_uint8_ms": o.ms, "predicted_float_ms": round(predict_linear(o, host, theta), 2)}
        for o in quant
    }

    entries = {}
    for key, layer in _host_layers(host).items():
        ms = float(layer_features(layer, host.in_network_ms(layer)) @ theta)
        entries[key] = Entry(max(ms, 1e-4))
    h = host.header
    header = replace(
        h,
        device=device,
        description=(
            "Google Pixel 1, one big core, TFLite float32 - ESTIMATE: host ONNX Runtime measurements "
            f"({h.device}) calibrated to published Pixel-1 latencies; replace with a measured table"
        ),
        method="estimated",
        overhead_ms=0.0,
        layer_correction_ms=0.0,
        composition=None,
        canary_ms=0.0,
        retried_chunks=0,
        date=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        spaces=tuple(SpaceRef(s.name, s.digest) for s in h.spaces),
        n_entries=len(entries),
        complete=True,
        calibration={
            "target": "Pixel 1 (Snapdragon 821, one big core), TFLite float32, batch 1 - as published",
            "source_table": {"device": h.device, "cpu": h.cpu, "date": h.date},
            "reference": {_LUT_FILE: _sha256(ref_dir / _LUT_FILE), _CSV_FILE: _sha256(ref_dir / _CSV_FILE)},
            "model": "phone_ms(layer) = theta . features(layer), theta >= 0 except h-swish (NNLS on relative error)",
            "features": list(FEATURES),
            "theta": [float(t) for t in theta],
            "fit_rows": len(floats),
            "holdout": {k: report["holdout"][k] for k in ("calibrated", "global_scale")},
        },
        notes=(
            "estimated table: per-key values are model outputs, not measurements; network latency is "
            "the plain sum (overhead_ms = 0). Block layers of every kind map onto the same features through "
            "their kind's operation counts: a UIB's 1x1 expansion and projection are dense multiply-adds, its "
            "start and mid depthwise convs depthwise multiply-adds, its SE and h-swish work as a bneck's; a "
            "conv block's multiply-adds are dense. The published rows hold no UIB block, so UIB keys rest on "
            "that mapping and on the host time of the layer"
        ),
    )
    return LatencyTable(header, entries), report
