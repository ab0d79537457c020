"""Benchmark for a GPU machine: mixed precision on CUDA - step time and accuracy of bf16 and fp16
autocast against fp32 (issue #15, item 4; the CPU side is ``cpu_training.py``).

Part 1, step time. The training steps of ``cpu_training.py`` (``make_step``): the default
supernet recipe's sandwich step (``mobilenetv3_large`` at the 32 px proxy, channels-last: the
largest subnet on the labels, the smallest and two random subnets half distilled from it) at
batch 128 and 512, and a static MobileNetV3-Large step at 224 px, batch 128 - each in fp32, bf16
autocast and fp16 autocast with a gradient scaler. Median of ``--steps`` steps after
``--warmup``, each step synchronised; cuDNN autotuning as the trainer leaves it. Reported: the
median step and its ratio to fp32, and what ``--precision auto`` picks on this device.

Part 2, accuracy (``--accuracy``). The same short supernet training per precision - default recipe,
``--epochs`` epochs of ``--images`` training images, same seed and data - and the validation top-1
of its largest and smallest subnets (BN recalibrated), with images/s.

Usage, on the device machine from the repository root (one call; ``$OUT`` comes back)::

    python benchmarks/gpu_precision.py --out $OUT/gpu_precision.json
    python benchmarks/gpu_precision.py --accuracy --data-dir DIR --out $OUT/gpu_precision.json

``DIR`` holds Fashion-MNIST's four ``*-ubyte.gz`` files (Debian's ``dataset-fashion-mnist`` puts
them in ``/usr/share/datasets/fashion-mnist``; a device machine without it needs them copied into
the working tree first). ``--data synthetic`` checks the pipeline without them (its accuracy means
nothing). Checked on a CPU with ``--torch-device cpu --precisions fp32 --steps 2 --warmup 1
--accuracy --data synthetic --images 256``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_training import make_step  # noqa: E402

#: (label, what, side, batch)
STEPS = (
    ("supernet sandwich, 32 px, batch 128", "supernet", 32, 128),
    ("supernet sandwich, 32 px, batch 512", "supernet", 32, 512),
    ("static MobileNetV3-Large, 224 px, batch 128", "static", 224, 128),
)


def _time_step(what: str, side: int, batch: int, precision: str, device, *, warmup: int, steps: int) -> dict:
    import torch

    step, resolved = make_step(what, side, batch, precision, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    out = {"median_s": statistics.median(times), "steps": steps, "precision": resolved.name}
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.reset_peak_memory_stats(device)
    return out


def _accuracy(args: argparse.Namespace, device: str) -> dict:
    from nas.train import TrainConfig, train_supernet

    out = {}
    for precision in args.precisions:
        cfg = TrainConfig(data=args.data, data_dir=args.data_dir, epochs=args.epochs, subset=args.images,
                          val_subset=2000, calib_images=500, seed=0, precision=precision)
        with tempfile.TemporaryDirectory() as d:
            res = train_supernet(cfg, d, progress=False, device=device)
        rec = res.history[-1]
        out[precision] = {k: rec[k] for k in rec if k.startswith("val_") or k in ("train_seconds", "images_per_second",
                                                                                   "precision")}
        print(f"  {precision}: {out[precision]}", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--torch-device", default="cuda", help="cuda (default), cuda:N, or cpu to check the script")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=("fp32", "bf16", "fp16"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--accuracy", action="store_true", help="also train a short supernet per precision")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--images", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch

    device = torch.device(args.torch_device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --torch-device cuda but torch sees no GPU here (use --torch-device cpu to check "
                         "the script on a CPU)")
    if device.type == "cpu" and not {"bf16", "fp16"}.isdisjoint(args.precisions):
        raise SystemExit("error: bf16/fp16 autocast on a CPU is cpu_training.py's; here give --precisions fp32")
    from nas.train import resolve_precision

    out = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "auto_picks": resolve_precision("auto", device).name,
        "command": " ".join(sys.argv), "steps": {},
    }
    print(f"# {out['device']}, torch {out['torch']}; --precision auto picks {out['auto_picks']}", flush=True)
    others = [pr for pr in args.precisions if pr != "fp32"] if "fp32" in args.precisions else []
    print("| step | " + " | ".join(f"{pr} (s)" for pr in args.precisions) + " |"
          + "".join(f" {pr} / fp32 |" for pr in others))
    for label, what, side, batch in STEPS:
        row = {pr: _time_step(what, side, batch, pr, device, warmup=args.warmup, steps=args.steps)
               for pr in args.precisions}
        if "fp32" in row:
            for pr in row:
                row[pr]["ratio_to_fp32"] = round(row[pr]["median_s"] / row["fp32"]["median_s"], 3)
        out["steps"][label] = row
        print(f"| {label} | " + " | ".join(f"{row[pr]['median_s']:.4f}" for pr in args.precisions) + " |"
              + "".join(f" {row[pr]['ratio_to_fp32']:.2f}x |" for pr in others), flush=True)
    if args.accuracy:
        out["accuracy"] = {"data": args.data, "epochs": args.epochs, "images": args.images,
                           "results": _accuracy(args, args.torch_device)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
