"""Reading: decode an image file (or an in-memory Pillow image) into a DecodedImage.

Reading gives float32 RGB pixels in [0, 1], turned upright from the EXIF orientation, plus what has
to survive to the output untouched: the alpha channel, the bit depth, greyscale-ness and the
metadata (EXIF with GPS, ICC profile, XMP, dpi), described for the upright image (orientation 1,
dpi turned with the pixels). Conversions on reading (palette, CMYK) are listed in
DecodedImage.warnings. Anything unreadable raises ImageError naming the file and the problem.
16-bit RGB(A) files are read at full precision by ``_read16``.
"""

from __future__ import annotations

import io
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from ..errors import ImageError
from ._read16 import Plan, read_sixteen_bit, sixteen_bit_plan
from ._tiff import TIFF_LAYOUT_TAGS
from ._types import DecodedImage, Metadata
from .formats import EXTENSIONS, HEIF_AVAILABLE, HEIF_EXTENSIONS, HEIF_HINT, readable_formats

DEFAULT_MAX_PIXELS = 200_000_000

_ORIENTATION = ExifTags.Base.Orientation
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*(?:=\s*[\"']|>)\s*)[1-8]")


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file; raise ImageError naming the file for anything unreadable.

    `max_pixels` refuses larger images before their pixels are decoded (decompression bombs);
    None disables the check.
    """
    label = str(path)
    path = Path(path)
    _check_file(path, label)
    with _open(path, label) as img:
        if _format(img) not in EXTENSIONS:
            raise ImageError(label, f"unsupported image format {img.format} (supported: {readable_formats()})")
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(
                label,
                f"image is {width}x{height} = {_pixel_count(width * height)}, more than the limit of "
                f"{_pixel_count(max_pixels)} against decompression bombs; "
                "raise it with --max-pixels if you trust this file",
            )
        return _decode(img, path, label, reopen=lambda: _open(path, label))


def _pixel_count(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} megapixels".replace(".0 ", " ") if pixels >= 100_000 else f"{pixels} pixels"


def decode_pil(img: Image.Image) -> DecodedImage:
    """Decode an in-memory Pillow image the way read_image decodes a file (for the Python API)."""
    label = getattr(img, "filename", "") or "<image>"
    return _decode(img, None, label, reopen=None)


def _check_file(path: Path, label: str) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(label, "no such file") from None
    except OSError as e:
        raise ImageError(label, f"cannot read ({e.strerror or e})") from None
    if path.is_dir():
        raise ImageError(label, "is a folder, not an image file")
    if size == 0:
        raise ImageError(label, "file is empty")


# Pillow refuses images above 2 x Image.MAX_IMAGE_PIXELS (179 MP) inside Image.open, before our own,
# configurable limit can apply; its check is lifted for the duration of the header parse only.
_PILLOW_LIMIT_LOCK = threading.Lock()


@contextmanager
def _open(path: Path, label: str) -> Iterator[Image.Image]:
    """Image.open with our errors, the file closed afterwards."""
    try:
        with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a truncated TIFF directory: an error follows
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except UnidentifiedImageError:
        raise ImageError(label, _unidentified_problem(path)) from None
    except OSError as e:
        if e.filename is not None:  # the file itself could not be opened
            raise ImageError(label, f"cannot read ({e.strerror or e})") from None
        raise ImageError(label, _decode_problem(e, path)) from None
    except (SyntaxError, ValueError, EOFError, struct.error) as e:
        raise ImageError(label, _decode_problem(e, path)) from None
    with img:
        yield img


_MAGIC = [
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"BM", "BMP"), (b"RIFF", "WebP"),
]  # fmt: skip
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def _unidentified_problem(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(16)
    if (head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS) or path.suffix.lower() in HEIF_EXTENSIONS:
        return HEIF_HINT if not HEIF_AVAILABLE else "corrupt, truncated or unsupported HEIC data"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return f"corrupt, truncated or unsupported {name} data"
    return "not an image file"


def _decode_problem(e: BaseException, path: Path | None) -> str:
    message = str(e)
    if isinstance(e, EOFError) or "truncat" in message.lower() or _data_past_the_end(path):
        return "truncated image data"
    return f"corrupt image data ({message or type(e).__name__})"


def _data_past_the_end(path: Path | None) -> bool:
    """True when a WebP or TIFF file is shorter than its own headers say: libwebp and libtiff
    report such files only as failures."""
    if path is None:
        return False
    with open(path, "rb") as f:
        head = f.read(12)
        size = f.seek(0, os.SEEK_END)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return size < struct.unpack("<I", head[4:8])[0] + 8
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        try:
            with Image.open(path) as img:
                tags = img.tag_v2
                offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
        except Exception:  # noqa: BLE001  (only a diagnosis; the original error stands)
            return False
        return bool(offsets and counts) and max(o + c for o, c in zip(offsets, counts)) > size
    return False


@contextmanager
def _decoding(label: str, path: Path | None) -> Iterator[None]:
    """Turn Pillow's decoding failures into ImageError(label, ...)."""
    try:
        yield
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        raise ImageError(label, _decode_problem(e, path)) from None


def _decode(
    img: Image.Image,
    path: Path | None,
    label: str,
    reopen: Callable[[], AbstractContextManager[Image.Image]] | None,
) -> DecodedImage:
    notes: list[str] = []
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":  # MPO: a JPEG with previews
        notes.append(f"only the first of its {frames} frames is used")
    plan = sixteen_bit_plan(img, notes)  # before anything loads the pixels
    with _decoding(label, path), warnings.catch_warnings(record=True) as pillow_warnings:
        warnings.simplefilter("always")
        exif = _source_exif(img, notes)
        colour, alpha, bits, grey = _pixels(img, label, plan, reopen, notes)
    notes.extend(str(w.message) for w in pillow_warnings)
    orientation = exif.get(_ORIENTATION, 1) if exif is not None else 1
    if orientation not in range(1, 9):
        notes.append(f"ignored invalid EXIF orientation {orientation!r}")
        orientation = 1
    colour = _upright(colour, orientation)
    alpha = None if alpha is None else _upright(alpha, orientation)
    metadata = _metadata(img, exif, orientation, notes)

    rgb = np.multiply(colour, np.float32(1.0 / (65535 if bits == 16 else 255)), dtype=np.float32)
    if grey:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return DecodedImage(path, rgb, alpha, bits, grey, metadata, notes)


def _source_exif(img: Image.Image, notes: list[str]) -> Image.Exif | None:
    """The source's EXIF (None when it has none), without TIFF layout tags."""
    try:
        exif = img.getexif()
    except Exception as e:  # noqa: BLE001  (Pillow raises many kinds on malformed EXIF)
        notes.append(f"EXIF data could not be read and is dropped ({e})")
        return None
    if img.format == "TIFF":
        for tag in TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
    return exif if len(exif) else None


def _metadata(img: Image.Image, exif: Image.Exif | None, orientation: int, notes: list[str]) -> Metadata:
    """The source's metadata as the upright image's: orientation 1, dpi turned with it."""
    icc = img.info.get("icc_profile") or None
    if icc is not None and img.mode == "CMYK":
        icc = None  # pixels were converted to sRGB (note added by _pixels)
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp") or None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if xmp is not None and orientation != 1:
        xmp = _XMP_ORIENTATION.sub(rb"\g<1>1", xmp)
    exif_bytes = None
    if exif is not None:
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        try:
            exif_bytes = exif.tobytes()  # also drops IFD1, the thumbnail
        except Exception as e:  # noqa: BLE001
            notes.append(f"EXIF data could not be copied and is dropped ({e})")
    dpi = img.info.get("dpi")
    if dpi is not None:
        dpi = (float(dpi[0]), float(dpi[1]))
        if orientation >= 5:  # turned by 90 degrees
            dpi = (dpi[1], dpi[0])
    return Metadata(exif=exif_bytes, icc=icc, xmp=xmp, format=_format(img), dpi=dpi)


def _format(img: Image.Image) -> str:
    """Pillow's format name, a phone's multi-picture JPEG (MPO) counting as JPEG."""
    return "JPEG" if img.format == "MPO" else img.format or "PNG"


def _upright(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an H x W (x C) array; returns a contiguous array."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, -1)[::-1],
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array))


def _pixels(
    img: Image.Image,
    label: str,
    plan: Plan | None,
    reopen: Callable[[], AbstractContextManager[Image.Image]] | None,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """(colour H x W [x 3], alpha or None, bit depth, grey) with the source's own precision."""
    sixteen = plan and read_sixteen_bit(img, plan, reopen, notes)
    if sixteen is not None:
        return sixteen
    img.load()
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        grey16 = np.asarray(img)
        if mode == "I":
            grey16 = np.clip(grey16, 0, 65535)
        return grey16.astype(np.uint16), None, 16, True
    if mode == "F":
        raise ImageError(label, "32-bit floating-point images are not supported")
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "RGB")
        notes.append(f"palette image converted to {img.mode}")
    elif mode == "CMYK":
        img = _cmyk_to_rgb(img)
        notes.append("CMYK image converted to RGB (its CMYK colour profile is dropped)")
    elif mode in ("L", "RGB") and "transparency" in img.info:
        img = img.convert(mode[0] + "A" if mode == "L" else "RGBA")
        notes.append("transparent colour key converted to an alpha channel")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("RGBX", "YCbCr"):
        img = img.convert("RGB")
    elif mode in ("La", "RGBa"):
        img = img.convert("LA" if mode == "La" else "RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            img = img.convert("RGB")
        except ValueError:
            raise ImageError(label, f"unsupported colour mode {mode}") from None
        notes.append(f"{mode} image converted to RGB")
    array = np.asarray(img)
    alpha = None
    if img.mode in ("LA", "RGBA"):
        alpha = np.ascontiguousarray(array[..., -1])
        array = array[..., 0] if img.mode == "LA" else array[..., :3]
    return np.ascontiguousarray(array), alpha, 8, img.mode in ("L", "LA")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    """CMYK -> sRGB through the embedded profile when there is one, else Pillow's formula."""
    icc = img.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:  # None only when asked to convert in place
                return converted
        except (ImageCms.PyCMSError, OSError):
            pass
    return img.convert("RGB")
