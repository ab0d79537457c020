"""Training: the weight-sharing supernet (sandwich rule, in-place distillation, cosine schedule,
exact resume) and static networks (stand-alone baselines, fine-tuning).

The algorithm is described in :mod:`nas.train._supernet_training`, the recipe in
:class:`TrainConfig`, the command line (``python -m nas.train``) in :mod:`nas.train._cli` (not imported by this package);
user docs: ``docs/supernet.md``.
"""

from nas.train._config import RESOLUTION_SAMPLING, TrainConfig, check_training_fields
from nas.train._optim import lr_at, pick_device, soft_cross_entropy
from nas.train._precision import PRECISIONS, Precision, cpu_has_bf16, resolve_precision
from nas.train._static import train_static
from nas.train._threads import ThreadGovernor
from nas.train._supernet_training import (
    TrainingDivergedError,
    TrainResult,
    WorkerShare,
    prepare_run,
    train_supernet,
    with_task_recipe,
)

__all__ = [
    "PRECISIONS",
    "Precision",
    "RESOLUTION_SAMPLING",
    "TrainConfig",
    "ThreadGovernor",
    "TrainResult",
    "TrainingDivergedError",
    "WorkerShare",
    "check_training_fields",
    "lr_at",
    "pick_device",
    "cpu_has_bf16",
    "prepare_run",
    "resolve_precision",
    "soft_cross_entropy",
    "train_static",
    "train_supernet",
    "with_task_recipe",
]
