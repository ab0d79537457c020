"""One process's share of data-parallel supernet training over ``torch.distributed``.

Why not ``DistributedDataParallel``: a sandwich-rule step runs four forward/backward passes, each
through a different subnet (a different subset of the shared weights), before one optimizer step.
DDP all-reduces on every backward and needs ``find_unused_parameters`` for the small subnets;
averaging the accumulated gradients once per step does the same arithmetic with a quarter of the
communication and no reducer state. It is exact because every process samples the same subnets
(same seeded generator), so the same parameters carry gradients everywhere; a divergence is
detected and raised, never averaged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from nas.errors import ConfigError

__all__ = ["DataParallel"]


@dataclass(frozen=True)
class DataParallel:
    """Rank ``rank`` of ``world_size`` processes (the default process group must be initialised).

    Each step's global batch (``batch_size`` images, drawn identically everywhere) is split by
    rank: process ``r`` trains on images ``r, r + world_size, ...``.
    """

    rank: int
    world_size: int

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.world_size, int) or self.world_size < 1:
            problems.append(f"world_size: {self.world_size!r} (allowed: integer >= 1)")
        elif not isinstance(self.rank, int) or not 0 <= self.rank < self.world_size:
            problems.append(f"rank: {self.rank!r} (allowed: 0 .. {self.world_size - 1})")
        if problems:
            raise ConfigError("data-parallel process", problems)

    @property
    def is_writer(self) -> bool:
        """Rank 0 scores, prints and writes the checkpoint."""
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise ConfigError("train config", [
                f"batch_size: {batch_size} (allowed: a multiple of the {self.world_size} workers, so that "
                "every worker trains on an equal share of each global batch)"
            ])

    def shard(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's images of the global batch."""
        return x[self.rank :: self.world_size], y[self.rank :: self.world_size]

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Start from rank 0's weights (they agree anyway: same seed or same checkpoint)."""
        if self.world_size == 1:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Replace every gradient by its mean over the processes (one all-reduce per step).

        Raises:
            RuntimeError: the processes hold gradients for different parameters (they trained
                different subnets: the sampling generators diverged).
        """
        if self.world_size == 1:
            return
        named = [(name, p.grad) for name, p in module.named_parameters() if p.grad is not None]
        grads = [g for _, g in named]
        device = grads[0].device if grads else next(module.parameters()).device
        # count and size of the gradients, max and -min over processes: equal iff all agree
        shape = torch.tensor([len(grads), sum(g.numel() for g in grads)], dtype=torch.float64, device=device)
        both = torch.cat([shape, -shape])
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        if not torch.equal(both[:2], -both[2:]):
            raise RuntimeError(
                f"rank {self.rank}: processes hold gradients for different parameters "
                f"(count/size here {shape.tolist()}, max {both[:2].tolist()}, min {(-both[2:]).tolist()}); "
                "the workers trained different subnets"
            )
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat.div_(self.world_size)
        for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            grad.copy_(synced)

    def mean(self, value: float) -> float:
        """Mean of a number over the processes."""
        if self.world_size == 1:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world_size
