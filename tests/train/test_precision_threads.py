"""--precision (auto / fp32 / bf16 / fp16) and the thread governor that keeps training fast beside
another CPU-bound process."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import nas.train._precision as precision_mod
import nas.train._threads as threads_mod
from nas.data import load_data
from nas.errors import ConfigError
from nas.train import ThreadGovernor, TrainConfig, resolve_precision, train_supernet
from nas.train._threads import other_cpu_load

CPU = torch.device("cpu")


def test_auto_is_fp32_on_a_cpu_and_names_are_checked():
    p = resolve_precision("auto", CPU)
    assert (p.name, p.dtype, p.scaler) == ("fp32", None, False)
    with pytest.raises(ValueError, match=r"precision \(--precision\): fp16 autocast needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match=r"precision \(--precision\): 'fp8' \(allowed: auto \| fp32 \| bf16 \| fp16\)"):
        resolve_precision("fp8", CPU)
    with pytest.raises(ConfigError, match="precision: 'half'"):
        TrainConfig(precision="half")


def test_bf16_on_a_cpu_needs_native_support(monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_bf16", lambda: False)
    with pytest.raises(ValueError, match="no AVX-512-BF16 or AMX"):
        resolve_precision("bf16", CPU)
    monkeypatch.setattr(precision_mod, "cpu_has_bf16", lambda: True)
    p = resolve_precision("bf16", CPU)
    assert p.dtype is torch.bfloat16 and not p.scaler
    with p.autocast():
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype is torch.bfloat16


def test_supernet_trains_in_bf16_and_resumes_in_fp32(tmp_path, tiny_space_file, monkeypatch):
    monkeypatch.setattr(precision_mod, "cpu_has_bf16", lambda: True)
    splits = load_data("synthetic", synthetic_size=128, channels=3)
    cfg = TrainConfig(space=str(tiny_space_file), data="synthetic", epochs=2, batch_size=32, subset=64, val_subset=32,
                      calib_images=32, n_random=1, precision="bf16")
    first = train_supernet(cfg, tmp_path, progress=False, splits=splits, stop_after_epoch=1)
    assert first.history[-1]["precision"] == "bf16"
    assert all(p.dtype is torch.float32 for p in first.supernet.parameters())  # autocast, not bf16 weights
    resumed = train_supernet(TrainConfig(**{**cfg.to_dict(), "precision": "fp32"}), tmp_path, resume=True,
                             given={"precision"}, progress=False, splits=splits)
    assert [h["precision"] for h in resumed.history] == ["bf16", "fp32"]


def _governor(monkeypatch, loads):
    torch.set_num_threads(2)
    gov = ThreadGovernor(CPU, every_s=0.0)
    gov.enabled, gov.max_threads, gov.cores = True, 2, 2
    seq = iter(loads)
    monkeypatch.setattr(gov, "_sampler", type("S", (), {"sample": staticmethod(lambda: next(seq))})())
    return gov


def test_governor_follows_the_cores_other_processes_leave(monkeypatch):
    before = torch.get_num_threads()
    logs = []
    gov = _governor(monkeypatch, [0.1, 0.9, 1.0, 0.3, 0.0])
    gov.log = logs.append
    try:
        got = []
        for _ in range(5):
            gov.tick()
            got.append(torch.get_num_threads())
        # a tenth of a core is let be; 0.9 and 1.0 cores cost one thread; 0.3 still does; idle: back to 2
        assert got == [2, 1, 1, 1, 2]
        assert gov.changes == [(0.9, 1), (0.0, 2)]
        assert "other processes use 0.9 of 2 cores: training on 1 thread" in logs[0]
        with _governor(monkeypatch, [1.0]) as g:
            g.tick()
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2  # restored on leaving
    finally:
        torch.set_num_threads(before)


def test_governor_is_off_for_one_thread_and_by_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert not ThreadGovernor(CPU).enabled
        torch.set_num_threads(2)
        monkeypatch.setenv("NAS_ADAPTIVE_THREADS", "0")
        assert not ThreadGovernor(CPU).enabled
        monkeypatch.delenv("NAS_ADAPTIVE_THREADS")
        assert not ThreadGovernor(torch.device("meta")).enabled  # not a CPU
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not threads_mod._own_ticks(), reason="needs /proc")
def test_other_cpu_load_sees_a_busy_process():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load = other_cpu_load(1.5)
    finally:
        hog.kill()
        hog.wait()
    assert load is not None and load > 0.5
