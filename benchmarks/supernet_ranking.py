"""Does the supernet rank subnets as training them alone would?  And what does sharing cost?

1. Train the supernet on Fashion-MNIST (the default recipe; reused if RUN_DIR already holds it).
2. Pick N subnets spread evenly over the MAdds range (largest and smallest included).
3. Inherited accuracy: each subnet extracted, BN recalibrated on 2000 training images, top-1 on
   the validation split (also without recalibration, for the recalibration gain).
4. Stand-alone accuracy: each subnet trained from scratch with the same recipe and budget, then
   scored the same way (BN recalibrated on the same 2000 images).
5. Kendall tau (tau-b) between the two, mean and largest-subnet gaps.
6. Costs: per-subnet fwd+bwd step of the supernet vs the static network of the same arch
   (largest, smallest); a whole sandwich step vs training the largest static net alone; BN
   recalibration time of the largest subnet on 2000 images.

Usage (2 CPU cores, a quiet machine):

    python benchmarks/supernet_ranking.py                # full: about 2.5 h on 2 cores
    python benchmarks/supernet_ranking.py --quick        # a few minutes: checks the pipeline only

Results go to benchmarks/results/supernet_ranking[_quick].json and are printed as Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.correlation import kendall_tau, pearson_r, spearman_rho  # noqa: E402
from nas.cost import network_cost  # noqa: E402
from nas.data import iterate_batches, load_data  # noqa: E402
from nas.evaluate import calibration_batches, evaluate_arch, subnet_resolution, top1_accuracy  # noqa: E402
from nas.latency import cpu_model  # noqa: E402
from nas.nn import build_network  # noqa: E402
from nas.space import Arch, SearchSpace, load_space  # noqa: E402
from nas.supernet import Supernet, checkpoint_path, load_checkpoint, recalibrate_bn  # noqa: E402
from nas.train import TrainConfig, soft_cross_entropy, train_static, train_supernet  # noqa: E402

QUICK = dict(epochs=2, subset=2048, n_random=1, val_subset=1000, calib_images=500)


def _biased_sample(space: SearchSpace, rng: np.random.Generator, t: float) -> Arch:
    """A member whose every choice leans to the ``t`` quantile of its options (0 small, 1 large).

    Uniform sampling crowds the middle of the MAdds range; leaning all choices together reaches
    both ends, so the picked subnets cover the whole range.
    """

    def pick(values: tuple):
        i = int(np.clip(np.rint(rng.normal(t * (len(values) - 1), 0.6)), 0, len(values) - 1))
        return values[i]

    def pick_block(slot):
        ks = slot.kinds[0] if len(slot.kinds) == 1 else pick(slot.kinds)
        if ks.complete:  # one draw per axis
            return ks.kind.arch_type(**{name: pick(values) for name, values in ks.axes})
        return pick(tuple(sorted(ks.options, key=ks.rank)))

    cfg = space.config
    stages = tuple(
        tuple(pick_block(space.slot(i, j)) for j in range(int(pick(st.depths))))
        for i, st in enumerate(cfg.stages)
    )
    return Arch(space.name, int(pick(cfg.resolutions)), float(pick(cfg.width_multipliers)), stages)


def pick_subnets(space: SearchSpace, num_classes: int, resolution: int | None, n: int, seed: int,
                 scale: bool = False) -> list[Arch]:
    """Smallest, largest, and n-2 members nearest to evenly spaced MAdds targets between them."""
    rng = np.random.default_rng(seed)
    pool = [_biased_sample(space, rng, t) for t in rng.uniform(0, 1, 3000)]

    def madds(arch: Arch) -> int:
        return network_cost(space.resolve(arch, num_classes, resolution=subnet_resolution(resolution, scale, arch, space.config.base_resolution))).madds

    lo, hi = madds(space.smallest()), madds(space.largest())
    costs = np.array([madds(a) for a in pool])
    chosen: list[Arch] = [space.smallest()]
    for target in np.linspace(lo, hi, n)[1:-1]:
        order = np.argsort(np.abs(costs - target))
        chosen.append(next(pool[i] for i in order if pool[i] not in chosen))
    chosen.append(space.largest())
    return chosen


def _median_step_ms(fns: dict, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, float]:
    """Interleaved timing (so drifting machine load hits every variant alike); median in ms."""
    return {k: 1000 * statistics.median(v) for k, v in _interleaved_times(fns, x, y, repeats).items()}


def _interleaved_times(fns: dict, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns ``repeats`` times."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn(x, y)
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x, y)
            times[name].append(time.perf_counter() - t0)
    return times


def measure_costs(space: SearchSpace, cfg: TrainConfig, num_classes: int, splits, repeats: int) -> dict:
    res = cfg.resolution
    mf = torch.channels_last
    out: dict = {"batch_size": cfg.batch_size, "resolution": res, "threads": torch.get_num_threads(),
                 "repeats": repeats}
    g = torch.Generator().manual_seed(0)

    def inputs(arch: Arch) -> tuple[torch.Tensor, torch.Tensor]:
        r = res or arch.resolution
        return (torch.randn(cfg.batch_size, 3, r, r, generator=g).contiguous(memory_format=mf),
                torch.randint(0, num_classes, (cfg.batch_size,), generator=g))

    # 1. per-subnet step: supernet(x, arch) vs the static network of that arch (fwd + bwd). The
    #    ratio is the median over rounds of (supernet / static) timed back to back, which a
    #    drifting machine load disturbs less than a ratio of medians.
    variants = {  # name: (kernel_transform, skip_padding_taps)
        "plain_crops": (False, False),
        "learned_transforms": (True, False),
        "as_trained": (cfg.kernel_transform, True),
    }
    supernets = {name: Supernet(space, num_classes, kernel_transform=kt, skip_padding_taps=skip)
                 .train().to(memory_format=mf) for name, (kt, skip) in variants.items()}
    like_for_like = "learned_transforms" if cfg.kernel_transform else "plain_crops"
    out["kernel_transform"] = cfg.kernel_transform
    for label, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        static = build_network(space.resolve(arch, num_classes)).train().to(memory_format=mf)

        def step(model, arch=arch):
            def fn(x, y):
                logits = model(x) if arch is None else model(x, arch)
                F.cross_entropy(logits, y).backward()
            return fn

        times = _interleaved_times({"static": step(static, None), **{n: step(m) for n, m in supernets.items()}},
                                   *inputs(arch), repeats)
        out[f"step_ms_{label}"] = {k: round(1000 * statistics.median(v), 2) for k, v in times.items()}
        ratios = {n: statistics.median(t / s for t, s in zip(times[n], times["static"])) for n in supernets}
        # the weight-sharing overhead proper: the same convolutions as the static net, only sliced
        out[f"overhead_{label}"] = round(ratios[like_for_like], 3)
        out[f"overhead_{label}_plain_crops"] = round(ratios["plain_crops"], 3)
        out[f"overhead_{label}_learned_transforms"] = round(ratios["learned_transforms"], 3)
        out[f"overhead_{label}_as_trained"] = round(ratios["as_trained"], 3)

    # 2. a whole sandwich training step vs a training step of the largest static net alone
    largest, smallest = space.largest(), space.smallest()
    supernet = supernets["as_trained"]
    opt_s = torch.optim.SGD(supernet.parameters(), lr=1e-3, momentum=0.9)
    static = build_network(space.resolve(largest, num_classes)).train().to(memory_format=mf)
    opt_l = torch.optim.SGD(static.parameters(), lr=1e-3, momentum=0.9)
    rng = np.random.default_rng(0)

    def sandwich(x, y):
        opt_s.zero_grad(set_to_none=True)
        logits = supernet(x, largest)
        F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing).backward()
        teacher = logits.detach().softmax(1)
        for arch in [smallest] + [space.sample(rng) for _ in range(cfg.n_random)]:
            xa = x if res else F.interpolate(x, size=arch.resolution, mode="bilinear").contiguous(memory_format=mf)
            student = supernet(xa, arch)
            w = cfg.distill_weight
            (w * soft_cross_entropy(student, teacher)
             + (1 - w) * F.cross_entropy(student, y, label_smoothing=cfg.label_smoothing)).backward()
        opt_s.step()

    def alone(x, y):
        opt_l.zero_grad(set_to_none=True)
        F.cross_entropy(static(x), y, label_smoothing=cfg.label_smoothing).backward()
        opt_l.step()

    ms = _median_step_ms({"sandwich": sandwich, "largest_alone": alone}, *inputs(largest), repeats)
    out["sandwich_step_ms"] = round(ms["sandwich"], 1)
    out["largest_alone_step_ms"] = round(ms["largest_alone"], 1)
    out["sandwich_vs_largest_alone"] = round(ms["sandwich"] / ms["largest_alone"], 2)
    out["sandwich_subnets_per_step"] = 2 + cfg.n_random

    # 3. BN recalibration of the largest subnet on 2000 training images
    r = res or largest.resolution
    batches = calibration_batches(splits, images=2000, resolution=r, seed=0, channels_last=True)
    t0 = time.perf_counter()
    net = supernet.extract(largest).to(memory_format=mf)
    extract_s = time.perf_counter() - t0
    times = [recalibrate_bn(net, batches).seconds for _ in range(3)]
    out["bn_recalibration_largest_2000_s"] = round(statistics.median(times), 3)
    out["extract_largest_s"] = round(extract_s, 3)
    return out


#: TrainConfig fields that change what a stand-alone training computes (not the supernet-only ones,
#: so trying another supernet recipe reuses the stand-alone results).
STANDALONE_FIELDS = ("space", "data", "data_dir", "split_seed", "epochs", "batch_size", "lr", "momentum",
                     "weight_decay", "warmup_epochs", "label_smoothing", "resolution", "scale_resolution",
                     "subset", "seed", "channels_last")


def standalone_key(arch: Arch, recipe: TrainConfig, val_limit: int | None) -> str:
    fields = {k: getattr(recipe, k) for k in STANDALONE_FIELDS}
    text = json.dumps([arch.to_string(), fields, val_limit, "calib2000-seed0"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def standalone_path(cache_dir: Path, arch: Arch, recipe: TrainConfig, val_limit: int | None) -> Path:
    return cache_dir / f"{standalone_key(arch, recipe, val_limit)}.json"


def train_alone(arch: Arch, recipe: TrainConfig, splits, space: SearchSpace, *, val_limit: int | None,
                cache_dir: Path, progress: bool, desc: str) -> dict:
    """Train ``arch`` from scratch with ``recipe`` (no distillation), BN-recalibrate it on the same
    2000 training images the inherited subnets get, score it on the validation split.

    Each result is cached in ``cache_dir`` (one JSON file per arch and recipe) as soon as it exists,
    so an interrupted run resumes and several processes (``--shard``) can share the work.
    """
    path = standalone_path(cache_dir, arch, recipe, val_limit)
    if path.exists():
        print(f"{desc}: cached in {path}", file=sys.stderr)
        return json.loads(path.read_text())["result"]
    res = subnet_resolution(recipe.resolution, recipe.scale_resolution, arch, space.config.base_resolution)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = build_network(space.resolve(arch, splits.num_classes))
    hist = train_static(net, splits, recipe, resolution=res, progress=progress, desc=desc)

    def val_batches():
        return ((x.contiguous(memory_format=torch.channels_last), y) for x, y in
                iterate_batches(splits.val, splits, batch_size=500, resolution=res, limit=val_limit))

    out = {"standalone_no_recal_top1": round(top1_accuracy(net.eval(), val_batches())[0], 2)}
    # the same BN recalibration as the inherited subnets get (running statistics lag behind the
    # weights in short runs; recalibrating both keeps the comparison fair)
    recalibrate_bn(net, calibration_batches(splits, images=2000, resolution=res, seed=0, channels_last=True))
    out["standalone_top1"] = round(top1_accuracy(net.eval(), val_batches())[0], 2)
    out["standalone_train_seconds"] = round(sum(h["train_seconds"] for h in hist), 1)
    out["threads"] = torch.get_num_threads()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"arch": arch.to_string(), "recipe": recipe.to_dict(), "val_limit": val_limit,
                               "result": out}, indent=1))
    tmp.replace(path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help=f"tiny budget to check the pipeline: {QUICK}")
    p.add_argument("--space", default="mobilenetv3_large")
    p.add_argument("--resolution", default="32", help="proxy side, or 'arch'")
    p.add_argument("--epochs", type=int, default=None, help="supernet and stand-alone epochs [recipe's]")
    p.add_argument("--subset", type=int, default=None, help="training images per epoch [all]")
    p.add_argument("--standalone-epochs", type=int, default=None, help="stand-alone epochs [the supernet's]")
    p.add_argument("--standalone-subset", type=int, default=None, help="stand-alone images per epoch [the supernet's]")
    p.add_argument("--largest-full", action="store_true",
                   help="also train the largest subnet alone with the supernet's own recipe (when the "
                        "stand-alone budget is reduced): the fair check of 'largest within 1 point'")
    p.add_argument("--fixed-resolution", action="store_true", help="every subnet at --resolution (no scaling)")
    p.add_argument("--n-subnets", type=int, default=12)
    p.add_argument("--pick-seed", type=int, default=0, help="seed of the subnet picking (not the supernet's seed)")
    p.add_argument("--run-dir", default=None, help="supernet run dir (reused when complete) [runs/bench_supernet]")
    p.add_argument("--val-limit", type=int, default=None, help="validation images scored [all; quick: 1000]")
    p.add_argument("--timing-repeats", type=int, default=None)
    p.add_argument("--no-costs", action="store_true", help="skip the timing part (ranking only)")
    p.add_argument("--cached-only", action="store_true",
                   help="rank only the subnets whose stand-alone results (every seed) are already in "
                        "--standalone-dir; train no stand-alone net (the report says how many were used)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=None)
    p.add_argument("--standalone-dir", default=str(ROOT / "runs" / "bench_standalone"),
                   help="cache of stand-alone results, one file per arch and recipe (independent of the "
                        "supernet, so other supernet recipes reuse it) [runs/bench_standalone]")
    p.add_argument("--standalone-only", action="store_true",
                   help="only train the stand-alone baselines into --standalone-dir (no supernet needed); "
                        "with --shard K/N several processes share the work")
    p.add_argument("--standalone-seeds", default=None,
                   help="comma-separated seeds of the stand-alone trainings; their mean is the reference ranking "
                        "and the tau between two seeds shows the reference's own noise [the recipe's seed]")
    p.add_argument("--reference", default=None,
                   help="a previous results JSON of this benchmark: take its stand-alone scores (every seed) as the "
                        "reference instead of training; the picked subnets and validation images must match. "
                        "Compares a cheaper supernet recipe against the reference of the default one")
    p.add_argument("--shard", default="0/1", help="with --standalone-only: train the subnets i with i %% N == K [0/1]")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    overrides = dict(QUICK) if args.quick else {}
    overrides["space"] = args.space
    overrides["resolution"] = None if args.resolution == "arch" else int(args.resolution)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.subset is not None:
        overrides["subset"] = args.subset
    if args.fixed_resolution:
        overrides["scale_resolution"] = False
    cfg = TrainConfig(**overrides)
    run_dir = Path(args.run_dir or ROOT / "runs" / f"bench_supernet{'_quick' if args.quick else ''}")
    given = set(overrides)
    if checkpoint_path(run_dir).exists():  # a trained (or partly trained) supernet: its recipe is the recipe
        cfg = TrainConfig.from_checkpoint(load_checkpoint(checkpoint_path(run_dir)).settings)
        given = {"epochs"} if args.epochs is not None else set()
        if given:
            cfg = dataclasses.replace(cfg, epochs=args.epochs)
    alone = {k: v for k, v in (("epochs", args.standalone_epochs), ("subset", args.standalone_subset)) if v}
    alone_cfg = dataclasses.replace(cfg, **alone)
    seeds = [int(v) for v in args.standalone_seeds.split(",")] if args.standalone_seeds else [alone_cfg.seed]
    alone_cfgs = [dataclasses.replace(alone_cfg, seed=seed) for seed in seeds]
    tag = "_quick" if args.quick else ""
    cache_dir = Path(args.standalone_dir)
    out_path = Path(args.out or ROOT / "benchmarks" / "results" / f"supernet_ranking{tag}.json")
    val_limit = args.val_limit or (1000 if args.quick else None)
    progress = not args.no_progress
    started = time.time()

    space = load_space(cfg.space)
    splits = load_data(cfg.data, cfg.data_dir, seed=cfg.split_seed, channels=space.config.in_channels)
    print(f"# {splits.describe()}\n# recipe {cfg.to_dict()}", file=sys.stderr)

    archs = pick_subnets(space, splits.num_classes, cfg.resolution, args.n_subnets, args.pick_seed,
                         cfg.scale_resolution)
    if args.standalone_only:
        k, n = (int(v) for v in args.shard.split("/"))
        jobs = [(i, arch, recipe) for recipe in alone_cfgs for i, arch in enumerate(archs)]
        for j, (i, arch, recipe) in enumerate(jobs):
            if j % n == k:
                r = train_alone(arch, recipe, splits, space, val_limit=val_limit, cache_dir=cache_dir,
                                progress=progress, desc=f"alone #{i} seed {recipe.seed}")
                print(f"alone #{i} seed {recipe.seed} {r['standalone_top1']:6.2f} ({r['standalone_train_seconds']} s)  "
                      f"{arch}", file=sys.stderr)
        if args.largest_full and alone_cfg != cfg and (len(archs) - 1) % n == k:
            train_alone(archs[-1], cfg, splits, space, val_limit=val_limit, cache_dir=cache_dir, progress=progress,
                        desc="largest alone, full recipe")
        return 0

    # 1. supernet
    t0 = time.perf_counter()
    resume = checkpoint_path(run_dir).exists()
    result = train_supernet(cfg, run_dir, resume=resume, given=given, progress=progress, splits=splits)
    supernet_seconds = time.perf_counter() - t0
    supernet = result.supernet

    # 2-3. inherited accuracy of the picked subnets
    rows = []
    calib_cache: dict[int, list] = {}
    for arch in archs:
        res = subnet_resolution(cfg.resolution, cfg.scale_resolution, arch, space.config.base_resolution)
        if res not in calib_cache:
            calib_cache[res] = calibration_batches(splits, images=2000, resolution=res, seed=0, channels_last=True)
        inherited = evaluate_arch(supernet, arch, splits, resolution=res, limit=val_limit,
                                  calib_batches=calib_cache[res])
        plain = evaluate_arch(supernet, arch, splits, resolution=res, limit=val_limit, recalibrate=False)
        cost = network_cost(space.resolve(arch, splits.num_classes, resolution=res))
        rows.append({"arch": arch.to_string(), "madds": cost.madds, "params": cost.params,
                     "inherited_top1": round(inherited.top1, 2), "inherited_no_recal_top1": round(plain.top1, 2),
                     "calibration_seconds": round(inherited.calibration_seconds, 3)})
        print(f"inherited {inherited.top1:6.2f} (no recal {plain.top1:6.2f})  {cost.madds / 1e6:6.1f}M  {arch}",
              file=sys.stderr)

    if args.cached_only:  # keep the subnets whose every stand-alone seed is already trained
        kept = [(row, arch) for row, arch in zip(rows, archs)
                if all(standalone_path(cache_dir, arch, r, val_limit).exists() for r in alone_cfgs)]
        print(f"--cached-only: {len(kept)} of {len(archs)} subnets have every stand-alone seed cached", file=sys.stderr)
        if len(kept) < 3:
            raise SystemExit("error: --cached-only needs at least 3 subnets with cached stand-alone results")
        has_largest = kept[-1][1] == archs[-1]
        rows, archs = [r for r, _ in kept], [a for _, a in kept]
    else:
        has_largest = True
    reference = _reference_rows(args.reference, archs, val_limit or len(splits.val)) if args.reference else None
    if reference:
        seeds = reference[0]["standalone_seeds"]
    for row, arch in zip(rows, archs):
        if reference:
            ref = reference[archs.index(arch)]
            row.update({k: ref[k] for k in ("standalone_top1", "standalone_top1_seeds", "standalone_train_seconds")})
            continue
        per_seed = [train_alone(arch, recipe, splits, space, val_limit=val_limit, cache_dir=cache_dir,
                                progress=progress, desc=f"alone {row['madds'] / 1e6:.1f}M seed {recipe.seed}")
                    for recipe in alone_cfgs]
        row.update(per_seed[0])
        row["standalone_top1_seeds"] = [r["standalone_top1"] for r in per_seed]
        row["standalone_top1"] = round(float(np.mean(row["standalone_top1_seeds"])), 3)
        row["standalone_train_seconds"] = [r["standalone_train_seconds"] for r in per_seed]
        print(f"alone {row['standalone_top1_seeds']} inherited {row['inherited_top1']:6.2f}  {arch}", file=sys.stderr)

    largest_full = None
    if args.largest_full and alone_cfg != cfg:
        r = train_alone(archs[-1], cfg, splits, space, val_limit=val_limit, cache_dir=cache_dir, progress=progress,
                        desc="largest alone, full recipe")
        largest_full = {"top1": r["standalone_top1"], "train_seconds": r["standalone_train_seconds"]}
        print(f"largest alone, supernet's recipe: {largest_full['top1']:6.2f}", file=sys.stderr)

    inherited = [r["inherited_top1"] for r in rows]
    alone = [r["standalone_top1"] for r in rows]
    gaps = [a - i for a, i in zip(alone, inherited)]
    summary = {
        "kendall_tau": round(kendall_tau(inherited, alone), 3),
        "spearman_rho": round(spearman_rho(inherited, alone), 3),
        "pearson_r": round(pearson_r(inherited, alone), 3),
        "standalone_seeds": seeds,
        "kendall_tau_per_seed": [round(kendall_tau(inherited, [r["standalone_top1_seeds"][i] for r in rows]), 3)
                                 for i in range(len(seeds))],
        # the reference's own noise: how well one stand-alone seed ranks the other
        "kendall_tau_standalone_seed_vs_seed": (
            round(kendall_tau(*[[r["standalone_top1_seeds"][i] for r in rows] for i in (0, 1)]), 3)
            if len(seeds) > 1 else None),
        # a zero-cost baseline: ranking the subnets by their MAdds alone
        "kendall_tau_madds": round(kendall_tau([r["madds"] for r in rows], alone), 3),
        "mean_gap_standalone_minus_inherited": round(float(np.mean(gaps)), 2),
        "subnets_used": len(rows),
        "largest_gap_standalone_minus_inherited": round(gaps[-1], 2) if has_largest else None,
        "largest_inherited_top1": inherited[-1] if has_largest else None,
        "largest_standalone_top1": alone[-1] if has_largest else None,
        "mean_bn_recalibration_gain": round(float(np.mean([r["inherited_top1"] - r["inherited_no_recal_top1"]
                                                           for r in rows])), 2),
        "largest_standalone_full_recipe": largest_full,
        "supernet_train_seconds": round(supernet_seconds, 1),
        "supernet_epochs_trained_here": len(result.history) if not resume else "reused checkpoint",
    }

    # 5. costs
    repeats = args.timing_repeats or (5 if args.quick else 15)
    costs = None if args.no_costs else measure_costs(space, cfg, splits.num_classes, splits, repeats)

    report = {
        "mode": "quick" if args.quick else "full",
        "command": "python benchmarks/supernet_ranking.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])),
        "recipe": cfg.to_dict(),
        # seed: see summary.standalone_seeds; with --reference the reference run's stand-alone recipe
        "standalone_recipe": reference[0]["standalone_recipe"] if reference else alone_cfg.to_dict(),
        "reference": args.reference,
        "val_images": val_limit or len(splits.val),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": cpu_model(),
                    "threads": torch.get_num_threads()},
        "summary": summary,
        "costs": costs,
        "subnets": rows,
        "supernet_history": result.history,
        "wall_seconds": round(time.time() - started, 1),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2))
    print(_markdown(report))
    print(f"\nwritten {out_path}", file=sys.stderr)
    return 0


def _reference_rows(path: str, archs: list[Arch], val_images: int) -> list[dict]:
    """Stand-alone scores of ``archs`` from a previous report of this benchmark (same picked subnets and
    validation images), each row with the reference's ``standalone_seeds`` and ``standalone_recipe``."""
    ref = json.loads(Path(path).read_text())
    if ref.get("val_images") != val_images:
        raise SystemExit(f"error: --reference {path}: scored on {ref.get('val_images')} validation images, "
                         f"this run on {val_images}")
    by_arch = {r["arch"]: r for r in ref["subnets"]}
    missing = [a.to_string() for a in archs if a.to_string() not in by_arch]
    if missing:
        raise SystemExit(f"error: --reference {path}: {len(missing)} of the {len(archs)} picked subnets are not in it "
                         f"(first: {missing[0]}); pick them with the same --n-subnets, --pick-seed and space")
    seeds = ref["summary"].get("standalone_seeds") or [ref["standalone_recipe"]["seed"]]
    return [{**by_arch[a.to_string()], "standalone_seeds": seeds, "standalone_recipe": ref["standalone_recipe"]}
            for a in archs]


def _markdown(r: dict) -> str:
    s, c = r["summary"], r["costs"]
    lines = [
        f"### Supernet ranking ({r['mode']}) — `{r['command'].strip()}`",
        "",
        f"- Kendall tau (inherited vs stand-alone, {len(r['subnets'])} subnets): **{s['kendall_tau']}** "
        f"(Spearman {s.get('spearman_rho')}, Pearson {s.get('pearson_r')}); stand-alone seeds {s.get('standalone_seeds')}, tau per seed "
        f"{s.get('kendall_tau_per_seed')}, seed vs seed {s.get('kendall_tau_standalone_seed_vs_seed')}; "
        f"MAdds alone {s.get('kendall_tau_madds')}",
        f"- mean gap stand-alone − inherited: {s['mean_gap_standalone_minus_inherited']} points; "
        f"largest subnet: inherited {s['largest_inherited_top1']} vs alone {s['largest_standalone_top1']} "
        f"({s['largest_gap_standalone_minus_inherited']} points)",
        *([f"- largest subnet trained alone with the supernet's full recipe: {s['largest_standalone_full_recipe']['top1']} "
           f"({s['largest_standalone_full_recipe']['train_seconds']} s)"] if s.get("largest_standalone_full_recipe") else []),
        f"- stand-alone recipe: {r['standalone_recipe']['epochs']} epochs of "
        f"{r['standalone_recipe']['subset'] or 'all'} images (supernet: {r['recipe']['epochs']} epochs of "
        f"{r['recipe']['subset'] or 'all'}); {r['val_images']} validation images",
        f"- BN recalibration gain (mean over subnets): {s['mean_bn_recalibration_gain']} points",
        *([] if c is None else [
            f"- per-subnet step overhead vs static net (like for like, kernel transforms "
            f"{'on' if c.get('kernel_transform', True) else 'off'} as in the recipe): largest {c['overhead_largest']}x, "
            f"smallest {c['overhead_smallest']}x; plain crops: {c.get('overhead_largest_plain_crops')}x / "
            f"{c.get('overhead_smallest_plain_crops')}x; learned transforms: "
            f"{c.get('overhead_largest_learned_transforms')}x / {c.get('overhead_smallest_learned_transforms')}x; "
            f"as trained (padding taps skipped): largest "
            f"{c['overhead_largest_as_trained']}x, smallest {c['overhead_smallest_as_trained']}x",
            f"- sandwich step ({c['sandwich_subnets_per_step']} subnets) vs largest alone: "
            f"{c['sandwich_vs_largest_alone']}x ({c['sandwich_step_ms']} vs {c['largest_alone_step_ms']} ms, batch "
            f"{c['batch_size']})",
            f"- BN recalibration of the largest subnet, 2000 images at {c['resolution']} px: "
            f"{c['bn_recalibration_largest_2000_s']} s ({c['threads']} threads)",
        ]),
        f"- wall time {r['wall_seconds']} s",
        "",
        "| MAdds (M) | inherited | no recal | stand-alone | arch |",
        "|---:|---:|---:|---:|---|",
    ]
    for row in r["subnets"]:
        seeds = " / ".join(str(v) for v in row.get("standalone_top1_seeds", [row["standalone_top1"]]))
        lines.append(f"| {row['madds'] / 1e6:.1f} | {row['inherited_top1']} | {row['inherited_no_recal_top1']} | "
                     f"{row['standalone_top1']} ({seeds}) | `{row['arch']}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
