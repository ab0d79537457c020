"""Who may score which arch: exact trial counts and no arch scored twice, with any number of workers.

Several processes may work on one study at once (two ``nas.search`` commands on one storage, a
Ray driver beside a local run, a re-run after ``kill -9``). Optuna's ``ask``/``tell`` are each one
transaction, but "count the finished trials, check that nobody scores this arch, then start"
is three steps. :class:`StudyLock` makes them one: a lock shared by every process on the study's
storage (an ``flock`` beside a SQLite file, a PostgreSQL advisory lock), held only for those few
reads and one write.

Inside the lock a trial that is about to be scored *claims* its slot (user attribute ``claimed``,
its own number).
:meth:`TrialGate.admit` answers, for a trial whose arch is recorded:

- ``duplicate``: a finished or claimed trial has the same arch; the trial is pruned with
  ``duplicate_of`` and never counts as finished (a resumed run's sampler may propose archs again);
- ``full``: finished + claimed trials already reach the target; the caller waits for a slot
  (a claimed trial may still fail) or stops when the target is reached;
- ``score``: the trial holds a slot; score it and tell the study.

A claimed trial of a killed process keeps its slot until its heartbeat goes stale
(:func:`heartbeat_storage`); :meth:`TrialGate.fail_stale` then fails it and Optuna re-enqueues its
arch, which a later trial scores. A process killed between asking for a trial and its first
heartbeat (a few milliseconds) leaves a RUNNING trial that Optuna's stale check never sees, since
it only looks at trials with a heartbeat; :meth:`TrialGate.fail_stale` fails those too once they
are older than the grace period.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "DEFAULT_HEARTBEAT_SECONDS",
    "StudyLock",
    "heartbeat_storage",
    "sqlite_path",
    "Heartbeat",
    "Admission",
    "TrialGate",
    "ask",
    "mark_not_scored",
]

#: Heartbeat interval of a running trial; a trial is stale (its process is gone) after 3 missed beats.
DEFAULT_HEARTBEAT_SECONDS = 10.0

#: The lock name that serialises the first opening of a storage (table creation).
STORAGE_LOCK_NAME = "nas: storage schema"

#: SQLite waits this long for another process's write before "database is locked".
SQLITE_BUSY_SECONDS = 120


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL, ``None`` for other storages or in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


class StudyLock:
    """A lock shared by every process that works on one study of one storage.

    SQLite: ``flock`` on ``<db>.lock`` beside the database (SQLite is only safe on one machine's
    file system anyway). PostgreSQL: a session advisory lock keyed by the study name, on a
    connection of its own. Other storages get no lock (a notice says so): counts may overshoot by
    the trials in flight when several processes share a study.
    """

    def __init__(self, url: str, study_name: str, *, log: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.study_name = study_name
        self._file = None
        self._engine = None
        self._conn = None
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
        self._local = threading.Lock()  # threads of one process (the lock below is per process)
        db = sqlite_path(url)
        if db is not None:
            self._file = open(f"{db}.lock", "a+")  # noqa: SIM115 (held for the lock's lifetime)
        elif url.startswith("postgresql"):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()
        elif log is not None:
            log(f"note: no cross-process lock for storage {url.split(':', 1)[0]!r}; several processes on one "
                "study may overshoot --trials by the trials in flight")

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._local:
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(self._file, fcntl.LOCK_UN)
            elif self._conn is not None:
                import sqlalchemy

                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
                self._conn.commit()
                try:
                    yield
                finally:
                    self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    self._conn.commit()
            else:
                yield

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()
            self._conn = self._engine = None


def heartbeat_storage(url: str, *, heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS) -> optuna.storages.RDBStorage:
    """An RDB storage whose running trials beat, so a trial left RUNNING by a killed process is failed
    (after ``3 * heartbeat_seconds``) and its arch retried once instead of holding a slot forever.

    Opened under a storage-wide lock: the first opening of a new database creates Optuna's tables,
    and two processes doing that at once make one of them fail.
    """
    kwargs = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    lock = StudyLock(url, STORAGE_LOCK_NAME)
    try:
        with lock.held(), warnings.catch_warnings():  # the heartbeat API is flagged "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=max(1, round(heartbeat_seconds)),
                grace_period=max(3, round(3 * heartbeat_seconds)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                **kwargs,
            )
            if sqlite_path(url) is not None:
                _fast_sqlite(storage)
            return storage
    finally:
        lock.close()


def _fast_sqlite(storage: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging with ``synchronous=NORMAL`` on every connection of a SQLite storage.

    Optuna writes each parameter and attribute of a trial in a transaction of its own (about 70
    per trial here); with SQLite's defaults each commit waits for an fsync of the rollback journal
    and the database (about 2 ms here), which made the driver of a Ray search spend ~0.5 s per
    trial. In WAL mode a commit appends to the log and fsyncs only at checkpoints; a killed process
    loses nothing that was committed (only a power cut may lose the last transactions), and
    readers no longer block the writer of another process.
    """
    import sqlalchemy

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()  # connections made while Optuna created its tables reconnect with it


def beatless_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials of a study that never recorded a heartbeat and started longer than the
    storage's grace period ago: their process died between ``ask`` and :class:`Heartbeat`.

    Reads Optuna's heartbeat table directly (its public API has no "has this trial beaten?").
    Start times are Optuna's (the asking process's local clock), compared with this process's.
    """
    import sqlalchemy.orm
    from optuna.storages._rdb import models

    grace = storage.grace_period or 2 * (storage.get_heartbeat_interval() or DEFAULT_HEARTBEAT_SECONDS)
    cutoff = datetime.now() - timedelta(seconds=grace)
    with sqlalchemy.orm.Session(storage.engine) as session:
        beaten = session.query(models.TrialHeartbeatModel.trial_id)
        rows = (session.query(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(models.TrialModel.trial_id.not_in(beaten))
                .all())
        return [t.trial_id for t in rows if t.datetime_start is not None and t.datetime_start < cutoff]


class Heartbeat:
    """Records heartbeats of one running trial in a thread until :meth:`stop`."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self._stop = threading.Event()
        interval = storage.get_heartbeat_interval() or DEFAULT_HEARTBEAT_SECONDS
        storage.record_heartbeat(trial_id)

        def beat() -> None:
            while not self._stop.wait(interval):
                storage.record_heartbeat(trial_id)

        self._thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class Admission:
    """What :meth:`TrialGate.admit` decided for one trial."""

    decision: Literal["score", "duplicate", "full"]
    previous: FrozenTrial | None = None  # the finished or claimed trial of the same arch (duplicate)


def ask(study: optuna.Study, lock: StudyLock) -> optuna.Trial:
    """``study.ask()`` under the study lock, without Optuna's warning that heartbeats are meant for
    ``optimize`` (the runners record them themselves: :class:`Heartbeat`).

    Under the lock because on SQLite two processes popping the same enqueued trial at once could
    both get it (the row lock that makes this safe on PostgreSQL does not exist there).
    """
    with lock.held(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")
        return study.ask()


def mark_not_scored(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """End a trial that was asked but will not be scored: pruned, so it never counts as finished."""
    trial.set_user_attr("not_scored", reason)
    study.tell(trial, state=TrialState.PRUNED)


class TrialGate:
    """Admission of trials to scoring, shared by every backend (see the module docstring).

    Args:
        study: the run's study, opened on ``storage``.
        storage: its heartbeat storage (:func:`heartbeat_storage`).
        lock: the study's :class:`StudyLock`.
        target: finished (COMPLETE) trials the study should reach.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage, lock: StudyLock, target: int) -> None:
        self.study = study
        self.storage = storage
        self.lock = lock
        self.target = target
        self._study_id = storage.get_study_id_from_name(study.study_name)

    def trial_id(self, trial: optuna.Trial | FrozenTrial) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)

    def _snapshot(self, exclude: int | None = None) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        # the claim holds the trial's own number: a retried trial inherits its original's user
        # attributes, and with them a claim that is not its own
        claimed = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("claimed") == t.number
                   and t.number != exclude]
        return complete, claimed

    def finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def reached(self) -> bool:
        return self.finished() >= self.target

    def has_room(self) -> bool:
        """Whether a new trial could get a slot now (finished + claimed < target)."""
        complete, claimed = self._snapshot()
        return len(complete) + len(claimed) < self.target

    def admit(self, trial: optuna.Trial) -> Admission:
        """Claim a slot for ``trial`` (its ``arch`` user attribute recorded), or say why not."""
        key = trial.user_attrs["arch"]
        with self.lock.held():
            complete, claimed = self._snapshot(exclude=trial.number)
            for other in complete + claimed:
                if other.user_attrs.get("arch") == key:
                    trial.set_user_attr("duplicate_of", other.number)
                    return Admission("duplicate", other)
            if len(complete) + len(claimed) >= self.target:
                return Admission("full")
            trial.set_user_attr("claimed", trial.number)
            trial.set_user_attr("worker", f"{os.uname().nodename}:{os.getpid()}")
            return Admission("score")

    def fail_stale(self) -> None:
        """Fail trials whose process stopped beating, or never beat (their arch is re-enqueued once)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
            callback = self.storage.get_heartbeat_stale_trial_callback()
        for trial_id in beatless_trial_ids(self.storage, self._study_id):
            try:
                if not self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:  # another process failed it first
                continue
            if callback is not None:
                callback(self.study, self.storage.get_trial(trial_id))

    def wait_for_slot(self, trial: optuna.Trial, *, poll_seconds: float = 1.0) -> Admission:
        """Re-admit ``trial`` until it gets a slot, turns out a duplicate, or the target is reached
        (then it is ended as not scored and ``full`` is returned)."""
        while True:
            admission = self.admit(trial)
            if admission.decision != "full":
                return admission
            if self.reached():
                mark_not_scored(self.study, trial, "the target was reached by other workers")
                return admission
            time.sleep(poll_seconds)
            self.fail_stale()
