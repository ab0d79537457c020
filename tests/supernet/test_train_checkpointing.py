"""Mid-epoch checkpoints: written every ``checkpoint_minutes``, resumed bit-identically, survive
``kill -9``, and are never taken for a finished epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import nas.train._supernet_training as training
from nas.supernet import load_checkpoint, load_supernet
from nas.train import TrainConfig, train_supernet
from nas.train._cli import main

REPO = Path(__file__).resolve().parents[2]
EVERY_STEP = 1e-9  # checkpoint_minutes: a mid-epoch checkpoint after every optimizer step
STEPS = 6  # per epoch: subset 192 / batch 32


def _cfg(space_path, **kw):
    base = dict(space=str(space_path), data="synthetic", epochs=2, batch_size=32, subset=STEPS * 32, resolution=None,
                n_random=1, val_subset=40, calib_images=64, warmup_epochs=0.5)
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_space_path, synthetic):
    """The uninterrupted 2-epoch runs (with and without channel re-ordering), trained once."""
    runs = {}

    def get(reorder: bool):
        if reorder not in runs:
            runs[reorder] = train_supernet(_cfg(tiny_space_path, reorder_channels=reorder),
                                           tmp_path_factory.mktemp("straight"), device="cpu", progress=False,
                                           splits=synthetic)
        return runs[reorder]

    return get


class _Stop(Exception):
    """Raised by the test right after a chosen mid-epoch checkpoint is written (a crash there)."""


def _stop_after_checkpoint(monkeypatch, epoch: int, step: int) -> None:
    real = training.save_checkpoint

    def save_then_stop(path, ckpt):
        out = real(path, ckpt)
        if (ckpt.epoch, ckpt.step) == (epoch, step):
            raise _Stop
        return out

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("reorder, step", [(False, 3), (True, 3), (False, STEPS)])
def test_run_stopped_mid_epoch_resumes_bit_identically(monkeypatch, tmp_path, tiny_space_path, synthetic, straight,
                                                        reorder, step):
    """Stopped after ``step`` steps of epoch 1 (``STEPS``: all of them, before the epoch's scoring
    and checkpoint), resumed, the run ends with the uninterrupted run's weights and losses."""
    cfg = _cfg(tiny_space_path, reorder_channels=reorder, checkpoint_minutes=EVERY_STEP)
    with monkeypatch.context() as m:
        _stop_after_checkpoint(m, epoch=0, step=step)
        with pytest.raises(_Stop):
            train_supernet(cfg, tmp_path / "b", device="cpu", progress=False, splits=synthetic)
    ckpt = load_checkpoint(tmp_path / "b")
    assert (ckpt.epoch, ckpt.step, ckpt.mid_epoch, ckpt.history) == (0, step, True, [])
    assert ckpt.progress() == f"epoch 0 + {step} steps of epoch 1"
    resumed = train_supernet(cfg, tmp_path / "b", resume=True, device="cpu", progress=False, splits=synthetic)
    _assert_same_weights(straight(reorder).supernet, resumed.supernet)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight(reorder).history]
    final = load_checkpoint(tmp_path / "b")
    assert (final.epoch, final.step, final.resume_state) == (2, 0, None)


def test_checkpoints_are_written_by_the_clock(monkeypatch, tmp_path, tiny_space_path, synthetic):
    """With the default 5 minutes a short run writes only its end-of-epoch checkpoints; with 2
    minutes and a clock that advances 1 minute per reading, every other step is checkpointed."""
    written = []
    real = training.save_checkpoint

    def recording(path, ckpt):
        written.append((ckpt.epoch, ckpt.step))
        return real(path, ckpt)

    monkeypatch.setattr(training, "save_checkpoint", recording)
    train_supernet(_cfg(tiny_space_path, epochs=1), tmp_path / "a", device="cpu", progress=False,
                   splits=synthetic)
    assert written == [(1, 0)]

    minutes = iter(range(1, 1000))  # time.monotonic as the trainer sees it: a minute later at every call
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=time.perf_counter,
                                                          monotonic=lambda: 60.0 * next(minutes)))
    written.clear()
    train_supernet(_cfg(tiny_space_path, epochs=1, checkpoint_minutes=2.0), tmp_path / "b", progress=False,
                   splits=synthetic)
    # the clock is read at the start, after each step and after each save, so a checkpoint falls
    # due after steps 2, 4 and 6; each is written during the next step, once that step's loss is
    # seen to be finite (after step 6, the epoch's last, at once)
    assert written == [(0, 2), (0, 4), (0, 6), (1, 0)]


def test_mid_epoch_checkpoint_is_not_taken_for_a_finished_supernet(monkeypatch, tmp_path, tiny_space_path,
                                                                     synthetic):
    """``nas.search``'s check (``ckpt.epoch >= epochs``) resumes a mid-epoch checkpoint, and
    ``load_supernet`` reads it with ``epoch`` = the finished epochs only."""
    from nas.search._pipeline import ensure_supernet
    from nas.tasks import task_for_data

    cfg = _cfg(tiny_space_path, checkpoint_minutes=EVERY_STEP)
    with monkeypatch.context() as m:
        _stop_after_checkpoint(m, epoch=1, step=3)
        with pytest.raises(_Stop):
            train_supernet(cfg, tmp_path, device="cpu", progress=False, splits=synthetic)
    supernet, ckpt = load_supernet(tmp_path)
    assert (ckpt.epoch, ckpt.step, [h["epoch"] for h in ckpt.history]) == (1, 3, [1])
    assert ckpt.epoch < cfg.epochs  # so "finished" checks that read only .epoch resume it

    space = supernet.space
    search_cfg = SimpleNamespace(supernet=str(tmp_path), smoke=False, epochs=None, space=cfg.space, loss="auto",
                                 data=cfg.data, data_dir=None, precision="auto")
    inputs = SimpleNamespace(cfg=search_cfg, space=space, splits=synthetic, task=task_for_data(synthetic))
    logs = []
    _, done, info = ensure_supernet(inputs, progress=False, log=logs.append)
    assert "holds epoch 1 + 3 steps of epoch 2 of 2; resuming" in logs[0] and info["trained_now"]
    assert (done.epoch, done.step, [h["epoch"] for h in done.history]) == (2, 0, [1, 2])


_KILLABLE = """\
import dataclasses, sys
import nas.train._cli as cli
real = cli.train_supernet
# the CLI has no --checkpoint-minutes flag (yet): set the interval on the config it builds
cli.train_supernet = lambda cfg, *a, **k: real(dataclasses.replace(cfg, checkpoint_minutes=float(sys.argv[1])), *a, **k)
sys.exit(cli.main(sys.argv[2:]))
"""


def test_kill_9_mid_epoch_then_resume(tmp_path, tiny_space_path, straight):
    """A real ``python -m nas.train``-style process killed with SIGKILL right after its first
    mid-epoch checkpoint; ``--resume`` finishes the run exactly as an uninterrupted one."""
    run = tmp_path / "run"
    argv = ["--space", str(tiny_space_path), "--data", "synthetic", "--resolution", "arch", "--epochs", "2",
            "--batch-size", "32", "--subset", str(STEPS * 32), "--val-subset", "40", "--calib-images", "64",
            "--warmup-epochs", "0.5", "--n-random", "1", "--run-dir", str(run), "--no-progress",
            "--torch-device", "cpu"]
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, str(EVERY_STEP), *argv, "--threads", "1"],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not (run / "supernet.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    output = (tmp_path / "log.txt").read_text()
    assert proc.returncode == -signal.SIGKILL, output  # killed, not finished (nor failed) on its own
    killed = load_checkpoint(run)  # intact, whatever the kill interrupted
    assert killed.epoch < 2 and (killed.mid_epoch or killed.epoch == 1), killed.progress()

    assert main(argv + ["--resume"]) == 0
    ckpt = load_checkpoint(run)
    assert (ckpt.epoch, ckpt.step, [h["epoch"] for h in ckpt.history]) == (2, 0, [1, 2])
    resumed, _ = load_supernet(run)
    _assert_same_weights(straight(False).supernet, resumed)
    assert not list(run.glob("*.tmp"))  # a write the kill cut short left one: the next save replaced it
