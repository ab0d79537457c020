from __future__ import annotations

import json

import pytest

from nas.errors import ArchError
from nas.space import Arch, BlockArch, load_space


@pytest.mark.parametrize("seed", range(10))
def test_json_round_trip(seed):
    arch = load_space("mobilenetv3_large").sample(seed)
    text = arch.to_json()
    assert Arch.from_json(text) == arch
    assert Arch.from_dict(json.loads(text)) == arch


@pytest.mark.parametrize("seed", range(10))
def test_string_round_trip(seed):
    arch = load_space("mobilenetv3_small32").sample(seed)
    assert Arch.from_string(arch.to_string()) == arch


def test_string_form_is_readable():
    arch = Arch(
        "s", 224, 1.0,
        ((BlockArch(3, 1, False, "relu"),), (BlockArch(5, 6, True, "hswish"), BlockArch(3, 2.5, False, "relu"))),
    )
    assert arch.to_string() == "s r224 w1 | k3e1r | k5e6sh k3e2.5r"
    assert arch.depths == (1, 2)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"space": "s", "resolution": 32, "width": 1.0}, "missing"),
        ({"space": "s", "resolution": 32, "width": 1.0, "stages": [], "extra": 1}, "unknown"),
        ({"space": "s", "resolution": "32", "width": 1.0, "stages": [[{"kernel": 3, "expand": 3, "se": False, "act": "relu"}]]}, "resolution"),
        ({"space": "s", "resolution": 32, "width": 1.0, "stages": [[{"kernel": 3, "expand": 3, "se": "no", "act": "relu"}]]}, r"stages\[0\]\[0\]: se must be"),
        ({"space": "s", "resolution": 32, "width": 1.0, "stages": [[{"kernel": 3, "expand": 3, "se": False, "act": "gelu"}]]}, "act must be one of"),
        ({"space": "s", "resolution": 32, "width": 1.0, "stages": [[]]}, "no blocks"),
        ({"space": "s", "resolution": 32, "width": 1.0, "stages": [[{"kernel": 3}]]}, "exactly the keys"),
    ],
)
def test_from_dict_is_strict(data, message):
    with pytest.raises(ArchError, match=message):
        Arch.from_dict(data)


@pytest.mark.parametrize("text", ["nonsense", "s r224 | k3e1r", "s r224 w1 | k3x1r", "s rX w1 | k3e1r"])
def test_from_string_rejects_garbage(text):
    with pytest.raises(ArchError):
        Arch.from_string(text)


def test_arch_is_frozen_and_hashable():
    arch = load_space("mobilenetv3_large").sample(0)
    with pytest.raises(AttributeError):
        arch.resolution = 1  # type: ignore[misc]
    assert len({arch, load_space("mobilenetv3_large").sample(0)}) == 1
