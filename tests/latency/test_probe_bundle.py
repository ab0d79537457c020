"""The probe bundle: which networks, weight-free ONNX files, the standalone runner on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import onnxruntime as ort
import pytest

from nas.latency._probe_bundle import probe_networks, read_probe_manifest, strip_weights, write_probe
from nas.latency import LatencyTableError
from nas.latency._fewshot import read_measurements
from nas.latency._runner import materialise_weights


def test_the_networks_are_distinct_and_include_the_smallest_and_largest(micro_space):
    picks = probe_networks(micro_space, 8, num_classes=10, seed=0)
    assert len(picks) == 8
    assert picks[0] == ("smallest", micro_space.smallest()) and picks[1] == ("largest", micro_space.largest())
    assert len({a.to_string() for _, a in picks}) == 8
    assert probe_networks(micro_space, 8, num_classes=10, seed=0) == picks  # deterministic
    with pytest.raises(ValueError, match="networks must be an integer >= 2"):
        probe_networks(micro_space, 1, num_classes=10)


def test_spread_picks_cover_more_of_the_space_than_the_first_random_members(micro_space):
    """Max-min selection reaches both depths of both searchable stages with few networks."""
    picks = probe_networks(micro_space, 6, num_classes=10, seed=1)
    depths = {tuple(len(stage) for stage in a.stages) for _, a in picks}
    assert len(depths) >= 3


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_stripped_model_runs_once_its_weights_are_written(tmp_path, precision):
    from torch import nn

    from nas.latency._modules import model_bytes

    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3)).eval()
    full = model_bytes(model, (3, 16, 16), precision)
    stripped, weights = strip_weights(full, "m.weights", seed=3)
    assert len(stripped) < len(full) / 2
    assert weights["bytes"] == sum(n for n, _, _ in weights["tensors"]) > 0
    kinds = {k for _, _, k in weights["tensors"]}
    assert kinds == ({"float32"} if precision == "fp32" else {"int8"})  # int8 weights; small biases stay
    (tmp_path / "m.onnx").write_bytes(stripped)
    entry = {"file": "m.onnx", "weights": weights | {"file": "m.weights"}}
    path = materialise_weights(str(tmp_path), entry)
    assert os.path.getsize(path) == weights["bytes"]
    out = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": np.ones((1, 3, 16, 16), np.float32)})[0]
    assert out.shape == (1, 32, 12, 12) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory, micro_space, fast_settings):
    out = tmp_path_factory.mktemp("probe") / "probe.tar"
    manifest = write_probe(out, space=micro_space, networks=10, num_classes=10, settings=fast_settings,
                           chunk_size=5, progress=False)
    with tarfile.open(out) as tar:
        tar.extractall(out.parent, filter="data")
    return out, out.parent / "probe", manifest


def test_the_runner_alone_times_every_network_of_the_probe(probe_dir):
    tar, folder, manifest = probe_dir
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "manifest.json", "models", "run_bundle.py",
                                                        "run_perf_test_adb.sh"]
    assert read_probe_manifest(tar) == manifest
    # the runner needs only numpy and onnxruntime: run it as the device would, from the folder
    subprocess.run([sys.executable, "run_bundle.py", "--quiet"], cwd=folder, check=True, env={"PATH": os.environ["PATH"]})
    results = json.loads((folder / "results.json").read_text())
    keys = [n["key"] for n in manifest["probe"]["networks"]]
    assert results["complete"] and sorted(results["results"]) == sorted(keys)
    assert results["probe"] == manifest["probe"]
    assert all(v["ms"] > 0 for v in results["results"].values())
    assert not list((folder / "models").glob("*.weights"))  # written for loading, then removed
    assert "cpu_model" in results["device_info"]


_FAKE_ADB = """#!/bin/sh
# stands in for adb + a phone: logs every call, answers a perf_test run with a P50 line
echo "$*" >> "$ADB_LOG"
case "$*" in
  *"onnxruntime_perf_test -e cpu"*) echo "Session creation time cost: 0.01 s"; echo "P50 Latency: 0.00125 s" ;;
esac
"""


def test_android_route_writes_weights_pushes_and_its_logs_are_measurements(probe_dir, tmp_path):
    """run_perf_test_adb.sh of a probe (adb faked): weights written here first, every network and
    the overhead / canary models timed once, resumable; calibrate reads the folder's logs."""
    tar, _, manifest = probe_dir
    with tarfile.open(tar) as t:
        t.extractall(tmp_path, filter="data")
    folder = tmp_path / "probe"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "adb").write_text(_FAKE_ADB)
    (bin_dir / "adb").chmod(0o755)
    log = tmp_path / "adb.log"
    # python3 of this environment (numpy, onnxruntime) writes the weights, as on the workstation
    env = {"PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "ADB_LOG": str(log)}
    run = [str(folder / "run_perf_test_adb.sh"), "/opt/onnxruntime_perf_test", "SERIAL1"]
    subprocess.run(run, cwd=tmp_path, check=True, env=env, capture_output=True)
    networks = manifest["probe"]["networks"]
    assert len(list((folder / "models").glob("*.weights"))) == len(networks)  # written before the push
    calls = log.read_text().splitlines()
    assert all(c.startswith("-s SERIAL1 ") for c in calls)
    assert sum("onnxruntime_perf_test -e cpu" in c for c in calls) == len(networks) + 2  # + overhead, canary
    assert any("push models/. " in c for c in calls)
    meas = read_measurements(folder)
    assert len(meas) == len(networks) and set(meas.ms) == {1.25} and meas.overhead_ms == 1.25
    assert meas.probe_id == manifest["probe"]["id"] and meas.cpu == "android (onnxruntime_perf_test)"
    # resumable: a second run times nothing again
    log.write_text("")
    subprocess.run(run, cwd=tmp_path, check=True, env=env, capture_output=True)
    assert not any("onnxruntime_perf_test -e cpu" in c for c in log.read_text().splitlines())
    # an interrupted run: a missing log is refused, naming the adb script (not the Python runner)
    (folder / "perf_test" / f"{networks[3]['key']}.txt").unlink()
    with pytest.raises(LatencyTableError, match=rf"{networks[3]['key']}\.txt: missing.*run_perf_test_adb\.sh") as info:
        read_measurements(folder)
    assert "run_bundle.py" not in str(info.value)
    # a log of a failed run: named with its value, and the remedy deletes it first (the script skips it)
    bad = folder / "perf_test" / f"{networks[5]['key']}.txt"
    bad.write_text("Session creation time cost: 0.01 s\nP50 Latency: nan s\n")
    with pytest.raises(LatencyTableError) as info:
        read_measurements(folder)
    msg = str(info.value)
    assert f"{bad.name}: its line 'P50 Latency: nan s': nan is not a positive finite time" in msg
    assert f"delete {bad} first" in msg and "no 'P50 Latency" not in msg and "run_bundle.py" not in msg


# -- the runner in a folder that already has results, and its argument errors -------------------------
def _fresh(probe_dir, where):
    """The probe extracted anew into ``where`` (as a user would for another pass)."""
    with tarfile.open(probe_dir[0]) as t:
        t.extractall(where, filter="data")
    return where / "probe"


def _runner(folder, *args):
    return subprocess.run([sys.executable, str(folder / "run_bundle.py"), "--quiet", *args], cwd=folder,
                          capture_output=True, text=True, timeout=300)


def _measured(folder, manifest, n=None, **settings):
    """A results.json as the runner writes it, with ``n`` of the networks (all by default)."""
    keys = [m["key"] for m in manifest["models"]][:n]
    data = {"format": "nas-latency-results/1", "device_info": {"cpu": "x"}, "settings": {**manifest["settings"], **settings},
            "overhead_ms": 0.01, "canary_ms": 0.1, "complete": n is None, "probe": manifest["probe"],
            "results": {k: {"ms": 1.0 + i, "iqr_ms": 0.01} for i, k in enumerate(keys)}}  # fmt: skip
    (folder / "results.json").write_text(json.dumps(data, indent=1))
    return (folder / "results.json").read_bytes()


def _one_error_line(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in proc.stderr, proc.stderr
    assert "wrote" not in proc.stdout
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_a_folder_whose_results_are_complete_is_not_timed_again_and_says_how_to(probe_dir, tmp_path):
    folder = _fresh(probe_dir, tmp_path)
    before = _measured(folder, probe_dir[2])
    proc = _runner(folder)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "wrote" not in out and "all 10 networks are already measured in" in out and str(folder / "results.json") in out
    assert "extract" in out and "move results.json away" in out
    assert (folder / "results.json").read_bytes() == before


@pytest.mark.parametrize("n", [None, 4], ids=["complete", "partial"])
def test_other_threads_than_the_results_refuse_and_keep_them(probe_dir, tmp_path, n):
    folder = _fresh(probe_dir, tmp_path)
    before = _measured(folder, probe_dir[2], n=n)
    proc = _runner(folder, "--threads", "2")
    err = _one_error_line(proc, str(folder / "results.json"), "intra_op_threads=1", "intra_op_threads=2",
                          "--overwrite", "away")
    assert f"holds {n or 10} of 10 networks" in err
    assert (folder / "results.json").read_bytes() == before


def test_overwrite_times_again_with_the_new_settings(probe_dir, tmp_path):
    folder = _fresh(probe_dir, tmp_path)
    _measured(folder, probe_dir[2], n=4)
    proc = _runner(folder, "--threads", "2", "--overwrite", "--chunk-size", "10")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((folder / "results.json").read_text())
    assert results["complete"] and results["settings"]["intra_op_threads"] == 2
    assert all(v["ms"] < 1.0 for v in results["results"].values())  # timed, not the 1.0+ ms written above


def _truncated(folder, manifest):
    (folder / "results.json").write_bytes(_measured(folder, manifest, n=3)[:50])


def _a_list(folder, manifest):
    (folder / "results.json").write_text("[]")


@pytest.mark.parametrize(("args", "prepare", "needles"), [
    (["--chunk-size", "-1"], None, ["--chunk-size", "positive integer"]),
    (["--chunk-size", "0"], None, ["--chunk-size", "positive integer"]),
    (["--threads", "-1"], None, ["--threads", "positive integer"]),
    (["--threads", "0"], None, ["--threads", "positive integer"]),
    (["--threads", "two"], None, ["--threads", "positive integer"]),
    (["--bundle", "/nonexistent"], None, ["--bundle /nonexistent", "no such folder"]),
    (["--bundle", "/"], None, ["--bundle /", "no manifest.json"]),
    ([], _truncated, ["results.json", "corrupted or truncated", "move it away"]),
    ([], _a_list, ["results.json", "move it away"]),
], ids=["chunk-negative", "chunk-zero", "threads-negative", "threads-zero", "threads-word", "no-bundle",
        "not-a-bundle", "results-truncated", "results-a-list"])  # fmt: skip
def test_runner_argument_and_file_errors_are_one_line(probe_dir, tmp_path, args, prepare, needles):
    folder = _fresh(probe_dir, tmp_path)
    if prepare is not None:
        prepare(folder, probe_dir[2])
    before = (folder / "results.json").read_bytes() if prepare else None
    _one_error_line(_runner(folder, *args), *needles)
    if before is None:
        assert not (folder / "results.json").exists()
    else:
        assert (folder / "results.json").read_bytes() == before


def test_readme_commands_are_accepted_by_the_cli(probe_dir):
    """Every ``python -m`` command of the probe's README parses with the real command-line parsers."""
    import shlex

    from nas.latency.__main__ import _parser
    from nas.search.__main__ import build_parser

    text = (probe_dir[1] / "README.md").read_text()
    commands = [line.split("#")[0].strip() for line in text.splitlines() if line.strip().startswith("python -m ")]
    assert len(commands) == 3
    for command in commands:
        argv = shlex.split(command.replace("TABLE", "host").replace("NEW_DEVICE", "my_board"))
        parser = _parser() if argv[2] == "nas.latency" else build_parser()
        assert argv[2] in ("nas.latency", "nas.search")
        parser.parse_args(argv[3:])  # SystemExit on a wrong command
    # a second pass: a fresh extraction, not a copy of a folder holding results.json
    assert "tar xf probe.tar -C pass2" in text and "python3 run_bundle.py --threads 4    #" not in text
