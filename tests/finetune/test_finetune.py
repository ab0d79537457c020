"""nas.finetune: frozen stages stay bit-identical, new heads, resume, early stopping, bad input."""

from __future__ import annotations

import json

import pytest
import torch

import nas.finetune._loop as loop
from nas.data import load_data
from nas.export import export_network
from nas.finetune import FinetuneConfig, FinetuneError, finetune, freeze_early, load_source, stages
from nas.finetune._cli import main
from nas.nn import build_network

FAST = dict(epochs=1, batch_size=32, subset=128, val_subset=64, patience=0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def best(tmp_path, tiny_space):
    """A trained-looking export folder (non-trivial BN statistics) of a tiny-space network."""
    arch = tiny_space.largest()
    net = build_network(tiny_space.resolve(arch, num_classes=4))
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(8, 3, 16, 16) * 2 + 1)
    export_network(net.eval(), tmp_path / "best", arch=arch, extra={"deploy_resolution": arch.resolution})
    return tmp_path / "best"


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic", channels=3, seed=0)


def test_frozen_stages_and_their_bn_statistics_are_bit_identical(best, data, tmp_path):
    source = load_source(str(best), num_classes=4)
    groups = stages(source.model)
    before = {k: v.clone() for k, v in source.model.state_dict().items()}
    frozen_prefixes = ("stem.", *(f"blocks.{i}." for g in groups[:2] for i in g))
    record = finetune(source, data, FinetuneConfig(**{**FAST, "epochs": 2, "freeze_stages": 2, "lr": 0.2}),
                      tmp_path / "ft", progress=False, log=lambda m: None)
    after = torch.load(tmp_path / "ft" / "weights.pt", weights_only=True)["state_dict"]
    frozen = [k for k in before if k.startswith(frozen_prefixes)]
    trained = [k for k in before if not k.startswith(frozen_prefixes) and before[k].is_floating_point()]
    assert any("running_mean" in k for k in frozen) and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)  # weights and running statistics
    assert any(not torch.equal(before[k], after[k]) for k in trained)  # the rest did train
    # inherited next to fine-tuned, val and test; export checked against PyTorch
    assert set(record["inherited"]) == {"val", "test"} and set(record["finetuned"]) == {"val", "test"}
    assert record["exported"]["onnx_max_abs_diff"] <= 1e-4
    doc = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert [h["epoch"] for h in doc["history"]] == [1, 2] and doc["frozen"]["parameters"] > 0
    assert (tmp_path / "ft" / "finetune.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "ft" / loop.CHECKPOINT).exists()


def test_a_new_head_for_another_number_of_classes(best, tmp_path):
    source = load_source(str(best), num_classes=4)
    from nas.finetune import with_classes

    model, replaced = with_classes(source.model, 7)
    assert replaced and model.classifier.fc.out_features == 7 and model.spec.num_classes == 7
    new, old = model.state_dict(), source.model.state_dict()
    assert all(torch.equal(new[k], old[k]) for k in old if not k.startswith("classifier.fc."))


def test_killed_run_resumes_and_other_settings_are_refused(best, data, tmp_path, monkeypatch):
    cfg = FinetuneConfig(**{**FAST, "epochs": 2})
    real_mode = loop.train_mode
    calls = []

    def die_in_epoch_2(model, frozen):  # killed at the start of the second epoch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_mode(model, frozen)

    monkeypatch.setattr(loop, "train_mode", die_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        finetune(load_source(str(best), num_classes=4), data, cfg, tmp_path / "ft", progress=False, log=lambda m: None)
    monkeypatch.setattr(loop, "train_mode", real_mode)
    assert (tmp_path / "ft" / loop.CHECKPOINT).exists()
    with pytest.raises(FinetuneError, match="--resume"):
        finetune(load_source(str(best), num_classes=4), data, cfg, tmp_path / "ft", progress=False, log=lambda m: None)
    with pytest.raises(FinetuneError, match=r"lr: checkpoint has [0-9.e-]+, this run 0\.5\)"):
        finetune(load_source(str(best), num_classes=4), data, FinetuneConfig(**{**FAST, "epochs": 2, "lr": 0.5}),
                 tmp_path / "ft", resume=True, progress=False, log=lambda m: None)
    logs = []
    record = finetune(load_source(str(best), num_classes=4), data, cfg, tmp_path / "ft", resume=True,
                      progress=False, log=logs.append)
    assert any("resuming" in m and "after epoch 1/2" in m for m in logs)
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    with pytest.raises(FinetuneError, match="finished"):
        finetune(load_source(str(best), num_classes=4), data, cfg, tmp_path / "ft", progress=False, log=lambda m: None)


def test_early_stopping_keeps_the_best_epoch(best, data, tmp_path, monkeypatch):
    scores = iter([None, 50.0, 40.0, 30.0, 20.0, 10.0])  # the first call scores the inherited net
    real = loop.evaluate

    def fake(model, splits, task, res, *, limit=None, channels_last=True, precision=None):
        out = real(model, splits, task, res, limit=limit, channels_last=channels_last, precision=precision)
        value = next(scores, None)
        if value is not None and limit is not None:
            out["val"] = {**out["val"], task.metric: value}
        return out

    monkeypatch.setattr(loop, "evaluate", fake)
    record = finetune(load_source(str(best), num_classes=4), data, FinetuneConfig(**{**FAST, "epochs": 6, "patience": 2}),
                      tmp_path / "ft", progress=False, log=lambda m: None)
    assert record["stopped_early"] and record["epochs_run"] == 3 and record["best_epoch"] == 1


def test_bad_input_is_refused_before_training(best, tmp_path, capsys):
    assert main(["--model", str(best), "--out", str(tmp_path / "o"), "--data", "synthetic", "--freeze-stages", "9",
                 "--smoke", "--no-progress"]) == 2
    assert "--freeze-stages 9" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--data", "synthetic"]) == 2
    assert "neither an export folder" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "weights.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "broken" / "arch.json").write_text("{}")
    assert main(["--model", str(tmp_path / "broken"), "--out", str(tmp_path / "o"), "--data", "synthetic"]) == 2
    assert "weights.pt" in capsys.readouterr().err
    with pytest.raises(Exception, match="backbone_lr_scale"):
        FinetuneConfig(backbone_lr_scale=2.0)
    assert not (tmp_path / "o").exists()


def test_cli_smoke_on_multi_label_data_reports_inherited_and_fine_tuned(best, tmp_path, capsys):
    assert main(["--model", str(best), "--out", str(tmp_path / "o"), "--data", "synthetic", "--smoke",
                 "--no-progress", "--freeze-stages", "1"]) == 0
    out = capsys.readouterr().out
    assert "val top1: inherited" in out and "fine-tuned" in out
    assert json.loads((tmp_path / "o" / "arch.json").read_text())["finetuned"] is True


def test_freeze_more_stages_than_the_network_has_is_an_error(best):
    model = load_source(str(best), num_classes=4).model
    with pytest.raises(ValueError, match="allowed: 0-3"):
        freeze_early(model, 4)


def test_resume_without_a_checkpoint_and_an_out_that_is_a_file_are_refused(best, data, tmp_path):
    src = load_source(str(best), num_classes=4)
    with pytest.raises(FinetuneError, match="no fine-tuning checkpoint .* to resume"):
        finetune(src, data, FinetuneConfig(**FAST), tmp_path / "typo", resume=True, progress=False, log=lambda m: None)
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(FinetuneError, match="--out"):
            finetune(src, data, FinetuneConfig(**FAST), out, progress=False, log=lambda m: None)


def test_smoke_leaves_explicit_flags_and_the_trained_side_is_the_default(best, tmp_path, capsys):
    record = json.loads((best / "arch.json").read_text())
    classes = list(load_data("synthetic", channels=3).classes)
    (best / "arch.json").write_text(json.dumps(record | {"accuracy_resolution": 20, "classes": classes}))
    assert main(["--model", str(best), "--out", str(tmp_path / "o"), "--data", "synthetic", "--smoke",
                 "--epochs", "2", "--subset", "64", "--no-progress"]) == 0
    captured = capsys.readouterr()
    ft = json.loads((tmp_path / "o" / "finetune.json").read_text())
    assert ft["config"]["epochs"] == 2 and ft["config"]["subset"] == 64 and ft["epochs_run"] == 2
    assert ft["config"]["val_subset"] == 200  # what --smoke sets where the command line said nothing
    assert ft["resolution"] == 20 and "training at 20 px" in captured.err
    # other data (other classes): the data's own side, as for any transfer
    (best / "arch.json").write_text(json.dumps(record | {"accuracy_resolution": 20, "classes": ["a", "b"]}))
    assert main(["--model", str(best), "--out", str(tmp_path / "o2"), "--data", "synthetic", "--smoke",
                 "--no-progress"]) == 0
    side = load_data("synthetic", channels=3).train.images.shape[-1]
    assert json.loads((tmp_path / "o2" / "finetune.json").read_text())["resolution"] == side != 20


def test_a_preset_has_no_inherited_metric(data, tmp_path):
    src = load_source("mobilenetv3_small", num_classes=data.num_classes, resolution=16)
    record = finetune(src, data, FinetuneConfig(**FAST), tmp_path / "ft", progress=False, log=lambda m: None)
    assert record["inherited"] is None and "random weights" in record["inherited_note"]
