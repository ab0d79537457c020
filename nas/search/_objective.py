"""Turning an Optuna trial into an architecture and scoring it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.cost import NetworkCost, layer_cost
from nas.netspec import NetworkSpec
from nas.search._study import CONSTRAINT_NAME
from nas.shapes import LayerSpec, walk
from nas.blocks import arch_to_token
from nas.space import Arch, KindSlot, SearchSpace, Slot

__all__ = ["Candidate", "suggest_arch", "suggest_block", "block_params", "record_arch", "record_metrics", "previous_trial", "Objective"]


@dataclass(frozen=True)
class Candidate:
    """One arch of a trial, resolved once: its network spec and the shape walker's layers.

    Cost and predicted latency both read ``layers``, so a trial resolves and walks its arch once.
    """

    arch: Arch
    spec: NetworkSpec
    layers: tuple[LayerSpec, ...]

    @classmethod
    def resolve(cls, space: SearchSpace, arch: Arch, num_classes: int) -> Candidate:
        spec = space.resolve(arch, num_classes)
        return cls(arch, spec, tuple(walk(spec)))

    @property
    def cost(self) -> NetworkCost:
        spec = self.spec
        return NetworkCost(spec.name, spec.resolution, spec.num_classes, tuple(layer_cost(l) for l in self.layers))


def _choose(trial: optuna.Trial, name: str, choices: tuple):
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))


def block_params(slot: Slot, prefix: str) -> list[tuple[str, tuple]]:
    """The Optuna parameters of one block position: ``(name, choices)`` in suggestion order.

    One kind with independent axes: one parameter per axis (``s2.b1.kernel``, ...). A kind whose
    axes are not independent here (a UIB at a strided position cannot drop both depthwise convs):
    one parameter over its valid picks' tokens (``s2.b0.choice``). Several kinds: ``s2.b1.block``
    picks the kind, and each kind's parameters carry its name (``s2.b1.uib.start``).
    """
    several = len(slot.kinds) > 1
    out: list[tuple[str, tuple]] = []
    if several:
        out.append((f"{prefix}.block", tuple(ks.kind.name for ks in slot.kinds)))
    for ks in slot.kinds:
        base = f"{prefix}.{ks.kind.name}" if several else prefix
        if ks.complete:
            out.extend((f"{base}.{name}", values) for name, values in ks.axes)
        else:
            out.append((f"{base}.choice", tuple(arch_to_token(a) for a in ks.options)))
    return out


def _suggest_kind(trial: optuna.Trial, ks: KindSlot, base: str):
    if ks.complete:
        return ks.kind.arch_type(**{name: _choose(trial, f"{base}.{name}", values) for name, values in ks.axes})
    tokens = tuple(arch_to_token(a) for a in ks.options)
    return ks.options[tokens.index(_choose(trial, f"{base}.choice", tokens))]


def suggest_block(trial: optuna.Trial, slot: Slot, prefix: str):
    """One block's pick from the parameters of :func:`block_params` (every kind's are suggested,
    so the parameter set is fixed, as NSGA-II and multivariate TPE expect)."""
    if len(slot.kinds) == 1:
        return _suggest_kind(trial, slot.kinds[0], prefix)
    names = tuple(ks.kind.name for ks in slot.kinds)
    chosen = _choose(trial, f"{prefix}.block", names)
    picks = {ks.kind.name: _suggest_kind(trial, ks, f"{prefix}.{ks.kind.name}") for ks in slot.kinds}
    return picks[chosen]


def suggest_arch(trial: optuna.Trial, space: SearchSpace) -> Arch:
    """Every choice of the space as a categorical parameter (``s2.depth``, ``s2.b1.kernel``, ...).

    Blocks beyond a stage's depth are suggested too (fixed parameter set, as NSGA-II and
    multivariate TPE expect) and ignored; duplicates are caught by :class:`Objective`. Block
    parameters: :func:`block_params`.
    """
    cfg = space.config
    resolution = int(_choose(trial, "resolution", cfg.resolutions))
    width = float(_choose(trial, "width", cfg.width_multipliers))
    stages = []
    for i, stage in enumerate(cfg.stages):
        depth = int(_choose(trial, f"s{i}.depth", stage.depths))
        blocks = [suggest_block(trial, space.slot(i, j), f"s{i}.b{j}") for j in range(max(stage.depths))]
        stages.append(tuple(blocks[:depth]))
    return Arch(space.name, resolution, width, tuple(stages))


def record_arch(
    trial: optuna.Trial,
    arch: Arch,
    *,
    space: SearchSpace,
    budget_ms: float,
    latency_ms: Callable[[Candidate], float],
    num_classes: int,
) -> float:
    """Store everything known before scoring ``arch`` on its trial; return its predicted latency.

    User attrs ``arch``, ``arch_json``, ``budget_ms``, ``params``, ``madds``, ``latency_ms``, and the
    budget constraint ``latency - budget`` (<= 0: feasible). Every backend records trials through
    this function, so the storage looks the same whichever one ran them. The arch is resolved
    once (:class:`Candidate`); ``latency_ms`` and the cost model read the same layers.
    """
    candidate = Candidate.resolve(space, arch, num_classes)
    latency = float(latency_ms(candidate))
    trial.set_user_attr("arch", arch.to_string())
    trial.set_user_attr("arch_json", arch.to_json(indent=None))
    trial.set_constraint(CONSTRAINT_NAME, latency - budget_ms)
    trial.set_user_attr("budget_ms", budget_ms)
    cost = candidate.cost
    trial.set_user_attr("params", cost.params)
    trial.set_user_attr("madds", cost.madds)
    trial.set_user_attr("latency_ms", latency)
    return latency


def record_metrics(trial: optuna.Trial, score: dict[str, float] | float, metric: str) -> float:
    """Store a score's metrics as user attributes (``mAP``, ``f1_micro``, ...); return the primary one.

    ``score``: a dict of the task's metrics, or the primary metric alone (a float).

    Raises:
        KeyError: the dict lacks ``metric``.
    """
    metrics = dict(score) if isinstance(score, dict) else {metric: float(score)}
    if metric not in metrics:
        raise KeyError(f"the score has no {metric!r} (it has {sorted(metrics)})")
    for name, value in metrics.items():
        trial.set_user_attr(name, float(value))
    return float(metrics[metric])


def previous_trial(study: optuna.Study, key: str) -> FrozenTrial | None:
    """A completed trial of the arch whose string form is ``key``, if there is one."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("arch") == key:
            return t
    return None


class Objective:
    """Callable for ``study.optimize`` in one process: suggest, deduplicate, score, record.

    A duplicate of a finished trial's arch is pruned (user attribute ``duplicate_of``), so it never
    counts as a finished trial. ``python -m nas.search`` does not use this class: its runner
    (:func:`nas.search.run_study`) also keeps several processes on one study from scoring an arch
    twice or overshooting the trial count.

    Args:
        space: the search space.
        budget_ms: latency budget; ``latency - budget`` is the trial's constraint (<= 0: feasible).
        latency_ms: predicted latency of a :class:`Candidate` on the target device (at its deploy resolution).
        score: the task's validation metrics of an arch (inherited supernet weights, BN
            recalibrated): a dict of metrics, or the primary metric alone.
        num_classes: for params/MAdds of the deployed network.
        metric: the primary metric's name (``top1``, ``mAP``), the trial's first value.
    """

    def __init__(
        self,
        space: SearchSpace,
        budget_ms: float,
        latency_ms: Callable[[Candidate], float],
        score: Callable[[Arch], dict[str, float] | float],
        num_classes: int,
        metric: str = "top1",
    ) -> None:
        self.space = space
        self.budget_ms = budget_ms
        self.latency_ms = latency_ms
        self.score = score
        self.num_classes = num_classes
        self.metric = metric

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        arch = suggest_arch(trial, self.space)
        latency = record_arch(trial, arch, space=self.space, budget_ms=self.budget_ms, latency_ms=self.latency_ms,
                              num_classes=self.num_classes)
        previous = previous_trial(trial.study, arch.to_string())
        if previous is not None:  # identical arch: not evaluated again, and not counted as finished
            trial.set_user_attr("duplicate_of", previous.number)
            raise optuna.TrialPruned(f"arch of trial {previous.number}")
        value = record_metrics(trial, self.score(arch), self.metric)
        return value, latency
