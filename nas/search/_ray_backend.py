"""The Ray backend of the search: candidate evaluations run as Ray Tune trials on a Ray cluster.

Optuna owns the study, in the same storage as the single-process backend: a Tune
:class:`~ray.tune.search.Searcher` running in the driver asks the study for a trial, turns it into
an arch with :func:`suggest_arch`, records arch, cost, latency and the budget constraint with
:func:`record_arch` (as :class:`Objective` does), answers duplicates from the storage, and hands
the arch to Tune. A Tune trial on any worker scores it (the task's metrics of the subnet after BN recalibration)
and the searcher tells the study. So ``result.json``, the report and the dashboard are the same
whichever backend ran a trial.

Failures: a trial whose worker dies or raises is retried once by Tune (``FailureConfig``); if the
retry fails too, its Optuna trial is told FAIL and a spare trial replaces it. If the run stops
early (Ctrl-C), trials in flight are told FAIL. While a trial runs, the driver records Optuna
heartbeats for it, so if the driver is killed outright the trial goes stale and the next run of
the study (either backend) fails it and re-enqueues its arch. The study only
changes through ``ask``/``tell``, each one transaction in the RDB storage: it is never half-written.

The scorer (supernet checkpoint + data) travels through Ray's object store once; each worker
process builds its score function once and reuses it for every trial it runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.distributed import ray_cluster  # first: sets Ray's environment defaults before ray is imported
from nas.search._gate import Heartbeat, ask, mark_not_scored
from nas.search._objective import record_arch, record_metrics, suggest_arch
from nas.search._inputs import SearchInputs
from nas.search._runner import SearchProgress, StudyRef, StudySession, latency_fn, open_search_study
from nas.space import Arch, SearchSpace
from ray.tune.search import Searcher

__all__ = ["ArchSearcher", "run_study_ray", "SPARE_TRIALS"]

#: Tune trials allowed beyond the target to replace failed ones (as the local backend's ``+ 5``).
SPARE_TRIALS = 5

#: Per worker process: scorer key -> score function (supernet and data are loaded once).
_WORKER_CACHE: dict[str, Callable[[Arch], Any]] = {}

#: The key of a Tune result that holds the score's metrics.
METRICS_KEY = "metrics"


def _worker_score(key: str, scorer_ref: Any) -> Callable[[Arch], Any]:
    fn = _WORKER_CACHE.get(key)
    if fn is None:
        import ray

        _WORKER_CACHE.clear()  # one study per worker process at a time
        fn = _WORKER_CACHE[key] = ray.get(scorer_ref)()
    return fn


def _make_trainable(scorer_ref: Any, key: str, threads: int, metric: str) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable: score the one arch of its config and report it."""

    def evaluate_arch_trial(config: dict[str, Any]) -> None:
        import torch
        from ray import tune

        torch.set_num_threads(threads)
        score = _worker_score(key, scorer_ref)
        start = time.perf_counter()
        value = score(Arch.from_json(config["arch_json"]))
        metrics = {k: float(v) for k, v in value.items()} if isinstance(value, dict) else {metric: float(value)}
        tune.report({metric: metrics.get(metric), METRICS_KEY: metrics, "eval_seconds": time.perf_counter() - start,
                     "worker": f"{os.uname().nodename}:{os.getpid()}"})

    return evaluate_arch_trial


class ArchSearcher(Searcher):
    """A Tune searcher that asks and tells *our* Optuna study (see the module docstring).

    It holds what reopens the study (:class:`StudyRef`: storage URL, name, sampler settings), not
    the study: Tune pickles its searcher, and the open study, storage and heartbeat threads are
    reattached lazily in the driver. Trials are admitted through the same
    :class:`~nas.search._gate.TrialGate` as the local backend's.

    Args:
        ref: the run's study (:attr:`StudySession.ref` of :func:`open_search_study`).
        space / budget_ms / latency_ms / num_classes: as for :func:`record_arch`.
        max_launch: Tune trials that may be started at most (remaining target + spares).
        on_complete: called with the study and each told trial (progress display); not pickled.
        session: the driver's open session of ``ref`` (default: attached on first use); not pickled.
    """

    def __init__(
        self,
        ref: StudyRef,
        *,
        space: SearchSpace,
        budget_ms: float,
        latency_ms: Callable[[Arch], float],
        num_classes: int,
        max_launch: int,
        metric: str = "top1",
        mode: str = "max",
        on_complete: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
        session: StudySession | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.ref = ref
        self.space = space
        self.budget_ms = budget_ms
        self.latency_ms = latency_ms
        self.num_classes = num_classes
        self.max_launch = max_launch
        self.on_complete = on_complete
        self.launched = 0
        self._session = session
        self._live: dict[str, tuple[optuna.Trial, float, Heartbeat]] = {}
        self._waiting: tuple[optuna.Trial, Arch, Heartbeat] | None = None  # asked and recorded, no slot free yet
        self._complete: int | None = None  # finished trials, re-read after each tell

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_session=None, _live={}, _waiting=None, on_complete=None, _complete=None)
        return state

    @property
    def session(self) -> StudySession:
        if self._session is None:
            self._session = self.ref.attach()
        return self._session

    @property
    def study(self) -> optuna.Study:
        return self.session.study

    def _finished(self) -> int:
        if self._complete is None:
            self._complete = self.session.gate.finished()
        return self._complete

    def _told(self, frozen: optuna.trial.FrozenTrial) -> None:
        self._complete = None
        if self.on_complete is not None:
            self.on_complete(self.study, frozen)

    def _launch(self, trial_id: str, trial: optuna.Trial, arch: Arch, latency: float, beat: Heartbeat) -> dict:
        trial.set_user_attr("backend", "ray")
        self._live[trial_id] = (trial, latency, beat)
        self.launched += 1
        return {"arch_json": arch.to_json(indent=None), "optuna_trial": trial.number}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        gate = self.session.gate
        while True:
            if self._finished() >= self.ref.target or self.launched >= self.max_launch:
                if self._waiting is not None:
                    trial, _, beat = self._waiting
                    beat.stop()
                    mark_not_scored(self.study, trial, "the target was reached")
                    self._waiting = None
                return None if self._live else self.FINISHED
            if self._waiting is not None:  # a trial that found no free slot: try it again
                trial, arch, beat = self._waiting
                admission = gate.admit(trial)
                if admission.decision == "full":
                    gate.fail_stale()
                    return None
                self._waiting = None
            else:
                if self._finished() + len(self._live) >= self.ref.target or not gate.has_room():
                    return None  # enough in flight; ask again when one finishes (it may fail)
                trial = ask(self.study, self.session.lock)
                beat = Heartbeat(self.session.storage, gate.trial_id(trial))
                try:
                    arch = suggest_arch(trial, self.space)
                    record_arch(trial, arch, space=self.space, budget_ms=self.budget_ms, latency_ms=self.latency_ms,
                                num_classes=self.num_classes)
                    admission = gate.admit(trial)
                except BaseException:  # as study.optimize does: the trial fails, the error propagates
                    beat.stop()
                    self.study.tell(trial, state=TrialState.FAIL)
                    raise
                if admission.decision == "full":
                    self._waiting = (trial, arch, beat)
                    return None
            if admission.decision == "duplicate":  # answered from the storage: pruned, no Tune trial
                beat.stop()
                self._told(self.study.tell(trial, state=TrialState.PRUNED))
                continue
            latency = float(trial.user_attrs["latency_ms"])
            return self._launch(trial_id, trial, arch, latency, beat)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        entry = self._live.pop(trial_id, None)
        if entry is None:
            return
        trial, latency, beat = entry
        beat.stop()
        if error or not result or result.get(self.metric) is None:
            frozen = self.study.tell(trial, state=TrialState.FAIL)
        else:
            value = record_metrics(trial, result.get(METRICS_KEY) or {self.metric: result[self.metric]}, self.metric)
            if result.get("worker"):
                trial.set_user_attr("worker", str(result["worker"]))
            if result.get("eval_seconds") is not None:
                trial.set_user_attr("eval_seconds", round(float(result["eval_seconds"]), 4))
            frozen = self.study.tell(trial, (value, latency))
        self._told(frozen)

    def abandon_live(self) -> None:
        """Mark trials still in flight as failed (the run ended without their results, e.g. Ctrl-C),
        as ``study.optimize`` does with the trial it was running when interrupted."""
        for trial, _, beat in self._live.values():
            beat.stop()
            self.study.tell(trial, state=TrialState.FAIL)
        self._live.clear()
        if self._waiting is not None:
            trial, _, beat = self._waiting
            beat.stop()
            mark_not_scored(self.study, trial, "the run ended")
            self._waiting = None

    def close(self) -> None:
        self.abandon_live()
        if self._session is not None:
            self._session.close()
            self._session = None

    # The study in its storage is the searcher's state; Tune's own experiment checkpoint adds nothing.
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        return None


def run_study_ray(
    inputs: SearchInputs,
    scorer: Callable[[], Callable[[Arch], Any]],
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    cpus_per_trial: int = 1,
    num_cpus: int | None = None,
) -> optuna.Study:
    """Create or resume the study and run trials as Ray Tune trials until it has ``cfg.trials``.

    Args:
        inputs: the validated run (``cfg.ray_address``: cluster to join, ``None`` starts a local
            one; ``cfg.max_concurrent``: trials at once, default one per ``cpus_per_trial`` CPUs).
        scorer: a picklable zero-argument factory returning ``arch -> metrics`` (the task's metrics,
            or its primary metric alone); called once per
            worker process (e.g. :class:`SupernetScorer`).
        progress: show a progress bar.
        log: one-line notices.
        cpus_per_trial: CPUs reserved by each trial (its torch threads).
        num_cpus: CPUs of a local cluster (default: all of the machine's).
    """
    cfg = inputs.cfg
    session = open_search_study(inputs, log=log)
    study, gate = session.study, session.gate
    gate.fail_stale()
    complete = gate.finished()
    if complete >= cfg.trials:
        session.close()
        return study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = inputs.task
    maximize = task.direction == "maximize"
    bar = SearchProgress(cfg.trials, complete, desc="search (ray)", enabled=progress, metric=task.metric,
                         maximize=maximize)
    searcher = ArchSearcher(
        session.ref, space=inputs.space, budget_ms=inputs.budget_ms, latency_ms=latency_fn(inputs),
        num_classes=inputs.splits.num_classes, max_launch=cfg.trials - complete + SPARE_TRIALS,
        metric=task.metric, mode="max" if maximize else "min", on_complete=bar.update, session=session,
    )
    start = time.perf_counter()
    try:
        with ray_cluster(cfg.ray_address, num_cpus=num_cpus, log=log) as resources:
            import ray
            from ray import tune
            from ray.tune.logger import JsonLoggerCallback

            slots = max(1, int(resources.get("CPU", 1)) // cpus_per_trial)
            concurrent = cfg.max_concurrent or slots
            if concurrent > slots:
                log(f"ray: --max-concurrent {concurrent} but the cluster has {slots} slots of {cpus_per_trial} CPU; "
                    "extra trials will queue")
            log(f"ray: {resources.get('CPU', 0):g} CPUs in the cluster, up to {concurrent} trials at once")
            scorer_ref = ray.put(scorer)
            trainable = tune.with_resources(
                _make_trainable(scorer_ref, scorer_ref.hex(), cpus_per_trial, task.metric), {"cpu": cpus_per_trial}
            )
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=searcher, num_samples=-1, max_concurrent_trials=concurrent, reuse_actors=True,
                    trial_name_creator=lambda t: f"arch_{t.trial_id}",
                    trial_dirname_creator=lambda t: f"arch_{t.trial_id}",
                ),
                run_config=tune.RunConfig(
                    name="tune", storage_path=str((inputs.run_dir / "ray").resolve()), verbose=0,
                    failure_config=tune.FailureConfig(max_failures=1),
                    callbacks=[JsonLoggerCallback()],  # result.json per trial; no CSV / TensorBoard files
                ),
            )
            tuner.fit()
    finally:
        searcher.close()
        bar.close()
    study.set_user_attr("last_search_seconds", round(time.perf_counter() - start, 1))
    study.set_user_attr("last_search_backend", "ray")
    return study
