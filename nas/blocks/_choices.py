"""What the searchable kinds share: validators of their YAML choice fields and of their arch fields.

A kind's *choices* (the fields a search-space stage lists for it, e.g. ``kernels: [3, 5, 7]``) are
a frozen pydantic dataclass validated strictly; every list is a set of choices, sorted from the
smallest to the largest setting (``False`` before ``True``, ReLU before h-swish). A kind's *arch*
is one block's pick from them, a frozen dataclass whose fields are the choice axes.
"""

from __future__ import annotations

import reprlib
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictBool, StrictInt

from nas.activations import SEARCH_ACTIVATIONS, TOKEN_CODES
from nas.errors import ArchError

__all__ = [
    "MAX_SHOWN_CHARS",
    "CHOICES_CONFIG",
    "short",
    "fmt_set",
    "choice_list",
    "Number",
    "PositiveInt",
    "SearchAct",
    "sorted_choices",
    "member",
    "Expansions",
    "SEChoices",
    "ActChoices",
    "check_int",
    "check_common",
    "act_code",
]

#: Longest rendering of a value quoted in an error message (a huge input must not become a huge message).
MAX_SHOWN_CHARS = 80

#: Pydantic config of every choices dataclass: unknown keys are errors.
CHOICES_CONFIG = ConfigDict(extra="forbid")

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 6
_REPR.maxstring, _REPR.maxother = MAX_SHOWN_CHARS, MAX_SHOWN_CHARS


def short(value: Any) -> str:
    """``repr(value)``, at most :data:`MAX_SHOWN_CHARS` characters; never renders a huge value whole."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def fmt_set(values: tuple[Any, ...]) -> str:
    return "{" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "}"


def choice_list(values: tuple[Any, ...], allowed: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    """``values`` unchanged if it is a non-empty list of distinct choices from ``allowed``."""
    if len(values) == 0:
        raise ValueError("must list at least one choice")
    if len(set(values)) != len(values):
        raise ValueError(f"has duplicate choices {short(list(values))}")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            shown = short(bad[0]) if len(bad) == 1 else short(bad)
            raise ValueError(f"{shown} not in {fmt_set(allowed)}")
    return values


def _number(value: Any) -> float:
    # bool is an int subclass in Python; "true" must not become 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {short(value)}")
    return float(value)


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError(f"must be positive, got {v}")
    return v


def member(allowed: tuple[Any, ...]):
    """Validator: the value is one of ``allowed``."""

    def check(v: Any) -> Any:
        if v not in allowed:
            raise ValueError(f"{short(v)} not in {fmt_set(allowed)}")
        return v

    return check


def sorted_choices(allowed: tuple[Any, ...] | None = None):
    """Validator: a choice list (see :func:`choice_list`), returned sorted ascending."""

    def check(v: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(sorted(choice_list(v, allowed)))

    return check


def _expansions(v: tuple[float, ...]) -> tuple[float, ...]:
    choice_list(v)
    bad = [e for e in v if not 1.0 <= e <= 8.0]
    if bad:
        raise ValueError(f"expansion ratios must be in [1, 8], got {short(bad)}")
    return tuple(sorted(v))


def _acts(v: tuple[str, ...]) -> tuple[str, ...]:
    choice_list(v, SEARCH_ACTIVATIONS)
    return tuple(a for a in SEARCH_ACTIVATIONS if a in v)  # canonical order: cheap first


Number = Annotated[float, BeforeValidator(_number)]
PositiveInt = Annotated[StrictInt, AfterValidator(_positive)]
SearchAct = Annotated[str, AfterValidator(member(SEARCH_ACTIVATIONS))]
#: Expansion ratios (mid channels = make_divisible(input channels x ratio)), each in [1, 8].
Expansions = Annotated[tuple[Number, ...], AfterValidator(_expansions)]
#: Squeeze-excitation off / on.
SEChoices = Annotated[tuple[StrictBool, ...], AfterValidator(sorted_choices())]
#: Activations of the block (``relu``, ``hswish``).
ActChoices = Annotated[tuple[str, ...], AfterValidator(_acts)]


# -- arch fields ----------------------------------------------------------------------------------------
def check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArchError(f"{name} must be an integer, got {value!r}")


def check_common(arch: Any) -> None:
    """Check (and normalise) the ``expand``, ``se`` and ``act`` fields every searchable kind has."""
    if isinstance(arch.expand, bool) or not isinstance(arch.expand, (int, float)):
        raise ArchError(f"expand must be a number, got {arch.expand!r}")
    object.__setattr__(arch, "expand", float(arch.expand))
    if not isinstance(arch.se, bool):
        raise ArchError(f"se must be true or false, got {arch.se!r}")
    if arch.act not in TOKEN_CODES:
        raise ArchError(f"act must be one of {tuple(TOKEN_CODES)}, got {arch.act!r}")


def act_code(act: str) -> str:
    return TOKEN_CODES[act]
