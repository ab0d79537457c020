"""Mapping between an :class:`Arch` and the Optuna parameters that :func:`suggest_arch` draws."""

from __future__ import annotations

from typing import Any

from nas.blocks import arch_to_token, kind_of_arch
from nas.space import Arch, KindSlot, SearchSpace, Slot

__all__ = ["arch_to_params", "block_to_params"]


def _kind_params(ks: KindSlot, block, base: str, params: dict[str, Any]) -> None:
    if ks.complete:
        for name, values in ks.axes:
            if len(values) > 1:
                params[f"{base}.{name}"] = getattr(block, name)
    elif len(ks.options) > 1:
        params[f"{base}.choice"] = arch_to_token(block)


def block_to_params(slot: Slot, block, prefix: str) -> dict[str, Any]:
    """The parameters (:func:`~nas.search.block_params`) that make the block position's
    suggestion return ``block``; the other kinds' parameters of a multi-kind position take their
    smallest pick."""
    params: dict[str, Any] = {}
    if len(slot.kinds) == 1:
        _kind_params(slot.kinds[0], block, prefix, params)
        return params
    kind = kind_of_arch(block)
    params[f"{prefix}.block"] = kind.name
    for ks in slot.kinds:
        _kind_params(ks, block if ks.kind.name == kind.name else ks.extreme(0), f"{prefix}.{ks.kind.name}", params)
    return params


def arch_to_params(arch: Arch, space: SearchSpace) -> dict[str, Any]:
    """Parameters that make :func:`~nas.search.suggest_arch` return ``arch`` (for enqueue_trial).

    Blocks beyond a stage's depth are unused; they repeat the stage's last block (its first
    block's pick when the position rules that pick out, e.g. past a one-block stage: a later
    position's picks include the first's unless the first is strided, so the last later block).
    """
    space.check(arch)
    cfg = space.config
    params: dict[str, Any] = {}
    if len(cfg.resolutions) > 1:
        params["resolution"] = arch.resolution
    if len(cfg.width_multipliers) > 1:
        params["width"] = arch.width
    for i, (stage, blocks) in enumerate(zip(cfg.stages, arch.stages)):
        if len(stage.depths) > 1:
            params[f"s{i}.depth"] = len(blocks)
        for j in range(max(stage.depths)):
            slot = space.slot(i, j)
            block = blocks[min(j, len(blocks) - 1)]
            if slot.problems(block, "") and j >= len(blocks):
                block = slot.extreme(0)  # an unused position that cannot hold the last block's pick
            params.update(block_to_params(slot, block, f"s{i}.b{j}"))
    return params
