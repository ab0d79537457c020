"""Do the architectures of the space separate on a task?  Spread and seed-to-seed agreement of
stand-alone trainings, and how well the supernet ranks them, on single-label Fashion-MNIST and on
the multi-label fashion-mosaic task.

For each dataset:

1. Pick the 12 reference subnets of ``benchmarks/supernet_ranking.py`` (smallest, largest and ten
   evenly spaced in MAdds between them; same picking seed).
2. Train each alone from scratch with the supernet recipe (``nas.train.train_static``, the data's
   task loss: cross-entropy or BCE), once per seed (two seeds by default), BN-recalibrate it on
   2000 training images and score the task's primary metric on the validation split (top-1 or mAP).
3. Report the spread (best - worst of the two-seed mean), the Kendall tau between the two seeds'
   scores, and (unless ``--no-supernet``) the Kendall tau of the supernet's inherited scores
   against the two-seed mean (supernet trained with the same recipe, scored after BN recalibration).

Targets of the task issue: on fashion-mosaic a spread >= 5 points of mAP and a seed-to-seed tau
>= 0.9 while one supernet training fits in about an hour on 2 CPU cores; supernet tau >= 0.8.
The mosaic settings are flags (``--canvas``, ``--items``, ``--scale``, ``--clutter``,
``--mosaics``) so they can be tuned towards those targets.

Usage (a quiet machine; stand-alone results are cached per arch, recipe and seed under
runs/bench_task_separation/, so an interrupted run resumes):

    python benchmarks/task_separation.py                         # both datasets, full recipe: hours on 2 cores
    python benchmarks/task_separation.py --data fashion-mosaic --epochs 3 --subset 8000
    python benchmarks/task_separation.py --quick                 # minutes: checks the pipeline only
    python benchmarks/task_separation.py --data fashion-mosaic --epochs 10 --supernet-epochs 5
                                           # a 10-epoch stand-alone reference for the default supernet
    python benchmarks/task_separation.py --data fashion-mosaic --epochs 10 --supernet-epochs 5 \
        --supernet-set distill_weight=0       # another supernet recipe against the same reference

Results go to benchmarks/results/task_separation[_quick].json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from nas.correlation import kendall_tau  # noqa: E402
from nas.cost import network_cost  # noqa: E402
from nas.data import MosaicConfig, iterate_batches, load_data  # noqa: E402
from nas.evaluate import calibration_batches, evaluate_arch, score_model, subnet_resolution  # noqa: E402
from nas.latency import cpu_model  # noqa: E402
from nas.nn import build_network  # noqa: E402
from nas.space import Arch, SearchSpace, load_space  # noqa: E402
from nas.supernet import recalibrate_bn  # noqa: E402
from nas.train import TrainConfig, train_static, train_supernet  # noqa: E402
from supernet_ranking import pick_subnets  # noqa: E402

QUICK = dict(epochs=1, subset=512, n_random=1, val_subset=200, calib_images=200)
CACHE = ROOT / "runs" / "bench_task_separation"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_alone(arch: Arch, recipe: TrainConfig, splits, space: SearchSpace, *, seed: int, val_limit: int | None,
                mosaic: dict | None, progress: bool) -> float:
    """The task's primary validation metric of ``arch`` trained alone with ``recipe`` and ``seed``
    (cached as soon as it exists)."""
    recipe = TrainConfig(**{**recipe.to_dict(), "seed": seed})
    path = CACHE / f"{_key(arch.to_string(), recipe.to_dict(), val_limit, mosaic)}.json"
    if path.exists():
        return json.loads(path.read_text())["metric"]
    task = recipe.task_for(splits)
    res = subnet_resolution(recipe.resolution, recipe.scale_resolution, arch, space.config.base_resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(space.resolve(arch, splits.num_classes))
    start = time.perf_counter()
    train_static(net, splits, recipe, resolution=res, progress=progress, desc=f"alone s{seed}")
    recalibrate_bn(net, calibration_batches(splits, images=2000, resolution=res, seed=0, channels_last=True))
    batches = ((x.contiguous(memory_format=torch.channels_last), y) for x, y in
               iterate_batches(splits.val, splits, batch_size=500, resolution=res, limit=val_limit))
    metrics, _ = score_model(net.eval(), batches, task)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"arch": arch.to_string(), "recipe": recipe.to_dict(), "mosaic": mosaic,
                                "metric": metrics[task.metric], "metrics": metrics,
                                "seconds": round(time.perf_counter() - start, 1)}, indent=1))
    return metrics[task.metric]


def run_dataset(name: str, args, recipe_over: dict) -> dict:
    space = load_space(args.space)
    mosaic = None
    if name == "fashion-mosaic":
        lo, hi = (int(v) for v in args.items.split("-"))
        s_lo, s_hi = (float(v) for v in args.scale.split("-"))
        cfg = MosaicConfig(canvas=args.canvas, items=(lo, hi), scale=(s_lo, s_hi), clutter=args.clutter,
                           train=args.mosaics, val=max(1000, args.mosaics // 5), test=max(1000, args.mosaics // 4))
        mosaic = cfg.to_dict()
        splits = load_data(name, channels=space.config.in_channels, mosaic=cfg)
    else:
        splits = load_data(name, channels=space.config.in_channels)
    recipe = TrainConfig(space=args.space, data=name, **recipe_over)
    task = recipe.task_for(splits)
    archs = pick_subnets(space, splits.num_classes, recipe.resolution, args.n_subnets, args.pick_seed,
                         scale=recipe.scale_resolution)
    if args.only:  # a share of the trainings (fill the cache from several processes); nothing to report
        if not set(args.only) <= set(range(len(archs))):
            raise SystemExit(f"error: --only takes subnet indices 0..{len(archs) - 1}, got {args.only}")
        for i in args.only:
            for s in args.seeds:
                metric = train_alone(archs[i], recipe, splits, space, seed=s, val_limit=args.val_limit,
                                     mosaic=mosaic, progress=not args.no_progress)
                print(f"{name} subnet {i + 1}/{len(archs)} seed {s}: {task.metric} {metric:.2f}", file=sys.stderr)
        return {"data": name, "only": args.only}
    scores = {s: [] for s in args.seeds}
    for i, arch in enumerate(archs):
        for s in args.seeds:
            scores[s].append(train_alone(arch, recipe, splits, space, seed=s, val_limit=args.val_limit,
                                         mosaic=mosaic, progress=not args.no_progress))
            print(f"{name} subnet {i + 1}/{len(archs)} seed {s}: {task.metric} {scores[s][-1]:.2f}", file=sys.stderr)
    mean = np.mean([scores[s] for s in args.seeds], axis=0)
    out = {
        "data": name, "task": task.name, "metric": task.metric, "mosaic": mosaic, "recipe": recipe.to_dict(),
        "archs": [a.to_string() for a in archs],
        "madds": [network_cost(space.resolve(a, splits.num_classes)).madds for a in archs],
        "standalone": {str(s): [round(v, 2) for v in scores[s]] for s in args.seeds},
        "standalone_mean": [round(float(v), 2) for v in mean],
        "spread": round(float(mean.max() - mean.min()), 2),
        "seed_tau": round(kendall_tau(scores[args.seeds[0]], scores[args.seeds[1]]), 3) if len(args.seeds) > 1 else None,
    }
    out["madds_tau"] = round(kendall_tau(out["madds"], mean), 3)  # the baseline a supernet must beat
    if len(args.seeds) > 2:  # every pair of seeds
        out["seed_tau_pairs"] = {f"{a}-{b}": round(kendall_tau(scores[a], scores[b]), 3)
                                 for k, a in enumerate(args.seeds) for b in args.seeds[k + 1:]}
    if not args.no_supernet:
        sn_over = dict(args.supernet_set) | ({} if args.supernet_epochs is None else {"epochs": args.supernet_epochs})
        sn_recipe = TrainConfig(**{**recipe.to_dict(), **sn_over})
        run_dir = CACHE / f"supernet-{_key(sn_recipe.to_dict(), mosaic)}"
        start = time.perf_counter()
        trained = train_supernet(sn_recipe, run_dir, resume=(run_dir / "supernet.pt").exists(), progress=not args.no_progress,
                                 splits=splits)
        inherited = []
        for arch in archs:
            res = subnet_resolution(recipe.resolution, recipe.scale_resolution, arch, space.config.base_resolution)
            inherited.append(evaluate_arch(trained.supernet, arch, splits, task=task, resolution=res,
                                           limit=args.val_limit, calib_images=2000).metric)
        out |= {"supernet_recipe": sn_recipe.to_dict(), "supernet": [round(v, 2) for v in inherited],
                "supernet_tau": round(kendall_tau(inherited, mean), 3),
                "supernet_train_seconds": round(sum(h["train_seconds"] for h in trained.history), 1),
                "supernet_wall_seconds": round(time.perf_counter() - start, 1)}
    return out


def _markdown(results: list[dict]) -> str:
    lines = ["| data | task | metric | spread (points) | seed-to-seed tau | supernet tau vs mean | supernet training |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        sn = f"{r['supernet_train_seconds'] / 60:.0f} min" if "supernet_train_seconds" in r else "n/a"
        lines.append(f"| {r['data']} | {r['task']} | {r['metric']} | {r['spread']:.2f} | {r['seed_tau']} | "
                     f"{r.get('supernet_tau', 'n/a')} | {sn} |")
    return "\n".join(lines)


def _setting(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` of a TrainConfig field, the value parsed as JSON where it is JSON (numbers,
    true/false), else kept as a string; TrainConfig checks it."""
    field, sep, value = text.partition("=")
    if not sep or field not in TrainConfig.__dataclass_fields__:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with FIELD one of "
                                         f"{', '.join(sorted(TrainConfig.__dataclass_fields__))}, got {text!r}")
    try:
        return field, json.loads(value)
    except json.JSONDecodeError:
        return field, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=["fashion-mnist", "fashion-mosaic"])
    p.add_argument("--space", default="mobilenetv3_large")
    p.add_argument("--quick", action="store_true", help=f"tiny budget to check the pipeline: {QUICK}")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--n-subnets", type=int, default=12)
    p.add_argument("--pick-seed", type=int, default=0)
    p.add_argument("--val-limit", type=int, default=None)
    p.add_argument("--canvas", type=int, default=MosaicConfig.canvas)
    p.add_argument("--items", default="%d-%d" % MosaicConfig.items, help="least-most items per mosaic")
    p.add_argument("--scale", default="%g-%g" % MosaicConfig.scale, help="least-most item scale")
    p.add_argument("--clutter", type=int, default=MosaicConfig.clutter)
    p.add_argument("--mosaics", type=int, default=MosaicConfig.train,
                   help="training mosaics (the validation and test splits get a fifth and a quarter as many, "
                        "at least 1000)")
    p.add_argument("--no-supernet", action="store_true")
    p.add_argument("--only", type=int, nargs="+", default=None, metavar="I",
                   help="train only these subnets (indices 0..n-1) and report nothing: several processes can "
                        "fill the cache of one seed side by side (needs --no-supernet)")
    p.add_argument("--supernet-epochs", type=int, default=None,
                   help="epochs of the supernet's training [--epochs]: judge a supernet of the default recipe "
                        "against a longer stand-alone reference")
    p.add_argument("--supernet-set", nargs="+", type=_setting, default=[], metavar="FIELD=VALUE",
                   help="other settings of the supernet's recipe (fields of nas.train.TrainConfig, e.g. "
                        "distill_weight=0 n_random=4); the stand-alone reference keeps the default recipe")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.only and not args.no_supernet:
        p.error("--only needs --no-supernet (it fills the stand-alone cache; a later run without it reports)")
    if args.threads:
        torch.set_num_threads(args.threads)
    over = dict(QUICK) if args.quick else {}
    for k in ("epochs", "subset"):
        if getattr(args, k) is not None:
            over[k] = getattr(args, k)
    if args.quick:
        args.n_subnets, args.val_limit = min(args.n_subnets, 4), args.val_limit or 500
    start = time.perf_counter()
    results = [run_dataset(name, args, over) for name in args.data]
    if args.only:
        return 0
    report = {"command": " ".join(sys.argv), "cpu": cpu_model(), "threads": torch.get_num_threads(),
              "python": platform.python_version(), "torch": torch.__version__,
              "seconds": round(time.perf_counter() - start, 1), "results": results}
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"task_separation{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(_markdown(results))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
