"""Is a host table true on this machine? A start-up probe of a few whole networks.

A table measured with ONNX Runtime is only true on the machine that measured it, and "the same
kind" of cloud VM is often not that machine: on a fresh VM of the kind that built
``intel_xeon_avx512_2c`` the table over-predicted every subnet by 16-31%. Before a search on a
host table, :func:`probe_table` times a handful of whole networks of the space (its fastest
member, smallest and largest, and random ones) with the table's own protocol and compares them
with the table's predictions. Far off, the search warns with the figure and says how to fix it;
the report goes into ``result.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

from nas.latency._measure import MeasureSettings, Timer, cpu_model, host_device_name, measure_networks
from nas.latency._modules import canary_layer
from nas.latency._table import LatencyTable
from nas.latency._validate import error_metrics, settings_of
from nas.shapes import walk
from nas.space import Arch, SearchSpace

__all__ = ["PROBE_TOLERANCE_PCT", "ProbeReport", "of_this_machine", "probe_applies", "probe_table"]

#: Warn when the probe's median |error| exceeds this (a measured table validates at ~2-5% here).
PROBE_TOLERANCE_PCT = 10.0


@dataclass(frozen=True)
class ProbeReport:
    """Predicted vs measured latency of a few whole networks on this machine."""

    device: str
    space: str
    num_classes: int
    table_cpu: str
    this_cpu: str
    tolerance_pct: float
    metrics: dict
    networks: tuple[dict, ...]
    seconds: float
    canary_slower_than_at_build_pct: float | None
    #: a calibrated table's fit: {"base_table", "networks", "model", "loo_median_pct"}; None otherwise
    calibration: dict | None = None

    @property
    def ok(self) -> bool:
        return self.metrics["median_abs_error_pct"] <= self.tolerance_pct

    def to_dict(self) -> dict:
        return asdict(self) | {"networks": list(self.networks), "ok": self.ok}

    def summary(self) -> str:
        m = self.metrics
        head = (f"latency probe: {len(self.networks)} whole networks measured here in {self.seconds:.0f} s; table "
                f"{self.device!r} is off by {m['median_abs_error_pct']:.1f}% (median |error|; "
                f"{m['mean_signed_error_pct']:+.1f}% mean signed, max {m['max_abs_error_pct']:.1f}%)")
        if self.ok:
            return head + f", within the {self.tolerance_pct:g}% tolerance"
        how = "more" if m["mean_signed_error_pct"] > 0 else "less"
        busy = self.canary_slower_than_at_build_pct
        if busy is not None and busy > 2 * self.tolerance_pct:
            cause = (f"This machine is busy now (the canary block runs {busy:.0f}% slower than when the table was "
                     "built): search when it is quiet, or")
        elif (c := self.calibration) and self.table_cpu == self.this_cpu:
            cause = (f"The table is a few-shot calibration of {c['base_table']!r} from {c['networks']} networks "
                     f"timed on this CPU (model {c['model']}, leave-one-out median error "
                     f"{c['loo_median_pct']:.1f}%): the fit does not carry to these networks, or the machine was "
                     "busy when they were timed; validate it (python -m nas.latency validate) or")
        else:
            other = ("the same CPU model, but another machine or VM" if self.table_cpu == self.this_cpu
                     else f"measured on {self.table_cpu!r}, this is {self.this_cpu!r}")
            cause = f"The table is not this machine's ({other}), so a budget means another time here:"
        base = self.calibration["base_table"] if self.calibration else self.device
        calibrate = (f"python -m nas.latency calibrate --base-table {base} --here --space {self.space} "
                     f"--num-classes {self.num_classes} --name this_machine")
        build = f"python -m nas.latency build --device host --space {self.space} --num-classes {self.num_classes}"
        return (f"WARNING: {head}: it predicts {how} than this machine takes. {cause} recalibrate the table from "
                f"40 networks timed here with `{calibrate}` (about a minute) and search with --device this_machine, "
                f"or measure this machine's own table with `{build}` (longer)")


def of_this_machine(table: LatencyTable) -> bool:
    """Whether a table claims to be this machine's: measured or calibrated, with this machine's
    name or CPU (such a table can be checked, and its networks timed, here)."""
    if table.header.method not in ("measured", "calibrated"):
        return False
    return table.device == host_device_name() or table.header.cpu == cpu_model()


def probe_applies(table: LatencyTable, device_arg: str) -> bool:
    """The probe checks tables that claim to be this machine: ``--device host``, or a measured or
    calibrated table carrying this machine's name or CPU. Tables of other devices cannot be checked
    here."""
    if table.header.method not in ("measured", "calibrated"):
        return False
    return device_arg == "host" or of_this_machine(table)


def _probe_archs(space: SearchSpace, fastest: Arch | None, count: int, seed: int) -> list[tuple[str, Arch]]:
    picks = [("fastest", fastest)] if fastest is not None else []
    picks += [("smallest", space.smallest()), ("largest", space.largest())]
    rng = np.random.default_rng(seed)
    seen = {str(a) for _, a in picks}
    tries = 0
    while len(picks) < count and tries < 50 * count:
        tries += 1
        arch = space.sample(rng)
        if str(arch) not in seen:
            seen.add(str(arch))
            picks.append(("random", arch))
    return picks[:count]


def probe_table(
    table: LatencyTable,
    space: SearchSpace,
    *,
    num_classes: int,
    fastest: Arch | None = None,
    networks: int = 4,
    seed: int = 0,
    tolerance_pct: float = PROBE_TOLERANCE_PCT,
    timer_factory: Callable[[MeasureSettings], Timer] = Timer,
) -> ProbeReport:
    """Time ``networks`` whole networks of ``space`` here and compare them with ``table``.

    Args:
        table: a measured table (see :func:`probe_applies`).
        space: the search space; the networks are its fastest member on the table (``fastest``,
            when known), its smallest and largest members, then random ones.
        num_classes: classifier width of the networks (the search's data).
        networks: how many networks to time (>= 2).
        tolerance_pct: the median |error| beyond which :attr:`ProbeReport.ok` is False.
    """
    if isinstance(networks, bool) or not isinstance(networks, int) or networks < 2:
        raise ValueError(f"networks must be an integer >= 2, got {networks!r}")
    t0 = time.perf_counter()
    settings = settings_of(table)
    picks = _probe_archs(space, fastest, networks, seed)
    specs = [space.resolve(a, num_classes=num_classes) for _, a in picks]
    predicted = [table.predict_layers(walk(s)) for s in specs]
    timer = timer_factory(settings)
    h = table.header
    known = h.canary_key == canary_layer().key and h.canary_ms > 0
    slower = round(100 * (timer.canary_ms / h.canary_ms - 1), 1) if known else None
    measured = [t.ms for t in measure_networks(specs, timer, chunk_size=len(specs))]
    rows = tuple({"role": role, "arch": str(a), "predicted_ms": round(p, 4), "measured_ms": round(m, 4),
                  "error_pct": round(100 * (p - m) / m, 2)}
                 for (role, a), p, m in zip(picks, predicted, measured))
    return ProbeReport(device=table.device, space=space.name, num_classes=num_classes, table_cpu=h.cpu, this_cpu=cpu_model(), tolerance_pct=tolerance_pct,
                       metrics=error_metrics(predicted, measured), networks=rows,
                       seconds=round(time.perf_counter() - t0, 2), canary_slower_than_at_build_pct=slower,
                       calibration=_calibration_of(table))


def _calibration_of(table: LatencyTable) -> dict | None:
    cal = table.header.calibration if table.header.method == "calibrated" else None
    if not isinstance(cal, Mapping):
        return None
    try:
        return {"base_table": cal["base_table"]["device"], "networks": cal["measurements"]["networks"],
                "model": cal["model"], "loo_median_pct": cal["cross_validation"]["median_abs_error_pct"]}
    except (KeyError, TypeError):
        return None
