"""Checkpoints round-trip, and are refused for another space or number of classes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from nas.space import load_space
from nas.supernet import Checkpoint, CheckpointError, Supernet, load_checkpoint, load_supernet, save_checkpoint


def _save(path, space, num_classes=4, data=None):
    supernet = Supernet(space, num_classes, seed=5)
    ckpt = Checkpoint(
        space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
        num_classes=num_classes, data=data or {"name": "synthetic"}, train_resolution=None, epoch=3,
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


def test_checkpoint_trained_on_other_data_is_refused(tmp_path, tiny_space):
    from nas.data import load_data
    trained_on, other = load_data("synthetic", seed=0), load_data("synthetic", seed=1)
    assert trained_on.fingerprint() == load_data("synthetic", seed=0).fingerprint() != other.fingerprint()
    _save(tmp_path, tiny_space, data={"name": "synthetic", "fingerprint": trained_on.fingerprint()})
    ckpt = load_checkpoint(tmp_path)
    ckpt.check_compatible(tiny_space, 4, data_fingerprint=trained_on.fingerprint())
    with pytest.raises(CheckpointError, match=f"trained on other data .*{trained_on.fingerprint()} vs {other.fingerprint()}"):
        ckpt.check_compatible(tiny_space, 4, data_fingerprint=other.fingerprint())
    _save(tmp_path, tiny_space)  # written before fingerprints were recorded: the data check passes
    load_checkpoint(tmp_path).check_compatible(tiny_space, 4, data_fingerprint=other.fingerprint())


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


def _mid_epoch(space, **kw):
    supernet = Supernet(space, 4, seed=5)
    fields = dict(space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
                  num_classes=4, data={"name": "synthetic"}, train_resolution=None, epoch=3, kernel_transform=True,
                  settings={"seed": 5}, model=supernet.state_dict(), step=7,
                  resume_state={"numpy": {"state": 2**100}, "seen": 224, "loss_sum": 1.5})
    return Checkpoint(**(fields | kw))


def test_mid_epoch_checkpoint_round_trips_and_counts_finished_epochs_only(tmp_path, tiny_space):
    save_checkpoint(tmp_path, _mid_epoch(tiny_space))
    supernet, ckpt = load_supernet(tmp_path)
    assert (ckpt.epoch, ckpt.step, ckpt.mid_epoch) == (3, 7, True)
    assert ckpt.resume_state == {"numpy": {"state": 2**100}, "seen": 224, "loss_sum": 1.5}
    assert ckpt.progress() == "epoch 3 + 7 steps of epoch 4"
    _save(tmp_path, tiny_space)  # an end-of-epoch checkpoint
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.epoch, ckpt.step, ckpt.mid_epoch, ckpt.resume_state, ckpt.progress()) == (3, 0, False, None, "epoch 3")


def test_checkpoint_written_before_mid_epoch_checkpoints_existed_loads_as_finished_epochs(tmp_path, tiny_space):
    _save(tmp_path, tiny_space)
    blob = torch.load(tmp_path / "supernet.pt", weights_only=True)
    del blob["step"], blob["resume_state"]
    torch.save(blob, tmp_path / "supernet.pt")
    ckpt = load_checkpoint(tmp_path)
    assert (ckpt.epoch, ckpt.step, ckpt.mid_epoch) == (3, 0, False)


def test_mid_epoch_checkpoint_without_its_resume_state_is_refused(tmp_path, tiny_space):
    with pytest.raises(CheckpointError, match=r"mid-epoch checkpoint \(step 7\) needs its resume_state"):
        save_checkpoint(tmp_path, _mid_epoch(tiny_space, resume_state=None))
    save_checkpoint(tmp_path, _mid_epoch(tiny_space))
    blob = torch.load(tmp_path / "supernet.pt", weights_only=True)
    blob["resume_state"] = None
    torch.save(blob, tmp_path / "supernet.pt")
    with pytest.raises(CheckpointError, match=r"mid-epoch checkpoint \(step 7\) without its resume_state"):
        load_checkpoint(tmp_path)
    blob["step"] = -1
    torch.save(blob, tmp_path / "supernet.pt")
    with pytest.raises(CheckpointError, match=r"step -1 \(allowed: integer >= 0"):
        load_checkpoint(tmp_path)


def test_save_fsyncs_the_file_before_the_rename_and_the_directory_after(monkeypatch, tmp_path, tiny_space):
    import nas.supernet._checkpoint as module

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    def fsync(fd):
        calls.append(("fsync", _kind(fd)))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(module.os, "fsync", fsync)
    monkeypatch.setattr(module.os, "replace", replace)
    _save(tmp_path, tiny_space)
    assert calls == [("fsync", "file"), ("replace", "supernet.pt"), ("fsync", "directory")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet.pt"]


def _kind(fd: int) -> str:
    return "directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"


@pytest.mark.parametrize("crash_in", ["write", "fsync", "replace"])
def test_a_crash_while_saving_leaves_the_previous_checkpoint(monkeypatch, tmp_path, tiny_space, crash_in):
    """An exception at any point of the write (a kill -9 stops it the same way, without the
    clean-up of the temporary file) leaves the previous checkpoint readable and unchanged."""
    import nas.supernet._checkpoint as module

    _save(tmp_path, tiny_space)
    before = (tmp_path / "supernet.pt").read_bytes()

    def crash(*args, **kwargs):
        if crash_in == "write":  # half a file, then death
            args[1].write(b"\x80\x02partial")
        raise KeyboardInterrupt

    target = {"write": (module.torch, "save"), "fsync": (module.os, "fsync"), "replace": (module.os, "replace")}
    monkeypatch.setattr(*target[crash_in], crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, _mid_epoch(tiny_space))
    monkeypatch.undo()
    assert (tmp_path / "supernet.pt").read_bytes() == before
    assert load_checkpoint(tmp_path).step == 0
    assert not (tmp_path / "supernet.pt.tmp").exists()


def test_a_file_of_other_objects_is_refused_without_torchs_advice_to_unpickle_it(tmp_path):
    import pickle

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"call": print}))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "not a readable supernet checkpoint" in text and "never unpickled" in text
    assert "weights_only" not in text and "\n" not in text
