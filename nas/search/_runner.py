"""Running the study: open it (shared by both backends) and the local backend's ask/score/tell loop.

Every backend opens the study with :func:`open_search_study` and admits trials through the same
:class:`~nas.search._gate.TrialGate`, so a study reaches exactly ``--trials`` finished trials and
scores no arch twice, however many processes work on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search._gate import Heartbeat, StudyLock, TrialGate, ask, heartbeat_storage
from nas.search._objective import Candidate, record_arch, record_metrics, suggest_arch
from nas.search._params import arch_to_params
from nas.search._inputs import SearchInputs
from nas.search._seeds import feasible_seeds
from nas.search._study import CONSTRAINT_NAME, make_sampler, open_study
from nas.space import Arch

__all__ = ["StudyRef", "StudySession", "open_search_study", "latency_fn", "sampler_seed", "SearchProgress", "run_study",
           "MAX_DUPLICATES_IN_A_ROW"]

#: A run stops when its sampler proposes this many already-scored archs in a row (space exhausted).
MAX_DUPLICATES_IN_A_ROW = 100


def latency_fn(inputs: SearchInputs) -> Callable[[Arch | Candidate], float]:
    """Predicted latency (ms) on the run's device, at the deployment resolution, of a resolved
    :class:`Candidate` (its layers) or of an arch (resolved here)."""

    def latency(x: Arch | Candidate) -> float:
        candidate = x if isinstance(x, Candidate) else Candidate.resolve(inputs.space, x, inputs.splits.num_classes)
        return inputs.table.predict_layers(list(candidate.layers))

    return latency


def sampler_seed(seed: int, run: int) -> int:
    """The sampler seed of the ``run``-th process to open a study (0: the given seed, so a fresh run
    is reproducible). Later runs, resumed or concurrent, get other seeds and so propose other archs
    instead of replaying the first run's proposals."""
    return seed if run == 0 else (seed * 1_000_003 + run * 7_919) % 2**32


@dataclass(frozen=True)
class StudyRef:
    """What reopens a run's study anywhere: storage URL, name and sampler settings (picklable)."""

    storage_url: str
    study_name: str
    sampler: str
    sampler_seed: int
    heartbeat_seconds: float
    target: int

    def attach(self, *, log: Callable[[str], None] | None = None) -> StudySession:
        """Open the (existing) study with its heartbeat storage, lock and gate."""
        storage = heartbeat_storage(self.storage_url, heartbeat_seconds=self.heartbeat_seconds)
        study = optuna.load_study(study_name=self.study_name, storage=storage,
                                  sampler=make_sampler(self.sampler, self.sampler_seed))
        lock = StudyLock(self.storage_url, self.study_name, log=log)
        return StudySession(self, study, storage, lock, TrialGate(study, storage, lock, self.target))


@dataclass
class StudySession:
    """An open study with its heartbeat storage, cross-process lock and trial gate."""

    ref: StudyRef
    study: optuna.Study
    storage: optuna.storages.RDBStorage
    lock: StudyLock
    gate: TrialGate

    def close(self) -> None:
        self.lock.close()


def open_search_study(inputs: SearchInputs, *, log: Callable[[str], None] = print) -> StudySession:
    """Create or resume the run's study, with its provenance as study attributes.

    A new study gets the space's fastest member as its first trial, so it always has a feasible
    answer, and (NSGA-II / TPE) random members shrunk to fit the budget as its first generation
    (:func:`feasible_seeds`). Creation happens under the study lock, so two processes starting on
    one fresh study create it once.
    """
    cfg, space = inputs.cfg, inputs.space
    storage = heartbeat_storage(inputs.storage, heartbeat_seconds=cfg.heartbeat_seconds)
    lock = StudyLock(inputs.storage, inputs.study_name, log=log)
    try:
        with lock.held():
            study = open_study(storage, inputs.study_name, make_sampler(cfg.sampler, cfg.seed), inputs.task)
            run = int(study.user_attrs.get("runs", 0))
            study.set_user_attr("runs", run + 1)
            study.set_user_attr("space", space.name)
            study.set_user_attr("space_digest", space.digest)
            study.set_user_attr("device", inputs.table.device)
            study.set_user_attr("table_provenance", inputs.table.header.method)
            study.set_user_attr("budget_ms", inputs.budget_ms)
            study.set_user_attr("data", inputs.splits.name)
            study.set_user_attr("task", inputs.task.name)
            study.set_user_attr("metric", inputs.task.metric)
            if not study.trials:
                study.enqueue_trial(arch_to_params(inputs.fastest, space))
                if cfg.sampler in ("nsga2", "tpe"):  # random search stays a plain random baseline
                    n = min(19, max(0, cfg.trials // 3))
                    for arch in feasible_seeds(space, latency_fn(inputs), inputs.budget_ms, inputs.fastest, n,
                                               cfg.seed):
                        if arch != inputs.fastest:
                            study.enqueue_trial(arch_to_params(arch, space))
    except BaseException:
        lock.close()
        raise
    ref = StudyRef(inputs.storage, inputs.study_name, cfg.sampler, sampler_seed(cfg.seed, run), cfg.heartbeat_seconds,
                   cfg.trials)
    if run:
        study.sampler = make_sampler(cfg.sampler, ref.sampler_seed)
    return StudySession(ref, study, storage, lock, TrialGate(study, storage, lock, cfg.trials))


class SearchProgress:
    """The progress bar of a search (both backends): finished trials, best feasible primary metric
    (``metric``, maximised unless ``maximize`` is False), last latency."""

    def __init__(self, total: int, initial: int, *, desc: str, enabled: bool, metric: str = "top1",
                 maximize: bool = True) -> None:
        self.bar = None
        self.metric, self.maximize = metric, maximize
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="trial", dynamic_ncols=True)

    def update(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        if self.bar is None:
            return
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        values = [t.values[0] for t in done if t.constraints.get(CONSTRAINT_NAME, 1) <= 0]
        best = (max if self.maximize else min)(values, default=float("nan"))
        self.bar.n = len(done)
        last = f"{trial.values[1]:.1f}ms" if trial is not None and trial.values else "-"
        self.bar.set_postfix({f"best_{self.metric}": f"{best:.2f}", "last": last})  # refreshes

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_study(
    inputs: SearchInputs,
    score: Callable[[Arch], dict[str, float] | float],
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    poll_seconds: float = 1.0,
) -> optuna.Study:
    """Create or resume the study and score trials in this process until it has ``cfg.trials``.

    Each trial: ask, suggest an arch, record it (cost, latency, budget constraint), get admitted by
    the gate (a duplicate is pruned; with no slot free the trial waits), score, tell. A trial that
    raises (Ctrl-C included) is told FAIL and the error propagates: finished trials are kept and
    the same call resumes. While a trial runs its heartbeat is recorded; a trial of a killed
    process is failed once it is stale and its arch retried.

    ``score``: the task's metrics of an arch (:func:`nas.search.make_score_fn`), or its primary
    metric alone; every metric is stored as a user attribute, the primary one is the trial's
    first value.
    """
    cfg, space = inputs.cfg, inputs.space
    session = open_search_study(inputs, log=log)
    study, gate = session.study, session.gate
    latency_ms = latency_fn(inputs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bar = None
    start = time.perf_counter()
    try:
        gate.fail_stale()
        if gate.reached():
            return study
        bar = SearchProgress(cfg.trials, gate.finished(), desc="search", enabled=progress,
                             metric=inputs.task.metric, maximize=inputs.task.direction == "maximize")
        duplicates = 0
        while not gate.reached():
            if not gate.has_room():  # other workers hold the remaining slots; one of them may fail
                time.sleep(poll_seconds)
                gate.fail_stale()
                continue
            trial = ask(study, session.lock)
            beat = Heartbeat(session.storage, gate.trial_id(trial))
            told = False
            try:
                arch = suggest_arch(trial, space)
                latency = record_arch(trial, arch, space=space, budget_ms=inputs.budget_ms, latency_ms=latency_ms,
                                      num_classes=inputs.splits.num_classes)
                admission = gate.admit(trial)
                if admission.decision == "full":
                    admission = gate.wait_for_slot(trial, poll_seconds=poll_seconds)
                    if admission.decision == "full":  # the target was reached meanwhile; trial ended
                        told = True
                        beat.stop()
                        continue
                if admission.decision == "duplicate":
                    beat.stop()
                    told = True
                    study.tell(trial, state=TrialState.PRUNED)
                    duplicates += 1
                    if duplicates >= MAX_DUPLICATES_IN_A_ROW:
                        log(f"search: stopping after {duplicates} proposals in a row of archs already scored "
                            "(the space may be exhausted)")
                        break
                    continue
                duplicates = 0
                value = record_metrics(trial, score(arch), inputs.task.metric)
                trial.set_user_attr("backend", "local")
                beat.stop()
                told = True
                frozen = study.tell(trial, (value, latency))
                bar.update(study, frozen)
            except BaseException:
                beat.stop()
                if not told:
                    study.tell(trial, state=TrialState.FAIL)
                raise
        gate.fail_stale()  # a trial a killed process left RUNNING before its first beat is not left behind
    finally:
        if bar is not None:
            bar.close()
        study.set_user_attr("last_search_seconds", round(time.perf_counter() - start, 1))
        session.close()
    return study

