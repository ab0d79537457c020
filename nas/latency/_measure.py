"""Timing ONNX models with ONNX Runtime: one protocol for table keys and whole networks.

Protocol (recorded in every table header):

* CPU execution provider, ``intra_op_threads`` (default 1) and 1 inter-op thread, sequential
  execution, full graph optimisation, denormals flushed to zero;
* each model is timed ``rounds x repeats`` times; the rounds are *interleaved* across the models
  of a chunk, so a burst of load from another process spreads over many keys instead of landing
  on one; every round starts with ``warmup`` untimed runs (a network needs ~4 runs to reach its
  steady state after other models have evicted its weights from the caches);
* a fixed *canary* block runs inside every chunk; when it is more than ``tolerance`` slower than its
  baseline the chunk was disturbed and is measured again (up to ``max_retries`` times);
* the statistic is the median of all samples, the spread the interquartile range;
* the per-call overhead (one ReLU on one number) is measured the same way, so that a network,
  which runs as one call, is predicted as ``sum(keys) - (n - 1) * overhead``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence


from nas.latency._modules import canary_layer, layer_module, model_bytes, onnx_bytes, overhead_module
from nas.latency._runner import GRAPH_LEVELS, ChunkTimer, MeasureSettings, Timing, cpu_model, make_session
from nas.netspec import NetworkSpec
from nas.nn import build_network

__all__ = [
    "MeasureSettings",
    "Timing",
    "Timer",
    "make_session",
    "measure_networks",
    "cpu_model",
    "host_device_name",
    "GRAPH_LEVELS",
]


class Timer(ChunkTimer):
    """:class:`ChunkTimer` with the canary block and the overhead model exported here.

    The timing loop itself lives in ``_runner.py``, the file a measurement bundle carries, so the
    host and a target device follow one implementation of the protocol.
    """

    def __init__(self, settings: MeasureSettings, sleep: Callable[[float], None] = time.sleep) -> None:
        om, oshape = overhead_module()
        canary = canary_layer()
        super().__init__(
            (make_session(onnx_bytes(layer_module(canary), canary.in_shape), settings), canary.in_shape),
            (make_session(onnx_bytes(om, oshape), settings), oshape),
            settings,
            sleep=sleep,
        )

    def time_models(self, models: Sequence[tuple[bytes, tuple[int, ...]]]) -> list[Timing]:
        """Time each ``(onnx_bytes, input_shape)``; re-measure the chunk if the canary says disturbed.

        ``input_shape`` is ``(C, H, W)``; ``(1, C, H, W)`` (batch 1 spelled out) is accepted too.
        """
        sessions = []
        for m, shape in models:
            shape = tuple(shape)
            if len(shape) == 4 and shape[0] == 1:
                shape = shape[1:]
            if len(shape) != 3:
                raise ValueError(f"input_shape must be (C, H, W) or (1, C, H, W), got {shape}")
            sessions.append((make_session(m, self.settings), shape))
        return self.time_sessions(sessions)


def measure_networks(
    specs: Sequence[NetworkSpec], timer: Timer, *, chunk_size: int = 10, progress: bool = False, desc: str = "networks"
) -> list[Timing]:
    """Export whole networks (the static builder, as deployed) and time them with ``timer``."""
    from tqdm import tqdm

    out: list[Timing] = []
    with tqdm(total=len(specs), unit="net", desc=desc, disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(specs), chunk_size):
            models = []
            for spec in specs[start : start + chunk_size]:
                shape = (spec.in_channels, spec.resolution, spec.resolution)
                models.append((model_bytes(build_network(spec), shape, timer.settings.precision), shape))
            out.extend(timer.time_models(models))
            bar.update(len(models))
    return out


def host_device_name() -> str:
    """A table name for this machine, from its CPU: e.g. ``intel_xeon_avx512_2c``."""
    text = cpu_model().lower()
    name, *rest = text.split(",")
    name = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\bwith\b.*$", " ", name)
    parts = re.findall(r"[a-z0-9]+", name)
    isa = rest[1].strip() if len(rest) > 1 else ""
    cores = os.cpu_count() or 1
    return "_".join([*parts[:6], *([isa] if isa else []), f"{cores}c"])
