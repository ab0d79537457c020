"""Where the time of one supernet training step goes on this CPU, by kind of operation.

Profiles the default recipe's sandwich step (``mobilenetv3_large`` at the 32 px proxy, batch 128,
channels-last, fp32: the largest subnet on the labels, then the smallest and two random subnets
half distilled from it - the step of ``cpu_training.py``) with ``torch.profiler`` and sums the
operators' self CPU time into classes: depthwise and dense convolutions (forward, backward),
batch norm (forward, backward), matrix products, activations, element-wise arithmetic and copies,
and the rest (views, allocation, autograd bookkeeping). Also reports the median wall time of the
same steps unprofiled and the number of operator calls per step: the profiler adds a few
microseconds to every call, so where the profiled sum exceeds the unprofiled step, the many small
calls are what the profiler inflates and the shares of the large kernels are lower bounds.

Usage (from the repository root, on a quiet machine: check ``uptime``)::

    python benchmarks/step_profile.py                  # about half a minute on 2 cores
    python benchmarks/step_profile.py --steps 8        # the run of benchmarks/PRECISION.md

Prints a Markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cpu_training import make_step  # noqa: E402
from nas.latency import cpu_model  # noqa: E402

_ACTIVATIONS = ("hardswish", "hardsigmoid", "relu", "threshold", "clamp", "sigmoid")
_ELEMENTWISE = ("add", "mul", "div", "sub", "copy_", "fill_", "sum", "mean", "scatter", "bernoulli", "neg", "exp",
                "log", "softmax", "where", "pow", "sqrt", "zero_")


def _is_depthwise(inp: list, weight: list) -> bool:
    # groups == channels: a [C, 1, k, k] weight on a C-channel input (the 1-channel stem is dense)
    return len(weight) == 4 and weight[1] == 1 and len(inp) == 4 and weight[0] == inp[1]


def classify(name: str, shapes: list) -> str:
    """The class of an operator from its name and input shapes (as ``record_shapes`` gives them)."""
    op = name.removeprefix("aten::")
    if op == "convolution_backward":
        return ("depthwise" if _is_depthwise(shapes[1], shapes[2]) else "dense conv") + " backward"
    if op in ("mkldnn_convolution", "_convolution", "convolution", "conv2d", "thnn_conv2d"):
        return ("depthwise" if len(shapes) > 1 and _is_depthwise(shapes[0], shapes[1]) else "dense conv") + " forward"
    if "batch_norm" in op:
        return "batch norm backward" if "backward" in op else "batch norm forward"
    if op in ("mm", "addmm", "bmm", "linear", "matmul"):
        return "matrix products"
    if any(op.startswith(a) for a in _ACTIVATIONS):
        return "activations"
    if any(op.startswith(e) for e in _ELEMENTWISE):
        return "element-wise, copies, reductions"
    return "other"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=5, help="profiled steps (and as many timed ones)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "step_profile.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    step, precision = make_step("supernet", 32, 128, "fp32", torch.device("cpu"))
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            step()
    by_class: dict[str, float] = defaultdict(float)
    calls = 0
    for e in prof.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total <= 0:
            continue
        shapes = [list(s) if isinstance(s, (list, tuple)) else [] for s in (e.input_shapes or [])]
        c = classify(e.key, shapes)
        by_class[c] += e.self_cpu_time_total / 1e6 / args.steps  # seconds per step
        calls += e.count
    total = sum(by_class.values())
    median = statistics.median(times)
    calls_per_step = calls // args.steps
    rows = sorted(by_class.items(), key=lambda kv: -kv[1])
    out = {"command": " ".join(sys.argv), "cpu": cpu_model(), "threads": torch.get_num_threads(),
           "python": platform.python_version(), "torch": torch.__version__, "precision": precision.name,
           "step": "supernet sandwich, mobilenetv3_large, 32 px, batch 128, channels-last",
           "median_step_s": round(median, 4), "profiled_ops_s_per_step": round(total, 4),
           "operator_calls_per_step": calls_per_step,
           "classes": {c: {"s_per_step": round(s, 4), "share": round(s / total, 4)} for c, s in rows}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"median step (unprofiled): {median:.3f} s; operators' self time under the profiler: {total:.3f} s per "
          f"step in {calls_per_step} operator calls ({torch.get_num_threads()} threads, {cpu_model()})\n")
    print("| class | s per step (profiled) | share |\n|---|---:|---:|")
    for c, s in rows:
        print(f"| {c} | {s:.3f} | {100 * s / total:.1f}% |")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
