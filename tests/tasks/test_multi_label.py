"""The multi-label task: losses, distillation, mAP / F1 with tuned thresholds, target checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import average_precision_score

from nas.errors import ConfigError
from nas.tasks import MultiLabel, SingleLabel, make_task, task_for_data


def _data(n=200, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, c, generator=g) < 0.3).to(torch.uint8)
    logits = 2.0 * y.float() - 1.0 + 1.5 * torch.randn(n, c, generator=g)  # informative but noisy
    return logits, y


def test_bce_is_torch_bce_and_focal_reduces_to_it():
    logits, y = _data()
    bce = MultiLabel().loss(logits, y)
    torch.testing.assert_close(bce, F.binary_cross_entropy_with_logits(logits, y.float()))
    focal0 = MultiLabel(loss_name="focal", focal_gamma=0.0, focal_alpha=0.5).loss(logits, y)
    torch.testing.assert_close(focal0, 0.5 * bce)


def test_focal_down_weights_easy_examples():
    y = torch.tensor([[1, 0]], dtype=torch.uint8)
    easy, hard = torch.tensor([[4.0, -4.0]]), torch.tensor([[-1.0, 1.0]])
    focal = MultiLabel(loss_name="focal", focal_gamma=2.0, focal_alpha=0.5)
    bce = MultiLabel()
    # relative to BCE, the focal loss of the easy example shrinks far more than the hard one's
    assert focal.loss(easy, y) / bce.loss(easy, y) < 0.01 < focal.loss(hard, y) / bce.loss(hard, y)


def test_sigmoid_distillation_is_minimal_at_the_teacher():
    task = MultiLabel()
    teacher = torch.randn(8, 5)
    student = teacher.clone().requires_grad_(True)
    task.distill(student, task.soft_targets(teacher)).backward()
    assert student.grad.abs().max() < 1e-6
    far = task.distill(teacher + 3.0, task.soft_targets(teacher))
    assert far > task.distill(teacher, task.soft_targets(teacher))


def test_map_matches_sklearn_and_skips_classes_without_positives():
    logits, y = _data()
    y[:, 4] = 0  # no positive: AP undefined, left out of the mean
    got = MultiLabel().metrics(logits, y)["mAP"]
    want = np.mean([average_precision_score(y[:, c].numpy(), logits[:, c].numpy()) for c in range(4)])
    assert got == pytest.approx(100 * want)
    assert MultiLabel().metrics(y.float() * 10 - 5, y)["mAP"] == 100.0  # perfect ranking


def test_tuned_thresholds_beat_one_half_on_the_tuning_split_and_apply_to_another():
    task = MultiLabel()
    logits, y = _data(seed=1)
    tuned = task.tune(logits - 2.0, y)  # shifted logits: 0.5 is a poor threshold
    assert len(tuned["thresholds"]) == y.shape[1]
    at_half = task.metrics(logits - 2.0, y, {"thresholds": [0.5] * y.shape[1]})
    at_tuned = task.metrics(logits - 2.0, y, tuned)
    assert at_tuned["f1_macro"] > at_half["f1_macro"]
    other_logits, other_y = _data(seed=2)
    on_test = task.metrics(other_logits - 2.0, other_y, tuned)  # val thresholds, test data
    assert set(on_test) == {"mAP", "f1_micro", "f1_macro", "precision", "recall"}
    assert on_test != task.metrics(other_logits - 2.0, other_y)  # tuned on test itself differs


def test_metrics_refuse_a_split_without_positives():
    with pytest.raises(ValueError, match="no positive"):
        MultiLabel().metrics(torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.uint8))


def test_target_checks():
    task = MultiLabel()
    assert task.check_targets(torch.zeros(4, 3, dtype=torch.uint8), 3) is None
    assert "multi-hot [N, 3]" in task.check_targets(torch.zeros(4, 2, dtype=torch.uint8), 3)
    assert "only 0 and 1" in task.check_targets(torch.full((4, 3), 2, dtype=torch.uint8), 3)
    assert "int64 class indices" in SingleLabel().check_targets(torch.zeros(4, 3, dtype=torch.uint8), 3)
    assert "[0, 3)" in SingleLabel().check_targets(torch.tensor([0, 3]), 3)


def test_make_task_names_the_field_and_the_allowed_values():
    with pytest.raises(ConfigError, match=r"loss: 'focal' \(allowed for single-label data: auto \| ce\)"):
        make_task("single-label", loss="focal")
    with pytest.raises(ConfigError, match="loss: 'ce'.*bce | focal"):
        make_task("multi-label", loss="ce")
    with pytest.raises(ConfigError, match="focal_alpha"):
        make_task("multi-label", loss="focal", focal_alpha=2.0)
    with pytest.raises(ConfigError, match="task: 'detection'"):
        make_task("detection")
    assert make_task("multi-label").settings() == {"loss": "bce"}
    assert isinstance(make_task("single-label"), SingleLabel)


def test_the_data_decides_the_task():
    from nas.data import load_data
    from nas.data._load import synthetic_data

    splits = load_data("synthetic", synthetic_size=64)
    assert task_for_data(splits).name == "single-label"
    multi = synthetic_data(32, multi_label=True)
    assert multi.multi_label and multi.labels.shape == (32, 4) and int(multi.labels.sum(1).min()) >= 1
