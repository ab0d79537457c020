"""The task interface (:class:`Task`) and collecting a model's outputs over batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import torch

__all__ = ["Task", "collect_outputs"]


class Task(ABC):
    """What a network is trained for: targets, losses and metrics.

    Class attributes:
        name: the task's name (``single-label``, ``multi-label``); checkpoints record it.
        metric: key of the primary metric in :meth:`metrics` (the search objective).
        metric_label: how plots and reports name the primary metric.
        direction: ``maximize`` or ``minimize`` (Optuna's words).
        losses: the ``loss`` settings the task accepts (the first is its default).
        supernet_recipe: the task's defaults for fields of ``nas.train.TrainConfig`` when a supernet
            is trained for it from the command line (``nas.train``, ``nas.search``) and the user
            set none of them; empty: the recipe's own defaults.
    """

    name: ClassVar[str]
    metric: ClassVar[str]
    metric_label: ClassVar[str]
    direction: ClassVar[str] = "maximize"
    losses: ClassVar[tuple[str, ...]]
    supernet_recipe: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    @abstractmethod
    def check_targets(self, targets: torch.Tensor, num_classes: int) -> str | None:
        """None when ``targets`` suit the task for ``num_classes`` classes, else what is wrong."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of ``logits`` on hard ``targets`` (a scalar)."""

    @abstractmethod
    def soft_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The teacher's predictions that students are distilled towards."""

    @abstractmethod
    def distill(self, student_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
        """The distillation loss of a student against :meth:`soft_targets` (a scalar)."""

    def tune(self, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        """Settings of the metrics fitted on the validation split (decision thresholds); ``{}``
        when the task has none. Pass them to :meth:`metrics` on the test split."""
        return {}

    @abstractmethod
    def metrics(self, outputs: torch.Tensor, targets: torch.Tensor, tuned: dict[str, Any] | None = None
                ) -> dict[str, float]:
        """Every metric of the task (in percent) from a split's logits and targets; ``tuned``:
        from :meth:`tune` (None: tuned on these outputs themselves)."""

    def settings(self) -> dict[str, Any]:
        """The task's loss settings, as recorded in checkpoints and results."""
        return {}

    def describe(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.settings().items())
        return f"{self.name} ({extra})" if extra else self.name

    def better(self, a: float, b: float) -> bool:
        """Whether primary-metric value ``a`` is better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


@torch.no_grad()
def collect_outputs(
    model: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, targets)`` of ``model`` over all ``batches``, as float32 / original dtype on the CPU.

    Raises:
        ValueError: the batches hold no images.
    """
    outputs, targets = [], []
    for x, y in batches:
        outputs.append(model(x).float().cpu())
        targets.append(y.cpu())
    if not outputs:
        raise ValueError("no images to evaluate")
    return torch.cat(outputs), torch.cat(targets)
