"""The settings of a supernet training run (:class:`TrainConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, FieldCheck, is_int, is_real
from nas.tasks import LOSSES, Task, task_for_data
from nas.train._precision import PRECISIONS

__all__ = ["TrainConfig", "RESOLUTION_SAMPLING", "check_training_fields"]

#: How subnets of one training step get their input side (see :class:`TrainConfig`).
RESOLUTION_SAMPLING = ("step-sandwich", "teacher-max", "step", "arch")

#: Settings added after checkpoints were first written, with the value those checkpoints were
#: trained with (so resuming an older checkpoint continues it as it was trained).
_LEGACY_SETTINGS = {"resolution_sampling": "arch", "reorder_channels": False, "precision": "auto"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a supernet training run.

    ``resolution``: the proxy side every subnet trains at; ``None`` trains each subnet at its
    own ``arch.resolution`` (spaces whose resolutions suit the data, e.g. ``mobilenetv3_small32``).
    ``scale_resolution``: ``resolution`` is the proxy of the space's base resolution and each subnet
    trains at the proportional side (224 -> 32, 160 -> 23 px), so that the deployment-resolution
    choice keeps an effect on proxy accuracy (see :func:`nas.evaluate.subnet_resolution`).
    ``resolution_sampling`` (when subnets train at different sides, i.e. ``resolution`` is None or
    scaled) — which side each subnet of a step runs at:

    - ``step-sandwich`` (default): the teacher (the largest subnet, on the labels) at its own, the
      largest, side; then the whole sandwich as students at one side drawn uniformly per step from
      the space's resolutions: the largest again (unless the drawn side is the teacher's), the
      smallest and ``n_random`` random subnets;
    - ``teacher-max``: the same without the largest as a student;
    - ``step``: everything at the drawn side, teacher included (once-for-all's elastic resolution);
    - ``arch``: each subnet at its own arch's side (BigNAS): the smallest and largest sides are
      trained at every step, the others only through the random subnets.

    Measured on Fashion-MNIST against the 12 subnets of ``benchmarks/supernet_ranking.py`` trained
    alone (``benchmarks/SUPERNET.md``): ``arch`` rated 25-27 px subnets below the 23 px smallest one
    (Pearson 0.53 with the stand-alone accuracies); ``step`` fixed the order but left subnets 1.3
    points short on average (a teacher at 23-30 px teaches less; Pearson 0.75); ``teacher-max``
    closed part of the gap (0.9 points) but under-rated large subnets away from 32 px, which only
    the teacher trained; ``step-sandwich`` gave the smallest gap (0.36 points) and the best
    agreement (Pearson 0.79) for about 40 % more time per step.
    ``subset``: training images per epoch (a fresh random subset each epoch; ``None`` = all).
    ``kernel_transform``: pass smaller depthwise kernels through learned transforms of the centre
    crop (once-for-all). Off by default: on the ranking benchmark plain crops ranked the 12
    reference subnets better (Kendall tau 0.727 for each of two supernet seeds, against 0.636 for
    each of two with transforms) at a lower per-step overhead (``benchmarks/SUPERNET.md``).
    ``reorder_channels``: after every epoch but the last, sort each block's mid channels by
    importance (once-for-all; :func:`nas.supernet.reorder_channels`), so that subnets with smaller
    expansions inherit the most important ones.
    ``distill_weight``: share of the students' loss that is distillation from the largest subnet
    (the rest: label cross-entropy). On Fashion-MNIST at 32 px, after 64 steps, 1.0 gave 57.8 / 50.9 %
    (largest / smallest, validation) and 0.5 gave 69.1 / 72.3 %.
    ``loss``: ``auto`` (the task's default: label-smoothed cross-entropy for single-label data,
    binary cross-entropy for multi-label data), ``ce``, ``bce`` or ``focal`` (multi-label; RetinaNet's
    focal loss with ``focal_gamma`` and ``focal_alpha``). The task itself follows from the data
    (class indices: single-label; multi-hot labels: multi-label; see :mod:`nas.tasks`);
    ``label_smoothing`` applies to cross-entropy only.
    ``checkpoint_minutes``: besides the checkpoint at the end of every epoch, write a resumable
    one inside an epoch once this many minutes have passed since the last one (checked after each
    optimizer step), so that a killed run loses at most about this much work. It changes nothing
    that is computed, so it may differ when resuming.
    ``precision``: ``auto`` (CUDA: bf16 autocast, or fp16 with a gradient scaler; CPU: fp32),
    ``fp32``, ``bf16`` (CUDA, or a CPU with AVX-512-BF16 / AMX) or ``fp16`` (CUDA); see
    :mod:`nas.train._precision`. It may differ when resuming (a run moved to another machine).
    """

    space: str = "mobilenetv3_large"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    split_seed: int = 0
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: float = 0.3
    label_smoothing: float = 0.1
    loss: str = "auto"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    distill_weight: float = 0.5
    n_random: int = 2
    resolution: int | None = 32
    scale_resolution: bool = True
    resolution_sampling: str = "step-sandwich"
    subset: int | None = None
    val_subset: int | None = 5000
    calib_images: int = 2000
    kernel_transform: bool = False
    reorder_channels: bool = False
    seed: int = 0
    channels_last: bool = True
    checkpoint_minutes: float = 5.0
    precision: str = "auto"

    def __post_init__(self) -> None:
        need = FieldCheck(self, "train config")
        check_training_fields(need, self)
        need(is_real(self.distill_weight) and 0 <= self.distill_weight <= 1, "distill_weight", "[0, 1]")
        need(is_int(self.n_random) and self.n_random >= 0, "n_random", "integer >= 0")
        need(self.resolution is None or (is_int(self.resolution) and self.resolution >= 8),
             "resolution", "integer >= 8, or None for each arch's own resolution")
        need(self.resolution_sampling in RESOLUTION_SAMPLING, "resolution_sampling", " | ".join(RESOLUTION_SAMPLING))
        need(is_int(self.calib_images) and self.calib_images >= 1, "calib_images", "integer >= 1")
        need(is_real(self.checkpoint_minutes) and self.checkpoint_minutes > 0, "checkpoint_minutes",
             "a finite number > 0")
        need.done()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def task_for(self, splits: Any) -> Task:
        """The task these settings train on ``splits`` (:class:`nas.data.DataSplits`).

        Raises:
            ConfigError: ``loss`` does not suit the data's task (``focal`` on single-label data).
        """
        return task_for_data(splits, loss=self.loss, label_smoothing=self.label_smoothing,
                             focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError("train config", [f"{k}: unknown setting (allowed: {sorted(names)})" for k in unknown])
        return cls(**data)

    @classmethod
    def from_checkpoint(cls, settings: dict[str, Any]) -> TrainConfig:
        """The settings a checkpoint was trained with (older checkpoints lack the newer settings:
        they get the value they were trained with, not today's default)."""
        return cls.from_dict({**_LEGACY_SETTINGS, **settings})


def check_training_fields(need: FieldCheck, cfg: Any) -> None:
    """The rules of the settings a supernet training (:class:`TrainConfig`) and a fine-tuning
    (:class:`nas.finetune.FinetuneConfig`) share."""
    need(is_int(cfg.epochs) and cfg.epochs >= 1, "epochs", "integer >= 1")
    need(is_int(cfg.batch_size) and cfg.batch_size >= 2, "batch_size", "integer >= 2")
    # is_real first: NaN fails every comparison but inf passes "> 0" (--lr inf trained NaN weights)
    need(is_real(cfg.lr) and cfg.lr > 0, "lr", "a finite number > 0")
    need(is_real(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum", "[0, 1)")
    need(is_real(cfg.weight_decay) and cfg.weight_decay >= 0, "weight_decay", "a finite number >= 0")
    need(is_real(cfg.warmup_epochs) and cfg.warmup_epochs >= 0, "warmup_epochs", "a finite number >= 0")
    need(is_real(cfg.label_smoothing) and 0 <= cfg.label_smoothing < 1, "label_smoothing", "[0, 1)")
    need(cfg.loss in LOSSES, "loss", " | ".join(LOSSES))
    need(is_real(cfg.focal_gamma) and 0 <= cfg.focal_gamma <= 10, "focal_gamma", "a number in [0, 10]")
    need(is_real(cfg.focal_alpha) and 0 <= cfg.focal_alpha <= 1, "focal_alpha", "a number in [0, 1]")
    need(cfg.subset is None or (is_int(cfg.subset) and is_int(cfg.batch_size) and cfg.subset >= cfg.batch_size),
         "subset", "None or an integer >= batch_size")
    need(cfg.val_subset is None or (is_int(cfg.val_subset) and cfg.val_subset >= 1), "val_subset", "None or >= 1")
    need(cfg.precision in PRECISIONS, "precision", " | ".join(PRECISIONS))
