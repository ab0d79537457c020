from __future__ import annotations

from nas.nn import get_preset
from nas.shapes import conv_out, walk
from nas.space import Arch


def test_conv_out():
    assert conv_out(224, 3, 2) == 112
    assert conv_out(7, 5, 2) == 4
    assert conv_out(13, 7, 1) == 13


def test_keys_for_a_known_arch(tiny_space):
    arch = Arch.from_string("tiny r16 w1 | k3e1r | k5e6sh k3e3r | k3e3h")
    layers = walk(tiny_space.resolve(arch, num_classes=10))
    assert [l.key for l in layers] == [
        "stem-i3x16x16-o8x8x8-k3-s2-hswish",
        "bneck-i8x8x8-o8x8x8-e8-k3-s1-se0-relu-r1",
        "bneck-i8x8x8-o16x4x4-e48-k5-s2-se16-hswish-r0",
        "bneck-i16x4x4-o16x4x4-e48-k3-s1-se0-relu-r1",
        "bneck-i16x4x4-o24x4x4-e48-k3-s1-se0-hswish-r0",
        "final_conv-i24x4x4-o32x4x4-hswish",
        "classifier-i32x4x4-o10x1x1-h48-hswish",
    ]


def test_resolution_override_changes_shapes_only():
    spec = get_preset("mobilenetv3_small")
    a, b = walk(spec, 224), walk(spec, 160)
    assert len(a) == len(b)
    assert a[0].out_shape == (16, 112, 112) and b[0].out_shape == (16, 80, 80)
    assert b[-2].in_shape == (96, 5, 5)
    assert [l.kernel for l in a] == [l.kernel for l in b]
