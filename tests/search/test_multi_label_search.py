"""A search on multi-label data: mAP is the objective (study metric names, trial attributes,
result.json, report)."""

from __future__ import annotations

import json

import pytest
from optuna.trial import TrialState

from nas.data import DataSplits
from nas.data._load import synthetic_data
from nas.data._types import channel_stats, split_train_val
from nas.search import StudyTaskError, make_sampler, open_study
from nas.search._inputs import SearchConfig
from nas.search._pipeline import run_pipeline
from nas.supernet import load_checkpoint
from nas.tasks import MultiLabel

METRICS = {"mAP", "f1_micro", "f1_macro", "precision", "recall"}


@pytest.fixture(scope="module")
def multi():
    train, val = split_train_val(synthetic_data(320, multi_label=True, seed=0), 0.2, 0)
    test = synthetic_data(96, multi_label=True, seed=1)
    mean, std = channel_stats(train)
    return DataSplits("synthetic", train, val, test, mean, std, "synthetic multi-label (tests)")


@pytest.mark.slow
def test_search_on_multi_label_data_optimises_map(tmp_path, tiny_space_file, fake_table, multi):
    cfg = SearchConfig(device=str(fake_table), budget="2.5ms", space=str(tiny_space_file), data="synthetic",
                       trials=5, run_dir=str(tmp_path / "run"), supernet=str(tmp_path / "supernet"), smoke=True,
                       calib_images=64, val_limit=64, seed=0, finetune_top=0)
    result = run_pipeline(cfg, progress=False, log=lambda _: None, splits=multi)
    on_disk = json.loads((tmp_path / "run" / "result.json").read_text())
    assert on_disk["task"]["name"] == "multi-label" and on_disk["task"]["metric"] == "mAP"
    best = on_disk["best"]
    assert best["metric"] == "mAP" and set(best["val_metrics"]) == METRICS and set(best["test_metrics"]) == METRICS
    assert best["val_metric"] == pytest.approx(best["val_metrics"]["mAP"])
    assert len(best["thresholds"]) == multi.num_classes
    report = (tmp_path / "run" / "report.md").read_text()
    assert "mAP (objective)" in report and "f1_micro" in report and "decision thresholds" in report
    study = open_study(result["search"]["storage"], result["search"]["study_name"], make_sampler("tpe", 0),
                       MultiLabel())
    assert study.metric_names == ["mAP", "latency_ms"]  # what the dashboard shows
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert METRICS <= set(t.user_attrs)
    with pytest.raises(StudyTaskError, match=r"scored by \['mAP', 'latency_ms'\]"):
        open_study(result["search"]["storage"], result["search"]["study_name"], make_sampler("tpe", 0))
    # the supernet trained for the search took the multi-label recipe (smoke settings keep their epochs)
    settings = load_checkpoint(tmp_path / "supernet" / "supernet.pt").settings
    assert settings["distill_weight"] == 0.0 and settings["epochs"] == 1
