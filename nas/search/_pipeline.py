"""The one orchestrator behind ``python -m nas.search``: inputs (``_inputs``) -> supernet -> study
(``_runner`` or ``_ray_backend``) -> exported result, report and plots."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.cost import network_cost
from nas.data import DataSplits
from nas.evaluate import calibration_batches, checkpoint_task, describe_resolution, eval_resolution, evaluate_arch
from nas.latency import Timer, of_this_machine, probe_applies, probe_table, settings_of
from nas.search._plots import write_pareto_plots
from nas.search._report import write_report, write_result
from nas.search._inputs import SearchConfig, SearchInputs, prepare, supernet_dir
from nas.search._runner import run_study
from nas.search._scoring import SupernetScorer, make_score_fn
from nas.search._study import best_feasible_trial, dashboard_command, feasible_trials
from nas.space import Arch
from nas.supernet import Checkpoint, Supernet, calibrated_subnet, checkpoint_path, load_checkpoint, load_supernet

__all__ = ["run_pipeline", "ensure_supernet", "supernet_lock", "finalize"]

#: Supernet recipe overrides for ``--smoke`` (minutes on 2 CPU cores, not a useful supernet).
SMOKE_TRAIN = {"subset": 1024, "batch_size": 64, "val_subset": 256, "calib_images": 256, "epochs": 1, "n_random": 1}


@contextlib.contextmanager
def supernet_lock(sdir: Path, *, log: Callable[[str], None]) -> Iterator[None]:
    """Hold ``SDIR/.lock`` while the supernet in ``sdir`` is checked and trained: a second run on the
    same supernet waits (saying who trains it) instead of training it again beside the first."""
    try:
        sdir.mkdir(parents=True, exist_ok=True)
        f = open(sdir / ".lock", "a+")  # noqa: SIM115 (closed below)
    except OSError:
        if checkpoint_path(sdir).is_file():  # a read-only, finished supernet: nothing to train, no lock
            yield
            return
        raise
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            log(f"supernet: {sdir} is being trained by {holder}; waiting for it to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            f.truncate()
            f.write(f"{socket.gethostname()}:{os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_supernet(
    inputs: SearchInputs, *, progress: bool, log: Callable[[str], None]
) -> tuple[Supernet, Checkpoint, dict[str, Any]]:
    """Load the supernet of (space, data), training or finishing it with the default recipe.

    A supernet directory is locked while it is checked and trained (:func:`supernet_lock`).
    """
    sdir = supernet_dir(inputs.cfg, inputs.space)
    if sdir.is_file():  # a checkpoint file given with --supernet: used as it is
        return _ensure_supernet(inputs, sdir, progress=progress, log=log)
    with supernet_lock(sdir, log=log):
        return _ensure_supernet(inputs, sdir, progress=progress, log=log)


def _ensure_supernet(
    inputs: SearchInputs, sdir: Path, *, progress: bool, log: Callable[[str], None]
) -> tuple[Supernet, Checkpoint, dict[str, Any]]:
    from nas.train import TrainConfig, train_supernet, with_task_recipe

    cfg, space = inputs.cfg, inputs.space
    path = checkpoint_path(sdir)
    info: dict[str, Any] = {"dir": str(sdir), "trained_now": False, "train_seconds": 0.0}
    overrides: dict[str, Any] = dict(SMOKE_TRAIN) if cfg.smoke else {}
    if cfg.epochs:
        overrides["epochs"] = cfg.epochs
    tcfg = TrainConfig(space=cfg.space, data=cfg.data, data_dir=cfg.data_dir, loss=cfg.loss, precision=cfg.precision,
                       **overrides)
    tcfg = with_task_recipe(tcfg, inputs.task, set(overrides))
    resume = False
    if path.exists():
        supernet, ckpt = load_supernet(path, space=space, num_classes=inputs.splits.num_classes)
        ckpt.check_compatible(data_fingerprint=inputs.splits.fingerprint())
        target = cfg.epochs or int(ckpt.settings.get("epochs", tcfg.epochs))
        if ckpt.epoch >= target:
            log(f"supernet: reusing {path} ({ckpt.epoch} epochs, trained at {describe_resolution(ckpt)[0]})")
            return supernet, ckpt, info
        log(f"supernet: {path} holds {ckpt.progress()} of {target}; resuming its training")
        resume = True
    else:
        log(f"supernet: none for ({space.name}, {inputs.splits.name}) yet; training one in {sdir} "
            f"with the default recipe for {inputs.task.name} data ({tcfg.epochs} epochs, distillation weight "
            f"{tcfg.distill_weight:g}, at {tcfg.resolution or 'arch'} px)")
    start = time.perf_counter()
    given = set(overrides) | {"precision"} if resume else None
    trained = train_supernet(tcfg, sdir, resume=resume, given=given, progress=progress, splits=inputs.splits)
    info.update(trained_now=True, train_seconds=round(time.perf_counter() - start, 1))
    # the trained supernet itself, not a copy rebuilt from the file; the file gives its metadata
    ckpt = load_checkpoint(trained.checkpoint)
    ckpt.check_compatible(space, inputs.splits.num_classes)
    return trained.supernet.eval(), ckpt, info


def _measured_latency(inputs: SearchInputs, onnx_path: Path, resolution: int) -> float | None:
    """End-to-end latency of the exported model, when the table was measured on this machine."""
    if not of_this_machine(inputs.table):
        return None

    timer = Timer(settings_of(inputs.table))
    timing = timer.time_models([(onnx_path.read_bytes(), (1, inputs.space.config.in_channels, resolution, resolution))])
    return float(timing[0].ms)


def export_int8(
    onnx_path: Path,
    splits: DataSplits,
    task: Any,
    *,
    resolution: int,
    calib_images: int,
    limit: int | None,
    seed: int,
    log: Callable[[str], None],
    net: Any = None,
    accuracy_resolution: int | None = None,
) -> dict[str, Any]:
    """``model.int8.onnx`` beside ``model.onnx`` (static quantization calibrated on training
    images), and the float and int8 metrics on val and test with ONNX Runtime.

    The metrics are taken where the weights were trained and scored (``accuracy_resolution``, the
    proxy side): when it differs from the exported graphs' input side, a twin of the network
    (``net``) exported and quantized the same way at that side is scored instead - at the
    deployment side the weights have never seen an image, and any metric there says nothing about
    quantization."""
    import tempfile

    import torch

    from nas.data import iterate_batches
    from nas.export import export_onnx
    from nas.quantize import INT8_RECIPE, onnx_model_fn, quantize_int8
    from nas.tasks import collect_outputs

    t0 = time.perf_counter()
    side = accuracy_resolution or resolution
    if side != resolution and net is None:
        raise ValueError("export_int8: scoring at another side than the exported graph needs the network")

    def quantized(src: Path, at: int) -> tuple[Path, int]:
        """``src`` statically quantized on training images at side ``at``, written beside it."""
        calib = calibration_batches(splits, images=min(calib_images, 512), batch_size=32, resolution=at, seed=seed)
        dst = src.with_name("model.int8.onnx")
        part = dst.with_name(dst.name + ".part")
        part.write_bytes(quantize_int8(src, [x.numpy() for x, _ in calib]))
        part.replace(dst)
        return dst, sum(len(x) for x, _ in calib)

    int8_path, n_calib = quantized(onnx_path, resolution)
    out: dict[str, Any] = {"onnx": str(int8_path), "recipe": INT8_RECIPE, "calibration_images": n_calib,
                           "resolution": resolution, "metrics_resolution": side, "metric": task.metric}
    with tempfile.TemporaryDirectory(prefix="int8_twin_") as scratch:
        pair = (("fp32", onnx_path), ("int8", int8_path))
        if side != resolution:  # the same network at the side its weights were trained at
            twin = export_onnx(net.eval(), Path(scratch) / "model.onnx", torch.zeros(1, net.spec.in_channels, side, side))
            pair = (("fp32", twin), ("int8", quantized(twin, side)[0]))
        for name, path in pair:
            fn = onnx_model_fn(path)
            tuned = None  # each model's own decision thresholds (multi-label), tuned on val, used on test
            for split in ("val", "test"):
                data = getattr(splits, split, None)
                if data is None:
                    continue
                batches = iterate_batches(data, splits, batch_size=256, resolution=side,
                                          limit=limit if split == "val" else None)
                outputs, targets = collect_outputs(fn, batches)
                if tuned is None:
                    tuned = task.tune(outputs, targets)
                out[f"{name}_{split}_metrics"] = task.metrics(outputs, targets, tuned)
                out[f"{split}_images"] = len(targets)
    for split in ("val", "test"):
        if f"int8_{split}_metrics" in out:
            out[f"{split}_drop"] = round(out[f"fp32_{split}_metrics"][task.metric]
                                         - out[f"int8_{split}_metrics"][task.metric], 3)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    log(f"int8: {int8_path} ({int8_path.stat().st_size / 1e6:.1f} MB); {task.metric} at {side} px val "
        f"{out['fp32_val_metrics'][task.metric]:.2f} -> {out['int8_val_metrics'][task.metric]:.2f}"
        + (f", test {out['fp32_test_metrics'][task.metric]:.2f} -> {out['int8_test_metrics'][task.metric]:.2f}"
           if "test_drop" in out else ""))
    return out


def finalize(
    inputs: SearchInputs,
    study: optuna.Study,
    supernet: Supernet,
    ckpt: Checkpoint,
    supernet_info: dict[str, Any],
    *,
    progress: bool = True,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Confirm the top candidates (with ``--finetune-top``), export the best feasible subnet and
    write result.json, report.md and the Pareto plots."""
    cfg, space, splits, run_dir = inputs.cfg, inputs.space, inputs.splits, inputs.run_dir
    table = inputs.table
    train_res = ckpt.train_resolution
    deploy = f"{min(space.config.resolutions)}-{max(space.config.resolutions)} px"
    how, sides = describe_resolution(ckpt)
    proxy = any(side != r for r, side in sides.items())
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best_trial = best_feasible_trial(study)
    task = checkpoint_task(ckpt, splits)
    where = f"at {how}: a proxy for the metric at the deployment resolution" if proxy else "at each arch's resolution"
    result: dict[str, Any] = {
        "space": space.name,
        "space_digest": space.digest,
        "device": table.device,
        "budget_ms": inputs.budget_ms,
        "floor_ms": round(inputs.floor_ms, 4),
        "table": {
            "method": table.header.method,
            "description": table.header.description,
            "runtime": table.header.runtime,
            "runtime_version": table.header.runtime_version,
            "threads": table.header.intra_op_threads,
            "cpu": table.header.cpu,
            "precision": table.header.precision,
            "probe": inputs.latency_probe,
        },
        "data": {"name": splits.name, "source": splits.source, "description": splits.describe(),
                 "num_classes": splits.num_classes},
        "task": {"name": task.name, "metric": task.metric, "metric_label": task.metric_label,
                 "direction": task.direction, "loss": task.settings()},
        "resolutions": {"train": train_res if train_res is not None else "each arch's own", "deploy": deploy,
                        "train_side_by_deploy_resolution": {str(r): side for r, side in sides.items()},
                        "proxy": proxy, "description": how},
        "metric_note": f"{task.metric} on the validation split {where}"
        + ("; F1, precision and recall at per-class thresholds tuned on the validation split (on val itself "
           "for val figures, so those are optimistic; test figures use the val thresholds)" if task.name == "multi-label"
           else ""),
        "supernet": {**supernet_info, "epochs": ckpt.epoch, "checkpoint": str(checkpoint_path(supernet_info["dir"]))},
        "search": {
            "backend": cfg.backend,
            "sampler": cfg.sampler,
            "seed": cfg.seed,
            "storage": inputs.storage,
            "study_name": inputs.study_name,
            "completed_trials": len(completed),
            "feasible_trials": len(feasible_trials(study)),
            "seconds": study.user_attrs.get("last_search_seconds"),
        },
        "dashboard": dashboard_command(inputs.storage),
        "best": None,
        "exported": None,
        "confirmation": None,
        "int8": None,
    }
    confirmation = None
    if best_trial is not None and cfg.finetune_top:
        from nas.search._confirm import confirm_candidates

        confirmation = confirm_candidates(inputs, study, supernet, ckpt, task, progress=progress, log=log)
        result["confirmation"] = confirmation
        best_trial = next(t for t in completed if t.number == confirmation["chosen_trial"])
    if best_trial is not None:
        arch = Arch.from_json(best_trial.user_attrs["arch_json"])
        spec = space.resolve(arch, splits.num_classes)
        cost = network_cost(spec)
        res = eval_resolution(ckpt, arch)
        chosen = None
        if confirmation is not None:  # the fine-tuned network's figures; the proxy's beside them
            chosen = next(c for c in confirmation["candidates"] if c["trial"] == best_trial.number)
            val_metrics, test_metrics = chosen["confirmed"]["val_metrics"], chosen["confirmed"]["test_metrics"]
            thresholds = chosen["thresholds"]
        else:
            val = evaluate_arch(supernet, arch, splits, task=task, resolution=res, limit=cfg.val_limit,
                                calib_images=cfg.calib_images, seed=cfg.seed)
            test = None
            if splits.test is not None:
                test = evaluate_arch(supernet, arch, splits, task=task, resolution=res, split="test",
                                     calib_images=cfg.calib_images, seed=cfg.seed, tuned=val.tuned or None)
            val_metrics, test_metrics = val.metrics, test.metrics if test is not None else None
            thresholds = val.tuned.get("thresholds")
        best = {
            "trial": best_trial.number,
            "arch": arch.to_string(),
            "arch_json": arch.to_dict(),
            "metric": task.metric,
            "val_metric": best_trial.values[0],
            "proxy_val_metric": best_trial.values[0],
            "test_metric": test_metrics[task.metric] if test_metrics is not None else None,
            "val_metrics": val_metrics,
            "test_metrics": test_metrics,
            "thresholds": thresholds,
            "confirmed": chosen is not None,
            "confirmed_val_metric": chosen["confirmed"]["val_metric"] if chosen else None,
            "proxy_test_metric": chosen["proxy"]["test_metric"] if chosen else None,
            "eval_resolution": res,
            "deploy_resolution": arch.resolution,
            "predicted_latency_ms": best_trial.values[1],
            "params": cost.params,
            "madds": cost.madds,
            "measured_latency_ms": None,
        }
        result["best"] = best
        if cfg.export:
            from nas.export import export_network, load_weights

            extra = {"train_resolution": train_res, "deploy_resolution": arch.resolution, "accuracy_resolution": res,
                     "data_mean": list(splits.mean), "data_std": list(splits.std), "classes": list(splits.classes),
                     "task": task.name, **({"thresholds": thresholds} if thresholds else {})}
            extra_files = {}
            if chosen is not None:  # the fine-tuned weights, with their record and curve
                cdir = Path(chosen["dir"])
                net = load_weights(cdir / "weights.pt")
                extra |= {"finetuned": True, "finetune_resolution": res,
                          "confirmed_val_metric": chosen["confirmed"]["val_metric"]}
                extra_files = {n: (cdir / n).read_bytes() for n in ("finetune.json", "finetune.png")
                               if (cdir / n).is_file()}
            else:
                calib = calibration_batches(splits, images=cfg.calib_images, resolution=res, seed=cfg.seed)
                net, _ = calibrated_subnet(supernet, arch, calib)
            exported = export_network(net.eval(), run_dir / "best", arch=arch, resolution=arch.resolution,
                                      extra=extra, extra_files=extra_files, replaces=("finetune.json", "finetune.png"))
            result["exported"] = exported.to_dict()
            timed = exported.onnx_path
            if cfg.int8_export or (cfg.int8_export is None and table.header.precision == "int8"):
                result["int8"] = export_int8(exported.onnx_path, splits, task, resolution=arch.resolution,
                                             calib_images=cfg.calib_images, limit=cfg.val_limit, seed=cfg.seed,
                                             log=log, net=net, accuracy_resolution=res)
                if table.header.precision == "int8":
                    timed = Path(result["int8"]["onnx"])
            best["measured_latency_ms"] = _measured_latency(inputs, timed, arch.resolution)
    side_range = f"{min(sides.values())}-{max(sides.values())}" if len(set(sides.values())) > 1 else f"{train_res or 'own'}"
    label = f"val {task.metric_label} ({'proxy, ' if proxy else ''}{side_range} px)"
    html, png = write_pareto_plots(
        study, run_dir, budget_ms=inputs.budget_ms, metric_label=label,
        title=f"{space.name} on {table.device} ({table.header.method}), budget {inputs.budget_ms:g} ms",
        best_number=best_trial.number if best_trial is not None else None,
    )
    result["plots"] = {"html": str(html), "png": str(png)}
    write_result(run_dir, result)
    write_report(run_dir, result)
    return result


def run_pipeline(
    cfg: SearchConfig,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    splits: DataSplits | None = None,
) -> dict[str, Any]:
    inputs = prepare(cfg, splits=splits)
    table = inputs.table
    log(f"device {table.device}: {table.header.method} table ({table.header.description}); "
        f"budget {inputs.budget_ms:g} ms; fastest member {inputs.floor_ms:.2f} ms")
    log(f"data: {inputs.splits.describe()}")
    if cfg.latency_probe and probe_applies(table, cfg.device):
        probe = probe_table(table, inputs.space, num_classes=inputs.splits.num_classes, fastest=inputs.fastest)
        log(probe.summary())
        inputs.latency_probe = probe.to_dict()
    log(f"run dir: {inputs.run_dir}; study {inputs.study_name!r} in {inputs.storage}")
    supernet, ckpt, info = ensure_supernet(inputs, progress=progress, log=log)
    how, sides = describe_resolution(ckpt)
    log(f"resolutions: {inputs.task.metric} measured at {how}; latency predicted at each arch's deployment resolution "
        f"({min(sides)}-{max(sides)} px)" + (f"; {inputs.task.metric} is a proxy" if any(s != r for r, s in sides.items()) else ""))
    if cfg.backend == "ray":  # the only branch: same study, storage and outputs as the local backend
        from nas.search._ray_backend import run_study_ray

        scorer = SupernetScorer.from_file(ckpt.path, inputs.splits, calib_images=cfg.calib_images,
                                          val_limit=cfg.val_limit, seed=cfg.seed)
        study = run_study_ray(inputs, scorer, progress=progress, log=log)
    else:
        score = make_score_fn(supernet, ckpt, inputs.splits, calib_images=cfg.calib_images,
                              val_limit=cfg.val_limit, seed=cfg.seed)
        study = run_study(inputs, score, progress=progress, log=log)
    result = finalize(inputs, study, supernet, ckpt, info, progress=progress, log=log)
    best = result["best"]
    if best:
        log(f"best within {inputs.budget_ms:g} ms: {best['arch']}")
        log(f"  val {best['metric']} {best['val_metric']:.2f}% (proxy at {best['eval_resolution']} px), predicted "
            f"{best['predicted_latency_ms']:.2f} ms at {best['deploy_resolution']} px, {best['params']:,} params, "
            f"{best['madds'] / 1e6:.1f} M MAdds"
            + (f", measured {best['measured_latency_ms']:.2f} ms here" if best.get("measured_latency_ms") else ""))
        if best["confirmed"]:
            log(f"  confirmed: val {best['metric']} {best['confirmed_val_metric']:.2f}%"
                + (f", test {best['test_metric']:.2f}%" if best["test_metric"] is not None else "")
                + f" after {cfg.finetune_epochs} fine-tuning epoch(s) (best/ holds the fine-tuned network)")
    log(f"outputs: {inputs.run_dir}/result.json, report.md, pareto.html, pareto.png, best/")
    log(f"browse the Pareto front: {result['dashboard']}")
    return result
