"""``validate``: predicted vs measured latency of random whole subnets, on this machine.

Each subnet is exported whole to ONNX and timed with the same protocol as the table's keys (same
settings, interleaved rounds, canary check). Reported: median and max absolute % error, the share
of subnets within +-5% and +-10%, and Kendall's tau between predicted and measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from nas.correlation import kendall_tau
from nas.latency._measure import MeasureSettings, Timer, cpu_model, measure_networks
from nas.latency._modules import canary_layer
from nas.latency._table import LatencyTable, LatencyTableError
from nas.shapes import walk
from nas.space import SearchSpace


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__

#: Warn when the canary is this much slower than when the table was built.
TOLERANCE_WARN = 0.08

__all__ = ["VALIDATION_FORMAT", "ValidationReport", "error_metrics", "validate_table", "settings_of"]


def error_metrics(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """Errors of ``predicted`` against ``measured`` latencies, in % of the measured ones.

    Args:
        predicted: The table's latency of each subnet (ms).
        measured: The same subnets timed end to end (ms), in the same order.

    Returns:
        Median, mean and max absolute error, mean signed error (positive: the table
        overestimates), the shares within +-5% and +-10%, and Kendall's tau-b between predicted and
        measured (``nas.correlation.kendall_tau``; ``nan`` with fewer than 2 subnets, or when
        either side is constant, i.e. ranks nothing).
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    err = 100.0 * np.abs(p - m) / m
    return {
        "median_abs_error_pct": float(np.median(err)),
        "mean_abs_error_pct": float(np.mean(err)),
        "max_abs_error_pct": float(np.max(err)),
        "mean_signed_error_pct": float(np.mean(100.0 * (p - m) / m)),
        "within_5pct": float(np.mean(err <= 5.0)),
        "within_10pct": float(np.mean(err <= 10.0)),
        "kendall_tau": kendall_tau(p, m) if p.size >= 2 else float("nan"),
    }


#: ``format`` of a report file (``calibrate --measurements`` reads it back).
VALIDATION_FORMAT = "nas-latency-validation/1"


@dataclass(frozen=True)
class ValidationReport:
    device: str
    space: str
    samples: int
    seed: int
    num_classes: int
    settings: dict
    overhead_ms: float
    metrics: dict
    subnets: tuple[dict, ...]
    space_digest: str = ""
    cpu: str = ""
    runtime_version: str = ""

    def to_dict(self) -> dict:
        return {"format": VALIDATION_FORMAT} | asdict(self) | {"subnets": list(self.subnets)}

    def summary(self) -> str:
        m = self.metrics
        return (
            f"validate {self.device} on {self.space}: {self.samples} random subnets (seed {self.seed})\n"
            f"  median |error| {m['median_abs_error_pct']:.2f}%   max |error| {m['max_abs_error_pct']:.2f}%   "
            f"mean signed {m['mean_signed_error_pct']:+.2f}%\n"
            f"  within +-5%: {100 * m['within_5pct']:.0f}%   within +-10%: {100 * m['within_10pct']:.0f}%   "
            f"Kendall tau {m['kendall_tau']:.3f}"
        ) + (
            f"\n  WARNING: {self.settings['disturbed_chunks']} chunk(s) stayed disturbed after every retry "
            f"(another process was loading the machine): re-run at a quieter moment"
            if self.settings.get("disturbed_chunks")
            else ""
        ) + (
            f"\n  WARNING: the canary block runs {self.settings['canary_slower_than_at_build_pct']:.0f}% slower than "
            f"when the table was built: the machine is busy, the figures above are not representative"
            if (self.settings.get("canary_slower_than_at_build_pct") or 0) > 100 * TOLERANCE_WARN
            else ""
        )


def settings_of(table: LatencyTable) -> MeasureSettings:
    """The protocol a measured table was built with (validate must time networks the same way)."""
    h = table.header
    if h.method not in ("measured", "calibrated"):
        raise LatencyTableError(
            f"table {h.device!r} is {h.method}, not measured on this machine; validate compares a "
            f"table with end-to-end measurements here, so it needs a table built (or calibrated) here "
            f"(python -m nas.latency build --device host)"
        )
    return MeasureSettings(
        warmup=h.warmup,
        rounds=h.rounds,
        repeats=h.repeats,
        intra_op_threads=h.intra_op_threads,
        inter_op_threads=h.inter_op_threads,
        graph_optimization=h.graph_optimization,
        provider=h.execution_provider,
        statistic=h.statistic,
        precision=h.precision,
        spinning=h.spinning,
    )


def validate_table(
    table: LatencyTable,
    space: SearchSpace,
    samples: int,
    *,
    seed: int = 0,
    num_classes: int = 1000,
    chunk_size: int = 10,
    progress: bool = True,
    timer_factory: Callable[[MeasureSettings], Timer] = Timer,
) -> ValidationReport:
    """Measure ``samples`` random subnets of ``space`` end to end and compare with the table."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ValueError(f"samples must be an integer >= 2, got {samples!r}")
    settings = settings_of(table)
    here = cpu_model()
    if table.header.cpu != here:
        raise LatencyTableError(
            f"table {table.device!r} was measured on {table.header.cpu!r}, this machine is {here!r}: "
            f"validate compares with measurements made here; build a table for this machine with "
            f"python -m nas.latency build --device host"
        )
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(samples)]
    specs = [space.resolve(a, num_classes=num_classes) for a in archs]
    predicted = [table.predict_layers(walk(s)) for s in specs]  # fails early on a missing key
    timer = timer_factory(settings)
    # the canary also tells whether the machine is busier now than when the table was measured
    h = table.header
    slower_pct = None
    if h.canary_key == canary_layer().key and h.canary_ms > 0:
        slower_pct = round(100 * (timer.canary_ms / h.canary_ms - 1), 1)
    timings = measure_networks(specs, timer, chunk_size=chunk_size, progress=progress, desc=f"validate {table.device}")
    measured = [t.ms for t in timings]
    spreads = [t.iqr_ms for t in timings]
    subnets = tuple(
        {
            "arch": a.to_string(),
            "predicted_ms": round(p, 4),
            "measured_ms": round(m, 4),
            "iqr_ms": round(q, 4),
            "error_pct": round(100 * (p - m) / m, 2),
        }
        for a, p, m, q in zip(archs, predicted, measured, spreads)
    )
    return ValidationReport(
        device=table.device,
        space=space.name,
        samples=samples,
        seed=seed,
        num_classes=num_classes,
        settings=asdict(settings)
        | {"retried_chunks": timer.retried_chunks, "disturbed_chunks": timer.disturbed_chunks, "canary_ms": timer.canary_ms,
           "canary_slower_than_at_build_pct": slower_pct},
        overhead_ms=table.header.overhead_ms,
        metrics=error_metrics(predicted, measured),
        subnets=subnets,
        space_digest=space.digest,
        cpu=here,
        runtime_version=ort_version(),
    )
