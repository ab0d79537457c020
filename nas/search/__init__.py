"""Multi-objective search (the task's metric, e.g. top-1 or mAP, vs predicted latency under a budget) with Optuna.

``python -m nas.search --device pixel_cpu --budget 20ms`` runs the whole pipeline; the pieces are
importable for other drivers (the Ray backend uses the same objective and storage).
"""

from nas.search._objective import Objective, suggest_arch
from nas.search._params import arch_to_params
from nas.search._inputs import BudgetError, SearchConfig, SearchInputs, StorageError, prepare, supernet_dir
from nas.search._runner import open_search_study, run_study
from nas.search._scoring import ScoreFn, SupernetScorer, make_score_fn
from nas.search._study import (
    CONSTRAINT_NAME,
    LATENCY_OBJECTIVE,
    SAMPLERS,
    StudyTaskError,
    best_feasible_trial,
    constraint_values,
    dashboard_command,
    feasible_trials,
    make_sampler,
    objective_names,
    open_study,
)

__all__ = [
    "CONSTRAINT_NAME",
    "LATENCY_OBJECTIVE",
    "SAMPLERS",
    "ScoreFn",
    "StudyTaskError",
    "BudgetError",
    "Objective",
    "SearchConfig",
    "SearchInputs",
    "StorageError",
    "SupernetScorer",
    "arch_to_params",
    "best_feasible_trial",
    "constraint_values",
    "dashboard_command",
    "feasible_trials",
    "make_sampler",
    "make_score_fn",
    "objective_names",
    "open_search_study",
    "open_study",
    "prepare",
    "run_study",
    "suggest_arch",
    "supernet_dir",
]
