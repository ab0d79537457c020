"""The block-kind registry: every kind of block a network may hold, found by its name or its
arch-token prefix.

A kind (:class:`BlockKind`) owns what differs between kinds: its resolved spec type, the layer the
shape walker reports for it and that layer's latency-table key, its cost formula, its operation
counts and its static ``nn.Module``. Specs are serialised with their kind's name under ``"kind"``;
a block without one is a MobileNetV3 ``bneck`` (every file written before kinds existed).

A kind a search space may offer is a :class:`SearchableKind`: it also owns its YAML choice fields,
its per-block arch (choices picked) with its token (``uib_s3m5e4sh``; the bneck's ``k5e6sh`` needs
no prefix, ``ir_k5e6sh`` reads the same), how a pick resolves to channels, and its elastic
supernet module.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from nas.errors import ArchError

__all__ = ["BlockKind", "SearchableKind", "OpCounts", "register", "kind_named", "kind_of", "block_from_dict",
           "block_to_dict", "block_kinds", "searchable_kinds", "searchable_kind", "kind_of_choices", "kind_of_arch", "arch_to_token",
           "arch_from_token", "arch_to_dict", "arch_from_dict", "DEFAULT_KIND"]

#: The kind of a serialised block that names none.
DEFAULT_KIND = "bneck"

_KINDS: dict[str, BlockKind] = {}
_BY_TYPE: dict[type, BlockKind] = {}
_BY_ARCH_TYPE: dict[type, SearchableKind] = {}
_BY_PREFIX: dict[str, SearchableKind] = {}


@dataclasses.dataclass(frozen=True)
class OpCounts:
    """A layer's work by operation class (what a device-latency model is fitted on): multiply-adds
    of dense (1x1 and full) convs, of depthwise convs, squeeze-excitation work (elements read and
    written plus its matrix products), and elements that go through an h-swish."""

    dense_madds: float = 0.0
    depthwise_madds: float = 0.0
    se_work: float = 0.0
    hswish_elements: float = 0.0


class BlockKind(abc.ABC):
    """One kind of block (an interface). Subclasses set ``name`` and ``spec_type`` and implement
    every abstract method; :func:`register` refuses a kind that leaves one out."""

    name: ClassVar[str]
    spec_type: ClassVar[type]

    def __reduce__(self):
        # one instance per kind: a pickled kind (inside a pickled search space) is its registry entry
        return kind_named, (self.name,)

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

    @abc.abstractmethod
    def op_counts(self, layer) -> OpCounts:
        """The layer's work by operation class (:class:`OpCounts`)."""

    def module_for_layer(self, layer):
        """The static module of ``layer`` (what a latency table times for its key)."""
        spec = self.spec_from_layer(layer)
        if self.layer(spec, layer.in_shape, layer.index) != layer:
            raise ValueError(f"layer {layer.key}: its shapes or residual flag disagree with the {self.name} block")
        return self.static_module(spec)


class SearchableKind(BlockKind):
    """A kind a search space may offer. Besides :class:`BlockKind`'s: ``choices_type`` (a frozen
    pydantic dataclass: the stage's YAML fields for this kind, validated strictly), ``arch_type``
    (a frozen dataclass: one block's picks; its fields are the choice axes) and ``token_prefix``.

    The generic code (``nas.space``, ``nas.search``, ``nas.supernet``, ``nas.latency``) samples,
    counts, checks, enumerates and suggests a kind's blocks through :meth:`axes` and
    :meth:`problem`, resolves them with :meth:`resolve` and stores them in a supernet with
    :meth:`elastic_module`; it never names a kind.
    """

    choices_type: ClassVar[type]
    arch_type: ClassVar[type]
    token_prefix: ClassVar[str]

    @abc.abstractmethod
    def axes(self, choices: Any) -> dict[str, tuple]:
        """Each field of :attr:`arch_type` -> the values ``choices`` allows, smallest first."""

    def problem(self, arch: Any, stride: int) -> str | None:
        """Why ``arch`` cannot be a block at ``stride`` (``None``: it can). Default: always can."""
        return None

    @abc.abstractmethod
    def token(self, arch: Any) -> str:
        """The arch's token without the prefix, e.g. ``s3m5e4sh``."""

    @abc.abstractmethod
    def parse_token(self, text: str) -> Any:
        """The arch of a token without its prefix; raises :class:`~nas.errors.ArchError`."""

    @abc.abstractmethod
    def resolve(self, arch: Any, *, in_channels: int, out_channels: int, stride: int, se_reduction: int) -> Any:
        """The resolved spec of ``arch`` between ``in_channels`` and ``out_channels`` (the channel
        rules of :mod:`nas.channels`)."""

    @abc.abstractmethod
    def elastic_module(self, specs: Sequence[Any], *, kernel_transform: bool, skip_padding_taps: bool):
        """A supernet module able to run every spec in ``specs`` (the resolved specs a block
        position of the space can take with this kind): ``forward(x, spec)``,
        ``copy_into(static_block)`` and ``reorder(optimizer)``; attribute ``reorderable`` says
        whether :meth:`reorder` may run. Weights are left for the supernet to initialise."""


def register(kind: type[BlockKind]) -> type[BlockKind]:
    """Class decorator: add a kind to the registry (its ``name`` and token prefix must be new)."""
    if kind.name in _KINDS:
        raise ValueError(f"block kind {kind.name!r} is registered twice")
    searchable = issubclass(kind, SearchableKind)
    if searchable and kind.token_prefix in _BY_PREFIX:
        raise ValueError(f"arch-token prefix {kind.token_prefix!r} of {kind.name!r} is taken by "
                         f"{_BY_PREFIX[kind.token_prefix].name!r}")
    instance = kind()
    _KINDS[kind.name] = instance
    _BY_TYPE[kind.spec_type] = instance
    if searchable:
        _BY_ARCH_TYPE[kind.arch_type] = instance
        _BY_PREFIX[kind.token_prefix] = instance
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests that register a toy kind clean up with it)."""
    kind = _KINDS.pop(name)
    _BY_TYPE.pop(kind.spec_type, None)
    if isinstance(kind, SearchableKind):
        _BY_ARCH_TYPE.pop(kind.arch_type, None)
        _BY_PREFIX.pop(kind.token_prefix, None)


def block_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def searchable_kinds() -> tuple[str, ...]:
    return tuple(name for name, kind in _KINDS.items() if isinstance(kind, SearchableKind))


def searchable_kind(name: str) -> SearchableKind:
    kind = kind_named(name)
    if not isinstance(kind, SearchableKind):
        raise ValueError(f"block kind {name!r} cannot be searched (searchable kinds: {', '.join(searchable_kinds())})")
    return kind


def kind_of_choices(choices: Any) -> SearchableKind:
    """The kind whose ``choices_type`` ``choices`` is."""
    for kind in _KINDS.values():
        if isinstance(kind, SearchableKind) and type(choices) is kind.choices_type:
            return kind
    raise TypeError(f"{type(choices).__name__} is not the choices of a searchable block kind "
                    f"(known: {', '.join(searchable_kinds())})")


def kind_of_arch(arch: Any) -> SearchableKind:
    """The kind of one block's arch (picks)."""
    try:
        return _BY_ARCH_TYPE[type(arch)]
    except KeyError:
        raise ArchError(f"{type(arch).__name__} is not the arch of a searchable block kind "
                        f"(known: {', '.join(searchable_kinds())})") from None


def arch_to_token(arch: Any) -> str:
    """``k5e6sh`` (the default kind, no prefix) or ``<prefix>_<token>``, e.g. ``uib_s3m5e4sh``."""
    kind = kind_of_arch(arch)
    body = kind.token(arch)
    return body if kind.name == DEFAULT_KIND else f"{kind.token_prefix}_{body}"


def arch_from_token(text: str) -> Any:
    """The arch of a block token; a token without a prefix is the default kind's."""
    prefix, sep, body = text.partition("_")
    if not sep:
        return kind_named(DEFAULT_KIND).parse_token(text)
    kind = _BY_PREFIX.get(prefix)
    if kind is None:
        raise ArchError(f"bad block token {text!r}: unknown prefix {prefix!r} (known: {', '.join(_BY_PREFIX)})")
    return kind.parse_token(body)


def arch_to_dict(arch: Any) -> dict[str, Any]:
    return {"kind": kind_of_arch(arch).name, **dataclasses.asdict(arch)}


def arch_from_dict(data: Any) -> Any:
    """The arch of a serialised block: ``"kind"`` picks the kind (none: the default), the other
    keys must be exactly the kind's arch fields."""
    if not isinstance(data, dict):
        raise ArchError(f"a block must be a mapping, got {type(data).__name__}")
    fields = dict(data)
    name = fields.pop("kind", DEFAULT_KIND)
    try:
        kind = searchable_kind(name)
    except ValueError as exc:
        raise ArchError(str(exc)) from None
    expected = {f.name for f in dataclasses.fields(kind.arch_type)}
    if set(fields) != expected:
        raise ArchError(f"a {kind.name} block must have exactly the keys {sorted(expected)} (and 'kind'), "
                        f"got {sorted(fields)}")
    return kind.arch_type(**fields)


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
