"""Data-parallel supernet training: gradient averaging over two gloo processes equals the
full-batch gradient; a 2-worker Ray Train run on a local 2-CPU cluster gives a normal checkpoint
that ``nas.search`` (here with its Ray backend) accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.data import load_data
from nas.distributed import DataParallel, train_supernet_ray
from nas.errors import ConfigError
from nas.supernet import CheckpointError, load_checkpoint, load_supernet
from nas.train import TrainConfig

ray = pytest.importorskip("ray")


def _cfg(space_file, **kw) -> TrainConfig:
    base = dict(space=str(space_file), data="synthetic", epochs=1, batch_size=32, resolution=None, n_random=1,
                val_subset=40, calib_images=64, warmup_epochs=0.5)
    return TrainConfig(**(base | kw))


def test_data_parallel_share_and_errors():
    dp = DataParallel(rank=1, world_size=2)
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    xs, ys = dp.shard(x, y)
    assert ys.tolist() == [1, 3, 5] and torch.equal(xs, x[1::2]) and not dp.is_writer
    with pytest.raises(ConfigError, match=r"rank: 2 \(allowed: 0 .. 1\)"):
        DataParallel(rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size: 33 .*multiple of the 2 workers"):
        dp.check_batch_size(33)


_GLOO_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch, torch.distributed as dist
    from nas.distributed import DataParallel

    rank, init, out, mismatch = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(rank)  # different initial weights: broadcast_parameters must make them rank 0's
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)
    dp = DataParallel(rank, 2)
    dp.broadcast_parameters(model)
    xs, ys = dp.shard(x, y)
    torch.nn.functional.mse_loss(model(xs), ys).backward()
    if mismatch and rank == 1:
        model[2].bias.grad = None  # as if this worker had trained another subnet
    result = {"mean": dp.mean(rank + 1.0)}
    try:
        dp.average_gradients(model)
        result["grads"] = [p.grad.tolist() for p in model.parameters()]
        result["weights"] = [p.detach().tolist() for p in model.parameters()]
    except RuntimeError as exc:
        result["error"] = str(exc)
    json.dump(result, open(out, "w"))
    dist.barrier()  # neither leaves while the other still talks to it (gloo aborts on a vanished peer)
    dist.destroy_process_group()
    """
)


def _run_gloo_pair(tmp_path: Path, mismatch: bool) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(_GLOO_WORKER)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    init = f"file://{tmp_path / 'store'}"
    procs = [subprocess.Popen([sys.executable, str(script), str(r), init, str(tmp_path / f"{r}.json"),
                               "1" if mismatch else "0"], env=env) for r in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    return [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(2)]


def test_gradient_averaging_equals_the_full_batch_gradient(tmp_path):
    """Two gloo processes, each on half the batch: averaged gradients == one process on all of it."""
    results = _run_gloo_pair(tmp_path, mismatch=False)
    assert results[0]["mean"] == results[1]["mean"] == 1.5
    assert results[0]["weights"] == results[1]["weights"]  # rank 0's weights everywhere
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        for p, w in zip(model.parameters(), results[0]["weights"]):
            p.copy_(torch.tensor(w))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=g), torch.randn(8, 2, generator=g)
    torch.nn.functional.mse_loss(model(x), y).backward()
    for p, g0, g1 in zip(model.parameters(), results[0]["grads"], results[1]["grads"]):
        assert g0 == g1
        torch.testing.assert_close(torch.tensor(g0), p.grad)


def test_workers_with_different_subnets_are_refused(tmp_path):
    results = _run_gloo_pair(tmp_path, mismatch=True)
    for r in results:
        assert "different parameters" in r["error"] and "grads" not in r


def test_bad_settings_fail_before_ray_starts(tmp_path, tiny_space_file):
    with pytest.raises(ConfigError) as info:
        train_supernet_ray(_cfg(tiny_space_file, batch_size=33), tmp_path, num_workers=2, threads_per_worker=0)
    assert "batch_size: 33" in str(info.value) and "threads_per_worker: 0" in str(info.value)
    (tmp_path / "supernet.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="exists: pass --resume"):
        train_supernet_ray(_cfg(tiny_space_file), tmp_path, num_workers=2)
    assert not ray.is_initialized()


@pytest.mark.slow
def test_two_workers_train_a_checkpoint_that_search_accepts(tmp_path, tiny_space_file, tiny_space, fake_table):
    splits = load_data("synthetic", channels=3)  # what `--data synthetic` loads in the search below
    logs: list[str] = []
    path = train_supernet_ray(_cfg(tiny_space_file), tmp_path / "supernet", num_workers=2, splits=splits,
                              num_cpus=2, log=logs.append)
    assert not ray.is_initialized()
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 1 and ckpt.history[0]["workers"] == 2 and "val_top1_largest" in ckpt.history[0]
    assert any(line.startswith("epoch 1/1: loss") for line in logs)  # rank 0's epoch shown by the driver
    supernet, _ = load_supernet(path, space=tiny_space, num_classes=splits.num_classes)
    out = supernet(torch.randn(2, 3, 16, 16), tiny_space.largest())
    assert out.shape == (2, splits.num_classes) and torch.isfinite(out).all()

    from nas.search.__main__ import main as search_main

    run = tmp_path / "search"
    argv = ["--device", str(fake_table), "--budget", "2.5ms", "--space", str(tiny_space_file), "--data", "synthetic",
            "--trials", "4", "--run-dir", str(run), "--supernet", str(tmp_path / "supernet"), "--val-limit", "64",
            "--calib-images", "64", "--no-progress", "--backend", "ray", "--max-concurrent", "2"]
    assert search_main(argv) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["search"]["backend"] == "ray" and result["search"]["completed_trials"] == 4
    assert not result["supernet"]["trained_now"] and result["best"] is not None
    assert (run / "best" / "model.onnx").is_file()
    study = optuna.load_study(study_name=result["search"]["study_name"], storage=result["search"]["storage"])
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4 and any(t.user_attrs.get("backend") == "ray" for t in done)
