"""Schema of a search-space YAML file, validated strictly with pydantic.

Every problem in a file is reported at once, each with its YAML path, e.g.
``stages[2].kernels: 4 not in {3, 5, 7}``. Unknown keys are errors (a typo must never quietly
build a different network).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BeforeValidator, ConfigDict, StrictBool, StrictInt, TypeAdapter, ValidationError
from pydantic import field_validator, model_validator
from pydantic.dataclasses import dataclass

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
ALLOWED_SEARCH_ACTS = ("relu", "hswish")
ALLOWED_STRIDES = (1, 2)
ALLOWED_POOLS = ("avg",)

#: Directory of the spaces shipped with the project (``search_spaces/`` at the repository root).
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def _number(value: Any) -> float:
    # bool is an int subclass in Python; "true" must not become 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be a number, got {value!r}")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]

_CFG = ConfigDict(extra="forbid")


def _fmt_set(values: tuple[Any, ...]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _choices(values: tuple[Any, ...], allowed: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
    if len(values) == 0:
        raise ValueError("must list at least one choice")
    if len(set(values)) != len(values):
        raise ValueError(f"has duplicate choices {list(values)}")
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            shown = repr(bad[0]) if isinstance(bad[0], str) else bad[0]
            if len(bad) > 1:
                shown = bad
            raise ValueError(f"{shown} not in {_fmt_set(allowed)}")
    return values


def _positive(v: int) -> int:
    if v <= 0:
        raise ValueError(f"must be positive, got {v}")
    return v


def _member(allowed: tuple[Any, ...]):
    def check(v: Any) -> Any:
        if v not in allowed:
            raise ValueError(f"{v!r} not in {_fmt_set(allowed)}")
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
            raise ValueError(f"depths must be >= 1, got {bad}")
        return tuple(sorted(v))

    @field_validator("expansions")
    @classmethod
    def _expansions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        _choices(v)
        bad = [e for e in v if not 1.0 <= e <= 8.0]
        if bad:
            raise ValueError(f"expansion ratios must be in [1, 8], got {bad}")
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
            raise ValueError(f"must be a non-empty identifier (letters, digits, _ - .), got {v!r}")
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
            raise ValueError(f"resolutions must be >= 8 pixels, got {bad}")
        return tuple(sorted(v))

    @field_validator("width_multipliers")
    @classmethod
    def _widths(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        _choices(v)
        bad = [w for w in v if not 0.0 < w <= 4.0]
        if bad:
            raise ValueError(f"width multipliers must be in (0, 4], got {bad}")
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _enough_pixels(self) -> SpaceConfig:
        total_stride = self.stem.stride
        for stage in self.stages:
            total_stride *= stage.stride
        too_small = [r for r in self.resolutions if r < total_stride]
        if too_small:
            raise ValueError(
                f"resolutions {too_small} are smaller than the network's total stride {total_stride}"
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
    if kind.endswith("_type") and "input" in err:
        msg = f"{msg}, got {err['input']!r}"
    return f"{_format_loc(loc)}: {msg}"


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
        problems = []
        for err in exc.errors():
            line = _format_error(err)
            if line not in problems:
                problems.append(line)
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
    """Read and validate a space YAML file (with ``yaml.safe_load``)."""
    path = resolve_space_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_space(data, source=str(path))
