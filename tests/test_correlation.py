"""nas.correlation: known values, ties, the old hand-written versions' numbers, degenerate inputs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from nas.correlation import kendall_tau, pearson_r, spearman_rho

ROOT = Path(__file__).resolve().parent.parent
ALL = (kendall_tau, spearman_rho, pearson_r)


# The versions these replace, kept as oracles: the hand-written tau-b of nas/latency/_validate.py
# and Spearman of benchmarks/supernet_ranking.py (Pearson was np.corrcoef). Published results were
# computed with them.
def _old_kendall_tau_b(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(x.size, 1)
    dx, dy = dx[iu], dy[iu]
    denom = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float(np.sum(dx * dy) / denom) if denom else 0.0


def _old_spearman_rho(a, b) -> float:
    def ranks(v):
        v = np.asarray(v, dtype=float)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):
            r[v == value] = r[v == value].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_known_values():
    a = [1, 2, 3, 4]
    for f in ALL:
        assert f(a, [10, 20, 30, 40]) == pytest.approx(1.0)
        assert f(a, [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair out of six: (5 - 1) / 6
    assert kendall_tau(a, [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ranks 1 3 2 4: 1 - 6 * (0 + 1 + 1 + 0) / (4 * 15)
    assert spearman_rho(a, [1, 3, 2, 4]) == pytest.approx(0.8)
    # rank correlations ignore a monotone transform, Pearson does not
    assert kendall_tau(a, np.exp(a)) == spearman_rho(a, np.exp(a)) == pytest.approx(1.0)
    assert pearson_r(a, np.exp(a)) < 0.95
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    assert kendall_tau(x, x + 1e-3 * rng.normal(size=50)) > 0.9


def test_ties_by_hand():
    x, y = [1, 1, 2, 3], [1, 2, 2, 3]
    # pairs: 4 concordant, 0 discordant, 1 tied in x only, 1 tied in y only:
    # tau-b = 4 / sqrt((6 - 1) * (6 - 1)); tau-a would be 4 / 6
    assert kendall_tau(x, y) == pytest.approx(0.8)
    # average ranks: x -> 1.5 1.5 3 4, y -> 1 2.5 2.5 4; their Pearson correlation
    assert spearman_rho(x, y) == pytest.approx(np.corrcoef([1.5, 1.5, 3, 4], [1, 2.5, 2.5, 4])[0, 1])
    assert spearman_rho(x, y) == pytest.approx(3.75 / 4.5)


def test_same_numbers_as_the_old_versions_on_tied_data():
    # accuracies rounded to one decimal tie often, as the benchmark's rounded top-1 values can
    inherited = [71.2, 70.5, 71.2, 69.8, 72.0, 70.5, 72.0, 68.9, 71.2, 70.1]
    alone = [74.0, 73.1, 74.4, 73.1, 75.2, 72.8, 74.4, 71.9, 74.0, 73.1]
    # what the old versions gave (checked against them below, and frozen here)
    old = {kendall_tau: 0.8, spearman_rho: 0.9025157232704403, pearson_r: 0.9376167456207468}
    assert _old_kendall_tau_b(inherited, alone) == pytest.approx(old[kendall_tau], abs=1e-12)
    assert _old_spearman_rho(inherited, alone) == pytest.approx(old[spearman_rho], abs=1e-12)
    for f, value in old.items():
        assert f(inherited, alone) == pytest.approx(value, abs=1e-12)
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 12, 40):
        for _ in range(20):
            x = np.round(rng.normal(70, 1, n), 0)  # heavy ties
            y = np.round(x + rng.normal(0, 1, n), 0)
            if np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            assert kendall_tau(x, y) == pytest.approx(_old_kendall_tau_b(x, y), abs=1e-12)
            assert spearman_rho(x, y) == pytest.approx(_old_spearman_rho(x, y), abs=1e-12)
            assert pearson_r(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


@pytest.mark.parametrize("name", ["supernet_ranking.json", "supernet_ranking_reorder.json",
                                  "supernet_ranking_two_seeds.json"])
def test_published_supernet_ranking_figures_are_reproduced(name):
    # the summary's correlations, recomputed from the subnets' rows (the reorder run has a tie)
    report = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    s, rows = report["summary"], report["subnets"]
    inherited = [r["inherited_top1"] for r in rows]
    alone = [r["standalone_top1"] for r in rows]
    assert round(kendall_tau(inherited, alone), 3) == s["kendall_tau"]
    assert round(spearman_rho(inherited, alone), 3) == s["spearman_rho"]
    assert round(pearson_r(inherited, alone), 3) == s["pearson_r"]
    assert round(kendall_tau([r["madds"] for r in rows], alone), 3) == s["kendall_tau_madds"]
    per_seed = [round(kendall_tau(inherited, [r["standalone_top1_seeds"][i] for r in rows]), 3)
                for i in range(len(s["standalone_seeds"]))]
    assert per_seed == s["kendall_tau_per_seed"]


@pytest.mark.parametrize("f", ALL)
def test_a_constant_input_gives_nan_without_a_warning(f):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(f([3.0, 3.0, 3.0], [1.0, 2.0, 3.0]))
        assert math.isnan(f([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
        assert math.isnan(f([1.0, 1.0], [2.0, 2.0]))
    assert f([1.0, 2.0], [3.0, 5.0]) == pytest.approx(1.0)  # two distinct points are enough


@pytest.mark.parametrize("f", ALL)
@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        ([1.0], [2.0], "at least 2"),
        ([], [], "at least 2"),
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same length"),
        ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]], "1-D"),
        ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], "finite"),
        ([1.0, 2.0, 3.0], [1.0, float("inf"), 3.0], "finite"),
    ],
)
def test_malformed_inputs_are_refused(f, x, y, match):
    with pytest.raises(ValueError, match=match):
        f(x, y)
