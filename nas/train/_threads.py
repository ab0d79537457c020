"""Training beside other CPU-bound processes: torch's CPU threads follow the cores left free.

torch's OpenMP threads wait for each other at the end of every parallel region by spinning. When
another process runs on one of the cores, the thread sharing that core is descheduled, the others
spin for it, and every region takes as long as its slowest thread: on the 2-core VM one busy loop
beside the supernet training made a step 2.8-2.9x slower (``benchmarks/PRECISION.md``).
``OMP_WAIT_POLICY=PASSIVE`` (no spinning) cut that to 1.5x but made the quiet step 20 % slower;
one thread was 1.02x under load but 50 % slower when quiet.

:class:`ThreadGovernor` keeps the quiet speed and the loaded one: every ``every_s`` seconds it
reads how much CPU the other processes took (``/proc/stat`` minus this process's share from
``/proc/self/stat``) and sets torch's threads to the cores they left free (rounded, at least 1, at
most the threads it started with); when they stop, the threads come back.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["ThreadGovernor", "other_cpu_load"]


def _system_busy_ticks() -> int | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    values = [int(v) for v in fields[1:9]]
    return sum(values) - values[3] - values[4]


def _own_ticks() -> int | None:
    try:
        text = Path("/proc/self/stat").read_text()
    except OSError:
        return None
    after = text.rsplit(")", 1)[1].split()  # fields after the command name; utime, stime are 14, 15
    return int(after[11]) + int(after[12])


class _Sampler:
    """CPU used by other processes, in cores, between two calls."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last = (time.monotonic(), _system_busy_ticks(), _own_ticks())

    def sample(self) -> float | None:
        now = (time.monotonic(), _system_busy_ticks(), _own_ticks())
        (t0, s0, o0), (t1, s1, o1) = self.last, now
        self.last = now
        if None in (s0, s1, o0, o1) or t1 - t0 <= 0:
            return None
        return max(0.0, ((s1 - s0) - (o1 - o0)) / self.hz / (t1 - t0))


def other_cpu_load(seconds: float = 1.0) -> float | None:
    """Cores' worth of CPU the other processes used over the next ``seconds`` (None: unknown)."""
    sampler = _Sampler()
    time.sleep(seconds)
    return sampler.sample()


class ThreadGovernor:
    """Call :meth:`tick` once per training step; it adjusts ``torch.set_num_threads``.

    Args:
        device: the training device; the governor does nothing unless it is a CPU.
        every_s: seconds between two looks at the other processes' load.
        log: called with a line when the thread count changes.
        enabled: False: do nothing (``NAS_ADAPTIVE_THREADS=0`` in the environment also turns it off).
    """

    def __init__(self, device: torch.device, *, every_s: float = 10.0, log: Callable[[str], None] | None = None,
                 enabled: bool = True) -> None:
        self.max_threads = torch.get_num_threads()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.enabled = (enabled and device.type == "cpu" and self.max_threads > 1
                        and os.environ.get("NAS_ADAPTIVE_THREADS", "1") != "0" and _own_ticks() is not None)
        self.every_s = every_s
        self.log = log
        self.changes: list[tuple[float, int]] = []  # (load of the others, threads set)
        self._sampler = _Sampler() if self.enabled else None
        self._next = time.monotonic() + every_s

    def tick(self) -> None:
        if not self.enabled or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + self.every_s
        others = self._sampler.sample()
        if others is None:
            return
        # a quarter core of others is let be; more costs a core (its thread would wait on every region)
        want = max(1, min(self.max_threads, self.cores - math.ceil(others - 0.25)))
        if want != torch.get_num_threads():
            torch.set_num_threads(want)
            self.changes.append((round(others, 2), want))
            if self.log is not None:
                self.log(f"other processes use {others:.1f} of {self.cores} cores: training on {want} "
                         f"thread{'s' if want > 1 else ''}")

    def __enter__(self) -> ThreadGovernor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Back to the threads it started with (call when the training ends)."""
        if self.enabled and torch.get_num_threads() != self.max_threads:
            torch.set_num_threads(self.max_threads)
