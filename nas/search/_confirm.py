"""Confirming the proxy after a study (``--finetune-top K``): the K best feasible candidates of the
Pareto front are extracted from the supernet (BN recalibrated), fine-tuned alone for
``--finetune-epochs`` on the search's training split, and scored on val and test; the best by
confirmed validation metric becomes the result.

Each candidate is fine-tuned into ``RUN_DIR/candidates/trial-N/`` with :func:`nas.finetune.finetune`
(a checkpoint every epoch): an interrupted confirmation resumes where it stopped when the same
command runs again, and a finished candidate is reused. Optuna's finished trials cannot take new
attributes, so the confirmed figures go to the study's user attributes (``confirmation``, shown by
the dashboard), ``result.json`` and the report.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from nas.evaluate import calibration_batches, eval_resolution
from nas.search._study import feasible_trials
from nas.space import Arch
from nas.supernet import Checkpoint, Supernet, calibrated_subnet
from nas.tasks import Task

__all__ = ["top_candidates", "confirm_candidates", "CANDIDATES_DIR", "STUDY_ATTR"]

CANDIDATES_DIR = "candidates"
#: The study user attribute holding the confirmation summary.
STUDY_ATTR = "confirmation"


def top_candidates(study: optuna.Study, k: int) -> list[tuple[FrozenTrial, bool]]:
    """The ``k`` best feasible trials by the primary metric, taken from the feasible Pareto front
    first (best metric first) and, when the front is smaller than ``k``, from the other feasible
    trials; one trial per distinct arch. Pairs ``(trial, on_front)``."""
    feasible = feasible_trials(study)
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0

    def order(t: FrozenTrial) -> tuple[float, float, int]:
        return (-sign * t.values[0], t.values[1], t.number)

    def dominated(t: FrozenTrial) -> bool:
        return any(sign * o.values[0] >= sign * t.values[0] and o.values[1] <= t.values[1]
                   and (sign * o.values[0] > sign * t.values[0] or o.values[1] < t.values[1]) for o in feasible)

    front = sorted((t for t in feasible if not dominated(t)), key=order)
    rest = sorted((t for t in feasible if t not in front), key=order)
    chosen: list[tuple[FrozenTrial, bool]] = []
    seen: set[str] = set()
    for trial, on_front in [(t, True) for t in front] + [(t, False) for t in rest]:
        arch = trial.user_attrs.get("arch_json")
        if arch is None or arch in seen:
            continue
        seen.add(arch)
        chosen.append((trial, on_front))
        if len(chosen) == k:
            break
    return chosen


def _finetune_config(cfg: Any, task: Task, resolution: int):
    from nas.finetune import FinetuneConfig

    settings = task.settings()
    return FinetuneConfig(
        epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, backbone_lr_scale=1.0, freeze_stages=0,
        resolution=resolution, warmup_epochs=min(0.5, 0.1 * cfg.finetune_epochs), loss=settings["loss"],
        label_smoothing=float(settings.get("label_smoothing", 0.1)),
        focal_gamma=float(settings.get("focal_gamma", 2.0)), focal_alpha=float(settings.get("focal_alpha", 0.25)),
        patience=0, subset=cfg.finetune_subset, val_subset=cfg.val_limit, seed=cfg.seed, precision=cfg.precision,
    )


def source_path(ckpt: Checkpoint, trial_number: int, arch: Arch) -> str:
    """What a candidate's fine-tuning starts from: supernet checkpoint, epoch, trial and arch. Trial
    numbers repeat across studies in one run folder (another budget, another study name), so the
    arch's digest is part of it: a finished or interrupted fine-tuning is only reused for its own net."""
    digest = hashlib.sha1(arch.to_string().encode()).hexdigest()[:8]
    return f"{ckpt.path}@epoch{ckpt.epoch}#trial-{trial_number}-{digest}"


def _reusable(out: Path, fcfg: Any, src: str) -> dict[str, Any] | None:
    """The finished record in ``out`` when it was made with these settings from this source."""
    path = out / "finetune.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if record.get("config") == fcfg.to_dict() and (record.get("source") or {}).get("model") == src:
        return record
    return None


def _kendall_tau(a: list[float], b: list[float]) -> float | None:
    if len(a) < 2:
        return None
    from scipy.stats import kendalltau

    tau = kendalltau(a, b).statistic
    return None if tau is None or not math.isfinite(float(tau)) else round(float(tau), 4)


def confirm_candidates(
    inputs: Any,
    study: optuna.Study,
    supernet: Supernet,
    ckpt: Checkpoint,
    task: Task,
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any] | None:
    """Fine-tune the ``cfg.finetune_top`` best feasible candidates and pick the best by confirmed
    validation metric. Returns the confirmation record (also stored as the study's user attribute
    ``confirmation``), or None when no trial is feasible."""
    from nas.finetune import FinetuneError, Source, finetune

    cfg, splits = inputs.cfg, inputs.splits
    picked = top_candidates(study, cfg.finetune_top)
    if not picked:
        return None
    metric = task.metric
    log(f"confirming the {len(picked)} best feasible candidate(s): {cfg.finetune_epochs} fine-tuning epoch(s) each "
        f"on {cfg.finetune_subset or len(splits.train)} training images")
    candidates: list[dict[str, Any]] = []
    for i, (trial, on_front) in enumerate(picked):
        arch = Arch.from_json(trial.user_attrs["arch_json"])
        res = eval_resolution(ckpt, arch)
        fcfg = _finetune_config(cfg, task, res)
        out = inputs.run_dir / CANDIDATES_DIR / f"trial-{trial.number}"
        src = source_path(ckpt, trial.number, arch)
        log(f"candidate {i + 1}/{len(picked)}: trial {trial.number} ({arch.to_string()}), proxy val {metric} "
            f"{trial.values[0]:.2f}, {trial.values[1]:.2f} ms")
        record = _reusable(out, fcfg, src)
        if record is not None:
            log(f"  reusing the finished fine-tuning in {out}")
        else:
            calib = calibration_batches(splits, images=cfg.calib_images, resolution=res, seed=cfg.seed)
            net, _ = calibrated_subnet(supernet, arch, calib)
            source = Source(net, "supernet", src, arch, {"deploy_resolution": arch.resolution})
            resume = (out / "checkpoint.pt").exists()
            if not resume and out.exists():  # a finished run with other settings, or debris: ours to redo
                shutil.rmtree(out)
            try:
                record = finetune(source, splits, fcfg, out, resume=resume, progress=progress,
                                  log=lambda s: log(f"  {s}"))
            except FinetuneError:
                if not resume:
                    raise
                log(f"  {out} holds a fine-tuning run with other settings; starting it again")
                shutil.rmtree(out)
                net, _ = calibrated_subnet(supernet, arch, calib)
                source = Source(net, "supernet", src, arch, {"deploy_resolution": arch.resolution})
                record = finetune(source, splits, fcfg, out, progress=progress, log=lambda s: log(f"  {s}"))
        inherited, tuned = record["inherited"] or {}, record["finetuned"]
        test = tuned.get("test")
        entry = {
            "trial": trial.number,
            "arch": arch.to_string(),
            "on_pareto_front": on_front,
            "predicted_latency_ms": trial.values[1],
            "eval_resolution": res,
            "proxy": {"val_metric": trial.values[0],
                      "val_metric_all": (inherited.get("val") or {}).get(metric),
                      "test_metric": (inherited.get("test") or {}).get(metric)},
            "confirmed": {"val_metric": tuned["val"][metric], "test_metric": test[metric] if test else None,
                          "val_metrics": tuned["val"], "test_metrics": test},
            "thresholds": record.get("thresholds"),
            "train_seconds": record["train_seconds"],
            "dir": str(out),
        }
        candidates.append(entry)
        log(f"  confirmed val {metric} {entry['confirmed']['val_metric']:.2f} (proxy {trial.values[0]:.2f})"
            + (f", test {entry['confirmed']['test_metric']:.2f}" if test else ""))
    sign = 1.0 if task.direction == "maximize" else -1.0
    chosen = max(candidates, key=lambda c: (sign * c["confirmed"]["val_metric"], -c["predicted_latency_ms"]))
    by_proxy = max(candidates, key=lambda c: (sign * c["proxy"]["val_metric"], -c["predicted_latency_ms"]))
    summary = {
        "k": len(candidates),
        "asked": cfg.finetune_top,
        "epochs": cfg.finetune_epochs,
        "lr": cfg.finetune_lr,
        "train_images": cfg.finetune_subset or len(splits.train),
        "metric": metric,
        "chosen_trial": chosen["trial"],
        "proxy_choice_trial": by_proxy["trial"],
        "kendall_tau": _kendall_tau([c["proxy"]["val_metric"] for c in candidates],
                                    [c["confirmed"]["val_metric"] for c in candidates]),
        "seconds": round(sum(c["train_seconds"] for c in candidates), 1),
        "candidates": candidates,
    }
    study.set_user_attr(STUDY_ATTR, {k: v for k, v in summary.items() if k != "candidates"} | {
        "candidates": [{"trial": c["trial"], "arch": c["arch"], f"proxy_val_{metric}": c["proxy"]["val_metric"],
                        f"confirmed_val_{metric}": c["confirmed"]["val_metric"],
                        f"confirmed_test_{metric}": c["confirmed"]["test_metric"],
                        "latency_ms": c["predicted_latency_ms"]} for c in candidates]})
    log(f"chosen by confirmed val {metric}: trial {chosen['trial']}"
        + (f" (the proxy ranked trial {by_proxy['trial']} first)" if by_proxy is not chosen else " (also the proxy's choice)")
        + (f"; Kendall tau proxy vs confirmed among {len(candidates)}: {summary['kendall_tau']}"
           if summary["kendall_tau"] is not None else ""))
    return summary
