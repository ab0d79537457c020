"""``python -m nas.train``: the command line of supernet training.

CLI (the default recipe: mobilenetv3_large at a 32 px proxy on Fashion-MNIST)::

    python -m nas.train                                       # -> runs/supernet/supernet.pt
    python -m nas.train --run-dir runs/supernet --resume
    python -m nas.train --space mobilenetv3_small32 --resolution arch --run-dir runs/small32
    python -m nas.train --smoke --run-dir runs/smoke          # about a minute
    python -m nas.train --backend ray --num-workers 4         # data-parallel on a Ray cluster (docs/ray.md)
    python -m nas.train --torch-device cpu                    # the torch device (--device: deprecated alias)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from nas.cli_args import add_torch_device_argument, float_arg, int_arg, parse_device
from nas.data import DATASETS, MAX_RESOLUTION
from nas.errors import ConfigError, DataError
from nas.supernet import CheckpointError
from nas.tasks import LOSSES
from nas.train._config import RESOLUTION_SAMPLING, TrainConfig
from nas.train._precision import PRECISIONS
from nas.train._supernet_training import train_supernet

__all__ = ["main", "SMOKE"]

SMOKE = {"subset": 2560, "val_subset": 1000, "calib_images": 500, "epochs": 2, "n_random": 1}

#: ``--seed`` feeds ``torch.Generator.manual_seed`` and numpy's ``default_rng``: 64-bit unsigned.
MAX_SEED = 2**64 - 1


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m nas.train",
        description="Train a weight-sharing supernet with the sandwich rule and in-place distillation.",
    )
    # every setting defaults to None here so that --resume can tell which ones were given
    p.add_argument("--space", default=None, help=f"space name or YAML file [{d.space}]")
    p.add_argument("--data", default=None, help=f"{' | '.join(DATASETS)} | DIR (format detected) [{d.data}]")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--run-dir", default="runs/supernet", help="output directory [runs/supernet]")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR/supernet.pt from its last checkpoint (mid-epoch ones included)")
    p.add_argument("--epochs", type=int, default=None, help=f"[{d.epochs}; multi-label data: 10]")
    p.add_argument("--batch-size", type=int, default=None, help=f"[{d.batch_size}]")
    p.add_argument("--lr", type=float_arg, default=None, help=f"peak SGD learning rate [{d.lr}]")
    p.add_argument("--checkpoint-minutes", type=float_arg, default=None,
                   help=f"also write a resumable checkpoint inside an epoch this often [{d.checkpoint_minutes}]")
    p.add_argument("--weight-decay", type=float_arg, default=None, help=f"[{d.weight_decay}]")
    p.add_argument("--warmup-epochs", type=float_arg, default=None, help=f"[{d.warmup_epochs}]")
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help="auto: the task's default (ce: label-smoothed cross-entropy for single-label data; bce: "
                        "binary cross-entropy for multi-label data); focal: sigmoid focal loss (multi-label) "
                        f"[{d.loss}]")
    p.add_argument("--label-smoothing", type=float_arg, default=None,
                   help=f"label smoothing of the cross-entropy (single-label) [{d.label_smoothing}]")
    p.add_argument("--focal-gamma", type=float_arg, default=None, help=f"focal loss gamma [{d.focal_gamma}]")
    p.add_argument("--focal-alpha", type=float_arg, default=None,
                   help=f"focal loss weight of positives, in [0, 1] [{d.focal_alpha}]")
    p.add_argument("--distill-weight", type=float_arg, default=None,
                   help=f"share of distillation (vs labels) in the students' loss [{d.distill_weight}; multi-label "
                        "data: 0]")
    p.add_argument("--n-random", type=int, default=None, help=f"random subnets per step besides largest+smallest [{d.n_random}]")
    p.add_argument("--resolution", default=None,
                   help=f"proxy training side in px (8..{MAX_RESOLUTION}), or 'arch' for each subnet's own "
                        f"resolution [{d.resolution}]")
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--val-subset", type=int, default=None, help=f"validation images scored per epoch [{d.val_subset}]")
    p.add_argument("--calib-images", type=int, default=None, help=f"BN recalibration images [{d.calib_images}]")
    p.add_argument("--resolution-sampling", choices=RESOLUTION_SAMPLING, default=None,
                   help="step-sandwich: the teacher (largest) at the largest resolution, then largest, smallest and "
                        "random subnets at one resolution drawn per step; teacher-max: the same without the "
                        "largest as a student; step: all at the drawn one (once-for-all); arch: each subnet at its "
                        f"own arch's resolution (BigNAS) [{d.resolution_sampling}]")
    p.add_argument("--fixed-resolution", action="store_true",
                   help="train every subnet at --resolution (default: scale it with the arch's resolution)")
    p.add_argument("--kernel-transform", action=argparse.BooleanOptionalAction, default=None,
                   help="smaller kernels through learned transforms of the centre crop (once-for-all); "
                        "--no-kernel-transform: plain centre crops [off]")
    p.add_argument("--reorder-channels", action="store_true",
                   help="after every epoch but the last, sort mid channels by importance (once-for-all)")
    p.add_argument("--seed", type=int_arg(0, MAX_SEED), default=None, help=f"[{d.seed}]")
    p.add_argument("--smoke", action="store_true",
                   help=f"tiny run to check the setup (about a minute): {SMOKE}")
    add_torch_device_argument(p, what="auto (CUDA with mixed precision when present) | cpu | cuda[:N]")
    p.add_argument("--threads", type=int_arg(1), default=None,
                   help="torch CPU threads [torch's default; with --backend ray: 1 per worker]")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="auto: bf16 autocast on CUDA (fp16 + loss scaling where bf16 is missing), fp32 on CPUs "
                        "(bf16 was slower there at the 32 px proxy); bf16 needs CUDA or a CPU with AVX-512-BF16/AMX "
                        f"[{d.precision}]")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: this process; ray: data-parallel Ray Train workers (DDP-style gradient averaging)")
    p.add_argument("--num-workers", type=int_arg(1), default=None, help="with --backend ray: training processes [2]")
    p.add_argument("--ray-address", default=None,
                   help="with --backend ray: cluster to join (HOST:PORT, ray://HOST:10001, auto) [start a local one]")
    return p


def _config_from_args(args: argparse.Namespace) -> tuple[TrainConfig, set[str]]:
    given: dict[str, Any] = dict(SMOKE) if args.smoke else {}
    for name in ("space", "data", "data_dir", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                 "distill_weight", "loss", "label_smoothing", "focal_gamma", "focal_alpha", "n_random", "resolution_sampling", "subset", "val_subset", "calib_images", "seed",
                 "checkpoint_minutes", "precision"):
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
            if not 8 <= given["resolution"] <= MAX_RESOLUTION:
                raise ConfigError("--resolution", [
                    f"{given['resolution']} px (allowed: integer 8..{MAX_RESOLUTION}, or 'arch')"])
    if args.fixed_resolution:
        given["scale_resolution"] = False
    if args.kernel_transform is not None:
        given["kernel_transform"] = args.kernel_transform
    if args.reorder_channels:
        given["reorder_channels"] = True
    return TrainConfig(**given), set(given)


def _check_run_dir(text: str) -> None:
    """Refuse a ``--run-dir`` that cannot be a directory, before anything is loaded or trained.

    Raises:
        ValueError: ``text`` (or a parent of it) is an existing non-directory, or it names a
            checkpoint file (``.pt``/``.pth``): training writes ``RUN_DIR/supernet.pt`` and
            ``RUN_DIR/history.json``.
    """
    run_dir = Path(text)
    if run_dir.suffix in (".pt", ".pth"):
        raise ValueError(f"--run-dir {text}: expected a run directory, not a checkpoint file name (training "
                         "writes RUN_DIR/supernet.pt and RUN_DIR/history.json)")
    for path in (run_dir, *run_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "it" if path == run_dir else str(path)
                raise ValueError(f"--run-dir {text}: {where} exists and is not a directory (choose a directory)")
            break


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads and args.backend == "local":
        torch.set_num_threads(args.threads)
    try:
        _check_run_dir(args.run_dir)
        # Ray workers may have GPUs that this process does not: only the spelling is checked here
        parse_device(args.torch_device, check_available=args.backend == "local")
        cfg, given = _config_from_args(args)
        if args.backend == "ray":
            from nas.distributed import DistributedTrainingError, RayStartError, train_supernet_ray

            use_gpu = None if args.torch_device == "auto" else args.torch_device.startswith("cuda")
            try:
                path = train_supernet_ray(cfg, args.run_dir, num_workers=args.num_workers or 2, resume=args.resume,
                                          given=given, address=args.ray_address, use_gpu=use_gpu,
                                          threads_per_worker=args.threads or 1)
            except (DistributedTrainingError, RayStartError) as exc:
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
        result = train_supernet(cfg, args.run_dir, resume=args.resume, given=given, device=args.torch_device,
                                progress=not args.no_progress)
    except (ConfigError, CheckpointError, DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; `python -m nas.train --run-dir {args.run_dir} --resume` continues from the last "
              "checkpoint", file=sys.stderr)
        return 130
    print(f"checkpoint: {result.checkpoint}")
    return 0
