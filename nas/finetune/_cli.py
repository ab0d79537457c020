"""``python -m nas.finetune``: fine-tune or transfer a found network (or a preset) to a dataset.

    python -m nas.finetune --model runs/NAME/best --out runs/NAME/finetuned
    python -m nas.finetune --model runs/NAME/best --data DIR --freeze-stages 2 --out runs/transfer
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from nas.cli_args import add_torch_device_argument, float_arg, int_arg, parse_device
from nas.data import DATASETS, load_data
from nas.errors import ConfigError, DataError
from nas.finetune._config import FinetuneConfig
from nas.finetune._loop import FinetuneError, finetune
from nas.finetune._model import load_source
from nas.tasks import LOSSES
from nas.train import PRECISIONS, resolve_precision

SMOKE = dict(epochs=1, subset=256, val_subset=200, batch_size=32)


def build_parser() -> argparse.ArgumentParser:
    d = FinetuneConfig()
    p = argparse.ArgumentParser(prog="python -m nas.finetune", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True,
                   help="an export folder (a search's best/: weights.pt + arch.json) or a preset name "
                        "(freshly initialised: nothing is downloaded)")
    p.add_argument("--out", required=True, help="output folder: the files of best/ plus finetune.json, finetune.png")
    p.add_argument("--data", default="fashion-mnist", help=f"{' | '.join(DATASETS)} | DIR (format detected) [fashion-mnist]")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt (same settings)")
    p.add_argument("--epochs", type=int_arg(1), default=d.epochs, help=f"[{d.epochs}]")
    p.add_argument("--lr", type=float_arg, default=d.lr, help=f"peak learning rate of the head [{d.lr}]")
    p.add_argument("--backbone-lr-scale", type=float_arg, default=d.backbone_lr_scale,
                   help=f"the stem and blocks train at lr x this [{d.backbone_lr_scale}]")
    p.add_argument("--freeze-stages", type=int_arg(0), default=d.freeze_stages,
                   help="freeze the stem and the first K stages, BatchNorm statistics included [0]")
    p.add_argument("--resolution", type=int_arg(8, 1024), default=None,
                   help="input side to train and score at [on the data an export came from (same classes): its "
                        "accuracy_resolution, the side its weights were trained and scored at (arch.json); else the "
                        "data's own image side]")
    p.add_argument("--batch-size", type=int_arg(2), default=d.batch_size, help=f"[{d.batch_size}]")
    p.add_argument("--weight-decay", type=float_arg, default=d.weight_decay, help=f"[{d.weight_decay}]")
    p.add_argument("--warmup-epochs", type=float_arg, default=d.warmup_epochs, help=f"[{d.warmup_epochs}]")
    p.add_argument("--loss", choices=LOSSES, default=d.loss, help="auto: ce for single-label, bce for multi-label data")
    p.add_argument("--label-smoothing", type=float_arg, default=d.label_smoothing, help=f"[{d.label_smoothing}]")
    p.add_argument("--focal-gamma", type=float_arg, default=d.focal_gamma)
    p.add_argument("--focal-alpha", type=float_arg, default=d.focal_alpha)
    p.add_argument("--patience", type=int_arg(0), default=d.patience,
                   help=f"stop after this many epochs without a better val metric; 0: never [{d.patience}]")
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--val-subset", type=int, default=d.val_subset, help=f"val images scored per epoch [{d.val_subset}]")
    p.add_argument("--seed", type=int_arg(0), default=d.seed)
    p.add_argument("--smoke", action="store_true",
                   help=f"tiny run to check the setup: {SMOKE} (flags given explicitly win)")
    add_torch_device_argument(p)
    p.add_argument("--threads", type=int_arg(1), default=None, help="torch CPU threads [torch's default]")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="auto: bf16 autocast on CUDA (fp16 where bf16 is missing), fp32 on CPUs; bf16 needs CUDA or "
                        "a CPU with AVX-512-BF16/AMX")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        fields = dict(epochs=args.epochs, lr=args.lr, backbone_lr_scale=args.backbone_lr_scale,
                      freeze_stages=args.freeze_stages, resolution=args.resolution, batch_size=args.batch_size,
                      weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, loss=args.loss,
                      label_smoothing=args.label_smoothing, focal_gamma=args.focal_gamma, focal_alpha=args.focal_alpha,
                      patience=args.patience, subset=args.subset, val_subset=args.val_subset, seed=args.seed,
                      precision=args.precision)
        if args.smoke:  # fills what the command line left at its default
            fields |= {k: v for k, v in SMOKE.items() if getattr(args, k) == parser.get_default(k)}
        cfg = FinetuneConfig(**fields)
        device = parse_device(args.torch_device)
        resolve_precision(cfg.precision, device)  # before any data is read
        if args.threads:
            torch.set_num_threads(args.threads)
        probe = load_source(args.model, num_classes=1)  # reads the network before the data is decoded
        splits = load_data(args.data, args.data_dir, channels=probe.model.spec.in_channels)
        trained_side = probe.record.get("accuracy_resolution") or probe.record.get("finetune_resolution")
        same_data = probe.record.get("classes") == list(splits.classes)
        if cfg.resolution is None and isinstance(trained_side, int) and same_data:
            # more training on the data the weights came from: at the side they were trained at
            cfg = dataclasses.replace(cfg, resolution=trained_side)
            print(f"training at {trained_side} px, the side {args.model}'s weights were trained and scored at "
                  "(--resolution to choose another)", file=sys.stderr)
        source = probe if probe.kind == "export" else load_source(args.model, num_classes=splits.num_classes,
                                                                   resolution=cfg.resolution)
        cfg.task_for(splits)  # loss vs task, before any training
        record = finetune(source, splits, cfg, args.out, resume=args.resume, device=str(device),
                          progress=not args.no_progress, log=lambda m: print(m, file=sys.stderr))
    except (ConfigError, DataError, FinetuneError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metric = record["task"]["metric"]
    inh = record["inherited"]
    fin = record["finetuned"]
    for split in ("val", "test"):
        if fin[split] is None:
            continue
        before = (f"{inh[split][metric]:.2f}" if inh and inh.get(split)
                  else "n/a (random weights)" if source.kind == "preset" else "n/a (new head)")
        print(f"{split} {metric}: inherited {before} -> fine-tuned {fin[split][metric]:.2f}")
    print(f"outputs: {args.out}/ (model.onnx, features.onnx, model.pt, weights.pt, arch.json, finetune.json, finetune.png)")
    return 0
