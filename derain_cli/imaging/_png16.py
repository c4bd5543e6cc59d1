"""The 16-bit PNG encoder (Pillow writes 8-bit PNG only), with numpy and zlib.

Grey, grey+alpha, RGB and RGBA at 16 bits per sample, the metadata in the chunks PNG defines for
it (iCCP, pHYs, eXIf, an iTXt with the XMP packet). Every line uses filter type 2 (Up): on
photographs it compresses about as well as Paeth and it vectorises.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from .formats import ZLIB_LEVEL


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_writer(
    pixels: np.ndarray, exif: bytes, icc: bytes | None, xmp: bytes | None, dpi: tuple[float, float] | None
) -> Callable[[BinaryIO], None]:
    """Writer for a 16-bit PNG (grey, grey+alpha, RGB or RGBA) with its metadata chunks."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = pixels.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)

    def write(f: BinaryIO) -> None:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)))
        if icc is not None:
            f.write(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
        if dpi is not None:
            ppm = [round(d / 0.0254) for d in dpi]
            f.write(_png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
        f.write(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
        if xmp is not None:
            f.write(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
        compressor = zlib.compressobj(ZLIB_LEVEL)
        band = max(1, (1 << 22) // rows.shape[1])  # ~4 MB of pixel bytes at a time
        for top in range(0, height, band):
            # Filter type 2 (Up) on every line: on photographs as small as Paeth, and vectorises.
            block = rows[top : top + band]
            lines = np.empty((len(block), rows.shape[1] + 1), np.uint8)
            lines[:, 0] = 2
            lines[:, 1:] = block
            lines[1:, 1:] -= block[:-1]
            if top:
                lines[0, 1:] -= rows[top - 1]
            data = compressor.compress(lines.tobytes())
            if data:
                f.write(_png_chunk(b"IDAT", data))
        f.write(_png_chunk(b"IDAT", compressor.flush()))
        f.write(_png_chunk(b"IEND", b""))

    return write
