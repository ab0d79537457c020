"""The trial gate's clean-up of trials left RUNNING by killed processes."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import optuna
from optuna.trial import TrialState

import nas.search._gate as gate_module
from nas.search._gate import Heartbeat, StudyLock, TrialGate, beatless_trial_ids, heartbeat_storage


def _gate(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = heartbeat_storage(url, heartbeat_seconds=1)  # grace period 3 s
    study = optuna.create_study(study_name="s", storage=storage)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    lock = StudyLock(url, "s")
    return study, storage, TrialGate(study, storage, lock, target=5), lock


class _Later(datetime):
    """``datetime`` whose ``now()`` is a minute ahead: trials started now look old."""

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + timedelta(seconds=60)


def test_a_trial_that_never_beat_is_failed_and_retried_once_it_is_older_than_the_grace_period(tmp_path, monkeypatch):
    study, storage, gate, lock = _gate(tmp_path)
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # its process "died" before beating
    alive = study.ask()
    beat = Heartbeat(storage, gate.trial_id(alive))
    try:
        gate.fail_stale()  # just asked: a live process is about to record its first beat
        assert study.get_trials()[orphan.number].state == TrialState.RUNNING
        assert beatless_trial_ids(storage, gate._study_id) == []

        monkeypatch.setattr(gate_module, "datetime", _Later)
        assert beatless_trial_ids(storage, gate._study_id) == [gate.trial_id(orphan)]
        gate.fail_stale()
        trials = study.get_trials()
        assert trials[orphan.number].state == TrialState.FAIL
        assert trials[alive.number].state == TrialState.RUNNING  # it beats: not touched
        retry = [t for t in trials if t.system_attrs.get("failed_trial") == orphan.number]
        assert len(retry) == 1 and retry[0].state == TrialState.WAITING
        assert retry[0].params == trials[orphan.number].params
        gate.fail_stale()  # a second pass fails nothing more and enqueues no second retry
        assert len(study.get_trials()) == len(trials)
    finally:
        beat.stop()
        lock.close()
