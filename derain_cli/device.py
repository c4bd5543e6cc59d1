"""Device and precision choice.

``auto`` picks CUDA, then Apple's MPS, then the CPU. A device the user names explicitly must
exist: a missing one is an error, never a silent fallback to another device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import settings
from .errors import DeviceError, UsageError

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N|mps"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def choose_device(spec: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a torch.device that exists on this machine."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not mps_available():
            raise DeviceError("device 'mps' requested but Apple MPS is not available on this machine")
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        index_text = spec.partition(":")[2]
        if spec != "cuda" and not index_text.isdigit():  # a typo is a typo, GPU or not
            raise UsageError(f"bad device {spec!r}: expected {DEVICE_CHOICES}")
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} requested but CUDA is not available "
                f"(torch {torch.__version__} {'has no CUDA support' if torch.version.cuda is None else 'found no GPU'})"
            )
        if not index_text:
            return torch.device("cuda")
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device("cuda", index)
    raise UsageError(f"bad device {spec!r}: expected {DEVICE_CHOICES}")


def choose_dtype(precision: str, device: torch.device, half_safe: bool = True) -> torch.dtype:
    """fp32 on CPU; on a GPU ``auto`` means bf16 where the GPU has it natively (else fp16) for half-safe models."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise UsageError(f"bad precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision != "fp32" and device.type == "cpu":
            raise UsageError(f"precision {precision} needs a GPU; on the CPU derain runs in fp32")
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UsageError("this GPU does not support bf16; use --precision fp16 or fp32")
        return _DTYPES[precision]
    if device.type == "cpu" or not half_safe:
        return torch.float32
    if device.type == "cuda":
        return torch.bfloat16 if cuda_has_native_bf16(device) else torch.float16
    return torch.float16  # mps


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 in hardware (compute capability 8.0 and later).

    ``torch.cuda.is_bf16_supported()`` also says yes for older GPUs (a T4, a V100) where bf16 is
    only emulated, slowly, and it asks about the current device rather than the chosen one; for
    ``auto`` those GPUs are better served by fp16.
    """
    try:
        major, _minor = torch.cuda.get_device_capability(device)
    except (RuntimeError, AssertionError, ValueError):
        return False
    return major >= 8


def configure_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads: DERAIN_THREADS, else the number of cores (capped at 8)."""
    if threads is None:
        threads = settings.threads() or min(8, os.cpu_count() or 1)
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@dataclass
class DeviceInfo:
    name: str
    kind: str
    memory_gb: float | None
    detail: str = ""


def describe_devices() -> list[DeviceInfo]:
    """What `derain doctor` prints: every device torch can use here."""
    out = [DeviceInfo(name="cpu", kind="cpu", memory_gb=None, detail=f"{os.cpu_count()} cores")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out.append(
                DeviceInfo(name=f"cuda:{i}", kind="cuda", memory_gb=p.total_memory / 2**30,
                           detail=f"{p.name}, compute {p.major}.{p.minor}")
            )
    if mps_available():
        out.append(DeviceInfo(name="mps", kind="mps", memory_gb=None, detail="Apple Metal"))
    return out
