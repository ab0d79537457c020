"""Errors raised at the boundaries of the package (config files, CLIs, user data)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "ArchError", "DataError", "FieldCheck", "is_int", "is_real", "load_failure"]


class ConfigError(ValueError):
    """A configuration file or value is invalid.

    Carries every problem found, each prefixed with its path (``stages[2].kernels``), so a user
    fixes a file in one go instead of one error per run.
    """

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{source}: {n} problem{'s' if n != 1 else ''}:\n{lines}")


def is_int(value: Any) -> bool:
    """An int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite int or float (not a bool, not NaN or infinite)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class FieldCheck:
    """Collects the problems of a settings object's fields; :meth:`done` raises them all as one
    :class:`ConfigError` (``need(ok, field, allowed)`` per rule)."""

    def __init__(self, settings: Any, source: str) -> None:
        self.settings, self.source = settings, source
        self.problems: list[str] = []

    def __call__(self, ok: bool, field: str, allowed: str) -> None:
        if not ok:
            self.problems.append(f"{field}: {getattr(self.settings, field)!r} (allowed: {allowed})")

    def done(self) -> None:
        if self.problems:
            raise ConfigError(self.source, self.problems)


class ArchError(ValueError):
    """An architecture is not a member of the search space it claims to belong to."""


class DataError(RuntimeError):
    """A dataset is missing or malformed; the message says how to obtain or fix it."""


def load_failure(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in one line for a user.

    torch's own message for a file holding more than tensors and plain containers ends with the
    advice to load it with ``weights_only=False``, which would run code from an untrusted file: that
    advice is never passed on."""
    text = str(exc)
    if "Weights only load failed" in text or "weights_only" in text:
        return ("it holds objects other than tensors and plain containers, or is corrupted; such files are "
                "refused, never unpickled")
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
