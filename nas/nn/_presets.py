"""Reference networks as published: MobileNetV3-Large/Small, MobileNetV2, MnasNet-A1, MobileNetV4-Conv-S/M.

Each preset is one call with the constants of its paper's table. A width multiplier scales every
channel count with ``make_divisible(c * width, 8)``; the last hidden layer (1280 / 1024) keeps its
width for multipliers <= 1, as the reference implementations do.

Names in the registry may carry a width suffix: ``mobilenetv3_large_0.75``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from nas.blocks import ConvSpec, FusedSpec, UIBSpec
from nas.netspec import (BlockSpec, HeadSpec, NetworkSpec, StemSpec, classifier_hidden, expanded_channels,
                         scaled_channels, se_units)

__all__ = ["PRESETS", "preset_names", "get_preset", "is_preset"]


class _Row(NamedTuple):
    kernel: int
    mid: int  # expanded channels, or an expansion ratio when ``ratio`` is used by the caller
    out: int
    se: bool
    act: str
    stride: int


def _scale(c: int, width: float) -> int:
    return scaled_channels(c, width)


def _hidden(c: int, width: float) -> int:
    return classifier_hidden(c, width)


def _mobilenetv3(
    name: str, rows: list[_Row], stem: int, final: int, hidden: int, width: float,
    num_classes: int, resolution: int,
) -> NetworkSpec:
    stem_spec = StemSpec(out_channels=_scale(stem, width), kernel=3, stride=2, act="hswish")
    blocks = []
    in_ch = stem_spec.out_channels
    for r in rows:
        mid = _scale(r.mid, width)
        out = _scale(r.out, width)
        blocks.append(
            BlockSpec(
                in_channels=in_ch,
                mid_channels=mid,
                out_channels=out,
                kernel=r.kernel,
                stride=r.stride,
                se_channels=se_units(mid) if r.se else 0,
                act=r.act,
            )
        )
        in_ch = out
    head = HeadSpec(
        final_channels=_scale(final, width),
        final_act="hswish",
        classifier_channels=_hidden(hidden, width),
        classifier_act="hswish",
        dropout=0.2,
    )
    return NetworkSpec(name, 3, resolution, num_classes, stem_spec, tuple(blocks), head)


# MobileNetV3 paper (Howard et al., 2019), Table 1: kernel, exp size, #out, SE, NL, stride.
_V3_LARGE = [
    _Row(3, 16, 16, False, "relu", 1),
    _Row(3, 64, 24, False, "relu", 2),
    _Row(3, 72, 24, False, "relu", 1),
    _Row(5, 72, 40, True, "relu", 2),
    _Row(5, 120, 40, True, "relu", 1),
    _Row(5, 120, 40, True, "relu", 1),
    _Row(3, 240, 80, False, "hswish", 2),
    _Row(3, 200, 80, False, "hswish", 1),
    _Row(3, 184, 80, False, "hswish", 1),
    _Row(3, 184, 80, False, "hswish", 1),
    _Row(3, 480, 112, True, "hswish", 1),
    _Row(3, 672, 112, True, "hswish", 1),
    _Row(5, 672, 160, True, "hswish", 2),
    _Row(5, 960, 160, True, "hswish", 1),
    _Row(5, 960, 160, True, "hswish", 1),
]

# MobileNetV3 paper, Table 2 (MobileNetV3-Small).
_V3_SMALL = [
    _Row(3, 16, 16, True, "relu", 2),
    _Row(3, 72, 24, False, "relu", 2),
    _Row(3, 88, 24, False, "relu", 1),
    _Row(5, 96, 40, True, "hswish", 2),
    _Row(5, 240, 40, True, "hswish", 1),
    _Row(5, 240, 40, True, "hswish", 1),
    _Row(5, 120, 48, True, "hswish", 1),
    _Row(5, 144, 48, True, "hswish", 1),
    _Row(5, 288, 96, True, "hswish", 2),
    _Row(5, 576, 96, True, "hswish", 1),
    _Row(5, 576, 96, True, "hswish", 1),
]


def mobilenetv3_large(width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    return _mobilenetv3(
        f"mobilenetv3_large_{width:g}", _V3_LARGE, 16, 960, 1280, width, num_classes, resolution
    )


def mobilenetv3_small(width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    return _mobilenetv3(
        f"mobilenetv3_small_{width:g}", _V3_SMALL, 16, 576, 1024, width, num_classes, resolution
    )


def _expanded_stages(
    name: str,
    stages: list[tuple[int, int, int, int, int, bool]],
    act: str,
    se_of_input: bool,
    width: float,
    num_classes: int,
    resolution: int,
) -> NetworkSpec:
    """MobileNetV2 / MnasNet tables: rows (expansion t, out c, repeats n, stride s, kernel, SE)."""
    stem = StemSpec(out_channels=_scale(32, width), kernel=3, stride=2, act=act)
    blocks = []
    in_ch = stem.out_channels
    for t, c, n, s, k, se in stages:
        out = _scale(c, width)
        for i in range(n):
            mid = in_ch * t
            # MnasNet's SE squeezes to a quarter of the block's *input* channels.
            se_ch = max(1, int(in_ch * 0.25)) if se and se_of_input else 0
            blocks.append(
                BlockSpec(
                    in_channels=in_ch,
                    mid_channels=mid,
                    out_channels=out,
                    kernel=k,
                    stride=s if i == 0 else 1,
                    se_channels=se_ch,
                    act=act,
                )
            )
            in_ch = out
    head = HeadSpec(
        final_channels=_hidden(1280, width),
        final_act=act,
        classifier_channels=0,
        classifier_act=act,
        dropout=0.2,
    )
    return NetworkSpec(name, 3, resolution, num_classes, stem, tuple(blocks), head)


def mobilenetv2(width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """MobileNetV2 (Sandler et al., 2018), Table 2; ReLU6 everywhere, no SE."""
    rows = [
        (1, 16, 1, 1, 3, False),
        (6, 24, 2, 2, 3, False),
        (6, 32, 3, 2, 3, False),
        (6, 64, 4, 2, 3, False),
        (6, 96, 3, 1, 3, False),
        (6, 160, 3, 2, 3, False),
        (6, 320, 1, 1, 3, False),
    ]
    return _expanded_stages(f"mobilenetv2_{width:g}", rows, "relu6", False, width, num_classes, resolution)


def mnasnet_a1(width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """MnasNet-A1 (Tan et al., 2019), Figure 7: SepConv, then MBConv stages; ReLU; SE on 3 stages."""
    rows = [
        (1, 16, 1, 1, 3, False),  # SepConv (k3x3): depthwise + linear projection
        (6, 24, 2, 2, 3, False),
        (3, 40, 3, 2, 5, True),
        (6, 80, 4, 2, 3, False),
        (6, 112, 2, 1, 3, True),
        (6, 160, 3, 2, 5, True),
        (6, 320, 1, 1, 3, False),
    ]
    return _expanded_stages(f"mnasnet_a1_{width:g}", rows, "relu", True, width, num_classes, resolution)


# MobileNetV4 (Qin et al., 2024), Tables 10-11 (Conv-S, Conv-M), as timm's ``_gen_mobilenet_v4``
# decodes them: conv(kernel, stride, out), fused(kernel, stride, expansion, out) and
# uib(start kernel, mid kernel, stride, expansion, out) with 0 for an absent depthwise conv. Each row
# makes its block from the input channels and the width multiplier. Expansions multiply the block's
# input channels (mid = make_divisible(in * e)). Every block uses ReLU; no SE. The head is a 1x1 conv
# to 960, global pooling, a 1280-unit hidden layer (the paper's has BatchNorm, 2,560 parameters more
# than ours), the classifier.
_V4Row = Callable[[int, float], Any]


def _conv(kernel: int, stride: int, out: int) -> _V4Row:
    return lambda c, w: ConvSpec(c, _scale(out, w), kernel, stride, "relu")


def _fused(kernel: int, stride: int, e: float, out: int) -> _V4Row:
    return lambda c, w: FusedSpec(c, expanded_channels(c, e), _scale(out, w), kernel, stride, "relu")


def _uib(start: int, mid: int, stride: int, e: float, out: int) -> _V4Row:
    return lambda c, w: UIBSpec(c, expanded_channels(c, e), _scale(out, w), start, mid, stride, 0, "relu")


_V4_CONV_SMALL = [
    _conv(3, 2, 32), _conv(1, 1, 32),
    _conv(3, 2, 96), _conv(1, 1, 64),
    _uib(5, 5, 2, 3.0, 96), *[_uib(0, 3, 1, 2.0, 96)] * 4, _uib(3, 0, 1, 4.0, 96),
    _uib(3, 3, 2, 6.0, 128), _uib(5, 5, 1, 4.0, 128), _uib(0, 5, 1, 4.0, 128), _uib(0, 5, 1, 3.0, 128),
    *[_uib(0, 3, 1, 4.0, 128)] * 2,
]
_V4_CONV_MEDIUM = [
    _fused(3, 2, 4.0, 48),
    _uib(3, 5, 2, 4.0, 80), _uib(3, 3, 1, 2.0, 80),
    _uib(3, 5, 2, 6.0, 160), *[_uib(3, 3, 1, 4.0, 160)] * 2, _uib(3, 5, 1, 4.0, 160),
    _uib(3, 3, 1, 4.0, 160), _uib(3, 0, 1, 4.0, 160), _uib(0, 0, 1, 2.0, 160), _uib(3, 0, 1, 4.0, 160),
    _uib(5, 5, 2, 6.0, 256), _uib(5, 5, 1, 4.0, 256), *[_uib(3, 5, 1, 4.0, 256)] * 2,
    _uib(0, 0, 1, 4.0, 256), _uib(3, 0, 1, 4.0, 256), _uib(3, 5, 1, 2.0, 256), _uib(5, 5, 1, 4.0, 256),
    *[_uib(0, 0, 1, 4.0, 256)] * 2, _uib(5, 0, 1, 2.0, 256),
]


def _mobilenetv4(name: str, rows: list[_V4Row], width: float, num_classes: int, resolution: int) -> NetworkSpec:
    stem = StemSpec(out_channels=_scale(32, width), kernel=3, stride=2, act="relu")
    blocks: list = []
    c = stem.out_channels
    for row in rows:
        blocks.append(row(c, width))
        c = blocks[-1].out_channels
    head = HeadSpec(final_channels=_scale(960, width), final_act="relu", classifier_channels=_hidden(1280, width),
                    classifier_act="relu", dropout=0.2)
    return NetworkSpec(name, 3, resolution, num_classes, stem, tuple(blocks), head)


def mobilenetv4_conv_small(width: float = 1.0, num_classes: int = 1000, resolution: int = 224) -> NetworkSpec:
    """MobileNetV4-Conv-S (paper: 3.8 M parameters, 0.2 G MACs at 224 px)."""
    return _mobilenetv4("mobilenetv4_conv_small", _V4_CONV_SMALL, width, num_classes, resolution)


def mobilenetv4_conv_medium(width: float = 1.0, num_classes: int = 1000, resolution: int = 256) -> NetworkSpec:
    """MobileNetV4-Conv-M (paper: 9.2 M parameters, 1.0 G MACs at 256 px)."""
    return _mobilenetv4("mobilenetv4_conv_medium", _V4_CONV_MEDIUM, width, num_classes, resolution)


PRESETS: dict[str, Callable[..., NetworkSpec]] = {
    "mobilenetv3_large": mobilenetv3_large,
    "mobilenetv3_small": mobilenetv3_small,
    "mobilenetv2": mobilenetv2,
    "mnasnet_a1": mnasnet_a1,
    "mobilenetv4_conv_small": mobilenetv4_conv_small,
    "mobilenetv4_conv_medium": mobilenetv4_conv_medium,
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def _split(name: str) -> tuple[str, float]:
    if name in PRESETS:
        return name, 1.0
    base, _, suffix = name.rpartition("_")
    if base in PRESETS:
        try:
            width = float(suffix)
        except ValueError:
            pass
        else:
            if width > 0:
                return base, width
    raise KeyError(
        f"unknown preset {name!r}; known: {preset_names()} (optionally with a width suffix, "
        f"e.g. 'mobilenetv3_large_0.75')"
    )


def is_preset(name: str) -> bool:
    try:
        _split(name)
    except KeyError:
        return False
    return True


def get_preset(name: str, *, num_classes: int = 1000, resolution: int | None = None) -> NetworkSpec:
    """Return the :class:`NetworkSpec` of a reference network by name (``mobilenetv3_small_0.75``),
    at ``resolution`` (default: its paper's, 224 px; 256 px for MobileNetV4-Conv-M)."""
    base, width = _split(name)
    extra = {} if resolution is None else {"resolution": resolution}
    return PRESETS[base](width=width, num_classes=num_classes, **extra)
