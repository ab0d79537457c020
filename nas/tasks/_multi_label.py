"""Multi-label classification: several classes per image (COCO-style), BCE or focal loss, mAP / F1."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import is_real
from nas.tasks._task import Task

__all__ = ["MultiLabel"]

#: The decision threshold of a class that has no positive in the tuning split.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class MultiLabel(Task):
    """Targets: multi-hot ``[N, C]`` (0/1). Loss: binary cross-entropy (``bce``) or the sigmoid
    focal loss of RetinaNet (``focal``: ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over images
    and classes). Distillation: binary cross-entropy against the teacher's sigmoid probabilities.

    Metrics (percent):

    - ``mAP``: macro average of the per-class average precision over the classes that have a
      positive in the split (threshold-free; the primary metric and the search objective);
    - ``f1_micro``, ``f1_macro``, ``precision``, ``recall`` (micro): at per-class thresholds that
      maximise each class's F1 on the validation split (:meth:`tune`) and are then applied
      unchanged to the test split.
    """

    name: ClassVar[str] = "multi-label"
    metric: ClassVar[str] = "mAP"
    metric_label: ClassVar[str] = "mAP %"
    losses: ClassVar[tuple[str, ...]] = ("bce", "focal")
    # in-place distillation teaches the students a largest subnet that is a weak network on
    # multi-label data, and 5 epochs rank them poorly: on fashion-mosaic this recipe lifts the
    # supernet's Kendall tau against stand-alone training from 0.394 to 0.636 (benchmarks/TASKS.md)
    supernet_recipe: ClassVar[Mapping[str, Any]] = MappingProxyType({"epochs": 10, "distill_weight": 0.0})

    loss_name: str = "bce"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25

    def __post_init__(self) -> None:
        problems = []
        if self.loss_name not in self.losses:
            problems.append(f"loss: {self.loss_name!r} (allowed for multi-label data: {' | '.join(self.losses)})")
        if not (is_real(self.focal_gamma) and 0 <= self.focal_gamma <= 10):
            problems.append(f"focal_gamma: {self.focal_gamma!r} (allowed: a number in [0, 10])")
        if not (is_real(self.focal_alpha) and 0 <= self.focal_alpha <= 1):
            problems.append(f"focal_alpha: {self.focal_alpha!r} (allowed: a number in [0, 1])")
        if problems:
            raise ValueError("; ".join(problems))

    def check_targets(self, targets: torch.Tensor, num_classes: int) -> str | None:
        if targets.dim() != 2 or targets.shape[1] != num_classes:
            return f"multi-label targets are multi-hot [N, {num_classes}], got {tuple(targets.shape)}"
        if targets.is_floating_point() or targets.dtype == torch.bool:
            values = targets.float()
        else:
            values = targets.to(torch.int64)
        if len(targets) and not bool(((values == 0) | (values == 1)).all()):
            return "multi-hot targets must hold only 0 and 1"
        return None

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        if self.loss_name == "bce":
            return bce.mean()
        p = torch.sigmoid(logits)
        p_t = p * targets + (1 - p) * (1 - targets)
        alpha_t = self.focal_alpha * targets + (1 - self.focal_alpha) * (1 - targets)
        return (alpha_t * (1 - p_t).pow(self.focal_gamma) * bce).mean()

    def soft_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(teacher_logits.detach().float())

    def distill(self, student_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(student_logits.float(), soft_targets)

    def tune(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        """Per class, the probability threshold with the highest F1 on these outputs."""
        from sklearn.metrics import precision_recall_curve

        probs, y = _numpy(outputs, targets)
        thresholds = []
        for c in range(y.shape[1]):
            if not y[:, c].any():
                thresholds.append(DEFAULT_THRESHOLD)
                continue
            precision, recall, cuts = precision_recall_curve(y[:, c], probs[:, c])
            f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
            thresholds.append(float(cuts[int(np.argmax(f1))]))
        return {"thresholds": thresholds}

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, tuned: dict[str, Any] | None = None
                ) -> dict[str, float]:
        from sklearn.metrics import average_precision_score, precision_recall_fscore_support

        if len(targets) == 0:
            raise ValueError("no images to evaluate")
        probs, y = _numpy(outputs, targets)
        present = y.any(axis=0)
        if not present.any():
            raise ValueError("no positive label in the split: mAP is undefined")
        ap = [average_precision_score(y[:, c], probs[:, c]) for c in np.flatnonzero(present)]
        thresholds = (tuned or self.tune(outputs, targets))["thresholds"]
        if len(thresholds) != y.shape[1]:
            raise ValueError(f"{len(thresholds)} thresholds for {y.shape[1]} classes")
        pred = probs >= np.asarray(thresholds, dtype=probs.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # classes without positives: zero_division covers them
            p_mi, r_mi, f_mi, _ = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
            _, _, f_ma, _ = precision_recall_fscore_support(y[:, present], pred[:, present], average="macro",
                                                            zero_division=0)
        return {
            "mAP": 100.0 * float(np.mean(ap)),
            "f1_micro": 100.0 * float(f_mi),
            "f1_macro": 100.0 * float(f_ma),
            "precision": 100.0 * float(p_mi),
            "recall": 100.0 * float(r_mi),
        }

    def settings(self) -> dict[str, Any]:
        if self.loss_name == "focal":
            return {"loss": "focal", "focal_gamma": self.focal_gamma, "focal_alpha": self.focal_alpha}
        return {"loss": "bce"}


def _numpy(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    probs = torch.sigmoid(outputs.float()).numpy().astype(np.float64)
    return probs, targets.numpy().astype(bool)
