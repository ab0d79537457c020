"""The block choices of one position of a stage, over every kind the stage offers.

A stage's first block runs at the stage's stride, its later blocks at stride 1; a kind may rule
out some picks at a stride (a UIB without depthwise conv cannot downsample), so a stage has two
:class:`Slot` s: ``first`` and ``later`` (the same when the stride is 1). Everything generic code
does with one block - sample, enumerate, count, take the largest or smallest, check, suggest -
goes through a slot and the kinds' :meth:`~nas.blocks.SearchableKind.axes`; no kind is named here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.blocks import SearchableKind, kind_of_arch, kind_of_choices
from nas.blocks import fmt_set
from nas.errors import ArchError

__all__ = ["KindSlot", "Slot", "stage_slots"]


@dataclass(frozen=True)
class KindSlot:
    """One kind's picks at a position: its axes (field -> allowed values, smallest first) and
    every valid pick (``options``, in product order). ``complete``: every combination of the
    axes' values is valid (the axes are independent there)."""

    kind: SearchableKind
    axes: tuple[tuple[str, tuple], ...]
    options: tuple[Any, ...]
    complete: bool

    @classmethod
    def of(cls, choices: Any, stride: int) -> KindSlot:
        kind = kind_of_choices(choices)
        axes = tuple(kind.axes(choices).items())
        names = [name for name, _ in axes]
        every = [kind.arch_type(**dict(zip(names, values))) for values in itertools.product(*(v for _, v in axes))]
        options = tuple(a for a in every if kind.problem(a, stride) is None)
        return cls(kind, axes, options, len(options) == len(every))

    def sample(self, rng: np.random.Generator) -> Any:
        """A uniform pick: one draw per axis when they are independent, else one over the options."""
        if self.complete:
            return self.kind.arch_type(**{name: values[int(rng.integers(len(values)))] for name, values in self.axes})
        return self.options[int(rng.integers(len(self.options)))]

    def rank(self, arch: Any) -> int:
        """How far up its axes a pick sits (0: every axis at its smallest value)."""
        return sum(values.index(getattr(arch, name)) for name, values in self.axes)

    def extreme(self, index: int) -> Any:
        """The pick with every axis at its smallest (``index`` 0) or largest (-1) value; when that
        pick is not valid here, the valid one nearest to it."""
        arch = self.kind.arch_type(**{name: values[index] for name, values in self.axes})
        if self.complete or arch in self.options:
            return arch
        return (min if index == 0 else max)(self.options, key=self.rank)

    def problems(self, arch: Any, where: str, stride: int) -> list[str]:
        out = []
        for name, values in self.axes:
            value = getattr(arch, name)
            if value not in values:
                shown = f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else value
                out.append(f"{where}.{name}: {shown} not in {fmt_set(values)}")
        if not out:
            reason = self.kind.problem(arch, stride)
            if reason:
                out.append(f"{where}: {reason}")
        return out


@dataclass(frozen=True)
class Slot:
    """The picks of one block position class of a stage (first block, or any later one)."""

    stride: int
    kinds: tuple[KindSlot, ...]
    out_channels: int

    @property
    def options(self) -> tuple[Any, ...]:
        """Every valid pick, kind by kind."""
        return tuple(a for ks in self.kinds for a in ks.options)

    def count(self) -> int:
        return sum(len(ks.options) for ks in self.kinds)

    def kind_slot(self, arch: Any) -> KindSlot | None:
        kind = kind_of_arch(arch)
        return next((ks for ks in self.kinds if ks.kind.name == kind.name), None)

    def sample(self, rng: np.random.Generator) -> Any:
        """Uniform over the kinds, then uniform within the kind."""
        ks = self.kinds[0] if len(self.kinds) == 1 else self.kinds[int(rng.integers(len(self.kinds)))]
        return ks.sample(rng)

    def _madds(self, ks: KindSlot, arch: Any) -> int:
        # nominal cost: at the stage's width, on a 16x16 input (only compares kinds' picks)
        c = self.out_channels
        spec = ks.kind.resolve(arch, in_channels=c, out_channels=c, stride=self.stride, se_reduction=4)
        return ks.kind.cost(ks.kind.layer(spec, (c, 16, 16), 0))[1]

    def extreme(self, index: int) -> Any:
        """The smallest (0) or largest (-1) pick; between kinds, by multiply-adds."""
        picks = [(ks, ks.extreme(index)) for ks in self.kinds]
        if len(picks) == 1:
            return picks[0][1]
        choose = min if index == 0 else max
        return choose(picks, key=lambda p: self._madds(*p))[1]

    def problems(self, arch: Any, where: str) -> list[str]:
        try:
            ks = self.slot_of(arch)
        except ArchError as exc:
            return [f"{where}: {exc}"]
        return ks.problems(arch, where, self.stride)

    def slot_of(self, arch: Any) -> KindSlot:
        ks = self.kind_slot(arch)
        if ks is None:
            allowed = ", ".join(k.kind.name for k in self.kinds)
            raise ArchError(f"block kind {kind_of_arch(arch).name!r} is not offered here (allowed: {allowed})")
        return ks


def stage_slots(stage: Any) -> tuple[Slot, Slot]:
    """``(first, later)`` slots of a stage config."""

    def slot(stride: int) -> Slot:
        return Slot(stride, tuple(KindSlot.of(c, stride) for c in stage.choices), stage.out_channels)

    first = slot(stage.stride)
    return first, (first if stage.stride == 1 else slot(1))
