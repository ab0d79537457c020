"""Command-line values shared by the ``python -m nas.*`` commands: ``--arch``, ``--torch-device``,
and argparse types for bounded numbers.

``--arch`` is read one way everywhere; what a command may be given depends on what it needs:

- a **member of a search space** (``nas.evaluate`` scores a subnet of a supernet's space):
  :func:`parse_arch` accepts ``largest``, ``smallest``, ``random`` (seed 0) or ``random:SEED``, an
  arch string (``mobilenetv3_large r224 w1 | k3e1r | k5e4r k3e3r | ...``), and an arch as inline
  JSON or a JSON file (an ``arch.json`` written by :mod:`nas.export` included). Presets and network
  specs are refused: they are fixed networks, not members of a space.
- a **network** (``nas.summary`` counts its cost, ``nas.latency predict`` its latency):
  :func:`resolve_network` accepts all of the above (``largest``/``smallest``/``random`` of
  ``--space``), a preset (``mobilenetv3_large``, ``mobilenetv3_small_0.75``: a name with an
  optional ``_WIDTH`` suffix), and a network spec as inline JSON or a JSON file.

A value is tried in that order: ``largest``/``smallest``/``random[:SEED]``, a preset, inline JSON
(it starts with ``{``), an arch string (it holds ``|``), a file. An error lists the forms the
command accepts.

``--torch-device`` (``nas.train``, ``nas.evaluate``) is the torch compute device; ``--device``
there is its deprecated alias (:func:`add_torch_device_argument`), because in ``nas.search`` and
``nas.latency`` ``--device`` is the latency-table device (``pixel_cpu``, ``host``, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nas.errors import ArchError
from nas.netspec import NetworkSpec
from nas.nn import get_preset, is_preset, preset_names
from nas.space import Arch, SearchSpace, load_space

__all__ = [
    "MEMBER_FORMS",
    "NETWORK_FORMS",
    "arch_help",
    "parse_arch",
    "resolve_network",
    "add_torch_device_argument",
    "parse_device",
    "int_arg",
    "float_arg",
]

_SELECTOR_FORM = "largest, smallest, random (seed 0) or random:SEED (an integer >= 0)"
_STRING_FORM = "an arch string ('<space> r<res> w<width> | k3e1r | k5e4sh k3e3r | ...')"

#: What :func:`parse_arch` accepts (a member of a space), as error messages and help list it.
MEMBER_FORMS: tuple[str, ...] = (
    _SELECTOR_FORM,
    _STRING_FORM,
    "an arch as inline JSON or a JSON file (an arch.json written by nas.export included)",
)

#: What :func:`resolve_network` accepts (any network), as error messages and help list it.
NETWORK_FORMS: tuple[str, ...] = (
    f"a preset ({', '.join(preset_names())}; optional _WIDTH suffix, e.g. mobilenetv3_large_0.75)",
    f"{_SELECTOR_FORM} of --space",
    _STRING_FORM,
    "inline JSON or a JSON file of an arch, a network spec, or an arch.json written by nas.export",
)


def arch_help(*, networks: bool) -> str:
    """The ``--arch`` help text of a command that needs a network (``networks``) or a space member."""
    return "one of: " + "; ".join(NETWORK_FORMS if networks else MEMBER_FORMS)


def _allowed(forms: Sequence[str]) -> str:
    return "allowed: " + "; ".join(forms)


# -- --arch ----------------------------------------------------------------------------------------
def _selector(text: str, flag: str) -> tuple[str, int] | None:
    """``(largest|smallest|random, seed)`` when ``text`` picks a member of a space, else None."""
    if text in ("largest", "smallest", "random"):
        return text, 0
    if not text.startswith("random:"):
        return None
    seed = text.partition(":")[2]
    if not re.fullmatch(r"[0-9]+", seed.strip()):
        raise ArchError(f"{flag} {text!r}: random:SEED needs an integer seed >= 0 (e.g. random:3), got {seed!r}")
    return "random", int(seed)


def _pick(space: SearchSpace, how: str, seed: int) -> Arch:
    if how == "largest":
        return space.largest()
    if how == "smallest":
        return space.smallest()
    return space.sample(seed)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long for the file system: not a file
        return False


def _json(raw: str, where: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ArchError(f"{where}: not valid JSON: {exc}") from None


def _from_document(data: Any, where: str) -> Arch | NetworkSpec:
    """An :class:`Arch`, a :class:`NetworkSpec`, or an export's ``{"arch": ..., "network": ...}``."""
    if isinstance(data, dict) and "blocks" in data:
        try:
            return NetworkSpec.from_dict(data)
        except ValueError as exc:
            raise ArchError(f"{where}: {exc}") from None
    if isinstance(data, dict) and "arch" in data:  # arch.json of nas.export (or a search result)
        if data["arch"] is None and isinstance(data.get("network"), dict):
            return _from_document(data["network"], f"{where}: network")
        data = data["arch"]
    try:
        return Arch.from_dict(data)
    except ArchError as exc:
        raise ArchError(f"{where}: {exc}") from None


def _read(text: str, flag: str, forms: Sequence[str]) -> Arch | NetworkSpec | None:
    """What an ``--arch`` value written out in full holds (JSON, an arch string or a file); None when
    it is none of them."""
    if text.startswith("{"):
        where = f"{flag} (inline JSON)"
        return _from_document(_json(text, where), where)
    if "|" in text:
        try:
            return Arch.from_string(text)
        except ArchError as exc:
            raise ArchError(f"{flag} {text!r}: {exc}") from None
    path = Path(text)
    if not _is_file(path):
        if text.endswith(".json"):
            raise ArchError(f"{flag} {text!r}: arch file not found ({_allowed(forms)})")
        return None
    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchError(f"{flag} {text!r}: cannot read the file: {exc}") from None
    return _from_document(_json(raw, str(path)), str(path))


def parse_arch(text: str, space: SearchSpace, *, flag: str = "--arch") -> Arch:
    """The member of ``space`` an ``--arch`` value names (the forms of :data:`MEMBER_FORMS`).

    Args:
        text: the flag's value (surrounding blanks are ignored).
        space: the space the arch must belong to (``largest``/``smallest``/``random`` pick from it).
        flag: how errors name the value.

    Raises:
        ArchError: not one of the forms (the message lists them), a preset or a network spec (fixed
            networks, not members of a space), unreadable JSON, or not a member of ``space``.
    """
    text = text.strip()
    selected = _selector(text, flag)
    if selected is not None:
        return _pick(space, *selected)
    value = _read(text, flag, MEMBER_FORMS)
    if isinstance(value, NetworkSpec):
        raise ArchError(f"{flag} {text!r}: holds a network spec, not an arch of the space {space.name!r} "
                        f"({_allowed(MEMBER_FORMS)})")
    if value is None:
        why = ("a preset is a fixed network, not a member of a search space" if is_preset(text)
               else "not a form this command accepts")
        raise ArchError(f"{flag} {text!r}: {why} ({_allowed(MEMBER_FORMS)})")
    space.check(value)
    return value


def resolve_network(
    text: str,
    *,
    space: str | Path | None,
    resolution: int | None,
    num_classes: int,
    flag: str = "--arch",
) -> NetworkSpec:
    """The network an ``--arch`` value names (the forms of :data:`NETWORK_FORMS`).

    Args:
        text: the flag's value (surrounding blanks are ignored).
        space: search space name or YAML file: where ``largest``/``smallest``/``random`` pick from,
            and what an arch is resolved in (default: the space the arch names).
        resolution: input side (default: the arch's or the spec's own; 224 for a preset).
        num_classes: classifier width.
        flag: how errors name the value.

    Raises:
        ArchError: not one of the forms (the message lists them), unreadable JSON or spec, or an arch
            that is not a member of its space.
        ValueError: ``largest``/``smallest``/``random`` without ``space``.
        ConfigError, FileNotFoundError: the space cannot be loaded.
    """
    text = text.strip()
    selected = _selector(text, flag)
    if selected is not None:
        if space is None:
            raise ValueError(f"{flag} {text} needs --space (a shipped space name or a YAML file)")
        s = load_space(space)
        return s.resolve(_pick(s, *selected), num_classes, resolution)
    if is_preset(text):
        return get_preset(text, num_classes=num_classes, resolution=resolution)  # None: its paper's
    value = _read(text, flag, NETWORK_FORMS)
    if value is None:
        raise ArchError(f"{flag} {text!r}: not a form this command accepts ({_allowed(NETWORK_FORMS)})")
    if isinstance(value, NetworkSpec):
        if num_classes != value.num_classes:
            value = value.replace(num_classes=num_classes)
        return value.replace(resolution=resolution) if resolution else value
    return load_space(space or value.space).resolve(value, num_classes, resolution)


# -- --torch-device ----------------------------------------------------------------------------------
class _DeprecatedAlias(argparse.Action):
    """Stores into ``dest`` like the option it stands for, after a one-line notice on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, replacement: str, why: str = "",
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement
        self.why = why

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        why = f" ({self.why})" if self.why else ""
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.replacement}{why}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_torch_device_argument(parser: argparse.ArgumentParser, *, what: str = "auto | cpu | cuda[:N]") -> None:
    """Add ``--torch-device`` (dest ``torch_device``, default ``auto``) and its deprecated alias
    ``--device``, which stores the same value after a deprecation notice on stderr. The value stays
    a string: check it with :func:`parse_device`.

    Args:
        parser: the command's parser.
        what: the allowed values, for the help text.
    """
    parser.add_argument("--torch-device", dest="torch_device", default="auto", metavar="DEVICE",
                        help=f"torch compute device: {what} [auto]")
    parser.add_argument("--device", dest="torch_device", default=argparse.SUPPRESS, metavar="DEVICE",
                        action=_DeprecatedAlias, replacement="--torch-device",
                        why="in nas.search and nas.latency, --device names a latency table",
                        help="deprecated alias of --torch-device (removed in the next release)")


_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def parse_device(text: str, *, check_available: bool = True, flag: str = "--torch-device") -> torch.device:
    """The torch device a ``--torch-device`` value names: ``auto`` (CUDA when present, else CPU),
    ``cpu``, ``cuda`` or ``cuda:N``.

    Args:
        text: the flag's value.
        check_available: also require the CUDA device to exist on this machine (off where the
            work runs elsewhere, e.g. on Ray workers).
        flag: how the error names the value.

    Raises:
        ValueError: not one of the allowed forms, or CUDA asked for but absent; the message names
            ``flag``, the value and what is allowed.
    """
    if not _DEVICE.fullmatch(text):
        raise ValueError(f"{flag} {text!r}: unknown device (allowed: auto, cpu, cuda, cuda:N)")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda" and check_available:
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"{flag} {text}: CUDA is not available on this machine ({why}); "
                             f"use {flag} cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"{flag} {text}: this machine has {count} CUDA device(s) (allowed: cuda:0..cuda:{count - 1})"
            )
    return device


# -- bounded numbers ---------------------------------------------------------------------------------
def int_arg(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for integers in ``[minimum, maximum]`` (argparse names the flag:
    ``argument --threads: -1 (allowed: integer >= 1)``)."""
    allowed = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} (allowed: integer {allowed})") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} (allowed: integer {allowed})")
        return value

    return parse


def float_arg(text: str) -> float:
    """An argparse ``type=`` for finite floats (``inf`` and ``nan`` are refused; ranges are checked
    where the value is used)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} (allowed: a finite number)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} (allowed: a finite number)")
    return value
