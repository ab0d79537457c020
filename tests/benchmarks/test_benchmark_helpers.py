"""The helpers behind the benchmarks' figures (the benchmarks themselves are scripts, not tests)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


search_quality = _load("search_quality")
supernet_ranking = _load("supernet_ranking")


def test_hypervolume_counts_the_feasible_front_only():
    points = [(90.0, 2.0), (92.0, 5.0), (91.0, 6.0), (95.0, 12.0)]  # (accuracy %, latency ms)
    # front within 10 ms: (2 ms, 90 %) then (5 ms, 92 %); (6 ms, 91 %) is dominated, 12 ms is over budget
    assert search_quality.hypervolume(points, 10.0) == pytest.approx(3 * 90 + 5 * 92)
    # above a reference accuracy of 90 % only the 92 % point adds area
    assert search_quality.hypervolume(points, 10.0, ref_accuracy=90.0) == pytest.approx(5 * 2)
    assert search_quality.hypervolume([], 10.0) == 0.0


def test_work_dir_of_another_supernet_is_refused(tmp_path):
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    (supernet / "supernet.pt").write_bytes(b"v1")
    work = tmp_path / "work"
    work.mkdir()
    search_quality.check_work_dir(work, supernet)
    search_quality.check_work_dir(work, supernet)  # same supernet: the studies may resume
    (supernet / "supernet.pt").write_bytes(b"v2, retrained")
    with pytest.raises(SystemExit, match="another supernet"):
        search_quality.check_work_dir(work, supernet)


def test_work_dir_with_studies_of_unknown_provenance_is_refused(tmp_path):
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    (supernet / "supernet.pt").write_bytes(b"v1")
    (tmp_path / "work" / "tpe-5.00ms-s0").mkdir(parents=True)
    (tmp_path / "work" / "tpe-5.00ms-s0" / "study.db").write_bytes(b"")
    with pytest.raises(SystemExit, match="unknown provenance"):
        search_quality.check_work_dir(tmp_path / "work", supernet)


def test_rank_correlations():
    a = [1.0, 2.0, 3.0, 4.0]
    assert supernet_ranking.spearman_rho(a, [10.0, 20.0, 30.0, 40.0]) == pytest.approx(1.0)
    assert supernet_ranking.spearman_rho(a, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert supernet_ranking.kendall_tau_b(a, [1.0, 3.0, 2.0, 4.0]) == pytest.approx(4 / 6)
