"""One search run: validate inputs, get a supernet, run the Optuna study, export the best subnet.

Everything that can be wrong with the inputs (device, budget, space, data) is checked before any
training starts. The study lives in an RDB storage (SQLite by default), so an interrupted run
resumes where it stopped: completed trials are kept, a trial in flight is marked failed (Optuna's
heartbeat) and retried.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.data import DataSplits, load_data
from nas.errors import ConfigError
from nas.latency import LatencyTable, load_table, min_latency, parse_budget, predict_latency
from nas.space import Arch, SearchSpace, load_space
from nas.search._objective import Objective
from nas.search._params import arch_to_params
from nas.search._seeds import feasible_seeds
from nas.search._study import SAMPLERS, default_storage, make_sampler, open_study, study_name_for

__all__ = [
    "BACKENDS",
    "SearchConfig",
    "SearchInputs",
    "BudgetError",
    "prepare",
    "supernet_dir",
    "open_search_study",
    "latency_fn",
    "run_study",
]

RUNS_DIR = Path("runs")

#: ``local``: trials run one after another in this process; ``ray``: as Ray Tune trials on a Ray cluster.
BACKENDS = ("local", "ray")


class BudgetError(ValueError):
    """The budget cannot be met by any member of the space on the device."""


@dataclass(frozen=True)
class SearchConfig:
    """Settings of ``python -m nas.search`` (see its ``--help``)."""

    device: str
    budget: str
    space: str = "mobilenetv3_large"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    trials: int = 60
    sampler: str = "tpe"
    storage: str | None = None
    run_dir: str | None = None
    supernet: str | None = None
    seed: int = 0
    epochs: int | None = None
    smoke: bool = False
    val_limit: int | None = 5000
    calib_images: int = 2000
    export: bool = True
    backend: str = "local"
    ray_address: str | None = None
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.backend not in BACKENDS:
            problems.append(f"backend: {self.backend!r} (allowed: {', '.join(BACKENDS)})")
        elif self.backend != "ray":
            for name in ("ray_address", "max_concurrent"):
                if getattr(self, name) is not None:
                    problems.append(f"{name}: {getattr(self, name)!r} (allowed only with backend 'ray')")
        if self.max_concurrent is not None and (not isinstance(self.max_concurrent, int) or self.max_concurrent < 1):
            problems.append(f"max_concurrent: {self.max_concurrent!r} (allowed: integer >= 1, or None for one "
                            "trial per CPU of the cluster)")
        if not isinstance(self.trials, int) or self.trials < 1:
            problems.append(f"trials: {self.trials!r} (allowed: integer >= 1)")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler: {self.sampler!r} (allowed: {', '.join(SAMPLERS)})")
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs: {self.epochs!r} (allowed: integer >= 1)")
        if self.val_limit is not None and self.val_limit < 1:
            problems.append(f"val_limit: {self.val_limit!r} (allowed: integer >= 1)")
        if self.calib_images < 1:
            problems.append(f"calib_images: {self.calib_images!r} (allowed: integer >= 1)")
        if problems:
            raise ConfigError("search settings", problems)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "data"


def data_key(cfg: SearchConfig) -> str:
    """Name of the data for cache paths: ``fashion-mnist`` or the data directory's name."""
    if cfg.data_dir:
        return _slug(f"{cfg.data}-{Path(cfg.data_dir).resolve().name}")
    if Path(cfg.data).is_dir():
        return _slug(Path(cfg.data).resolve().name)
    return _slug(cfg.data)


def supernet_dir(cfg: SearchConfig, space: SearchSpace) -> Path:
    """Where the supernet of (space, data) lives: reused by every search on them."""
    if cfg.supernet:
        return Path(cfg.supernet)
    suffix = "-smoke" if cfg.smoke else ""
    return RUNS_DIR / "supernets" / f"{space.name}-{space.digest[:8]}-{data_key(cfg)}{suffix}"


def default_run_dir(cfg: SearchConfig, space: SearchSpace, device: str, budget_ms: float) -> Path:
    return RUNS_DIR / f"{space.name}-{data_key(cfg)}-{device}-{budget_ms:g}ms"


@dataclass
class SearchInputs:
    """Everything validated before compute starts."""

    cfg: SearchConfig
    space: SearchSpace
    table: LatencyTable
    budget_ms: float
    floor_ms: float
    fastest: Arch
    splits: DataSplits
    run_dir: Path
    storage: str
    study_name: str
    notes: list[str] = field(default_factory=list)


def prepare(cfg: SearchConfig, *, splits: DataSplits | None = None) -> SearchInputs:
    """Check device, budget, space and data; raise before any training if one is wrong.

    Raises:
        UnknownDeviceError: no table for the device (lists the available ones).
        LatencyTableError: the table is corrupted or was built for another space.
        ValueError: malformed budget; BudgetError: budget below the fastest member's latency.
        ConfigError / FileNotFoundError: bad or missing space file.
        DataError: missing data (says how to get it).
    """
    budget_ms = parse_budget(cfg.budget)
    space = load_space(cfg.space)
    table = load_table(cfg.device, space=space)
    if splits is None:
        splits = load_data(cfg.data, cfg.data_dir, seed=0, channels=space.config.in_channels)
    floor_ms, fastest = min_latency(table, space, num_classes=splits.num_classes)
    if budget_ms < floor_ms:
        raise BudgetError(
            f"budget {budget_ms:g} ms is below the smallest latency any member of space "
            f"{space.name!r} reaches on {table.device!r}: {floor_ms:.2f} ms "
            f"({fastest}). Raise --budget to at least {floor_ms:.2f}ms, or use a smaller space."
        )
    run_dir = Path(cfg.run_dir) if cfg.run_dir else default_run_dir(cfg, space, table.device, budget_ms)
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = cfg.storage or default_storage(run_dir)
    return SearchInputs(
        cfg=cfg,
        space=space,
        table=table,
        budget_ms=budget_ms,
        floor_ms=floor_ms,
        fastest=fastest,
        splits=splits,
        run_dir=run_dir,
        storage=storage,
        study_name=study_name_for(space.name, table.device, budget_ms),
    )


def _rdb_storage(url: str) -> optuna.storages.BaseStorage | str:
    """RDB storages get a heartbeat so a trial left RUNNING by a killed process is failed
    (and retried) instead of blocking the study forever."""
    if url.startswith(("sqlite:", "postgresql", "mysql")):
        with warnings.catch_warnings():  # the heartbeat API is flagged "experimental" by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=30,
                grace_period=90,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    return url


def open_search_study(inputs: SearchInputs) -> optuna.Study:
    """Create or resume the run's study (heartbeat storage), with its provenance as study attrs.

    A new study gets the space's fastest member as its first trial, so it always has a feasible
    answer, and (NSGA-II / TPE) random members shrunk to fit the budget as its first generation
    (:func:`feasible_seeds`). Both backends open the study here.
    """
    cfg, space = inputs.cfg, inputs.space
    study = open_study(_rdb_storage(inputs.storage), inputs.study_name, make_sampler(cfg.sampler, cfg.seed))
    study.set_user_attr("space", space.name)
    study.set_user_attr("space_digest", space.digest)
    study.set_user_attr("device", inputs.table.device)
    study.set_user_attr("table_provenance", inputs.table.header.method)
    study.set_user_attr("budget_ms", inputs.budget_ms)
    study.set_user_attr("data", inputs.splits.name)
    if not study.trials:
        study.enqueue_trial(arch_to_params(inputs.fastest, space))
        if cfg.sampler in ("nsga2", "tpe"):  # random search stays a plain random baseline
            n = min(19, max(0, cfg.trials // 3))
            for arch in feasible_seeds(space, latency_fn(inputs), inputs.budget_ms, inputs.fastest, n, cfg.seed):
                if arch != inputs.fastest:
                    study.enqueue_trial(arch_to_params(arch, space))
    return study


def latency_fn(inputs: SearchInputs) -> Callable[[Arch], float]:
    """Predicted latency (ms) of an arch on the run's device, at its deployment resolution."""

    def latency(arch: Arch) -> float:
        return predict_latency(inputs.table, arch, space=inputs.space, num_classes=inputs.splits.num_classes)

    return latency


def run_study(
    inputs: SearchInputs,
    accuracy: Callable[[Arch], float],
    *,
    progress: bool = True,
) -> optuna.Study:
    """Create or resume the study and run trials until it has ``cfg.trials`` finished ones."""
    cfg, space = inputs.cfg, inputs.space
    study = open_search_study(inputs)
    objective = Objective(space, inputs.budget_ms, latency_fn(inputs), accuracy, inputs.splits.num_classes)
    finished = lambda: len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))  # noqa: E731
    remaining = cfg.trials - finished()
    if remaining > 0:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.trials, initial=finished(), desc="search", unit="trial", dynamic_ncols=True)

        def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if bar is not None:
                best = max((t.values[0] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                            if t.constraints.get("latency_over_budget_ms", 1) <= 0), default=float("nan"))
                bar.update(1)
                bar.set_postfix(best_feasible=f"{best:.2f}%", last=f"{trial.values[1]:.1f}ms" if trial.values else "-")

        start = time.perf_counter()
        try:
            study.optimize(
                objective,
                callbacks=[
                    optuna.study.MaxTrialsCallback(cfg.trials, states=(TrialState.COMPLETE,)),
                    on_trial,
                ],
                n_trials=remaining + 5,  # spare for retried failures; MaxTrialsCallback stops it
            )
        finally:
            if bar is not None:
                bar.close()
        study.set_user_attr("last_search_seconds", round(time.perf_counter() - start, 1))
    return study
