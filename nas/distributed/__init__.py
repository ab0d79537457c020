"""Scaling out on Ray: a quiet local cluster or an existing one, and data-parallel supernet training.

Importing this package sets Ray's environment defaults (:data:`RAY_ENV`, only where unset), so
import it before ``ray``. The search's Ray backend lives with the search (``nas.search._ray_backend``).
"""

from nas.distributed._cluster import RAY_ENV, RayStartError, apply_env, ray_cluster

apply_env()

from nas.distributed._data_parallel import DataParallel  # noqa: E402
from nas.distributed._train import DistributedTrainingError, train_supernet_ray  # noqa: E402

__all__ = ["RAY_ENV", "DataParallel", "RayStartError", "DistributedTrainingError", "ray_cluster", "train_supernet_ray"]
