"""The Ray backend of the search: candidate evaluations run as Ray Tune trials on a Ray cluster.

Optuna owns the study, in the same storage as the single-process backend: a Tune
:class:`~ray.tune.search.Searcher` running in the driver asks the study for a trial, turns it into
an arch with :func:`suggest_arch`, records arch, cost, latency and the budget constraint with
:func:`record_arch` (as :class:`Objective` does), answers duplicates from the storage, and hands
the arch to Tune. A Tune trial on any worker scores it (supernet accuracy after BN recalibration)
and the searcher tells the study. So ``result.json``, the report and the dashboard are the same
whichever backend ran a trial.

Failures: a trial whose worker dies or raises is retried once by Tune (``FailureConfig``); if the
retry fails too, its Optuna trial is told FAIL and a spare trial replaces it. If the run stops
early (Ctrl-C), trials in flight are told FAIL. While a trial runs, the driver records Optuna
heartbeats for it, so if the driver is killed outright the trial goes stale and the next run of
the study (either backend) fails it and re-enqueues its arch. The study only
changes through ``ask``/``tell``, each one transaction in the RDB storage: it is never half-written.

The scorer (supernet checkpoint + data) travels through Ray's object store once; each worker
process builds its accuracy function once and reuses it for every trial it runs.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.data import DataSplits
from nas.distributed import ray_cluster  # first: sets Ray's environment defaults before ray is imported
from nas.search._objective import previous_trial, record_arch, reuse_score, suggest_arch
from nas.search._run import SearchInputs, latency_fn, open_search_study
from nas.space import Arch, SearchSpace
from ray.tune.search import Searcher

__all__ = ["SupernetScorer", "ArchSearcher", "run_study_ray", "SPARE_TRIALS"]

#: Tune trials allowed beyond the target to replace failed ones (as the local backend's ``+ 5``).
SPARE_TRIALS = 5

#: Per worker process: scorer key -> accuracy function (supernet and data are loaded once).
_WORKER_CACHE: dict[str, Callable[[Arch], float]] = {}


@dataclass(frozen=True)
class SupernetScorer:
    """What a worker needs to score archs: the checkpoint file's bytes and the data.

    Bytes, not a path, so that workers on other nodes need no shared file system.
    """

    checkpoint: bytes
    splits: DataSplits
    calib_images: int
    val_limit: int | None
    seed: int

    @classmethod
    def from_file(cls, path: str | os.PathLike, splits: DataSplits, *, calib_images: int, val_limit: int | None,
                  seed: int) -> SupernetScorer:
        with open(path, "rb") as f:
            blob = f.read()
        return cls(blob, splits, calib_images, val_limit, seed)

    def __call__(self) -> Callable[[Arch], float]:
        from nas.search._pipeline import make_accuracy_fn
        from nas.supernet import load_supernet

        with tempfile.TemporaryDirectory(prefix="nas-ckpt-") as tmp:
            path = os.path.join(tmp, "supernet.pt")
            with open(path, "wb") as f:
                f.write(self.checkpoint)
            supernet, ckpt = load_supernet(path, num_classes=self.splits.num_classes)
        return make_accuracy_fn(supernet, ckpt, self.splits, calib_images=self.calib_images,
                                val_limit=self.val_limit, seed=self.seed)


def _worker_accuracy(key: str, scorer_ref: Any) -> Callable[[Arch], float]:
    fn = _WORKER_CACHE.get(key)
    if fn is None:
        import ray

        _WORKER_CACHE.clear()  # one study per worker process at a time
        fn = _WORKER_CACHE[key] = ray.get(scorer_ref)()
    return fn


def _make_trainable(scorer_ref: Any, key: str, threads: int) -> Callable[[dict[str, Any]], None]:
    """The Tune function trainable: score the one arch of its config and report it."""

    def evaluate_arch_trial(config: dict[str, Any]) -> None:
        import torch
        from ray import tune

        torch.set_num_threads(threads)
        accuracy = _worker_accuracy(key, scorer_ref)
        start = time.perf_counter()
        value = float(accuracy(Arch.from_json(config["arch_json"])))
        tune.report({"accuracy": value, "eval_seconds": time.perf_counter() - start,
                     "worker": f"{os.uname().nodename}:{os.getpid()}"})

    return evaluate_arch_trial


class ArchSearcher(Searcher):
    """A Tune searcher that asks and tells *our* Optuna study (see the module docstring).

    Args:
        study: the run's study (:func:`open_search_study`).
        space / budget_ms / latency_ms / num_classes: as for :class:`Objective`.
        target: finished (COMPLETE) trials the study should reach.
        max_launch: Tune trials that may be started at most (target + spares).
        on_complete: called with the study after each told trial (progress display).
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        space: SearchSpace,
        budget_ms: float,
        latency_ms: Callable[[Arch], float],
        num_classes: int,
        target: int,
        max_launch: int,
        on_complete: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    ) -> None:
        super().__init__(metric="accuracy", mode="max")
        self.study = study
        self.space = space
        self.budget_ms = budget_ms
        self.latency_ms = latency_ms
        self.num_classes = num_classes
        self.target = target
        self.max_launch = max_launch
        self.on_complete = on_complete
        self.launched = 0
        self._live: dict[str, tuple[optuna.Trial, float, Any]] = {}
        # Tune calls suggest() on every pass of its loop; the count of finished trials is read
        # from the storage after each tell, not on every call.
        self._complete = self._count_complete()

    def _count_complete(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    def _told(self, trial: optuna.Trial) -> None:
        self._complete = self._count_complete()
        if self.on_complete is not None:  # (storage and trial id: as Optuna's own heartbeat code uses them)
            self.on_complete(self.study, self.study._storage.get_trial(trial._trial_id))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from optuna.storages._heartbeat import get_heartbeat_thread

        while True:
            if self._complete >= self.target or self.launched >= self.max_launch:
                return None if self._live else self.FINISHED
            if self._complete + len(self._live) >= self.target:
                return None  # enough in flight; ask again when one finishes (it may fail)
            with warnings.catch_warnings():  # "heartbeat is meant for optimize()": we beat ourselves
                warnings.simplefilter("ignore")
                trial = self.study.ask()
            try:
                arch = suggest_arch(trial, self.space)
                latency = record_arch(trial, arch, space=self.space, budget_ms=self.budget_ms,
                                      latency_ms=self.latency_ms, num_classes=self.num_classes)
                previous = previous_trial(self.study, arch.to_string())
            except BaseException:  # as study.optimize does: the trial fails, the error propagates
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            if previous is not None:  # identical arch: answered from the storage, no Tune trial
                self.study.tell(trial, reuse_score(trial, previous))
                self._told(trial)
                continue
            trial.set_user_attr("backend", "ray")
            beat = get_heartbeat_thread(trial._trial_id, self.study._storage)
            beat.start()
            self._live[trial_id] = (trial, latency, beat)
            self.launched += 1
            return {"arch_json": arch.to_json(indent=None), "optuna_trial": trial.number}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        entry = self._live.pop(trial_id, None)
        if entry is None:
            return
        trial, latency, beat = entry
        beat.join()
        if error or not result or result.get("accuracy") is None:
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            accuracy = float(result["accuracy"])
            trial.set_user_attr("accuracy", accuracy)
            if result.get("worker"):
                trial.set_user_attr("worker", str(result["worker"]))
            self.study.tell(trial, (accuracy, latency))
        self._told(trial)

    def abandon_live(self) -> None:
        """Mark trials still in flight as failed (the run ended without their results, e.g. Ctrl-C),
        as ``study.optimize`` does with the trial it was running when interrupted."""
        for trial, _, beat in self._live.values():
            beat.join()
            self.study.tell(trial, state=TrialState.FAIL)
        self._live.clear()

    # The study in its storage is the searcher's state; Tune's own experiment checkpoint adds nothing.
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        return None


def run_study_ray(
    inputs: SearchInputs,
    scorer: Callable[[], Callable[[Arch], float]],
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
        scorer: a picklable zero-argument factory returning ``arch -> accuracy``; called once per
            worker process (e.g. :class:`SupernetScorer`).
        progress: show a progress bar.
        log: one-line notices.
        cpus_per_trial: CPUs reserved by each trial (its torch threads).
        num_cpus: CPUs of a local cluster (default: all of the machine's).
    """
    cfg = inputs.cfg
    study = open_search_study(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete >= cfg.trials:
        return study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.trials, initial=complete, desc="search (ray)", unit="trial", dynamic_ncols=True)

    def on_complete(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if bar is not None and trial.state == TrialState.COMPLETE:
            bar.update(1)
            bar.set_postfix(last=f"{trial.values[1]:.1f}ms")

    searcher = ArchSearcher(
        study, space=inputs.space, budget_ms=inputs.budget_ms, latency_ms=latency_fn(inputs),
        num_classes=inputs.splits.num_classes, target=cfg.trials,
        max_launch=cfg.trials - complete + SPARE_TRIALS, on_complete=on_complete,
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
                _make_trainable(scorer_ref, scorer_ref.hex(), cpus_per_trial), {"cpu": cpus_per_trial}
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
        searcher.abandon_live()
        if bar is not None:
            bar.close()
    study.set_user_attr("last_search_seconds", round(time.perf_counter() - start, 1))
    study.set_user_attr("last_search_backend", "ray")
    return study
