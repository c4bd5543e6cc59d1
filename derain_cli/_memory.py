"""Peak memory of this process: the one place that measures it.

Two measurements, for two situations:

- :class:`PeakMemory` measures a block of code inside a long-lived process (``derain bench``): on a
  CUDA device the allocator's peak during the block (its counter is reset on entry); elsewhere
  the resident set size sampled by a thread every few milliseconds, since the kernel's own peak
  (``ru_maxrss``) covers the whole life of the process and cannot be reset portably.
- :func:`process_peak_rss_mb` is that whole-life kernel peak, exact, for benchmarks that run each
  setting in a fresh subprocess so that the process's peak is the setting's own.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from types import TracebackType
from typing import Any


def current_rss_bytes() -> int:
    """This process's resident memory now, in bytes; 0 where /proc is not available."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def process_peak_rss_mb() -> float:
    """Peak resident memory over this process's whole life, in MiB (NaN where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def _is_cuda(device: Any) -> bool:
    return device is not None and str(device).startswith("cuda")


class PeakMemory:
    """Peak memory during a ``with`` block on `device`: ``with PeakMemory(dev) as m: ...; m.mb``.

    On a CUDA device: the caching allocator's peak of allocated bytes (tensors, not the driver's
    context or the allocator's cache), which is what decides whether a tile fits. Elsewhere:
    the process's resident memory sampled every `interval` seconds, plus at entry and exit; where
    it cannot be sampled, the process's whole-life peak.
    """

    def __init__(self, device: Any = None, interval: float = 0.01):
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        """What is measured: 'cuda' (allocator peak) or 'rss' (resident memory)."""
        return "cuda" if _is_cuda(self.device) else "rss"

    @property
    def mb(self) -> float:
        """The peak in MiB."""
        return self.peak_bytes / 2**20

    def __enter__(self) -> PeakMemory:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.peak_bytes = current_rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="derain-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if _is_cuda(self.device):
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        now = current_rss_bytes()
        if now == 0:  # no /proc: fall back to the kernel's whole-life peak
            whole_life = process_peak_rss_mb()
            self.peak_bytes = 0 if math.isnan(whole_life) else int(whole_life * 2**20)
        else:
            self.peak_bytes = max(self.peak_bytes, now)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
            self._stop.wait(self.interval)
