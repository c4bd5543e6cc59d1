"""What flows through a video job: decoded frames with their timestamps, and facts about the input.

Frames travel *upright* (as a player shows them, after the container's rotation) as 8-bit RGB:
deraining networks learnt that rain falls downwards, so a phone video stored sideways must be
turned before the network sees it. The writer turns each frame back and stores the input's
rotation metadata unchanged, so the output file is laid out like the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass
class Frame:
    """One decoded frame: upright 8-bit RGB pixels and where it sits in time.

    ``pts`` counts ``time_base`` units from the start of the output (a ``--start`` offset is
    already taken off), so a writer can use it as it is; variable frame rates survive because every
    frame keeps its own timestamp.
    """

    index: int  # position in the output, from 0
    rgb: np.ndarray  # H x W x 3 uint8, upright
    pts: int
    time_base: Fraction
    duration: int | None = None  # in time_base units, where the input says
    name: str | None = None  # the file name, for frames read from a folder

    @property
    def time(self) -> float:
        """Seconds from the start of the output."""
        return float(self.pts * self.time_base)


@dataclass
class VideoInfo:
    """Facts about an input that the writer needs to reproduce it, and a summary needs to report."""

    path: Path
    kind: str  # "file" (a container PyAV reads) or "frames" (a folder of images)
    width: int  # as stored (before rotation)
    height: int
    time_base: Fraction
    rate: Fraction | None  # average frames per second, where known
    rotation: int = 0  # degrees counter-clockwise that a player turns the stored picture by
    display_matrix: tuple[int, ...] | None = None  # FFmpeg's 3x3 display matrix, as stored
    frame_count: int | None = None  # an estimate for progress bars (None: unknown)
    duration: float | None = None  # seconds, where known
    codec: str | None = None
    pixel_format: str | None = None
    # colour description of the stream (FFmpeg's enum values; 2 / 0 mean unspecified)
    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    metadata: dict[str, str] = field(default_factory=dict)  # container tags (creation_time, location...)
    stream_language: str | None = None

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as displayed."""
        return (self.height, self.width) if quarter_turns(self.rotation) % 2 else (self.width, self.height)


def quarter_turns(rotation: int | float) -> int:
    """The rotation as a number of counter-clockwise quarter turns (0-3); 0 for odd angles.

    Display matrices of real files rotate by multiples of 90 degrees; another angle is kept in
    the metadata but not applied to the pixels (a network cannot be fed a skewed frame anyway).
    """
    degrees = round(float(rotation))
    if degrees % 90:
        return 0
    return (degrees // 90) % 4


def to_upright(stored: np.ndarray, rotation: int | float) -> np.ndarray:
    """Stored pixels -> as displayed (rotated ``rotation`` degrees counter-clockwise)."""
    k = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(stored, k)) if k else stored


def to_stored(upright: np.ndarray, rotation: int | float) -> np.ndarray:
    """The inverse of ``to_upright``."""
    k = quarter_turns(rotation)
    return np.ascontiguousarray(np.rot90(upright, -k)) if k else upright


def to_float(rgb: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 in [0, 1] (the engine's image convention)."""
    return rgb.astype(np.float32) * np.float32(1 / 255)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8, rounded (NaN becomes 0)."""
    if rgb.dtype == np.uint8:
        return rgb
    x = np.fmin(np.fmax(rgb, np.float32(0)), np.float32(1))
    return (x * np.float32(255) + np.float32(0.5)).astype(np.uint8)
