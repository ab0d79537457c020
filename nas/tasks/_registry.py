"""Choosing the task: from the data's targets, the loss settings, or a checkpoint's record."""

from __future__ import annotations

from typing import Any

import torch

from nas.errors import ConfigError
from nas.tasks._multi_label import MultiLabel
from nas.tasks._single_label import SingleLabel
from nas.tasks._task import Task

__all__ = ["TASKS", "LOSSES", "make_task", "task_for_data", "task_from_checkpoint", "task_name_of"]

TASKS: dict[str, type[Task]] = {SingleLabel.name: SingleLabel, MultiLabel.name: MultiLabel}
#: ``--loss`` values: ``auto`` is the task's default (``ce`` single-label, ``bce`` multi-label).
LOSSES = ("auto",) + tuple(dict.fromkeys(loss for t in TASKS.values() for loss in t.losses))


def task_name_of(targets: torch.Tensor) -> str:
    """``multi-label`` for multi-hot ``[N, C]`` targets, ``single-label`` for class indices ``[N]``."""
    return MultiLabel.name if targets.dim() == 2 else SingleLabel.name


def make_task(
    name: str,
    *,
    loss: str = "auto",
    label_smoothing: float = 0.1,
    focal_gamma: float = 2.0,
    focal_alpha: float = 0.25,
) -> Task:
    """The task ``name`` with its loss settings (``label_smoothing``: single-label only; the focal
    parameters: ``loss="focal"`` only).

    Raises:
        ConfigError: unknown task, or a loss the task does not have; naming the field and what is allowed.
    """
    if name not in TASKS:
        raise ConfigError("task", [f"task: {name!r} (allowed: {' | '.join(TASKS)})"])
    cls = TASKS[name]
    chosen = cls.losses[0] if loss == "auto" else loss
    if chosen not in cls.losses:
        raise ConfigError("train config", [f"loss: {loss!r} (allowed for {name} data: auto | {' | '.join(cls.losses)})"])
    try:
        if cls is SingleLabel:
            return SingleLabel(label_smoothing=label_smoothing)
        return MultiLabel(loss_name=chosen, focal_gamma=focal_gamma, focal_alpha=focal_alpha)
    except ValueError as exc:
        raise ConfigError("train config", [str(exc)]) from None


def task_for_data(splits: Any, **settings: Any) -> Task:
    """The task the data's targets call for (:func:`task_name_of` of its training labels)."""
    return make_task(task_name_of(splits.train.labels), **settings)


def task_from_checkpoint(data: dict[str, Any], settings: dict[str, Any]) -> Task:
    """The task a supernet was trained for, from its checkpoint's data record and settings
    (checkpoints from before tasks existed are single-label)."""
    keys = ("loss", "label_smoothing", "focal_gamma", "focal_alpha")
    return make_task(str(data.get("task", SingleLabel.name)), **{k: settings[k] for k in keys if k in settings})
