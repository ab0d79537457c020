"""The shared channel rules and field checks of network specs (every block kind uses them).

``make_divisible`` is the MobileNet reference implementations' rounding (``_make_divisible``):
width multipliers, expansion ratios and SE sizes all round through it.
"""

from __future__ import annotations

from nas.activations import ACTIVATIONS

__all__ = ["make_divisible", "expanded_channels", "se_units", "scaled_channels", "classifier_hidden", "check_positive", "check_act"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def expanded_channels(in_channels: int, expand: float) -> int:
    """A block's mid (expanded) channels: ``make_divisible(in x expand)``; ratio 1 keeps the input's."""
    return in_channels if expand == 1.0 else make_divisible(in_channels * expand)


def se_units(mid_channels: int, reduction: int = 4) -> int:
    """Hidden units of a squeeze-excitation on ``mid_channels``: ``make_divisible(mid / reduction)``."""
    return make_divisible(mid_channels / reduction)


def scaled_channels(channels: int, width: float) -> int:
    """A layer's channels under width multiplier ``width``: ``make_divisible(channels x width)``."""
    return make_divisible(channels * width)


def classifier_hidden(channels: int, width: float) -> int:
    """The classifier's hidden layer under ``width``: kept for multipliers <= 1 (MobileNetV2/V3),
    scaled above; 0 (no hidden layer) stays 0."""
    return channels if width <= 1.0 or not channels else make_divisible(channels * width)


def check_positive(owner: str, **values: int) -> None:
    """Raise ``ValueError`` naming ``owner.field`` unless every value is a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def check_act(owner: str, name: str, act: str) -> None:
    if act not in ACTIVATIONS:
        raise ValueError(f"{owner}.{name} must be one of {ACTIVATIONS}, got {act!r}")
