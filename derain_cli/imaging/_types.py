"""What reading gives and writing takes: a decoded image with everything its output must keep."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ImageWarning(UserWarning):
    """Something about an output the user should know (alpha dropped, bit depth reduced...)."""


@dataclass
class Metadata:
    """What of the source file travels to the output besides the pixels."""

    exif: bytes | None = None  # Image.Exif.tobytes(): Orientation already 1, no thumbnail
    icc: bytes | None = None
    xmp: bytes | None = None
    format: str = "PNG"  # Pillow's name: JPEG, PNG, TIFF, WEBP, BMP, HEIF
    dpi: tuple[float, float] | None = None


@dataclass
class DecodedImage:
    """A decoded photograph: upright float pixels plus everything the output must keep."""

    path: Path | None
    rgb: np.ndarray  # float32 H x W x 3 in [0, 1]
    alpha: np.ndarray | None  # H x W, uint8 or uint16 as in the source
    bit_depth: int  # 8 or 16
    grey: bool
    metadata: Metadata
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return self.rgb.shape[1], self.rgb.shape[0]
