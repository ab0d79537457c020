"""Outputs of a finished search: result.json, report.md (the plots are in _plots.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_result", "write_report"]


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    path = run_dir / "result.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if spec else str(value)


def _loss_text(settings: dict[str, Any]) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "loss")
    return f"{settings.get('loss', 'n/a')}" + (f"; {extra}" if extra else "")


def _metric_rows(best: dict[str, Any], where: str) -> list[str]:
    """One table row per metric: validation and test side by side."""
    val, test = best.get("val_metrics") or {}, best.get("test_metrics")
    rows = []
    for name, value in val.items():
        primary = " (objective)" if name == best.get("metric") else ""
        shown = f"{test[name]:.2f} %" if test is not None and name in test else "n/a (no test split)"
        rows.append(f"| {name}{primary}, {where}: validation / test | {value:.2f} % / {shown} |")
    if best.get("thresholds"):
        rows.append("| decision thresholds (per class, tuned on validation; applied to test) | "
                    + " ".join(f"{t:.2f}" for t in best["thresholds"]) + " |")
    return rows


def _confirmation_lines(conf: dict[str, Any] | None, metric: str) -> list[str]:
    """The confirmed candidates: proxy vs fine-tuned metric, the choice and the rank agreement."""
    if not conf:
        return []
    tau = conf["kendall_tau"]
    lines = [
        "## Confirmed candidates",
        "",
        f"The {conf['k']} best feasible candidates of the Pareto front (by proxy {metric}) were extracted from the "
        f"supernet and fine-tuned alone for {conf['epochs']} epoch(s) on {conf['train_images']:,} training images "
        f"(whole network, peak lr {conf['lr']:g}, cosine), at the resolution the proxy was measured at; the best by "
        f"confirmed validation {metric} is the result (`best/` holds its fine-tuned weights). "
        f"Cost: {conf['seconds']:.0f} s of fine-tuning.",
        "",
        f"Kendall tau between proxy and confirmed ranks among the {conf['k']}: "
        + (f"**{tau:.3f}**" if tau is not None else "n/a (needs 2 candidates with distinct metrics)")
        + (f"; the proxy's first choice was trial {conf['proxy_choice_trial']}."
           if conf["proxy_choice_trial"] != conf["chosen_trial"] else "; the proxy's first choice was confirmed."),
        "",
        f"| trial | arch | predicted latency | proxy val {metric} | confirmed val {metric} | proxy test {metric} "
        f"| confirmed test {metric} | |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in conf["candidates"]:
        lines.append(
            f"| {c['trial']} | `{c['arch']}` | {c['predicted_latency_ms']:.2f} ms | {c['proxy']['val_metric']:.2f} | "
            f"{c['confirmed']['val_metric']:.2f} | {_fmt(c['proxy']['test_metric'], '.2f')} | "
            f"{_fmt(c['confirmed']['test_metric'], '.2f')} | {'chosen' if c['trial'] == conf['chosen_trial'] else ''} |")
    return [*lines, "", "Proxy val: as the search scored it (inherited weights, BN recalibrated, on its validation "
            "images); proxy test: the same weights on the test split.", ""]


def write_report(run_dir: Path, result: dict[str, Any]) -> Path:
    """A short human-readable summary; every figure comes from ``result``."""
    best = result.get("best") or {}
    res = result["resolutions"]
    task = result.get("task") or {"name": "single-label", "metric": "top1", "loss": {}}
    lines = [
        f"# NAS result: {result['space']} on {result['device']} within {result['budget_ms']:g} ms",
        "",
        f"- Device table: `{result['device']}` ({result['table']['method']}"
        + {"estimated": ", an estimate calibrated from published Pixel-1 data, not a measurement on a phone",
           "calibrated": ", calibrated from whole networks measured on the device (few-shot)"}.get(
            result["table"]["method"], ", measured with ONNX Runtime")
        + (", int8 models" if result["table"].get("precision") == "int8" else "")
        + f"; {result['table']['runtime']} {result['table']['runtime_version']}, "
        f"{result['table']['threads']} thread(s)).",
        *_probe_lines(result["table"].get("probe")),
        f"- Data: {result['data']['description']}.",
        f"- Task: {task['name']} (loss: {_loss_text(task['loss'])}); the search "
        f"objective is **{task['metric']}** on the validation split at the **training resolution**: "
        f"{res.get('description', str(res['train']) + ' px')}; "
        f"latency is predicted at the **deployment resolution** of each arch ({res['deploy']})."
        + (f" {task['metric']} is therefore a **proxy** for its value at deployment resolution: the exported "
           "weights were trained and scored at the training side (`accuracy_resolution` in `best/arch.json`), "
           "and `model.onnx` takes the deployment side the latency refers to, where they have not been trained; "
           "fine-tune at that side before deploying at it (`python -m nas.finetune --model best "
           "--resolution SIDE`)." if res["proxy"] else ""),
        f"- Search: {result['search']['sampler']} sampler, {result['search']['completed_trials']} completed trials "
        f"({result['search']['feasible_trials']} within budget), study `{result['search']['study_name']}` in "
        f"`{result['search']['storage']}`.",
        f"- Fastest member of the space on this device: {result['floor_ms']:.2f} ms.",
        "",
        "## Best architecture within the budget",
        "",
    ]
    if best:
        lines += [
            f"`{best['arch']}`",
            "",
            "| metric | value |",
            "| --- | --- |",
            *_metric_rows(best, ("fine-tuned, " if best.get("confirmed") else "")
                          + f"{'proxy, ' if res['proxy'] else ''}{best['eval_resolution']} px"),
            f"| predicted latency at {best['deploy_resolution']} px | {best['predicted_latency_ms']:.2f} ms |",
            "| measured latency of the exported ONNX model on this machine | "
            + (f"{best['measured_latency_ms']:.2f} ms |" if best.get("measured_latency_ms") is not None
               else "n/a (the device table was not measured on this machine) |"),
            f"| parameters | {best['params']:,} |",
            f"| multiply-adds at {best['deploy_resolution']} px | {best['madds'] / 1e6:.1f} M |",
            "",
        ]
    else:
        lines += ["No trial met the budget.", ""]
    lines += _confirmation_lines(result.get("confirmation"), task["metric"])
    lines += _int8_lines(result.get("int8"))
    exported = result.get("exported") or {}
    if exported:
        lines += [
            "## Files",
            "",
            f"- `best/model.onnx` (ONNX Runtime vs PyTorch max |diff| = {exported['onnx_max_abs_diff']:.2e})",
            "- `best/model.pt`: a `torch.export` program; load it with `nas.export.load_model('best/model.pt')`, "
            "which reads only its JSON and raw tensors and refuses pickled weights (`torch.export.load` unpickles "
            "and runs code from the file: use it only on files you made yourself)",
            "- `best/weights.pt`: spec + arch + state dict for fine-tuning (`nas.export.load_weights`)",
            "- `best/arch.json`, `result.json`, `pareto.html`, `pareto.png`",
            "",
        ]
    lines += ["## Browse every trial", "", "```", result["dashboard"], "```", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _int8_lines(int8: dict | None) -> list[str]:
    """The int8 export next to the float model, when there is one."""
    if not int8:
        return []
    metric = int8["metric"]
    rows = ["## Int8 export", "",
            f"`best/model.int8.onnx`: {int8['recipe']['tool']} ({int8['recipe']['format']}, weights "
            f"{int8['recipe']['weights']}, activations {int8['recipe']['activations']}) calibrated on "
            f"{int8['calibration_images']} training images; both models run in ONNX Runtime at {int8['resolution']} px.",
            "", f"| split | float {metric} | int8 {metric} | drop |", "| --- | --- | --- | --- |"]
    for split in ("val", "test"):
        if f"int8_{split}_metrics" in int8:
            rows.append(f"| {split} ({int8[f'{split}_images']} images) | {int8[f'fp32_{split}_metrics'][metric]:.2f} | "
                        f"{int8[f'int8_{split}_metrics'][metric]:.2f} | {int8[f'{split}_drop']:+.2f} |")
    return rows + [""]


def _probe_lines(probe: dict | None) -> list[str]:
    """The host table's start-up probe, when there was one."""
    if not probe:
        return []
    m = probe["metrics"]
    verdict = ("within" if probe["ok"] else "**beyond**") + f" the {probe['tolerance_pct']:g}% tolerance"
    return [f"- Latency probe: {len(probe['networks'])} whole networks timed on this machine before the search; the "
            f"table is off by {m['median_abs_error_pct']:.1f}% (median |error|, {m['mean_signed_error_pct']:+.1f}% "
            f"mean signed), {verdict}" + ("." if probe["ok"] else ": budgets mean other times on this machine.")]
