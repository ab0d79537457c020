"""``fashion-mosaic``: multi-label images built deterministically from Fashion-MNIST items.

Each image is a black canvas holding a random number of Fashion-MNIST items at random positions
and scales (pasted with a pixel-wise maximum, so overlapping items stay visible), plus optional
clutter: unlabelled fragments cut from other items. Its multi-hot label marks the classes of the
items it holds. Training and validation mosaics are built from two disjoint parts of
Fashion-MNIST's training images, test mosaics only from its test images, so no item is shared
between splits. Everything is drawn from generators seeded with ``(seed, split)``: the same
settings give the same images, bit for bit, on every machine (generated in a few seconds, so
nothing is cached on disk).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas.data._types import ImageData

__all__ = ["MosaicConfig", "make_mosaics"]

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class MosaicConfig:
    """How mosaics are built.

    ``canvas``: image side (px). ``items``: least and most items per image (uniform).
    ``scale``: least and most item side as a fraction of the 28 px source item.
    ``clutter``: unlabelled fragments per image (each a random 6-12 px piece of another item).
    ``train`` / ``val`` / ``test``: number of mosaics per split.

    The defaults are the benchmark task of ``benchmarks/TASKS.md`` (chosen there over the first
    settings, 48 px with 1-4 items at 0.5-1.0 scale and 2 fragments, on which stand-alone trainings
    of the same networks disagreed far more from seed to seed).
    """

    canvas: int = 40
    items: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (0.6, 1.0)
    clutter: int = 1
    train: int = 20000
    val: int = 4000
    test: int = 5000

    def __post_init__(self) -> None:
        problems = []
        lo, hi = self.items
        if not (isinstance(self.canvas, int) and 16 <= self.canvas <= 256):
            problems.append(f"canvas: {self.canvas!r} (allowed: integer 16..256 px)")
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 16):
            problems.append(f"items: {self.items!r} (allowed: integers 1 <= least <= most <= 16)")
        s_lo, s_hi = self.scale
        if not (0.2 <= s_lo <= s_hi) or (isinstance(self.canvas, int) and s_hi * 28 > self.canvas):
            problems.append(f"scale: {self.scale!r} (allowed: 0.2 <= least <= most, items no larger than the canvas)")
        if not (isinstance(self.clutter, int) and 0 <= self.clutter <= 32):
            problems.append(f"clutter: {self.clutter!r} (allowed: integer 0..32)")
        for name in ("train", "val", "test"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                problems.append(f"{name}: {getattr(self, name)!r} (allowed: integer >= 1)")
        if problems:
            raise ValueError("fashion-mosaic settings: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


def _resized(items: np.ndarray, sides: np.ndarray) -> dict[int, np.ndarray]:
    """``items[i]`` bilinearly resized to ``sides[i]`` px, grouped by side (one resize per side)."""
    out: dict[int, np.ndarray] = {}
    for side in np.unique(sides):
        idx = np.flatnonzero(sides == side)
        x = torch.from_numpy(items[idx]).float().unsqueeze(1)
        y = F.interpolate(x, size=(int(side), int(side)), mode="bilinear", align_corners=False, antialias=True)
        out[int(side)] = (idx, y.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy())
    return out


def make_mosaics(source: ImageData, n: int, cfg: MosaicConfig, *, seed: int, split: str) -> ImageData:
    """``n`` mosaics of ``source``'s single-label grayscale items (multi-hot labels over its classes).

    Raises:
        ValueError: ``source`` is not single-label and single-channel, or ``split`` is unknown.
    """
    if source.multi_label or source.channels != 1:
        raise ValueError("mosaics are built from single-label grayscale items")
    if split not in _SPLIT_IDS:
        raise ValueError(f"split must be one of {tuple(_SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, _SPLIT_IDS[split]])
    items = source.images[:, 0].numpy()
    labels = source.labels.numpy()
    k = rng.integers(cfg.items[0], cfg.items[1] + 1, size=n)
    total = int(k.sum())
    owner = np.repeat(np.arange(n), k)
    pick = rng.integers(0, len(items), size=total)
    lo, hi = (max(4, int(round(28 * s))) for s in cfg.scale)
    sides = rng.integers(lo, hi + 1, size=total)
    xs = (rng.random(total) * (cfg.canvas - sides + 1)).astype(np.int64)
    ys = (rng.random(total) * (cfg.canvas - sides + 1)).astype(np.int64)
    canvas = np.zeros((n, cfg.canvas, cfg.canvas), dtype=np.uint8)
    multi_hot = np.zeros((n, len(source.classes)), dtype=np.uint8)
    multi_hot[owner, labels[pick]] = 1
    for side, (idx, pixels) in _resized(items[pick], sides).items():
        for j, i in enumerate(idx):
            window = canvas[owner[i], ys[i] : ys[i] + side, xs[i] : xs[i] + side]
            np.maximum(window, pixels[j], out=window)
    if cfg.clutter:
        m = n * cfg.clutter
        frag_owner = np.repeat(np.arange(n), cfg.clutter)
        frag_src = rng.integers(0, len(items), size=m)
        size = rng.integers(6, 13, size=m)
        sx, sy = rng.integers(0, 28 - size + 1), rng.integers(0, 28 - size + 1)
        dx = (rng.random(m) * (cfg.canvas - size + 1)).astype(np.int64)
        dy = (rng.random(m) * (cfg.canvas - size + 1)).astype(np.int64)
        for i in range(m):
            s = size[i]
            piece = items[frag_src[i], sy[i] : sy[i] + s, sx[i] : sx[i] + s]
            window = canvas[frag_owner[i], dy[i] : dy[i] + s, dx[i] : dx[i] + s]
            np.maximum(window, piece, out=window)
    return ImageData(torch.from_numpy(canvas).unsqueeze(1), torch.from_numpy(multi_hot), source.classes)
