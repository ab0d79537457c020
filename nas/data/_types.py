"""In-memory image datasets and the fixed train/validation split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["ImageData", "DataSplits", "split_train_val"]


@dataclass(frozen=True)
class ImageData:
    """Images as a uint8 tensor ``[N, C, H, W]``; labels as int64 class indices ``[N]``
    (single-label) or uint8 multi-hot ``[N, len(classes)]`` (multi-label)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dim() not in (1, 2) or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be [N] or [N, classes] with N={len(self.images)}, "
                             f"got {tuple(self.labels.shape)}")
        if self.labels.dim() == 2:
            if self.labels.dtype != torch.uint8 or self.labels.shape[1] != len(self.classes):
                raise ValueError(f"multi-hot labels must be uint8 [N, {len(self.classes)}], "
                                 f"got {self.labels.dtype} {tuple(self.labels.shape)}")
            if len(self.labels) and int(self.labels.max()) > 1:
                raise ValueError("multi-hot labels must hold only 0 and 1")
            return
        if self.labels.dtype != torch.int64:
            raise ValueError(f"class-index labels must be int64 [N], got {self.labels.dtype}")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes)}), got [{int(self.labels.min())}, {int(self.labels.max())}]")

    @property
    def multi_label(self) -> bool:
        """Whether the labels are multi-hot (several classes per image)."""
        return self.labels.dim() == 2

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        return int(self.images.shape[2])

    def subset(self, index: torch.Tensor | np.ndarray) -> ImageData:
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageData(self.images[index], self.labels[index], self.classes)

    def with_channels(self, channels: int) -> ImageData:
        """Grayscale -> ``channels`` by repetition (a view: no copy); other mismatches are errors."""
        if channels == self.channels:
            return self
        if self.channels == 1:
            return ImageData(self.images.expand(-1, channels, -1, -1), self.labels, self.classes)
        raise ValueError(f"cannot turn {self.channels}-channel images into {channels} channels")


@dataclass(frozen=True)
class DataSplits:
    """Train / validation (carved from the training set) / test, plus normalisation statistics.

    Validation drives search; the test split is only for final reports.
    """

    name: str
    train: ImageData
    val: ImageData
    test: ImageData | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def multi_label(self) -> bool:
        return self.train.multi_label

    @property
    def native_resolution(self) -> int:
        return self.train.size

    def fingerprint(self, sample: int = 2048) -> str:
        """A digest of the training split's content (shape, classes, every label and up to ``sample``
        evenly strided images): a supernet trained on this data records it, and reusing or resuming
        it on data with another fingerprint is refused. Changes with the files, the split seed or the
        mosaic settings; costs milliseconds."""
        train = self.train
        h = hashlib.sha256(repr((tuple(train.images.shape), train.classes, self.multi_label)).encode())
        h.update(train.labels.contiguous().numpy().tobytes())
        step = max(1, len(train) // sample)
        h.update(train.images[::step].contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        test = len(self.test) if self.test is not None else 0
        kind = "multi-label, " if self.multi_label else ""
        return (
            f"{self.name}: {kind}{self.num_classes} classes, {self.native_resolution}px x {self.channels}ch, "
            f"train {len(self.train)} / val {len(self.val)} / test {test} ({self.source})"
        )


def split_train_val(data: ImageData, val_fraction: float, seed: int) -> tuple[ImageData, ImageData]:
    """Fixed, seeded split of a training set into train and validation parts."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(data)
    n_val = max(1, int(round(n * val_fraction)))
    if n_val >= n:
        raise ValueError(f"a {val_fraction} validation split of {n} images leaves no training data")
    perm = np.random.default_rng(seed).permutation(n)
    return data.subset(np.sort(perm[n_val:])), data.subset(np.sort(perm[:n_val]))


def channel_stats(data: ImageData, max_images: int = 10000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] units, from up to ``max_images`` images."""
    x = data.images[:max_images].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)
