"""Latency lookup tables: the file format, loading with validation, and lookup.

A table is one JSON file per device in ``latency_tables/``::

    {"format": "nas-latency-table/1",
     "header": {device, description, method, runtime_version, threads, warmup, ..., overhead_ms},
     "entries": {"<LayerSpec.key>": {"ms": 0.123, "iqr_ms": 0.004}, ...}}

``entries[key].ms`` is what one ONNX Runtime call of that layer alone took (the statistic named in
the header, usually the median), *including* the fixed per-call cost ``overhead_ms``. A network runs
as one call, so its prediction is ``overhead_ms + sum(in_network_ms(layer))``
(:meth:`LatencyTable.predict_layers`): one call's overhead plus what each layer costs inside a
network, its entry net of the overhead corrected by the header's composition model
(:mod:`nas.latency._composition`: a per-layer constant, a relative term and a memory-traffic term,
fitted on whole subnets of every covered space when the table was built; older tables hold the
constant alone, ``layer_correction_ms``).

A table is only read when a typical layer, the median entry, keeps a cost >= 0 inside a network
(:meth:`LatencyTable.term_problems`), and :meth:`LatencyTable.predict_layers` refuses every
prediction that is not a finite number > 0.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas.latency._composition import check_terms, correction_ms
from nas.shapes import LayerSpec

__all__ = [
    "FORMAT",
    "TABLES_DIR",
    "METHODS",
    "SpaceRef",
    "TableHeader",
    "Entry",
    "LatencyTable",
    "LatencyTableError",
    "MissingKeyError",
    "UnknownDeviceError",
    "available_devices",
    "table_path",
    "check_device_name",
]

FORMAT = "nas-latency-table/1"
METHODS = ("measured", "estimated", "calibrated")

#: Tables shipped with the project (``latency_tables/`` at the repository root).
TABLES_DIR = Path(__file__).resolve().parents[2] / "latency_tables"

_DEVICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


#: Largest JSON file the latency tools read (tables, measurements, reports, manifests): the shipped
#: tables are under 1 MiB, a table of every space and width a few MiB.
MAX_JSON_BYTES = 64 * 2**20


class LatencyTableError(ValueError):
    """A table file is missing, corrupted, truncated, or built for something else."""


class UnknownDeviceError(LatencyTableError):
    """No table exists for the requested device; the message lists the available ones."""


class MissingKeyError(LatencyTableError, KeyError):
    """A layer of the network has no entry in the table; the message shows how to measure it."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not _DEVICE_RE.match(name):
        raise ValueError(
            f"device name must be letters, digits, '_', '-' or '.', starting with a letter or digit; "
            f"got {name!r}"
        )
    return name


@dataclass(frozen=True)
class SpaceRef:
    """A search space a table covers completely: its name and :attr:`SearchSpace.digest`."""

    name: str
    digest: str

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"space.name must be a non-empty string, got {self.name!r}")
        if not re.fullmatch(r"[0-9a-f]{8,64}", str(self.digest)):
            raise ValueError(f"space.digest must be a hex digest, got {self.digest!r}")


def spinning_of(settings: Mapping[str, Any]) -> bool:
    """Whether the idle intra-op threads spun in timing ``settings`` (a header's or a bundle's). Written
    before the setting was recorded, the pool's threads spun whenever there was a pool (> 1 thread)."""
    if "spinning" in settings:
        return settings["spinning"]
    return settings.get("intra_op_threads", 1) > 1


@dataclass(frozen=True)
class TableHeader:
    """Provenance of a table: where, how, with which runtime and protocol it was obtained."""

    device: str
    description: str
    method: str  # measured | estimated
    runtime: str
    runtime_version: str
    execution_provider: str
    intra_op_threads: int
    inter_op_threads: int
    execution_mode: str
    graph_optimization: str
    opset: int
    batch: int
    warmup: int
    rounds: int
    repeats: int
    statistic: str
    spread: str
    overhead_ms: float
    cpu: str
    date: str
    units: str = "ms"
    spaces: tuple[SpaceRef, ...] = ()
    num_classes: tuple[int, ...] = ()
    references: tuple[str, ...] = ()
    complete: bool = True
    n_entries: int = 0
    canary_ms: float = 0.0
    canary_key: str = ""
    retried_chunks: int = 0
    disturbed_chunks: int = 0
    layer_correction_ms: float = 0.0
    composition: Mapping[str, Any] | None = None
    calibration: Mapping[str, Any] | None = None
    notes: str = ""
    precision: str = "fp32"  # of the timed models: fp32, or int8 (ONNX Runtime static quantization, QDQ)
    spinning: bool = False  # idle intra-op threads busy-waited (session.intra_op.allow_spinning)

    def __post_init__(self) -> None:
        problems = []
        try:
            check_device_name(self.device)
        except ValueError as exc:
            problems.append(f"device: {exc}")
        if self.method not in METHODS:
            problems.append(f"method: {self.method!r} not in {METHODS}")
        if self.precision not in ("fp32", "int8"):
            problems.append(f"precision: {self.precision!r}, expected 'fp32' or 'int8'")
        if self.units != "ms":
            problems.append(f"units: {self.units!r}, only 'ms' is supported")
        for name in ("intra_op_threads", "inter_op_threads", "opset", "batch", "rounds", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name}: must be a positive integer, got {value!r}")
        for name in ("warmup", "n_entries", "retried_chunks", "disturbed_chunks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name}: must be an integer >= 0, got {value!r}")
        for name in ("overhead_ms", "canary_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value >= 0
            ):
                problems.append(f"{name}: must be a finite number >= 0, got {value!r}")
        lc = self.layer_correction_ms
        if isinstance(lc, bool) or not isinstance(lc, (int, float)) or not math.isfinite(lc):
            problems.append(f"layer_correction_ms: must be a finite number, got {lc!r}")
        if self.composition is not None and not isinstance(self.composition, Mapping):
            problems.append(f"composition: must be a mapping or null, got {self.composition!r}")
        elif self.composition is not None and "terms" in self.composition:
            terms = self.composition["terms"]
            problems.extend(check_terms(terms))
            if isinstance(terms, Mapping) and "layer" in terms:
                problems.append("composition.terms: the per-layer constant is the header's layer_correction_ms, "
                                "not a term")
        for name in ("complete", "spinning"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name}: must be true or false, got {getattr(self, name)!r}")
        for n in self.num_classes:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                problems.append(f"num_classes: {n!r} is not a positive integer")
        if problems:
            raise LatencyTableError("invalid table header: " + "; ".join(problems))
        object.__setattr__(self, "spaces", tuple(self.spaces))
        object.__setattr__(self, "num_classes", tuple(self.num_classes))
        object.__setattr__(self, "references", tuple(self.references))

    def covers(self, digest: str) -> bool:
        return any(s.digest == digest for s in self.spaces)

    @property
    def composition_terms(self) -> dict[str, float]:
        """The composition model's terms (:mod:`nas.latency._composition`): the per-layer constant
        ``layer_correction_ms`` and the ``composition.terms`` (a table written before that model
        has the constant alone)."""
        terms = {"layer": self.layer_correction_ms}
        if self.composition is not None and "terms" in self.composition:
            terms |= dict(self.composition["terms"])
        return terms

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spaces"] = [asdict(s) for s in self.spaces]
        data["num_classes"] = list(self.num_classes)
        data["references"] = list(self.references)
        data["calibration"] = dict(self.calibration) if self.calibration is not None else None
        data["composition"] = dict(self.composition) if self.composition is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Any) -> TableHeader:
        if not isinstance(data, dict):
            raise LatencyTableError(f"header must be a mapping, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        required = {
            name
            for name, f in cls.__dataclass_fields__.items()
            if f.default is MISSING and f.default_factory is MISSING
        }
        missing = sorted(required - set(data))
        if unknown or missing:
            raise LatencyTableError(f"header keys: missing {missing}, unknown {unknown}")
        values = dict(data)
        if "spinning" not in values and isinstance(values.get("intra_op_threads"), int):
            values["spinning"] = spinning_of(values)
        try:
            values["spaces"] = tuple(SpaceRef(**s) for s in data.get("spaces", ()))
        except (TypeError, ValueError) as exc:
            raise LatencyTableError(f"header.spaces: {exc}") from None
        return cls(**values)

    def same_protocol(self, other: TableHeader) -> list[str]:
        """Names of the measurement settings in which ``other`` differs from this header."""
        names = (
            "runtime", "runtime_version", "execution_provider", "intra_op_threads",
            "inter_op_threads", "execution_mode", "graph_optimization", "opset", "batch",
            "warmup", "rounds", "repeats", "statistic", "cpu", "precision", "spinning",
        )  # fmt: skip
        return [n for n in names if getattr(self, n) != getattr(other, n)]


@dataclass(frozen=True)
class Entry:
    """One key's latency (the header's statistic) and its spread (interquartile range), in ms."""

    ms: float
    iqr_ms: float | None = None

    def __post_init__(self) -> None:
        for name in ("ms", "iqr_ms"):
            v = getattr(self, name)
            if v is None and name == "iqr_ms":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.ms <= 0:
            raise ValueError(f"ms must be positive, got {self.ms!r}")

    def to_dict(self) -> dict[str, float]:
        out = {"ms": round(self.ms, 6)}
        if self.iqr_ms is not None:
            out["iqr_ms"] = round(self.iqr_ms, 6)
        return out


def _build_hint(device: str, key: str | None = None) -> str:
    if key is not None and key.startswith("classifier-"):
        n = key.split("-o", 1)[1].split("x", 1)[0]
        return (
            f"python -m nas.latency build --device {device} --num-classes {n}  "
            f"(add --space FILE for the space the network comes from)"
        )
    return f"python -m nas.latency build --device {device} --space SPACE  (SPACE: the network's search space)"


#: A classifier layer's key, split around its number of outputs.
_CLASSIFIER_KEY = re.compile(r"(?P<head>classifier-i[0-9x]+-o)(?P<n>[0-9]+)(?P<tail>x1x1-.*)")


@dataclass(frozen=True)
class LatencyTable:
    header: TableHeader
    entries: Mapping[str, Entry] = field(default_factory=dict)
    path: Path | None = None

    @property
    def device(self) -> str:
        return self.header.device

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, key: str) -> float:
        try:
            return self.entries[key].ms
        except KeyError:
            estimate = self.classifier_estimate(key)
            if estimate is not None:
                return estimate
            where = f" ({self.path})" if self.path else ""
            raise MissingKeyError(
                f"latency table {self.device!r}{where} has no entry for layer\n  {key}\n"
                f"measure it with:\n  {_build_hint(self.device, key)}"
            ) from None

    def _where(self) -> str:
        return f"latency table {self.device!r} ({self.path if self.path else 'not read from a file'})"

    def term_problems(self) -> list[str]:
        """Why the header's composition terms would make predictions negative (empty: they do not).

        A prediction is ``overhead_ms + sum(in_network_ms(layer))``: one call's overhead plus each
        layer's cost inside a network (:meth:`in_network_ms`). A typical layer - the median entry -
        must keep a cost >= 0 there, counting the constant and relative terms of the composition
        (the traffic term is >= 0 and only adds): ``(ms - overhead_ms) * (1 + host_ms) +
        layer_correction_ms >= 0``. (The cheapest entries are not held to it: on a busy machine a
        small key can come out below the one-call overhead, or a fitted correction slightly more
        negative, in a table that still predicts well; :meth:`predict_layers` refuses any prediction
        that is not > 0.) Each problem starts with the header field(s) it blames.
        """
        if not self.entries:
            return []
        h = self.header
        ranked = sorted(self.entries, key=lambda k: self.entries[k].ms)
        key = ranked[(len(ranked) - 1) // 2]
        typical = self.entries[key].ms
        scale = 1.0 + self.header.composition_terms.get("host_ms", 0.0)
        cost = (typical - h.overhead_ms) * scale + h.layer_correction_ms
        if cost >= 0:
            return []
        blamed = [name for name, bad in (("overhead_ms", h.overhead_ms > typical),
                                         ("layer_correction_ms", h.layer_correction_ms < 0)) if bad]  # fmt: skip
        return [
            f"{' and '.join(blamed) or 'layer_correction_ms'}: the median entry ({key}: {typical:g} ms) "
            f"would cost ({typical:g} - overhead_ms {h.overhead_ms:g}) x {scale:g} + layer_correction_ms "
            f"{h.layer_correction_ms:g} = {cost:g} ms inside a network; a typical layer's cost there "
            f"must be >= 0"
        ]

    def check_prediction(self, ms: float, detail: str) -> float:
        """``ms`` if it is a finite latency > 0, else a :class:`LatencyTableError` naming the table
        file and the terms (``detail``) that made it."""
        if not (math.isfinite(ms) and ms > 0):
            h = self.header
            raise LatencyTableError(
                f"{self._where()}: predicted latency {ms:g} ms is not a positive finite number ({detail}; "
                f"overhead_ms {h.overhead_ms:g}, layer_correction_ms {h.layer_correction_ms:g}); the table's "
                f"entries or header terms are wrong - rebuild it with {_build_hint(self.device)}"
            )
        return ms

    def missing(self, layers: Iterable[LayerSpec]) -> list[str]:
        return sorted({l.key for l in layers if l.key not in self.entries and self.classifier_estimate(l.key) is None})

    def classifier_estimate(self, key: str) -> float | None:
        """A classifier for a class count the table was not built with (a user's 2 or 37 classes),
        estimated from the same classifier at the counts it has: affine in the number of outputs
        (a matrix product's cost is), fitted on the measured counts - interpolated between them,
        extrapolated with a slope >= 0 and never below half the cheapest measured count's time; from
        a single measured count only fewer outputs are estimated (at that count's time). ``None`` for
        other layers, or when the table holds nothing to estimate from."""
        match = _CLASSIFIER_KEY.fullmatch(key)
        if match is None:
            return None
        cache = self.__dict__.setdefault("_classifier_cache", {})
        if key not in cache:
            head, tail = match["head"], match["tail"]
            points = []
            for k, entry in self.entries.items():
                if k.startswith(head) and k.endswith(tail) and k[len(head):len(k) - len(tail)].isdigit():
                    points.append((int(k[len(head):len(k) - len(tail)]), entry.ms))
            if not points:
                cache[key] = None
            else:
                n = int(match["n"])
                xs, ys = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
                if len(points) == 1:  # one count: only fewer outputs can be bounded by it
                    cache[key] = float(ys[0]) if n <= xs[0] else None
                else:
                    slope, icpt = np.polyfit(xs, ys, 1)
                    slope = max(float(slope), 0.0)
                    icpt = float(np.mean(ys - slope * xs))
                    cache[key] = max(icpt + slope * n, float(ys.min()) * 0.5)
        return cache[key]

    def in_network_ms(self, layer: LayerSpec) -> float:
        """What ``layer`` costs inside a network: its entry net of the per-call overhead, plus the
        header's composition correction (:mod:`nas.latency._composition`; colder caches, no
        per-call allocation - fitted on whole subnets at build time; 0 when not fitted)."""
        raw = self.lookup(layer.key) - self.header.overhead_ms
        return raw + correction_ms(self.header.composition_terms, layer, raw)

    def predict_layers(self, layers: Iterable[LayerSpec]) -> float:
        """Latency in ms of the layers run as one network (one call).

        ``overhead_ms + sum(in_network_ms(layer))``: the per-call overhead is counted once, and each
        layer costs what it costs inside a network (:meth:`in_network_ms`).

        Raises:
            MissingKeyError: a layer is not in the table.
            LatencyTableError: the prediction is not a finite number > 0 (a corrupted header term).
        """
        layers = list(layers)
        if not layers:
            raise ValueError("cannot predict the latency of an empty list of layers")
        missing = self.missing(layers)
        if len(missing) > 1:
            where = f" ({self.path})" if self.path else ""
            shown = "\n  ".join(missing[:5]) + (f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise MissingKeyError(
                f"latency table {self.device!r}{where} has no entry for {len(missing)} layers:\n"
                f"  {shown}\nmeasure them with:\n  {_build_hint(self.device, missing[0])}"
            )
        ms = self.header.overhead_ms + sum(self.in_network_ms(l) for l in layers)
        terms = ", ".join(f"{k} {v:g}" for k, v in self.header.composition_terms.items())
        detail = f"{len(layers)} layers: overhead_ms + the sum of their in-network costs (composition terms: {terms})"
        return self.check_prediction(ms, detail)

    def with_entries(self, entries: Mapping[str, Entry], **header_changes: Any) -> LatencyTable:
        merged = dict(self.entries)
        merged.update(entries)
        header = replace(self.header, n_entries=len(merged), **header_changes)
        return LatencyTable(header, merged, self.path)

    # -- IO ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        header = replace(self.header, n_entries=len(self.entries))
        return {
            "format": FORMAT,
            "header": header.to_dict(),
            "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)},
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename): an interrupted write never leaves half a table."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> LatencyTable:
        src = str(path) if path else "table"
        if not isinstance(data, dict):
            raise LatencyTableError(f"{src}: not a latency table (top level is not a mapping)")
        if data.get("format") != FORMAT:
            raise LatencyTableError(f"{src}: format is {data.get('format')!r}, expected {FORMAT!r}")
        if set(data) != {"format", "header", "entries"}:
            raise LatencyTableError(
                f"{src}: top-level keys must be format, header, entries; got {sorted(data)}"
            )
        try:
            header = TableHeader.from_dict(data["header"])
        except LatencyTableError as exc:
            raise LatencyTableError(f"{src}: {exc}") from None
        except TypeError as exc:
            raise LatencyTableError(f"{src}: invalid header: {exc}") from None
        raw = data["entries"]
        if not isinstance(raw, dict):
            raise LatencyTableError(f"{src}: entries must be a mapping of key -> {{ms, iqr_ms}}")
        entries: dict[str, Entry] = {}
        problems = []
        for key, value in raw.items():
            try:
                if not isinstance(value, dict) or not set(value) <= {"ms", "iqr_ms"}:
                    raise ValueError(f"must be {{'ms': ..., 'iqr_ms': ...}}, got {value!r}")
                entries[key] = Entry(**value)
            except (TypeError, ValueError) as exc:
                problems.append(f"entries[{key!r}]: {exc}")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
            raise LatencyTableError(f"{src}: corrupted entries: {shown}")
        if header.n_entries != len(entries):
            raise LatencyTableError(
                f"{src}: header says {header.n_entries} entries but the file holds {len(entries)} "
                f"(truncated or edited); rebuild it with {_build_hint(header.device)}"
            )
        table = cls(header, entries, path)
        terms = table.term_problems()
        if terms:
            raise LatencyTableError(
                f"{src}: predictions would be negative: " + "; ".join(f"header.{p}" for p in terms)
                + f"; rebuild it with {_build_hint(header.device)}"
            )
        return table

    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        path = Path(path)
        try:
            size = path.stat().st_size
            if size > MAX_JSON_BYTES:
                raise LatencyTableError(f"{path}: {size / 2**20:.0f} MiB, larger than any latency table "
                                        f"(at most {MAX_JSON_BYTES // 2**20} MiB): not a table file")
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise LatencyTableError(f"latency table file not found: {path}") from None
        except UnicodeDecodeError as exc:
            raise LatencyTableError(f"{path}: not UTF-8 text (byte {exc.start}): not a latency table (a JSON file "
                                    "written by python -m nas.latency build, calibrate or import)") from None
        except OSError as exc:
            raise LatencyTableError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LatencyTableError(
                f"{path}: not valid JSON ({exc}); the file is corrupted or truncated - rebuild it "
                f"with `python -m nas.latency build --device {path.stem}`"
            ) from None
        return cls.from_dict(data, path)


def table_path(device: str, tables_dir: str | Path | None = None) -> Path:
    return Path(tables_dir or TABLES_DIR) / f"{check_device_name(device)}.json"


def available_devices(tables_dir: str | Path | None = None) -> list[str]:
    d = Path(tables_dir or TABLES_DIR)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []
