"""Supernet training: the sandwich rule with in-place distillation, cosine schedule, checkpoints.

Each step runs the largest subnet on the labels (the task's loss: label-smoothed cross-entropy
for single-label data, BCE or focal loss for multi-label data; :mod:`nas.tasks`), then the
students - the largest again (``step-sandwich``, when the step's side is not the teacher's), the
smallest and ``n_random`` random subnets - on the teacher's soft predictions (in-place
distillation, BigNAS / once-for-all) mixed with the labels
(``distill_weight`` 0.5: in short CPU schedules a pure-distillation start, from a teacher that
knows nothing yet, drags the shared weights back; measured in ``benchmarks/SUPERNET.md``),
accumulates all gradients and takes one SGD step. Which proxy resolution the teacher and the
students see is ``TrainConfig.resolution_sampling`` (default ``step-sandwich``: teacher at the
largest side, all students at one side drawn per step; ``docs/supernet.md`` compares the modes).

Reproducible: the shuffle order, the sampled subnets and dropout of epoch ``e`` are drawn from
generators seeded with ``(seed, e)``, so a run resumed after epoch ``e`` continues exactly as the
uninterrupted run would (checkpoints hold weights, optimizer and AMP-scaler states). Inside an
epoch a checkpoint is written every ``checkpoint_minutes``; it also holds the step reached and the
generators' states at that step, so a run resumed from it continues exactly too.

A step whose loss is not finite stops training (:class:`TrainingDivergedError`) before the
optimizer applies it and before any checkpoint is written, so the last good checkpoint is kept.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from nas.data import DataSplits, iterate_batches, load_data
from nas.errors import ConfigError, DataError
from nas.evaluate import calibration_batches, evaluate_arch, proxy_side, subnet_resolution
from nas.space import Arch, SearchSpace, load_space
from nas.supernet import (
    Checkpoint,
    CheckpointError,
    Supernet,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
    write_atomically,
)
from nas.train._config import TrainConfig
from nas.tasks import Task, task_from_checkpoint
from nas.train._optim import lr_at, param_groups, pick_device
from nas.train._precision import resolve_precision
from nas.train._threads import ThreadGovernor



class WorkerShare(Protocol):
    """This process's part of a data-parallel run (``nas.distributed.DataParallel`` implements it):
    every worker draws the same subnets and trains on its slice of each global batch."""

    world_size: int
    is_writer: bool

    def check_batch_size(self, batch_size: int) -> None: ...

    def broadcast_parameters(self, module: torch.nn.Module) -> None: ...

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def mean(self, value: float) -> float: ...

    def average_gradients(self, module: torch.nn.Module) -> None: ...

__all__ = ["TrainResult", "TrainingDivergedError", "train_supernet", "prepare_run", "lower_lr"]


class TrainingDivergedError(ValueError):
    """The training loss (or the weights) became NaN or infinite: the settings, usually the
    learning rate, make training diverge. Nothing is checkpointed after it happens."""


@dataclass(frozen=True)
class TrainResult:
    supernet: Supernet
    checkpoint: Path
    history: list[dict[str, Any]]


def _data_record(cfg: TrainConfig, splits: DataSplits, task: Task) -> dict[str, Any]:
    return {"name": cfg.data, "data_dir": cfg.data_dir, "split_seed": cfg.split_seed,
            "num_classes": splits.num_classes, "source": splits.source, "task": task.name,
            "classes": list(splits.classes), "fingerprint": splits.fingerprint()}


#: Settings that may differ when resuming (``epochs`` extends or shortens the schedule;
#: ``checkpoint_minutes`` does not change what is computed).
_RESUMABLE = ("epochs", "checkpoint_minutes", "precision")


def _resume_config(ckpt: Checkpoint, cfg: TrainConfig, given: set[str]) -> TrainConfig:
    """The checkpoint's settings, with the explicitly given ones checked against them."""
    saved = TrainConfig.from_checkpoint(ckpt.settings)
    clashes = [
        f"{k}: checkpoint has {getattr(saved, k)!r}, command line gives {getattr(cfg, k)!r}"
        for k in sorted(given)
        if k not in _RESUMABLE and getattr(saved, k) != getattr(cfg, k)
    ]
    if clashes:
        raise CheckpointError(
            f"cannot resume {ckpt.path} with different settings (drop the flags or use a new --run-dir): "
            + "; ".join(clashes)
        )
    return replace(saved, **{k: getattr(cfg, k) for k in _RESUMABLE if k in given})


def with_task_recipe(cfg: TrainConfig, task: Task, given: set[str]) -> TrainConfig:
    """``cfg`` with the task's supernet recipe defaults for the fields not in ``given`` (set by the user)."""
    return replace(cfg, **{k: v for k, v in task.supernet_recipe.items() if k not in given})


def prepare_run(
    cfg: TrainConfig, path: Path, *, resume: bool, given: set[str] | None, splits: DataSplits | None
) -> tuple[TrainConfig, Checkpoint | None, SearchSpace, DataSplits, Task]:
    """Everything a training run checks before it starts (shared by the local and Ray trainers):
    the checkpoint to resume (or none in the way), its settings, the space, the data and the task
    the data calls for (with the loss settings checked against it)."""
    ckpt = None
    if resume:
        ckpt = load_checkpoint(path)
        cfg = _resume_config(ckpt, cfg, given or set())
    elif path.exists():
        raise CheckpointError(f"{path} exists: pass --resume to continue it, or choose another --run-dir")
    space = load_space(cfg.space)
    if splits is None:
        splits = load_data(cfg.data, cfg.data_dir, seed=cfg.split_seed, channels=space.config.in_channels)
    task = cfg.task_for(splits)
    if ckpt is None and given is not None:  # a fresh run from the command line: the task's recipe defaults
        cfg = with_task_recipe(cfg, task, given)
    if ckpt is not None:
        ckpt.check_compatible(space, splits.num_classes)
        trained = task_from_checkpoint(ckpt.data, ckpt.settings).name
        if trained != task.name:
            raise CheckpointError(f"{ckpt.path}: trained for a {trained} task, but the data is {task.name}")
        ckpt.check_compatible(data_fingerprint=splits.fingerprint())
    return cfg, ckpt, space, splits, task


def train_supernet(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    given: set[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    splits: DataSplits | None = None,
    stop_after_epoch: int | None = None,
    parallel: WorkerShare | None = None,
) -> TrainResult:
    """Train (or resume training) a supernet; checkpoint to ``run_dir/supernet.pt`` after every epoch
    and, inside an epoch, every ``cfg.checkpoint_minutes``.

    A mid-epoch checkpoint has ``epoch`` = the finished epochs and ``step`` = the optimizer steps
    taken in the next one, plus the numpy and torch generator states and the epoch's running loss
    at that step; resuming skips the batches already trained (the epoch's shuffle is redrawn from
    ``(seed, epoch)``), restores the generators and continues, so the resumed run computes exactly
    what the uninterrupted run computes (bit-identical on the CPU).

    Args:
        cfg: the settings (on resume the checkpoint's settings win; ``given`` names the settings the
            caller set explicitly, which must then agree with the checkpoint's, except ``epochs``
            and ``checkpoint_minutes``). A fresh run with ``given`` (a set: the command line's
            way) takes the task's ``supernet_recipe`` for the fields not in it; ``given=None``
            trains ``cfg`` exactly as it is.
        run_dir: output directory.
        resume: continue from ``run_dir/supernet.pt``: after its last completed epoch, or from the
            step a mid-epoch checkpoint was written at.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
        progress: show a tqdm progress bar.
        splits: preloaded data (tests); default ``load_data(cfg.data, cfg.data_dir)``.
        stop_after_epoch: return after this epoch is checkpointed (training in chunks; tests use
            it to interrupt a run).
        parallel: this process's share of a data-parallel run (``python -m nas.train --backend
            ray``; see :mod:`nas.distributed`): each step trains on its slice of the global batch,
            gradients are averaged across processes before the optimizer step, and only the
            writer (rank 0) scores, prints and checkpoints. Every process draws the same shuffle
            and subnets from the same seeded generator, so a step computes what the single-process
            step computes on the same global batch, except that BatchNorm normalises each slice
            with its own batch statistics (as DDP without SyncBN).

    Raises:
        CheckpointError: resuming a checkpoint of another space / class count / settings, or a
            mid-epoch checkpoint whose step does not fit the data's steps per epoch.
        DataError: the data is missing.
        TrainingDivergedError: a step's loss (or the weights about to be checkpointed) is NaN or
            infinite; raised before that step's update and before any checkpoint of it, so the last
            good checkpoint stays.
    """
    run_dir = Path(run_dir)
    path = checkpoint_path(run_dir)
    cfg, ckpt, space, splits, task = prepare_run(cfg, path, resume=resume, given=given, splits=splits)
    dev = pick_device(device)
    try:
        precision = resolve_precision(cfg.precision, dev)
    except ValueError as e:
        raise ConfigError("train config", [str(e)]) from e
    use_scaler = precision.scaler
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format

    supernet = Supernet(space, splits.num_classes, kernel_transform=cfg.kernel_transform, seed=cfg.seed)
    optimizer = torch.optim.SGD(param_groups(supernet, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.momentum > 0)
    scaler = precision.grad_scaler()
    start_epoch, start_step, history = 0, 0, []
    if ckpt is not None:
        supernet.load_state_dict(ckpt.model)
        start_epoch, start_step, history = ckpt.epoch, ckpt.step, list(ckpt.history)
    supernet.to(dev, memory_format=mf)
    if ckpt is not None:  # after .to(): optimizer state follows the parameters' device
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.scaler and use_scaler:
            scaler.load_state_dict(ckpt.scaler)
    writer = parallel is None or parallel.is_writer
    if parallel is not None:
        parallel.check_batch_size(cfg.batch_size)
        parallel.broadcast_parameters(supernet)

    n_train = min(len(splits.train), cfg.subset or len(splits.train))
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise DataError(f"{n_train} training images are fewer than one batch of {cfg.batch_size}: give more images, "
                        f"or a batch size of at most {n_train} (nas.train --batch-size; a search takes such a "
                        "supernet with --supernet RUN_DIR)")
    if start_step > steps_per_epoch:
        raise CheckpointError(
            f"{path}: written at step {start_step} of epoch {start_epoch + 1}, but the data gives "
            f"{steps_per_epoch} steps per epoch; it was trained on other data"
        )
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    largest, smallest = space.largest(), space.smallest()
    # one proxy side for all, or None: batches stay at the data's side and are resized per subnet
    per_subnet = cfg.resolution is None or cfg.scale_resolution
    batch_res = None if per_subnet else cfg.resolution
    base_res = space.config.base_resolution

    resolutions = space.config.resolutions
    step_sides = per_subnet and cfg.resolution_sampling != "arch" and len(resolutions) > 1

    def run(x: torch.Tensor, arch: Arch, side: int | None = None) -> torch.Tensor:
        if side is None:
            side = subnet_resolution(cfg.resolution, cfg.scale_resolution, arch, base_res)
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=mf)
        with precision.autocast():
            return supernet(x, arch)

    governor = ThreadGovernor(dev, log=lambda m: tqdm.write(m, file=sys.stderr) if writer else None)
    last_good = ckpt.progress() if ckpt is not None else None  # what the file on disk holds
    last_save = time.monotonic()
    data_record = _data_record(cfg, splits, task)  # fixed for the run: its fingerprint is hashed once

    def save(epoch: int, step: int, resume_state: dict[str, Any] | None,
             buffers: dict[str, torch.Tensor] | None = None) -> None:
        """Checkpoint ``epoch`` finished epochs (+ ``step`` steps of the next, with its resume state);
        ``buffers``: BatchNorm statistics to save instead of the live ones."""
        nonlocal last_good, last_save
        model = {k: v.detach().cpu() for k, v in supernet.state_dict().items()} | (buffers or {})
        bad = [k for k, t in model.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
        if bad:
            where = f"epoch {epoch + 1}/{cfg.epochs}, step {step}/{steps_per_epoch}" if step else \
                f"epoch {epoch}/{cfg.epochs}"
            raise TrainingDivergedError(
                f"training diverged in {where}: the weights hold NaN or infinite values "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}) although the losses were finite; "
                f"{_kept(path, last_good)}; {_lower_lr_hint(cfg)}"
            )
        saved = Checkpoint(
            space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
            num_classes=splits.num_classes, data=data_record, train_resolution=cfg.resolution,
            epoch=epoch, kernel_transform=cfg.kernel_transform, settings=cfg.to_dict(),
            model=model, optimizer=_cpu(optimizer.state_dict()), scaler=scaler.state_dict() if use_scaler else None,
            history=history, step=step, resume_state=resume_state,
        )
        save_checkpoint(path, saved)
        last_good, last_save = saved.progress(), time.monotonic()

    if start_epoch >= cfg.epochs and writer:
        steps = f" and {start_step} steps of epoch {start_epoch + 1}" if start_step else ""
        print(f"{path}: already trained for {start_epoch} epochs{steps} (--epochs {cfg.epochs}); nothing to do")
    elif start_step and writer:
        print(f"{path}: resuming epoch {start_epoch + 1}/{cfg.epochs} at step {start_step + 1}/{steps_per_epoch}",
              file=sys.stderr)
    with governor:  # torch threads back to what they were, however the training ends
        for epoch in range(start_epoch, cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            torch_gen_seed = int(rng.integers(2**62))
            first = start_step if epoch == start_epoch else 0  # steps of this epoch trained before a resume
            partial = ckpt.resume_state if first and ckpt is not None else None
            supernet.train()
            bar = tqdm(total=steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                       disable=not (progress and writer), dynamic_ncols=True, file=sys.stderr)
            t0, seen, loss_sum, seconds_before = time.perf_counter(), 0, 0.0, 0.0
            if partial is not None:  # the epoch's running totals at the checkpoint
                seen, loss_sum, seconds_before = int(partial["seen"]), float(partial["loss_sum"]), \
                    float(partial["train_seconds"])
            # A mid-epoch checkpoint due after step k is written during step k + 1, once that step's
            # loss is known to be finite and before its update: the weights it saves have been seen to
            # work, not just to be finite. Until then ``pending`` holds what changes meanwhile (the BN
            # statistics, which the step's forward passes update, and the generators).
            pending: dict[str, Any] | None = None
            # Dropout draws from torch's global generator: seed it per epoch, inside a fork so the
            # caller's generator state is left as it was.
            with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
                torch.manual_seed(torch_gen_seed)
                batches = iterate_batches(splits.train, splits, batch_size=cfg.batch_size, resolution=batch_res,
                                          shuffle=True, rng=rng, drop_last=True, limit=n_train)
                if partial is not None:
                    # the shuffle is drawn from rng before the first batch: skip the batches already
                    # trained, then continue the generators from where the checkpoint left them
                    for _ in range(first):
                        next(batches)
                    _restore_generators(partial, rng, dev)
                for step, (x, y) in enumerate(batches, start=first):
                    lr = lr_at(epoch * steps_per_epoch + step, total_steps, warmup_steps, cfg.lr)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    if parallel is not None:
                        x, y = parallel.shard(x, y)
                    x = x.to(dev, non_blocking=True).contiguous(memory_format=mf)
                    y = y.to(dev, non_blocking=True)
                    optimizer.zero_grad(set_to_none=True)
                    # sandwich rule: largest on labels, then (largest,) smallest and random subnets distilled from it
                    side = None  # None: each subnet at its own arch's side
                    if step_sides:  # one side for the step's students (and, with "step", the teacher)
                        side = proxy_side(cfg.resolution, cfg.scale_resolution,
                                          int(resolutions[rng.integers(len(resolutions))]), base_res)
                    logits = run(x, largest, side if cfg.resolution_sampling == "step" else None)
                    loss = task.loss(logits, y)
                    scaler.scale(loss).backward()
                    teacher = task.soft_targets(logits)
                    step_loss = float(loss.detach())
                    students = [smallest] + [space.sample(rng) for _ in range(cfg.n_random)]
                    teacher_side = subnet_resolution(cfg.resolution, cfg.scale_resolution, largest, base_res)
                    if cfg.resolution_sampling == "step-sandwich" and side is not None and side != teacher_side:
                        students.insert(0, largest)  # the largest also learns at the step's side
                    for arch in students:
                        student = run(x, arch, side)
                        kd = task.distill(student, teacher)
                        if cfg.distill_weight < 1.0:
                            hard = task.loss(student, y)
                            kd = cfg.distill_weight * kd + (1.0 - cfg.distill_weight) * hard
                        scaler.scale(kd).backward()
                        step_loss += float(kd.detach())
                    diverged = not math.isfinite(step_loss)
                    if parallel is not None:  # all processes stop together (else the others wait forever)
                        diverged = parallel.mean(float(diverged)) > 0
                    if diverged:
                        bar.close()
                        raise TrainingDivergedError(
                            f"training diverged at epoch {epoch + 1}/{cfg.epochs}, step {step + 1}/{steps_per_epoch}: "
                            f"the loss is {step_loss} (learning rate {lr:.3g} at this step, peak --lr {cfg.lr:g}); "
                            f"this step was not applied and {_kept(path, last_good)}; {_lower_lr_hint(cfg)}"
                        )
                    if pending is not None:  # the state after the previous step gave a finite loss: keep it
                        save(epoch, **pending)
                        pending = None
                    if parallel is not None:
                        parallel.average_gradients(supernet)
                    scaler.step(optimizer)
                    scaler.update()
                    seen += len(y)
                    loss_sum += step_loss
                    governor.tick()
                    bar.update(1)
                    elapsed = seconds_before + time.perf_counter() - t0
                    bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}", img_s=f"{seen / elapsed:.0f}", lr=f"{lr:.3g}")
                    if writer and pending is None and time.monotonic() - last_save >= 60.0 * cfg.checkpoint_minutes:
                        resume_state = {**_generator_states(rng, dev), "seen": seen, "loss_sum": loss_sum,
                                        "train_seconds": elapsed}
                        if step + 1 < steps_per_epoch:
                            pending = {"step": step + 1, "resume_state": resume_state, "buffers": _buffers(supernet)}
                        else:  # no next step in this epoch to try it on; the epoch's scoring comes next
                            save(epoch, step + 1, resume_state)
            bar.close()
            train_seconds = seconds_before + time.perf_counter() - t0
            if cfg.reorder_channels and epoch + 1 < cfg.epochs:  # every process alike (same weights, same order)
                supernet.reorder_channels(optimizer)
            if parallel is not None:  # the loss and throughput of the whole run, not of this slice
                loss_sum, seen = parallel.mean(loss_sum), seen * parallel.world_size
            record = {"epoch": epoch + 1, "loss": round(loss_sum / steps_per_epoch, 4), "train_seconds": round(train_seconds, 1),
                      "images_per_second": round(seen / train_seconds, 1), "precision": precision.name}
            if parallel is not None:
                record["workers"] = parallel.world_size
            if not writer:
                history.append(record)
                if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                    break
                continue
            record |= _epoch_scores(supernet, splits, cfg, task, largest, smallest)
            history.append(record)
            save(epoch + 1, 0, None)
            history_text = json.dumps(history, indent=2).encode()
            write_atomically(run_dir / "history.json", lambda f: f.write(history_text))
            print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v}" for k, v in record.items() if k != "epoch"),
                  file=sys.stderr)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
    return TrainResult(supernet.eval(), path, history)


def _generator_states(rng: np.random.Generator, dev: torch.device) -> dict[str, Any]:
    """The epoch's generators at this step: numpy (shuffle, subnets, sides) and torch (dropout)."""
    return {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
    }


def _restore_generators(state: dict[str, Any], rng: np.random.Generator, dev: torch.device) -> None:
    """Continue the epoch's generators from a mid-epoch checkpoint. (A CUDA generator state is
    restored only on CUDA; resumed on another kind of device, dropout draws differ, as every
    kernel's rounding does.)"""
    try:
        rng.bit_generator.state = state["numpy"]
        torch.set_rng_state(state["torch"])
        if dev.type == "cuda" and state.get("cuda") is not None:
            torch.cuda.set_rng_state(state["cuda"], dev)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"the mid-epoch checkpoint's generator states are unreadable ({type(exc).__name__}: {exc}); "
            "the file is corrupt"
        ) from exc


def _buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the state-dict entries that are not parameters (BatchNorm statistics), on the CPU."""
    params = {name for name, _ in module.named_parameters()}
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items() if k not in params}


def _kept(path: Path, last_good: str | None) -> str:
    if last_good is None:
        return "no checkpoint was written"
    return f"{path} keeps the last good checkpoint ({last_good})"


def _lower_lr_hint(cfg: TrainConfig) -> str:
    return (f"lower the learning rate (e.g. --lr {lower_lr(cfg.lr):g}) and train again in a new --run-dir "
            "(a resumed run keeps the checkpoint's --lr)")


def lower_lr(lr: float) -> float:
    """A tenth of ``lr``, at most the default recipe's."""
    return min(lr / 10, TrainConfig().lr)


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _epoch_scores(supernet: Supernet, splits: DataSplits, cfg: TrainConfig, task: Task, largest: Arch,
                  smallest: Arch) -> dict:
    """The task's primary validation metric of the largest and smallest subnets after BN
    recalibration (``val_top1_largest``, ``val_mAP_smallest``, ...)."""
    out = {}
    for label, arch in (("largest", largest), ("smallest", smallest)):
        res = subnet_resolution(cfg.resolution, cfg.scale_resolution, arch, supernet.space.config.base_resolution)
        dev = next(supernet.parameters()).device
        calib = calibration_batches(splits, images=cfg.calib_images, resolution=res, seed=cfg.seed, device=dev,
                                    channels_last=cfg.channels_last)
        score = evaluate_arch(supernet, arch, splits, task=task, resolution=res, limit=cfg.val_subset,
                              calib_batches=calib, channels_last=cfg.channels_last)
        out[f"val_{task.metric}_{label}"] = round(score.metric, 2)
    return out
