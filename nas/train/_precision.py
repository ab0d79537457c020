"""Numeric precision of training and evaluation (``--precision auto|fp32|bf16|fp16``).

``auto`` picks what pays on the device: on CUDA bf16 autocast where the GPU supports it, else fp16
autocast with a gradient scaler; on a CPU fp32. bf16 autocast on a CPU needs AVX-512-BF16 or AMX
(otherwise it is emulated); on the 2-core Xeon VM that has both it made a supernet step at the 32 px
proxy slower than fp32, not faster (``benchmarks/PRECISION.md``), so ``auto`` leaves CPUs in fp32
and ``bf16`` stays an explicit choice there (for large inputs). fp16 autocast is CUDA only.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["PRECISIONS", "Precision", "resolve_precision", "cpu_has_bf16"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    """A concrete precision on one device: the autocast dtype (None: fp32) and whether the loss is
    scaled (fp16 only)."""

    name: str  # fp32 | bf16 | fp16
    device_type: str
    dtype: torch.dtype | None
    scaler: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for a forward pass (a no-op context in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler("cuda", enabled=self.scaler)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """The concrete precision ``precision`` means on ``device``.

    Raises:
        ValueError: an unknown name, fp16 on a CPU, or bf16 on a device without bf16 support
            (the message says what is allowed there).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision (--precision): {precision!r} (allowed: {' | '.join(PRECISIONS)})")
    cuda = device.type == "cuda"
    bf16_ok = torch.cuda.is_bf16_supported() if cuda else cpu_has_bf16()
    if precision == "auto":
        precision = ("bf16" if bf16_ok else "fp16") if cuda else "fp32"
    if precision == "fp32":
        return Precision("fp32", device.type, None, False)
    if precision == "fp16":
        if not cuda:
            raise ValueError("precision (--precision): fp16 autocast needs a CUDA device; on a CPU use fp32, "
                             "or bf16 where the CPU has AVX-512-BF16 or AMX")
        return Precision("fp16", device.type, torch.float16, True)
    if not bf16_ok:
        where = "this GPU" if cuda else "this CPU (no AVX-512-BF16 or AMX: bf16 would be emulated)"
        raise ValueError(f"precision (--precision): bf16 is not supported by {where}; use "
                         + ("fp16 or fp32" if cuda else "fp32"))
    return Precision("bf16", device.type, torch.bfloat16, False)
