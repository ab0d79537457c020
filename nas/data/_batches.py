"""Turning uint8 image tensors into normalised float batches at a chosen resolution."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nas.data._types import DataSplits, ImageData

__all__ = ["to_float", "iterate_batches"]


def to_float(
    images: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    resolution: int | None = None,
) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> normalised float32, bilinearly resized to ``resolution``."""
    x = images.float().div_(255)
    if resolution is not None and resolution != x.shape[-1]:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def iterate_batches(
    data: ImageData,
    splits: DataSplits,
    *,
    batch_size: int,
    resolution: int | None = None,
    shuffle: bool = False,
    rng: np.random.Generator | None = None,
    drop_last: bool = False,
    limit: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` float batches of ``data`` (normalised with ``splits`` stats).

    ``limit`` caps the number of images (a fixed prefix, or a random subset when shuffling).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle and rng is None:
        raise ValueError("shuffle=True needs rng (a numpy Generator) so that runs are reproducible")
    n = len(data)
    order = rng.permutation(n) if shuffle else np.arange(n)
    if limit is not None:
        order = order[:limit]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if drop_last and len(idx) < batch_size:
            break
        index = torch.from_numpy(np.ascontiguousarray(idx))
        yield to_float(data.images[index], splits.mean, splits.std, resolution), data.labels[index]
