"""Benchmark: does the search beat random search, and the hand-designed MobileNetV3 at equal latency?

On the host latency table (measured here, so latencies can also be measured end to end), at two
budgets:

1. the default sampler (TPE) vs random search with the same number of trials on the same
   supernet: best feasible validation metric (the task's: top-1, or mAP on multi-label data; proxy,
   mean and standard error over ``--seeds``) and hypervolume of the feasible front
   (reference point: 0 % accuracy, latency = budget; and, more telling, the gain over the fastest
   member that every study starts from: reference point = its accuracy, latency = budget);
2. the best subnet found vs MobileNetV3-Small and -Large scaled with a width multiplier to the same
   measured latency (ONNX Runtime, 1 thread, this machine), all trained from scratch with the same
   short recipe on the search's data (``--data``) at the proxy resolution of their deployment
   resolution, once per ``--train-seeds`` seed (mean and standard deviation).

Usage (from the repository root, after the default supernet exists, e.g. after the first
``python -m nas.search`` run)::

    python benchmarks/search_quality.py --trials 40
    python benchmarks/search_quality.py --data fashion-mosaic --supernet DIR --seeds 0,1,2 --train-seeds 0,1,2

Writes ``benchmarks/results/search_quality.json`` and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from nas.cost import network_cost  # noqa: E402
from nas.data import iterate_batches  # noqa: E402
from nas.evaluate import calibration_batches, score_model, subnet_resolution  # noqa: E402
from nas.tasks import collect_outputs  # noqa: E402
from nas.latency import predict_latency  # noqa: E402
from nas.latency import Timer, cpu_model, onnx_bytes, settings_of  # noqa: E402
from nas.netspec import NetworkSpec  # noqa: E402
from nas.nn import build_network, get_preset  # noqa: E402
from nas.pareto import hypervolume  # noqa: E402
from nas.search import make_score_fn  # noqa: E402
from nas.search import SearchConfig, prepare, run_study  # noqa: E402
from nas.search import best_feasible_trial, feasible_trials, supernet_dir  # noqa: E402
from nas.space import Arch  # noqa: E402
from nas.supernet import checkpoint_path, load_supernet, recalibrate_bn  # noqa: E402
from nas.train import TrainConfig, train_static  # noqa: E402


def check_work_dir(work: Path, sdir: Path) -> None:
    """The studies in ``work`` resume on a re-run: refuse them when they were scored with another supernet."""
    st = checkpoint_path(sdir).stat()
    stamp = {"supernet": str(sdir.resolve()), "checkpoint_mtime_ns": st.st_mtime_ns, "checkpoint_bytes": st.st_size}
    path = work / "supernet.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != stamp:
            raise SystemExit(f"error: --work-dir {work} holds studies scored with another supernet ({old}); "
                             f"resuming them would mix scores. Pass a fresh --work-dir or delete that one.")
    elif any(p.parent.name != "probe" for p in work.glob("*/study.db")):  # the probe's own prepare() opens one
        raise SystemExit(f"error: --work-dir {work} holds studies of unknown provenance (no supernet.json); "
                         f"pass a fresh --work-dir or delete that one.")
    path.write_text(json.dumps(stamp, indent=2) + "\n")


def measured_ms(timer: Timer, spec: NetworkSpec) -> float:
    net = build_network(spec).eval()
    shape = (spec.in_channels, spec.resolution, spec.resolution)
    return float(timer.time_models([(onnx_bytes(net, shape), shape)])[0].ms)


def match_width(preset: str, resolution: int, target_ms: float, timer: Timer, num_classes: int) -> tuple[float, float]:
    """Width multiplier of ``preset`` whose measured latency is closest to ``target_ms`` (bisection)."""
    lo, hi = 0.2, 2.0
    best = (float("inf"), 1.0, 0.0)
    for _ in range(9):
        mid = (lo + hi) / 2
        spec = get_preset(f"{preset}_{mid:.4f}", num_classes=num_classes, resolution=resolution)
        ms = measured_ms(timer, spec)
        if abs(ms - target_ms) < best[0]:
            best = (abs(ms - target_ms), mid, ms)
        if ms > target_ms:
            hi = mid
        else:
            lo = mid
    return round(best[1], 4), best[2]


def train_and_score(spec: NetworkSpec, splits, cfg: TrainConfig, res: int, progress: bool) -> dict:
    """Train ``spec`` alone with ``cfg`` (its seed) and score the data's task on val and test
    (settings such as multi-label thresholds fitted on val, applied to test)."""
    task = cfg.task_for(splits)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = build_network(spec)
    t0 = time.perf_counter()
    train_static(net, splits, cfg, resolution=res, progress=progress, desc=spec.name[:40])
    seconds = time.perf_counter() - t0
    calib = calibration_batches(splits, images=2000, resolution=res, seed=0, channels_last=True)
    recalibrate_bn(net, calib)
    net.eval()

    def batches(data):
        return ((x.contiguous(memory_format=torch.channels_last), y)
                for x, y in iterate_batches(data, splits, batch_size=500, resolution=res))

    outputs, targets = collect_outputs(net, batches(splits.val))
    tuned = task.tune(outputs, targets)
    val = task.metrics(outputs, targets, tuned)
    test, _ = score_model(net, batches(splits.test), task, tuned)
    return {"seed": cfg.seed, "val_metric": round(val[task.metric], 2), "test_metric": round(test[task.metric], 2),
            "train_seconds": round(seconds, 1), "params": network_cost(spec).params,
            "madds_deploy": network_cost(spec).madds}


def mean_sd(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    sd = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return {"mean": round(float(a.mean()), 3), "sd": round(sd, 3), "se": round(sd / np.sqrt(a.size), 3), "n": int(a.size)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="host")
    p.add_argument("--space", default="mobilenetv3_large")
    p.add_argument("--data", default="fashion-mnist", help="the search's data (as nas.search --data)")
    p.add_argument("--budgets", default="0.3,0.6",
                   help="two budgets: fractions of the way from the fastest to the slowest member, or ms values like 9ms")
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--samplers", default="tpe,random",
                   help="comma-separated; the first one's best arch goes into the MobileNetV3 comparison")
    p.add_argument("--seeds", default="0", help="comma-separated search seeds per sampler (the comparison uses the first)")
    p.add_argument("--supernet", default=None, help="supernet dir [the default one nas.search uses]")
    p.add_argument("--train-epochs", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=0, help="images per epoch of that training [0: all]")
    p.add_argument("--train-seeds", default="0", help="comma-separated seeds of those trainings")
    p.add_argument("--no-train", action="store_true", help="skip the MobileNetV3 comparison")
    p.add_argument("--work-dir", default=str(ROOT / "runs" / "bench_search"))
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_quality.json"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    progress = not args.no_progress
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    probe = prepare(SearchConfig(device=args.device, budget="1000s", space=args.space, data=args.data,
                                 run_dir=str(work / "probe")))
    space, table, splits, task = probe.space, probe.table, probe.splits, probe.task
    metric = task.metric
    timer = Timer(settings_of(table))
    slowest = predict_latency(table, space.largest(), space=space, num_classes=splits.num_classes)
    budgets = []
    for b in args.budgets.split(","):
        budgets.append(float(b[:-2]) if b.endswith("ms") else probe.floor_ms + float(b) * (slowest - probe.floor_ms))
    sdir = Path(args.supernet) if args.supernet else supernet_dir(
        SearchConfig(device="x", budget="1", space=args.space, data=args.data), space)
    supernet, ckpt = load_supernet(sdir, space=space, num_classes=splits.num_classes)
    ckpt.check_compatible(data_fingerprint=splits.fingerprint())
    check_work_dir(work, sdir)
    score = make_score_fn(supernet, ckpt, splits, calib_images=2000, val_limit=5000, seed=0)
    cache: dict[str, float] = {}

    def cached_metric(arch: Arch) -> float:  # both samplers score an arch identically
        key = arch.to_string()
        if key not in cache:
            cache[key] = score(arch)[metric]
        return cache[key]

    out: dict = {"device": table.device, "table_method": table.header.method, "space": space.name, "metric": metric,
                 "data": splits.describe(), "supernet": str(sdir), "supernet_epochs": ckpt.epoch,
                 "trials": args.trials, "floor_ms": probe.floor_ms, "slowest_ms": slowest,
                 "threads": torch.get_num_threads(), "cpu": cpu_model(),
                 "command": "python benchmarks/search_quality.py " + " ".join(sys.argv[1:] if argv is None else argv),
                 "budgets": []}
    started = time.time()
    seeds = [int(x) for x in args.seeds.split(",")]
    train_seeds = [int(x) for x in args.train_seeds.split(",")]
    # every study starts from the fastest member: the front's gain over it is what a search adds
    fastest_acc = cached_metric(probe.fastest)
    out["fastest_member"] = {"arch": probe.fastest.to_string(), "val_metric": fastest_acc, "latency_ms": probe.floor_ms}
    for budget in budgets:
        row: dict = {"budget_ms": round(budget, 3), "samplers": {}}
        for sampler in args.samplers.split(","):
            runs = []
            for seed in seeds:
                cfg = SearchConfig(device=args.device, budget=f"{budget}ms", space=args.space, data=args.data,
                                   trials=args.trials, sampler=sampler, finetune_top=0,
                                   run_dir=str(work / f"{sampler}-{budget:.2f}ms-s{seed}"), seed=seed)
                inputs = prepare(cfg, splits=splits)
                t0 = time.perf_counter()
                study = run_study(inputs, cached_metric, progress=progress, log=lambda _: None)
                best = best_feasible_trial(study)
                points = [(t.values[0], t.values[1]) for t in feasible_trials(study)]
                runs.append({
                    "seed": seed,
                    "best_val_metric": best.values[0] if best else None,
                    "best_latency_ms": best.values[1] if best else None,
                    "best_arch": best.user_attrs["arch"] if best else None,
                    "hypervolume": round(hypervolume(points, reference=(0.0, budget)), 2),
                    "hypervolume_above_fastest": round(hypervolume(points, reference=(fastest_acc, budget)), 3),
                    "feasible": len(points),
                    "completed": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
                    "seconds": round(time.perf_counter() - t0, 1),
                })
                print(f"budget {budget:.2f} ms {sampler} seed {seed}: {runs[-1]}", file=sys.stderr)
            bests = [r["best_val_metric"] for r in runs if r["best_val_metric"] is not None]
            row["samplers"][sampler] = {
                **runs[0],
                "best_val_metric_over_seeds": mean_sd(bests) if bests else None,
                "mean_hypervolume": round(float(np.mean([r["hypervolume"] for r in runs])), 2),
                "mean_hypervolume_above_fastest": round(float(np.mean([r["hypervolume_above_fastest"] for r in runs])), 3),
                "runs": runs,
            }
        if not args.no_train:
            best_arch = Arch.from_string(row["samplers"][args.samplers.split(",")[0]]["best_arch"])
            res = best_arch.resolution
            proxy = subnet_resolution(ckpt.train_resolution, bool(ckpt.settings.get("scale_resolution")), best_arch,
                                      space.config.base_resolution)
            tcfg = dataclasses.replace(TrainConfig(), epochs=args.train_epochs, subset=args.train_subset or None)
            found_spec = space.resolve(best_arch, splits.num_classes)
            found_ms = measured_ms(timer, found_spec)
            nets = {"found": (found_spec, found_ms, None)}
            for preset in ("mobilenetv3_small", "mobilenetv3_large"):
                width, ms = match_width(preset, res, found_ms, timer, splits.num_classes)
                spec = get_preset(f"{preset}_{width:.4f}", num_classes=splits.num_classes, resolution=res)
                nets[preset] = (spec, ms, width)
            row["comparison"] = {"deploy_resolution": res, "proxy_resolution": proxy,
                                 "recipe": {"epochs": tcfg.epochs, "subset": tcfg.subset, "batch_size": tcfg.batch_size,
                                            "lr": tcfg.lr}}
            for name, (spec, ms, width) in nets.items():
                runs = [train_and_score(spec, splits, dataclasses.replace(tcfg, seed=seed), proxy, progress)
                        for seed in train_seeds]
                row["comparison"][name] = {
                    "measured_ms": round(ms, 3), "width": width, "params": runs[0]["params"],
                    "madds_deploy": runs[0]["madds_deploy"],
                    "val_metric": mean_sd([r["val_metric"] for r in runs]),
                    "test_metric": mean_sd([r["test_metric"] for r in runs]), "runs": runs}
                print(f"  {name}: {row['comparison'][name]}", file=sys.stderr)
        out["budgets"].append(row)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    out["seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
