"""Reading untrusted JSON files of the latency tools (bundle results, probe results, manifests,
validation reports): one error per file listing every problem with its JSON key path."""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any

from nas.errors import is_real
from nas.latency._table import MAX_JSON_BYTES, LatencyTableError

__all__ = ["MAX_PROBLEMS", "Problems", "kind_ok", "short", "read_json"]

#: Most problems listed in one error (the rest are counted).
MAX_PROBLEMS = 10


class Problems:
    """The problems found in one file, each with its JSON key path; raised as one error."""

    def __init__(self, path: Path, hint: str, what: str = "malformed bundle file") -> None:
        self.path, self.hint, self.what = path, hint, what
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_PROBLEMS]
        more = len(self.items) - len(shown)
        text = "; ".join(shown) + (f"; ... and {more} more" if more else "")
        raise LatencyTableError(f"{self.path}: {self.what}: {text} ({self.hint})")

    # -- typed fields ------------------------------------------------------------------------------
    def get(
        self, obj: dict[str, Any], key: str, where: str, kind: str, *, required: bool = True, default: Any = None
    ) -> Any:
        """``obj[key]`` if it is of ``kind`` (a key of :data:`KINDS`), else ``default`` and a problem.

        An optional key may be absent or null (``default``); ``where`` is the path of ``obj``.
        """
        path = f"{where}.{key}" if where else key
        if key not in obj:
            if required:
                self.add(path, "required key is missing")
            return default
        value = obj[key]
        if value is None and not required:
            return default
        if not kind_ok(value, kind):
            self.add(path, f"must be {KINDS[kind]}, got {short(value)}")
            return default
        return value


KINDS = {
    "object": "a JSON object",
    "list": "a list",
    "str": "a string",
    "key": "a non-empty string",
    "pos_int": "a positive integer",
    "count": "an integer >= 0",
    "ms": "a finite number > 0 (milliseconds)",
    "ms0": "a finite number >= 0 (milliseconds)",
    "bool": "true or false",
}


def kind_ok(v: Any, kind: str) -> bool:
    is_int = isinstance(v, int) and not isinstance(v, bool)
    return {
        "object": lambda: isinstance(v, dict),
        "list": lambda: isinstance(v, list),
        "str": lambda: isinstance(v, str),
        "bool": lambda: isinstance(v, bool),
        "key": lambda: isinstance(v, str) and bool(v),
        "pos_int": lambda: is_int and v >= 1,
        "count": lambda: is_int and v >= 0,
        "ms": lambda: is_real(v) and v > 0,
        "ms0": lambda: is_real(v) and v >= 0,
    }[kind]()


def short(value: Any, limit: int = 60) -> str:
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path: Path, hint: str) -> Any:
    """The parsed JSON file, or one :class:`LatencyTableError` naming it (unreadable, not UTF-8, ...)."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise LatencyTableError(f"{path}: {size / 2**20:.0f} MiB, more than the {MAX_JSON_BYTES // 2**20} MiB "
                                    f"any file of the latency tools has ({hint})")
        raw = path.read_bytes()
    except OSError as exc:
        raise LatencyTableError(f"{path}: cannot read it ({exc.strerror or exc}) ({hint})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LatencyTableError(
            f"{path}: not UTF-8 text (byte {exc.start}), not a bundle's JSON file ({hint})"
        ) from None
    except json.JSONDecodeError as exc:
        raise LatencyTableError(f"{path} is corrupted or truncated, not valid JSON ({exc}) ({hint})") from None
    except RecursionError:
        raise LatencyTableError(f"{path}: nested too deeply to be a bundle's JSON file ({hint})") from None
