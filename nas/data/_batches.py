"""Turning uint8 image tensors into normalised float batches at a chosen resolution."""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F

from nas.data._types import DataSplits, ImageData

__all__ = ["MAX_RESOLUTION", "to_float", "iterate_batches", "check_resolution"]

#: The largest input side batches are made at. A float32 batch of 128 RGB images at 1024 px is
#: 1.5 GiB before the first layer; far larger sides only come from typos (``--resolution 100000``
#: would ask for terabytes), so they are refused before anything is allocated.
MAX_RESOLUTION = 1024


def check_resolution(resolution: int, what: str = "resolution", minimum: int = 1) -> int:
    """``resolution`` if it is an integer in ``[minimum, MAX_RESOLUTION]``.

    Args:
        resolution: an input side in pixels.
        what: how the error names the value (a flag such as ``--resolution``).
        minimum: the smallest side allowed.

    Raises:
        ValueError: not an integer in range; the message names ``what`` and the allowed range.
    """
    integer = isinstance(resolution, Integral) and not isinstance(resolution, bool)
    if not integer or not minimum <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"{what}: {resolution!r} px (allowed: integer {minimum}..{MAX_RESOLUTION})")
    return int(resolution)


def to_float(
    images: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    resolution: int | None = None,
) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` -> normalised float32, bilinearly resized to ``resolution``.

    Raises:
        ValueError: ``resolution`` is not an integer in ``[1, MAX_RESOLUTION]``.
    """
    if resolution is not None:
        check_resolution(resolution)
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

    Raises:
        ValueError: ``batch_size`` < 1, ``limit`` < 0, ``resolution`` outside ``[1, MAX_RESOLUTION]``,
            or ``shuffle`` without ``rng``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 images (or None for all), got {limit}")
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
