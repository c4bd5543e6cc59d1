"""Temporal stability: measuring flicker, and reducing it for networks that see one frame at a time.

A network that derains each frame on its own leaves slightly different residues in every frame,
and a still scene shimmers. Two measures, on BT.601 luma in 0..255 levels:

* ``excess_change(outputs, clean)``: the mean absolute frame-to-frame change of the outputs minus
  that of the clean reference (synthetic clips): 0 means the output moves exactly as much as
  the clean video; the rainy input scores high.
* ``StillFlicker``: the mean absolute frame-to-frame change on the *still* parts of the picture
  (where a coarse, rain-insensitive view of the input does not change), for real video with no
  reference. A still background should not change at all, so every level there is flicker.

``TemporalStabiliser`` (``--temporal``) blends each derained frame with the previous result where
the scene is still and leaves it alone where something moves. Whether something moves is judged on
a coarse grid (blocks of ``factor`` x ``factor`` pixels averaged), where thin rain streaks are
averaged away but moving objects and camera motion are not, from both the input's change and the
change of the result itself, so moving content does not leave ghosts behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from scipy.ndimage import maximum_filter

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in 0..255 levels (float32 H x W) of uint8 RGB or float RGB in [0, 1]."""
    scale = np.float32(1.0 if rgb.dtype == np.uint8 else 255.0)
    return (rgb.astype(np.float32, copy=False) @ _LUMA) * scale


def coarse(y: np.ndarray, factor: int) -> np.ndarray:
    """Mean of every ``factor`` x ``factor`` block (a partial last block is averaged on its own)."""
    h, w = y.shape
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        y = np.pad(y, ((0, ph), (0, pw)), mode="edge")
    return y.reshape(y.shape[0] // factor, factor, y.shape[1] // factor, factor).mean(axis=(1, 3))


@lru_cache(maxsize=8)
def _interpolation(n_out: int, n_in: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``n_out`` pixel centres: the two block centres around it and the second one's weight."""
    position = np.clip((np.arange(n_out) + 0.5) / factor - 0.5, 0, n_in - 1)
    low = np.floor(position).astype(np.intp)
    return low, np.minimum(low + 1, n_in - 1), (position - low).astype(np.float32)


def _expand(grid: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """A coarse map back at full resolution, bilinearly (no block edges in the blend)."""
    grid = grid.astype(np.float32, copy=False)
    low, high, frac = _interpolation(shape[0], grid.shape[0], factor)
    rows = grid[low] + (grid[high] - grid[low]) * frac[:, None]
    low, high, frac = _interpolation(shape[1], grid.shape[1], factor)
    return rows[:, low] + (rows[:, high] - rows[:, low]) * frac[None, :]


def mean_change(frames: Iterable[np.ndarray]) -> float:
    """Mean absolute frame-to-frame change of luma (levels) over a sequence of frames."""
    total, count, previous = 0.0, 0, None
    for frame in frames:
        y = luma(frame)
        if previous is not None:
            total += float(np.abs(y - previous).mean())
            count += 1
        previous = y
    return total / count if count else 0.0


def excess_change(outputs: Iterable[np.ndarray], clean: Iterable[np.ndarray]) -> float:
    """Frame-to-frame change of ``outputs`` minus that of the clean reference (levels; 0 is ideal)."""
    return mean_change(outputs) - mean_change(clean)


class StillFlicker:
    """Flicker on the still parts of a video, measured as frames go by (no reference needed).

    For every pair of consecutive frames, a pixel counts as still where the coarse input luma
    changed by less than ``still_below`` levels (this ignores rain streaks, which average out in a
    block, but not motion). ``input_level`` and ``output_level`` are the mean absolute luma changes
    of the input and the output over those pixels: the first is the rain's own flicker, the second
    what is left of it (0 would be perfectly steady).
    """

    def __init__(self, factor: int = 16, still_below: float = 3.0):
        self.factor = factor
        self.still_below = still_below
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._sums = np.zeros(2)
        self._pixels = 0
        self.pairs = 0

    def add(self, rgb_in: np.ndarray, rgb_out: np.ndarray) -> None:
        y_in, y_out = luma(rgb_in), luma(rgb_out)
        c_in = coarse(y_in, self.factor)
        if self._previous is not None:
            p_in, p_out, p_cin = self._previous
            still = _expand((np.abs(c_in - p_cin) < self.still_below).astype(np.float32), self.factor, y_in.shape) > 0.5
            n = int(still.sum())
            if n:
                self._sums += (np.abs(y_in - p_in)[still].sum(), np.abs(y_out - p_out)[still].sum())
                self._pixels += n
            self.pairs += 1
        self._previous = (y_in, y_out, c_in)

    @property
    def still_fraction(self) -> float | None:
        """Share of pixels (over all frame pairs) that counted as still."""
        if not self.pairs or self._previous is None:
            return None
        return self._pixels / (self.pairs * self._previous[0].size)

    @property
    def input_level(self) -> float | None:
        return float(self._sums[0] / self._pixels) if self._pixels else None

    @property
    def output_level(self) -> float | None:
        return float(self._sums[1] / self._pixels) if self._pixels else None


class TemporalStabiliser:
    """Blends each derained frame with the previous result where the scene is still (``--temporal``).

    ``result = out + w * (previous_result - out)`` with, per pixel, ``w = strength *
    exp(-(change / tolerance)^2)``, where ``change`` is the larger of the coarse input's and the
    coarse result's change since the previous frame (levels). A still pixel therefore becomes a
    running average over roughly ``1 / (1 - strength)`` frames, and a moving one keeps this frame's
    output. The first frame, and any frame after a cut, pass through unchanged.

    The defaults come from a sweep on the two NTURain clips (benchmarks/video.py) with derainlite
    and PReNet: they keep the PSNR of the panning synthetic clip (within 0.02 dB) while cutting the
    flicker on the still parts of the real clip by about a tenth; a larger tolerance or strength
    steadies more but blurs the pan (-0.2 dB at tolerance 6, -0.5 dB at 8).
    """

    def __init__(self, strength: float = 0.6, tolerance: float = 4.0, factor: int = 16):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"strength must be in [0, 1), not {strength}")
        self.strength = strength
        self.tolerance = tolerance
        self.factor = factor
        self._previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, rgb_in: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``rgb_in``: the frame as read (uint8); ``out``: its derained float RGB. Returns the blend."""
        c_in = coarse(luma(rgb_in), self.factor)
        if self._previous is None or self._previous[0].shape != out.shape:
            result = out
        else:
            p_out, p_cin, p_cout = self._previous
            change = np.maximum(np.abs(c_in - p_cin), np.abs(coarse(luma(out), self.factor) - p_cout))
            # A block next to a moving one counts as moving too: the weight map is interpolated up to
            # full resolution, and without this margin a moving edge would be half blended (a ghost).
            change = maximum_filter(change, size=3, mode="nearest")
            weight = self.strength * np.exp(-np.square(change / self.tolerance))
            w = _expand(weight.astype(np.float32), self.factor, out.shape[:2])[..., None]
            result = out + w * (p_out - out)
        self._previous = (result, c_in, coarse(luma(result), self.factor))
        return result
