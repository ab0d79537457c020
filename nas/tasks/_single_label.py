"""Single-label classification: one class per image, cross-entropy, top-1."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from nas.tasks._task import Task

__all__ = ["SingleLabel"]


@dataclass(frozen=True)
class SingleLabel(Task):
    """Targets: int64 class indices ``[N]``. Loss: cross-entropy with ``label_smoothing``.
    Distillation: cross-entropy against the teacher's softmax. Metric: top-1 (%)."""

    name: ClassVar[str] = "single-label"
    metric: ClassVar[str] = "top1"
    metric_label: ClassVar[str] = "top-1 %"
    losses: ClassVar[tuple[str, ...]] = ("ce",)

    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.label_smoothing, (int, float)) and math.isfinite(self.label_smoothing)
                and 0 <= self.label_smoothing < 1):
            raise ValueError(f"label_smoothing: {self.label_smoothing!r} (allowed: [0, 1))")

    def check_targets(self, targets: torch.Tensor, num_classes: int) -> str | None:
        if targets.dim() != 1 or targets.dtype != torch.int64:
            return f"single-label targets are int64 class indices [N], got {targets.dtype} {tuple(targets.shape)}"
        if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
            return f"class indices must lie in [0, {num_classes}), got [{int(targets.min())}, {int(targets.max())}]"
        return None

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)

    def soft_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        return teacher_logits.detach().float().softmax(1)

    def distill(self, student_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
        return -(soft_targets * F.log_softmax(student_logits.float(), dim=1)).sum(1).mean()

    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, tuned: dict[str, Any] | None = None
                ) -> dict[str, float]:
        if len(targets) == 0:
            raise ValueError("no images to evaluate")
        return {"top1": 100.0 * float((outputs.argmax(1) == targets).double().mean())}

    def settings(self) -> dict[str, Any]:
        return {"loss": "ce", "label_smoothing": self.label_smoothing}
