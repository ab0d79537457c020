"""Supernet checkpoints: plain tensors and dicts, loaded with ``torch.load(weights_only=True)``.

A checkpoint is self-contained: it embeds the search-space config (and its digest), the number of
classes, the data it was trained on, the training resolution and settings, the completed epoch,
and the optimizer / AMP-scaler states, so ``--resume`` continues exactly and ``nas.evaluate`` needs
nothing but the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.space import SearchSpace, parse_space
from nas.supernet._supernet import Supernet

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_path",
    "load_checkpoint",
    "load_supernet",
    "save_checkpoint",
]

FORMAT = "nas-supernet/1"
CHECKPOINT_NAME = "supernet.pt"
_REQUIRED = (
    "format", "space_name", "space_digest", "space_config", "num_classes", "data", "train_resolution",
    "epoch", "kernel_transform", "settings", "model",
)


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit the space / data it is used with."""


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a supernet checkpoint.

    ``epoch`` counts completed epochs; ``train_resolution`` is the proxy side every subnet was
    trained at, or ``None`` when each subnet ran at its own ``arch.resolution``.
    """

    space_name: str
    space_digest: str
    space_config: dict[str, Any]
    num_classes: int
    data: dict[str, Any]
    train_resolution: int | None
    epoch: int
    kernel_transform: bool
    settings: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""

    def space(self) -> SearchSpace:
        """The search space embedded in the checkpoint (validated, digest checked)."""
        config = parse_space(self.space_config, source=f"{self.path or 'checkpoint'} (embedded space)")
        if config.digest != self.space_digest:
            raise CheckpointError(
                f"{self.path}: the embedded space config hashes to {config.digest}, but the checkpoint "
                f"records {self.space_digest}; the file is corrupt or was edited"
            )
        return SearchSpace(config)

    def check_compatible(self, space: SearchSpace | None = None, num_classes: int | None = None) -> None:
        """Refuse a checkpoint made for another space or another number of classes.

        Raises:
            CheckpointError: naming both values.
        """
        problems = []
        if space is not None and space.digest != self.space_digest:
            problems.append(
                f"it was trained on search space {self.space_name!r} (digest {self.space_digest}), "
                f"not on {space.name!r} (digest {space.digest})"
            )
        if num_classes is not None and num_classes != self.num_classes:
            problems.append(
                f"it has {self.num_classes} output classes, the data has {num_classes}"
            )
        if problems:
            raise CheckpointError(f"checkpoint {self.path or '(in memory)'} does not fit: " + "; ".join(problems))


def checkpoint_path(path: str | Path) -> Path:
    """``path`` itself if it is a file (or ends in ``.pt``), else ``path/supernet.pt`` (a run directory)."""
    path = Path(path)
    if path.is_file() or path.suffix in (".pt", ".pth"):
        return path
    return path / CHECKPOINT_NAME


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically (temporary file + rename), so an interruption never leaves half a file."""
    path = checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "space_name": ckpt.space_name,
        "space_digest": ckpt.space_digest,
        "space_config": ckpt.space_config,
        "num_classes": ckpt.num_classes,
        "data": ckpt.data,
        "train_resolution": ckpt.train_resolution,
        "epoch": ckpt.epoch,
        "kernel_transform": ckpt.kernel_transform,
        "settings": ckpt.settings,
        "model": ckpt.model,
        "optimizer": ckpt.optimizer,
        "scaler": ckpt.scaler,
        "history": ckpt.history,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint file or run directory (``weights_only=True``: no code is unpickled).

    Raises:
        CheckpointError: the file is missing or not a supernet checkpoint of this format.
    """
    path = checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no supernet checkpoint at {path}; train one with `python -m nas.train --run-dir {path.parent}`"
        )
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; re-raise with the path
        raise CheckpointError(f"{path}: not a readable supernet checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: not a supernet checkpoint of format {FORMAT!r} (found {found!r})")
    missing = [key for key in _REQUIRED if key not in blob]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    return Checkpoint(
        **{k: blob[k] for k in _REQUIRED if k != "format"},
        optimizer=blob.get("optimizer"),
        scaler=blob.get("scaler"),
        history=list(blob.get("history") or []),
        path=str(path),
    )


def load_supernet(
    path: str | Path,
    *,
    space: SearchSpace | None = None,
    num_classes: int | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[Supernet, Checkpoint]:
    """Rebuild the trained supernet of a checkpoint file or run directory.

    Args:
        path: ``runs/NAME`` or ``runs/NAME/supernet.pt``.
        space: if given, the checkpoint must have been trained on this space (same digest).
        num_classes: if given, the checkpoint must have this many classes.
        map_location: device for the weights.

    Returns:
        ``(supernet in eval mode, checkpoint)``.

    Raises:
        CheckpointError: missing/malformed file, or another space / number of classes.
    """
    ckpt = load_checkpoint(path, map_location)
    ckpt.check_compatible(space, num_classes)
    supernet = Supernet(ckpt.space(), ckpt.num_classes, kernel_transform=ckpt.kernel_transform)
    try:
        supernet.load_state_dict(ckpt.model)
    except RuntimeError as exc:
        raise CheckpointError(f"{ckpt.path}: weights do not fit the supernet of its space: {exc}") from None
    return supernet.to(map_location).eval(), ckpt
