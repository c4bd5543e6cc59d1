"""Image formats: the one place that knows their names, extensions, limits and our encoder defaults.

Every format decision goes through here: which names a ``--format`` value or a file extension may
use (``resolve_format``), which extension an output gets (``extension_for``, ``output_extension``),
which files a folder run picks up (``SUPPORTED_EXTENSIONS``) and which formats can be read at all.
Format names are Pillow's: JPEG, PNG, TIFF, WEBP, BMP, HEIF.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

try:  # optional extra: derain-cli[heif]
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:
    HEIF_AVAILABLE = False

HEIF_HINT = "install derain-cli[heif] to read HEIC files"

#: Values of the command line's --format: 'same' keeps each input's format.
FORMAT_CHOICES = ("same", "jpg", "jpeg", "png", "webp", "tiff", "tif")

JPEG_QUALITY = 95
WEBP_QUALITY = 95
#: zlib level for PNG and TIFF: 3 is about 3x faster than zlib's default 6 on photographs, for
#: files some 10 % larger.
ZLIB_LEVEL = 3
#: The formats' own limits, in pixels a side.
MAX_SIDE = {"JPEG": 65500, "WEBP": 16383}

#: Pillow format name -> extension written for it.
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "HEIF": ".heic"}
#: Names accepted for a format (a --format value or a file extension without the dot).
_FORMAT_NAMES = {
    "jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF",
    "webp": "WEBP", "bmp": "BMP", "heic": "HEIF", "heif": "HEIF",
}  # fmt: skip
HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}) | (
    HEIF_EXTENSIONS if HEIF_AVAILABLE else frozenset()
)


def readable_formats() -> str:
    """The formats that can be read here, for messages: 'JPEG, PNG, TIFF, WebP, BMP[, HEIC]'."""
    return "JPEG, PNG, TIFF, WebP, BMP" + (", HEIC" if HEIF_AVAILABLE else "")


def resolve_format(format: str | None, path: str | os.PathLike | None = None) -> str:
    """Pillow's format name for a --format value ('jpg', 'png', ...), or for `path`'s extension
    when `format` is None or 'same'."""
    if format is None or format.lower() == "same":
        if path is None:
            raise UsageError("an output format is needed when there is no output path")
        name = Path(path).suffix.lower().lstrip(".")
        if name not in _FORMAT_NAMES:
            raise UsageError(f"{path}: cannot tell the output format from the extension '.{name}'")
        return _FORMAT_NAMES[name]
    name = format.lower().lstrip(".")
    if name in _FORMAT_NAMES:
        return _FORMAT_NAMES[name]
    raise UsageError(f"unknown image format {format!r} (use jpg, png, webp or tiff)")


def extension_for(format: str) -> str:
    """The file extension (with the dot) written for a format name such as 'jpg' or 'TIFF'."""
    return EXTENSIONS[resolve_format(format)]


def output_extension(src: str | os.PathLike, fmt: str | None) -> str:
    """The extension of the output for input `src`: its own (lower-cased) for `fmt` None or 'same'
    (HEIC inputs are written as JPEG, which every viewer opens), else that of `fmt`.

    An unknown `fmt` raises UsageError.
    """
    fmt = (fmt or "same").lower()
    if fmt == "same":
        suffix = Path(src).suffix.lower()
        return suffix if suffix not in HEIF_EXTENSIONS else ".jpg"
    return extension_for(fmt)
