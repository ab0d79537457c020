"""Scoring subnets: top-1 after BN recalibration, arch parsing, the evaluate CLI's errors."""

from __future__ import annotations


import pytest

from nas.errors import ArchError
from nas.evaluate import calibration_batches, evaluate_arch, main, parse_arch
from nas.space import load_space
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


def test_parse_arch_forms(tiny_space, tmp_path):
    arch = tiny_space.sample(4)
    assert parse_arch("largest", tiny_space) == tiny_space.largest()
    assert parse_arch("smallest", tiny_space) == tiny_space.smallest()
    assert parse_arch("random:4", tiny_space) == arch
    assert parse_arch(arch.to_json(), tiny_space) == arch
    assert parse_arch(arch.to_string(), tiny_space) == arch
    (tmp_path / "a.json").write_text(arch.to_json())
    assert parse_arch(str(tmp_path / "a.json"), tiny_space) == arch
    with pytest.raises(ArchError, match="expected largest, smallest"):
        parse_arch("biggest", tiny_space)
    with pytest.raises(ArchError, match="not in space 'tiny'"):
        parse_arch(load_space("mobilenetv3_small32").largest().to_json(), tiny_space)


def test_cli_reports_missing_checkpoint(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path / "none")]) == 2
    assert "no supernet checkpoint" in capsys.readouterr().err


def test_cli_human_output(tmp_path, tiny_space, capsys):
    supernet = Supernet(tiny_space, 4)
    save_checkpoint(tmp_path, Checkpoint(
        space_name=tiny_space.name, space_digest=tiny_space.digest, space_config=tiny_space.config.to_dict(),
        num_classes=4, data={"name": "synthetic", "data_dir": None, "split_seed": 0}, train_resolution=None, epoch=1,
        kernel_transform=True, settings={}, model=supernet.state_dict(),
    ))
    assert main(["--run-dir", str(tmp_path), "--arch", "largest", "--calib-images", "50"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "after BN recalibration on 50 images" in out


def test_subnet_resolution_scales_with_the_deploy_resolution():
    from nas.evaluate import subnet_resolution
    from nas.space import load_space

    space = load_space("mobilenetv3_large")
    big, small = space.largest(), space.smallest()
    assert subnet_resolution(32, True, big, 224) == 32
    assert subnet_resolution(32, True, small, 224) == 23  # 160 px -> round(22.86)
    assert subnet_resolution(32, False, small, 224) == 32
    assert subnet_resolution(None, True, small, 224) == 160
