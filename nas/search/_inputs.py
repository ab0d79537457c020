"""The inputs of a search: its settings (:class:`SearchConfig`) and everything checked before any
compute starts (:func:`prepare`: device table, budget, space, data, run and supernet directories,
the study storage).

The search is layered one way: ``_inputs`` (what to do, checked) -> ``_runner`` / ``_ray_backend``
(running the study; trial admission in ``_gate``, scoring in ``_scoring``) -> ``_pipeline`` (the
one orchestrator: inputs -> supernet -> study -> export and reports).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.data import DataSplits, load_data
from nas.errors import ConfigError, is_int
from nas.latency import LatencyTable, load_table, min_latency, parse_budget
from nas.search._gate import DEFAULT_HEARTBEAT_SECONDS, heartbeat_storage, sqlite_path
from nas.search._study import SAMPLERS, default_storage, study_name_for
from nas.space import Arch, SearchSpace, load_space
from nas.tasks import LOSSES, Task, task_for_data
from nas.train import PRECISIONS

__all__ = [
    "BACKENDS",
    "SearchConfig",
    "SearchInputs",
    "BudgetError",
    "StorageError",
    "prepare",
    "check_storage",
    "supernet_dir",
]

RUNS_DIR = Path("runs")

#: ``local``: trials run one after another in this process; ``ray``: as Ray Tune trials on a Ray cluster.
BACKENDS = ("local", "ray")


class BudgetError(ValueError):
    """The budget cannot be met by any member of the space on the device."""


class StorageError(ValueError):
    """The study storage cannot be opened or written."""


@dataclass(frozen=True)
class SearchConfig:
    """Settings of ``python -m nas.search`` (see its ``--help``)."""

    device: str
    budget: str
    space: str = "mobilenetv3_large"
    data: str = "fashion-mnist"
    data_dir: str | None = None
    loss: str = "auto"
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
    int8_export: bool | None = None  # best/model.int8.onnx; None: when the latency table is int8
    backend: str = "local"
    ray_address: str | None = None
    max_concurrent: int | None = None
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    finetune_top: int = 3
    finetune_epochs: int = 1
    finetune_lr: float = 0.01
    finetune_subset: int | None = None
    precision: str = "auto"
    latency_probe: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            problems.append(f"seed (--seed): {self.seed!r} (allowed: integer 0 .. 2**32-1)")
        if not (isinstance(self.heartbeat_seconds, (int, float)) and 0.5 <= self.heartbeat_seconds <= 3600):
            problems.append(f"heartbeat_seconds: {self.heartbeat_seconds!r} (allowed: 0.5 .. 3600 seconds)")
        if self.backend not in BACKENDS:
            problems.append(f"backend: {self.backend!r} (allowed: {', '.join(BACKENDS)})")
        elif self.backend != "ray":
            for name in ("ray_address", "max_concurrent"):
                if getattr(self, name) is not None:
                    problems.append(f"{name}: {getattr(self, name)!r} (allowed only with backend 'ray')")
        if self.max_concurrent is not None and (not isinstance(self.max_concurrent, int) or self.max_concurrent < 1):
            problems.append(f"max_concurrent: {self.max_concurrent!r} (allowed: integer >= 1, or None for one "
                            "trial per CPU of the cluster)")
        if self.loss not in LOSSES:
            problems.append(f"loss: {self.loss!r} (allowed: {' | '.join(LOSSES)})")
        if not isinstance(self.trials, int) or self.trials < 1:
            problems.append(f"trials: {self.trials!r} (allowed: integer >= 1)")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler: {self.sampler!r} (allowed: {', '.join(SAMPLERS)})")
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs: {self.epochs!r} (allowed: integer >= 1)")
        if self.val_limit is not None and self.val_limit < 1:
            problems.append(f"val_limit (--val-limit): {self.val_limit!r} (allowed: an integer >= 1, or 0 on the command "
                            "line for every validation image)")
        if self.calib_images < 1:
            problems.append(f"calib_images: {self.calib_images!r} (allowed: integer >= 1)")
        if not is_int(self.finetune_top) or not 0 <= self.finetune_top <= 20:
            problems.append(f"finetune_top (--finetune-top): {self.finetune_top!r} (allowed: integer 0-20; 0 = no "
                            "confirmation)")
        if not is_int(self.finetune_epochs) or self.finetune_epochs < 1:
            problems.append(f"finetune_epochs (--finetune-epochs): {self.finetune_epochs!r} (allowed: integer >= 1)")
        if not (isinstance(self.finetune_lr, (int, float)) and not isinstance(self.finetune_lr, bool)
                and math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            problems.append(f"finetune_lr (--finetune-lr): {self.finetune_lr!r} (allowed: a finite number > 0)")
        if self.finetune_subset is not None and (not is_int(self.finetune_subset) or self.finetune_subset < 64):
            problems.append(f"finetune_subset (--finetune-subset): {self.finetune_subset!r} (allowed: integer >= 64, "
                            "or None for the whole training split)")
        if self.precision not in PRECISIONS:
            problems.append(f"precision (--precision): {self.precision!r} (allowed: {' | '.join(PRECISIONS)})")
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
    suffix = ("" if cfg.loss == "auto" else f"-{cfg.loss}") + ("-smoke" if cfg.smoke else "")
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
    task: Task
    notes: list[str] = field(default_factory=list)
    latency_probe: dict[str, Any] | None = None  # the host table's start-up probe (nas.latency.probe_table)


def prepare(cfg: SearchConfig, *, splits: DataSplits | None = None) -> SearchInputs:
    """Check device, budget, space and data; raise before any training if one is wrong.

    Raises:
        UnknownDeviceError: no table for the device (lists the available ones).
        LatencyTableError: the table is corrupted or was built for another space.
        ValueError: malformed budget; BudgetError: budget below the fastest member's latency.
        ConfigError / FileNotFoundError: bad or missing space file.
        DataError: missing data (says how to get it).
        StorageError: the run directory, the supernet directory or the study storage cannot be
            written, or the storage URL is malformed, unreachable, corrupt or lacks its driver.
    """
    budget_ms = parse_budget(cfg.budget)
    _check_precision(cfg.precision)
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
    ensure_writable_dir(run_dir, "--run-dir")
    from nas.supernet import CheckpointError, load_checkpoint

    sdir = supernet_dir(cfg, space)
    if sdir.is_file() or (sdir / "supernet.pt").is_file():
        if cfg.supernet:  # the user's file: readable as a checkpoint, before the study storage is made
            load_checkpoint(sdir)
    elif sdir.suffix == ".pt":
        raise CheckpointError(f"--supernet {sdir}: no such checkpoint file (give a supernet.pt written by "
                              "nas.train, its run directory, or a directory to train one in)")
    else:  # to be trained: it must be writable
        ensure_writable_dir(sdir, "--supernet")
    storage = cfg.storage or default_storage(run_dir)
    check_storage(storage)
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
        task=_task(cfg, splits),
    )


def _check_precision(precision: str) -> None:
    """The precision can be had on this machine's training device (CUDA when present)."""
    import torch

    from nas.train import resolve_precision

    try:
        resolve_precision(precision, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    except ValueError as exc:
        raise ConfigError("search settings", [str(exc)]) from None


def _task(cfg: SearchConfig, splits: DataSplits) -> Task:
    """The data's task, with ``--loss`` checked against it (before any training)."""
    try:
        return task_for_data(splits, loss=cfg.loss)
    except ConfigError as exc:
        raise ConfigError("search settings", [p.replace("loss:", "loss (--loss):") for p in exc.problems]) from None


def ensure_writable_dir(path: Path, flag: str) -> None:
    """Create ``path`` if needed and check that files can be written in it.

    Raises:
        StorageError: naming ``flag``, when ``path`` is a file, cannot be created or is read-only.
    """
    if path.exists() and not path.is_dir():
        raise StorageError(f"{flag} {path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None


def _masked(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def check_storage(url: str) -> None:
    """Open the study storage once, before any training, so a bad one fails in seconds, not after it.

    Raises:
        StorageError: a malformed URL, a missing directory or driver, an unreachable server, a
            corrupt or read-only database (the message names the URL, without its password).
    """
    shown = _masked(url)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
        raise StorageError(f"--storage {shown!r}: not a storage URL (allowed: sqlite:///PATH/study.db, "
                           "postgresql://USER:PASSWORD@HOST/DB, or another SQLAlchemy URL)")
    db = sqlite_path(url)
    if db is not None:
        if not db.parent.is_dir():
            raise StorageError(f"--storage {shown}: directory {db.parent} does not exist")
        if db.exists() and (not db.is_file() or not os.access(db, os.R_OK | os.W_OK)):
            raise StorageError(f"--storage {shown}: {db} is not a readable and writable file")
        if not os.access(db.parent, os.W_OK):
            raise StorageError(f"--storage {shown}: directory {db.parent} is not writable")
    import sqlalchemy.exc

    storage = None
    try:
        storage = heartbeat_storage(url)
        storage.get_all_studies()
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as a bare ImportError
        cause = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__ or exc.__context__
        name = getattr(cause, "name", None) or "?"
        hint = " (pip install 'psycopg[binary]'; bash scripts/install.sh installs it)" if url.startswith("postgresql") else ""
        raise StorageError(f"--storage {shown}: its database driver {name!r} is not installed{hint}") from None
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as exc:
        raise StorageError(f"--storage {shown}: not a valid storage URL ({str(exc).splitlines()[0]})") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StorageError(f"--storage {shown}: cannot be opened ({detail})") from None
    except (RuntimeError, ValueError) as exc:  # e.g. Optuna's "incompatible schema version"
        raise StorageError(f"--storage {shown}: {str(exc).splitlines()[0]}") from None
    finally:
        if storage is not None:
            storage.remove_session()
            storage.engine.dispose()
