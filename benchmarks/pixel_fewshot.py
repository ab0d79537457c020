"""Benchmark: the ``pixel_cpu`` estimate refitted with the few-shot method on the published rows.

``python -m nas.latency calibrate --device pixel_cpu`` fits its phone model on the ProxylessNAS
block table *and* the published end-to-end rows. The few-shot calibration
(``calibrate --base-table T --measurements m.json``) sees whole networks only. This script feeds it
the published float end-to-end Pixel-1 rows as if they were a probe's measurements (phone time of
each network; per-call overhead 0: the published figures are per inference) and reports

* the model it chooses (leave-one-out) and its coefficients, fitted on every float network row;
* the same fixed hold-out split as the ``pixel_cpu`` calibration (``split_holdout``; block rows
  left out, since few-shot has none) for each model;
* leave-one-family-out: fit without MobileNetV2 / MnasNet-A1 / MobileNetV3, predict that family.

No measurement: the host table's keys and the published files only; seconds to run.

Usage (from the repository root)::

    python benchmarks/pixel_fewshot.py --host-table amd_epyc_avx2_2c --out benchmarks/results/pixel_fewshot.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, not installed

from nas.latency import load_table  # noqa: E402
from nas.latency._calibrate import default_reference_dir, load_observations, split_holdout  # noqa: E402
from nas.latency._fewshot import FEATURES, MODELS, _errors, _solve, fit_fewshot, network_features  # noqa: E402

FAMILIES = ("mobilenetv2", "mnasnet_a1", "mobilenetv3")


def _family(o) -> str:
    return "mobilenetv3" if o.family.startswith("mobilenetv3") else o.family


def _fit_predict(model: str, rows: np.ndarray, ms: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
    cols = [FEATURES.index(t) for t in MODELS[model]]
    return test_rows[:, cols] @ _solve(rows[:, cols], ms)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host-table", default="amd_epyc_avx2_2c",
                   help="measured host table the estimate maps from (the shipped pixel_cpu uses amd_epyc_avx2_2c)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    host = load_table(args.host_table)
    obs = [o for o in load_observations(default_reference_dir()) if o.precision == "float" and o.kind == "network"]
    rows = np.stack([network_features(host, o.layers) for o in obs])
    ms = np.array([o.ms for o in obs])
    fit = fit_fewshot(rows, ms, 0.0)
    out = {"host_table": host.device, "rows": len(obs), "chosen_model": fit.model, "coefficients": fit.coefficients(),
           "leave_one_out": fit.cv, "candidates": fit.candidates, "host_as_is": fit.base_cv,
           "holdout": {}, "leave_one_family_out": {}}

    fit_rows, held_rows = split_holdout(obs)
    fi = [obs.index(o) for o in fit_rows]
    hi = [obs.index(o) for o in held_rows]
    for model in MODELS:
        out["holdout"][model] = {"fitted_rows": len(fi), "held_out_rows": len(hi)} | _errors(
            _fit_predict(model, rows[fi], ms[fi], rows[hi]), ms[hi])
    for fam in FAMILIES:
        test = np.array([_family(o) == fam for o in obs])
        out["leave_one_family_out"][fam] = {"rows": int(test.sum())} | {
            model: _errors(_fit_predict(model, rows[~test], ms[~test], rows[test]), ms[test]) for model in MODELS}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(obs)} float network rows, host table {host.device}; chosen model (leave-one-out): {fit.model}, "
          f"LOO median {fit.cv['median_abs_error_pct']:.2f}%, mean {fit.cv['mean_abs_error_pct']:.2f}%")
    print("| model | LOO median / max | hold-out median / max | " + " | ".join(f"without {f} median / max" for f in FAMILIES)
          + " |")
    print("|---" * (3 + len(FAMILIES)) + "|")
    for model in MODELS:
        c = out["candidates"][model]["cv"]
        h = out["holdout"][model]
        fams = " | ".join(f"{out['leave_one_family_out'][f][model]['median_abs_error_pct']:.1f}% / "
                          f"{out['leave_one_family_out'][f][model]['max_abs_error_pct']:.1f}%" for f in FAMILIES)
        print(f"| {model} | {c['median_abs_error_pct']:.1f}% / {c['max_abs_error_pct']:.1f}% | "
              f"{h['median_abs_error_pct']:.1f}% / {h['max_abs_error_pct']:.1f}% | {fams} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
