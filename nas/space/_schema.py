"""Schema of a search-space YAML file, validated strictly with pydantic.

Every problem in a file is reported at once, each with its YAML path, e.g.
``stages[2].kernels: 4 not in {3, 5, 7}``. Unknown keys are errors (a typo must never quietly
build a different network), and so are duplicate keys. Files are read with :mod:`nas._yaml`
(``yaml.safe_load`` with limits on size, alias expansion and depth); values quoted in errors are
shortened to :data:`MAX_SHOWN_CHARS` characters, and at most :data:`MAX_PROBLEMS` problems are listed.
"""

from __future__ import annotations

import hashlib
import json
import reprlib
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictBool, StrictInt, TypeAdapter, ValidationError
from pydantic import field_validator, model_validator
from pydantic.dataclasses import dataclass

from nas.activations import SEARCH_ACTIVATIONS
from nas._yaml import load_yaml_file
from nas.errors import ConfigError

__all__ = [
    "ALLOWED_KERNELS",
    "ALLOWED_SEARCH_ACTS",
    "StemConfig",
    "StageConfig",
    "HeadConfig",
    "SpaceConfig",
    "parse_space",
    "load_space_config",
    "SPACES_DIR",
]

ALLOWED_KERNELS = (3, 5, 7)
ALLOWED_SEARCH_ACTS = SEARCH_ACTIVATIONS
ALLOWED_STRIDES = (1, 2)
ALLOWED_POOLS = ("avg",)

#: Longest rendering of a value quoted in an error message (a huge input must not become a huge message).
MAX_SHOWN_CHARS = 80
#: Most problems listed in one error (the rest are counted).
MAX_PROBLEMS = 50

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 6
_REPR.maxstring, _REPR.maxother = MAX_SHOWN_CHARS, MAX_SHOWN_CHARS


def _short(value: Any) -> str:
    """``repr(value)``, at most :data:`MAX_SHOWN_CHARS` characters; never renders a huge value whole."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _clip(text: str, limit: int = 4 * MAX_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Directory of the spaces shipped with the project (``search_spaces/`` at the repository root).
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def _number(value: Any) -> float:
    # bool is an int subclass in Python; "true" must not become 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {_short(value)}")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]

_CFG = ConfigDict(extra="forbid")


def _fmt_set(values: tuple[Any, ...]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _choices(values: tuple[Any, ...], allowed: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    if len(values) == 0:
        raise ValueError("must list at least one choice")
    if len(set(values)) != len(values):
        raise ValueError(f"has duplicate choices {_short(list(values))}")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            shown = _short(bad[0]) if len(bad) == 1 else _short(bad)
            raise ValueError(f"{shown} not in {_fmt_set(allowed)}")
    return values


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError(f"must be positive, got {v}")
    return v


def _member(allowed: tuple[Any, ...]):
    def check(v: Any) -> Any:
        if v not in allowed:
            raise ValueError(f"{_short(v)} not in {_fmt_set(allowed)}")
        return v

    return check


def _sorted_choices(allowed: tuple[Any, ...] | None = None):
    def check(v: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(sorted(_choices(v, allowed)))

    return check


PositiveInt = Annotated[StrictInt, AfterValidator(_positive)]
Stride = Annotated[StrictInt, AfterValidator(_member(ALLOWED_STRIDES))]
SearchAct = Annotated[str, AfterValidator(_member(ALLOWED_SEARCH_ACTS))]


@dataclass(frozen=True, config=_CFG)
class StemConfig:
    out_channels: PositiveInt
    kernel: PositiveInt = 3
    stride: Stride = 2
    act: SearchAct = "hswish"


@dataclass(frozen=True, config=_CFG)
class StageConfig:
    """One stage: ``depth`` bneck blocks, the first with ``stride``, all ending in ``out_channels``.

    Each list is the set of choices; a one-element list fixes that choice.
    """

    out_channels: PositiveInt
    stride: Stride
    depths: tuple[StrictInt, ...]
    kernels: Annotated[tuple[StrictInt, ...], AfterValidator(_sorted_choices(ALLOWED_KERNELS))]
    expansions: tuple[Number, ...]
    se: Annotated[tuple[StrictBool, ...], AfterValidator(_sorted_choices())] = (False,)
    acts: tuple[str, ...] = ("relu",)
    name: str = ""

    @field_validator("depths")
    @classmethod
    def _depths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _choices(v)
        bad = [d for d in v if d < 1]
        if bad:
            raise ValueError(f"depths must be >= 1, got {_short(bad)}")
        return tuple(sorted(v))

    @field_validator("expansions")
    @classmethod
    def _expansions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        _choices(v)
        bad = [e for e in v if not 1.0 <= e <= 8.0]
        if bad:
            raise ValueError(f"expansion ratios must be in [1, 8], got {_short(bad)}")
        return tuple(sorted(v))

    @field_validator("acts")
    @classmethod
    def _acts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _choices(v, ALLOWED_SEARCH_ACTS)
        return tuple(a for a in ALLOWED_SEARCH_ACTS if a in v)  # canonical order: cheap first

    @property
    def block_choices(self) -> int:
        """Number of distinct settings one block of this stage can take."""
        return len(self.kernels) * len(self.expansions) * len(self.se) * len(self.acts)


@dataclass(frozen=True, config=_CFG)
class HeadConfig:
    final_channels: PositiveInt
    final_act: SearchAct = "hswish"
    pool: Annotated[str, AfterValidator(_member(ALLOWED_POOLS))] = "avg"
    classifier_channels: StrictInt = 0
    classifier_act: SearchAct = "hswish"
    dropout: Number = 0.2

    @field_validator("classifier_channels")
    @classmethod
    def _non_negative(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"must be >= 0 (0 = no hidden layer), got {v}")
        return v

    @field_validator("dropout")
    @classmethod
    def _dropout(cls, v: float) -> float:
        if not 0.0 <= v < 1.0:
            raise ValueError(f"must be in [0, 1), got {v}")
        return v


@dataclass(frozen=True, config=_CFG)
class SpaceConfig:
    """A whole search space as written in YAML."""

    name: str
    stem: StemConfig
    stages: tuple[StageConfig, ...]
    head: HeadConfig
    base_resolution: PositiveInt
    resolutions: tuple[StrictInt, ...]
    width_multipliers: tuple[Number, ...] = (1.0,)
    in_channels: PositiveInt = 3
    se_reduction: PositiveInt = 4
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "_-." for c in v):
            raise ValueError(f"must be a non-empty identifier (letters, digits, _ - .), got {_short(v)}")
        return v

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: tuple[StageConfig, ...]) -> tuple[StageConfig, ...]:
        if not v:
            raise ValueError("must list at least one stage")
        return v

    @field_validator("resolutions")
    @classmethod
    def _resolutions(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _choices(v)
        bad = [r for r in v if r < 8]
        if bad:
            raise ValueError(f"resolutions must be >= 8 pixels, got {_short(bad)}")
        return tuple(sorted(v))

    @field_validator("width_multipliers")
    @classmethod
    def _widths(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        _choices(v)
        bad = [w for w in v if not 0.0 < w <= 4.0]
        if bad:
            raise ValueError(f"width multipliers must be in (0, 4], got {_short(bad)}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _enough_pixels(self) -> SpaceConfig:
        total_stride = self.stem.stride
        for stage in self.stages:
            total_stride *= stage.stride
        too_small = [r for r in self.resolutions if r < total_stride]
        if too_small:
            raise ValueError(
                f"resolutions {_short(too_small)} are smaller than the network's total stride {total_stride}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def digest(self) -> str:
        """Stable hash of everything that shapes the networks (not name or description)."""
        data = self.to_dict()
        data.pop("description")
        data.pop("name")
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_ADAPTER = TypeAdapter(SpaceConfig)


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    kind = err["type"]
    msg = err["msg"]
    if kind == "unexpected_keyword_argument":
        return f"{_format_loc(loc)}: unknown key"
    if kind == "missing_argument" or kind == "missing":
        return f"{_format_loc(loc)}: required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = _clip(msg)
    if kind.endswith("_type") and "input" in err:
        msg = f"{msg}, got {_short(err['input'])}"
    return f"{_clip(_format_loc(loc))}: {msg}"


def parse_space(data: Any, source: str = "<space>") -> SpaceConfig:
    """Validate a mapping (parsed YAML) into a :class:`SpaceConfig`.

    Raises:
        ConfigError: listing every problem with its path.
    """
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): must be a mapping, got {type(data).__name__}"])
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems: list[str] = []
        seen: set[str] = set()
        errors = exc.errors(include_url=False, include_context=False)
        for err in errors:
            line = _format_error(err)
            if line not in seen:
                seen.add(line)
                problems.append(line)
        if len(problems) > MAX_PROBLEMS:
            rest = len(problems) - MAX_PROBLEMS + 1
            problems = problems[: MAX_PROBLEMS - 1] + [f"... and {rest} more problems"]
        raise ConfigError(source, problems) from None


def resolve_space_path(name_or_path: str | Path) -> Path:
    """A path to an existing YAML file, or the name of a shipped space (``mobilenetv3_large``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"search space file not found: {path}")
        return path
    candidate = SPACES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    shipped = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
    raise FileNotFoundError(
        f"unknown search space {str(name_or_path)!r}: not a file, and not one of the shipped spaces "
        f"{shipped} in {SPACES_DIR}"
    )


def load_space_config(name_or_path: str | Path) -> SpaceConfig:
    """Read and validate a space YAML file.

    The file is parsed by :func:`nas._yaml.load_yaml_file` (``yaml.safe_load`` semantics): at most
    :data:`nas._yaml.MAX_YAML_BYTES`, bounded alias expansion, no duplicate keys.

    Raises:
        FileNotFoundError: not a file and not the name of a shipped space.
        ConfigError: listing every problem with its path.
    """
    path = resolve_space_path(name_or_path)
    data = load_yaml_file(path)
    return parse_space(data, source=str(path))
