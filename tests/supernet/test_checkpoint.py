"""Checkpoints round-trip, and are refused for another space or number of classes."""

from __future__ import annotations

import pytest
import torch

from nas.space import load_space
from nas.supernet import Checkpoint, CheckpointError, Supernet, load_checkpoint, load_supernet, save_checkpoint


def _save(path, space, num_classes=4):
    supernet = Supernet(space, num_classes, seed=5)
    ckpt = Checkpoint(
        space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
        num_classes=num_classes, data={"name": "synthetic"}, train_resolution=None, epoch=3,
        kernel_transform=True, settings={"seed": 5}, model=supernet.state_dict(),
    )
    save_checkpoint(path, ckpt)
    return supernet


def test_round_trip_rebuilds_the_same_supernet(tmp_path, tiny_space):
    original = _save(tmp_path, tiny_space)
    supernet, ckpt = load_supernet(tmp_path, space=tiny_space, num_classes=4)
    assert ckpt.epoch == 3 and ckpt.space_name == "tiny" and (tmp_path / "supernet.pt").is_file()
    for (k, a), (_, b) in zip(original.state_dict().items(), supernet.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 16, 16)
    arch = tiny_space.sample(1)
    torch.testing.assert_close(supernet(x, arch), original.eval()(x, arch))


def test_checkpoint_of_another_space_is_refused(tmp_path, tiny_space):
    _save(tmp_path, tiny_space)
    with pytest.raises(CheckpointError, match=r"trained on search space 'tiny' .* not on 'mobilenetv3_small32'"):
        load_supernet(tmp_path, space=load_space("mobilenetv3_small32"))


def test_checkpoint_with_another_number_of_classes_is_refused(tmp_path, tiny_space):
    _save(tmp_path, tiny_space, num_classes=4)
    with pytest.raises(CheckpointError, match="has 4 output classes, the data has 10"):
        load_supernet(tmp_path, num_classes=10)


def test_missing_and_foreign_files_are_refused_with_a_hint(tmp_path):
    with pytest.raises(CheckpointError, match="no supernet checkpoint at .*python -m nas.train"):
        load_checkpoint(tmp_path / "nothing")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a supernet checkpoint of format"):
        load_checkpoint(tmp_path / "other.pt")


def test_edited_embedded_space_is_detected(tmp_path, tiny_space):
    _save(tmp_path, tiny_space)
    blob = torch.load(tmp_path / "supernet.pt", weights_only=True)
    blob["space_config"]["se_reduction"] = 8
    torch.save(blob, tmp_path / "supernet.pt")
    with pytest.raises(CheckpointError, match="corrupt or was edited"):
        load_supernet(tmp_path)
