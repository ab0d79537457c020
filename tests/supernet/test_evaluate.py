"""Scoring subnets: top-1 after BN recalibration, the evaluate CLI and its errors (the ``--arch`` and
``--torch-device`` parsers themselves: tests/test_cli_args.py)."""

from __future__ import annotations

import pytest
import torch

from nas.data import MAX_RESOLUTION
from nas.evaluate import calibration_batches, evaluate_arch, main
from nas.supernet import Checkpoint, Supernet, save_checkpoint


def test_evaluate_arch_recalibrates_and_scores(tiny_space, synthetic):
    supernet = Supernet(tiny_space, synthetic.num_classes).eval()
    arch = tiny_space.sample(2)
    score = evaluate_arch(supernet, arch, synthetic, calib_images=100)
    assert score.recalibrated and score.calibration_images == 100 and score.images == len(synthetic.val)
    assert score.resolution == arch.resolution and 0.0 <= score.top1 <= 100.0
    plain = evaluate_arch(supernet, arch, synthetic, recalibrate=False)
    assert not plain.recalibrated and plain.calibration_images == 0


def test_shared_calibration_batches_give_the_same_score(tiny_space, synthetic):
    supernet = Supernet(tiny_space, synthetic.num_classes).eval()
    arch = tiny_space.largest()
    batches = calibration_batches(synthetic, images=64, resolution=arch.resolution, seed=0)
    a = evaluate_arch(supernet, arch, synthetic, calib_batches=batches)
    b = evaluate_arch(supernet, arch, synthetic, calib_images=64, seed=0)
    assert a.top1 == b.top1


def test_evaluate_refuses_class_mismatch_and_bad_split(tiny_space, synthetic):
    with pytest.raises(ValueError, match="4 classes but the supernet 10"):
        evaluate_arch(Supernet(tiny_space, 10), tiny_space.largest(), synthetic)
    with pytest.raises(ValueError, match="split must be 'val' or 'test', got 'train'"):
        evaluate_arch(Supernet(tiny_space, 4), tiny_space.largest(), synthetic, split="train")


def test_cli_reports_missing_checkpoint(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "none")]) == 2
    assert "no supernet checkpoint" in capsys.readouterr().err


def _save_tiny_checkpoint(run_dir, space) -> None:
    supernet = Supernet(space, 4)
    save_checkpoint(run_dir, Checkpoint(
        space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
        num_classes=4, data={"name": "synthetic", "data_dir": None, "split_seed": 0}, train_resolution=None, epoch=1,
        kernel_transform=True, settings={}, model=supernet.state_dict(),
    ))


def test_cli_human_output(tmp_path, tiny_space, capsys):
    _save_tiny_checkpoint(tmp_path, tiny_space)
    assert main(["--run-dir", str(tmp_path), "--arch", "largest", "--calib-images", "50"]) == 0
    out = capsys.readouterr().out
    assert "top1 " in out and "after BN recalibration on 50 images" in out


def test_subnet_resolution_scales_with_the_deploy_resolution():
    from nas.evaluate import subnet_resolution
    from nas.space import load_space

    space = load_space("mobilenetv3_large")
    big, small = space.largest(), space.smallest()
    assert subnet_resolution(32, True, big, 224) == 32
    assert subnet_resolution(32, True, small, 224) == 23  # 160 px -> round(22.86)
    assert subnet_resolution(32, False, small, 224) == 32
    assert subnet_resolution(None, True, small, 224) == 160


def test_evaluate_arch_refuses_a_limit_below_one(tiny_space, synthetic):
    supernet = Supernet(tiny_space, synthetic.num_classes)
    for limit in (-3, 0):  # -3 used to score all but the last 3 images
        with pytest.raises(ValueError, match=f"limit must be >= 1 image .*got {limit}"):
            evaluate_arch(supernet, tiny_space.largest(), synthetic, limit=limit, recalibrate=False)


def test_evaluate_arch_refuses_an_absurd_resolution_before_allocating(tiny_space, synthetic):
    with pytest.raises(ValueError, match=rf"resolution: 100000 px \(allowed: integer 1..{MAX_RESOLUTION}\)"):
        evaluate_arch(Supernet(tiny_space, synthetic.num_classes), tiny_space.largest(), synthetic, resolution=100_000)


@pytest.mark.parametrize("argv, message", [
    (["--limit", "-3"], "argument --limit: -3 (allowed: integer >= 1)"),
    (["--limit", "0"], "argument --limit: 0 (allowed: integer >= 1)"),
    (["--calib-images", "0"], "argument --calib-images: 0 (allowed: integer >= 1)"),
    (["--threads", "-1"], "argument --threads: -1 (allowed: integer >= 1)"),
    (["--threads", "0"], "argument --threads: 0 (allowed: integer >= 1)"),
    (["--resolution", "100000"], f"argument --resolution: 100000 (allowed: integer 8..{MAX_RESOLUTION})"),
    (["--resolution", "0"], f"argument --resolution: 0 (allowed: integer 8..{MAX_RESOLUTION})"),
])
def test_cli_refuses_numeric_flags_out_of_range(tmp_path, tiny_space, capsys, argv, message):
    _save_tiny_checkpoint(tmp_path, tiny_space)
    with pytest.raises(SystemExit) as info:
        main(["--run-dir", str(tmp_path), "--calib-images", "50", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == f"python -m nas.evaluate: error: {message}"


@pytest.mark.parametrize("device, message", [
    ("bogus", "--torch-device 'bogus': unknown device (allowed: auto, cpu, cuda, cuda:N)"),
    ("cuda", "--torch-device cuda: CUDA is not available on this machine"),
])
def test_cli_refuses_unknown_or_absent_devices(tmp_path, tiny_space, capsys, monkeypatch, device, message):
    _save_tiny_checkpoint(tmp_path, tiny_space)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--run-dir", str(tmp_path), "--torch-device", device]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"error: {message}")


def test_cli_device_is_a_deprecated_alias_of_torch_device(tmp_path, tiny_space, capsys):
    _save_tiny_checkpoint(tmp_path, tiny_space)
    argv = ["--run-dir", str(tmp_path), "--arch", "smallest", "--calib-images", "50", "--json"]
    assert main([*argv, "--torch-device", "cpu"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*argv, "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert err == ("python -m nas.evaluate: warning: --device is deprecated and will be removed in the next "
                   "release; use --torch-device (in nas.search and nas.latency, --device names a latency table)\n")
    assert '"top1"' in out


@pytest.mark.parametrize("arch, message", [
    ("mobilenetv3_large", "--arch 'mobilenetv3_large': a preset is a fixed network, not a member of a search space "
                          "(allowed: largest, smallest, random"),
    ("biggest", "--arch 'biggest': not a form this command accepts (allowed: largest, smallest, random"),
])
def test_cli_arch_errors_list_what_is_allowed(tmp_path, tiny_space, capsys, arch, message):
    _save_tiny_checkpoint(tmp_path, tiny_space)
    assert main(["--run-dir", str(tmp_path), "--arch", arch]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith(f"error: {message}")
