"""The Optuna study: two objectives (the task's primary metric and latency), the latency budget as a
hard constraint, resumable storage."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.tasks import SingleLabel, Task

__all__ = [
    "CONSTRAINT_NAME",
    "LATENCY_OBJECTIVE",
    "objective_names",
    "StudyTaskError",
    "SAMPLERS",
    "constraint_values",
    "make_sampler",
    "SeededNSGAIISampler",
    "open_study",
    "default_storage",
    "study_name_for",
    "feasible_trials",
    "best_feasible_trial",
    "dashboard_command",
]

LATENCY_OBJECTIVE = "latency_ms"
#: The name studies of single-label tasks gave their first objective before tasks had one home.
_LEGACY_METRIC = "accuracy"


class StudyTaskError(ValueError):
    """A study's existing trials were scored with another task's metric."""


def objective_names(task: Task) -> tuple[str, str]:
    """The study's objectives: the task's primary metric (``top1``, ``mAP``), then ``latency_ms``."""
    return task.metric, LATENCY_OBJECTIVE
SAMPLERS = ("tpe", "nsga2", "random")


CONSTRAINT_NAME = "latency_over_budget_ms"


def constraint_values(trial: FrozenTrial) -> Sequence[float]:
    """Optuna's convention: a trial is feasible when every value is <= 0.

    The value is ``predicted latency - budget`` in ms, set by the objective with
    ``trial.set_constraint`` (Optuna >= 5 stores it with the trial; samplers, the Pareto plot and
    the dashboard read it from there). A trial without it counts as infeasible.
    """
    return (float(trial.constraints.get(CONSTRAINT_NAME, float("inf"))),)


class SeededNSGAIISampler(optuna.samplers.NSGAIISampler):
    """NSGA-II whose first generation includes the enqueued trials.

    Optuna's NSGA-II only counts trials that it sampled itself (they carry its generation
    attribute); an enqueued trial never gets one, so NSGA-II ignores enqueued starting points and
    opens its own generation 0 with random members. Here an enqueued trial is assigned its
    generation when it starts, with the rule sampled trials follow (the current generation until
    it holds ``population_size`` finished trials), so the feasible seeds form (part of) generation
    0 and become the parents of generation 1.
    """

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        super().before_trial(study, trial)
        if "fixed_params" in trial.system_attrs:
            self.get_trial_generation(study, trial)


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """``tpe`` (default), ``nsga2`` or ``random``; the first two honour the budget constraint.

    TPE is the default because it measured best at the trial counts a search here affords (40-60):
    higher hypervolume and best accuracy than NSGA-II and random search at two budgets, three seeds
    each (``benchmarks/SEARCH.md``); NSGA-II with a population of 20 only gets two or three
    generations in that many trials.
    """
    # Both read the constraint each trial stores (trial.set_constraint); no constraints_func needed.
    if name == "nsga2":
        return SeededNSGAIISampler(population_size=20, seed=seed)
    if name == "tpe":
        # constant_liar: trials in flight on other workers (Ray backend) count as poor, so
        # concurrent workers do not all propose the same arch; no effect on a sequential search.
        with warnings.catch_warnings():  # both options are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(n_startup_trials=10, seed=seed, multivariate=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {name!r}")


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def study_name_for(space: str, device: str, budget_ms: float) -> str:
    return f"{space}-{device}-{budget_ms:g}ms"


def open_study(
    storage: str, study_name: str, sampler: optuna.samplers.BaseSampler, task: Task | None = None
) -> optuna.Study:
    """Create the study, or load it to resume (same storage and name).

    Objective names and directions come from ``task`` (default single-label): the dashboard shows
    ``mAP`` or ``top1`` against ``latency_ms``.

    Raises:
        StudyTaskError: the stored study's trials were scored with another metric or direction.
    """
    task = task or SingleLabel()
    names = list(objective_names(task))
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        sampler=sampler,
        directions=[task.direction, "minimize"],
        load_if_exists=True,
    )
    stored = list(study.metric_names or [])
    wanted_dirs = [optuna.study.StudyDirection.MAXIMIZE if task.direction == "maximize"
                   else optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MINIMIZE]
    legacy = stored == [_LEGACY_METRIC, LATENCY_OBJECTIVE] and task.metric == SingleLabel.metric
    if (stored and stored != names and not legacy) or list(study.directions) != wanted_dirs:
        raise StudyTaskError(
            f"study {study_name!r} in {storage} holds trials scored by {stored or 'other objectives'} "
            f"({', '.join(d.name.lower() for d in study.directions)}); this run scores {names} for a {task.name} "
            "task: use another --run-dir or --storage"
        )
    if stored != names:
        with warnings.catch_warnings():  # set_metric_names is "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if constraint_values(t)[0] <= 0
    ]


def best_feasible_trial(study: optuna.Study) -> FrozenTrial | None:
    """The trial with the best primary metric within the budget (ties: the faster one)."""
    trials = feasible_trials(study)
    if not trials:
        return None
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return max(trials, key=lambda t: (sign * t.values[0], -t.values[1]))


def dashboard_command(storage: str) -> str:
    return f"optuna-dashboard {storage} --host 127.0.0.1 --port 8080"
