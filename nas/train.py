"""Supernet training: the sandwich rule with in-place distillation, cosine schedule, checkpoints.

Each step runs the largest subnet on the labels (label-smoothed cross-entropy), then the smallest
and ``n_random`` random subnets on the largest one's soft predictions (in-place distillation,
BigNAS / once-for-all) mixed with the labels (``distill_weight`` 0.5: in short CPU schedules a
pure-distillation start, from a teacher that knows nothing yet, drags the shared weights back;
measured below), accumulates all gradients and takes one SGD step.

Reproducible: the shuffle order, the sampled subnets and dropout of epoch ``e`` are drawn from
generators seeded with ``(seed, e)``, so a run resumed after epoch ``e`` continues exactly as the
uninterrupted run would (checkpoints hold weights, optimizer and AMP-scaler states).

CLI (the default recipe: mobilenetv3_large at a 32 px proxy on Fashion-MNIST)::

    python -m nas.train                                       # -> runs/supernet/supernet.pt
    python -m nas.train --run-dir runs/supernet --resume
    python -m nas.train --space mobilenetv3_small32 --resolution arch --run-dir runs/small32
    python -m nas.train --smoke --run-dir runs/smoke          # about a minute
    python -m nas.train --backend ray --num-workers 4         # data-parallel on a Ray cluster (docs/ray.md)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from nas.data import DataSplits, iterate_batches, load_data
from nas.errors import ConfigError, DataError
from nas.evaluate import calibration_batches, evaluate_arch, proxy_side, subnet_resolution
from nas.space import Arch, SearchSpace, load_space
from nas.supernet import Checkpoint, CheckpointError, Supernet, checkpoint_path, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from nas.distributed import DataParallel

__all__ = ["TrainConfig", "TrainResult", "train_supernet", "train_static", "lr_at", "soft_cross_entropy", "main"]


#: How subnets of one training step get their input side (see :class:`TrainConfig`).
RESOLUTION_SAMPLING = ("step", "arch")

#: Settings added after checkpoints were first written, with the value those checkpoints were
#: trained with (so resuming an older checkpoint continues it as it was trained).
_LEGACY_SETTINGS = {"resolution_sampling": "arch"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a supernet training run.

    ``resolution``: the proxy side every subnet trains at; ``None`` trains each subnet at its
    own ``arch.resolution`` (spaces whose resolutions suit the data, e.g. ``mobilenetv3_small32``).
    ``scale_resolution``: ``resolution`` is the proxy of the space's base resolution and each subnet
    trains at the proportional side (224 -> 32, 160 -> 23 px), so that the deployment-resolution
    choice keeps an effect on proxy accuracy (see :func:`nas.evaluate.subnet_resolution`).
    ``resolution_sampling`` (when subnets train at different sides, i.e. ``resolution`` is None or
    scaled): ``step`` draws one of the space's resolutions per step, uniformly, and every subnet of
    the step (teacher included) runs at it, so each resolution gets the same share of training
    (once-for-all's elastic resolution); ``arch`` runs each subnet at its own arch's resolution
    (BigNAS), which trains the smallest and largest resolutions at every step (through the
    smallest and largest subnets) and the others only through the random subnets: measured on
    Fashion-MNIST, that made 25-27 px subnets score below the 23 px smallest one.
    ``subset``: training images per epoch (a fresh random subset each epoch; ``None`` = all).
    ``distill_weight``: share of the students' loss that is distillation from the largest subnet
    (the rest: label cross-entropy). On Fashion-MNIST at 32 px, after 64 steps, 1.0 gave 57.8 / 50.9 %
    (largest / smallest, validation) and 0.5 gave 69.1 / 72.3 %.
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
    distill_weight: float = 0.5
    n_random: int = 2
    resolution: int | None = 32
    scale_resolution: bool = True
    resolution_sampling: str = "step"
    subset: int | None = None
    val_subset: int | None = 5000
    calib_images: int = 2000
    kernel_transform: bool = True
    seed: int = 0
    channels_last: bool = True

    def __post_init__(self) -> None:
        problems = []

        def need(ok: bool, field: str, allowed: str) -> None:
            if not ok:
                problems.append(f"{field}: {getattr(self, field)!r} (allowed: {allowed})")

        need(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "integer >= 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 2, "batch_size", "integer >= 2")
        need(self.lr > 0, "lr", "> 0")
        need(0 <= self.momentum < 1, "momentum", "[0, 1)")
        need(self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.warmup_epochs >= 0, "warmup_epochs", ">= 0")
        need(0 <= self.label_smoothing < 1, "label_smoothing", "[0, 1)")
        need(0 <= self.distill_weight <= 1, "distill_weight", "[0, 1]")
        need(isinstance(self.n_random, int) and self.n_random >= 0, "n_random", "integer >= 0")
        need(self.resolution is None or (isinstance(self.resolution, int) and self.resolution >= 8),
             "resolution", "integer >= 8, or None for each arch's own resolution")
        need(self.resolution_sampling in RESOLUTION_SAMPLING, "resolution_sampling", " | ".join(RESOLUTION_SAMPLING))
        need(self.subset is None or self.subset >= self.batch_size, "subset", "None or >= batch_size")
        need(self.val_subset is None or self.val_subset >= 1, "val_subset", "None or >= 1")
        need(self.calib_images >= 1, "calib_images", ">= 1")
        if problems:
            raise ConfigError("train config", problems)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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


@dataclass(frozen=True)
class TrainResult:
    supernet: Supernet
    checkpoint: Path
    history: list[dict[str, Any]]


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 (per step)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(1.0, t)))


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft targets (the teacher's probabilities)."""
    return -(target_probs * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # No decay on BN affine parameters, biases and the kernel transforms (as once-for-all).
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() <= 1 or "transforms" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    return dev


def _amp(device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler): bf16 where supported, else fp16 + scaler; CPU: fp32."""
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


def _data_record(cfg: TrainConfig, splits: DataSplits) -> dict[str, Any]:
    return {"name": cfg.data, "data_dir": cfg.data_dir, "split_seed": cfg.split_seed,
            "num_classes": splits.num_classes, "source": splits.source}


#: Settings that may differ when resuming (they do not change what is computed).
_RESUMABLE = ("epochs",)


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
    if "epochs" in given:
        saved = dataclasses.replace(saved, epochs=cfg.epochs)
    return saved


def prepare_run(
    cfg: TrainConfig, path: Path, *, resume: bool, given: set[str] | None, splits: DataSplits | None
) -> tuple[TrainConfig, Checkpoint | None, SearchSpace, DataSplits]:
    """Everything a training run checks before it starts (shared by the local and Ray trainers):
    the checkpoint to resume (or none in the way), its settings, the space and the data."""
    ckpt = None
    if resume:
        ckpt = load_checkpoint(path)
        cfg = _resume_config(ckpt, cfg, given or set())
    elif path.exists():
        raise CheckpointError(f"{path} exists: pass --resume to continue it, or choose another --run-dir")
    space = load_space(cfg.space)
    if splits is None:
        splits = load_data(cfg.data, cfg.data_dir, seed=cfg.split_seed, channels=space.config.in_channels)
    if ckpt is not None:
        ckpt.check_compatible(space, splits.num_classes)
    return cfg, ckpt, space, splits


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
    parallel: DataParallel | None = None,
) -> TrainResult:
    """Train (or resume training) a supernet; checkpoint to ``run_dir/supernet.pt`` every epoch.

    Args:
        cfg: the settings (on resume the checkpoint's settings win; ``given`` names the settings the
            caller set explicitly, which must then agree with the checkpoint's, except ``epochs``).
        run_dir: output directory.
        resume: continue from ``run_dir/supernet.pt`` after its last completed epoch.
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
        CheckpointError: resuming a checkpoint of another space / class count / settings.
        DataError: the data is missing.
    """
    run_dir = Path(run_dir)
    path = checkpoint_path(run_dir)
    cfg, ckpt, space, splits = prepare_run(cfg, path, resume=resume, given=given, splits=splits)
    dev = _pick_device(device)
    amp_dtype, use_scaler = _amp(dev)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format

    supernet = Supernet(space, splits.num_classes, kernel_transform=cfg.kernel_transform, seed=cfg.seed)
    optimizer = torch.optim.SGD(_param_groups(supernet, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.momentum > 0)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    start_epoch, history = 0, []
    if ckpt is not None:
        supernet.load_state_dict(ckpt.model)
        start_epoch, history = ckpt.epoch, list(ckpt.history)
    supernet.to(dev, memory_format=mf)
    if ckpt is not None:  # after .to(): optimizer state follows the parameters' device
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.scaler:
            scaler.load_state_dict(ckpt.scaler)
    writer = parallel is None or parallel.is_writer
    if parallel is not None:
        parallel.check_batch_size(cfg.batch_size)
        parallel.broadcast_parameters(supernet)

    n_train = min(len(splits.train), cfg.subset or len(splits.train))
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise DataError(f"{n_train} training images are fewer than one batch of {cfg.batch_size}")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    largest, smallest = space.largest(), space.smallest()
    # one proxy side for all, or None: batches stay at the data's side and are resized per subnet
    per_subnet = cfg.resolution is None or cfg.scale_resolution
    batch_res = None if per_subnet else cfg.resolution
    base_res = space.config.base_resolution

    resolutions = space.config.resolutions
    step_sides = per_subnet and cfg.resolution_sampling == "step" and len(resolutions) > 1

    def run(x: torch.Tensor, arch: Arch, side: int | None = None) -> torch.Tensor:
        if side is None:
            side = subnet_resolution(cfg.resolution, cfg.scale_resolution, arch, base_res)
        if x.shape[-1] != side:
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
            x = x.contiguous(memory_format=mf)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            return supernet(x, arch)

    if start_epoch >= cfg.epochs and writer:
        print(f"{path}: already trained for {start_epoch} epochs (--epochs {cfg.epochs}); nothing to do")
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        torch_gen_seed = int(rng.integers(2**62))
        supernet.train()
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   disable=not (progress and writer), dynamic_ncols=True, file=sys.stderr)
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        # Dropout draws from torch's global generator: seed it per epoch, inside a fork so the
        # caller's generator state is left as it was.
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(torch_gen_seed)
            batches = iterate_batches(splits.train, splits, batch_size=cfg.batch_size, resolution=batch_res,
                                      shuffle=True, rng=rng, drop_last=True, limit=n_train)
            for step, (x, y) in enumerate(batches):
                lr = lr_at(epoch * steps_per_epoch + step, total_steps, warmup_steps, cfg.lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if parallel is not None:
                    x, y = parallel.shard(x, y)
                x = x.to(dev, non_blocking=True).contiguous(memory_format=mf)
                y = y.to(dev, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                # sandwich rule: largest on labels, then smallest + random subnets distilled from it
                side = None
                if step_sides:  # one resolution for the whole step (the teacher's too)
                    side = proxy_side(cfg.resolution, cfg.scale_resolution,
                                      int(resolutions[rng.integers(len(resolutions))]), base_res)
                    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
                    x = x.contiguous(memory_format=mf)
                logits = run(x, largest, side)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                scaler.scale(loss).backward()
                teacher = logits.detach().float().softmax(1)
                step_loss = float(loss.detach())
                for arch in [smallest] + [space.sample(rng) for _ in range(cfg.n_random)]:
                    student = run(x, arch, side)
                    kd = soft_cross_entropy(student, teacher)
                    if cfg.distill_weight < 1.0:
                        hard = F.cross_entropy(student.float(), y, label_smoothing=cfg.label_smoothing)
                        kd = cfg.distill_weight * kd + (1.0 - cfg.distill_weight) * hard
                    scaler.scale(kd).backward()
                    step_loss += float(kd.detach())
                if parallel is not None:
                    parallel.average_gradients(supernet)
                scaler.step(optimizer)
                scaler.update()
                seen += len(y)
                loss_sum += step_loss
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                                lr=f"{lr:.3g}")
        bar.close()
        train_seconds = time.perf_counter() - t0
        if parallel is not None:  # the loss and throughput of the whole run, not of this slice
            loss_sum, seen = parallel.mean(loss_sum), seen * parallel.world_size
        record = {"epoch": epoch + 1, "loss": round(loss_sum / steps_per_epoch, 4), "train_seconds": round(train_seconds, 1),
                  "images_per_second": round(seen / train_seconds, 1)}
        if parallel is not None:
            record["workers"] = parallel.world_size
        if not writer:
            history.append(record)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                break
            continue
        record |= _epoch_scores(supernet, splits, cfg, largest, smallest)
        history.append(record)
        save_checkpoint(path, Checkpoint(
            space_name=space.name, space_digest=space.digest, space_config=space.config.to_dict(),
            num_classes=splits.num_classes, data=_data_record(cfg, splits), train_resolution=cfg.resolution,
            epoch=epoch + 1, kernel_transform=cfg.kernel_transform, settings=cfg.to_dict(),
            model={k: v.detach().cpu() for k, v in supernet.state_dict().items()},
            optimizer=_cpu(optimizer.state_dict()), scaler=scaler.state_dict() if use_scaler else None,
            history=history,
        ))
        (run_dir / "history.json").write_text(json.dumps(history, indent=2))
        print(f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v}" for k, v in record.items() if k != "epoch"),
              file=sys.stderr)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return TrainResult(supernet.eval(), path, history)


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
    optimizer, schedule, label smoothing; no distillation). The stand-alone baseline of
    ``benchmarks/supernet_ranking.py``.

    Returns:
        per-epoch ``{"epoch", "loss", "train_seconds", "images_per_second"}``.
    """
    dev = _pick_device(device)
    amp_dtype, use_scaler = _amp(dev)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    net.to(dev, memory_format=mf).train()
    optimizer = torch.optim.SGD(_param_groups(net, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.momentum > 0)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    n_train = min(len(splits.train), cfg.subset or len(splits.train))
    steps_per_epoch = n_train // cfg.batch_size
    total_steps, warmup_steps = cfg.epochs * steps_per_epoch, int(cfg.warmup_epochs * steps_per_epoch)
    history = []
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
                with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                seen += len(y)
                loss_sum += float(loss.detach())
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": round(loss_sum / steps_per_epoch, 4),
                        "train_seconds": round(seconds, 1), "images_per_second": round(seen / seconds, 1)})
    return history


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _epoch_scores(supernet: Supernet, splits: DataSplits, cfg: TrainConfig, largest: Arch, smallest: Arch) -> dict:
    """Validation top-1 of the largest and smallest subnets after BN recalibration."""
    out = {}
    for label, arch in (("largest", largest), ("smallest", smallest)):
        res = subnet_resolution(cfg.resolution, cfg.scale_resolution, arch, supernet.space.config.base_resolution)
        dev = next(supernet.parameters()).device
        calib = calibration_batches(splits, images=cfg.calib_images, resolution=res, seed=cfg.seed, device=dev,
                                    channels_last=cfg.channels_last)
        score = evaluate_arch(supernet, arch, splits, resolution=res, limit=cfg.val_subset, calib_batches=calib,
                              channels_last=cfg.channels_last)
        out[f"val_top1_{label}"] = round(score.top1, 2)
    return out


# -- CLI ---------------------------------------------------------------------------------------------
SMOKE = {"subset": 2560, "val_subset": 1000, "calib_images": 500, "epochs": 2, "n_random": 1}


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m nas.train",
        description="Train a weight-sharing supernet with the sandwich rule and in-place distillation.",
    )
    # every setting defaults to None here so that --resume can tell which ones were given
    p.add_argument("--space", default=None, help=f"space name or YAML file [{d.space}]")
    p.add_argument("--data", default=None, help=f"fashion-mnist | cifar | image-folder | DIR [{d.data}]")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run-dir", default="runs/supernet", help="output directory [runs/supernet]")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/supernet.pt after its last epoch")
    p.add_argument("--epochs", type=int, default=None, help=f"[{d.epochs}]")
    p.add_argument("--batch-size", type=int, default=None, help=f"[{d.batch_size}]")
    p.add_argument("--lr", type=float, default=None, help=f"peak SGD learning rate [{d.lr}]")
    p.add_argument("--weight-decay", type=float, default=None, help=f"[{d.weight_decay}]")
    p.add_argument("--warmup-epochs", type=float, default=None, help=f"[{d.warmup_epochs}]")
    p.add_argument("--distill-weight", type=float, default=None,
                   help=f"share of distillation (vs labels) in the students' loss [{d.distill_weight}]")
    p.add_argument("--n-random", type=int, default=None, help=f"random subnets per step besides largest+smallest [{d.n_random}]")
    p.add_argument("--resolution", default=None,
                   help=f"proxy training side in px, or 'arch' for each subnet's own resolution [{d.resolution}]")
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--val-subset", type=int, default=None, help=f"validation images scored per epoch [{d.val_subset}]")
    p.add_argument("--calib-images", type=int, default=None, help=f"BN recalibration images [{d.calib_images}]")
    p.add_argument("--resolution-sampling", choices=RESOLUTION_SAMPLING, default=None,
                   help="step: one resolution per step for all its subnets (once-for-all); arch: each subnet at "
                        f"its own arch's resolution (BigNAS) [{d.resolution_sampling}]")
    p.add_argument("--fixed-resolution", action="store_true",
                   help="train every subnet at --resolution (default: scale it with the arch's resolution)")
    p.add_argument("--no-kernel-transform", action="store_true", help="plain centre-cropped kernels")
    p.add_argument("--seed", type=int, default=None, help=f"[{d.seed}]")
    p.add_argument("--smoke", action="store_true",
                   help=f"tiny run to check the setup (about a minute): {SMOKE}")
    p.add_argument("--device", default="auto", help="auto (CUDA with mixed precision when present) | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads [torch's default; with --backend ray: 1 per worker]")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: this process; ray: data-parallel Ray Train workers (DDP-style gradient averaging)")
    p.add_argument("--num-workers", type=int, default=None, help="with --backend ray: training processes [2]")
    p.add_argument("--ray-address", default=None,
                   help="with --backend ray: cluster to join (HOST:PORT, ray://HOST:10001, auto) [start a local one]")
    return p


def _config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, set[str]]:
    given: dict[str, Any] = dict(SMOKE) if args.smoke else {}
    for name in ("space", "data", "data_dir", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                 "distill_weight", "n_random", "resolution_sampling", "subset", "val_subset", "calib_images", "seed"):
        value = getattr(args, name)
        if value is not None:
            given[name] = value
    if args.resolution is not None:
        if args.resolution == "arch":
            given["resolution"] = None
        else:
            try:
                given["resolution"] = int(args.resolution)
            except ValueError:
                raise ConfigError("--resolution", [f"{args.resolution!r}: expected an integer or 'arch'"]) from None
    if args.fixed_resolution:
        given["scale_resolution"] = False
    if args.no_kernel_transform:
        given["kernel_transform"] = False
    return TrainConfig(**given), set(given)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads and args.backend == "local":
        torch.set_num_threads(args.threads)
    try:
        cfg, given = _config_from_args(args)
        if args.backend == "ray":
            from nas.distributed import DistributedTrainingError, train_supernet_ray

            use_gpu = None if args.device == "auto" else args.device.startswith("cuda")
            try:
                path = train_supernet_ray(cfg, args.run_dir, num_workers=args.num_workers or 2, resume=args.resume,
                                          given=given, address=args.ray_address, use_gpu=use_gpu,
                                          threads_per_worker=args.threads or 1)
            except DistributedTrainingError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"checkpoint: {path}")
            return 0
        if args.num_workers is not None or args.ray_address is not None:
            raise ConfigError("command line", [
                f"{flag}: given without --backend ray (allowed only with it)"
                for flag, value in (("--num-workers", args.num_workers), ("--ray-address", args.ray_address))
                if value is not None
            ])
        result = train_supernet(cfg, args.run_dir, resume=args.resume, given=given, device=args.device,
                                progress=not args.no_progress)
    except (ConfigError, CheckpointError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; `python -m nas.train --run-dir {args.run_dir} --resume` continues after the last "
              "completed epoch", file=sys.stderr)
        return 130
    print(f"checkpoint: {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
