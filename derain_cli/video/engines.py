"""Running a deraining model over a stream of frames.

* An image model (``Contract.frames`` None) derains each frame on its own; frames go through the
  network in batches where a whole frame fits in memory (a GPU gains from that; on a CPU a batch
  is one frame), tiled like a photo where it does not.
* A video model (``Contract.frames`` = T) derains clips: the stream is cut into chunks of T frames,
  each run with ``Contract.frame_overlap`` extra frames of context on every inner side whose
  outputs are dropped (S2VD's published procedure). Large frames are tiled in space, every tile
  carrying the whole chunk.

Frames are consumed as they arrive and at most one chunk (plus its context) is held, so memory
does not grow with the length of the video.

This is the one module of the video package that talks to the image engine: it needs a
``derain_cli.engine.Engine`` (model, device, precision, tiling; a ``Derainer`` is one) and, from
it, the loaded network (``load()``) and its tile choice (``tile_for``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from ..errors import UsageError
from .frames import Frame, to_float

T = TypeVar("T")

MAX_BATCH = 8  # frames per forward pass of an image model; more gains nothing measurable on a GPU


def iter_chunks(items: Iterable[T], chunk: int, overlap: int) -> Iterator[tuple[list[T], int, int]]:
    """Cut a stream into chunks of ``chunk`` items with ``overlap`` items of context each side.

    Yields ``(window, keep_from, keep_to)``: run the model on ``window`` and keep its outputs
    ``[keep_from:keep_to]``. Every item is kept exactly once, in order. A chunk is extended into
    its neighbours only where they exist (the first only forwards, the last only backwards), so a
    stream of up to ``chunk`` items is one window. Items are taken lazily: a chunk is yielded as
    soon as its forward context has arrived.
    """
    if chunk < 1 or overlap < 0:
        raise ValueError(f"chunk must be >= 1 and overlap >= 0, got {chunk}, {overlap}")
    buffer: list[T] = []
    base = 0  # stream index of buffer[0]
    start = 0  # stream index of the first item of the next chunk

    def window(end: int) -> tuple[list[T], int, int]:
        nonlocal buffer, base, start
        lo, hi = max(0, start - overlap), min(end, start + chunk + overlap)
        result = (buffer[lo - base : hi - base], start - lo, min(start + chunk, end) - lo)
        start += chunk
        drop = max(0, start - overlap) - base
        buffer, base = buffer[drop:], base + drop
        return result

    for item in items:
        buffer.append(item)
        if base + len(buffer) >= start + chunk + overlap:
            yield window(base + len(buffer))
    end = base + len(buffer)
    while start < end:
        yield window(end)


class FrameEngine:
    """An image model applied frame by frame, in batches of whole frames where they fit."""

    def __init__(self, engine: Any, batch: int | None = None):
        self.engine = engine
        self.batch = batch
        self.tile: int | None = None

    def _batch_size(self, height: int, width: int) -> int:
        if self.batch:
            return self.batch
        engine = self.engine
        if engine.device.type == "cpu" or engine.tile_for(height, width) is not None:
            return 1  # a CPU gains nothing from batching; a tiled frame is a batch on its own
        from ..tiling import SAFETY_FRACTION, free_memory_bytes

        per_frame = engine.model.contract.bytes_per_pixel * height * width * engine.dtype.itemsize / 4
        budget = free_memory_bytes(engine.device) * SAFETY_FRACTION
        return int(max(1, min(MAX_BATCH, budget // max(per_frame, 1))))

    def derain_batch(self, frames: np.ndarray) -> np.ndarray:
        """float32 N x H x W x 3 in [0, 1] -> derained, same shape, clamped."""
        import torch

        from ..tiling import run_tiled

        runner = self.engine.load()
        height, width = frames.shape[1:3]
        self.tile = self.engine.tile_for(height, width)
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        y = run_tiled(runner, x, tile=self.tile, overlap=self.engine.tile_overlap)
        return y.clamp_(0, 1).permute(0, 2, 3, 1).numpy()

    def run(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, np.ndarray]]:
        """(frame, derained float32 H x W x 3) for every frame, in order."""
        pending: list[Frame] = []
        size = None
        for frame in frames:
            pending.append(frame)
            if size is None:
                size = self._batch_size(*frame.rgb.shape[:2])
            if len(pending) >= size:
                yield from self._flush(pending)
                pending = []
        if pending:
            yield from self._flush(pending)

    def _flush(self, frames: list[Frame]) -> Iterator[tuple[Frame, np.ndarray]]:
        out = self.derain_batch(np.stack([to_float(f.rgb) for f in frames]))
        yield from zip(frames, out)


class ClipEngine:
    """A video model applied to overlapping chunks of the stream (``Contract.frames``/``frame_overlap``)."""

    def __init__(self, runner: Any, *, tile: int | str | None = "auto", tile_overlap: int = 32):
        contract = runner.contract
        if not contract.is_video:
            raise ValueError("ClipEngine needs a video model")
        self.runner = runner
        self.contract = contract
        self.chunk = contract.frames
        self.overlap = contract.frame_overlap
        self.tile_setting = tile
        self.tile_overlap = tile_overlap
        self.tile: int | None = None

    @classmethod
    def from_engine(cls, engine: Any) -> ClipEngine:
        return cls(engine.load(), tile=engine.tile, tile_overlap=engine.tile_overlap)

    def _tile_for(self, frames: int, height: int, width: int) -> int | None:
        if self.tile_setting not in (None, "auto"):
            return int(self.tile_setting) or None
        from ..tiling import choose_tile

        runner = self.runner
        return choose_tile(height, width, self.contract.bytes_per_pixel * frames, runner.device,
                           suggested=self.contract.tile, dtype_bytes=runner.dtype.itemsize)

    def derain_clip(self, clip: np.ndarray) -> np.ndarray:
        """float32 T x H x W x 3 in [0, 1] -> the network's output for the clip, clamped (no chunking)."""
        import torch

        from ..tiling import run_tiled

        frames, height, width = clip.shape[:3]
        self.tile = self._tile_for(frames, height, width)
        # Frames are folded into the channel axis (N, 3*T, H, W) so that the spatial tiler, which
        # blends tiles per pixel whatever the channels, can cut every frame of the chunk alike.
        x = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).reshape(1, 3 * frames, height, width)
        y = run_tiled(self._forward_folded, x, tile=self.tile, overlap=self.tile_overlap,
                      size_multiple=self.contract.size_multiple)
        return y.clamp_(0, 1).reshape(3, frames, height, width).permute(1, 2, 3, 0).numpy()

    def _forward_folded(self, x):
        """(1, 3*T, h, w) in the product's RGB [0, 1] -> same, through the network's contract
        (``LoadedModel`` takes the clip N x 3 x T x h x w)."""
        n, ct, h, w = x.shape
        return self.runner(x.reshape(n, 3, ct // 3, h, w)).reshape(n, ct, h, w)

    def run(self, frames: Iterable[Frame]) -> Iterator[tuple[Frame, np.ndarray]]:
        """(frame, derained float32 H x W x 3) for every frame, in order, chunk by chunk."""
        for window, keep_from, keep_to in iter_chunks(frames, self.chunk, self.overlap):
            out = self.derain_clip(np.stack([to_float(f.rgb) for f in window]))
            yield from zip(window[keep_from:keep_to], out[keep_from:keep_to])


def video_engine_for(engine: Any, *, batch: int | None = None,
                     scale: float | None = None) -> FrameEngine | ClipEngine:
    """How to run ``engine``'s model over frames: chunks for a video model, batches of frames otherwise.

    ``scale`` is the hook for camera-scale handling (``--scale`` for photos): the image engine does
    not offer it yet; when it does, frames are resampled here, before the network.
    """
    if scale not in (None, 1, 1.0):
        raise UsageError("camera-scale handling (--scale) is not available for video yet")
    if batch is not None and batch < 1:
        raise UsageError(f"batch must be >= 1, not {batch}")
    if engine.model.contract.is_video:
        return ClipEngine.from_engine(engine)
    return FrameEngine(engine, batch=batch)
