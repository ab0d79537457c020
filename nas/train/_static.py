"""Training one static network from scratch with the supernet's recipe (the stand-alone baseline)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nas.data import DataSplits, iterate_batches
from nas.train._config import TrainConfig
from nas.train._optim import lr_at, param_groups, pick_device
from nas.train._precision import resolve_precision
from nas.train._threads import ThreadGovernor
from nas.train._supernet_training import TrainingDivergedError, lower_lr

__all__ = ["train_static"]


def train_static(
    net: torch.nn.Module,
    splits: DataSplits,
    cfg: TrainConfig,
    *,
    resolution: int,
    device: str = "auto",
    progress: bool = True,
    desc: str = "stand-alone",
) -> list[dict[str, Any]]:
    """Train one static network from scratch with the supernet's recipe (same epochs, batches,
    optimizer, schedule and the data's task loss, e.g. label-smoothed cross-entropy; no
    distillation). The stand-alone baseline of ``benchmarks/supernet_ranking.py``.

    Returns:
        per-epoch ``{"epoch", "loss", "train_seconds", "images_per_second"}``.

    Raises:
        TrainingDivergedError: a step's loss is NaN or infinite (raised before that step's update).
    """
    task = cfg.task_for(splits)
    dev = pick_device(device)
    precision = resolve_precision(cfg.precision, dev)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net.to(dev, memory_format=mf).train()
    optimizer = torch.optim.SGD(param_groups(net, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.momentum > 0)
    scaler = precision.grad_scaler()
    n_train = min(len(splits.train), cfg.subset or len(splits.train))
    steps_per_epoch = n_train // cfg.batch_size
    total_steps, warmup_steps = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    history = []
    with ThreadGovernor(dev, log=lambda m: tqdm.write(m, file=sys.stderr) if progress else None) as governor:
        for epoch in range(cfg.epochs):
            rng = np.random.default_rng([cfg.seed, epoch])
            t0, seen, loss_sum = time.perf_counter(), 0, 0.0
            bar = tqdm(total=steps_per_epoch, desc=f"{desc} {epoch + 1}/{cfg.epochs}", unit="step",
                       disable=not progress, dynamic_ncols=True, file=sys.stderr)
            with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
                torch.manual_seed(int(rng.integers(2**62)))
                batches = iterate_batches(splits.train, splits, batch_size=cfg.batch_size, resolution=resolution,
                                          shuffle=True, rng=rng, drop_last=True, limit=n_train)
                for step, (x, y) in enumerate(batches):
                    lr = lr_at(epoch * steps_per_epoch + step, total_steps, warmup_steps, cfg.lr)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    x = x.to(dev, non_blocking=True).contiguous(memory_format=mf)
                    y = y.to(dev, non_blocking=True)
                    optimizer.zero_grad(set_to_none=True)
                    with precision.autocast():
                        logits = net(x)
                    loss = task.loss(logits, y)
                    step_loss = float(loss.detach())
                    if not math.isfinite(step_loss):
                        bar.close()
                        raise TrainingDivergedError(
                            f"{desc} training diverged at epoch {epoch + 1}/{cfg.epochs}, step {step + 1}/"
                            f"{steps_per_epoch}: the loss is {step_loss} (learning rate {lr:.3g} at this step, "
                            f"peak lr {cfg.lr:g}); lower the learning rate (e.g. lr {lower_lr(cfg.lr):g})"
                        )
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    governor.tick()
                    seen += len(y)
                    loss_sum += step_loss
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
            bar.close()
            seconds = time.perf_counter() - t0
            history.append({"epoch": epoch + 1, "loss": round(loss_sum / steps_per_epoch, 4),
                            "train_seconds": round(seconds, 1), "images_per_second": round(seen / seconds, 1)})
    return history
