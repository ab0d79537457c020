"""Feasible starting points: random members repaired until they meet the budget.

Predicting latency is a table lookup (microseconds) while scoring accuracy takes seconds, so the
budget is checked before any evaluation: a random member that is over budget is shrunk step by
step (a stage loses its last block, a block takes the fastest member's setting, the resolution
drops) until it fits. Seeding the sampler's first generation with such members puts it on the
feasible side of the constraint from the start instead of spending its first generations there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nas.space import Arch, SearchSpace

__all__ = ["feasible_seeds"]


def _shrink(arch: Arch, fastest: Arch, space: SearchSpace, rng: np.random.Generator) -> Arch:
    stages = [list(s) for s in arch.stages]
    cfg = space.config
    move = int(rng.integers(3))
    if move == 0 and arch.resolution > fastest.resolution:
        lower = [r for r in cfg.resolutions if r < arch.resolution]
        return Arch(arch.space, max(lower), arch.width, arch.stages)
    i = int(rng.integers(len(stages)))
    if move == 1 and len(stages[i]) > min(cfg.stages[i].depths):
        allowed = [d for d in cfg.stages[i].depths if d < len(stages[i])]
        stages[i] = stages[i][: max(allowed)]
    else:
        j = int(rng.integers(len(stages[i])))
        stages[i][j] = fastest.stages[i][min(j, len(fastest.stages[i]) - 1)]
    if arch.width > fastest.width and rng.random() < 0.2:
        width = max(w for w in cfg.width_multipliers if w < arch.width)
        return Arch(arch.space, arch.resolution, width, tuple(tuple(s) for s in stages))
    return Arch(arch.space, arch.resolution, arch.width, tuple(tuple(s) for s in stages))


def feasible_seeds(
    space: SearchSpace,
    latency: Callable[[Arch], float],
    budget_ms: float,
    fastest: Arch,
    n: int,
    seed: int = 0,
    max_steps: int = 400,
) -> list[Arch]:
    """Up to ``n`` distinct members within ``budget_ms`` (random members, shrunk until they fit)."""
    rng = np.random.default_rng([seed, 7919])
    seeds: dict[str, Arch] = {}
    for _ in range(4 * n):
        if len(seeds) >= n:
            break
        arch = space.sample(rng)
        for _ in range(max_steps):
            if latency(arch) <= budget_ms:
                seeds.setdefault(arch.to_string(), arch)
                break
            arch = _shrink(arch, fastest, space, rng)
    return list(seeds.values())
