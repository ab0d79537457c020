"""End to end on a tiny space, synthetic data and a synthetic table: train, search, resume, export."""

from __future__ import annotations

import json
import os

import onnxruntime as ort
import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.search._pipeline import run_pipeline
from nas.search._inputs import BudgetError, SearchConfig, prepare
from nas.search._study import open_study, make_sampler
from tests.search.conftest import search_config


def _cfg(tmp_path, tiny_space_file, fake_table, **changes) -> SearchConfig:
    return search_config(tmp_path, tiny_space_file, fake_table, **changes)


@pytest.mark.slow
def test_search_end_to_end_and_resume(tmp_path, tiny_space_file, fake_table, splits):
    logs: list[str] = []
    cfg = _cfg(tmp_path, tiny_space_file, fake_table)
    result = run_pipeline(cfg, progress=False, log=logs.append, splits=splits)
    run = tmp_path / "run"
    assert result["supernet"]["trained_now"]
    best = result["best"]
    assert best is not None and best["predicted_latency_ms"] <= 2.5
    assert result["table"]["method"] == "estimated"
    assert result["resolutions"]["proxy"] is True  # smoke supernet trains at the 32 px proxy
    for name in ("result.json", "report.md", "pareto.html", "pareto.png", "study.db",
                 "best/model.onnx", "best/model.pt", "best/weights.pt", "best/arch.json"):
        assert (run / name).is_file(), name
    on_disk = json.loads((run / "result.json").read_text())
    assert on_disk["best"]["arch"] == best["arch"]
    assert "proxy" in (run / "report.md").read_text()
    assert any("optuna-dashboard sqlite:///" in line for line in logs)

    # export parity: ONNX Runtime == PyTorch program on the same images
    x = torch.randn(2, 3, best["deploy_resolution"], best["deploy_resolution"])
    with open(run / "best" / "model.pt", "rb") as f:
        program = torch.export.load(f).module()
    session = ort.InferenceSession(str(run / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    assert abs(got - program(x).detach().numpy()).max() <= 1e-4

    # every trial recorded its arch, params, MAdds and latency; the budget is a stored constraint
    study = open_study(result["search"]["storage"], result["search"]["study_name"], make_sampler("nsga2", 0))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6
    for t in done:
        assert {"arch", "params", "madds", "latency_ms"} <= set(t.user_attrs)
        assert "latency_over_budget_ms" in t.constraints

    assert result["int8"] is None  # a float table: no int8 export unless asked

    # same command with more trials: resumes the study, reuses the supernet; an int8 export asked for
    result2 = run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, trials=9, int8_export=True), progress=False,
                           log=logs.append, splits=splits)
    assert not result2["supernet"]["trained_now"]
    assert result2["search"]["completed_trials"] == 9
    int8 = result2["int8"]
    assert (run / "best" / "model.int8.onnx").is_file() and int8["onnx"].endswith("model.int8.onnx")
    for split in ("val", "test"):
        fp32, q = int8[f"fp32_{split}_metrics"]["top1"], int8[f"int8_{split}_metrics"]["top1"]
        assert 0 <= q <= 100 and int8[f"{split}_drop"] == pytest.approx(fp32 - q, abs=1e-3)
    # scored where the weights were trained (the proxy side), not at the graph's deployment side
    best2 = result2["best"]
    assert int8["resolution"] == best2["deploy_resolution"] != int8["metrics_resolution"] == best2["eval_resolution"]
    assert json.loads((run / "best" / "arch.json").read_text())["accuracy_resolution"] == best2["eval_resolution"]
    assert int8["fp32_val_metrics"]["top1"] == pytest.approx(best2["val_metrics"]["top1"], abs=1.0)
    assert "## Int8 export" in (run / "report.md").read_text()
    qs = ort.InferenceSession(str(run / "best" / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert qs.run(None, {"images": x.numpy()})[0].shape == got.shape
    numbers = [t.number for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert numbers[:6] == [t.number for t in done]

    # the same supernet directory with other data (here another synthetic seed): refused, not reused
    from nas.data import load_data
    from nas.supernet import CheckpointError
    other = load_data("synthetic", synthetic_size=384, channels=3, seed=1)
    with pytest.raises(CheckpointError, match="trained on other data"):
        run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, run_dir=str(tmp_path / "run2")), progress=False,
                     log=logs.append, splits=other)


@pytest.mark.slow
def test_interrupted_search_loses_only_the_trial_in_flight(tmp_path, tiny_space_file, fake_table, splits):
    from nas.search._runner import run_study

    cfg = _cfg(tmp_path, tiny_space_file, fake_table, trials=6, export=False)
    inputs = prepare(cfg, splits=splits)
    calls = []

    def accuracy(arch):
        calls.append(arch)
        if len(calls) == 4:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the 4th evaluation
        return 50.0 + len(calls)

    with pytest.raises(KeyboardInterrupt):
        run_study(inputs, accuracy, progress=False)
    storage = optuna.storages.RDBStorage(inputs.storage)
    study = optuna.load_study(study_name=inputs.study_name, storage=storage)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    run_study(inputs, lambda arch: 60.0, progress=False)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 6


def test_unreachable_budget_fails_before_training(tmp_path, tiny_space_file, fake_table, splits):
    cfg = _cfg(tmp_path, tiny_space_file, fake_table, budget="0.05ms")
    with pytest.raises(BudgetError) as info:
        run_pipeline(cfg, progress=False, log=lambda _: None, splits=splits)
    assert "smallest latency" in str(info.value) and "0.37 ms" in str(info.value)
    assert not (tmp_path / "supernet").exists()


@pytest.mark.parametrize("budget", ["fast", "-3ms", "20 parsecs", ""])
def test_malformed_budget(tmp_path, tiny_space_file, fake_table, splits, budget):
    with pytest.raises(ValueError, match="budget"):
        prepare(_cfg(tmp_path, tiny_space_file, fake_table, budget=budget), splits=splits)


def test_unknown_device_lists_tables(tmp_path, tiny_space_file, splits):
    from nas.latency import UnknownDeviceError

    with pytest.raises(UnknownDeviceError, match="available"):
        prepare(_cfg(tmp_path, tiny_space_file, "no_such_phone"), splits=splits)


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from nas.search.__main__ import main

    assert main(["--device", "no_such_phone", "--budget", "20ms", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no latency table") and "Traceback" not in err


def test_a_second_run_waits_for_the_supernet_being_trained(tmp_path):
    """Two runs sharing a supernet directory: the second waits (saying who trains it), then reuses it."""
    import threading

    from nas.search._pipeline import supernet_lock

    sdir = tmp_path / "supernet"
    logs: list[str] = []
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with supernet_lock(sdir, log=logs.append):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(10)
    second = threading.Thread(target=lambda: (supernet_lock(sdir, log=logs.append).__enter__(), order.append("second in")))
    second.start()
    second.join(0.5)
    assert order == ["first in"] and second.is_alive()  # blocked while the first holds the lock
    assert logs and "is being trained by" in logs[0] and f":{os.getpid()} since" in logs[0]
    release.set()
    thread.join(10)
    second.join(10)
    assert order == ["first in", "first out", "second in"]


def test_bad_storage_and_outputs_fail_before_training(tmp_path, tiny_space_file, fake_table, splits):
    from nas.search._inputs import StorageError

    cases = {
        "nowhere/study.db": "does not exist",
        "corrupt.db": "cannot be opened",
    }
    (tmp_path / "corrupt.db").write_bytes(b"this is not a database" * 100)
    for name, message in cases.items():
        cfg = _cfg(tmp_path, tiny_space_file, fake_table, storage=f"sqlite:///{tmp_path / name}")
        with pytest.raises(StorageError, match=message):
            run_pipeline(cfg, progress=False, log=lambda _: None, splits=splits)
    for storage, message in [("not a url", "not a storage URL"), ("bogus://x/y", "not a valid storage URL"),
                             ("mysql://nas@127.0.0.1:9/nas", "driver .* is not installed")]:
        with pytest.raises(StorageError, match=message):
            run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, storage=storage), progress=False,
                         log=lambda _: None, splits=splits)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="--run-dir .*not a directory"):
        run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, run_dir=str(tmp_path / "file")), progress=False,
                     log=lambda _: None, splits=splits)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        if not os.access(readonly, os.W_OK):  # (root may write anywhere)
            with pytest.raises(StorageError, match="--supernet .*cannot write"):
                run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, supernet=str(readonly / "sn")),
                             progress=False, log=lambda _: None, splits=splits)
    finally:
        readonly.chmod(0o755)
    assert not (tmp_path / "supernet" / "supernet.pt").exists()  # nothing was trained


def test_seed_must_be_non_negative_and_named():
    with pytest.raises(ValueError, match=r"seed \(--seed\): -1"):
        SearchConfig(device="d", budget="1ms", seed=-1)


TINY_KINDS_SPACE = """
name: tiny_kinds
in_channels: 3
base_resolution: 16
resolutions: [12, 16]
width_multipliers: [0.5, 1.0]
stem: {out_channels: 8, kernel: 3, stride: 2, act: relu}
stages:
  - {out_channels: 8, stride: 1, depths: [1], block: conv, kernels: [1, 3]}
  - {out_channels: 16, stride: 2, depths: [1, 2], block: uib, start_kernels: [0, 3], mid_kernels: [0, 3, 5],
     expansions: [2, 4], se: [false, true], acts: [relu, hswish]}
  - out_channels: 24
    stride: 2
    depths: [1, 2]
    choices:
      - {block: bneck, kernels: [3, 5], expansions: [3], se: [false, true], acts: [relu, hswish]}
      - {block: uib, start_kernels: [0, 3], mid_kernels: [0, 3], expansions: [2, 4]}
head: {final_channels: 32, classifier_channels: 48, dropout: 0.0}
"""


@pytest.mark.slow
def test_search_end_to_end_on_uib_conv_and_mixed_stages(tmp_path, splits):
    """Train, search and export on a space with conv, UIB and bneck-or-UIB stages: the exported
    ONNX matches PyTorch and the safe loader rebuilds the UIB network from its spec."""
    from nas.blocks import kind_of_arch
    from nas.export import load_model
    from nas.space import Arch, load_space
    from tests.search.conftest import write_fake_table

    space_file = tmp_path / "tiny_kinds.yaml"
    space_file.write_text(TINY_KINDS_SPACE)
    table = write_fake_table(load_space(space_file), tmp_path / "fake_phone.json")
    cfg = _cfg(tmp_path, space_file, table, budget="3ms", trials=8)
    result = run_pipeline(cfg, progress=False, log=lambda _: None, splits=splits)
    best = result["best"]
    assert best is not None and best["predicted_latency_ms"] <= 3.0
    arch = Arch.from_string(best["arch"])
    assert kind_of_arch(arch.stages[1][0]).name == "uib" and kind_of_arch(arch.stages[0][0]).name == "conv"
    run = tmp_path / "run"
    x = torch.randn(2, 3, best["deploy_resolution"], best["deploy_resolution"])
    net = load_model(run / "best" / "model.pt").eval()
    session = ort.InferenceSession(str(run / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.numpy()})[0]
    assert abs(got - net(x).detach().numpy()).max() <= 1e-4
    study = open_study(result["search"]["storage"], result["search"]["study_name"], make_sampler("nsga2", 0))
    kinds = {kind_of_arch(b).name for t in study.get_trials(states=(TrialState.COMPLETE,))
             for b in Arch.from_string(t.user_attrs["arch"]).stages[2]}
    assert kinds <= {"bneck", "uib"} and kinds


def test_a_host_table_is_probed_before_training_and_the_probe_is_reported(tmp_path, tiny_space_file, tiny_space,
                                                                          splits, monkeypatch):
    from dataclasses import replace

    import nas.search._pipeline as pipeline
    from nas.latency import LatencyTable, host_device_name
    from nas.search._report import _probe_lines
    from tests.search.conftest import write_fake_table

    fake = LatencyTable.read(write_fake_table(tiny_space, tmp_path / "fake.json"))
    # a "measured" table named after this machine, whose numbers are not this machine's
    mine = LatencyTable(replace(fake.header, method="measured", device=host_device_name(), canary_ms=0.0),
                        fake.entries)
    mine.save(tmp_path / "mine.json")

    class Stop(Exception):
        pass

    def stop(*a, **k):
        raise Stop

    monkeypatch.setattr(pipeline, "ensure_supernet", stop)
    logs: list[str] = []
    with pytest.raises(Stop):
        run_pipeline(_cfg(tmp_path, tiny_space_file, tmp_path / "mine.json"), progress=False, log=logs.append,
                     splits=splits)
    warning = [line for line in logs if line.startswith("WARNING: latency probe")]
    assert len(warning) == 1 and "nas.latency build --device host" in warning[0]

    logs.clear()
    with pytest.raises(Stop):
        run_pipeline(_cfg(tmp_path, tiny_space_file, tmp_path / "mine.json", latency_probe=False), progress=False,
                     log=logs.append, splits=splits)
    assert not any("latency probe" in line for line in logs)

    probe = {"networks": [{}] * 4, "ok": False, "tolerance_pct": 10.0,
             "metrics": {"median_abs_error_pct": 25.3, "mean_signed_error_pct": -25.2}}
    (line,) = _probe_lines(probe)
    assert "25.3%" in line and "**beyond**" in line
    assert _probe_lines(None) == []


@pytest.mark.slow
def test_a_table_calibrated_from_a_probe_drives_the_search(tmp_path, tiny_space, tiny_space_file, fake_table, splits):
    """probe -> its runner (timed here) -> few-shot calibrate -> nas.search --device NEW.json"""
    import tarfile

    from nas.latency import MeasureSettings, load_table, predict_latency
    from nas.latency._fewshot import calibrate_table, read_measurements
    from nas.latency._probe_bundle import write_probe
    from nas.latency._runner import run_bundle
    from nas.space import Arch

    write_probe(tmp_path / "probe.tar", space=tiny_space, networks=12, num_classes=10, progress=False,
                settings=MeasureSettings(warmup=1, rounds=2, repeats=3))
    with tarfile.open(tmp_path / "probe.tar") as tar:
        tar.extractall(tmp_path, filter="data")
    run_bundle(str(tmp_path / "probe"), progress=False)
    base = load_table(fake_table, space=tiny_space)
    table, _ = calibrate_table(base, read_measurements(tmp_path / "probe" / "results.json"), name="board",
                               spaces=[tiny_space])
    path = table.save(tmp_path / "board.json")
    # a budget between the fastest and the slowest member on the new table
    low, high = (predict_latency(table, a, space=tiny_space, num_classes=10)
                 for a in (tiny_space.smallest(), tiny_space.largest()))
    budget = (low + high) / 2
    cfg = search_config(tmp_path, tiny_space_file, path, budget=f"{budget:.6f}ms", trials=4)
    result = run_pipeline(cfg, progress=False, log=lambda _: None, splits=splits)
    assert result["table"]["method"] == "calibrated" and result["device"] == "board"
    best = result["best"]
    assert low * (1 - 1e-3) <= best["predicted_latency_ms"] <= budget + 1e-6  # result.json rounds to 1e-6 ms
    assert best["predicted_latency_ms"] == pytest.approx(
        predict_latency(table, Arch.from_string(best["arch"]), space=tiny_space, num_classes=10), rel=1e-3)
