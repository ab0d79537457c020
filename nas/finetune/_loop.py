"""The fine-tuning loop: schedule, frozen stages, per-epoch checkpoint and resume, early stopping,
and the export of the result with ``finetune.json`` and its training curve."""

from __future__ import annotations

import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from nas.errors import load_failure
from nas.data import DataSplits, iterate_batches
from nas.finetune._config import FinetuneConfig
from nas.finetune._model import Source, freeze_early, param_groups, train_mode, with_classes
from nas.tasks import Task, collect_outputs
from nas.train import Precision, ThreadGovernor, TrainingDivergedError, lr_at, pick_device, resolve_precision

__all__ = ["finetune", "CHECKPOINT", "FinetuneError"]

CHECKPOINT = "checkpoint.pt"
FORMAT = "nas-finetune-1"


class FinetuneError(ValueError):
    """A fine-tuning run cannot start or resume as asked (the message says why and what to do)."""


def _batches(data, splits: DataSplits, res: int, limit: int | None, channels_last: bool, device):
    for x, y in iterate_batches(data, splits, batch_size=500, resolution=res, limit=limit):
        x = x.to(device)
        yield (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


@torch.no_grad()
def evaluate(model: torch.nn.Module, splits: DataSplits, task: Task, res: int, *, limit: int | None = None,
             channels_last: bool = True, precision: Precision | None = None) -> dict[str, Any]:
    """The task's metrics on val (settings such as thresholds tuned there) and on test with the
    val settings: ``{"val": {...}, "test": {...} | None, "tuned": {...}}``; the forward passes
    under ``precision``'s autocast (default fp32)."""
    model.eval()
    device = next(model.parameters()).device
    precision = precision or resolve_precision("fp32", device)

    def outputs(data, n):
        with precision.autocast():
            out, y = collect_outputs(model, _batches(data, splits, res, n, channels_last, device))
        return out.float(), y

    out, y = outputs(splits.val, limit)
    tuned = task.tune(out, y)
    result: dict[str, Any] = {"val": task.metrics(out, y, tuned), "test": None, "tuned": tuned}
    if splits.test is not None:
        out, y = outputs(splits.test, None)
        result["test"] = task.metrics(out, y, tuned)
    return result


def _plot(history: list[dict[str, Any]], metric: str, path_title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(epochs, [h["loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h[f"val_{metric}"] for h in history], "s-", color="tab:orange", label=f"val {metric}")
    ax2.set_ylabel(f"val {metric} (%)", color="tab:orange")
    ax.set_title(path_title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _load_checkpoint(path: Path, cfg: FinetuneConfig, source: Source, splits: DataSplits) -> dict[str, Any]:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same message
        raise FinetuneError(f"{path}: not a readable fine-tuning checkpoint ({load_failure(e)}); "
                            "delete it to start over") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise FinetuneError(f"{path}: not a fine-tuning checkpoint of this version ({FORMAT}); delete it to start over")
    want = {"config": cfg.to_dict(), "source": source.path, "data": splits.name, "num_classes": splits.num_classes}
    got = {k: ckpt.get(k) for k in want}
    if got != want:
        diffs = []
        for k in sorted(k for k in want if got[k] != want[k]):
            if k == "config" and isinstance(got[k], dict):
                diffs += [f"{f}: checkpoint has {got[k].get(f)!r}, this run {want[k].get(f)!r}"
                          for f in sorted(set(got[k]) | set(want[k])) if got[k].get(f) != want[k].get(f)]
            else:
                diffs.append(f"{k}: checkpoint has {got[k]!r}, this run {want[k]!r}")
        raise FinetuneError(f"{path}: --resume with other settings than the checkpoint's ({'; '.join(diffs)}); rerun "
                            "with the same settings or choose a new --out")
    return ckpt


def finetune(
    source: Source,
    splits: DataSplits,
    cfg: FinetuneConfig,
    out: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Fine-tune ``source.model`` on ``splits`` and export the best epoch's network to ``out``
    (the files of a search's ``best/``, plus ``finetune.json`` and ``finetune.png``).

    A checkpoint ``out/checkpoint.pt`` is written after every epoch, so a killed run loses at most
    one epoch; ``resume=True`` continues it (with the same settings), otherwise an existing one is
    refused. Returns the ``finetune.json`` record.

    Raises:
        FinetuneError: ``out`` holds a checkpoint and ``resume`` is off (or the other way round
            with different settings), or the settings do not fit the network.
        TrainingDivergedError: a step's loss is not finite.
    """
    from nas.export import export_network

    out = Path(out)
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists() and not resume:
        raise FinetuneError(f"{out}: holds an unfinished fine-tuning run ({CHECKPOINT}); pass --resume to continue "
                            "it, or choose a new --out")
    if (out / "finetune.json").exists() and not ckpt_path.exists():
        raise FinetuneError(f"{out}: holds a finished fine-tuning run (finetune.json); choose a new --out")
    if resume and not ckpt_path.exists():
        raise FinetuneError(f"{out}: no fine-tuning checkpoint ({CHECKPOINT}) to resume; drop --resume to start a new "
                            "run, or check --out")
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--out {out}: exists and is not a folder")
    task = cfg.task_for(splits)
    res = cfg.resolution or int(splits.train.images.shape[-1])
    dev = pick_device(device)
    try:
        precision = resolve_precision(cfg.precision, dev)
    except ValueError as e:
        raise FinetuneError(str(e)) from e
    model, new_head = with_classes(source.model, splits.num_classes)
    try:
        frozen = freeze_early(model, cfg.freeze_stages)
    except ValueError as e:
        raise FinetuneError(str(e)) from e
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(dev, memory_format=mf)
    groups = param_groups(model, cfg.lr, cfg.backbone_lr_scale, cfg.weight_decay)
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    scaler = precision.grad_scaler()
    n_train = min(len(splits.train), cfg.subset or len(splits.train))
    steps = n_train // cfg.batch_size
    if steps < 1:
        raise FinetuneError(f"--batch-size {cfg.batch_size}: larger than the {n_train} training images")
    try:
        out.mkdir(parents=True, exist_ok=True)  # before training, not after its first epoch
    except OSError as e:
        raise FinetuneError(f"--out {out}: cannot create the folder ({e.strerror or e})") from None
    total, warmup = cfg.epochs * steps, int(cfg.warmup_epochs * steps)
    n_frozen = sum(p.numel() for m in frozen for p in m.parameters())
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    if resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, cfg, source, splits)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
        best = {"metric": state["best_metric"], "epoch": state["best_epoch"], "state": state["best_state"]}
        inherited, seconds = state["inherited"], float(state["seconds"])
        log(f"resuming {ckpt_path} after epoch {start_epoch}/{cfg.epochs}")
    else:
        history, start_epoch, seconds = [], 0, 0.0
        best = {"metric": None, "epoch": 0, "state": None}
        # With a new head the inherited network has no classifier for these classes, and a preset is
        # freshly initialised: nothing to report.
        inherited = (None if new_head or source.kind == "preset"
                     else evaluate(model, splits, task, res, channels_last=cfg.channels_last, precision=precision))
        if inherited is not None:
            inherited.pop("tuned")
    log(f"fine-tuning {source.path} on {splits.describe()} at {res} px: {n_trainable:,} trainable, "
        f"{n_frozen:,} frozen parameters (stem + {cfg.freeze_stages} stages)"
        + ("; new classifier head" if new_head else ""))

    stopped_early = False
    with ThreadGovernor(dev, log=lambda m: tqdm.write(m, file=sys.stderr) if progress else None) as governor:
        for epoch in range(start_epoch, cfg.epochs):
            if cfg.patience and epoch - best["epoch"] >= cfg.patience and best["state"] is not None:
                stopped_early = True
                break
            train_mode(model, frozen)
            rng = np.random.default_rng([cfg.seed, epoch])
            t0, loss_sum = time.perf_counter(), 0.0
            bar = tqdm(total=steps, desc=f"fine-tune {epoch + 1}/{cfg.epochs}", unit="step", disable=not progress,
                       dynamic_ncols=True, file=sys.stderr)
            with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
                torch.manual_seed(int(rng.integers(2**62)))
                for step, (x, y) in enumerate(iterate_batches(splits.train, splits, batch_size=cfg.batch_size,
                                                              resolution=res, shuffle=True, rng=rng, drop_last=True,
                                                              limit=n_train)):
                    scale = lr_at(epoch * steps + step, total, warmup, 1.0)
                    for g in optimizer.param_groups:
                        g["lr"] = g["base_lr"] * scale
                    x = x.to(dev).contiguous(memory_format=mf)
                    with precision.autocast():
                        logits = model(x)
                    loss = task.loss(logits, y.to(dev))
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        bar.close()
                        raise TrainingDivergedError(f"fine-tuning diverged at epoch {epoch + 1}, step {step + 1}: loss "
                                                    f"{value}; lower --lr (now {cfg.lr:g})")
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    governor.tick()
                    loss_sum += value
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / (step + 1):.3f}")
            bar.close()
            seconds += time.perf_counter() - t0
            metric = evaluate(model, splits, task, res, limit=cfg.val_subset, channels_last=cfg.channels_last,
                              precision=precision)["val"][task.metric]
            history.append({"epoch": epoch + 1, "loss": round(loss_sum / steps, 4), f"val_{task.metric}": metric,
                            "train_seconds": round(time.perf_counter() - t0, 1)})
            if best["metric"] is None or task.better(metric, best["metric"]):
                best = {"metric": metric, "epoch": epoch + 1,
                        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]['loss']}, val {task.metric} {metric:.2f}"
                + (" (best)" if best["epoch"] == epoch + 1 else ""))
            out.mkdir(parents=True, exist_ok=True)
            tmp = ckpt_path.with_suffix(".tmp")
            torch.save({"format": FORMAT, "config": cfg.to_dict(), "source": source.path, "data": splits.name,
                        "num_classes": splits.num_classes, "epoch": epoch + 1, "state_dict": model.state_dict(),
                        "optimizer": optimizer.state_dict(), "history": history, "best_metric": best["metric"],
                        "best_epoch": best["epoch"], "best_state": best["state"], "inherited": inherited,
                        "seconds": seconds}, tmp)
            tmp.replace(ckpt_path)

    model.load_state_dict(best["state"])
    model.eval()
    final = evaluate(model, splits, task, res, channels_last=cfg.channels_last, precision=precision)
    record = {
        "source": {"model": source.path, "kind": source.kind, "arch": str(source.arch) if source.arch else None},
        "data": {"name": splits.name, "description": splits.describe(), "num_classes": splits.num_classes},
        "task": {"name": task.name, "metric": task.metric, "loss": task.settings()},
        "config": cfg.to_dict(), "resolution": res, "new_head": new_head,
        "frozen": {"stages": cfg.freeze_stages, "parameters": n_frozen, "trainable_parameters": n_trainable},
        "inherited": inherited,
        "inherited_note": ("no inherited metric: the source's classifier has another number of classes" if new_head
                           else "no inherited metric: a preset starts from random weights" if source.kind == "preset"
                           else f"the source network as loaded, at {res} px"),
        "finetuned": {"val": final["val"], "test": final["test"]},
        "thresholds": final["tuned"].get("thresholds"),
        "best_epoch": best["epoch"], "epochs_run": len(history), "stopped_early": stopped_early,
        "train_seconds": round(seconds, 1), "history": history,
    }
    png = _plot(history, task.metric, f"fine-tuning {Path(source.path).name} on {splits.name}")
    rec = source.record
    extra = {k: rec[k] for k in ("deploy_resolution",) if k in rec}
    deploy = int(rec.get("deploy_resolution") or model.spec.resolution)
    exported = export_network(
        model.cpu().to(memory_format=torch.contiguous_format), out, arch=source.arch, resolution=deploy,
        extra={**extra, "train_resolution": res, "data_mean": list(splits.mean), "data_std": list(splits.std),
               "classes": list(splits.classes), "task": task.name, "finetuned": True,
               **({"thresholds": final["tuned"]["thresholds"]} if final["tuned"].get("thresholds") else {})},
        extra_files={"finetune.png": png},
        replaces=(CHECKPOINT, CHECKPOINT.replace(".pt", ".tmp"), "finetune.json"),
    )
    record["exported"] = exported.to_dict()
    (out / "finetune.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
