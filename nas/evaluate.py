"""Scoring a subnet of a trained supernet: BN recalibration, then the task's metrics on a split
(top-1 for single-label data; mAP, F1, precision and recall for multi-label data: :mod:`nas.tasks`).

API::

    supernet, ckpt = load_supernet("runs/NAME")
    data = load_data(...)
    score = evaluate_arch(supernet, arch, data, resolution=eval_resolution(ckpt, arch))

CLI::

    python -m nas.evaluate --run-dir runs/NAME --arch largest|smallest|random:SEED|FILE.json|JSON|STRING [--json]
    python -m nas.evaluate --run-dir runs/NAME --arch runs/NAME/best/arch.json --torch-device cuda

``--arch`` names a member of the supernet's space (no presets: see :mod:`nas.cli_args`);
``--torch-device`` is the torch compute device (``--device`` is its deprecated alias).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from nas.cli_args import add_torch_device_argument, arch_help, int_arg, parse_arch, parse_device
from nas.cost import network_cost
from nas.data import MAX_RESOLUTION, DataSplits, ImageData, check_resolution, iterate_batches, load_data
from nas.errors import ArchError, DataError
from nas.space import Arch
from nas.supernet import CalibrationStats, Checkpoint, CheckpointError, Supernet, load_supernet, recalibrate_bn
from nas.tasks import SingleLabel, Task, collect_outputs, task_for_data, task_from_checkpoint

__all__ = [
    "ArchScore",
    "top1_accuracy",
    "score_model",
    "checkpoint_task",
    "calibration_batches",
    "evaluate_arch",
    "eval_resolution",
    "subnet_resolution",
    "proxy_side",
    "describe_resolution",
    "main",
]


@dataclass(frozen=True)
class ArchScore:
    """The task's metrics of one subnet on one split, and what the score cost.

    ``metric`` is the primary metric (``metric_name``: ``top1``, ``mAP``), ``metrics`` all of them
    (percent); ``tuned`` what the metrics were fitted with on the validation split (multi-label:
    the per-class decision thresholds; empty for single-label).
    """

    arch: str
    task: str
    metric_name: str
    metric: float
    metrics: dict[str, float]
    images: int
    split: str
    resolution: int
    recalibrated: bool
    calibration_images: int
    calibration_seconds: float
    eval_seconds: float
    tuned: dict = field(default_factory=dict)

    @property
    def top1(self) -> float:
        """Top-1 (%) of a single-label score."""
        if "top1" not in self.metrics:
            raise AttributeError(f"a {self.task} score has no top-1; its metrics are {sorted(self.metrics)}")
        return self.metrics["top1"]

    def to_dict(self) -> dict:
        return asdict(self)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _batches(
    data: ImageData,
    splits: DataSplits,
    *,
    batch_size: int,
    resolution: int,
    device: torch.device,
    channels_last: bool,
    limit: int | None = None,
    rng: np.random.Generator | None = None,
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    for x, y in iterate_batches(
        data, splits, batch_size=batch_size, resolution=resolution, shuffle=rng is not None, rng=rng, limit=limit
    ):
        yield _to_device(x, device, channels_last), y.to(device, non_blocking=True)


def score_model(
    model: Callable[[torch.Tensor], torch.Tensor], batches: Iterable, task: Task, tuned: dict[str, Any] | None = None
) -> tuple[dict[str, float], int]:
    """``(the task's metrics, number of images)`` of ``model`` over ``(inputs, targets)`` batches;
    ``tuned``: settings fitted on the validation split (None: fitted on these batches)."""
    outputs, targets = collect_outputs(model, batches)
    return task.metrics(outputs, targets, tuned), len(targets)


def top1_accuracy(model: Callable[[torch.Tensor], torch.Tensor], batches: Iterable) -> tuple[float, int]:
    """``(top-1 in %, number of images)`` of ``model`` over single-label ``(inputs, labels)`` batches."""
    metrics, n = score_model(model, batches, SingleLabel())
    return metrics["top1"], n


def checkpoint_task(ckpt: Checkpoint, splits: DataSplits | None = None) -> Task:
    """The task a supernet was trained for (its checkpoint's record), checked against ``splits``.

    Raises:
        CheckpointError: the data's labels are of another task (multi-hot vs class indices).
    """
    task = task_from_checkpoint(ckpt.data, ckpt.settings)
    if splits is not None and task_for_data(splits).name != task.name:
        raise CheckpointError(f"{ckpt.path}: trained for a {task.name} task, but the data {splits.name!r} is "
                              f"{task_for_data(splits).name}")
    return task


def calibration_batches(
    splits: DataSplits,
    *,
    images: int = 2000,
    batch_size: int = 250,
    resolution: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed, seeded random subset of the training split for BN recalibration.

    Materialised as a list so that many subnets are recalibrated on the same images without
    re-decoding them.
    """
    if images <= 0:
        raise ValueError(f"calibration images must be positive, got {images}")
    rng = np.random.default_rng(seed)
    return list(
        _batches(
            splits.train, splits, batch_size=batch_size, resolution=resolution, device=torch.device(device),
            channels_last=channels_last, limit=images, rng=rng,
        )
    )


def proxy_side(train_resolution: int | None, scale: bool, resolution: int, base_resolution: int) -> int:
    """The side a network of deployment ``resolution`` trains and is scored at (see
    :func:`subnet_resolution`)."""
    if train_resolution is None:
        return resolution
    if not scale:
        return train_resolution
    return max(8, int(round(train_resolution * resolution / base_resolution)))


def subnet_resolution(train_resolution: int | None, scale: bool, arch: Arch, base_resolution: int) -> int:
    """The side a subnet trains and is scored at.

    ``train_resolution`` None: the arch's own resolution. Otherwise the proxy side; with ``scale``
    it is the proxy of the space's base resolution and each arch gets
    ``round(train_resolution * arch.resolution / base_resolution)`` (160 px of a 224 px space -> 23 px
    at a 32 px proxy), so the deployment-resolution choice still changes proxy accuracy.
    """
    return proxy_side(train_resolution, scale, arch.resolution, base_resolution)


def describe_resolution(ckpt: Checkpoint) -> tuple[str, dict[int, int]]:
    """How a checkpoint's subnets are trained and scored, in words, and the side per deployment
    resolution of the space (``{160: 23, ..., 224: 32}`` for a scaled 32 px proxy)."""
    cfg = ckpt.space_config
    base, resolutions = int(cfg["base_resolution"]), [int(r) for r in cfg["resolutions"]]
    scale = bool(ckpt.settings.get("scale_resolution", False))
    sides = {r: proxy_side(ckpt.train_resolution, scale, r, base) for r in resolutions}
    if ckpt.train_resolution is None:
        return "each arch's own deployment resolution", sides
    if scale and len(set(sides.values())) > 1:
        pairs = ", ".join(f"{r}->{side}" for r, side in sides.items())
        return (f"a {ckpt.train_resolution} px proxy of the {base} px base resolution, scaled with each arch's "
                f"deployment resolution ({pairs} px)"), sides
    return f"a fixed {ckpt.train_resolution} px", sides


def eval_resolution(ckpt: Checkpoint, arch: Arch) -> int:
    """The side a subnet is scored at, as it was trained (see :func:`subnet_resolution`)."""
    base = int(ckpt.space_config["base_resolution"])
    return subnet_resolution(ckpt.train_resolution, bool(ckpt.settings.get("scale_resolution", False)), arch, base)


def evaluate_arch(
    supernet: Supernet,
    arch: Arch,
    splits: DataSplits,
    *,
    task: Task | None = None,
    resolution: int | None = None,
    split: str = "val",
    limit: int | None = None,
    batch_size: int = 500,
    recalibrate: bool = True,
    calib_images: int = 2000,
    calib_batches: list | None = None,
    seed: int = 0,
    channels_last: bool | None = None,
    tuned: dict[str, Any] | None = None,
) -> ArchScore:
    """Score ``arch``: extract it, recalibrate its BN on training images, the task's metrics on ``split``.

    Args:
        supernet: the trained supernet (its weights and BN buffers are not modified).
        arch: a member of the supernet's space.
        splits: the data (its number of classes must match the supernet's).
        task: what the metrics are (default: the task the data's labels call for).
        resolution: input side; default ``arch.resolution`` (pass :func:`eval_resolution`'s
            value for a supernet trained at a proxy resolution).
        split: ``val`` (drives search) or ``test`` (final reports only).
        limit: score on the first ``limit`` images of the split only (>= 1; None: all).
        recalibrate: re-estimate BN statistics first (off: the supernet's running statistics).
        calib_images: number of training images for recalibration (a seeded random subset).
        calib_batches: prepared calibration batches (from :func:`calibration_batches`), reused
            across many archs; overrides ``calib_images``.
        seed: seed of the calibration subset.
        channels_last: run in channels-last memory format (default: on CPU).
        tuned: the task's settings fitted on the validation split (multi-label thresholds). None:
            on ``val`` they are fitted on the scored images themselves; on ``test`` on the
            validation split (its first ``limit`` images) first, then applied to the test split.

    Raises:
        ValueError: unknown split, class-count mismatch, ``limit`` < 1, or ``resolution`` outside
            ``[1, MAX_RESOLUTION]``.
        DataError: ``split`` is ``test`` and the data has no test split.
        ArchError: ``arch`` is not in the supernet's space.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 image (or None for the whole split), got {limit}")
    if splits.num_classes != supernet.num_classes:
        raise ValueError(f"the data has {splits.num_classes} classes but the supernet {supernet.num_classes}")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    data = splits.val if split == "val" else splits.test
    if data is None:
        raise DataError(f"dataset {splits.name!r} has no test split")
    supernet.space.check(arch)
    resolution = check_resolution(resolution if resolution is not None else arch.resolution)
    device = next(supernet.parameters()).device
    if channels_last is None:
        channels_last = device.type == "cpu"
    net = supernet.extract(arch)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    calib = CalibrationStats(0, 0, 0.0)
    if recalibrate:
        if calib_batches is None:
            calib_batches = calibration_batches(
                splits, images=calib_images, resolution=resolution, seed=seed, device=device,
                channels_last=channels_last,
            )
        calib = recalibrate_bn(net, calib_batches)
    net.eval()
    task = task if task is not None else task_for_data(splits)
    start = time.perf_counter()

    def outputs(part: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
        return collect_outputs(net, _batches(part, splits, batch_size=batch_size, resolution=resolution,
                                             device=device, channels_last=channels_last, limit=limit))

    scored, targets = outputs(data)
    if tuned is None:
        tuned = task.tune(*outputs(splits.val)) if split == "test" else task.tune(scored, targets)
    metrics = task.metrics(scored, targets, tuned)
    return ArchScore(
        arch=arch.to_string(),
        task=task.name,
        metric_name=task.metric,
        metric=metrics[task.metric],
        metrics=metrics,
        tuned=tuned,
        images=len(targets),
        split=split,
        resolution=resolution,
        recalibrated=recalibrate,
        calibration_images=calib.images,
        calibration_seconds=calib.seconds,
        eval_seconds=time.perf_counter() - start,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nas.evaluate",
        description="The metrics of a subnet of a trained supernet (top-1; multi-label: mAP, F1, precision, "
                    "recall), after BN recalibration.",
    )
    p.add_argument("--run-dir", required=True, help="run directory holding supernet.pt (or the .pt file)")
    p.add_argument("--arch", default="largest", help=arch_help(networks=False) + " [largest]")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--limit", type=int_arg(1), default=None, help="score on this many images only (>= 1) [all]")
    p.add_argument("--calib-images", type=int_arg(1), default=2000, help="training images for BN recalibration")
    p.add_argument("--no-recalibrate", action="store_true", help="use the supernet's running BN statistics")
    p.add_argument("--resolution", type=int_arg(8, MAX_RESOLUTION), default=None,
                   help=f"input side, 8..{MAX_RESOLUTION} (default: the supernet's training side, else the arch's)")
    p.add_argument("--data", default=None, help="dataset (default: the one the supernet was trained on)")
    p.add_argument("--data-dir", default=None)
    add_torch_device_argument(p)
    p.add_argument("--threads", type=int_arg(1), default=None, help="torch CPU threads (>= 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = parse_device(args.torch_device)
        supernet, ckpt = load_supernet(args.run_dir, map_location=device)
        arch = parse_arch(args.arch, supernet.space)
        data_name = args.data or ckpt.data.get("name", "fashion-mnist")
        data_dir = args.data_dir if args.data else (args.data_dir or ckpt.data.get("data_dir"))
        splits = load_data(data_name, data_dir, seed=int(ckpt.data.get("split_seed", 0)),
                           channels=supernet.space.config.in_channels)
        ckpt.check_compatible(num_classes=splits.num_classes)
        task = checkpoint_task(ckpt, splits)
        resolution = args.resolution if args.resolution is not None else eval_resolution(ckpt, arch)
        score = evaluate_arch(supernet, arch, splits, task=task, resolution=resolution, split=args.split,
                              limit=args.limit,
                              recalibrate=not args.no_recalibrate, calib_images=args.calib_images)
    except (CheckpointError, ArchError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cost = network_cost(supernet.space.resolve(arch, supernet.num_classes, resolution=resolution))
    out = score.to_dict() | score.metrics | {"madds": cost.madds, "params": cost.params, "epoch": ckpt.epoch,
                             "checkpoint": ckpt.path}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        how = (f"after BN recalibration on {score.calibration_images} images ({score.calibration_seconds:.2f} s)"
               if score.recalibrated else "with the supernet's running BN statistics")
        print(f"{arch.to_string()}")
        shown = ", ".join(f"{k} {v:.2f}%" for k, v in score.metrics.items())
        tuned = " (F1/precision/recall at per-class thresholds tuned on val)" if score.tuned else ""
        print(f"{shown}{tuned} on {score.split} ({score.images} images at {resolution} px) {how}; "
              f"{cost.madds / 1e6:.1f} M MAdds, {cost.params / 1e6:.2f} M params; checkpoint epoch {ckpt.epoch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
