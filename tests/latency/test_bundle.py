"""Adding a real device: bundle -> standalone runner (as on the device) -> import -> table."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas.latency import LatencyTableError, load_table, predict_latency
from nas.latency._bundle import import_bundle, parse_perf_test, write_bundle


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory, micro_space, fast_settings):
    out = tmp_path_factory.mktemp("bundle")
    write_bundle(out, device="my_board", spaces=[micro_space], num_classes=(10,), references=False,
                 settings=fast_settings, progress=False)  # fmt: skip
    return out


def test_bundle_holds_models_runner_and_instructions(bundle_dir, micro_table):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert {m["key"] for m in manifest["models"]} == set(micro_table.entries)
    assert all((bundle_dir / m["file"]).is_file() for m in manifest["models"])
    for name in ("run_bundle.py", "run_perf_test_adb.sh", "README.md", "models/overhead.onnx", "models/canary.onnx"):
        assert (bundle_dir / name).is_file(), name
    assert "onnxruntime_perf_test" in (bundle_dir / "README.md").read_text()


def test_import_before_running_is_a_clear_error(tmp_path, micro_space, fast_settings):
    write_bundle(tmp_path, device="x", spaces=[micro_space], num_classes=(10,), references=False,
                 settings=fast_settings, progress=False)  # fmt: skip
    with pytest.raises(LatencyTableError, match="run_bundle.py"):
        import_bundle(tmp_path, device="x")


def test_round_trip_with_the_standalone_runner(bundle_dir, tmp_path, micro_space):
    # run the runner as the device would: a fresh interpreter that never imports `nas`
    code = (
        "import sys, builtins; real = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name == 'nas' or name.startswith('nas.'): raise ImportError('runner must not import nas')\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        f"sys.argv = ['run_bundle.py', '--quiet', '--bundle', {str(bundle_dir)!r}]\n"
        f"exec(compile(open({str(bundle_dir / 'run_bundle.py')!r}).read(), 'run_bundle.py', 'exec'), {{'__name__': '__main__', '__file__': {str(bundle_dir / 'run_bundle.py')!r}}})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((bundle_dir / "results.json").read_text())
    assert results["complete"] and results["overhead_ms"] > 0

    table = import_bundle(bundle_dir, device="my_board")
    assert table.header.method == "measured" and table.header.covers(micro_space.digest)
    table.save(tmp_path / "my_board.json")
    loaded = load_table("my_board", space=micro_space, tables_dir=tmp_path)
    ms = predict_latency(loaded, micro_space.largest(), space=micro_space, num_classes=10)
    assert 0 < ms < 50


def test_import_refuses_a_partial_run(bundle_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    (partial / "manifest.json").write_text(json.dumps(manifest))
    key = manifest["models"][0]["key"]
    (partial / "results.json").write_text(json.dumps({
        "format": "nas-latency-results/1", "settings": manifest["settings"], "overhead_ms": 0.005,
        "results": {key: {"ms": 0.1, "iqr_ms": 0.01}},
    }))  # fmt: skip
    with pytest.raises(LatencyTableError, match=r"have no result yet.*resumes"):
        import_bundle(partial, device="my_board")


def test_perf_test_logs_are_parsed():
    log = "Session creation time cost: 0.01 s\nAverage inference time cost: 1.5 ms\nP50 Latency: 0.0012 s\n"
    assert parse_perf_test(log) == pytest.approx((1.2, "median"))
    assert parse_perf_test("Average inference time cost: 1.5 ms\n") == (1.5, "mean")
    with pytest.raises(ValueError):
        parse_perf_test("segmentation fault")
