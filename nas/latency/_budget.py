"""Latency budgets with units: ``20ms``, ``0.02s``, ``500us``, or a bare number meaning milliseconds."""

from __future__ import annotations

import math
import re

__all__ = ["parse_budget", "UNITS"]

#: Accepted units and their value in milliseconds.
UNITS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}

_BUDGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$")


def parse_budget(value: str | float | int) -> float:
    """Return a latency budget in milliseconds.

    Args:
        value: ``"20ms"``, ``"20 ms"``, ``"0.02s"``, ``"500us"``, ``"20"`` or a number (ms).

    Raises:
        ValueError: for anything else: unknown units, negative/zero/non-finite values, booleans.
    """
    if isinstance(value, bool):
        raise ValueError(f"latency budget must be a number or a string like '20ms', got {value!r}")
    if isinstance(value, (int, float)):
        ms = float(value)
    elif isinstance(value, str):
        m = _BUDGET_RE.match(value)
        if not m:
            raise ValueError(
                f"latency budget {value!r} is not a positive number with an optional unit "
                f"({', '.join(UNITS)}), e.g. '20ms', '0.02s' or '20' (= ms)"
            )
        unit = m[2] or "ms"
        if unit not in UNITS:
            raise ValueError(
                f"latency budget {value!r}: unknown unit {unit!r}; use one of {', '.join(UNITS)}"
            )
        ms = float(m[1]) * UNITS[unit]
    else:
        raise ValueError(
            f"latency budget must be a number or a string like '20ms', got {type(value).__name__}"
        )
    if not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"latency budget must be a positive, finite time, got {value!r}")
    return ms
