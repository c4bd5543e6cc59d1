"""Tiled inference: run a network over an image of any size with device memory bounded by the tile.

The image is cut into overlapping tiles of (nearly) the requested size, each tile goes through the
network on its own and the outputs are blended back with smooth weights: across each overlap with
a neighbouring tile the weight rises from near 0 at the tile's edge to 1 (a squared-sine ramp),
and it is 1 elsewhere, including along the image border. The result is sum(w * y) / sum(w), accumulated on the CPU in
float32. For a convolutional network whose receptive field is smaller than the overlap, the tiled
result matches the whole-image result to well above 50 dB PSNR.

If a tile runs out of memory, the tile size halves and that tile is retried; the smaller size holds
for the rest of the image.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .errors import DerainError

MIN_TILE = 64  # smallest tile the CLI accepts and the OOM fallback goes down to
SAFETY_FRACTION = 1 / 3  # share of free memory a tile's activations may use
AUTO_TILE_RANGE = (128, 4096)  # choose_tile's answers lie in this range and are multiples of 8
MPS_FREE_BYTES = 2 * 1024**3  # MPS does not report free memory; assume this much
UNKNOWN_FREE_BYTES = 2 * 1024**3  # used where the free memory cannot be found out

# Lower-case fragments of the messages torch raises when memory runs out: its own allocators
# (CPU and CUDA), and cuBLAS/cuDNN failing to allocate their workspace (CUBLAS_STATUS_ALLOC_FAILED,
# CUDNN_STATUS_ALLOC_FAILED), which a smaller tile cures just the same.
_OOM_MESSAGES = ("out of memory", "can't allocate memory", "not enough memory", "status_alloc_failed")


# -- parsing -------------------------------------------------------------------------------------


def parse_tile(value: str) -> str | int:
    """Parse a --tile value: 'auto', '0' (the whole image in one pass) or a size in pixels >= 64."""
    text = str(value).strip().lower()
    if text == "auto":
        return "auto"
    try:
        size = int(text)
    except ValueError:
        size = -1
    if size == 0 or size >= MIN_TILE:
        return size
    raise ValueError(f"invalid tile size {value!r}: use 'auto', 0 (whole image) or a whole number "
                     f"of pixels >= {MIN_TILE}")


# -- memory --------------------------------------------------------------------------------------


def _cgroup_free_bytes() -> int | None:
    """Memory left under a cgroup v2 limit (containers), or None where there is no limit."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def _cpu_free_bytes() -> int:
    free: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = UNKNOWN_FREE_BYTES
    limit = _cgroup_free_bytes()
    return free if limit is None else min(free, limit)


def _cuda_memory_fraction(index: int) -> float:
    """The share of the device this process may use (1.0 where torch cannot tell)."""
    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.9
    if getter is None:
        return 1.0
    try:
        return float(getter(index))
    except (RuntimeError, ValueError, TypeError):
        return 1.0


def _cuda_free_bytes(device: torch.device) -> int:
    """Bytes a CUDA tensor can still take: free device memory plus the allocator's unused cache.

    cudaMemGetInfo knows nothing of a per-process memory fraction, but PyTorch's allocator refuses
    to reserve beyond ``fraction * total``; under such a cap the memory left is that limit minus
    what is allocated (the unused cache counts, as it is reused first). Without this, a capped
    process sees the whole card as free, picks a whole-image run and always starts with an OOM.
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    allocated = torch.cuda.memory_allocated(index)
    available = free + max(0, torch.cuda.memory_reserved(index) - allocated)
    fraction = _cuda_memory_fraction(index)
    if fraction < 1.0:
        available = min(available, int(total * fraction) - allocated)
    return max(0, int(available))


def free_memory_bytes(device: torch.device | str) -> int:
    """Bytes of memory free for tensors on ``device``.

    CPU: MemAvailable from /proc/meminfo (else os.sysconf), capped by a cgroup limit. CUDA: free
    device memory plus what PyTorch's allocator holds unused, capped by the process's memory
    fraction (``torch.cuda.set_per_process_memory_fraction``). MPS and others: a fixed 2 GiB.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return _cpu_free_bytes()
    if device.type == "cuda":
        return _cuda_free_bytes(device)
    if device.type == "mps":
        return MPS_FREE_BYTES
    return UNKNOWN_FREE_BYTES


def choose_tile(h: int, w: int, bytes_per_pixel: int, device: torch.device | str,
                suggested: int | None = None, dtype_bytes: int = 4) -> int | None:
    """Tile size for an h x w image, or None to run the whole image in one pass.

    ``bytes_per_pixel`` is the network's peak activation memory per input pixel in float32
    (``Contract.bytes_per_pixel``); ``dtype_bytes`` 2 scales it for half precision. A third of the
    free memory is allowed (on the CPU after the image-sized buffers of the tiler itself). Returns
    None if the whole image fits and nothing is ``suggested``; otherwise a multiple of 8 in
    [128, 4096], at most ``suggested``, and None if the image is no larger than that tile.
    """
    device = torch.device(device)
    per_pixel = max(1.0, bytes_per_pixel * dtype_bytes / 4)
    budget = float(free_memory_bytes(device))
    if device.type == "cpu":
        budget -= h * w * 4 * (3 + 3 + 1)  # input, accumulated output and weights (float32)
    max_pixels = max(0.0, budget * SAFETY_FRACTION) / per_pixel
    if suggested is None and h * w <= max_pixels:
        return None
    size = int(math.sqrt(max_pixels))
    if suggested is not None:
        size = min(size, int(suggested))
    lo, hi = AUTO_TILE_RANGE
    size = min(hi, max(lo, size // 8 * 8))
    if h <= size and w <= size:
        return None
    return size


# -- tiling --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Region:
    """A rectangle of the image, on which sides (top, bottom, left, right) it has a neighbour, and
    the widths of its blending ramps on those sides."""

    top: int
    left: int
    height: int
    width: int
    neighbours: tuple[bool, bool, bool, bool] = (False, False, False, False)
    ramps: tuple[int, int] = (0, 0)  # (vertical, horizontal)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering ``length``, spread evenly, overlaps >= ``overlap``.

    The last tile ends at the border (it is never a thin sliver), and all overlaps are equal to
    within a pixel.
    """
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _tile_length(tile: int, length: int, multiple: int) -> int:
    """Tile length along an axis: at most ``tile``, and congruent to ``length`` modulo ``multiple``.

    The network pads every tile up to its size multiple. With this length a tile at the image's
    far border is padded exactly as the whole image would be, so the border matches a whole-image
    run too (not only the interior).
    """
    if tile >= length:
        return length
    return max(1, tile - (tile - length) % multiple)


def _split(region: _Region, tile: int, overlap: int, multiple: int) -> list[_Region]:
    """Cut ``region`` into tiles of at most ``tile`` x ``tile`` (row by row)."""
    top_n, bottom_n, left_n, right_n = region.neighbours
    th = _tile_length(tile, region.height, multiple)
    tw = _tile_length(tile, region.width, multiple)
    # Overlaps of at most half a tile, so that tiles always advance.
    ramps = (min(overlap, th // 2), min(overlap, tw // 2))
    tiles = []
    for y in _starts(region.height, th, ramps[0]):
        for x in _starts(region.width, tw, ramps[1]):
            neighbours = (y > 0 or top_n, y + th < region.height or bottom_n,
                          x > 0 or left_n, x + tw < region.width or right_n)
            tiles.append(_Region(region.top + y, region.left + x, th, tw, neighbours, ramps))
    return tiles


def _ramp(length: int, rise: bool, fall: bool, width: int) -> torch.Tensor:
    """1-D blending weights: 1, with a squared-sine ramp of ``width`` at a side with a neighbour.

    Weights at distance d from the edge are sin^2(pi/2 * (d + 0.5) / width): never 0, and two
    tiles overlapping by exactly ``width`` have weights summing to 1 across the overlap.
    """
    w = torch.ones(length, dtype=torch.float32)
    width = min(width, length // 2)
    if width > 0:
        t = (torch.arange(width, dtype=torch.float64) + 0.5) / width
        ramp = torch.sin(t * (math.pi / 2)).pow(2).float()
        if rise:
            w[:width] = ramp
        if fall:
            w[length - width:] = ramp.flip(0)
    return w


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def _release_cached_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.empty_cache()


def _run_region(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, r: _Region) -> torch.Tensor:
    patch = x[..., r.top : r.top + r.height, r.left : r.left + r.width].contiguous()
    y = fn(patch)
    if y.shape[0] != patch.shape[0] or y.shape[-2:] != patch.shape[-2:]:
        raise ValueError(f"the network turned a {tuple(patch.shape)} tile into {tuple(y.shape)}; "
                         f"tiling needs an output of the same size")
    return y.to(device="cpu", dtype=torch.float32)


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int | None,
              overlap: int = 32, progress: Callable[[int, int], None] | None = None,
              min_tile: int = MIN_TILE, size_multiple: int | None = None) -> torch.Tensor:
    """Apply ``fn`` to ``x`` (N x C x H x W float32 on the CPU) tile by tile; returns the CPU result.

    ``tile`` None or 0 runs the whole image in one call. Tiles are ``tile`` x ``tile`` (clipped to
    the image), spread evenly with at least ``overlap`` pixels of overlap (at most half a tile) and
    blended smoothly. ``progress(done, total)`` is called after every tile; ``total`` grows if the
    tile size has to shrink. On out-of-memory the tile size halves (a whole-image run falls back to
    tiles of half the longer side) until it would drop below ``min_tile``; then a DerainError is
    raised. The output is not clamped.

    ``size_multiple`` (default: ``fn.contract.size_multiple`` where ``fn`` is a ModelRunner, else
    1) makes tile sides congruent to the image's modulo the network's size multiple, so that tiles
    at the bottom and right borders are padded as the whole image would be.
    """
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    if overlap < 0:
        raise ValueError(f"tile overlap must be >= 0, got {overlap}")
    if size_multiple is None:
        size_multiple = getattr(getattr(fn, "contract", None), "size_multiple", 1)
    multiple = max(1, int(size_multiple))
    n, _c, height, width = x.shape
    size = max(height, width) if not tile else min(int(tile), max(height, width))
    whole = _Region(0, 0, height, width)
    pending = deque(_split(whole, size, overlap, multiple))
    total, done = len(pending), 0
    acc: torch.Tensor | None = None
    wsum: torch.Tensor | None = None
    with torch.no_grad():
        while pending:
            region = pending[0]
            failure: BaseException | None = None
            try:
                y = _run_region(fn, x, region)
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc):
                    raise
                failure = exc
            if failure is not None:
                size //= 2
                if size < min_tile:
                    raise DerainError(f"out of memory even with {size * 2}x{size * 2} tiles (smallest "
                                      f"allowed {min_tile}); free memory or use a smaller model") from failure
                failure = None  # drop the traceback, which holds the failed tile's tensors
                _release_cached_memory()
                # Nothing done yet: lay out the whole image afresh; otherwise cut the remaining tiles.
                todo = [whole] if done == 0 else list(pending)
                pending = deque(t for r in todo for t in _split(r, size, overlap, multiple))
                total = done + len(pending)
                continue
            pending.popleft()
            if (region.height, region.width) == (height, width):  # one call did it all: no blending
                # Callers may change the result in place: never hand back an inference tensor or x.
                shares_input = y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
                acc = y.clone() if y.is_inference() or shares_input else y
            else:
                if acc is None:
                    acc = torch.zeros((n, y.shape[1], height, width), dtype=torch.float32)
                    wsum = torch.zeros((1, 1, height, width), dtype=torch.float32)
                assert wsum is not None  # allocated with acc
                top_n, bottom_n, left_n, right_n = region.neighbours
                weight = (_ramp(region.height, top_n, bottom_n, region.ramps[0])[:, None]
                          * _ramp(region.width, left_n, right_n, region.ramps[1])[None, :])
                rows = slice(region.top, region.top + region.height)
                cols = slice(region.left, region.left + region.width)
                acc[..., rows, cols].addcmul_(y, weight)
                wsum[..., rows, cols] += weight
            del y
            done += 1
            if progress is not None:
                progress(done, total)
    assert acc is not None  # the whole image was covered
    if wsum is not None:
        acc /= wsum
    return acc
