"""The Ray backend on a local 2-CPU cluster: same storage as the local backend, retries, failures."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from optuna.trial import TrialState

from nas.data import load_data
from nas.search._inputs import SearchConfig, prepare
from nas.search._runner import run_study
from nas.space import Arch

ray = pytest.importorskip("ray")


def fake_accuracy(arch: Arch) -> float:
    return 50.0 + sum(b.kernel + b.expand for b in arch.blocks) + 0.1 * arch.resolution


@dataclass(frozen=True)
class FakeScorer:
    """Scores archs without a supernet; optionally misbehaves once, via marker files in ``marks``.

    ``die_on``: the worker process evaluating this arch dies (``os._exit``) the first time.
    ``fail_one``: the first other arch it sees raises on every attempt.
    """

    marks: str | None = None
    die_on: str | None = None
    fail_one: bool = False

    def __call__(self):
        def accuracy(arch: Arch) -> float:
            key = arch.to_string()
            if self.marks and key == self.die_on and _claim(Path(self.marks) / "died"):
                os._exit(1)
            if self.marks and self.fail_one and key != self.die_on:
                victim = Path(self.marks) / "victim"
                if _claim(victim, key) or victim.read_text() == key:
                    raise RuntimeError(f"evaluation of {key} fails")
            return fake_accuracy(arch)

        return accuracy


def _claim(path: Path, text: str = "") -> bool:
    """Create ``path`` unless it exists (atomic across processes)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return True


@pytest.fixture(scope="module")
def splits():
    return load_data("synthetic", synthetic_size=128, channels=3)


def _inputs(tmp_path, tiny_space_file, fake_table, splits, **changes):
    values = dict(device=str(fake_table), budget="2.5ms", space=str(tiny_space_file), data="synthetic",
                  trials=4, run_dir=str(tmp_path / "run"), seed=0, sampler="nsga2")
    return prepare(SearchConfig(**(values | changes)), splits=splits)


def _ray_inputs(tmp_path, tiny_space_file, fake_table, splits, **changes):
    return _inputs(tmp_path, tiny_space_file, fake_table, splits, backend="ray", max_concurrent=2, **changes)


@pytest.mark.slow
def test_ray_trials_land_in_the_same_study_as_local_ones(tmp_path, tiny_space_file, fake_table, splits):
    from nas.search._ray_backend import run_study_ray

    local = _inputs(tmp_path, tiny_space_file, fake_table, splits, trials=3)
    run_study(local, fake_accuracy, progress=False)
    inputs = _ray_inputs(tmp_path, tiny_space_file, fake_table, splits, trials=8)
    assert inputs.storage == local.storage and inputs.study_name == local.study_name
    logs: list[str] = []
    study = run_study_ray(inputs, FakeScorer(), progress=False, log=logs.append, num_cpus=2)
    assert not ray.is_initialized()  # the local cluster was shut down
    trials = study.get_trials()
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 8 and not [t for t in trials if t.state == TrialState.RUNNING]
    by_ray = [t for t in done if t.user_attrs.get("backend") == "ray"]
    assert by_ray and all(t.number >= 3 for t in by_ray)
    local_keys = set(done[0].user_attrs) - {"backend", "worker"}
    assert len({t.user_attrs["arch"] for t in done}) == 8  # no arch scored twice
    for t in done:
        assert local_keys <= set(t.user_attrs)
        assert t.constraints["latency_over_budget_ms"] == pytest.approx(t.user_attrs["latency_ms"] - 2.5)
        arch = Arch.from_json(t.user_attrs["arch_json"])
        assert t.values[0] == pytest.approx(fake_accuracy(arch))
        assert t.values[1] == pytest.approx(t.user_attrs["latency_ms"])
    assert {t.user_attrs["worker"] for t in by_ray}  # scored on Ray workers, not in the driver
    assert (inputs.run_dir / "ray").is_dir() and study.user_attrs["last_search_backend"] == "ray"


@pytest.mark.slow
def test_dead_worker_is_retried_and_a_failing_trial_is_marked_failed(tmp_path, tiny_space_file, fake_table, splits):
    from nas.search._ray_backend import run_study_ray

    marks = tmp_path / "marks"
    marks.mkdir()
    inputs = _ray_inputs(tmp_path, tiny_space_file, fake_table, splits, trials=5)
    scorer = FakeScorer(str(marks), die_on=inputs.fastest.to_string(), fail_one=True)
    study = run_study_ray(inputs, scorer, progress=False, log=lambda _: None, num_cpus=2)
    assert (marks / "died").exists() and (marks / "victim").exists()
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 5
    assert TrialState.FAIL in states and TrialState.RUNNING not in states
    first = study.get_trials()[0]  # the fastest member, whose first worker died: retried, completed
    assert first.state == TrialState.COMPLETE and first.user_attrs["arch"] == inputs.fastest.to_string()
    # failed after its retry: only the victim arch (the sampler may propose it again; never completed)
    failed = {t.user_attrs["arch"] for t in study.get_trials() if t.state == TrialState.FAIL}
    assert failed == {(marks / "victim").read_text()}


def test_backend_settings_are_validated():
    with pytest.raises(ValueError) as info:
        SearchConfig(device="d", budget="1ms", backend="dask", max_concurrent=0)
    assert "backend: 'dask' (allowed: local, ray)" in str(info.value)
    assert "max_concurrent: 0 (allowed: integer >= 1" in str(info.value)
    with pytest.raises(ValueError, match=r"ray_address: 'auto' \(allowed only with backend 'ray'\)"):
        SearchConfig(device="d", budget="1ms", ray_address="auto")


def test_searcher_asks_records_and_tells_our_study(tmp_path, tiny_space_file, fake_table, splits):
    """The searcher alone, driven as Tune drives it (no cluster): target, duplicates, failures."""
    from nas.search import arch_to_params
    from nas.search._ray_backend import ArchSearcher
    from nas.search._runner import latency_fn, open_search_study

    # random sampler: only the fastest member is enqueued (no feasible seeds), so trial numbers are known
    inputs = _ray_inputs(tmp_path, tiny_space_file, fake_table, splits, trials=4, sampler="random")
    session = open_search_study(inputs)
    study = session.study
    told = []
    searcher = ArchSearcher(session.ref, space=inputs.space, budget_ms=inputs.budget_ms,
                            latency_ms=latency_fn(inputs), num_classes=splits.num_classes, max_launch=4,
                            on_complete=lambda s, t: told.append(t.number), session=session)
    first = searcher.suggest("a")
    assert Arch.from_json(first["arch_json"]) == inputs.fastest  # the enqueued fastest member comes first
    running = study.get_trials()[0]
    assert running.state == TrialState.RUNNING and "latency_over_budget_ms" in running.constraints
    searcher.on_trial_complete("a", {"top1": 61.0, "worker": "w:1"})
    study.enqueue_trial(arch_to_params(inputs.fastest, inputs.space))
    second = searcher.suggest("b")  # the duplicate is pruned without a Tune trial, then a new arch goes out
    dup = study.get_trials()[1]
    assert dup.state == TrialState.PRUNED and dup.user_attrs["duplicate_of"] == 0
    assert second["optuna_trial"] == 2
    searcher.on_trial_complete("b", None, error=True)  # both attempts failed on the workers
    assert searcher.suggest("c") is not None and searcher.suggest("d") is not None
    assert searcher.suggest("e") is None  # 4 Tune trials launched (the cap), 2 in flight: wait for them
    searcher.abandon_live()  # the run stops early: in-flight trials failed, not left RUNNING
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED] + [TrialState.FAIL] * 3
    t0 = study.get_trials()[0]
    assert t0.values == [61.0, t0.user_attrs["latency_ms"]] and t0.user_attrs["worker"] == "w:1"
    assert told[:3] == [0, 1, 2]
    assert searcher.suggest("f") is searcher.FINISHED  # the cap is reached and nothing is in flight
    searcher.close()


def test_searcher_survives_pickling_and_reattaches_its_study(tmp_path, tiny_space_file, fake_table, splits):
    """Tune pickles its searcher (experiment state): it must hold the study's URL and name, not the study."""
    import pickle

    from ray import cloudpickle

    from nas.search._ray_backend import ArchSearcher
    from nas.search._runner import latency_fn, open_search_study

    inputs = _ray_inputs(tmp_path, tiny_space_file, fake_table, splits, trials=2, sampler="random")
    session = open_search_study(inputs)
    searcher = ArchSearcher(session.ref, space=inputs.space, budget_ms=inputs.budget_ms,
                            latency_ms=latency_fn(inputs), num_classes=splits.num_classes, max_launch=3,
                            on_complete=lambda s, t: None, session=session)
    assert searcher.suggest("a") is not None  # a live trial with its heartbeat thread
    blob = cloudpickle.dumps(searcher)
    assert b"_thread.lock" not in blob
    copy = pickle.loads(blob)
    assert copy.ref == session.ref and copy.study.study_name == inputs.study_name
    assert copy.suggest("b") is not None  # reattached: asks the same study in its storage
    assert [t.state for t in session.study.get_trials()] == [TrialState.RUNNING] * 2
    searcher.close()
    copy.close()
    assert [t.state for t in session.study.get_trials()] == [TrialState.FAIL] * 2
