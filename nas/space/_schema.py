"""Schema of a search-space YAML file, validated strictly with pydantic.

A stage lists its block choices either flat (``block: uib`` and that kind's fields beside the
stage's own; no ``block`` means ``bneck``) or, to let its blocks choose between kinds, as a list
``choices: [{block: bneck, kernels: ...}, {block: uib, start_kernels: ...}]``. Each kind's fields
are its own (:mod:`nas.blocks`, ``choices_type``) and validated by it.

Every problem in a file is reported at once, each with its YAML path, e.g.
``stages[2].kernels: 4 not in {3, 5, 7}``. Unknown keys are errors (a typo must never quietly
build a different network), and so are duplicate keys. Files are read with :mod:`nas._yaml`
(``yaml.safe_load`` with limits on size, alias expansion and depth); values quoted in errors are
shortened to :data:`MAX_SHOWN_CHARS` characters, and at most :data:`MAX_PROBLEMS` problems are listed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, StrictInt, TypeAdapter, ValidationError
from pydantic import field_validator, model_validator
from pydantic.dataclasses import dataclass

from nas.activations import SEARCH_ACTIVATIONS
from nas.blocks import (
    BNECK_KERNELS,
    DEFAULT_KIND,
    MAX_SHOWN_CHARS,
    Number,
    PositiveInt,
    SearchAct,
    choice_list,
    kind_of_choices,
    member,
    searchable_kind,
    searchable_kinds,
    short,
)
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

#: The bneck's kernels (kept for callers of the time before block kinds; see ``nas.blocks``).
ALLOWED_KERNELS = BNECK_KERNELS
ALLOWED_SEARCH_ACTS = SEARCH_ACTIVATIONS
ALLOWED_STRIDES = (1, 2)
ALLOWED_POOLS = ("avg",)

#: Most problems listed in one error (the rest are counted).
MAX_PROBLEMS = 50

_short = short


def _clip(text: str, limit: int = 4 * MAX_SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Directory of the spaces shipped with the project (``search_spaces/`` at the repository root).
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"

_CFG = ConfigDict(extra="forbid")
_choices = choice_list
Stride = Annotated[StrictInt, AfterValidator(member(ALLOWED_STRIDES))]


@dataclass(frozen=True, config=_CFG)
class StemConfig:
    out_channels: PositiveInt
    kernel: PositiveInt = 3
    stride: Stride = 2
    act: SearchAct = "hswish"


@dataclass(frozen=True, config=_CFG)
class StageConfig:
    """One stage: ``depth`` blocks, the first with ``stride``, all ending in ``out_channels``.

    ``choices`` holds one validated choices object per block kind the stage offers (see the
    module docstring); each list in them is a set of choices, a one-element list fixes it.
    """

    out_channels: PositiveInt
    stride: Stride
    depths: tuple[StrictInt, ...]
    choices: tuple[Any, ...]
    name: str = ""

    @field_validator("depths")
    @classmethod
    def _depths(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _choices(v)
        bad = [d for d in v if d < 1]
        if bad:
            raise ValueError(f"depths must be >= 1, got {_short(bad)}")
        return tuple(sorted(v))

    @field_validator("choices")
    @classmethod
    def _kinds(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if not v:
            raise ValueError("must list the choices of at least one block kind")
        names = []
        for c in v:
            try:
                names.append(kind_of_choices(c).name)
            except TypeError as exc:
                raise ValueError(str(exc)) from None
        if len(set(names)) != len(names):
            raise ValueError(f"lists a block kind twice: {names}")
        return tuple(v)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Names of the block kinds the stage offers."""
        return tuple(kind_of_choices(c).name for c in self.choices)

    @property
    def choice(self) -> Any:
        """The choices of a stage that offers one block kind."""
        if len(self.choices) != 1:
            raise ValueError(f"stage {self.name!r} offers {len(self.choices)} block kinds; read .choices")
        return self.choices[0]

    def to_dict(self) -> dict[str, Any]:
        """The stage as written in YAML: flat for one kind (no ``block`` key for a bneck, as
        before kinds existed, so old spaces keep their digest), else a ``choices`` list."""
        data: dict[str, Any] = {"out_channels": self.out_channels, "stride": self.stride, "depths": self.depths,
                                "name": self.name}
        entries = [{"block": kind_of_choices(c).name, **asdict(c)} for c in self.choices]
        if len(entries) == 1:
            entry = entries[0]
            if entry["block"] == DEFAULT_KIND:
                del entry["block"]
            data.update(entry)
        else:
            data["choices"] = entries
        return data


@dataclass(frozen=True, config=_CFG)
class HeadConfig:
    final_channels: PositiveInt
    final_act: SearchAct = "hswish"
    pool: Annotated[str, AfterValidator(member(ALLOWED_POOLS))] = "avg"
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
        """The space as YAML would write it (:func:`parse_space` reads it back)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["stem"], data["head"] = asdict(self.stem), asdict(self.head)
        data["stages"] = tuple(stage.to_dict() for stage in self.stages)
        return data

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


def _format_error(err: dict[str, Any], prefix: str = "") -> str:
    """One pydantic error as ``path: message``; ``prefix`` is the path of what was validated."""
    loc = tuple(err["loc"])
    if prefix:
        inner = _format_loc(loc) if loc else ""
        where = prefix if not inner else prefix + ("" if inner.startswith("[") else ".") + inner
    else:
        where = _format_loc(loc)
    kind = err["type"]
    msg = err["msg"]
    if kind == "unexpected_keyword_argument":
        return f"{_clip(where)}: unknown key"
    if kind == "missing_argument" or kind == "missing":
        return f"{_clip(where)}: required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    msg = _clip(msg)
    if kind.endswith("_type") and "input" in err:
        msg = f"{msg}, got {_short(err['input'])}"
    return f"{_clip(where)}: {msg}"


_STAGE_KEYS = frozenset(f.name for f in dataclasses.fields(StageConfig))


def _kind_fields(name: str) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(searchable_kind(name).choices_type))


def _stage_choices(stage: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """``stage`` with its block choices validated by their kinds into ``choices`` (flat or list form)."""
    stage = dict(stage)
    entries: list[tuple[str, Any]] = []
    if "choices" in stage:
        flat = sorted(k for k in stage if k not in _STAGE_KEYS or k == "block")
        if flat:
            problems.append(f"{where}: give the block choices either flat (block, kernels, ...) or as a "
                            f"'choices' list, not both (found {', '.join(flat)} beside choices)")
            for key in flat:
                stage.pop(key)
        raw = stage.pop("choices")
        if not isinstance(raw, list) or not raw:
            problems.append(f"{where}.choices: must be a non-empty list of block choices, "
                            f"e.g. [{{block: bneck, kernels: [3, 5], expansions: [3, 6]}}]")
            raw = []
        for j, entry in enumerate(raw):
            if not isinstance(entry, dict) or "block" not in entry:
                problems.append(f"{where}.choices[{j}].block: required key is missing (one of "
                                f"{', '.join(searchable_kinds())})")
                continue
            entries.append((f"{where}.choices[{j}]", dict(entry)))
    else:
        name = stage.pop("block", DEFAULT_KIND)
        entry: dict[str, Any] = {"block": name}
        try:
            for key in _kind_fields(name) & set(stage):
                entry[key] = stage.pop(key)
        except (ValueError, TypeError):
            pass  # reported below
        entries.append((where, entry))
    choices, kinds = [], []
    for at, entry in entries:
        name = entry.pop("block")
        try:
            kind = searchable_kind(name)
        except (ValueError, TypeError) as exc:
            problems.append(f"{at}.block: {_clip(str(exc))}")
            continue
        if kind.name in kinds:
            problems.append(f"{at}.block: block kind {kind.name!r} is listed twice in this stage")
            continue
        try:
            choice = TypeAdapter(kind.choices_type).validate_python(entry)
        except ValidationError as exc:
            problems.extend(_format_error(e, at) for e in exc.errors(include_url=False, include_context=False))
            continue
        stride = stage.get("stride")
        if isinstance(stride, int) and not isinstance(stride, bool):
            reasons = {kind.problem(a, stride) for a in _products(kind, choice)}
            if None not in reasons:
                problems.append(f"{at}: no block of these choices can have stride {stride}: {sorted(reasons)[0]}")
                continue
        kinds.append(kind.name)
        choices.append(choice)
    stage["choices"] = tuple(choices) if choices or not entries else None
    return stage


def _products(kind: Any, choices: Any) -> list[Any]:
    axes = kind.axes(choices)
    return [kind.arch_type(**dict(zip(axes, values))) for values in itertools.product(*axes.values())]


def parse_space(data: Any, source: str = "<space>") -> SpaceConfig:
    """Validate a mapping (parsed YAML) into a :class:`SpaceConfig`.

    Raises:
        ConfigError: listing every problem with its path.
    """
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): must be a mapping, got {type(data).__name__}"])
    problems: list[str] = []
    broken = False
    if isinstance(data.get("stages"), (list, tuple)):
        stages = []
        for i, stage in enumerate(data["stages"]):
            if isinstance(stage, dict):
                before = len(problems)
                stage = _stage_choices(stage, f"stages[{i}]", problems)
                broken |= len(problems) > before
            stages.append(stage)
        data = {**data, "stages": stages}
    try:
        config = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        # a stage whose choices failed above carries None there: already reported
        problems.extend(_format_error(err) for err in errors
                        if not (broken and len(err["loc"]) >= 3 and err["loc"][0] == "stages"
                                and err["loc"][2] == "choices"))
        config = None
    if problems:
        unique = list(dict.fromkeys(problems))
        if len(unique) > MAX_PROBLEMS:
            rest = len(unique) - MAX_PROBLEMS + 1
            unique = unique[: MAX_PROBLEMS - 1] + [f"... and {rest} more problems"]
        raise ConfigError(source, unique)
    assert config is not None
    return config


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
