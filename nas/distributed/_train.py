"""Data-parallel supernet training with Ray Train (``python -m nas.train --backend ray``).

``TorchTrainer`` starts ``num_workers`` processes and their ``torch.distributed`` group (gloo on
CPU, NCCL on GPU); each runs :func:`nas.train.train_supernet` with a :class:`DataParallel` share,
so the training step is the single-process one. Rank 0 writes the normal checkpoint
(``RUN_DIR/supernet.pt``, same format) after every epoch, so ``--resume``, ``nas.evaluate`` and
``nas.search`` use it unchanged. On a multi-node cluster ``RUN_DIR`` must be on a file system all
nodes share (it is where rank 0 writes and, on resume, where every worker reads).

A worker that dies makes Ray Train restart the group once; the restarted workers continue after
the last checkpointed epoch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.data import DataSplits
from nas.errors import ConfigError
from nas.distributed._cluster import ray_cluster
from nas.supernet import checkpoint_path

if TYPE_CHECKING:
    from nas.train import TrainConfig

__all__ = ["DistributedTrainingError", "train_supernet_ray"]


class DistributedTrainingError(RuntimeError):
    """Training failed on the workers; the message carries their error."""


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: its share of every step (runs in the worker process)."""
    import ray
    import ray.train
    import torch

    from nas.distributed._data_parallel import DataParallel
    from nas.train import TrainConfig, train_supernet

    ctx = ray.train.get_context()
    parallel = DataParallel(ctx.get_world_rank(), ctx.get_world_size())
    torch.set_num_threads(config["threads"])
    if config["use_gpu"]:
        import ray.train.torch

        device = str(ray.train.torch.get_device())
    else:
        device = "cpu"
    cfg = TrainConfig.from_dict(config["cfg"])
    path = checkpoint_path(config["run_dir"])
    # A fresh run whose checkpoint exists now was restarted after a failure: the driver checked
    # there was none when it started, so the file is this run's own; continue after its last epoch.
    resume = config["resume"] or path.exists()
    # a fresh run trains the driver's cfg as it is (given=None): the task's recipe is applied there
    result = train_supernet(
        cfg, config["run_dir"], resume=resume, given=set(config["given"]) if config["resume"] else None,
        device=device, progress=False, splits=ray.get(config["splits"]), parallel=parallel,
        stop_after_epoch=config["stop_after_epoch"],
    )
    last = result.history[-1] if result.history else {}
    ray.train.report({k: v for k, v in last.items() if isinstance(v, (int, float))})


def train_supernet_ray(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    num_workers: int,
    resume: bool = False,
    given: set[str] | None = None,
    address: str | None = None,
    use_gpu: bool | None = None,
    threads_per_worker: int = 1,
    splits: DataSplits | None = None,
    stop_after_epoch: int | None = None,
    num_cpus: int | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or resume) a supernet with ``num_workers`` data-parallel Ray Train workers.

    Args:
        cfg: the :class:`nas.train.TrainConfig`; ``batch_size`` is the global batch (each worker
            trains on ``batch_size / num_workers`` images per step), so the schedule and the
            recipe are the single-process ones.
        run_dir: output directory (shared by all nodes on a multi-node cluster).
        num_workers: training processes.
        resume / given: as for :func:`nas.train.train_supernet`.
        address: Ray cluster to join; ``None`` starts a local one.
        use_gpu: one GPU per worker (NCCL); default: when the cluster has a GPU per worker.
        threads_per_worker: torch threads (and CPUs reserved) per worker.
        splits: preloaded data (tests); default: loaded here and shipped to the workers through
            Ray's object store, so the nodes need no copy of the data.
        stop_after_epoch: as for :func:`nas.train.train_supernet`.
        num_cpus: CPUs of a local cluster (default: the machine's).

    Returns:
        the checkpoint path (``run_dir/supernet.pt``).

    Raises:
        ConfigError: bad worker count, or a batch that does not split evenly over the workers.
        CheckpointError: as for :func:`nas.train.train_supernet` (checked before workers start).
        DistributedTrainingError: training failed on the workers (the message carries their error).
    """
    from nas.train import prepare_run

    problems = []
    if not isinstance(num_workers, int) or num_workers < 1:
        problems.append(f"num_workers: {num_workers!r} (allowed: integer >= 1)")
    elif cfg.batch_size % num_workers:
        problems.append(f"batch_size: {cfg.batch_size} (allowed: a multiple of num_workers {num_workers})")
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        problems.append(f"threads_per_worker: {threads_per_worker!r} (allowed: integer >= 1)")
    if problems:
        raise ConfigError("ray training", problems)
    run_dir = Path(run_dir).resolve()
    path = checkpoint_path(run_dir)
    # everything that can be wrong is checked here, before any worker starts
    cfg, ckpt, space, splits, _ = prepare_run(cfg, path, resume=resume, given=given, splits=splits)
    run_dir.mkdir(parents=True, exist_ok=True)

    with ray_cluster(address, num_cpus=num_cpus, log=log) as resources:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        if use_gpu is None:
            use_gpu = resources.get("GPU", 0) >= num_workers
        log(f"ray train: {num_workers} workers ({'NCCL on GPU' if use_gpu else 'gloo on CPU'}), global batch "
            f"{cfg.batch_size} = {num_workers} x {cfg.batch_size // num_workers}; checkpoint {path}")
        trainer = TorchTrainer(
            _worker,
            train_loop_config={
                "cfg": cfg.to_dict(), "run_dir": str(run_dir), "resume": resume, "given": sorted(given or ()),
                "splits": ray.put(splits), "use_gpu": use_gpu, "threads": threads_per_worker,
                "stop_after_epoch": stop_after_epoch,
            },
            scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                         resources_per_worker={"CPU": threads_per_worker}),
            run_config=RunConfig(name="train", storage_path=str(run_dir / "ray"),
                                 failure_config=FailureConfig(max_failures=1)),
        )
        try:
            _fit_showing_epochs(trainer, run_dir / "history.json", cfg.epochs, log)
        except Exception as exc:  # Ray wraps the workers' error; re-raise it as one readable message
            raise DistributedTrainingError(f"ray training in {run_dir} failed: {exc}") from exc
    return path


def _fit_showing_epochs(trainer: Any, history: Path, epochs: int, log: Callable[[str], None],
                        poll_seconds: float = 2.0) -> None:
    """Run ``trainer.fit()``, logging each epoch that rank 0 adds to ``history.json`` meanwhile.

    (The workers' own output stays in Ray's logs: forwarding it would bring Ray's chatter too.)
    """
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    def read() -> list[dict[str, Any]]:
        try:
            return list(json.loads(history.read_text()))
        except (OSError, ValueError):  # not written yet, or being replaced
            return []

    def echo(shown: int) -> int:
        for record in read():
            if record.get("epoch", 0) > shown:
                shown = record["epoch"]
                log(f"epoch {shown}/{epochs}: " + ", ".join(f"{k} {v}" for k, v in record.items() if k != "epoch"))
        return shown

    shown = max((r.get("epoch", 0) for r in read()), default=0)  # a resumed run's past epochs: not repeated
    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(poll_seconds)
        shown = echo(shown)
    if "error" in outcome:
        raise outcome["error"]
