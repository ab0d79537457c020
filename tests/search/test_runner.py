"""The local runner: a re-run does not replay the first run's proposals, duplicates never count."""

from __future__ import annotations

from optuna.trial import TrialState

from nas.data import load_data
from nas.search._inputs import SearchConfig, prepare
from nas.search._runner import open_search_study, run_study, sampler_seed


def _inputs(tmp_path, tiny_space_file, fake_table, **changes):
    values = dict(device=str(fake_table), budget="2.5ms", space=str(tiny_space_file), data="synthetic",
                  run_dir=str(tmp_path / "run"), seed=0, sampler="random", trials=5)
    return prepare(SearchConfig(**(values | changes)), splits=load_data("synthetic", synthetic_size=64, channels=3))


def test_sampler_seed_is_the_given_one_for_the_first_run_only():
    assert sampler_seed(7, 0) == 7
    assert len({sampler_seed(7, run) for run in range(5)}) == 5


def test_a_rerun_scores_new_archs_and_counts_only_distinct_ones(tmp_path, tiny_space_file, fake_table):
    scored: list[str] = []

    def accuracy(arch):
        scored.append(arch.to_string())
        return 50.0 + len(scored)

    run_study(_inputs(tmp_path, tiny_space_file, fake_table), accuracy, progress=False, log=lambda _: None)
    study = run_study(_inputs(tmp_path, tiny_space_file, fake_table, trials=10), accuracy, progress=False,
                      log=lambda _: None)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 10 and len(scored) == 10 and len(set(scored)) == 10
    assert {t.user_attrs["arch"] for t in complete} == set(scored)
    for t in study.get_trials(states=(TrialState.PRUNED,)):
        assert "duplicate_of" in t.user_attrs  # a proposal of an arch already scored: pruned, not counted
    assert study.user_attrs["runs"] == 2


def test_opening_counts_runs_and_reseeds(tmp_path, tiny_space_file, fake_table):
    inputs = _inputs(tmp_path, tiny_space_file, fake_table)
    first, second = open_search_study(inputs), open_search_study(inputs)
    assert (first.ref.sampler_seed, second.ref.sampler_seed) == (0, sampler_seed(0, 1))
    assert second.study.user_attrs["runs"] == 2
    assert len(second.study.trials) == 1  # the fastest member is enqueued once, not per opening
    first.close()
    second.close()
