"""Supernet checkpoints: plain tensors and dicts, loaded with ``torch.load(weights_only=True)``.

A checkpoint is self-contained: it embeds the search-space config (and its digest), the number of
classes, the data it was trained on, the training resolution and settings, the completed epoch,
and the optimizer / AMP-scaler states, so ``--resume`` continues exactly and ``nas.evaluate`` needs
nothing but the file.

Training also writes checkpoints in the middle of an epoch (every ``checkpoint_minutes``): they
have ``epoch`` = the completed epochs as always, ``step`` > 0 = the optimizer steps already taken
in epoch ``epoch + 1``, and ``resume_state`` = what that epoch needs to continue exactly (random
generator states, running loss). Code that only reads ``epoch`` therefore sees "``epoch`` epochs
finished" and never mistakes a partly trained epoch for a finished one.

Every write is atomic and durable: a temporary file in the same directory, flushed and fsynced,
then ``os.replace``, then the directory fsynced; a process killed (even ``kill -9``) or a machine
losing power during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from nas.errors import load_failure
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
    "write_atomically",
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

    ``step`` is 0 for a checkpoint written at the end of epoch ``epoch``; a checkpoint written in
    the middle of the next epoch has ``step`` > 0, the optimizer steps already taken in epoch
    ``epoch + 1`` (up to all of them, when the epoch's scoring had not finished), and
    ``resume_state``, what training needs to continue that epoch exactly (see
    :func:`nas.train.train_supernet`). ``history`` lists completed epochs only.
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
    step: int = 0
    resume_state: dict[str, Any] | None = None

    @property
    def mid_epoch(self) -> bool:
        """Whether the checkpoint was written inside epoch ``epoch + 1`` (which is not finished)."""
        return self.step > 0

    def progress(self) -> str:
        """``"epoch 3"``, or ``"epoch 3 + 120 steps of epoch 4"`` for a mid-epoch checkpoint."""
        if self.mid_epoch:
            return f"epoch {self.epoch} + {self.step} steps of epoch {self.epoch + 1}"
        return f"epoch {self.epoch}"

    def space(self) -> SearchSpace:
        """The search space embedded in the checkpoint (validated, digest checked)."""
        config = parse_space(self.space_config, source=f"{self.path or 'checkpoint'} (embedded space)")
        if config.digest != self.space_digest:
            raise CheckpointError(
                f"{self.path}: the embedded space config hashes to {config.digest}, but the checkpoint "
                f"records {self.space_digest}; the file is corrupt or was edited"
            )
        return SearchSpace(config)

    def check_compatible(self, space: SearchSpace | None = None, num_classes: int | None = None, *,
                         data_fingerprint: str | None = None) -> None:
        """Refuse a checkpoint made for another space, another number of classes or (given
        ``data_fingerprint``, :meth:`nas.data.DataSplits.fingerprint`) other training data. A
        checkpoint written before fingerprints were recorded passes the data check.

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
        trained_on = self.data.get("fingerprint")
        if data_fingerprint is not None and trained_on is not None and trained_on != data_fingerprint:
            problems.append(
                f"it was trained on other data than the data given now ({self.data.get('name')!r}, fingerprint "
                f"{trained_on} vs {data_fingerprint}: other files, split seed or mosaic settings); train a new "
                "supernet in another directory, or delete this one"
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
    """Write ``ckpt`` atomically and durably (see :func:`write_atomically`): an interruption at any
    point, ``kill -9`` included, leaves either the previous checkpoint or the new one, never half a
    file."""
    path = checkpoint_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(ckpt.step, int) or isinstance(ckpt.step, bool) or ckpt.step < 0:
        raise CheckpointError(f"{path}: step {ckpt.step!r} (allowed: integer >= 0)")
    if ckpt.step > 0 and not isinstance(ckpt.resume_state, dict):
        raise CheckpointError(f"{path}: a mid-epoch checkpoint (step {ckpt.step}) needs its resume_state")
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
        "step": ckpt.step,
        "resume_state": ckpt.resume_state,
    }
    write_atomically(path, lambda f: torch.save(blob, f))
    return path


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Replace ``path`` by what ``write`` writes to a binary file, atomically and durably.

    ``write`` fills ``path.tmp`` (same directory, hence same file system); the file is flushed and
    fsynced, renamed over ``path`` with ``os.replace`` and the directory fsynced, so the rename
    itself survives a power loss. A process killed at any point leaves ``path`` as it was (or
    complete and new); a stale ``path.tmp`` left by a killed process is overwritten next time.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; the rename is durable there anyway
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


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
        raise CheckpointError(f"{path}: not a readable supernet checkpoint ({load_failure(exc)})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(f"{path}: not a supernet checkpoint of format {FORMAT!r} (found {found!r})")
    missing = [key for key in _REQUIRED if key not in blob]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {missing}")
    step, resume_state = blob.get("step", 0), blob.get("resume_state")  # absent before mid-epoch checkpoints
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: step {step!r} (allowed: integer >= 0; the file is corrupt)")
    if step > 0 and not isinstance(resume_state, dict):
        raise CheckpointError(f"{path}: a mid-epoch checkpoint (step {step}) without its resume_state")
    return Checkpoint(
        **{k: blob[k] for k in _REQUIRED if k != "format"},
        optimizer=blob.get("optimizer"),
        scaler=blob.get("scaler"),
        history=list(blob.get("history") or []),
        path=str(path),
        step=step,
        resume_state=resume_state if step > 0 else None,
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
        ``(supernet in eval mode, checkpoint)``. A mid-epoch checkpoint loads too, with the
        weights of the step it was written at: ``ckpt.epoch`` still counts finished epochs only
        and ``ckpt.mid_epoch`` tells that epoch ``ckpt.epoch + 1`` is partly trained.

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
