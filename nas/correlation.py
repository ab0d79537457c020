"""How well one scoring of candidates agrees with another: Kendall's tau-b, Spearman's rho, Pearson's r.

Used wherever a cheap estimate stands in for an expensive one: predicted vs measured latency
(``nas.latency`` validate), inherited vs stand-alone accuracy (the supernet ranking benchmark).
Each function is a thin wrapper over :mod:`scipy.stats` with one contract for all three::

    from nas.correlation import kendall_tau, spearman_rho, pearson_r

    kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])   # 0.666... (one discordant pair of six)

Ties are handled (tau-b; average ranks for rho). Two kinds of awkward input are told apart:

* a malformed input (not 1-D, lengths differ, fewer than 2 points, a NaN or an infinity) is a
  caller's mistake and raises :class:`ValueError`;
* a constant input (every value of ``x``, or of ``y``, tied: e.g. a latency table that predicts the
  same time for every subnet) carries no ranking at all: the correlation is undefined and the
  result is ``nan``, without scipy's warning. ``nan`` compares false with every threshold, so a
  check such as ``tau >= 0.9`` fails on it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = ["kendall_tau", "pearson_r", "spearman_rho"]


def _checked(x: ArrayLike, y: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Both inputs as float arrays, or None when either is constant; ValueError when malformed."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or a.size != b.size:
        raise ValueError(f"{name} needs two 1-D sequences of the same length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"{name} needs at least 2 points, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name} needs finite values (no NaN or infinity)")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return a, b


def kendall_tau(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b between ``x`` and ``y`` (ties in either adjust the denominator).

    Args:
        x: One scoring of n >= 2 candidates.
        y: Another scoring of the same candidates, in the same order.

    Returns:
        tau-b in [-1, 1] (``scipy.stats.kendalltau(x, y, variant="b")``), or ``nan`` when ``x`` or
        ``y`` is constant.

    Raises:
        ValueError: The inputs are not 1-D, differ in length, have fewer than 2 points, or hold a
            NaN or an infinity.
    """
    pair = _checked(x, y, "kendall_tau")
    return float("nan") if pair is None else float(stats.kendalltau(*pair, variant="b").statistic)


def spearman_rho(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rank correlation between ``x`` and ``y`` (tied values share their mean rank).

    Args:
        x: One scoring of n >= 2 candidates.
        y: Another scoring of the same candidates, in the same order.

    Returns:
        rho in [-1, 1] (``scipy.stats.spearmanr``), or ``nan`` when ``x`` or ``y`` is constant.

    Raises:
        ValueError: As :func:`kendall_tau`.
    """
    pair = _checked(x, y, "spearman_rho")
    return float("nan") if pair is None else float(stats.spearmanr(*pair).statistic)


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson's (linear) correlation between ``x`` and ``y``.

    Args:
        x: One scoring of n >= 2 candidates.
        y: Another scoring of the same candidates, in the same order.

    Returns:
        r in [-1, 1] (``scipy.stats.pearsonr``), or ``nan`` when ``x`` or ``y`` is constant.

    Raises:
        ValueError: As :func:`kendall_tau`.
    """
    pair = _checked(x, y, "pearson_r")
    return float("nan") if pair is None else float(stats.pearsonr(*pair).statistic)
