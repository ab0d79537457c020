"""Scoring a candidate: the task's validation metrics of a subnet with inherited supernet weights,
BN recalibrated.

Both backends score through here: the local runner calls :func:`make_score_fn` directly, and Ray
workers build it from a :class:`SupernetScorer` (the checkpoint's bytes and the data), once per
worker process. A score is a dict of the task's metrics (:mod:`nas.tasks`); its primary metric
(``top1``, ``mAP``) is the search objective and every metric becomes a trial user attribute.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from nas.data import DataSplits
from nas.evaluate import calibration_batches, checkpoint_task, eval_resolution, evaluate_arch
from nas.space import Arch
from nas.supernet import Checkpoint, Supernet, load_supernet

__all__ = ["ScoreFn", "make_score_fn", "SupernetScorer"]

#: ``arch -> {metric name: value}`` (the task's metrics, percent).
ScoreFn = Callable[[Arch], dict[str, float]]


def make_score_fn(
    supernet: Supernet, ckpt: Checkpoint, splits: DataSplits, *, calib_images: int, val_limit: int | None, seed: int
) -> ScoreFn:
    """The task's validation metrics of a subnet with inherited weights, BN recalibrated first.

    The calibration images are drawn once per evaluation resolution and shared by every subnet.
    """
    cache: dict[int, list] = {}
    task = checkpoint_task(ckpt, splits)

    def score(arch: Arch) -> dict[str, float]:
        res = eval_resolution(ckpt, arch)
        if res not in cache:
            cache[res] = calibration_batches(splits, images=calib_images, resolution=res, seed=seed,
                                             channels_last=True)
        result = evaluate_arch(supernet, arch, splits, task=task, resolution=res, limit=val_limit,
                               calib_batches=cache[res], channels_last=True)
        return dict(result.metrics)

    return score


@dataclass(frozen=True)
class SupernetScorer:
    """What a worker needs to score archs: the checkpoint file's bytes and the data.

    Bytes, not a path, so that workers on other nodes need no shared file system.
    """

    checkpoint: bytes
    splits: DataSplits
    calib_images: int
    val_limit: int | None
    seed: int

    @classmethod
    def from_file(cls, path: str | os.PathLike, splits: DataSplits, *, calib_images: int, val_limit: int | None,
                  seed: int) -> SupernetScorer:
        with open(path, "rb") as f:
            blob = f.read()
        return cls(blob, splits, calib_images, val_limit, seed)

    def __call__(self) -> ScoreFn:
        with tempfile.TemporaryDirectory(prefix="nas-ckpt-") as tmp:
            path = os.path.join(tmp, "supernet.pt")
            with open(path, "wb") as f:
                f.write(self.checkpoint)
            supernet, ckpt = load_supernet(path, num_classes=self.splits.num_classes)
        return make_score_fn(supernet, ckpt, self.splits, calib_images=self.calib_images,
                             val_limit=self.val_limit, seed=self.seed)
