"""Benchmark (offline): can richer few-shot terms predict int8 latency from a float or another CPU's int8 table?

``fewshot_latency.py --precision int8`` found every few-shot model's ceiling above the 5% target
(best 6.4%). This script asks whether more terms would help, measuring nothing: it refits the raw
times that run stored (its ``raw``: 40 probe networks and 100 held-out random subnets, timed
together) with term sets beyond ``nas.latency calibrate``'s seven:

* ``per-op+``: the seven features plus depthwise multiply-adds split by kernel (3/5/7), depthwise
  work on maps >= 28 px, the stem's output elements, ReLU elements, expanded elements on maps >= 28 px;
* ``classes:X``: the base table's per-layer time split into one term per class of layer (every
  non-block layer kind its own class; blocks by ``a`` activation, ``k`` kernel, ``s`` map size
  < 20 / >= 20 px, ``e`` SE on/off, as the letters X say) plus a per-layer constant: an int8/base
  ratio learned per class.

For each pass of the run (1: before its full build, 2: after it; probe and held-out timed together
in each), term set and N it reports the held-out error of the fit on the first N probe networks,
and the **ceiling**: the fit on the 100 held-out subnets themselves (no probe can do better on
that pass's times).

Usage (from the repository root; seconds, nothing timed)::

    python benchmarks/int8_terms.py --run benchmarks/results/fewshot_latency_amd_int8.json \\
        --base-table amd_epyc_avx512_2c --base-table intel_xeon_avx512_2c_int8 \\
        --base-table benchmarks/results/fewshot_latency_amd_int8_table.json \\
        --out benchmarks/results/int8_terms.json

(the last base table is the run's own full int8 table of this CPU: what a perfect per-layer base
would give). A base table may also be a product ``TABLE*NUM/DEN``: TABLE's times each multiplied by
the ratio of the same row in NUM and DEN (rows missing there keep TABLE's time), e.g.
``amd_epyc_avx512_2c*intel_xeon_avx512_2c_int8/intel_xeon_avx512_2c`` - this CPU's float table
carried to int8 by another CPU's int8/float ratio of each layer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from nas.latency import load_table  # noqa: E402
from nas.latency._calibrate import FEATURES, layer_features  # noqa: E402
from nas.latency._composition import errors  # noqa: E402
from nas.latency._fewshot import EXTRA_NETWORKS, _solve  # noqa: E402
from nas.shapes import walk  # noqa: E402
from nas.space import Arch, load_space  # noqa: E402

EXTRA = ("dw_k3", "dw_k5", "dw_k7", "dw_large_maps", "stem_melems", "relu_melems", "expanded_large_maps")


def _extra(layer) -> np.ndarray:
    """The terms of ``per-op+`` beyond the seven (millions of multiply-adds or elements)."""
    ci, hi, _ = layer.in_shape
    co, ho, wo = layer.out_shape
    dwk = np.zeros(3)
    large = stem = relu = expanded = 0.0
    if layer.kind == "bneck":
        m = layer.mid_channels
        dw = layer.kernel**2 * m * ho * wo / 1e6
        dwk[(3, 5, 7).index(layer.kernel)] = dw
        if hi >= 28:
            large, expanded = dw, m * hi * hi / 1e6
        if layer.act == "relu":
            relu = (m * ho * wo + (m * hi * hi if m != ci else 0)) / 1e6
    elif layer.kind == "stem":
        stem = co * ho * wo / 1e6
    return np.concatenate([dwk, [large, stem, relu, expanded]])


def _layer_class(layer, letters: str) -> str:
    if layer.kind != "bneck":
        return layer.kind
    parts = {"a": layer.act, "k": f"k{layer.kernel}", "s": "large" if layer.in_shape[1] >= 20 else "small",
             "e": "se" if layer.se_channels else "no-se"}
    return "-".join(["bneck", *(parts[c] for c in letters)])


def _rows(base, nets, terms: str) -> np.ndarray:
    if terms in ("per-op", "per-op+"):
        rows = [sum(np.concatenate([layer_features(l, base.in_network_ms(l)),
                                    _extra(l) if terms == "per-op+" else []]) for l in layers) for layers in nets]
        return np.array(rows)
    letters = terms.split(":", 1)[1]
    classes = sorted({_layer_class(l, letters) for layers in nets for l in layers})
    rows = np.zeros((len(nets), len(classes) + 1))
    for i, layers in enumerate(nets):
        for l in layers:
            rows[i, classes.index(_layer_class(l, letters))] += base.in_network_ms(l)
            rows[i, -1] += 1.0
    return rows


def _ratio_table(spec: str, space, tmp: Path):
    """``TABLE*NUM/DEN``: TABLE's rows times NUM/DEN row by row, loaded like any table."""
    base, ratio = spec.split("*", 1)
    num, den = ratio.split("/", 1)
    raw = {n: json.loads(load_table(n, space=space).path.read_text()) for n in (base, num, den)}
    table = raw[base]
    for key, row in table["entries"].items():
        a, b = raw[num]["entries"].get(key), raw[den]["entries"].get(key)
        if a and b:
            row["ms"] *= a["ms"] / b["ms"]
    table["header"]["device"] = f"{base}-x-{num}-over-{den}"
    path = tmp / f"{len(list(tmp.iterdir()))}.json"
    path.write_text(json.dumps(table))
    return load_table(str(path), space=space)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a fewshot_latency.py --precision int8 result (its raw times)")
    p.add_argument("--base-table", action="append", required=True, help="table(s) the few-shot fits start from")
    p.add_argument("--terms", default="per-op,per-op+,classes:a,classes:as,classes:ak,classes:ase,classes:aks,classes:akse")
    p.add_argument("--networks", default="10,20,40")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    run = json.loads(Path(args.run).read_text())
    raw = run["raw"]
    space = load_space(run["space"])
    nets = {k: [walk(space.resolve(Arch.from_string(a), num_classes=1000)) for a in raw[k]] for k in ("probe", "held_out")}
    out = {"run": args.run, "cpu": run["cpu"], "precision": run["precision"], "threads": run["threads"],
           "targets": {"median_abs_error_pct": 5.0, "within_10pct": 0.9},
           "per_op_plus_terms": list(FEATURES) + list(EXTRA), "fits": {}}
    tmp = Path(tempfile.mkdtemp(prefix="int8_terms_"))
    print("| pass | base table | terms | n terms | N=10 | N=20 | N=40 | ceiling |\n|---|---|---|---:|---:|---:|---:|---:|")
    for phase in (1, 2):
        probe_ms, held_ms = np.asarray(raw[f"probe_ms_{phase}"]), np.asarray(raw[f"held_out_ms_{phase}"])
        overhead = raw[f"overhead_ms_{phase}"]
        for name in args.base_table:
            base = _ratio_table(name, space, tmp) if "*" in name else load_table(name, space=space)
            for terms in args.terms.split(","):
                rows = _rows(base, nets["probe"] + nets["held_out"], terms)  # one class list for both sets
                probe_rows, held_rows = rows[: len(nets["probe"])], rows[len(nets["probe"]):]
                entry = {"terms": rows.shape[1], "few_shot": {}}
                for n in (int(x) for x in args.networks.split(",")):
                    if n < rows.shape[1] + EXTRA_NETWORKS:
                        continue
                    theta = _solve(probe_rows[:n], probe_ms[:n] - overhead)
                    e = errors(held_rows @ theta + overhead, held_ms)
                    entry["few_shot"][str(n)] = {k: e[k] for k in ("median_abs_error_pct", "within_10pct")}
                theta = _solve(held_rows, held_ms - overhead)
                c = errors(held_rows @ theta + overhead, held_ms)
                entry["ceiling"] = {k: c[k] for k in ("median_abs_error_pct", "within_10pct")}
                out["fits"].setdefault(f"pass {phase}", {}).setdefault(name, {})[terms] = entry

                def cell(r):
                    return f"{r['median_abs_error_pct']:.2f}% / {100 * r['within_10pct']:.0f}%" if r else "-"
                fs = entry["few_shot"]
                print(f"| {phase} | {name if '*' in name else Path(name).stem} | {terms} | {entry['terms']} | {cell(fs.get('10'))} | "
                      f"{cell(fs.get('20'))} | {cell(fs.get('40'))} | {cell(entry['ceiling'])} |")
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
