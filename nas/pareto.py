"""The metric-latency trade-off of a set of candidates: its Pareto front and hypervolume.

Points are ``(metric, latency)`` pairs, in the order of the search's objectives
(``nas.search.objective_names(task)``, i.e. a trial's ``values``): the metric (top-1, mAP; called
accuracy below) is maximised, latency minimised. A point is dominated when another is at least as accurate and at least as fast, and
strictly better in one of the two::

    from nas.pareto import hypervolume, pareto_front

    pts = [(90.0, 2.0), (92.0, 5.0), (91.0, 6.0)]   # (accuracy %, latency ms)
    pareto_front(pts)                               # [(90.0, 2.0), (92.0, 5.0)]
    hypervolume(pts, reference=(0.0, 10.0))         # 3 * 90 + 5 * 92

Optuna's public Pareto API works on a whole study (``Study.best_trials``, with its own rule for
which trials are feasible) and its hypervolume is private (``optuna._hypervolume``), so the 2-D
versions for plain points live here, in numpy.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["hypervolume", "pareto_front"]


def _as_points(points: Iterable[tuple[float, float]]) -> np.ndarray:
    arr = np.asarray(list(points), dtype=float)
    if arr.size == 0:
        return arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"points must be (accuracy, latency) pairs, got an array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("points must be finite (no NaN or infinity)")
    return arr


def pareto_front(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated ``(accuracy, latency)`` points, fastest first.

    Along the front latency and accuracy both strictly rise. Of points that tie exactly, one is
    kept; of points equally fast, only the most accurate; of points equally accurate, only the
    fastest.

    Args:
        points: ``(accuracy, latency)`` pairs, in any order; may be empty.

    Returns:
        The front as ``(accuracy, latency)`` tuples of floats, sorted by latency.

    Raises:
        ValueError: A point is not a pair of finite numbers.
    """
    arr = _as_points(points)
    if len(arr) == 0:
        return []
    acc, lat = arr[:, 0], arr[:, 1]
    order = np.lexsort((-acc, lat))  # by latency, then the most accurate first
    acc, lat = acc[order], lat[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(acc)[:-1]))
    keep = acc > best_before  # more accurate than every point at least as fast
    return [(float(a), float(t)) for a, t in zip(acc[keep], lat[keep])]


def hypervolume(points: Iterable[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by ``points`` and bounded by the reference point ``(accuracy, latency)``.

    Only points more accurate than the reference accuracy and no slower than the reference
    latency (e.g. a latency budget) count; with none, the hypervolume is 0.

    Args:
        points: ``(accuracy, latency)`` pairs, in any order; may be empty.
        reference: ``(accuracy, latency)`` of the reference point, the worst corner of the area.

    Returns:
        The area in accuracy units x latency units.

    Raises:
        ValueError: A point, or the reference, is not a pair of finite numbers.
    """
    ref_acc, ref_lat = (float(v) for v in _as_points([reference])[0])
    arr = _as_points(points)
    inside = arr[(arr[:, 0] > ref_acc) & (arr[:, 1] <= ref_lat)]
    front = np.array(pareto_front(inside), dtype=float).reshape(-1, 2)
    widths = np.diff(np.append(front[:, 1], ref_lat))  # each point's latency up to the next point's
    return float(np.sum(widths * (front[:, 0] - ref_acc)))
