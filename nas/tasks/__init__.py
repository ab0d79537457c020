"""Tasks: what a network is trained for and how it is scored.

A task owns its target format and checks, its loss, its distillation loss for the sandwich rule,
its metrics with the primary one's name and direction, and how they are computed from a model and
batches. Training, BN-recalibrated evaluation, the search objective, the Ray backend and the
reports go through it; nothing else branches on the task.

- ``single-label`` (:class:`SingleLabel`): int64 class indices, label-smoothed cross-entropy,
  softmax distillation, top-1 (primary).
- ``multi-label`` (:class:`MultiLabel`): multi-hot targets, binary cross-entropy or focal loss,
  sigmoid distillation, mAP (primary; threshold-free), F1 micro / macro, precision and recall with
  per-class thresholds tuned on the validation split.

API::

    task = task_for_data(splits, loss="auto")          # the data's kind decides the task
    loss = task.loss(logits, targets)
    outputs, targets = collect_outputs(model, batches)
    tuned = task.tune(val_outputs, val_targets)         # {} for single-label
    metrics = task.metrics(outputs, targets, tuned)     # {"mAP": 83.1, "f1_micro": ...}
"""

from nas.tasks._multi_label import MultiLabel
from nas.tasks._registry import LOSSES, TASKS, make_task, task_for_data, task_from_checkpoint
from nas.tasks._single_label import SingleLabel
from nas.tasks._task import Task, collect_outputs

__all__ = [
    "LOSSES",
    "TASKS",
    "MultiLabel",
    "SingleLabel",
    "Task",
    "collect_outputs",
    "make_task",
    "task_for_data",
    "task_from_checkpoint",
]
