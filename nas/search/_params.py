"""Mapping between an :class:`Arch` and the Optuna parameters that :func:`suggest_arch` draws."""

from __future__ import annotations

from typing import Any

from nas.space import Arch, SearchSpace

__all__ = ["arch_to_params"]


def arch_to_params(arch: Arch, space: SearchSpace) -> dict[str, Any]:
    """Parameters that make :func:`~nas.search.suggest_arch` return ``arch`` (for enqueue_trial).

    Blocks beyond a stage's depth are unused; they repeat the stage's last block.
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
            b = blocks[min(j, len(blocks) - 1)]
            for name, value, choices in (
                ("kernel", b.kernel, stage.kernels),
                ("expand", b.expand, stage.expansions),
                ("se", b.se, stage.se),
                ("act", b.act, stage.acts),
            ):
                if len(choices) > 1:
                    params[f"s{i}.b{j}.{name}"] = value
    return params
