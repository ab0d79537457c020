"""Do ONNX Runtime's spinning intra-op threads make timings drift? The same networks timed in
several passes with the tables' protocol (interleaved rounds, warm-up, medians), at 2 intra-op
threads with spinning on and off, and at 1 thread (no pool) as the reference.

The drift of a network is |pass k / pass 0 - 1| for k >= 1; the script reports its median and
maximum over the networks and passes, and the median time of each setting.

Usage (a quiet machine)::

    python benchmarks/ort_spinning.py --out benchmarks/results/ort_spinning.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.latency import MeasureSettings, cpu_model  # noqa: E402
from nas.latency._measure import model_bytes  # noqa: E402
from nas.latency._runner import make_session, time_interleaved  # noqa: E402
from nas.nn import build_network  # noqa: E402
from nas.space import load_space  # noqa: E402

SETTINGS = {
    "2 threads, spinning": MeasureSettings(intra_op_threads=2, spinning=True),
    "2 threads, no spinning": MeasureSettings(intra_op_threads=2, spinning=False),
    "1 thread": MeasureSettings(intra_op_threads=1),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobilenetv3_large")
    p.add_argument("--networks", type=int, default=12)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--seed", type=int, default=1000, help="of the random subnets (1000: the held-out subnets of "
                                                          "fewshot_latency.py)")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    space = load_space(args.space)
    rng = np.random.default_rng(args.seed)
    specs = [space.resolve(space.sample(rng), num_classes=1000) for _ in range(args.networks)]
    shapes = [(s.in_channels, s.resolution, s.resolution) for s in specs]
    models = [model_bytes(build_network(s), shape, "fp32") for s, shape in zip(specs, shapes)]
    out = {"cpu": cpu_model(), "space": space.name, "networks": args.networks, "passes": args.passes,
           "seed": args.seed, "load_before": [round(x, 2) for x in os.getloadavg()], "settings": {}}
    print("| setting | median ms | drift median | drift max |\n|---|---:|---:|---:|")
    for label, settings in SETTINGS.items():
        sessions = [(make_session(m, settings), shape) for m, shape in zip(models, shapes)]
        passes = []
        for _ in range(args.passes):
            passes.append([t.ms for t in time_interleaved(sessions, settings)])
            time.sleep(1)
        ms = np.array(passes)
        drift = 100 * np.abs(ms[1:] / ms[0] - 1)
        out["settings"][label] = {"spinning": settings.spinning, "intra_op_threads": settings.intra_op_threads,
                                  "ms": ms.round(4).tolist(), "median_ms": round(float(np.median(ms)), 3),
                                  "drift_median_pct": round(float(np.median(drift)), 1),
                                  "drift_max_pct": round(float(drift.max()), 1)}
        r = out["settings"][label]
        print(f"| {label} | {r['median_ms']:.2f} | {r['drift_median_pct']:.1f}% | {r['drift_max_pct']:.1f}% |")
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
