"""``--finetune-top K``: the K best feasible candidates fine-tuned alone, proxy and confirmed
metrics per candidate, the choice by confirmed metric, resume, and the top-K selection."""

from __future__ import annotations

import json

import onnxruntime as ort
import optuna
import pytest
import torch
from optuna.trial import create_trial

from nas.errors import ConfigError
from nas.search._confirm import STUDY_ATTR, top_candidates
from nas.search._inputs import SearchConfig
from nas.search._pipeline import run_pipeline
from nas.search._study import CONSTRAINT_NAME, make_sampler, open_study
from tests.search.conftest import search_config


def _cfg(tmp_path, tiny_space_file, fake_table, **changes) -> SearchConfig:
    confirm = {"finetune_top": 2, "finetune_epochs": 2, "finetune_subset": 128}
    return search_config(tmp_path, tiny_space_file, fake_table, **(confirm | changes))


@pytest.mark.slow
def test_finetune_top_two_confirms_chooses_exports_and_resumes(tmp_path, tiny_space_file, fake_table, splits):
    logs: list[str] = []
    result = run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table), progress=False, log=logs.append, splits=splits)
    run = tmp_path / "run"
    conf = result["confirmation"]
    assert conf["k"] == 2 and conf["epochs"] == 2 and len(conf["candidates"]) == 2
    for c in conf["candidates"]:
        for part in ("proxy", "confirmed"):
            assert isinstance(c[part]["val_metric"], float) and isinstance(c[part]["test_metric"], float), (part, c)
        assert c["predicted_latency_ms"] <= 2.5
        assert (run / "candidates" / f"trial-{c['trial']}" / "finetune.json").is_file()
    # the choice is the best confirmed val metric, and best/ is that trial's fine-tuned network
    chosen = max(conf["candidates"], key=lambda c: (c["confirmed"]["val_metric"], -c["predicted_latency_ms"]))
    assert conf["chosen_trial"] == chosen["trial"] == result["best"]["trial"]
    assert result["best"]["confirmed"] and result["best"]["confirmed_val_metric"] == chosen["confirmed"]["val_metric"]
    assert result["best"]["test_metric"] == chosen["confirmed"]["test_metric"]
    assert conf["kendall_tau"] is None or -1.0 <= conf["kendall_tau"] <= 1.0
    arch_json = json.loads((run / "best" / "arch.json").read_text())
    assert arch_json["finetuned"] is True
    assert (run / "best" / "finetune.json").is_file()
    best_w = torch.load(run / "best" / "weights.pt", weights_only=True)["state_dict"]
    cand_w = torch.load(run / "candidates" / f"trial-{chosen['trial']}" / "weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(best_w[k], cand_w[k]) for k in cand_w)
    session = ort.InferenceSession(str(run / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape[-1] == splits.num_classes
    # result.json, report and the study's user attributes carry proxy and confirmed metrics
    on_disk = json.loads((run / "result.json").read_text())
    assert on_disk["confirmation"]["candidates"] == conf["candidates"]
    report = (run / "report.md").read_text()
    assert "## Confirmed candidates" in report and "Kendall tau between proxy and confirmed" in report
    for c in conf["candidates"]:
        assert f"| {c['trial']} | `{c['arch']}` |" in report
    study = open_study(result["search"]["storage"], result["search"]["study_name"], make_sampler("tpe", 0))
    attr = study.user_attrs[STUDY_ATTR]
    assert [c["trial"] for c in attr["candidates"]] == [c["trial"] for c in conf["candidates"]]
    assert attr["candidates"][0]["confirmed_val_top1"] == conf["candidates"][0]["confirmed"]["val_metric"]

    # the same command again reuses both finished fine-tunings
    logs.clear()
    again = run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table), progress=False, log=logs.append, splits=splits)
    assert sum("reusing the finished fine-tuning" in line for line in logs) == 2
    assert again["confirmation"]["candidates"] == conf["candidates"]

    # other fine-tuning settings: the candidates are fine-tuned again, not reused
    logs.clear()
    third = run_pipeline(_cfg(tmp_path, tiny_space_file, fake_table, finetune_epochs=3), progress=False,
                         log=logs.append, splits=splits)
    assert third["confirmation"]["epochs"] == 3
    assert not any("reusing the finished fine-tuning" in line for line in logs)
    assert all(json.loads((run / "candidates" / f"trial-{c['trial']}" / "finetune.json").read_text())["epochs_run"] == 3
               for c in third["confirmation"]["candidates"])


def _study(values):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, (metric, ms, feasible) in enumerate(values):
        study.add_trial(create_trial(values=[metric, ms], user_attrs={"arch_json": json.dumps({"i": i % 5})},
                                     constraints={CONSTRAINT_NAME: -0.5 if feasible else 1.0}))
    return study


def test_top_candidates_take_the_feasible_front_first_then_the_rest():
    # trial: (metric, latency, feasible); 0 and 2 on the feasible front; 3 infeasible; 1 dominated by 0
    study = _study([(90.0, 2.0, True), (89.0, 2.5, True), (85.0, 1.0, True), (95.0, 1.0, False), (88.0, 3.0, True)])
    got = top_candidates(study, 3)
    assert [(t.number, front) for t, front in got] == [(0, True), (2, True), (1, False)]
    assert [t.number for t, _ in top_candidates(study, 1)] == [0]
    assert len(top_candidates(study, 10)) == 4  # every feasible trial, none twice


def test_top_candidates_skip_duplicate_archs():
    study = _study([(90.0, 2.0, True), (80.0, 1.0, True), (70.0, 3.0, True), (60.0, 3.0, True), (50.0, 3.0, True),
                    (91.0, 2.0, True)])  # trial 5 repeats trial 0's arch
    assert [t.number for t, _ in top_candidates(study, 3)] == [5, 1, 2]


@pytest.mark.parametrize("field,value,needle", [
    ("finetune_top", -1, "finetune_top (--finetune-top)"),
    ("finetune_top", 1.5, "finetune_top (--finetune-top)"),
    ("finetune_epochs", 0, "finetune_epochs (--finetune-epochs)"),
    ("finetune_lr", float("nan"), "finetune_lr (--finetune-lr)"),
    ("finetune_subset", 10, "finetune_subset (--finetune-subset)"),
    ("precision", "fp8", "precision (--precision)"),
])
def test_bad_confirmation_settings_are_named(field, value, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        SearchConfig(device="pixel_cpu", budget="20ms", **{field: value})


def test_a_finished_fine_tuning_is_reused_only_for_its_own_arch(tmp_path, tiny_space_file):
    # trial numbers repeat across the studies of one run folder (another --budget): the arch decides
    from types import SimpleNamespace

    from nas.search._confirm import _reusable, source_path
    from nas.space import load_space

    space = load_space(str(tiny_space_file))
    ckpt = SimpleNamespace(path="runs/supernets/x/supernet.pt", epoch=5)
    a, b = space.largest(), space.smallest()
    assert source_path(ckpt, 1, a) != source_path(ckpt, 1, b)
    fcfg = SimpleNamespace(to_dict=lambda: {"epochs": 1})
    (tmp_path / "finetune.json").write_text(json.dumps({"config": {"epochs": 1},
                                                        "source": {"model": source_path(ckpt, 1, a)}}))
    assert _reusable(tmp_path, fcfg, source_path(ckpt, 1, a)) is not None
    assert _reusable(tmp_path, fcfg, source_path(ckpt, 1, b)) is None
