"""Errors raised at the boundaries of the package (config files, CLIs, user data)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError", "ArchError", "DataError"]


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


class ArchError(ValueError):
    """An architecture is not a member of the search space it claims to belong to."""


class DataError(RuntimeError):
    """A dataset is missing or malformed; the message says how to obtain or fix it."""
