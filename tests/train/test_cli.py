"""``python -m nas.train``: bad flags get one clear error naming the flag, before anything is loaded."""

from __future__ import annotations

import pytest

import nas.train._cli as cli
from nas.data import MAX_RESOLUTION


@pytest.fixture
def trained(monkeypatch):
    """Replaces the training run: records what reaches it, so that a test sees whether a bad flag
    was refused up front (nothing recorded) or only once training had started."""
    calls = []

    def fake_train_supernet(cfg, run_dir, **kwargs):
        calls.append((cfg, run_dir, kwargs))
        raise AssertionError(f"training started with {cfg} in {run_dir}")

    monkeypatch.setattr(cli, "train_supernet", fake_train_supernet)
    return calls


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize("run_dir, message", [
    ("notes.txt", "--run-dir {tmp}/notes.txt: it exists and is not a directory"),
    ("notes.txt/run", "--run-dir {tmp}/notes.txt/run: {tmp}/notes.txt exists and is not a directory"),
    ("old/supernet.pt", "--run-dir {tmp}/old/supernet.pt: expected a run directory, not a checkpoint file name"),
])
def test_run_dir_that_cannot_be_a_directory_is_refused_up_front(tmp_path, capsys, trained, run_dir, message):
    (tmp_path / "notes.txt").write_text("not a run directory")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "supernet.pt").write_bytes(b"")
    assert cli.main(["--run-dir", str(tmp_path / run_dir), "--resume"]) == 2
    assert _one_line_error(capsys) == "error: " + message.format(tmp=tmp_path) + (
        " (training writes RUN_DIR/supernet.pt and RUN_DIR/history.json)" if run_dir.endswith(".pt")
        else " (choose a directory)")
    assert not trained


@pytest.mark.parametrize("argv, message", [
    (["--threads", "-1"], "argument --threads: -1 (allowed: integer >= 1)"),
    (["--threads", "0"], "argument --threads: 0 (allowed: integer >= 1)"),
    (["--seed", "-1"], f"argument --seed: -1 (allowed: integer 0..{2**64 - 1})"),
    (["--seed", str(2**64)], f"argument --seed: {2**64} (allowed: integer 0..{2**64 - 1})"),
    (["--num-workers", "0"], "argument --num-workers: 0 (allowed: integer >= 1)"),
    (["--lr", "inf"], "argument --lr: 'inf' (allowed: a finite number)"),
    (["--weight-decay", "inf"], "argument --weight-decay: 'inf' (allowed: a finite number)"),
    (["--warmup-epochs", "inf"], "argument --warmup-epochs: 'inf' (allowed: a finite number)"),
    (["--distill-weight", "nan"], "argument --distill-weight: 'nan' (allowed: a finite number)"),
])
def test_numeric_flags_out_of_range_name_the_flag(tmp_path, capsys, trained, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(["--run-dir", str(tmp_path / "run"), *argv])
    assert info.value.code == 2
    assert _one_line_error(capsys) == f"python -m nas.train: error: {message}"
    assert not trained


@pytest.mark.parametrize("value", ["100000", str(MAX_RESOLUTION + 1), "7"])
def test_absurd_resolution_is_refused_with_the_limit(tmp_path, capsys, trained, value):
    assert cli.main(["--run-dir", str(tmp_path / "run"), "--resolution", value]) == 2
    assert f"{value} px (allowed: integer 8..{MAX_RESOLUTION}, or 'arch')" in capsys.readouterr().err
    assert not trained


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "CPU", "cuda:-1"])
def test_unknown_device_is_refused(tmp_path, capsys, trained, device):
    assert cli.main(["--run-dir", str(tmp_path / "run"), "--torch-device", device]) == 2
    assert _one_line_error(capsys) == (
        f"error: --torch-device {device!r}: unknown device (allowed: auto, cpu, cuda, cuda:N)")
    assert not trained


def test_cuda_without_cuda_says_so(tmp_path, capsys, trained, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert cli.main(["--run-dir", str(tmp_path / "run"), "--torch-device", "cuda"]) == 2
    assert "error: --torch-device cuda: CUDA is not available on this machine" in _one_line_error(capsys)
    assert not trained


def test_good_flags_reach_training_unchanged(tmp_path, trained, capsys):
    (tmp_path / "run").mkdir()  # an existing (empty) directory is a fine run directory
    with pytest.raises(AssertionError, match="training started"):
        cli.main(["--run-dir", str(tmp_path / "run"), "--torch-device", "cpu", "--seed", "7", "--lr", "0.05",
                  "--resolution", str(MAX_RESOLUTION), "--no-progress"])
    (cfg, run_dir, kwargs), = trained
    assert (cfg.seed, cfg.lr, cfg.resolution) == (7, 0.05, MAX_RESOLUTION)
    assert (run_dir, kwargs["device"]) == (str(tmp_path / "run"), "cpu")
    assert capsys.readouterr().err == ""


def test_device_is_a_deprecated_alias_of_torch_device(tmp_path, trained, capsys):
    with pytest.raises(AssertionError, match="training started"):
        cli.main(["--run-dir", str(tmp_path / "run"), "--device", "cpu", "--no-progress"])
    (_, _, kwargs), = trained
    assert kwargs["device"] == "cpu"
    assert capsys.readouterr().err == (
        "python -m nas.train: warning: --device is deprecated and will be removed in the next release; "
        "use --torch-device (in nas.search and nas.latency, --device names a latency table)\n")
