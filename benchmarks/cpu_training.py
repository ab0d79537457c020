"""Benchmark: supernet training speed on a CPU — thread waiting under a competing process, and
precision (fp32 vs bf16 autocast).

Part 1, contention. One supernet training step of the default recipe (``mobilenetv3_large`` at
the 32 px proxy, batch 128, channels-last, the sandwich: the largest subnet on the labels, then the
smallest and two random subnets distilled from it) is timed in a fresh process per setting, quiet
and with one competing CPU-bound process (a Python busy loop) running beside it. Settings: torch's
OpenMP threads as they come (``OMP_WAIT_POLICY`` unset: idle threads spin before they sleep),
``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once), and one thread. Reported: the median step
time of each, and the slow-down ratio busy / quiet.

Part 2, precision. The same step in fp32 and with bf16 autocast, and a static MobileNetV3-Large
training step at larger inputs (``--sides``), quiet; then (``--accuracy``) two short supernet
trainings on real Fashion-MNIST, fp32 and bf16, with the same seed and data, and the validation
top-1 of the largest and smallest subnet after each.

Usage (from the repository root, on a quiet machine: check ``uptime``)::

    python benchmarks/cpu_training.py                       # about 10 minutes on 2 cores
    python benchmarks/cpu_training.py --steps 12 --accuracy  # + two short trainings

Writes ``benchmarks/results/cpu_training.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (name, environment changes, torch threads or None for torch's default); "adaptive" runs the
#: training's ThreadGovernor (nas.train._threads), the others keep their threads fixed
SETTINGS = [
    ("omp-default", {"OMP_WAIT_POLICY": None}, None),
    ("omp-passive", {"OMP_WAIT_POLICY": "PASSIVE"}, None),
    ("spin-10k", {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "10000"}, None),
    ("one-thread", {"OMP_WAIT_POLICY": "PASSIVE"}, 1),
    ("adaptive", {"OMP_WAIT_POLICY": None, "NAS_ADAPTIVE_THREADS": "1"}, None),
]


def make_step(what: str, side: int, batch: int, precision_name: str, device):
    """One training step of ``what`` (``supernet``: the default recipe's sandwich - the largest
    subnet on the labels, then the smallest and two random subnets half distilled from it; else a
    static MobileNetV3-Large) on a fixed random batch at ``side`` px, channels-last, with
    ``precision_name`` autocast (and its gradient scaler) on ``device``: the step function and the
    resolved precision. Shared with ``gpu_precision.py``."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    from nas.nn import build_network, get_preset
    from nas.space import load_space
    from nas.supernet import Supernet
    from nas.tasks import SingleLabel
    from nas.train import resolve_precision

    torch.manual_seed(0)
    precision = resolve_precision(precision_name, device)
    scaler = precision.grad_scaler()
    task = SingleLabel(label_smoothing=0.1)
    rng = np.random.default_rng(0)
    if what == "supernet":
        space = load_space("mobilenetv3_large")
        model = Supernet(space, 10, seed=0)
        largest, smallest = space.largest(), space.smallest()
    else:
        model = build_network(get_preset("mobilenetv3_large", num_classes=10))
    model.to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1 if what == "supernet" else 3, side, side, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        if what == "supernet":
            with precision.autocast():
                logits = model(x, largest)
            loss = task.loss(logits, y)
            scaler.scale(loss).backward()
            teacher = task.soft_targets(logits)
            for arch in [smallest, space.sample(rng), space.sample(rng)]:
                with precision.autocast():
                    out = model(x, arch)
                scaler.scale(0.5 * task.distill(out, teacher) + 0.5 * task.loss(out, y)).backward()
        else:
            with precision.autocast():
                out = model(x)
            scaler.scale(task.loss(out, y)).backward()
        scaler.step(opt)
        scaler.update()

    return step, precision


def _child(args: argparse.Namespace) -> None:
    """Time training steps in this process and print one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    step, precision = make_step(args.what, args.side, args.batch, args.precision, torch.device("cpu"))

    governor = None
    if os.environ.get("NAS_ADAPTIVE_THREADS") == "1":
        from nas.train._threads import ThreadGovernor

        governor = ThreadGovernor(torch.device("cpu"), every_s=3.0)
    for _ in range(args.warmup):
        step()
        if governor is not None:
            governor.tick()
    times = []
    deadline = time.monotonic() + args.max_seconds
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        if governor is not None:
            governor.tick()
        times.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    print(json.dumps({"median_s": statistics.median(times), "steps": len(times), "threads": torch.get_num_threads(),
                      "precision": precision.name,
                      "thread_changes": governor.changes if governor is not None else None}))


def _run_child(what: str, env_changes: dict, threads: int | None, *, side: int, batch: int, precision: str,
               steps: int, warmup: int, busy: bool, max_seconds: float) -> dict:
    env = dict(os.environ)
    env.pop("GOMP_SPINCOUNT", None)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cmd = [sys.executable, __file__, "--child", "--what", what, "--side", str(side), "--batch", str(batch),
           "--precision", precision, "--steps", str(steps), "--warmup", str(warmup), "--max-seconds", str(max_seconds)]
    if threads:
        cmd += ["--threads", str(threads)]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=max_seconds * 3 + 300)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def _accuracy(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import tempfile

    from nas.train import TrainConfig, train_supernet

    out = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(epochs=1, subset=args.accuracy_images, val_subset=2000, calib_images=500, seed=0,
                          precision=precision)
        with tempfile.TemporaryDirectory() as d:
            res = train_supernet(cfg, d, progress=False)
        rec = res.history[-1]
        out[precision] = {k: rec[k] for k in rec if k.startswith("val_") or k in ("train_seconds", "images_per_second")}
        print(f"  {precision}: {out[precision]}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--what", default="supernet", help=argparse.SUPPRESS)
    p.add_argument("--side", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=8, help="timed steps per setting")
    p.add_argument("--max-seconds", type=float, default=90.0, help="stop timing a setting after this long")
    p.add_argument("--sides", type=int, nargs="*", default=[64, 128, 224],
                   help="input sides of the static-network precision comparison (batch 32)")
    p.add_argument("--accuracy", action="store_true", help="also train fp32 and bf16 supernets briefly and compare")
    p.add_argument("--accuracy-images", type=int, default=4096)
    p.add_argument("--skip-contention", action="store_true")
    p.add_argument("--skip-precision", action="store_true")
    p.add_argument("--settings", nargs="*", default=None, help=f"contention settings to run [all: "
                   f"{' '.join(s[0] for s in SETTINGS)}]")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_training.json"))
    args = p.parse_args()
    if args.child:
        _child(args)
        return

    result: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "load_at_start": os.getloadavg()},
                    "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                    "contention": {}, "precision": {}, "accuracy": None}
    kw = {"steps": args.steps, "warmup": args.warmup, "max_seconds": args.max_seconds}
    if not args.skip_contention:
        print("| setting | quiet step (s) | busy step (s) | busy / quiet |\n|---|---:|---:|---:|", flush=True)
        for name, env, threads in SETTINGS:
            if args.settings and name not in args.settings:
                continue
            quiet = _run_child("supernet", env, threads, side=32, batch=128, precision="fp32", busy=False, **kw)
            busy = _run_child("supernet", env, threads, side=32, batch=128, precision="fp32", busy=True, **kw)
            result["contention"][name] = {"env": env, "threads": quiet["threads"], "quiet": quiet, "busy": busy,
                                          "ratio": busy["median_s"] / quiet["median_s"]}
            print(f"| {name} ({quiet['threads']} threads) | {quiet['median_s']:.3f} | {busy['median_s']:.3f} | "
                  f"{busy['median_s'] / quiet['median_s']:.2f}x |", flush=True)
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    rows = [("supernet sandwich, 32 px, batch 128", "supernet", 32, 128)] + [
        (f"static MobileNetV3-Large, {s} px, batch 32", "static", s, 32) for s in args.sides]
    if not args.skip_precision:
        print("\n| step | fp32 (s) | bf16 (s) | bf16 / fp32 |\n|---|---:|---:|---:|", flush=True)
    for label, what, side, batch in [] if args.skip_precision else rows:
        fp32 = _run_child(what, env, None, side=side, batch=batch, precision="fp32", busy=False, **kw)
        bf16 = _run_child(what, env, None, side=side, batch=batch, precision="bf16", busy=False, **kw)
        result["precision"][label] = {"fp32": fp32, "bf16": bf16, "ratio": bf16["median_s"] / fp32["median_s"]}
        print(f"| {label} | {fp32['median_s']:.3f} | {bf16['median_s']:.3f} | "
              f"{bf16['median_s'] / fp32['median_s']:.2f}x |", flush=True)
    if args.accuracy:
        print("\naccuracy (one epoch on the first images, same seed):", flush=True)
        result["accuracy"] = _accuracy(args)
    result["machine"]["load_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
