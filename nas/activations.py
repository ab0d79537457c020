"""The activations, in one place: their names, which ones a search space may choose, their
one-letter codes in arch tokens, and their torch implementations (module and functional).

``relu6`` is MobileNetV2's (presets only); the search spaces choose between ``relu`` and
``hswish`` (h-swish(x) = x * ReLU6(x + 3) / 6) as MobileNetV3 does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a network is built, not where names are checked
    import torch
    from torch import nn

__all__ = ["ACTIVATIONS", "SEARCH_ACTIVATIONS", "TOKEN_CODES", "CODE_ACTIVATIONS", "make_activation", "apply_activation"]

#: Every activation the builder knows.
ACTIVATIONS = ("relu", "relu6", "hswish")

#: The activations a search space may choose, cheap first (the canonical order of a choice list).
SEARCH_ACTIVATIONS = ("relu", "hswish")

#: One-letter code of each searchable activation in an arch token (``k5e6sh``: h-swish).
TOKEN_CODES = {"relu": "r", "hswish": "h"}
CODE_ACTIVATIONS = {code: name for name, code in TOKEN_CODES.items()}


def _unknown(name: object, *, linear: bool = False) -> ValueError:
    allowed = ", ".join(ACTIVATIONS) + (" or None" if linear else "")
    return ValueError(f"activation must be one of {allowed}; got {name!r}")


def make_activation(name: str) -> nn.Module:
    """The activation as an in-place ``nn.Module`` (static networks)."""
    from torch import nn

    modules = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}
    if name not in modules:
        raise _unknown(name)
    return modules[name](inplace=True)


def apply_activation(x: torch.Tensor, name: str | None, *, inplace: bool = False) -> torch.Tensor:
    """The activation applied functionally (elastic supernet layers); ``None`` is linear.

    ``inplace`` as the static layers do, for outputs nothing else holds (BN, linear outputs).
    """
    import torch.nn.functional as F

    if name is None:
        return x
    functions = {"relu": F.relu, "relu6": F.relu6, "hswish": F.hardswish}
    if name not in functions:
        raise _unknown(name, linear=True)
    return functions[name](x, inplace=inplace)
