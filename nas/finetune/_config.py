"""The settings of a fine-tuning run (:class:`FinetuneConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nas.errors import FieldCheck, is_int, is_real
from nas.tasks import Task, task_for_data
from nas.train import check_training_fields

__all__ = ["FinetuneConfig"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything that determines a fine-tuning run of one static network.

    ``lr``: peak learning rate of the head (the final 1x1 conv and the classifier); the stem and
    blocks train at ``lr * backbone_lr_scale`` (transfer learning's "small learning rate for the
    later layers"). Linear warm-up for ``warmup_epochs``, then cosine decay to 0 (per step).
    ``freeze_stages``: the stem and the first K stages get ``requires_grad=False`` and their
    BatchNorm layers stay in eval mode, so their weights and running statistics do not move.
    ``resolution``: the input side to train and score at (None: the data's own image side).
    ``patience``: stop after this many epochs without a better validation metric (0: never);
    the best epoch's weights are the result.
    ``precision``: ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (:func:`nas.train.resolve_precision`;
    auto: bf16 or fp16 autocast on CUDA, fp32 on CPUs).
    """

    epochs: int = 10
    lr: float = 0.01
    backbone_lr_scale: float = 0.1
    freeze_stages: int = 0
    resolution: int | None = None
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1
    loss: str = "auto"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    patience: int = 3
    subset: int | None = None
    val_subset: int | None = 5000
    seed: int = 0
    channels_last: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        need = FieldCheck(self, "fine-tune config")
        check_training_fields(need, self)
        need(is_real(self.backbone_lr_scale) and 0 <= self.backbone_lr_scale <= 1, "backbone_lr_scale", "[0, 1]")
        need(is_int(self.freeze_stages) and self.freeze_stages >= 0, "freeze_stages", "integer >= 0")
        need(self.resolution is None or (is_int(self.resolution) and 8 <= self.resolution <= 1024), "resolution",
             "None or an integer in [8, 1024]")
        need(is_int(self.patience) and self.patience >= 0, "patience", "integer >= 0 (0: no early stopping)")
        need.done()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def task_for(self, splits: Any) -> Task:
        return task_for_data(splits, loss=self.loss, label_smoothing=self.label_smoothing,
                             focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha)
