"""Sandwich-rule training: seeded, resumable without loss, refuses mismatched checkpoints and
non-finite settings, stops when the loss diverges."""

from __future__ import annotations

import json
import re

import pytest
import torch

from nas.data import DataSplits, ImageData, load_data
from nas.supernet import CheckpointError, load_checkpoint
from nas.train import TrainConfig, lr_at, soft_cross_entropy, train_supernet
from nas.train._cli import main


def _cfg(space_path, **kw):
    base = dict(space=str(space_path), data="synthetic", epochs=2, batch_size=32, resolution=None, n_random=1,
                val_subset=40, calib_images=64, warmup_epochs=0.5)
    return TrainConfig(**(base | kw))


def test_schedule_warms_up_then_decays_to_zero():
    lrs = [lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01) and lrs[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[-1] < 1e-3


def test_soft_cross_entropy_equals_hard_on_one_hot():
    logits = torch.randn(4, 5)
    y = torch.tensor([0, 3, 1, 4])
    torch.testing.assert_close(soft_cross_entropy(logits, torch.eye(5)[y]), torch.nn.functional.cross_entropy(logits, y))


def test_config_errors_name_field_value_and_allowed():
    with pytest.raises(ValueError, match=r"epochs: 0 \(allowed: integer >= 1\)") as info:
        TrainConfig(epochs=0, n_random=-1)
    assert "n_random: -1" in str(info.value)  # all problems at once


class _Recording:
    """A Supernet that records (arch, input side) of each forward call (installed by the test)."""

    @staticmethod
    def install(monkeypatch):
        import nas.train._supernet_training as training
        from nas.supernet import Supernet

        calls = []

        class Recording(Supernet):
            def forward(self, x, arch):
                if self.training:
                    calls.append((arch, x.shape[-1]))
                return super().forward(x, arch)

        monkeypatch.setattr(training, "Supernet", Recording)
        return calls


@pytest.mark.parametrize("sampling", ["step-sandwich", "teacher-max", "step", "arch"])
def test_resolution_sampling(monkeypatch, tmp_path, tiny_space, tiny_space_path, synthetic, sampling):
    calls = _Recording.install(monkeypatch)
    cfg = _cfg(tiny_space_path, epochs=1, resolution_sampling=sampling)
    train_supernet(cfg, tmp_path, progress=False, splits=synthetic)
    largest, smallest = tiny_space.largest(), tiny_space.smallest()
    steps = []  # each step starts with the teacher: the largest subnet on the labels, at its own side
    for arch, side in calls:
        if arch == largest and side == largest.resolution and (not steps or len(steps[-1]) > 1):
            steps.append([])
        steps[-1].append((arch, side))
    assert len(steps) == len(synthetic.train) // cfg.batch_size or sampling == "step"
    if sampling == "step-sandwich":  # teacher; then largest (unless at the teacher's side), smallest, 1 random
        for s in steps:
            assert s[0] == (largest, largest.resolution)
            students = s[1:]
            assert len({side for _, side in students}) == 1
            side = students[0][1]
            expected = ([largest] if side != largest.resolution else []) + [smallest]
            assert [arch for arch, _ in students[:-1]] == expected and len(students) == len(expected) + 1
        assert {s[-1][1] for s in steps} == set(tiny_space.config.resolutions)
        return
    steps = [calls[i:i + 3] for i in range(0, len(calls), 3)]  # largest, smallest, 1 random per step
    assert len(steps) == len(synthetic.train) // cfg.batch_size and all(len(s) == 3 for s in steps)
    assert all(s[0][0] == largest and s[1][0] == smallest for s in steps)
    if sampling == "step":  # one side per step, teacher included; every resolution gets its share
        assert all(len({side for _, side in s}) == 1 for s in steps)
        assert {s[0][1] for s in steps} == set(tiny_space.config.resolutions)
    elif sampling == "teacher-max":  # teacher at its own (the largest) side, students share one per step
        assert all(s[0][1] == largest.resolution for s in steps)
        assert all(len({side for _, side in s[1:]}) == 1 for s in steps)
        assert {s[1][1] for s in steps} == set(tiny_space.config.resolutions)
    else:  # each subnet at its own arch's resolution
        assert all(side == arch.resolution for s in steps for arch, side in s)


def test_checkpoints_from_before_a_setting_existed_resume_as_they_were_trained():
    settings = TrainConfig(resolution_sampling="arch").to_dict()
    del settings["resolution_sampling"]
    assert TrainConfig.from_checkpoint(settings).resolution_sampling == "arch"
    del settings["reorder_channels"]
    assert TrainConfig.from_checkpoint(settings).reorder_channels is False
    assert TrainConfig().resolution_sampling == "step-sandwich"
    with pytest.raises(ValueError, match=r"resolution_sampling: 'each' \(allowed: step-sandwich \| teacher-max \| step \| arch\)"):
        TrainConfig(resolution_sampling="each")


@pytest.mark.parametrize("reorder", [False, True])
def test_interrupted_training_resumes_exactly(tmp_path, tiny_space_path, synthetic, reorder):
    cfg = _cfg(tiny_space_path, reorder_channels=reorder)  # re-ordering happens before the epoch-1 checkpoint
    straight = train_supernet(cfg, tmp_path / "a", progress=False, splits=synthetic)
    train_supernet(cfg, tmp_path / "b", progress=False, splits=synthetic, stop_after_epoch=1)
    assert load_checkpoint(tmp_path / "b").epoch == 1
    resumed = train_supernet(cfg, tmp_path / "b", resume=True, progress=False, splits=synthetic)
    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    history = json.loads((tmp_path / "b" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val_top1_largest" in history[0]


def test_resume_with_other_settings_or_existing_run_is_refused(tmp_path, tiny_space_path, synthetic):
    cfg = _cfg(tiny_space_path, epochs=1)
    train_supernet(cfg, tmp_path, progress=False, splits=synthetic)
    with pytest.raises(CheckpointError, match="exists: pass --resume"):
        train_supernet(cfg, tmp_path, progress=False, splits=synthetic)
    with pytest.raises(CheckpointError, match="lr: checkpoint has 0.1, command line gives 0.5"):
        train_supernet(_cfg(tiny_space_path, lr=0.5), tmp_path, resume=True, given={"lr"}, splits=synthetic)
    six = DataSplits(synthetic.name, _relabel(synthetic.train), _relabel(synthetic.val), None, synthetic.mean,
                     synthetic.std)
    with pytest.raises(CheckpointError, match="has 4 output classes, the data has 6"):
        train_supernet(cfg, tmp_path, resume=True, splits=six)


def _relabel(data: ImageData) -> ImageData:
    return ImageData(data.images, data.labels, data.classes + ("extra1", "extra2"))


def test_cli_smoke_run_then_evaluate(tmp_path, tiny_space_path, capsys):
    run = tmp_path / "run"
    argv = ["--space", str(tiny_space_path), "--data", "synthetic", "--resolution", "arch", "--epochs", "1",
            "--batch-size", "32", "--val-subset", "40", "--calib-images", "64", "--run-dir", str(run), "--no-progress"]
    assert main(argv) == 0
    assert (run / "supernet.pt").is_file()
    # resuming a finished run is a no-op; extending it with --epochs continues
    assert main(argv + ["--resume", "--epochs", "2"]) == 0
    assert load_checkpoint(run).epoch == 2

    from nas.evaluate import main as evaluate_main

    capsys.readouterr()
    assert evaluate_main(["--run-dir", str(run), "--arch", "smallest", "--json", "--calib-images", "64"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recalibrated"] and 0.0 <= out["top1"] <= 100.0 and out["epoch"] == 2
    assert out["images"] == len(load_data("synthetic", seed=0).val)


def test_cli_refuses_bad_values(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path), "--epochs", "0", "--data", "synthetic"]) == 2
    assert "epochs: 0" in capsys.readouterr().err
    assert main(["--run-dir", str(tmp_path), "--resolution", "big"]) == 2
    assert "'big': expected an integer or 'arch'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, expected", [
    ([], (False, False, set())),
    (["--kernel-transform"], (True, False, {"kernel_transform"})),
    (["--no-kernel-transform"], (False, False, {"kernel_transform"})),
    (["--reorder-channels"], (False, True, {"reorder_channels"})),
])
def test_cli_kernel_and_reorder_flags(argv, expected):
    from nas.train._cli import _config_from_args, _parser

    cfg, given = _config_from_args(_parser().parse_args(argv))
    assert (cfg.kernel_transform, cfg.reorder_channels, given) == expected


@pytest.mark.parametrize("field, value, allowed", [
    ("lr", float("inf"), "a finite number > 0"),
    ("lr", float("nan"), "a finite number > 0"),
    ("lr", 0.0, "a finite number > 0"),
    ("lr", "0.1", "a finite number > 0"),
    ("weight_decay", float("inf"), "a finite number >= 0"),
    ("warmup_epochs", float("inf"), "a finite number >= 0"),
    ("momentum", float("nan"), r"\[0, 1\)"),
    ("distill_weight", float("nan"), r"\[0, 1\]"),
    ("checkpoint_minutes", 0.0, "a finite number > 0"),
    ("checkpoint_minutes", float("inf"), "a finite number > 0"),
])
def test_config_rejects_non_finite_and_non_positive_numbers(field, value, allowed):
    with pytest.raises(ValueError, match=rf"{field}: {re.escape(repr(value))} \(allowed: {allowed}\)"):
        TrainConfig(**{field: value})


def _tiny_argv(space_path, run):
    return ["--space", str(space_path), "--data", "synthetic", "--resolution", "arch", "--epochs", "1",
            "--batch-size", "32", "--val-subset", "40", "--calib-images", "64", "--run-dir", str(run), "--no-progress"]


def test_cli_refuses_lr_inf_before_training(tmp_path, tiny_space_path, capsys):
    try:  # refused by the flag's parser (SystemExit 2) or by TrainConfig (exit status 2)
        code = main(_tiny_argv(tiny_space_path, tmp_path / "run") + ["--lr", "inf"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert re.search(r"lr: '?inf'? \(allowed: a finite number", capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_cli_stops_a_diverging_run_with_an_error(tmp_path, tiny_space_path, capsys):
    """A finite but huge --lr: the loss turns NaN within a few steps; the run stops there."""
    assert main(_tiny_argv(tiny_space_path, tmp_path / "run") + ["--lr", "1e30"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"error: training diverged at epoch 1/1, step \d+/13: the loss is (nan|inf)", err), err
    assert "no checkpoint was written" in err and "lower the learning rate (e.g. --lr 0.1)" in err
    assert not (tmp_path / "run" / "supernet.pt").exists()


@pytest.mark.parametrize("checkpoint_minutes", [5.0, 1e-9])
def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
        monkeypatch, tmp_path, tiny_space_path, synthetic, checkpoint_minutes):
    """Epoch 1 trains normally; in epoch 2 the learning rate explodes. Training stops with an error
    naming the epoch, step and loss, and the checkpoint on disk is epoch 1's. (With 1e-9 minutes a
    checkpoint is due after every step, but one is written only once the next step's loss has
    been seen to be finite: the first 1e30 update gives huge but finite weights and a NaN loss on
    the next step, so it is never saved.)"""
    import nas.train._supernet_training as training

    steps = len(synthetic.train) // 32
    real_lr_at = training.lr_at
    monkeypatch.setattr(training, "lr_at", lambda step, *a: real_lr_at(step, *a) if step < steps else 1e30)
    cfg = _cfg(tiny_space_path, checkpoint_minutes=checkpoint_minutes)
    with pytest.raises(training.TrainingDivergedError) as info:
        train_supernet(cfg, tmp_path, progress=False, splits=synthetic)
    message = str(info.value)
    assert re.search(r"training diverged at epoch 2/2, step \d+/13: the loss is (nan|inf) ", message), message
    assert "lower the learning rate" in message
    assert f"{tmp_path / 'supernet.pt'} keeps the last good checkpoint" in message
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.epoch, ckpt.step) == (1, 0) and "keeps the last good checkpoint (epoch 1)" in message
    assert max(float(t.abs().max()) for t in ckpt.model.values() if t.is_floating_point()) < 100
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())] == [1]


def test_static_training_stops_on_a_non_finite_loss(tiny_space, synthetic):
    from nas.nn import build_network
    from nas.train import train_static
    from nas.train._supernet_training import TrainingDivergedError

    net = build_network(tiny_space.resolve(tiny_space.smallest(), synthetic.num_classes))
    cfg = TrainConfig(epochs=1, batch_size=32, lr=1e30, warmup_epochs=0.0)
    with pytest.raises(TrainingDivergedError,
                       match=r"stand-alone training diverged at epoch 1/1, step \d+/13: the loss is"):
        train_static(net, synthetic, cfg, resolution=16, device="cpu", progress=False)


def test_non_finite_weights_are_never_checkpointed(monkeypatch, tmp_path, tiny_space_path, synthetic):
    import nas.train._supernet_training as training

    real_scores = training._epoch_scores

    def scores_then_poison(supernet, *a):
        out = real_scores(supernet, *a)
        with torch.no_grad():
            next(supernet.parameters())[0].fill_(float("nan"))
        return out

    monkeypatch.setattr(training, "_epoch_scores", scores_then_poison)
    with pytest.raises(training.TrainingDivergedError, match=r"in epoch 1/1: the weights hold NaN or infinite values "
                                                             r"\(stem\.\S+\) .* no checkpoint was written"):
        train_supernet(_cfg(tiny_space_path, epochs=1), tmp_path, progress=False, splits=synthetic)
    assert not (tmp_path / "supernet.pt").exists()
