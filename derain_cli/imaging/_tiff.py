"""The TIFF encoder, with numpy and zlib: 8 or 16 bits, Adobe Deflate with the horizontal predictor.

Pillow's own TIFF writing cannot hold 16-bit RGB; this one writes every TIFF derain produces.
The tags are serialised by Pillow's TIFF directory writer; the source's EXIF goes into the image's
own directory (with the Exif and GPS sub-directories), as TIFF keeps it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, TiffImagePlugin

from .formats import ZLIB_LEVEL

#: TIFF tags that describe a file's pixel layout (or hold data carried separately): they never
#: travel as EXIF from a TIFF source, and the TIFF writer sets its own.
TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323,
    324, 325, 330, 338, 339, 347, 529, 530, 531, 532,
    700,  # XMP, carried in Metadata.xmp
    34675,  # ICC profile, carried in Metadata.icc
    34377, 37724,  # Photoshop resources and layer data: large, and stale after processing
})  # fmt: skip


def tiff_writer(
    pixels: np.ndarray,
    bits: int,
    exif: bytes,
    icc: bytes | None,
    xmp: bytes | None,
    dpi: tuple[float, float] | None,
) -> Callable[[BinaryIO], None]:
    """Writer for a little-endian TIFF, 8 or 16 bits, Adobe Deflate with horizontal predictor.

    The EXIF tags go into the image's own directory (with the Exif and GPS sub-directories), as
    TIFF keeps them.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if bits == 16 and pixels.shape[2] == 2:  # Pillow cannot read 16-bit grey+alpha TIFF: use RGBA
        pixels = pixels[:, :, [0, 0, 0, 1]]
    height, width, channels = pixels.shape
    dtype = np.dtype("<u2" if bits == 16 else "u1")
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    source = Image.Exif()
    source.load(exif)
    for tag, value in source.items():
        if tag in TIFF_LAYOUT_TAGS:
            continue
        if tag in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
            sub = dict(source.get_ifd(tag))
            if ExifTags.IFD.Interop in sub:
                sub[ExifTags.IFD.Interop] = source.get_ifd(ExifTags.IFD.Interop)
            ifd[tag] = sub
        else:
            ifd[tag] = value
    rows_per_strip = max(1, (1 << 18) // (width * channels * dtype.itemsize))
    ifd[256], ifd[257] = width, height
    ifd[258] = (bits,) * channels
    ifd[259] = 8  # Adobe Deflate
    ifd[262] = 1 if channels <= 2 else 2  # BlackIsZero or RGB
    ifd[277] = channels
    ifd[278] = rows_per_strip
    ifd[284] = 1  # chunky
    ifd[317] = 2  # horizontal differencing
    if channels in (2, 4):
        ifd[338] = (2,)  # unassociated alpha
    if icc is not None:
        ifd[34675] = icc
    if xmp is not None:
        ifd[700] = xmp
        ifd.tagtype[700] = TiffImagePlugin.TiffTags.BYTE
    if dpi is not None:
        ifd[282], ifd[283], ifd[296] = dpi[0], dpi[1], 2

    differences = pixels.astype(dtype, copy=True)
    differences[:, 1:] -= pixels[:, :-1].astype(dtype)  # wraps modulo 2**bits, as the predictor does
    strips = [
        zlib.compress(differences[top : top + rows_per_strip].tobytes(), ZLIB_LEVEL)
        for top in range(0, height, rows_per_strip)
    ]
    ifd[279] = tuple(len(s) for s in strips)
    ifd[273] = tuple(np.cumsum([0] + [len(s) for s in strips[:-1]]).tolist())  # relative; tobytes shifts
    for tag in (273, 279):
        ifd.tagtype[tag] = TiffImagePlugin.TiffTags.LONG

    def write(f: BinaryIO) -> None:
        ifd.save(f)
        f.writelines(strips)

    return write
