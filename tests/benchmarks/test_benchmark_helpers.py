"""The helpers behind the benchmarks' figures (the benchmarks themselves are scripts, not tests)."""

import importlib.util
from pathlib import Path

import pytest

from nas import correlation, pareto

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


search_quality = _load("search_quality")
supernet_ranking = _load("supernet_ranking")


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


def test_benchmarks_use_the_shared_figures():
    # one home for each figure: hypervolume in nas.pareto, rank correlations in nas.correlation
    # (their own tests: tests/test_pareto.py, tests/test_correlation.py)
    assert search_quality.hypervolume is pareto.hypervolume
    for name in ("kendall_tau", "spearman_rho", "pearson_r"):
        assert getattr(supernet_ranking, name) is getattr(correlation, name)


def test_a_fresh_work_dir_with_only_the_probe_study_is_accepted(tmp_path):
    supernet = tmp_path / "supernet"
    supernet.mkdir()
    (supernet / "supernet.pt").write_bytes(b"v1")
    (tmp_path / "work" / "probe").mkdir(parents=True)  # the benchmark's own prepare() opens a storage there
    (tmp_path / "work" / "probe" / "study.db").write_bytes(b"")
    search_quality.check_work_dir(tmp_path / "work", supernet)
    assert (tmp_path / "work" / "supernet.json").is_file()


def test_mean_sd_reports_the_standard_error_over_seeds():
    out = search_quality.mean_sd([90.0, 91.0, 92.0])
    assert out == {"mean": 91.0, "sd": 1.0, "se": round(1 / 3 ** 0.5, 3), "n": 3}
    assert search_quality.mean_sd([90.5]) == {"mean": 90.5, "sd": 0.0, "se": 0.0, "n": 1}


def test_reference_rows_take_the_published_standalone_scores_of_the_picked_subnets(tmp_path):
    import json

    from nas.space import load_space
    path = ROOT / "benchmarks" / "results" / "supernet_ranking_two_seeds.json"
    published = json.loads(path.read_text())
    archs = supernet_ranking.pick_subnets(load_space("mobilenetv3_large"), 10, 32, 12, 0, True)
    rows = supernet_ranking._reference_rows(str(path), archs, published["val_images"])
    assert [r["standalone_top1_seeds"] for r in rows] == [r["standalone_top1_seeds"] for r in published["subnets"]]
    assert rows[0]["standalone_seeds"] == [0, 1]
    with pytest.raises(SystemExit, match="validation images"):
        supernet_ranking._reference_rows(str(path), archs, 1000)
    other = supernet_ranking.pick_subnets(load_space("mobilenetv3_large"), 10, 32, 12, 5, True)
    with pytest.raises(SystemExit, match="not in it"):
        supernet_ranking._reference_rows(str(path), other, published["val_images"])


def test_step_profile_tells_depthwise_from_dense_convolutions():
    step_profile = _load("step_profile")
    classify = step_profile.classify
    # backward: (grad_out, input, weight, ...); forward: (input, weight, ...)
    assert classify("aten::convolution_backward", [[8, 144, 8, 8], [8, 144, 8, 8], [144, 1, 7, 7]]) == "depthwise backward"
    assert classify("aten::convolution_backward", [[8, 24, 8, 8], [8, 144, 8, 8], [24, 144, 1, 1]]) == "dense conv backward"
    assert classify("aten::mkldnn_convolution", [[8, 96, 16, 16], [96, 1, 5, 5]]) == "depthwise forward"
    # the grayscale stem has a [16, 1, 3, 3] weight on a 1-channel input: dense, not depthwise
    assert classify("aten::mkldnn_convolution", [[8, 1, 32, 32], [16, 1, 3, 3]]) == "dense conv forward"
    assert classify("aten::native_batch_norm_backward", []) == "batch norm backward"
    assert classify("aten::native_batch_norm", []) == "batch norm forward"
    assert classify("aten::hardswish_backward", []) == "activations"
    assert classify("aten::addmm", []) == "matrix products"
    assert classify("aten::as_strided", []) == "other"
