"""The block-kind registry: every kind of block a network may hold, found by its name.

A kind (:class:`BlockKind`) owns what differs between kinds: its resolved spec type, the layer the
shape walker reports for it and that layer's latency-table key, its cost formula and its static
``nn.Module``. Specs are serialised with their kind's name under ``"kind"``; a block without one
is a MobileNetV3 ``bneck`` (every file written before kinds existed).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

__all__ = ["BlockKind", "register", "kind_named", "kind_of", "block_from_dict", "block_to_dict", "block_kinds",
           "DEFAULT_KIND"]

#: The kind of a serialised block that names none.
DEFAULT_KIND = "bneck"

_KINDS: dict[str, BlockKind] = {}
_BY_TYPE: dict[type, BlockKind] = {}


class BlockKind(abc.ABC):
    """One kind of block (an interface). Subclasses set ``name`` and ``spec_type`` and implement
    every abstract method; :func:`register` refuses a kind that leaves one out."""

    name: ClassVar[str]
    spec_type: ClassVar[type]

    @abc.abstractmethod
    def layer(self, spec: Any, in_shape: tuple[int, int, int], index: int):
        """The :class:`~nas.blocks.LayerSpec` of ``spec`` on an input of ``in_shape`` (C, H, W)."""

    @abc.abstractmethod
    def key(self, layer) -> str:
        """What follows ``KIND-iCxHxW-oCxHxW-`` in the layer's latency-table key."""

    @abc.abstractmethod
    def cost(self, layer) -> tuple[int, int, int, int]:
        """``(params, madds, elements written, peak live elements)`` of the layer."""

    @abc.abstractmethod
    def static_module(self, spec: Any):
        """A freshly built ``nn.Module`` running ``spec``."""

    @abc.abstractmethod
    def spec_from_layer(self, layer) -> Any:
        """The spec whose :meth:`layer` is ``layer`` (latency tables build the measured module
        from a table key's layer); raises ``ValueError`` when the layer's shapes disagree."""

    def module_for_layer(self, layer):
        """The static module of ``layer`` (what a latency table times for its key)."""
        spec = self.spec_from_layer(layer)
        if self.layer(spec, layer.in_shape, layer.index) != layer:
            raise ValueError(f"layer {layer.key}: its shapes or residual flag disagree with the {self.name} block")
        return self.static_module(spec)


def register(kind: type[BlockKind]) -> type[BlockKind]:
    """Class decorator: add a kind to the registry (its ``name`` must be new)."""
    if kind.name in _KINDS:
        raise ValueError(f"block kind {kind.name!r} is registered twice")
    instance = kind()
    _KINDS[kind.name] = instance
    _BY_TYPE[kind.spec_type] = instance
    return kind


def block_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def kind_named(name: str) -> BlockKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"unknown block kind {name!r} (known: {', '.join(_KINDS)})") from None


def kind_of(spec: Any) -> BlockKind:
    """The kind of a resolved block spec."""
    try:
        return _BY_TYPE[type(spec)]
    except KeyError:
        raise TypeError(f"{type(spec).__name__} is not the spec of a registered block kind "
                        f"(known: {', '.join(_KINDS)})") from None


def block_to_dict(spec: Any) -> dict[str, Any]:
    return {"kind": kind_of(spec).name, **dataclasses.asdict(spec)}


def block_from_dict(data: dict[str, Any]) -> Any:
    """The spec of a serialised block (``"kind"`` picks the type; none: ``bneck``)."""
    if not isinstance(data, dict):
        raise ValueError(f"a block must be an object, got {type(data).__name__}")
    fields = dict(data)
    kind = kind_named(fields.pop("kind", DEFAULT_KIND))
    try:
        return kind.spec_type(**fields)
    except TypeError as exc:
        raise ValueError(f"not a valid {kind.name} block: {exc}") from None
