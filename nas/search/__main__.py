"""``python -m nas.search --device pixel_cpu --budget 20ms``: the whole pipeline in one command.

1. checks the device table, budget, space and data (all before any compute);
2. reuses the supernet of (space, data) from ``runs/supernets/`` or trains one with the default
   recipe (progress shown);
3. runs (or resumes) a multi-objective Optuna study: maximise validation accuracy of BN-recalibrated
   subnets, minimise predicted latency, latency <= budget as a hard constraint;
4. exports the best feasible subnet (ONNX checked against PyTorch, a torch.export program, weights,
   arch JSON), writes ``result.json``, ``report.md`` and the Pareto plots, and prints the
   ``optuna-dashboard`` command.

With ``--backend ray`` step 3 runs each candidate evaluation as a Ray Tune trial on a Ray cluster
(a local one, or ``--ray-address``), in the same study storage; see ``docs/ray.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from nas.data import DATASETS
from nas.distributed import RayStartError
from nas.errors import ArchError, ConfigError, DataError
from nas.latency import LatencyTableError
from nas.search._inputs import BACKENDS, SearchConfig, StorageError
from nas.search._study import SAMPLERS
from nas.tasks import LOSSES
from nas.train import PRECISIONS
from nas.supernet import CheckpointError

__all__ = ["main", "build_parser", "SMOKE_SEARCH"]

#: What ``--smoke`` changes in the search itself (the supernet recipe: ``SMOKE_TRAIN``).
SMOKE_SEARCH = {"trials": 8, "val_limit": 256, "calib_images": 128, "finetune_top": 2, "finetune_subset": 1024}


def _pick(given, name: str, smoke: bool):
    """An explicit flag wins; otherwise the smoke value with ``--smoke``, else the default."""
    if given is not None:
        return given
    return SMOKE_SEARCH[name] if smoke else getattr(SearchConfig(device="", budget=""), name)


class _HelpFormatter(argparse.HelpFormatter):
    """Shows a flag's default where its help does not already state it ([...]) and there is one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, argparse.SUPPRESS) or action.default is False or "[" in text:
            return text
        return text + " [%(default)s]"


def build_parser() -> argparse.ArgumentParser:
    d = SearchConfig(device="", budget="")
    p = argparse.ArgumentParser(
        prog="python -m nas.search",
        description="Find the most accurate MobileNetV3-style network within a latency budget on a device.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--device", required=True, help="latency table name (pixel_cpu, host, ...) or a table JSON file")
    p.add_argument("--budget", required=True, help="latency budget: 20ms, 0.02s, 20 (= ms)")
    p.add_argument("--space", default=d.space, help="search space name or YAML file")
    p.add_argument("--data", default=d.data,
                   help=f"{' | '.join(DATASETS)} | a data directory (format detected); multi-label data "
                        "(fashion-mosaic, labels.csv, COCO) is searched on mAP")
    p.add_argument("--data-dir", default=None, help="directory for --data fashion-mnist/cifar/image-folder/...")
    p.add_argument("--loss", choices=LOSSES, default=d.loss,
                   help="loss of the supernet if one must be trained (auto: cross-entropy for single-label, BCE "
                        "for multi-label data; focal: sigmoid focal loss)")
    p.add_argument("--trials", type=int, default=None,
                   help=f"finished trials the study should have [{d.trials}; {SMOKE_SEARCH['trials']} with --smoke]")
    p.add_argument("--sampler", choices=SAMPLERS, default=d.sampler,
                   help="Optuna sampler of the multi-objective study")
    p.add_argument("--storage", default=None,
                   help="any Optuna storage URL (default: sqlite:///RUN_DIR/study.db; postgresql://... for teams)")
    p.add_argument("--run-dir", default=None, help="output directory [runs/SPACE-DATA-DEVICE-BUDGETms]")
    p.add_argument("--supernet", default=None,
                   help="supernet run directory or checkpoint [runs/supernets/SPACE-DIGEST8-DATA[-LOSS][-smoke]]")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the sampler, the BN recalibration images and the confirmation fine-tuning")
    p.add_argument("--epochs", type=int, default=None, help="supernet epochs if one must be trained [recipe]")
    p.add_argument("--val-limit", type=int, default=None,
                   help=f"score each subnet on the first N validation images, 0 = all "
                        f"[{d.val_limit}; {SMOKE_SEARCH['val_limit']} with --smoke]")
    p.add_argument("--calib-images", type=int, default=None,
                   help=f"BN recalibration images per subnet [{d.calib_images}; {SMOKE_SEARCH['calib_images']} "
                        "with --smoke]")
    p.add_argument("--smoke", action="store_true",
                   help="check the set-up in a few minutes: a one-epoch supernet on 1024 images, "
                        f"{SMOKE_SEARCH['trials']} trials on {SMOKE_SEARCH['val_limit']} validation images "
                        "(flags given explicitly win)")
    p.add_argument("--finetune-top", type=int, default=None,
                   help="after the study, fine-tune the K best feasible candidates of the Pareto front alone, choose "
                        "the best by confirmed validation metric and export that fine-tuned network (0: export the "
                        f"proxy's choice with inherited weights) [{d.finetune_top}; {SMOKE_SEARCH['finetune_top']} "
                        "with --smoke]")
    p.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs,
                   help="fine-tuning epochs per confirmed candidate")
    p.add_argument("--finetune-lr", type=float, default=d.finetune_lr,
                   help="peak learning rate of the confirmation fine-tuning (cosine schedule, whole network)")
    p.add_argument("--finetune-subset", type=int, default=None,
                   help="training images per fine-tuning epoch [all; "
                        f"{SMOKE_SEARCH['finetune_subset']} with --smoke]")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="of supernet training and fine-tuning: auto = bf16 autocast on CUDA (fp16 where bf16 is "
                        "missing), fp32 on CPUs; bf16 needs CUDA or a CPU with AVX-512-BF16/AMX")
    p.add_argument("--no-export", action="store_true", help="skip exporting the best subnet")
    p.add_argument("--int8-export", action=argparse.BooleanOptionalAction, default=None,
                   help="also export best/model.int8.onnx (ONNX Runtime static quantization calibrated on "
                        "training images) with its val/test metrics next to the float model's [on when the "
                        "latency table is int8]")
    p.add_argument("--no-latency-probe", action="store_true",
                   help="skip the start-up check of a host table (a few whole networks timed here and compared "
                        "with its predictions; ~10 s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's default]")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend,
                   help="local: trials one after another in this process; ray: each trial a Ray Tune trial on a "
                        "Ray cluster (results in the same --storage)")
    p.add_argument("--ray-address", default=None,
                   help="with --backend ray: cluster to join (HOST:PORT, ray://HOST:10001, auto) [start a local one]")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="with --backend ray: trials at once [one per CPU of the cluster]")
    p.add_argument("--heartbeat-seconds", type=float, default=d.heartbeat_seconds,
                   help="a running trial records a heartbeat this often; a trial of a killed process is failed "
                        "and its arch retried after 3 missed beats")
    p.add_argument("--no-progress", action="store_true")
    return p


def _budget_value_kept(argv: list[str]) -> list[str]:
    """``--budget -5ms``: argparse takes a value starting with '-' for a flag and answers "expected one
    argument"; joined as ``--budget=-5ms`` it reaches the budget check, which says what is allowed."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--budget" and out[i + 1].startswith("-") and out[i + 1][1:2].isdigit():
            out[i:i + 2] = [f"--budget={out[i + 1]}"]
            break
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_budget_value_kept(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    import optuna

    from nas.search._pipeline import run_pipeline

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and our lines say what happens

    try:
        cfg = SearchConfig(
            device=args.device,
            budget=args.budget,
            space=args.space,
            data=args.data,
            data_dir=args.data_dir,
            loss=args.loss,
            trials=_pick(args.trials, "trials", args.smoke),
            sampler=args.sampler,
            storage=args.storage,
            run_dir=args.run_dir,
            supernet=args.supernet,
            seed=args.seed,
            epochs=args.epochs,
            smoke=args.smoke,
            val_limit=_pick(args.val_limit, "val_limit", args.smoke) or None,
            calib_images=_pick(args.calib_images, "calib_images", args.smoke),
            export=not args.no_export,
            int8_export=args.int8_export,
            latency_probe=not args.no_latency_probe,
            backend=args.backend,
            ray_address=args.ray_address,
            max_concurrent=args.max_concurrent,
            heartbeat_seconds=args.heartbeat_seconds,
            finetune_top=_pick(args.finetune_top, "finetune_top", args.smoke),
            finetune_epochs=args.finetune_epochs,
            finetune_lr=args.finetune_lr,
            finetune_subset=_pick(args.finetune_subset, "finetune_subset", args.smoke),
            precision=args.precision,
        )
        if args.threads is not None and args.threads < 1:
            raise ConfigError("search settings", [f"threads (--threads): {args.threads} (allowed: integer >= 1)"])
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        start = time.perf_counter()
        result = run_pipeline(cfg, progress=not args.no_progress, log=print)
    except (ConfigError, ArchError, DataError, LatencyTableError, CheckpointError, StorageError, RayStartError,
            FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished trials are in the study storage; run the same command again to resume",
              file=sys.stderr)
        return 130
    print(f"done in {time.perf_counter() - start:.0f} s: {json.dumps((result.get('best') or {}).get('arch'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
