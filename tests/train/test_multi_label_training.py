"""Multi-label training: supernet training on multi-hot targets, evaluation with mAP / F1, the CLIs."""

from __future__ import annotations

import json

import pytest

from nas.data import DataSplits, load_data
from nas.data._load import synthetic_data
from nas.data._types import channel_stats, split_train_val
from nas.evaluate import evaluate_arch, main as evaluate_main
from nas.train._cli import main as train_main
from nas.supernet import CheckpointError, load_checkpoint
from nas.train import TrainConfig, train_supernet

METRICS = {"mAP", "f1_micro", "f1_macro", "precision", "recall"}


@pytest.fixture(scope="module")
def multi():
    train, val = split_train_val(synthetic_data(320, multi_label=True, seed=0), 0.2, 0)
    test = synthetic_data(96, multi_label=True, seed=1)
    mean, std = channel_stats(train)
    return DataSplits("synthetic", train, val, test, mean, std, "synthetic multi-label (tests)")


def _cfg(space_file, **kw):
    base = dict(space=str(space_file), data="synthetic", epochs=1, batch_size=32, resolution=None, n_random=1,
                val_subset=48, calib_images=64)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("loss", ["bce", "focal"])
def test_train_and_evaluate_on_multi_hot_targets(tmp_path, tiny_space_file, multi, loss):
    result = train_supernet(_cfg(tiny_space_file, loss=loss), tmp_path, progress=False, splits=multi)
    record = result.history[-1]
    assert {"val_mAP_largest", "val_mAP_smallest"} <= set(record) and "val_top1_largest" not in record
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.data["task"] == "multi-label" and ckpt.settings["loss"] == loss
    arch = result.supernet.space.largest()
    val = evaluate_arch(result.supernet, arch, multi, calib_images=64)
    assert val.task == "multi-label" and val.metric_name == "mAP" and set(val.metrics) == METRICS
    assert 0 <= val.metric <= 100 and len(val.tuned["thresholds"]) == multi.num_classes
    test = evaluate_arch(result.supernet, arch, multi, split="test", calib_images=64)
    # test thresholds come from the validation split
    assert test.tuned == evaluate_arch(result.supernet, arch, multi, calib_images=64).tuned
    with pytest.raises(AttributeError, match="no top-1"):
        _ = val.top1


def test_a_multi_label_checkpoint_refuses_single_label_data(tmp_path, tiny_space_file, multi):
    train_supernet(_cfg(tiny_space_file), tmp_path, progress=False, splits=multi)
    single = load_data("synthetic", synthetic_size=320, channels=3)
    with pytest.raises(CheckpointError, match="multi-label task, but the data is single-label"):
        train_supernet(_cfg(tiny_space_file, epochs=2), tmp_path, resume=True, given={"epochs"}, progress=False,
                       splits=single)


@pytest.mark.parametrize(("given", "epochs", "distill"), [
    (None, 1, 0.5),                          # programmatic: the config as it is
    (set(), 10, 0.0),                        # command line, nothing set: the task's recipe
    ({"epochs", "distill_weight"}, 1, 0.5),  # command line, both set: the user's
])  # fmt: skip
def test_a_fresh_command_line_run_takes_the_tasks_recipe(tmp_path, tiny_space_file, multi, given, epochs, distill):
    from nas.train import prepare_run

    cfg, *_ = prepare_run(_cfg(tiny_space_file), tmp_path / "supernet.pt", resume=False, given=given, splits=multi)
    assert (cfg.epochs, cfg.distill_weight) == (epochs, distill)
    single = load_data("synthetic", synthetic_size=320, channels=3)
    cfg, *_ = prepare_run(_cfg(tiny_space_file), tmp_path / "supernet.pt", resume=False, given=set(), splits=single)
    assert (cfg.epochs, cfg.distill_weight) == (1, 0.5)  # single-label: the recipe's own defaults


def test_focal_loss_on_single_label_data_is_refused_before_training(tmp_path, tiny_space_file):
    from nas.errors import ConfigError

    single = load_data("synthetic", synthetic_size=320, channels=3)
    with pytest.raises(ConfigError, match="loss: 'focal'"):
        train_supernet(_cfg(tiny_space_file, loss="focal"), tmp_path, progress=False, splits=single)
    assert not (tmp_path / "supernet.pt").exists()



def test_cli_train_and_evaluate_on_fashion_mosaic(tmp_path, tiny_space_file, capsys):
    import gzip
    import struct

    import numpy as np

    fm = tmp_path / "fm"
    fm.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        for kind, array in (("images-idx3", rng.integers(1, 256, (n, 28, 28))), ("labels-idx1", np.arange(n) % 10)):
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (fm / f"{prefix}-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    run = tmp_path / "run"
    assert train_main(["--space", str(tiny_space_file), "--data", "fashion-mosaic", "--data-dir", str(fm),
                       "--run-dir", str(run), "--epochs", "1", "--subset", "64", "--batch-size", "32",
                       "--val-subset", "48", "--calib-images", "64", "--resolution", "arch", "--loss", "focal",
                       "--focal-gamma", "1.5", "--no-progress"]) == 0
    capsys.readouterr()
    assert evaluate_main(["--run-dir", str(run), "--json", "--limit", "64", "--calib-images", "64",
                          "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "multi-label" and out["metric_name"] == "mAP"
    assert METRICS <= set(out) and len(out["tuned"]["thresholds"]) == 10
    settings = load_checkpoint(run / "supernet.pt").settings
    assert settings["focal_gamma"] == 1.5
    # the multi-label recipe's default where the command line set nothing, the user's value where it did
    assert settings["distill_weight"] == 0.0 and settings["epochs"] == 1
    # the same supernet on single-label data: one clear error
    assert evaluate_main(["--run-dir", str(run), "--data", "fashion-mnist", "--data-dir", str(fm)]) == 2
    assert "trained for a multi-label task" in capsys.readouterr().err
