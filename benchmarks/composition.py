"""Benchmark: how well the composition model turns a table's per-layer times into whole-network
latencies, on every shipped space, against the single constant fitted on one space.

For a measured table of this machine (default ``host``) and each pass (default 2), the script times
together, in one shuffled run with the table's protocol:

* the fit subnets: ``--fit-subnets`` random members of each space, seed ``COMPOSITION_SEED`` (the
  ones ``nas.latency build`` fits the composition on);
* the held-out subnets: ``--test-subnets`` random members of each space, seed ``--seed`` (as
  ``nas.latency validate --seed``).

From the table's raw entries (composition removed) and the fit subnets of that pass it fits, and
judges on the held-out subnets of the same pass:

* ``none``: the sum of the layers' times net of the per-call overhead;
* ``constant, first space``: one per-layer constant fitted on the first space alone (how tables
  were built before the composition model: on ``mobilenetv3_large``, 160-224 px);
* ``constant, all spaces``, ``affine``, ``traffic``: the composition candidates fitted on every
  space (:mod:`nas.latency._composition`), and ``chosen``: the one the build keeps (leave-one-out);
* ``table``: the table as shipped (its own composition, fitted when it was built).

Usage (from the repository root, on a quiet machine; ~3 min on 2 cores)::

    python benchmarks/composition.py --device host --out benchmarks/results/composition.json

Target (issue #13): ``nas.latency validate`` median |error| <= 5% on random UIB subnets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from nas.latency import LatencyTable, Timer, cpu_model, load_table, settings_of  # noqa: E402
from nas.latency._build import COMPOSITION_SEED, composition_inputs  # noqa: E402
from nas.latency._composition import MODELS, TERMS, fit_terms  # noqa: E402
from nas.latency._measure import measure_networks  # noqa: E402
from nas.latency._validate import error_metrics  # noqa: E402
from nas.shapes import walk  # noqa: E402
from nas.space import load_space  # noqa: E402

SPACES = ("mobilenetv3_large", "mobilenetv3_small32", "mobilenetv4_conv_small", "mobilenet_mixed_small32",
          "mobilenetv4_small32")


def _networks(spaces, n: int, seed: int, num_classes: int) -> list[tuple[str, object]]:
    out = []
    for space in spaces:
        rng = np.random.default_rng(seed)
        out += [(space.name, space.resolve(space.sample(rng), num_classes=num_classes)) for _ in range(n)]
    return out


def _one_pass(table: LatencyTable, spaces, args, pass_no: int) -> dict:
    fit_nets = _networks(spaces, args.fit_subnets, COMPOSITION_SEED, args.num_classes)
    test_nets = _networks(spaces, args.test_subnets, args.seed, args.num_classes)
    nets = fit_nets + test_nets
    order = np.random.default_rng(1000 + pass_no).permutation(len(nets))  # fit and test interleaved
    timer = Timer(settings_of(table))
    load = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    timed = measure_networks([nets[i][1] for i in order], timer, progress=not args.quiet, desc=f"pass {pass_no}")
    seconds = time.perf_counter() - t0
    ms = np.empty(len(nets))
    ms[order] = [t.ms for t in timed]
    layers = [walk(spec) for _, spec in nets]
    rows, uncorrected = composition_inputs(table, layers)
    shipped = np.array([table.predict_layers(ls) for ls in layers])
    groups = [name for name, _ in nets]
    nf = len(fit_nets)
    fit_idx, test_idx = np.arange(nf), np.arange(nf, len(nets))
    first = [i for i in fit_idx if groups[i] == spaces[0].name]

    def terms_vector(terms: dict) -> np.ndarray:
        return np.array([terms.get(t, 0.0) for t in TERMS])

    models: dict[str, np.ndarray] = {"none": np.zeros(len(TERMS))}
    old = fit_terms(rows[first], uncorrected[first], ms[first], [groups[i] for i in first], model="constant")
    models["constant, first space"] = terms_vector(old["terms"])
    sub = lambda idx: (rows[idx], uncorrected[idx], ms[idx], [groups[i] for i in idx])  # noqa: E731
    for name in MODELS:
        models[name if name != "constant" else "constant, all spaces"] = terms_vector(
            fit_terms(*sub(fit_idx), model=name)["terms"])
    chosen = fit_terms(*sub(fit_idx))
    models[f"chosen ({chosen['model']})"] = terms_vector(chosen["terms"])

    results: dict[str, dict] = {}
    for name, theta in [*models.items(), ("table", None)]:
        pred = shipped if theta is None else uncorrected + rows @ theta
        results[name] = {
            "terms": None if theta is None else dict(zip(TERMS, (float(t) for t in theta))),
            "per_space": {
                s.name: error_metrics(list(pred[idx]), list(ms[idx]))
                for s in spaces for idx in [[i for i in test_idx if groups[i] == s.name]]
            },
        }  # fmt: skip
    return {"pass": pass_no, "load_before": load, "seconds": round(seconds, 1), "models": results,
            "canary_ms": timer.canary_ms, "disturbed_chunks": timer.disturbed_chunks,
            "raw": [{"space": g, "role": "fit" if i < nf else "test", "ms": round(float(m), 5)}
                    for i, (g, m) in enumerate(zip(groups, ms))]}  # fmt: skip


def _markdown(passes: list[dict], spaces) -> str:
    names = list(passes[0]["models"])
    head = "| model | " + " | ".join(s.name for s in spaces) + " |"
    lines = [head, "|---" * (len(spaces) + 1) + "|"]
    for name in names:
        cells = []
        for s in spaces:
            vals = [p["models"][name]["per_space"][s.name] for p in passes]
            cells.append(" / ".join(f"{v['median_abs_error_pct']:.1f}% ({100 * v['within_10pct']:.0f}%)" for v in vals))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="host", help="a measured table of this machine (default host)")
    ap.add_argument("--space", action="append", help=f"repeatable; default {', '.join(SPACES)}")
    ap.add_argument("--fit-subnets", type=int, default=16)
    ap.add_argument("--test-subnets", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out subnets (validate's --seed)")
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    table = load_table(args.device)
    if table.header.cpu != cpu_model():
        ap.error(f"table {table.device!r} was measured on {table.header.cpu!r}, this is {cpu_model()!r}")
    spaces = [load_space(s) for s in (args.space or SPACES)]
    for s in spaces:
        if not table.header.covers(s.digest):
            ap.error(f"table {table.device!r} does not cover space {s.name!r}")
    passes = [_one_pass(table, spaces, args, i) for i in range(args.passes)]
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "table": table.device, "cpu": cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "spaces": [s.name for s in spaces], "fit_subnets": args.fit_subnets, "test_subnets": args.test_subnets,
        "seed": args.seed, "num_classes": args.num_classes, "passes": passes,
        "table_md": _markdown(passes, spaces),
    }  # fmt: skip
    print(report["table_md"])
    print("cells: held-out median |error| (share within +-10%), one figure per pass")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
