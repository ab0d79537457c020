from __future__ import annotations

import math

import pytest

from nas.latency import parse_budget


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("20ms", 20.0),
        ("20 ms", 20.0),
        (" 20ms ", 20.0),
        ("0.02s", 20.0),
        ("20", 20.0),
        ("12.5", 12.5),
        ("500us", 0.5),
        ("500µs", 0.5),
        ("1e1ms", 10.0),
        (20, 20.0),
        (7.5, 7.5),
    ],
)
def test_budgets_with_units(text, ms):
    assert math.isclose(parse_budget(text), ms)


@pytest.mark.parametrize(
    "text",
    ["", "ms", "fast", "20 m", "20mss", "20 MS", "-5ms", "0", "0ms", "nan", "inf", "20ms20", "1,5ms", "20 min"],
)
def test_nonsense_is_rejected(text):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(text)


@pytest.mark.parametrize("value", [True, None, -1, 0.0, float("nan"), float("inf"), [20]])
def test_bad_types_and_values_are_rejected(value):
    with pytest.raises(ValueError, match="budget"):
        parse_budget(value)
