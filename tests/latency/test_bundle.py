"""Adding a real device: bundle -> standalone runner (as on the device) -> import -> table."""

from __future__ import annotations

import json
import re
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
    with pytest.raises(ValueError, match="no 'P50 Latency"):
        parse_perf_test("segmentation fault")


@pytest.mark.parametrize("value", ["nan", "inf", "-0.001", "0"])
def test_perf_test_log_of_a_failed_run_names_its_value(value):
    with pytest.raises(ValueError, match=rf"'P50 Latency: {re.escape(value)} s': {re.escape(value)} is not a positive finite time"):
        parse_perf_test(f"Session creation time cost: 0.01 s\nP50 Latency: {value} s\n")
    with pytest.raises(ValueError, match="not a positive finite time"):
        parse_perf_test(f"Average inference time cost: {value} ms\n")


def test_a_bad_perf_test_log_is_named_with_the_remedy_that_fixes_it(tmp_path):
    """The adb script skips every non-empty log: a bad one must be deleted before it runs again."""
    bundle = _write(tmp_path / "b", logs={**_LOGS, "00001": "P50 Latency: nan s\n"})
    with pytest.raises(LatencyTableError) as info:
        import_bundle(bundle, device="my_board")
    msg = str(info.value)
    assert "00001.txt: its line 'P50 Latency: nan s': nan is not a positive finite time" in msg
    assert f"delete {bundle / 'perf_test' / '00001.txt'} first" in msg and "run_perf_test_adb.sh" in msg


def test_a_missing_perf_test_log_points_to_the_adb_script(tmp_path):
    bundle = _write(tmp_path / "b", logs={k: v for k, v in _LOGS.items() if k != "00001"})
    with pytest.raises(LatencyTableError, match=r"00001\.txt: missing.*run_perf_test_adb\.sh") as info:
        import_bundle(bundle, device="my_board")
    assert "run_bundle.py" not in str(info.value) and "delete" not in str(info.value)


# -- malformed bundles: one LatencyTableError naming the file and the key ----------------------------
_SETTINGS = {"warmup": 1, "rounds": 2, "repeats": 3, "intra_op_threads": 1, "inter_op_threads": 1,
             "graph_optimization": "all", "provider": "CPUExecutionProvider", "statistic": "median",
             "tolerance": 0.08, "max_retries": 0}  # fmt: skip


def _manifest(**changes):
    m = {"format": "nas-latency-bundle/1", "device": "b", "created": "2026-01-01", "opset": 17,
         "settings": dict(_SETTINGS), "spaces": [{"name": "micro", "digest": "0123456789abcdef"}],
         "num_classes": [10], "references": [],
         "overhead": {"file": "models/overhead.onnx", "input_shape": [8]},
         "canary": {"file": "models/canary.onnx", "input_shape": [8]},
         "models": [{"key": "k1", "file": "models/00000.onnx", "input_shape": [3, 8, 8]},
                    {"key": "k2", "file": "models/00001.onnx", "input_shape": [3, 8, 8]}]}  # fmt: skip
    return {k: v for k, v in {**m, **changes}.items() if v is not _DROP}


def _results(**changes):
    r = {"format": "nas-latency-results/1", "device_info": {"cpu": "test cpu", "cores": 4, "onnxruntime": "1.0"},
         "settings": dict(_SETTINGS), "overhead_ms": 0.005, "canary_ms": 0.1, "retried_chunks": 0,
         "disturbed_chunks": 0, "date": "2026-01-01", "complete": True,
         "results": {"k1": {"ms": 0.1, "iqr_ms": 0.01}, "k2": {"ms": 0.2, "iqr_ms": 0.01}}}  # fmt: skip
    return {k: v for k, v in {**r, **changes}.items() if v is not _DROP}


_DROP = object()


def _write(folder, manifest=None, results=None, logs=None):
    """A bundle folder without models (import reads only the JSON files and the logs)."""
    folder.mkdir(parents=True)
    for name, data in (("manifest.json", manifest if manifest is not None else _manifest()), ("results.json", results)):
        if data is None:
            continue
        if isinstance(data, bytes):
            (folder / name).write_bytes(data)
        else:
            (folder / name).write_text(json.dumps(data))
    if logs is not None:
        (folder / "perf_test").mkdir()
        for stem, text in logs.items():
            (folder / "perf_test" / f"{stem}.txt").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def _tar(tmp):
    import tarfile

    _write(tmp / "src", results=_results())
    with tarfile.open(tmp / "bundle.tar.gz", "w:gz") as t:
        t.add(tmp / "src", arcname="bundle")
    return tmp / "bundle.tar.gz"


def _results_folder(tmp):
    b = _write(tmp / "b")
    (b / "results.json").mkdir()
    return b


def _plain_file(tmp):
    (tmp / "notes.txt").write_text("hello")
    return tmp / "notes.txt"


_LOGS = {"00000": "P50 Latency: 0.0001 s\n", "00001": "P50 Latency: 0.0002 s\n",
         "overhead": "P50 Latency: 0.000005 s\n", "canary": "P50 Latency: 0.0001 s\n"}  # fmt: skip

MALFORMED = [
    ("manifest-is-a-list", lambda t: _write(t / "b", manifest=[1, 2]), "manifest.json", r"\(top level\): must be a JSON object"),
    ("manifest-not-json", lambda t: _write(t / "b", manifest=b'{"format": '), "manifest.json", "not valid JSON"),
    ("manifest-not-utf8", lambda t: _write(t / "b", manifest=b"\xff\xfe\x00junk"), "manifest.json", "not UTF-8"),
    ("no-models", lambda t: _write(t / "b", _manifest(models=_DROP), _results()), "manifest.json", "models: required key is missing"),
    ("models-not-a-list", lambda t: _write(t / "b", _manifest(models="k1"), _results()), "manifest.json", "models: must be a list"),
    ("model-without-key", lambda t: _write(t / "b", _manifest(models=[{"file": "m.onnx"}]), _results()), "manifest.json", r"models\[0\]\.key: required key is missing"),
    ("model-key-twice", lambda t: _write(t / "b", _manifest(models=[{"key": "k1", "file": "a"}, {"key": "k1", "file": "b"}]), _results()), "manifest.json", r"models\[1\]\.key: 'k1' is listed twice"),
    ("no-opset", lambda t: _write(t / "b", _manifest(opset=_DROP), _results()), "manifest.json", "opset: required key is missing"),
    ("opset-a-string", lambda t: _write(t / "b", _manifest(opset="17"), _results()), "manifest.json", "opset: must be a positive integer"),
    ("space-without-digest", lambda t: _write(t / "b", _manifest(spaces=[{"name": "micro"}]), _results()), "manifest.json", r"spaces\[0\]\.digest: required key is missing"),
    ("space-bad-digest", lambda t: _write(t / "b", _manifest(spaces=[{"name": "micro", "digest": "xyz"}]), _results()), "manifest.json", r"spaces\[0\]: digest must be a hex digest"),
    ("results-is-a-list", lambda t: _write(t / "b", results=[]), "results.json", r"\(top level\): must be a JSON object"),
    ("no-results", lambda t: _write(t / "b", results=_results(results=_DROP)), "results.json", "results: required key is missing"),
    ("result-without-ms", lambda t: _write(t / "b", results=_results(results={"k1": {"iqr_ms": 0.1}, "k2": {"ms": 0.2}})), "results.json", r"results\['k1'\]\.ms: required key is missing"),
    ("result-a-number", lambda t: _write(t / "b", results=_results(results={"k1": 0.1, "k2": {"ms": 0.2}})), "results.json", r"results\['k1'\]: must be a JSON object"),
    ("result-negative", lambda t: _write(t / "b", results=_results(results={"k1": {"ms": -1}, "k2": {"ms": 0.2}})), "results.json", r"results\['k1'\]\.ms: must be a finite number > 0"),
    ("no-settings", lambda t: _write(t / "b", results=_results(settings=_DROP)), "results.json", "settings: required key is missing"),
    ("settings-without-threads", lambda t: _write(t / "b", results=_results(settings={"warmup": 1, "rounds": 1, "repeats": 1})), "results.json", "settings.intra_op_threads: required key is missing"),
    ("spinning-a-string", lambda t: _write(t / "b", results=_results(settings={**_SETTINGS, "spinning": "yes"})), "results.json", "settings.spinning: must be true or false"),
    ("zero-threads", lambda t: _write(t / "b", results=_results(settings={**_SETTINGS, "intra_op_threads": 0})), "results.json", "settings.intra_op_threads: must be a positive integer"),
    ("no-overhead", lambda t: _write(t / "b", results=_results(overhead_ms=_DROP)), "results.json", "overhead_ms: required key is missing"),
    ("overhead-above-entries", lambda t: _write(t / "b", results=_results(overhead_ms=5.0)), "results.json", "overhead_ms.*negative|negative.*overhead_ms"),
    ("device-info-a-string", lambda t: _write(t / "b", results=_results(device_info="pixel")), "results.json", "device_info: must be a JSON object"),
    ("results-is-a-folder", _results_folder, "results.json", "cannot read it"),
    ("perf-test-without-overhead-log", lambda t: _write(t / "b", logs={k: v for k, v in _LOGS.items() if k != "overhead"}), "perf_test", "overhead.txt: missing"),
    ("perf-test-garbled-log", lambda t: _write(t / "b", logs={**_LOGS, "00001": b"\xff\xfe segfault"}), "perf_test", "00001.txt: not UTF-8"),
    ("perf-test-manifest-without-settings", lambda t: _write(t / "b", _manifest(settings=_DROP), logs=_LOGS), "manifest.json", "settings: required key is missing"),
    ("archive-not-folder", _tar, "bundle.tar.gz", "is a tar archive, not a bundle folder: unpack it"),
    ("plain-file", _plain_file, "notes.txt", "is a file, not a bundle folder"),
    ("manifest-one-level-down", lambda t: _write(t / "b" / "inner", results=_results()).parent, "b", r"found .*inner/manifest\.json: import .*inner instead"),
    ("not-there", lambda t: t / "missing", "missing", "bundle folder not found"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "blamed", "match"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_bundle_is_one_clear_error(tmp_path, make, blamed, match):
    bundle = make(tmp_path)
    with pytest.raises(LatencyTableError) as info:
        import_bundle(bundle, device="my_board")
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{blamed}" in msg and str(tmp_path) in msg
    assert re.search(match, msg), msg


def test_malformed_bundle_lists_every_problem(tmp_path):
    bundle = _write(tmp_path / "b", results=_results(overhead_ms="5", results={"k1": {"ms": None}, "k2": []}))
    with pytest.raises(LatencyTableError) as info:
        import_bundle(bundle, device="my_board")
    msg = str(info.value)
    assert "overhead_ms: must be" in msg and "results['k1'].ms: must be" in msg and "results['k2']: must be" in msg


def test_synthetic_bundle_imports(tmp_path):
    """The malformed cases above are each one edit away from a bundle that imports."""
    table = import_bundle(_write(tmp_path / "b", results=_results()), device="my_board")
    assert table.header.overhead_ms == 0.005 and table.lookup("k2") == 0.2 and table.header.opset == 17
    perf = import_bundle(_write(tmp_path / "p", logs=_LOGS), device="my_board")
    assert perf.lookup("k1") == pytest.approx(0.1) and perf.header.runtime.endswith("(onnxruntime_perf_test)")


@pytest.mark.parametrize(("settings", "precision", "spinning"), [
    ({}, "fp32", False),
    ({"intra_op_threads": 2}, "fp32", True),  # results of a runner older than the setting: the pool spun
    ({"intra_op_threads": 2, "spinning": False, "precision": "int8"}, "int8", False),
])  # fmt: skip
def test_imported_header_records_precision_and_spinning(tmp_path, settings, precision, spinning):
    table = import_bundle(_write(tmp_path / "b", results=_results(settings={**_SETTINGS, **settings})), device="my_board")
    assert (table.header.precision, table.header.spinning) == (precision, spinning)


@pytest.mark.parametrize(("threads", "spinning", "flag"), [(1, False, False), (2, False, True), (2, True, False)])
def test_adb_script_disables_spinning_as_the_settings_say(tmp_path, threads, spinning, flag):
    from nas.latency import MeasureSettings
    from nas.latency._bundle import write_adb_script

    script = write_adb_script(tmp_path, MeasureSettings(intra_op_threads=threads, spinning=spinning)).read_text()
    assert f"-x {threads} -y 1" in script and (" -D " in script) == flag
