"""Read and write photographs without losing what makes them photographs.

    decoded = read_image("photo.jpg")       # float32 RGB in [0, 1], upright, + alpha/bits/metadata
    write_image("out.tif", rgb, like=decoded)  # the same alpha, bit depth, grey-ness and metadata

Modules, one job each: ``formats`` (format names, extensions, limits: the one place that validates
a format), ``_read`` (decoding and metadata; ``_read16`` for 16-bit RGB), ``_write`` (encoding and
metadata; ``_png16`` and ``_tiff`` are our two encoders), ``_types`` (what reading gives and
writing takes). Atomic writes are ``derain_cli._atomic``'s; float -> integer rounding is
``derain_cli.quantise``'s.
"""

from ._read import DEFAULT_MAX_PIXELS, decode_pil, read_image
from ._types import DecodedImage, ImageWarning, Metadata
from ._write import output_pixels, to_pil, write_image
from .formats import (
    FORMAT_CHOICES,
    HEIF_AVAILABLE,
    HEIF_HINT,
    JPEG_QUALITY,
    SUPPORTED_EXTENSIONS,
    WEBP_QUALITY,
    ZLIB_LEVEL,
    extension_for,
    output_extension,
    resolve_format,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMAT_CHOICES",
    "HEIF_AVAILABLE",
    "HEIF_HINT",
    "JPEG_QUALITY",
    "SUPPORTED_EXTENSIONS",
    "WEBP_QUALITY",
    "ZLIB_LEVEL",
    "DecodedImage",
    "ImageWarning",
    "Metadata",
    "decode_pil",
    "extension_for",
    "output_extension",
    "output_pixels",
    "read_image",
    "resolve_format",
    "to_pil",
    "write_image",
]
