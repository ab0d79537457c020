"""Benchmark: the best UIB subnet found vs the best bneck subnet found, at equal predicted host latency.

Two spaces with the same layout (stem, stages, channels, depths, head, resolutions, widths):
``mobilenetv3_small32`` (MobileNetV3 bneck blocks) and ``mobilenetv4_small32`` (MobileNetV4 UIB
blocks). For each: the same supernet recipe (``python -m nas.train``, same data, epochs, subset,
seed), then the same search (``python -m nas.search``: sampler, trials, seed, budgets) on this
machine's measured host table. Reported per space and budget: the best feasible subnet's
validation and test top-1 with inherited (BN-recalibrated) supernet weights and its predicted
latency; with ``--confirm-epochs N`` also both winners trained from scratch with the same short
recipe (``nas.train.train_static``), so the comparison does not rest on the supernets alone.

Usage (from the repository root; a quiet machine - check ``uptime``)::

    python benchmarks/uib_vs_bneck.py --epochs 5 --trials 40 --budgets 0.1,0.15 \\
        --confirm-epochs 2 --confirm-seeds 0,1,2

(the supernet recipe is ``nas.train``'s default: 5 epochs of all 50,000 training images; a
supernet already in the work directory is reused, e.g. trained beforehand with ``nas.train --run-dir
runs/bench_uib_vs_bneck/supernet-SPACE --threads 1`` for both spaces at once).

Writes ``benchmarks/results/uib_vs_bneck.json`` (and prints a Markdown table); work directories
under ``runs/bench_uib_vs_bneck/`` (re-runs reuse trained supernets and finished studies).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACES = ("mobilenetv3_small32", "mobilenetv4_small32")


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def confirm(arch_string: str, epochs: int, subset: int, seed: int) -> dict:
    """Train the arch from scratch with the supernet's recipe (no distillation) at the 32 px proxy
    side and return its BN-recalibrated val/test top-1."""
    import torch

    from nas.data import iterate_batches, load_data
    from nas.evaluate import calibration_batches, top1_accuracy
    from nas.nn import build_network
    from nas.space import Arch, load_space
    from nas.supernet import recalibrate_bn
    from nas.train import TrainConfig, train_static

    arch = Arch.from_string(arch_string)
    space = load_space(arch.space)
    splits = load_data("fashion-mnist", seed=seed, channels=space.config.in_channels)
    spec = space.resolve(arch, splits.num_classes)
    cfg = TrainConfig(epochs=epochs, subset=subset, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(spec)
    start = time.perf_counter()
    train_static(net, splits, cfg, resolution=32, progress=False, desc=arch.space)
    seconds = time.perf_counter() - start
    recalibrate_bn(net, calibration_batches(splits, images=2000, resolution=32, seed=0, channels_last=True))
    net.eval()

    def batches(data):
        return ((x.contiguous(memory_format=torch.channels_last), y)
                for x, y in iterate_batches(data, splits, batch_size=500, resolution=32))

    return {"val_top1": round(top1_accuracy(net, batches(splits.val))[0], 2),
            "test_top1": round(top1_accuracy(net, batches(splits.test))[0], 2), "train_seconds": round(seconds, 1)}


def _mean_sd(values: list[float]) -> dict:
    import statistics

    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.fmean(values), 2), "sd": round(sd, 2), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="supernet epochs (same recipe for both spaces)")
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all, as nas.train]")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--budgets", default="1.0,2.0", help="comma-separated host-latency budgets in ms")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confirm-epochs", type=int, default=0, help="train both winners from scratch (0: skip)")
    p.add_argument("--confirm-seeds", default="0", help="comma-separated seeds of the scratch trainings")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_uib_vs_bneck")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "uib_vs_bneck.json")
    args = p.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    confirm_seeds = [int(x) for x in args.confirm_seeds.split(",")]
    py = sys.executable
    from nas.latency import cpu_model

    rows = []
    for space in SPACES:
        sdir = args.work / f"supernet-{space}"
        if not (sdir / "supernet.pt").exists():
            start = time.perf_counter()
            subset = ["--subset", str(args.subset)] if args.subset else []
            run([py, "-m", "nas.train", "--space", space, "--epochs", str(args.epochs), *subset,
                 "--seed", str(args.seed), "--run-dir", str(sdir), "--no-progress"])
            (sdir / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
        for budget in budgets:
            rdir = args.work / f"search-{space}-{budget:g}ms"
            run([py, "-m", "nas.search", "--device", "host", "--budget", f"{budget}ms", "--space", space,
                 "--supernet", str(sdir), "--trials", str(args.trials), "--seed", str(args.seed), "--run-dir",
                 str(rdir), "--no-export", "--no-progress", "--finetune-top", "0"])
            result = json.loads((rdir / "result.json").read_text())
            best = result["best"] or {}
            row = {"space": space, "budget_ms": budget, "arch": best.get("arch"),
                   "val_top1_inherited": best.get("val_metric"), "test_top1_inherited": best.get("test_metric"),
                   "predicted_ms": best.get("predicted_latency_ms"), "params": best.get("params"),
                   "madds": best.get("madds"), "feasible_trials": result["search"]["feasible_trials"],
                   "supernet_train_seconds": float((sdir / "train_seconds.txt").read_text())
                   if (sdir / "train_seconds.txt").exists() else None}
            if args.confirm_epochs and row["arch"]:
                runs = [confirm(row["arch"], args.confirm_epochs, args.subset, s) | {"seed": s} for s in confirm_seeds]
                row["scratch_runs"] = runs
                row["scratch"] = {k: _mean_sd([r[k] for r in runs]) for k in ("val_top1", "test_top1")}
            rows.append(row)
            print(json.dumps(row), flush=True)

    report = {
        "command": "python benchmarks/uib_vs_bneck.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": cpu_model(),
        "data": "Fashion-MNIST (Debian package), training subset per epoch as given, proxy resolution 32 px",
        "settings": {"epochs": args.epochs, "subset": args.subset, "trials": args.trials, "seed": args.seed,
                     "budgets_ms": budgets, "confirm_epochs": args.confirm_epochs, "confirm_seeds": confirm_seeds,
                     "sampler": "tpe (default)"},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| space | budget | best arch | val (inherited) | test (inherited) | pred. ms | MAdds | scratch val/test |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        scratch = r.get("scratch")
        s = (f"{scratch['val_top1']['mean']} ± {scratch['val_top1']['sd']} / "
             f"{scratch['test_top1']['mean']} ± {scratch['test_top1']['sd']}") if scratch else "-"
        madds = f"{r['madds'] / 1e6:.1f} M" if r["madds"] else "-"
        print(f"| {r['space']} | {r['budget_ms']:g} ms | `{r['arch']}` | {r['val_top1_inherited']} | "
              f"{r['test_top1_inherited']} | {r['predicted_ms']} | {madds} | {s} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
