"""Composition: what a layer costs inside a whole network, from what it costs timed alone.

A table's entries time each layer alone, called over and over: its weights and activations stay in
the caches, and ONNX Runtime allocates its input and output at every call. Inside a network neither
holds. The composition model corrects each layer's time (net of the per-call overhead, ``raw``)::

    in_network_ms(layer) = raw + layer + host_ms * raw + written_melems * written(layer)

with three terms fitted on whole subnets timed on the same machine (:func:`fit_terms`):

* ``layer``: a constant per layer (any sign: alone, a layer also pays for its own input/output
  allocation, which a network does not);
* ``host_ms``: a relative change of the layer's own time (>= -0.5: a layer never gets more than
  twice as fast inside a network);
* ``written_melems``: milliseconds per million activation elements the layer writes (>= 0: colder
  caches cost in proportion to the traffic).

Nested candidates (``constant``: the first term; ``affine``: the first two; ``traffic``: all three)
are fitted by bounded least squares on the relative error, each search space weighing the same,
and the one with the lowest leave-one-out mean error is kept (a bigger model must beat a smaller
one by 0.1 points). Subnets of *every* space the table covers take part: a constant fitted on 224 px
subnets alone over-predicted 32 px subnets, whose layers take a few microseconds, by 1.3-1.7x.

Tables written before this model hold one constant, ``layer_correction_ms``, and no ``terms``:
they predict as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nas.cost import layer_cost
from nas.shapes import LayerSpec

__all__ = ["TERMS", "MODELS", "BOUNDS", "check_terms", "composition_features", "correction_ms", "fit_terms",
           "fit_nested", "errors", "written_melems"]

#: The composition terms, in the order of :func:`composition_features`.
TERMS = ("layer", "host_ms", "written_melems")

#: Nested candidate models (names of :data:`TERMS`).
MODELS: dict[str, tuple[str, ...]] = {
    "constant": ("layer",),
    "affine": ("layer", "host_ms"),
    "traffic": TERMS,
}

#: Allowed range of each term.
BOUNDS: dict[str, tuple[float, float]] = {
    "layer": (-math.inf, math.inf),
    "host_ms": (-0.5, math.inf),
    "written_melems": (0.0, math.inf),
}

#: A candidate with p terms is only fitted on at least p + this many subnets.
EXTRA_SUBNETS = 3


def check_terms(terms: Any) -> list[str]:
    """Problems of a header's ``composition.terms`` mapping (empty: it is valid)."""
    if not isinstance(terms, Mapping):
        return [f"composition.terms: must be a mapping of {', '.join(TERMS)} to numbers, got {terms!r}"]
    problems = []
    unknown = sorted(set(terms) - set(TERMS))
    if unknown:
        problems.append(f"composition.terms: unknown term(s) {unknown}; known: {', '.join(TERMS)}")
    for name in TERMS:
        if name not in terms:
            continue
        value = terms[name]
        lo, hi = BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"composition.terms.{name}: must be a finite number, got {value!r}")
        elif not lo <= value <= hi:
            problems.append(f"composition.terms.{name}: {value!r} is outside its allowed range [{lo}, {hi}]")
    return problems


def written_melems(layer: LayerSpec) -> float:
    """Million activation elements ``layer`` writes (float32: its activation bytes / 4)."""
    return layer_cost(layer).activation_bytes / 4 / 1e6


def composition_features(layer: LayerSpec, raw_ms: float) -> np.ndarray:
    """The per-layer features of :data:`TERMS`: 1, the layer's raw time, its written Melements."""
    return np.array([1.0, raw_ms, written_melems(layer)])


def correction_ms(terms: Mapping[str, float], layer: LayerSpec, raw_ms: float) -> float:
    """What ``layer`` costs inside a network beyond ``raw_ms`` (its time alone net of overhead)."""
    out = terms.get("layer", 0.0) + terms.get("host_ms", 0.0) * raw_ms
    per_melem = terms.get("written_melems", 0.0)
    return out + per_melem * written_melems(layer) if per_melem else out


def errors(pred: np.ndarray, ms: np.ndarray) -> dict[str, float]:
    """Median / mean / max absolute % error, mean signed % error and the share within +-5 / +-10 %."""
    e = 100.0 * (np.asarray(pred) - ms) / ms
    a = np.abs(e)
    return {"median_abs_error_pct": round(float(np.median(a)), 3),
            "mean_abs_error_pct": round(float(np.mean(a)), 3),
            "max_abs_error_pct": round(float(np.max(a)), 3),
            "mean_signed_error_pct": round(float(np.mean(e)), 3),
            "within_5pct": round(float(np.mean(a <= 5)), 3),
            "within_10pct": round(float(np.mean(a <= 10)), 3)}  # fmt: skip


def _solve(x: np.ndarray, y: np.ndarray, ms: np.ndarray, weight: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Bounded least squares on the weighted relative error ``((x . theta - y) / ms)``."""
    from scipy.optimize import lsq_linear

    w = np.sqrt(weight) / ms
    a = x * w[:, None]
    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)  # column scaling for conditioning
    lo = np.array([BOUNDS[n][0] for n in names]) * scale
    hi = np.array([BOUNDS[n][1] for n in names]) * scale
    return lsq_linear(a / scale, y * w, bounds=(lo, hi)).x / scale


def fit_nested(
    names: Sequence[str],
    models: Mapping[str, Sequence[str]],
    features: Sequence[str],
    rows: np.ndarray,
    base: np.ndarray,
    ms: np.ndarray,
    solve: Callable[[str, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Fit nested linear candidates ``ms ~ base + rows[:, terms] . theta`` and choose one.

    ``solve(name, x, y, keep)`` fits ``theta`` of candidate ``name`` on rows ``x`` and targets
    ``y = ms - base`` of the networks selected by the boolean mask ``keep``. Every candidate gets a
    leave-one-out error; the one with the lowest leave-one-out mean |error| is chosen (the mean sees
    the tail that the median ignores), a bigger candidate (later in ``names``) only where it beats a
    smaller one by 0.1 points. Returns ``(chosen name, {name: theta, cv, in_sample})``.
    """
    n = len(ms)
    y = ms - base
    candidates: dict[str, dict[str, Any]] = {}
    for name in names:
        x = rows[:, [features.index(t) for t in models[name]]]
        loo = np.empty(n)
        for i in range(n):
            keep = np.arange(n) != i
            loo[i] = base[i] + x[i] @ solve(name, x[keep], y[keep], keep)
        theta = solve(name, x, y, np.ones(n, dtype=bool))
        candidates[name] = {"theta": theta, "cv": errors(loo, ms), "in_sample": errors(base + x @ theta, ms)}
    best = names[0]
    for name in names[1:]:
        if candidates[name]["cv"]["mean_abs_error_pct"] < candidates[best]["cv"]["mean_abs_error_pct"] - 0.1:
            best = name
    return best, candidates


def fit_terms(
    rows: np.ndarray, uncorrected: np.ndarray, ms: np.ndarray, groups: Sequence[str], *, model: str = "auto"
) -> dict[str, Any]:
    """Fit the composition terms on whole networks.

    Args:
        rows: per network, the sum over its layers of :func:`composition_features` (shape N x 3).
        uncorrected: per network, the prediction without composition (``overhead + sum(raw)``).
        ms: per network, its measured time.
        groups: per network, its search space (each space weighs the same in the fit).
        model: ``auto`` (choose by leave-one-out error) or one of :data:`MODELS`.

    Returns:
        The header's ``composition`` fields: ``model``, ``terms``, leave-one-out ``cv`` error,
        ``in_sample`` error before (``uncorrected``) and after, every candidate's, and per space.

    Raises:
        ValueError: an unknown model, too few networks, or measurements that are not positive.
    """
    rows, uncorrected, ms = (np.asarray(v, dtype=float) for v in (rows, uncorrected, ms))
    n = len(ms)
    if not (rows.shape == (n, len(TERMS)) and uncorrected.shape == (n,) and len(groups) == n):
        raise ValueError(f"rows must be N x {len(TERMS)} and uncorrected, ms, groups of length N")
    if not (np.isfinite(ms).all() and (ms > 0).all()):
        raise ValueError("every measured time must be a finite number > 0")
    if model != "auto" and model not in MODELS:
        raise ValueError(f"model must be 'auto' or one of {sorted(MODELS)}, got {model!r}")
    names = [m for m in MODELS if n >= len(MODELS[m]) + EXTRA_SUBNETS and model in ("auto", m)]
    if not names:
        need = len(MODELS["constant" if model == "auto" else model]) + EXTRA_SUBNETS
        raise ValueError(f"{n} subnets are too few to fit the composition (at least {need})")
    count = {g: sum(1 for h in groups if h == g) for g in set(groups)}
    weight = np.array([1.0 / count[g] for g in groups])
    best, candidates = fit_nested(
        names, MODELS, TERMS, rows, uncorrected, ms,
        lambda name, x, y, keep: _solve(x, y, ms[keep], weight[keep], MODELS[name]),
    )
    terms = {t: 0.0 for t in TERMS} | {t: round(float(v), 9) for t, v in zip(MODELS[best], candidates[best]["theta"])}
    corrected = uncorrected + rows @ np.array([terms[t] for t in TERMS])
    per_space = {
        g: {"subnets": count[g],
            "median_abs_error_pct_before": errors(uncorrected[mask], ms[mask])["median_abs_error_pct"],
            "median_abs_error_pct_after": errors(corrected[mask], ms[mask])["median_abs_error_pct"]}
        for g in sorted(count) for mask in [np.array([h == g for h in groups])]
    }  # fmt: skip
    return {
        "model": best,
        "terms": terms,
        "formula": "in_network_ms = raw + layer + host_ms * raw + written_melems * written Melements "
        "(raw: the entry net of overhead_ms)",
        "cv": {"method": "leave-one-out"} | candidates[best]["cv"],
        "in_sample_before": errors(uncorrected, ms),
        "in_sample_after": errors(corrected, ms),
        "candidates": {k: {"cv": v["cv"], "terms": dict(zip(MODELS[k], (round(float(t), 9) for t in v["theta"])))}
                       for k, v in candidates.items()},
        "per_space": per_space,
    }  # fmt: skip
