"""Writing: encode float RGB pixels with a DecodedImage's alpha, bit depth, greyscale-ness and metadata.

Writing puts all of that back into the output format as far as the format can hold it, marks the
EXIF ``Software`` tag, writes ``Orientation = 1`` (the pixels are upright now) and drops the stale
EXIF thumbnail. Every output is written atomically. Losses an output format forces (alpha into
JPEG, 16 bits into WebP...) are reported as ImageWarning. Float pixels become integers by
``derain_cli.quantise``, the rule the metrics use too. Pillow encodes the 8-bit formats; 16-bit
PNG (``_png16``) and all TIFF (``_tiff``) are encoded here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo

from .. import __version__
from .._atomic import atomic_write
from ..errors import ImageError, UsageError
from ..quantise import clamp_unit, quantise
from ._png16 import png16_writer
from ._tiff import tiff_writer
from ._types import DecodedImage, ImageWarning
from .formats import HEIF_AVAILABLE, JPEG_QUALITY, MAX_SIDE, WEBP_QUALITY, ZLIB_LEVEL, resolve_format

_SOFTWARE = ExifTags.Base.Software
#: ITU-R BT.601 luma weights: how a greyscale source's output is turned back into grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def write_image(
    path: str | os.PathLike,
    rgb: np.ndarray,
    like: DecodedImage,
    format: str | None = None,
    quality: int | None = None,
    software: str = f"derain {__version__}",
) -> Path:
    """Write float RGB pixels with `like`'s alpha, bit depth, greyscale-ness and metadata.

    Values outside [0, 1] are clamped. Losses the format forces (alpha in JPEG, 16 bits in JPEG
    or WebP, a profile that does not fit) are reported as ImageWarning. The file is replaced
    atomically; on failure an existing file is left as it was. Returns the path written.
    """
    path = Path(path)
    fmt = resolve_format(format, path)
    if fmt == "HEIF" and not HEIF_AVAILABLE:
        raise ImageError(path, "install derain-cli[heif] to write HEIC files")
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, not {quality}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be H x W x 3, not {rgb.shape}")
    alpha = like.alpha
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha {alpha.shape} does not match the image {rgb.shape[:2]}")
    if max(rgb.shape[:2]) > MAX_SIDE.get(fmt, 2**31):
        raise ImageError(
            path,
            f"{rgb.shape[1]}x{rgb.shape[0]} is larger than {fmt} allows ({MAX_SIDE[fmt]} pixels a side)",
        )

    def warn(message: str) -> None:
        warnings.warn(f"{path}: {message}", ImageWarning, stacklevel=3)

    bits = 16 if like.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8
    if like.bit_depth == 16 and bits == 8:
        warn(f"16-bit image written with 8 bits per channel ({fmt} holds no more)")
    grey = like.grey and fmt not in ("WEBP", "HEIF")
    if alpha is not None and fmt in ("JPEG", "BMP"):
        warn(f"{fmt} cannot hold transparency; the alpha channel is dropped")
        alpha = None
    if alpha is not None:
        alpha = _rescale_alpha(alpha, bits)
    pixels = output_pixels(rgb, bits, grey)
    if alpha is not None:
        pixels = np.dstack([pixels, alpha])

    meta = like.metadata
    exif = _output_exif(meta.exif, rgb.shape[1], rgb.shape[0], software)
    icc = meta.icc
    if icc is not None and _icc_space(icc) != ("GRAY" if grey else "RGB"):
        warn(f"the {_icc_space(icc)} colour profile does not fit the output and is dropped")
        icc = None
    xmp = meta.xmp
    if fmt == "JPEG":
        if len(exif) > 65533:
            warn(f"EXIF data too large for JPEG ({len(exif)} bytes) is dropped")
            exif = _output_exif(None, rgb.shape[1], rgb.shape[0], software)
        if xmp is not None and len(xmp) > 65533 - 29:
            warn(f"XMP data too large for JPEG ({len(xmp)} bytes) is dropped")
            xmp = None

    if fmt == "TIFF":
        writer = tiff_writer(pixels, bits, exif, icc, xmp, meta.dpi)
    elif fmt == "PNG" and bits == 16:
        writer = png16_writer(pixels, exif, icc, xmp, meta.dpi)
    else:
        writer = _pillow_writer(pixels, fmt, quality, exif, icc, xmp, meta.dpi)
    try:
        atomic_write(path, writer)
    except ValueError as e:  # Pillow's encoders refuse what they cannot encode with ValueError
        raise ImageError(path, f"cannot write as {fmt} ({e})") from None
    return path


def to_pil(rgb: np.ndarray, like: DecodedImage | None = None) -> Image.Image:
    """An 8-bit Pillow image of `rgb`: greyscale and with alpha when `like` is so.

    `like`'s metadata rides along in `info` (icc_profile, exif, xmp, dpi) for the caller to pass
    on, e.g. ``img.save(f, exif=img.info["exif"], icc_profile=img.info.get("icc_profile"))``.
    """
    grey = bool(like and like.grey)
    pixels = output_pixels(rgb, 8, grey)
    if like is not None and like.alpha is not None:
        pixels = np.dstack([pixels, _rescale_alpha(like.alpha, 8)])
    img = Image.fromarray(pixels)
    if like is not None:
        meta = like.metadata
        img.info["exif"] = _output_exif(meta.exif, img.width, img.height, f"derain {__version__}")
        for key, value in (("icc_profile", meta.icc), ("xmp", meta.xmp), ("dpi", meta.dpi)):
            if value is not None:
                img.info[key] = value
    return img


def output_pixels(rgb: np.ndarray, bits: int, grey: bool) -> np.ndarray:
    """The integer pixels written for float `rgb`: uint8 or uint16 (`bits`), H x W x 3, or H x W
    for a grey output (ITU-R 601 luma of the clamped colours)."""
    return quantise(clamp_unit(rgb) @ _LUMA if grey else rgb, bits)


def _rescale_alpha(alpha: np.ndarray, bits: int) -> np.ndarray:
    if bits == 16:
        return alpha.astype(np.uint16) * np.uint16(257) if alpha.dtype == np.uint8 else alpha
    if alpha.dtype == np.uint8:
        return alpha
    return ((alpha.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _icc_space(icc: bytes) -> str:
    """The colour space an ICC profile describes: 'RGB', 'GRAY', 'CMYK', ..."""
    return icc[16:20].decode("ascii", "replace").strip()


def _output_exif(exif: bytes | None, width: int, height: int, software: str) -> bytes:
    """The EXIF block to write: the source's, with Software set and the pixel size updated."""
    out = Image.Exif()
    if exif:
        out.load(exif)
    out[_SOFTWARE] = software
    if ExifTags.IFD.Exif in out:
        sub = out.get_ifd(ExifTags.IFD.Exif)
        for tag, value in ((ExifTags.Base.ExifImageWidth, width), (ExifTags.Base.ExifImageHeight, height)):
            if tag in sub:
                sub[tag] = value
    return out.tobytes()


def _pillow_writer(
    pixels: np.ndarray,
    fmt: str,
    quality: int | None,
    exif: bytes,
    icc: bytes | None,
    xmp: bytes | None,
    dpi: tuple[float, float] | None,
) -> Callable[[BinaryIO], None]:
    """Writer for the 8-bit formats Pillow encodes (JPEG, PNG, WebP, BMP, HEIF)."""
    img = Image.fromarray(pixels)
    options: dict = {}
    if fmt == "JPEG":
        options = {"quality": quality or JPEG_QUALITY, "subsampling": 0}
    elif fmt in ("WEBP", "HEIF"):
        options = {"quality": quality or WEBP_QUALITY}
    elif fmt == "PNG":
        options = {"compress_level": ZLIB_LEVEL, "optimize": False}
    if fmt != "BMP":
        options["exif"] = exif
        if icc is not None:
            options["icc_profile"] = icc
        if xmp is not None:
            if fmt == "PNG":
                info = PngInfo()
                info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
                options["pnginfo"] = info
            else:
                options["xmp"] = xmp
    if dpi is not None and fmt in ("JPEG", "PNG", "BMP"):
        options["dpi"] = dpi

    def write(f: BinaryIO) -> None:
        img.save(f, format=fmt, **options)

    return write
