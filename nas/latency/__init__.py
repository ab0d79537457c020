"""Latency lookup tables measured with ONNX Runtime: build, predict, validate, calibrate, bundle.

Public API (what the search needs)::

    from nas.latency import load_table, predict_latency, parse_budget, min_latency

    table = load_table("pixel_cpu", space=space)      # checked against the space's digest
    ms = predict_latency(table, arch, space=space)    # Arch or NetworkSpec
    budget = parse_budget("20ms")                     # -> 20.0
    floor_ms, fastest = min_latency(table, space)     # no member is faster than this
"""

from nas.latency._budget import UNITS, parse_budget
from nas.latency._coverage import DEFAULT_NUM_CLASSES, REFERENCE_NETWORKS, space_layers
from nas.latency._measure import MeasureSettings, Timer, Timing, cpu_model, host_device_name
from nas.latency._predict import load_table, min_latency, predict_latency, resolve_device
from nas.latency._table import (
    TABLES_DIR,
    Entry,
    LatencyTable,
    LatencyTableError,
    MissingKeyError,
    SpaceRef,
    TableHeader,
    UnknownDeviceError,
    available_devices,
    table_path,
)
from nas.latency._modules import onnx_bytes
from nas.latency._probe import PROBE_TOLERANCE_PCT, ProbeReport, of_this_machine, probe_applies, probe_table
from nas.latency._validate import settings_of, validate_table

__all__ = [
    "DEFAULT_NUM_CLASSES",
    "REFERENCE_NETWORKS",
    "TABLES_DIR",
    "UNITS",
    "Entry",
    "LatencyTable",
    "LatencyTableError",
    "MeasureSettings",
    "MissingKeyError",
    "PROBE_TOLERANCE_PCT",
    "ProbeReport",
    "SpaceRef",
    "TableHeader",
    "Timer",
    "Timing",
    "UnknownDeviceError",
    "available_devices",
    "cpu_model",
    "host_device_name",
    "load_table",
    "min_latency",
    "of_this_machine",
    "parse_budget",
    "predict_latency",
    "probe_applies",
    "probe_table",
    "resolve_device",
    "onnx_bytes",
    "settings_of",
    "space_layers",
    "table_path",
    "validate_table",
]
