"""``python -m nas.search`` flags: what --smoke changes, and bad flags rejected before any work."""

from __future__ import annotations

import pytest

import nas.search._pipeline as pipeline
from nas.search.__main__ import SMOKE_SEARCH, main


@pytest.fixture
def captured(monkeypatch):
    seen = []

    def fake_run(cfg, **kwargs):
        seen.append(cfg)
        return {"best": None}

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run)
    return seen


def test_smoke_shrinks_the_search_too(captured):
    assert main(["--device", "pixel_cpu", "--budget", "20ms", "--smoke"]) == 0
    cfg = captured[-1]
    assert (cfg.trials, cfg.val_limit, cfg.calib_images, cfg.finetune_top, cfg.finetune_subset) == (
        SMOKE_SEARCH["trials"], SMOKE_SEARCH["val_limit"], SMOKE_SEARCH["calib_images"], SMOKE_SEARCH["finetune_top"],
        SMOKE_SEARCH["finetune_subset"])
    assert cfg.smoke


def test_explicit_flags_win_over_smoke_and_defaults_stay(captured):
    assert main(["--device", "pixel_cpu", "--budget", "20ms", "--smoke", "--trials", "3", "--val-limit", "0"]) == 0
    assert (captured[-1].trials, captured[-1].val_limit) == (3, None)
    assert main(["--device", "pixel_cpu", "--budget", "20ms"]) == 0
    assert (captured[-1].trials, captured[-1].val_limit, captured[-1].calib_images) == (60, 5000, 2000)
    assert (captured[-1].finetune_top, captured[-1].finetune_epochs, captured[-1].finetune_subset) == (3, 1, None)
    assert main(["--device", "pixel_cpu", "--budget", "20ms", "--smoke", "--finetune-top", "0"]) == 0
    assert captured[-1].finetune_top == 0


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "seed (--seed): -1"),
    (["--threads", "-1"], "threads (--threads): -1"),
    (["--val-limit", "-3"], "val_limit (--val-limit): -3 (allowed: an integer >= 1, or 0 on the command line for every"),
    (["--heartbeat-seconds", "0"], "heartbeat_seconds: 0.0"),
    (["--finetune-top", "-2"], "finetune_top (--finetune-top): -2"),
    (["--finetune-epochs", "0"], "finetune_epochs (--finetune-epochs): 0"),
    (["--finetune-subset", "5"], "finetune_subset (--finetune-subset): 5"),
])
def test_bad_flags_are_one_line_errors(captured, capsys, flags, message):
    assert main(["--device", "pixel_cpu", "--budget", "20ms", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not captured  # nothing ran


def test_help_states_each_default_once():
    from nas.search.__main__ import build_parser

    text = build_parser().format_help()
    assert "(default: None)" not in text and "[0]" in text  # --seed's default shown, None ones not
    assert "[5000; 256 with --smoke]" in text and "[5000; 256 with --smoke] [" not in text


def test_a_negative_budget_gets_the_budget_message(capsys):
    from nas.search.__main__ import main

    assert main(["--device", "pixel_cpu", "--budget", "-5ms"]) == 2
    assert "latency budget '-5ms' is not a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(None, "no such checkpoint file"),
                                              (b"garbage", "not a readable supernet checkpoint")])
def test_a_bad_supernet_file_is_refused_before_the_study_is_made(tmp_path, capsys, content, message):
    from nas.search.__main__ import main

    ckpt = tmp_path / "supernet.pt" if content is not None else tmp_path / "nosuch.pt"
    if content is not None:
        ckpt.write_bytes(content)
    assert main(["--device", "pixel_cpu", "--budget", "20ms", "--data", "synthetic", "--supernet", str(ckpt),
                 "--run-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "study.db").exists()
