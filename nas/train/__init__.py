"""Supernet training: the sandwich rule with in-place distillation, cosine schedule, checkpoints.

Each step runs the largest subnet on the labels (label-smoothed cross-entropy), then the smallest
and ``n_random`` random subnets on the largest one's soft predictions (in-place distillation,
BigNAS / once-for-all) mixed with the labels (``distill_weight`` 0.5: in short CPU schedules a
pure-distillation start, from a teacher that knows nothing yet, drags the shared weights back;
measured below), accumulates all gradients and takes one SGD step.

Reproducible: the shuffle order, the sampled subnets and dropout of epoch ``e`` are drawn from
generators seeded with ``(seed, e)``, so a run resumed after epoch ``e`` continues exactly as the
uninterrupted run would (checkpoints hold weights, optimizer and AMP-scaler states).

CLI (the default recipe: mobilenetv3_large at a 32 px proxy on Fashion-MNIST)::

    python -m nas.train                                       # -> runs/supernet/supernet.pt
    python -m nas.train --run-dir runs/supernet --resume
    python -m nas.train --space mobilenetv3_small32 --resolution arch --run-dir runs/small32
    python -m nas.train --smoke --run-dir runs/smoke          # about a minute
    python -m nas.train --backend ray --num-workers 4         # data-parallel on a Ray cluster (docs/ray.md)
"""

from nas.train._cli import SMOKE, main
from nas.train._config import RESOLUTION_SAMPLING, TrainConfig
from nas.train._optim import lr_at, soft_cross_entropy
from nas.train._static import train_static
from nas.train._supernet_training import TrainResult, prepare_run, train_supernet

__all__ = [
    "RESOLUTION_SAMPLING",
    "SMOKE",
    "TrainConfig",
    "TrainResult",
    "lr_at",
    "main",
    "prepare_run",
    "soft_cross_entropy",
    "train_static",
    "train_supernet",
]
