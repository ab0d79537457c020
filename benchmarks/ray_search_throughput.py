"""Benchmark: search throughput (evaluated trials per minute) of the Ray backend, 1 vs 2 workers.

On one local Ray cluster (``--cpus``, default 2), the same search (``--space`` on the ``--device``
table, ``--data``, random sampler so that no trial is answered from the storage as a duplicate)
runs twice with fresh studies: ``--max-concurrent 1``, then ``2``. Every trial is a real
evaluation: BN recalibration on ``--calib-images`` images and top-1 on ``--val-limit`` validation
images of a supernet. The supernet is a one-step smoke training (its accuracy is irrelevant here;
the cost of scoring a subnet is not).

Reported per setting: wall-clock seconds of the whole ``run_study_ray`` call (Tune start-up and the
workers loading the supernet and data included), trials/minute over that, and the steady-state
rate between the first and the last completion. The headline is the ratio 2 workers / 1 worker.
Where the time goes: the mean seconds a worker spends scoring one trial (``eval_seconds``, timed
inside the Tune trial), the fraction of worker-seconds spent scoring, and the worker-seconds per
trial spent on anything else (Tune scheduling, the driver's ask/record/tell, start-up).

Usage (from the repository root)::

    python benchmarks/ray_search_throughput.py                 # about 2 minutes on 2 cores
    python benchmarks/ray_search_throughput.py --trials 40 --cpus 8 --workers 1 2 4 8

Writes ``benchmarks/results/ray_search_throughput.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optuna.trial import TrialState  # noqa: E402

from nas.data import load_data  # noqa: E402
from nas.distributed import ray_cluster  # noqa: E402
from nas.search import SupernetScorer  # noqa: E402
from nas.search._ray_backend import run_study_ray  # noqa: E402
from nas.search import SearchConfig, prepare  # noqa: E402
from nas.space import load_space  # noqa: E402
from nas.supernet import checkpoint_path  # noqa: E402
from nas.train import TrainConfig, train_supernet  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobilenetv3_small32")
    p.add_argument("--device", default="pixel_cpu", help="latency table (only predicts latency here)")
    p.add_argument("--budget", default="1000ms", help="loose: throughput, not feasibility, is measured")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--trials", type=int, default=16, help="evaluated trials per setting")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="max concurrent trials to compare")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--calib-images", type=int, default=256)
    p.add_argument("--val-limit", type=int, default=512)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ray_search_throughput.json"))
    return p


def _score_alone(scorer: SupernetScorer, archs: list[str], threads: int, start_at: float, out) -> None:
    """(In a child process.) Score ``archs`` with one torch thread; put the mean seconds per arch."""
    import torch

    from nas.space import Arch

    torch.set_num_threads(threads)
    accuracy = scorer()
    while time.time() < start_at:  # start the processes of one round together
        time.sleep(0.01)
    begin = time.perf_counter()
    for text in archs:
        accuracy(Arch.from_json(text))
    out.put((time.perf_counter() - begin) / len(archs))


def scaling_ceiling(scorer: SupernetScorer, archs: list[str], workers: int) -> dict[str, float]:
    """The same scoring without Ray or Optuna: one process alone, then ``workers`` processes at once.

    The ratio ``workers * alone / together`` is what this machine allows any backend at best.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    means = {}
    for n in (1, workers):
        queue = ctx.Queue()
        start_at = time.time() + 15  # after every child has loaded the supernet and data
        procs = [ctx.Process(target=_score_alone, args=(scorer, archs, 1, start_at, queue)) for _ in range(n)]
        for proc in procs:
            proc.start()
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        means[n] = sum(results) / len(results)
    return {"seconds_per_arch_alone": round(means[1], 3), f"seconds_per_arch_{workers}_at_once": round(means[workers], 3),
            "ceiling_ratio": round(workers * means[1] / means[workers], 2)}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nas-bench-ray-"))
    try:
        space = load_space(args.space)
        splits = load_data(args.data, seed=0, channels=space.config.in_channels)
        # a one-step supernet: a normal checkpoint, cheap to make
        tcfg = TrainConfig(space=args.space, data=args.data, epochs=1, subset=64, batch_size=64, val_subset=64,
                           calib_images=64, n_random=0)
        train_supernet(tcfg, work / "supernet", progress=False, splits=splits)
        scorer = SupernetScorer.from_file(checkpoint_path(work / "supernet"), splits, calib_images=args.calib_images,
                                          val_limit=args.val_limit, seed=0)
        rows = []
        with ray_cluster(num_cpus=args.cpus):  # one cluster for every setting; run_study_ray reuses it
            for workers in args.workers:
                cfg = SearchConfig(device=args.device, budget=args.budget, space=args.space, data=args.data,
                                   trials=args.trials, sampler="random", run_dir=str(work / f"search-{workers}"),
                                   backend="ray", max_concurrent=workers, seed=workers)
                inputs = prepare(cfg, splits=splits)
                start = time.perf_counter()
                study = run_study_ray(inputs, scorer, progress=False, log=lambda _: None)
                seconds = time.perf_counter() - start
                done = [t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "duplicate_of" not in t.user_attrs]
                ends = sorted(t.datetime_complete.timestamp() for t in done)
                steady = (len(ends) - 1) / (ends[-1] - ends[0]) * 60 if len(ends) > 1 and ends[-1] > ends[0] else None
                evals = [t.user_attrs["eval_seconds"] for t in done if "eval_seconds" in t.user_attrs]
                # where the time goes: worker-seconds spent scoring vs the rest (Tune, driver, start-up)
                busy = sum(evals) / (seconds * workers) if evals else None
                rows.append({"workers": workers, "evaluated_trials": len(done), "seconds": round(seconds, 1),
                             "trials_per_minute": round(len(done) / seconds * 60, 1),
                             "steady_trials_per_minute": round(steady, 1) if steady else None,
                             "mean_eval_seconds": round(sum(evals) / len(evals), 3) if evals else None,
                             "worker_busy_fraction": round(busy, 3) if busy is not None else None,
                             "other_seconds_per_trial": round((seconds * workers - sum(evals)) / len(done), 3)
                             if evals else None})
                print(f"{workers} worker(s): {len(done)} trials in {seconds:.1f} s", file=sys.stderr)
        space_ = load_space(args.space)
        sample = [space_.sample(1000 + i).to_json(indent=None) for i in range(8)]
        ceiling = scaling_ceiling(scorer, sample, max(args.workers))
        print(f"no Ray, no Optuna: {ceiling}", file=sys.stderr)
        base = rows[0]
        for row in rows:
            row["ratio_vs_first"] = round(row["trials_per_minute"] / base["trials_per_minute"], 2)
            if row["steady_trials_per_minute"] and base["steady_trials_per_minute"]:
                row["steady_ratio_vs_first"] = round(row["steady_trials_per_minute"] / base["steady_trials_per_minute"], 2)
        report = {
            "settings": {k: v for k, v in vars(args).items() if k != "out"},
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "load_average_at_end": os.getloadavg()},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "rows": rows,
            "scaling_without_ray": ceiling,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print("| workers | trials | seconds | trials/min | ratio | steady trials/min | steady ratio | "
              "eval s/trial | workers busy | other worker-s/trial |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| {r['workers']} | {r['evaluated_trials']} | {r['seconds']} | {r['trials_per_minute']} | "
                  f"{r['ratio_vs_first']} | {r['steady_trials_per_minute']} | {r.get('steady_ratio_vs_first')} | "
                  f"{r['mean_eval_seconds']} | {r['worker_busy_fraction']} | {r['other_seconds_per_trial']} |")
        print(f"Without Ray or Optuna, {max(args.workers)} processes scoring at once: {ceiling} "
              f"(the most any backend can reach on this machine)")
        print(f"load average at the end: {report['machine']['load_average_at_end']}; written {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
