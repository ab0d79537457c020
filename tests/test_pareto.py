"""nas.pareto: the 2-D front of (accuracy, latency) points and its hypervolume."""

from __future__ import annotations

import numpy as np
import pytest

from nas.pareto import hypervolume, pareto_front


def _dominated(p, q) -> bool:
    """q dominates p: at least as accurate and as fast, strictly better in one."""
    return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])


def test_front_drops_dominated_points_and_sorts_by_latency():
    points = [(92.0, 5.0), (90.0, 2.0), (91.0, 6.0), (95.0, 12.0), (89.0, 3.0)]
    assert pareto_front(points) == [(90.0, 2.0), (92.0, 5.0), (95.0, 12.0)]
    assert pareto_front([]) == []
    assert pareto_front([(50.0, 1.0)]) == [(50.0, 1.0)]


def test_front_with_ties():
    # same latency: only the most accurate; same accuracy: only the fastest; an exact tie: once
    points = [(80.0, 4.0), (85.0, 4.0), (85.0, 6.0), (85.0, 4.0), (90.0, 9.0), (90.0, 9.0), (70.0, 1.0)]
    assert pareto_front(points) == [(70.0, 1.0), (85.0, 4.0), (90.0, 9.0)]
    # every point equally accurate: the fastest alone; every point equally fast: the most accurate
    assert pareto_front([(80.0, 3.0), (80.0, 1.0), (80.0, 2.0)]) == [(80.0, 1.0)]
    assert pareto_front([(70.0, 2.0), (90.0, 2.0), (80.0, 2.0)]) == [(90.0, 2.0)]


def test_front_is_the_non_dominated_set_of_random_tied_points():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [tuple(p) for p in np.round(rng.uniform([60, 1], [95, 20], size=(30, 2)), 0)]
        front = pareto_front(pts)
        expected = {p for p in pts if not any(_dominated(p, q) for q in pts)}
        assert set(front) == expected and len(front) == len(expected)
        lat = [p[1] for p in front]
        acc = [p[0] for p in front]
        assert lat == sorted(lat) and acc == sorted(acc)


def test_front_returns_plain_floats_and_accepts_arrays():
    front = pareto_front(np.array([[90, 2], [92, 5]]))
    assert front == [(90.0, 2.0), (92.0, 5.0)]
    assert all(type(v) is float for p in front for v in p)


@pytest.mark.parametrize("points", [[(1.0, 2.0, 3.0)], [(float("nan"), 1.0)], [(90.0, float("inf"))], [1.0, 2.0]])
def test_malformed_points_are_refused(points):
    with pytest.raises(ValueError):
        pareto_front(points)
    with pytest.raises(ValueError):
        hypervolume(points, reference=(0.0, 10.0))


def test_hypervolume_counts_the_front_within_the_reference_only():
    points = [(90.0, 2.0), (92.0, 5.0), (91.0, 6.0), (95.0, 12.0)]  # (accuracy %, latency ms)
    # front within 10 ms: (90 %, 2 ms) then (92 %, 5 ms); (91 %, 6 ms) is dominated, 12 ms is over budget
    assert hypervolume(points, reference=(0.0, 10.0)) == pytest.approx(3 * 90 + 5 * 92)
    # above a reference accuracy of 90 % only the 92 % point adds area
    assert hypervolume(points, reference=(90.0, 10.0)) == pytest.approx(5 * 2)
    # a point exactly at the reference latency adds no area; one at the reference accuracy neither
    assert hypervolume([(99.0, 10.0)], reference=(0.0, 10.0)) == 0.0
    assert hypervolume([(90.0, 1.0)], reference=(90.0, 10.0)) == 0.0
    assert hypervolume([], reference=(0.0, 10.0)) == 0.0
    # ties and dominated points change nothing
    assert hypervolume(points + [(92.0, 5.0), (90.0, 3.0), (88.0, 2.0)], reference=(0.0, 10.0)) == pytest.approx(
        3 * 90 + 5 * 92)


def test_hypervolume_is_the_area_of_the_dominated_region():
    # Monte-Carlo-free check: the area on a fine grid of integer points in the reference box
    rng = np.random.default_rng(1)
    for _ in range(20):
        pts = [tuple(p) for p in np.round(rng.uniform([0, 0], [20, 30], size=(15, 2)), 0)]
        ref = (5.0, 25.0)
        acc, lat = np.meshgrid(np.arange(5, 20) + 0.5, np.arange(0, 25) + 0.5)  # cell centres of the box
        cells = sum(bool(np.any([(a <= p[0]) and (t >= p[1]) for p in pts])) for a, t in zip(acc.ravel(), lat.ravel()))
        assert hypervolume(pts, reference=ref) == pytest.approx(cells)


def _old_hypervolume(points, budget_ms, ref_accuracy=0.0):
    """benchmarks/search_quality.py's version, which the published hypervolumes come from."""
    hv = 0.0
    front = []
    for lat, acc in sorted((lat, acc) for acc, lat in points if lat <= budget_ms and acc > ref_accuracy):
        if not front or acc > front[-1][1]:
            front.append((lat, acc))
    for i, (lat, acc) in enumerate(front):
        nxt = front[i + 1][0] if i + 1 < len(front) else budget_ms
        hv += (nxt - lat) * (acc - ref_accuracy)
    return hv


def test_hypervolume_equals_the_benchmarks_old_version():
    rng = np.random.default_rng(2)
    for _ in range(50):
        pts = [tuple(p) for p in np.round(rng.uniform([60, 1], [95, 20], size=(40, 2)), 1)]
        for ref in [(0.0, 12.0), (75.0, 12.0), (80.0, 20.0)]:
            assert hypervolume(pts, reference=ref) == pytest.approx(_old_hypervolume(pts, ref[1], ref[0]), rel=1e-12)
