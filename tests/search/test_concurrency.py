"""Several processes on one study, on SQLite and on a real PostgreSQL server: exact trial counts,
no arch scored twice, nothing lost to ``kill -9``; the Ray backend with two workers on PostgreSQL.

The searches run as real ``python -m nas.search`` processes on a tiny space, synthetic data, a
synthetic latency table and a smoke supernet trained once for the module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.data import load_data
from nas.search._pipeline import ensure_supernet
from nas.search._inputs import SearchConfig, prepare
from tests.conftest import TINY_SPACE
from tests.search.conftest import write_fake_table

ROOT = Path(__file__).resolve().parents[2]
BUDGET = "2.5ms"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Space file, fake table and a trained smoke supernet, shared by the module's searches."""
    from nas.space import load_space

    base = tmp_path_factory.mktemp("concurrency")
    space_file = base / "tiny.yaml"
    space_file.write_text(TINY_SPACE)
    table = write_fake_table(load_space(space_file), base / "fake_phone.json")
    cfg = SearchConfig(device=str(table), budget=BUDGET, space=str(space_file), data="synthetic",
                       run_dir=str(base / "prep"), supernet=str(base / "supernet"), smoke=True)
    inputs = prepare(cfg, splits=load_data("synthetic", channels=3))
    ensure_supernet(inputs, progress=False, log=lambda _: None)
    return {"space": space_file, "table": table, "supernet": base / "supernet", "study": inputs.study_name}


def _command(env, run_dir: Path, storage: str, trials: int) -> list[str]:
    return [sys.executable, "-m", "nas.search", "--device", str(env["table"]), "--budget", BUDGET,
            "--space", str(env["space"]), "--data", "synthetic", "--supernet", str(env["supernet"]),
            "--run-dir", str(run_dir), "--storage", storage, "--trials", str(trials), "--no-export",
            "--val-limit", "0", "--calib-images", "256", "--threads", "1", "--no-progress",
            "--heartbeat-seconds", "1"]


#: ``python -c`` body: ``nas.search`` whose every trial is scored, then held for a second, so a test
#: polling the study sees a claimed trial mid-way (a trial on this tiny space otherwise takes a few
#: milliseconds, and a kill meant to land mid-trial landed between trials or after the last one).
SLOW_TRIALS = """
import sys, time
import nas.search._pipeline as pipeline
from nas.search.__main__ import main

make_score_fn = pipeline.make_score_fn

def slow_score_fn(*args, **kwargs):
    score = make_score_fn(*args, **kwargs)
    def held(arch):
        metrics = score(arch)
        time.sleep(1.0)
        return metrics
    return held

pipeline.make_score_fn = slow_score_fn
sys.exit(main(sys.argv[1:]))
"""


def _held_trials(cmd: list[str]) -> list[str]:
    """``cmd`` (a ``python -m nas.search`` command) with every trial held for a second once scored."""
    assert cmd[1:3] == ["-m", "nas.search"]
    return [cmd[0], "-c", SLOW_TRIALS, *cmd[3:]]


def _spawn(cmd: list[str], log: Path) -> subprocess.Popen:
    child_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _storage(kind: str, tmp_path: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgresql_url")


def _load(env, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=env["study"], storage=storage)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_on_one_study_reach_the_target_exactly(env, kind, tmp_path, request):
    storage = _storage(kind, tmp_path, request)
    trials = 24
    procs = [_spawn(_command(env, tmp_path / f"run{i}", storage, trials), tmp_path / f"log{i}") for i in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    logs = [(tmp_path / f"log{i}").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    study = _load(env, storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == trials  # exactly the target, no overshoot
    archs = [t.user_attrs["arch"] for t in complete]
    assert len(set(archs)) == trials  # no arch scored twice
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert not study.get_trials(states=(TrialState.FAIL,))  # nothing failed, nothing lost
    workers = {t.user_attrs["worker"] for t in complete}
    assert len(workers) == 2, "both processes scored trials"
    assert study.user_attrs["runs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_mid_trial_then_rerun_completes_the_study(env, kind, tmp_path, request):
    storage = _storage(kind, tmp_path, request)
    trials = 10
    victim = None
    for attempt in range(3):  # a kill that lands between two trials leaves nothing running: try again
        cmd = _command(env, tmp_path / f"run{attempt}", storage, trials)
        proc = _spawn(_held_trials(cmd), tmp_path / f"log{attempt}")
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                study = _load(env, storage)
            except KeyError:  # not created yet
                time.sleep(0.05)
                continue
            trials_now = study.get_trials(deepcopy=False)
            done = [t for t in trials_now if t.state == TrialState.COMPLETE]
            claimed = [t for t in trials_now if t.state == TrialState.RUNNING and t.user_attrs.get("claimed") == t.number]
            if len(done) >= 2 and claimed:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait()
        if proc.returncode == 0:  # the run finished before a poll saw a trial mid-way: start it afresh
            optuna.delete_study(study_name=env["study"], storage=storage)
            continue
        assert proc.returncode == -signal.SIGKILL, (tmp_path / f"log{attempt}").read_text()
        running = _load(env, storage).get_trials(states=(TrialState.RUNNING,))
        if running:
            victim = running[0]
            break
    assert victim is not None, "in three runs no kill landed mid-trial (between trials, or after the last one)"
    killed = victim.number
    study = _load(env, storage)
    before = {t.number for t in study.get_trials(states=(TrialState.COMPLETE,))}

    rerun = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    study = _load(env, storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == trials
    assert before <= {t.number for t in complete}  # no completed trial lost
    assert study.get_trials()[killed].state == TrialState.FAIL  # failed by the heartbeat
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].user_attrs["arch"] == victim.user_attrs["arch"]
    assert len({t.user_attrs["arch"] for t in complete}) == trials
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))


@pytest.mark.slow
def test_ray_backend_with_two_workers_on_postgresql(env, tmp_path, postgresql_url):
    from nas.search._ray_backend import run_study_ray
    from nas.search._runner import run_study
    from tests.search.test_ray_backend import FakeScorer, fake_accuracy

    pytest.importorskip("ray")
    splits = load_data("synthetic", synthetic_size=128, channels=3)

    def inputs(**changes):
        values = dict(device=str(env["table"]), budget=BUDGET, space=str(env["space"]), data="synthetic",
                      run_dir=str(tmp_path / "run"), storage=postgresql_url, seed=0)
        return prepare(SearchConfig(**(values | changes)), splits=splits)

    run_study(inputs(trials=2), fake_accuracy, progress=False, log=lambda _: None)
    study = run_study_ray(inputs(trials=8, backend="ray", max_concurrent=2), FakeScorer(), progress=False,
                          log=lambda _: None, num_cpus=2)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 8 and len({t.user_attrs["arch"] for t in complete}) == 8
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    by_ray = [t for t in complete if t.user_attrs.get("backend") == "ray"]
    assert len(by_ray) == 6
    for t in complete:
        assert t.values[0] == pytest.approx(fake_accuracy(optuna_arch(t)))


def optuna_arch(trial):  # noqa: D103
    from nas.space import Arch

    return Arch.from_json(trial.user_attrs["arch_json"])
