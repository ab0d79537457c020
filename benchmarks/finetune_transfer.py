"""Benchmark: how far the search's proxy can be trusted, what fine-tuning gains, and transfer.

Part 1, confirmation (read from a finished search run, ``--search-run``, made with
``--finetune-top K``): for each confirmed candidate the proxy metric (inherited supernet weights,
BN recalibrated) and the confirmed one (after fine-tuning alone), on val and test; the gain; the
Kendall tau between proxy and confirmed ranks among the K; whether the proxy's first choice was
confirmed; the cost.

Part 2, transfer: the run's ``best/`` network fine-tuned on another dataset (``--target``,
default the multi-label ``fashion-mosaic``; the same 10 Fashion-MNIST classes, several per image at
48 px) with ``nas.finetune`` at head lr ``--lr`` (default 0.1: a new head on a new task needs more
than the 0.01 that suits fine-tuning on the search's own data), backbone at 0.1x, once per
``--freeze`` value (stem + first K stages frozen with their BN statistics); then with the whole
backbone at the head's lr; and the same arch trained from a fresh initialisation with that budget
(all layers at the head's lr) as the reference. Every run gets the same epochs, training images
per epoch, seed and data.

Usage (from the repository root, after ``python -m nas.search --device pixel_cpu --budget 20ms``)::

    python benchmarks/finetune_transfer.py                        # about 12 minutes on 2 cores
    python benchmarks/finetune_transfer.py --epochs 5 --subset 20000 --freeze 0 2 4

Writes ``benchmarks/results/finetune_transfer.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nas.data import load_data  # noqa: E402
from nas.finetune import FinetuneConfig, Source, finetune, load_source, stages  # noqa: E402
from nas.nn import build_network  # noqa: E402


def _confirmation(run: Path) -> dict | None:
    result = json.loads((run / "result.json").read_text())
    conf = result.get("confirmation")
    if not conf:
        print(f"{run}/result.json has no confirmation (run the search with --finetune-top K >= 1)")
        return None
    metric = conf["metric"]
    print(f"\n## Confirmation: {conf['k']} candidates, {conf['epochs']} epoch(s) on {conf['train_images']} images, "
          f"{conf['seconds']:.0f} s\n")
    print(f"| trial | proxy val {metric} (search's images) | proxy val (all) | confirmed val (all) | gain | proxy test "
          "| confirmed test | test gain | chosen |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    gains, test_gains = [], []
    for c in conf["candidates"]:
        p, f = c["proxy"], c["confirmed"]
        gain = f["val_metric"] - p["val_metric_all"]
        tgain = f["test_metric"] - p["test_metric"]
        gains.append(gain)
        test_gains.append(tgain)
        print(f"| {c['trial']} | {p['val_metric']:.2f} | {p['val_metric_all']:.2f} | {f['val_metric']:.2f} | "
              f"{gain:+.2f} | {p['test_metric']:.2f} | {f['test_metric']:.2f} | {tgain:+.2f} | "
              f"{'yes' if c['trial'] == conf['chosen_trial'] else ''} |")
    print(f"\nKendall tau proxy vs confirmed: {conf['kendall_tau']}; proxy's first choice confirmed: "
          f"{conf['proxy_choice_trial'] == conf['chosen_trial']}")
    return {"search_run": str(run), "summary": {k: v for k, v in conf.items() if k != "candidates"},
            "candidates": conf["candidates"], "mean_val_gain": sum(gains) / len(gains),
            "mean_test_gain": sum(test_gains) / len(test_gains),
            "search_seconds": result["search"]["seconds"], "supernet": result["supernet"]}


def _transfer(args: argparse.Namespace, best: Path) -> list[dict]:
    splits = load_data(args.target, args.target_dir, channels=3)
    base = FinetuneConfig(epochs=args.epochs, lr=args.lr, subset=args.subset, val_subset=None, seed=args.seed,
                          patience=0)
    print(f"\n## Transfer of {best} to {splits.describe()}\n")
    print("| start | frozen stages | backbone lr | trainable params | val | test | time |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    scale = base.backbone_lr_scale
    runs = ([("found net", k, scale) for k in args.freeze] + [("found net", 0, 1.0)]
            + [("same arch, fresh init", 0, 1.0)])
    for label, k, lr_scale in runs:
        source = load_source(str(best), num_classes=splits.num_classes)
        cfg = dataclasses.replace(base, freeze_stages=k, backbone_lr_scale=lr_scale)
        if label.startswith("same arch"):
            torch.manual_seed(args.seed)
            fresh = build_network(source.model.spec)
            source = Source(fresh, "preset", f"{best} (fresh init)", source.arch, {})
        n_stages = len(stages(source.model))
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            rec = finetune(source, splits, cfg, Path(out) / "ft", progress=not args.no_progress, log=lambda _: None)
        metric = rec["task"]["metric"]
        row = {"start": label, "freeze_stages": k, "backbone_lr_scale": lr_scale, "stages": n_stages,
               "trainable": rec["frozen"]["trainable_parameters"],
               "frozen": rec["frozen"]["parameters"], "metric": metric,
               "inherited_val": (rec["inherited"] or {}).get("val", {}).get(metric) if rec["inherited"] else None,
               "val": rec["finetuned"]["val"], "test": rec["finetuned"]["test"], "seconds": round(time.perf_counter() - t0, 1),
               "config": rec["config"], "history": rec["history"]}
        rows.append(row)
        test = row["test"][metric] if row["test"] else float("nan")
        print(f"| {label} | {k}/{n_stages} | {lr_scale:g}x | {row['trainable']:,} | {row['val'][metric]:.2f} | {test:.2f} | "
              f"{row['seconds']:.0f} s |", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--search-run", default="runs/mobilenetv3_large-fashion-mnist-pixel_cpu-20ms")
    p.add_argument("--target", default="fashion-mosaic", help="dataset to transfer to (name or directory)")
    p.add_argument("--target-dir", default=None)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--subset", type=int, default=10000, help="training images per epoch")
    p.add_argument("--lr", type=float, default=0.1,
                   help="head learning rate (nas.finetune's default 0.01 suits fine-tuning on the search's own data)")
    p.add_argument("--freeze", type=int, nargs="+", default=[0, 2], help="frozen stages to compare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-transfer", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/finetune_transfer.json"))
    args = p.parse_args()
    run = Path(args.search_run)
    out = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "cores": os.cpu_count(),
           "load_at_start": os.getloadavg(), "confirmation": _confirmation(run), "transfer": None}
    if not args.skip_transfer:
        out["transfer"] = {"target": args.target, "epochs": args.epochs, "subset": args.subset,
                           "rows": _transfer(args, run / "best")}
    out["load_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
