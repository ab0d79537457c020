from __future__ import annotations

import optuna
from optuna.trial import TrialState
import pytest

from nas.space import Arch
from nas.search._objective import Objective, suggest_arch
from nas.search._study import (
    best_feasible_trial,
    constraint_values,
    feasible_trials,
    make_sampler,
    open_study,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _latency(candidate) -> float:
    # monotone in size: deeper/wider/bigger kernels cost more (the objective passes a resolved Candidate)
    arch = getattr(candidate, "arch", candidate)
    return arch.resolution / 4 + sum(b.kernel + b.expand + 2 * b.se for b in arch.blocks)


def _accuracy(arch) -> float:
    return 0.5 + 0.01 * sum(b.kernel + b.expand for b in arch.blocks) + 0.001 * arch.resolution


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_constraint_and_best_feasible(tmp_path, tiny_space, sampler):
    budget = 40.0
    study = open_study(f"sqlite:///{tmp_path}/s.db", "t", make_sampler(sampler, seed=0))
    calls = []

    def accuracy(arch):
        calls.append(arch)
        return _accuracy(arch)

    study.optimize(Objective(tiny_space, budget, _latency, accuracy, num_classes=10), n_trials=25)
    assert study.metric_names == ["top1", "latency_ms"]
    trials = study.trials
    for t in trials:
        assert constraint_values(t)[0] == pytest.approx(t.user_attrs["latency_ms"] - budget)
        assert t.user_attrs["params"] > 0 and t.user_attrs["madds"] > 0
        assert Arch.from_json(t.user_attrs["arch_json"]) in tiny_space
    feasible = feasible_trials(study)
    assert all(t.values[1] <= budget for t in feasible)
    best = best_feasible_trial(study)
    assert best is not None and best.values[0] == max(t.values[0] for t in feasible)
    # identical archs are evaluated once
    assert len(calls) == len({t.user_attrs["arch"] for t in trials})


def test_duplicates_reuse_scores(tmp_path, tiny_space):
    study = open_study(f"sqlite:///{tmp_path}/s.db", "d", make_sampler("random", seed=0))
    calls = []
    fixed = tiny_space.smallest()

    def accuracy(arch):
        calls.append(arch)
        return 0.7

    objective = Objective(tiny_space, 100.0, _latency, accuracy, num_classes=10)
    study.enqueue_trial({})
    study.optimize(objective, n_trials=1)
    params = study.trials[0].params
    study.enqueue_trial(params)
    study.optimize(objective, n_trials=1)
    assert len(calls) == 1
    assert study.trials[1].user_attrs["duplicate_of"] == 0
    assert study.trials[1].state == TrialState.PRUNED  # a duplicate never counts as a finished trial
    assert fixed in tiny_space


def test_trial_without_latency_is_infeasible():
    trial = optuna.trial.create_trial(values=[0.5, 1.0], user_attrs={})
    assert constraint_values(trial)[0] == float("inf")


def test_resume_keeps_trials(tmp_path, tiny_space):
    storage = f"sqlite:///{tmp_path}/s.db"
    objective = Objective(tiny_space, 40.0, _latency, _accuracy, num_classes=10)
    open_study(storage, "r", make_sampler("nsga2", 0)).optimize(objective, n_trials=5)
    study = open_study(storage, "r", make_sampler("nsga2", 0))
    assert len(study.trials) == 5
    study.optimize(objective, n_trials=3)
    assert len(open_study(storage, "r", make_sampler("nsga2", 0)).trials) == 8


def test_suggest_arch_covers_space(tiny_space):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1), directions=["maximize", "minimize"])
    seen = set()
    for _ in range(30):
        trial = study.ask()
        arch = suggest_arch(trial, tiny_space)
        tiny_space.check(arch)
        seen.add(arch.depths)
        study.tell(trial, [0.0, 0.0])
    assert len(seen) > 1


def test_unknown_sampler():
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_sampler("cmaes", 0)


def test_enqueued_arch_comes_back(tiny_space):
    from nas.search._params import arch_to_params

    study = optuna.create_study(directions=["maximize", "minimize"])
    for seed in range(5):
        arch = tiny_space.sample(seed)
        study.enqueue_trial(arch_to_params(arch, tiny_space))
        trial = study.ask()
        assert suggest_arch(trial, tiny_space) == arch
        study.tell(trial, [0.0, 0.0])


def test_feasible_seeds_meet_the_budget(tiny_space):
    from nas.search._seeds import feasible_seeds

    fastest = tiny_space.smallest()
    seeds = feasible_seeds(tiny_space, _latency, 30.0, fastest, n=8, seed=0)
    assert len(seeds) == 8 and len({s.to_string() for s in seeds}) == 8
    assert all(_latency(a) <= 30.0 and a in tiny_space for a in seeds)
    assert seeds == feasible_seeds(tiny_space, _latency, 30.0, fastest, n=8, seed=0)


def test_nsga2_breeds_its_second_generation_from_enqueued_seeds():
    # Optuna's own NSGA-II ignores enqueued trials (no generation attribute) and opens its own
    # random generation 0; ours makes them generation 0, the parents of generation 1.
    sampler = make_sampler("nsga2", seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    pop = sampler.population_size
    for _ in range(pop):
        study.enqueue_trial({f"x{j}": 1 for j in range(30)})

    def objective(trial):
        return sum(trial.suggest_categorical(f"x{j}", [0, 1, 2, 3]) for j in range(30)), 0.0

    study.optimize(objective, n_trials=2 * pop)
    key = f"{type(sampler).__name__}:generation"
    assert [t.system_attrs[key] for t in study.trials] == [0] * pop + [1] * pop
    # children of all-ones parents stay near 30 (a mutation or two); random members average 45
    children = [t.values[0] for t in study.trials[pop:]]
    assert max(children) <= 36, children


def test_a_trial_resolves_its_arch_once(tiny_space, monkeypatch):
    """Cost and predicted latency read one resolved Candidate (the review counted three resolves)."""
    from nas.search._objective import Candidate, record_arch

    calls = []
    real = type(tiny_space).resolve

    def counting(self, *args, **kwargs):
        calls.append(args)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_space), "resolve", counting)
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    seen = []
    latency = record_arch(trial, tiny_space.largest(), space=tiny_space, budget_ms=10.0,
                          latency_ms=lambda c: seen.append(c) or 1.5, num_classes=10)
    assert latency == 1.5 and len(calls) == 1
    assert isinstance(seen[0], Candidate) and seen[0].arch == tiny_space.largest()
    assert trial.user_attrs["madds"] == seen[0].cost.madds > 0
