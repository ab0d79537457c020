"""Connecting to a Ray cluster, or starting a quiet local one that is shut down afterwards."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["RAY_ENV", "RayStartError", "apply_env", "ray_cluster"]


class RayStartError(RuntimeError):
    """A local Ray cluster did not start; the message names the folder holding its logs."""

#: Set before Ray is imported: no token auth prompt for a local cluster, no usage-stats upload,
#: no Tune result loggers (CSV/JSON/TensorBoard files per trial) nor its progress tables.
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "0",
    # Ray 2.60's raylet always starts its dashboard agent (include_dashboard=False only drops the
    # dashboard itself) and gives up after 30 s if the agent has not registered: on a loaded 2-core
    # machine the agent's start-up (a Python process importing aiohttp, grpc, ...) took longer.
    "RAY_agent_register_timeout_ms": "180000",
}

# Ray puts Unix sockets under its temp dir: <dir>/session_<date>_<pid>/sockets/plasma_store must
# stay under the 107-character limit of a socket path, so a local cluster gets a short directory.
_MAX_TEMP_DIR = 40


def apply_env() -> None:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)


def _package_dir() -> str:
    import nas

    return str(Path(nas.__file__).resolve().parent)


@contextmanager
def ray_cluster(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    log_to_driver: bool = False,
    log: Any = None,
) -> Iterator[dict[str, float]]:
    """Use the Ray cluster at ``address``, or start a local one; yields its total resources.

    A local cluster starts without the dashboard and without forwarding worker logs to the
    terminal; its session files live in a short temporary directory that is removed on success
    (kept, and its path logged, when the block raises). With ``address`` (``ray://...``,
    ``HOST:PORT`` or ``auto``) the ``nas`` package is shipped to the workers (``py_modules``), so
    the nodes need only the dependencies installed. If Ray is already initialised in this process
    (a test fixture, a notebook), that session is used and left running.

    Args:
        address: an existing cluster; ``None`` starts a local one.
        num_cpus / num_gpus: resources of a local cluster (Ray's default: all of the machine's).
        log_to_driver: show the workers' output here (Ray prefixes each line with its process).
        log: ``print``-like callable for one-line notices; ``None`` stays silent.
    """
    apply_env()
    import ray

    if ray.is_initialized():
        yield dict(ray.cluster_resources())
        return
    temp_dir = None
    kwargs: dict[str, Any] = {"log_to_driver": log_to_driver, "logging_level": logging.WARNING}
    if address is None:
        temp_dir = tempfile.mkdtemp(prefix="nas-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
        if len(temp_dir) > _MAX_TEMP_DIR:  # pragma: no cover - exotic TMPDIR layouts
            raise OSError(f"Ray temp dir {temp_dir!r} is too long for Unix socket paths; set TMPDIR shorter")
        kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, _temp_dir=temp_dir)
    else:
        kwargs.update(address=address, runtime_env={"py_modules": [_package_dir()]})
    try:
        ray.init(**kwargs)
    except Exception as exc:
        with contextlib.suppress(Exception):
            ray.shutdown()
        where = f"; its session logs are in {temp_dir} (raylet.out, dashboard_agent.log)" if temp_dir else ""
        if log is not None and temp_dir:
            log(f"Ray session logs kept in {temp_dir}")
        what = "a local Ray cluster" if address is None else f"Ray at {address!r}"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayStartError(f"could not start {what}: {reason}{where}") from exc
    ok = False
    try:
        yield dict(ray.cluster_resources())
        ok = True
    finally:
        ray.shutdown()
        if temp_dir is not None:
            if ok:
                shutil.rmtree(temp_dir, ignore_errors=True)
            elif log is not None:
                log(f"Ray session logs kept in {temp_dir}")

