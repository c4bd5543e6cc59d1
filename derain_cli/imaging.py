"""Read and write photographs without losing what makes them photographs.

Reading gives a :class:`DecodedImage`: float32 RGB pixels in [0, 1], turned upright from the EXIF
orientation, plus what has to survive to the output untouched: the alpha channel, the bit depth,
greyscale-ness and the metadata (EXIF with GPS, ICC profile, XMP, dpi).

Writing puts all of that back into the output format as far as the format can hold it, marks the
EXIF ``Software`` tag, writes ``Orientation = 1`` (the pixels are upright now) and drops the stale
EXIF thumbnail. Every output is written atomically. Losses an output format forces (alpha into
JPEG, 16 bits into WebP...) are reported as ImageWarning; conversions on reading (palette, CMYK)
are listed in DecodedImage.warnings.

16 bits per channel. Pillow holds 16-bit greyscale natively but reduces 16-bit RGB(A) to 8 bits
when it decodes. Reading therefore lets Pillow decode such files twice, once keeping the high and
once the low byte of every sample (its 8-bit unpackers for the two byte orders), and joins them:
exact for PNG and for TIFF in every compression libtiff reads, with no new dependency (TIFF
with compressed separate colour planes and premultiplied alpha are read at 8 bits, with a warning).
Writing 16-bit PNG and all TIFF is done here with numpy and zlib (TIFF: Adobe Deflate with the
horizontal predictor, tags serialised by Pillow's own TIFF directory writer).
"""

from __future__ import annotations

import io
import os
import re
import secrets
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageCms, TiffImagePlugin, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from . import __version__
from .errors import ImageError, UsageError

try:  # optional extra: derain-cli[heif]
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:
    HEIF_AVAILABLE = False

HEIF_HINT = "install derain-cli[heif] to read HEIC files"
DEFAULT_MAX_PIXELS = 200_000_000
JPEG_QUALITY = 95
WEBP_QUALITY = 95
#: zlib level for PNG and TIFF: 3 is about 3x faster than zlib's default 6 on photographs, for
#: files some 10 % larger.
ZLIB_LEVEL = 3

#: Pillow format name -> extension written for it.
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "HEIF": ".heic"}
#: Names accepted for a format (a --format value or a file extension without the dot).
_FORMAT_NAMES = {
    "jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "tif": "TIFF", "tiff": "TIFF",
    "webp": "WEBP", "bmp": "BMP", "heic": "HEIF", "heif": "HEIF",
}  # fmt: skip
_HEIF_EXTENSIONS = frozenset({".heic", ".heif"})
_MAX_SIDE = {"JPEG": 65500, "WEBP": 16383}  # pixels, the formats' own limits
SUPPORTED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}) | (
    _HEIF_EXTENSIONS if HEIF_AVAILABLE else frozenset()
)

_ORIENTATION = ExifTags.Base.Orientation
_SOFTWARE = ExifTags.Base.Software
#: TIFF tags that describe a file's pixel layout (or hold data carried separately): they never
#: travel as EXIF from a TIFF source, and the TIFF writer sets its own.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 284, 317, 320, 322, 323,
    324, 325, 330, 338, 339, 347, 529, 530, 531, 532,
    700,  # XMP, carried in Metadata.xmp
    34675,  # ICC profile, carried in Metadata.icc
    34377, 37724,  # Photoshop resources and layer data: large, and stale after processing
})  # fmt: skip
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation\s*(?:=\s*[\"']|>)\s*)[1-8]")


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


# --------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file; raise ImageError naming the file for anything unreadable.

    `max_pixels` refuses larger images before their pixels are decoded (decompression bombs);
    None disables the check.
    """
    label = str(path)
    path = Path(path)
    _check_file(path, label)
    with _open(path, label) as img:
        if _format(img) not in _EXTENSIONS:
            supported = "JPEG, PNG, TIFF, WebP, BMP" + (", HEIC" if HEIF_AVAILABLE else "")
            raise ImageError(label, f"unsupported image format {img.format} (supported: {supported})")
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
    if (head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS) or path.suffix.lower() in _HEIF_EXTENSIONS:
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
    if getattr(img, "n_frames", 1) > 1 and img.format != "MPO":  # MPO: a JPEG with previews
        notes.append(f"only the first of its {img.n_frames} frames is used")
    sixteen_bit_plan = _sixteen_bit_plan(img, notes)  # before anything loads the pixels
    with _decoding(label, path), warnings.catch_warnings(record=True) as pillow_warnings:
        warnings.simplefilter("always")
        exif = _source_exif(img, notes)
        colour, alpha, bits, grey = _pixels(img, label, sixteen_bit_plan, reopen, notes)
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
        for tag in _TIFF_LAYOUT_TAGS & set(exif):
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
    sixteen_bit_plan: _Plan | None,
    reopen: Callable[[], AbstractContextManager[Image.Image]] | None,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
    """(colour H x W [x 3], alpha or None, bit depth, grey) with the source's own precision."""
    sixteen = sixteen_bit_plan and _read_sixteen_bit(img, sixteen_bit_plan, reopen, notes)
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
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass
    return img.convert("RGB")


_Plan = tuple[list[str] | None, list[str]]


def _sixteen_bit_plan(img: Image.Image, notes: list[str]) -> _Plan | None:
    """For a 16-bit RGB(A) or grey+alpha file, which Pillow reduces to 8 bits: per tile, the
    rawmode that unpacks the high byte of every sample (None: Pillow's own rawmodes do) and the
    one that unpacks the low byte.

    None for other files; a 16-bit layout not handled here (compressed planar TIFF, whose libtiff
    decoding ignores the rawmode; premultiplied alpha) is noted as read at 8 bits. PNG grey+alpha,
    which has no such pair, gets (["RGBA"], ["RGBA"]): its 4 bytes a pixel unpacked as they are.
    """
    rawmodes = [_rawmode(tile) or "" for tile in getattr(img, "tile", None) or ()]
    if rawmodes == ["LA;16B"] and img.mode == "RGBA":
        return ["RGBA"], ["RGBA"]
    other = {"L": "B", "B": "L"}
    high, low = [], []
    for rawmode in rawmodes:
        base, sep, order = rawmode.partition(";16")
        planar = _planar_sixteen_bit_tiff(img)
        if sep and base in ("RGB", "RGBA", "RGBX") and order in ("B", "L", "N") and not planar:
            order = order if order != "N" else "L" if sys.byteorder == "little" else "B"
            high.append(rawmode)  # Pillow's own rawmode keeps the high byte
        elif rawmode in ("R", "G", "B", "A") and planar:  # uncompressed planar TIFF
            order = "L" if img.tag_v2._endian == "<" else "B"  # one plane a tile, unpacked as 8 bits
            high.append(f"{rawmode};16{order}")
        else:
            if any(";16" in r and not r.startswith("I;16") for r in rawmodes):
                notes.append("16-bit image read at 8 bits per channel")
            return None
        low.append(f"{high[-1][:-1]}{other[order]}")
    if not high:
        return None
    return (None if high == rawmodes else high), low


def _planar_sixteen_bit_tiff(img: Image.Image) -> bool:
    tags = getattr(img, "tag_v2", {})
    return tags.get(284) == 2 and set(tags.get(258, ())) == {16}


def _read_sixteen_bit(
    img: Image.Image,
    plan: _Plan,
    reopen: Callable[[], AbstractContextManager[Image.Image]] | None,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray | None, int, bool] | None:
    """Full-precision samples of a file with a _sixteen_bit_plan: decoded once for the high and
    once for the low bytes. Returns None (8-bit decoding) without `reopen`."""
    if reopen is None:  # decode_pil: the file cannot be decoded a second time
        notes.append("16-bit image read at 8 bits per channel")
        return None
    high_rawmodes, low_rawmodes = plan
    if high_rawmodes == ["RGBA"]:  # PNG grey+alpha: bytes L_hi L_lo A_hi A_lo
        with reopen() as again:
            raw = _load_with_rawmodes(again, low_rawmodes).astype(np.uint16)
        return raw[..., 0] << 8 | raw[..., 1], raw[..., 2] << 8 | raw[..., 3], 16, True
    if high_rawmodes is None:
        img.load()  # perhaps already done, by getexif
        high = np.asarray(img)
    else:
        with reopen() as again:
            high = _load_with_rawmodes(again, high_rawmodes)
    with reopen() as again:
        low = _load_with_rawmodes(again, low_rawmodes)
    colour = high.astype(np.uint16) << 8 | low
    alpha = None
    if img.mode == "RGBA":
        alpha = np.ascontiguousarray(colour[..., 3])
        colour = colour[..., :3]
    return np.ascontiguousarray(colour), alpha, 16, False


def _load_with_rawmodes(img: Image.Image, rawmodes: list[str]) -> np.ndarray:
    """Decode `img`, unpacking tile i with rawmodes[i] instead of its own rawmode."""
    img.tile = [_with_rawmode(tile, rawmode) for tile, rawmode in zip(img.tile, rawmodes, strict=True)]
    img.load()
    return np.asarray(img)


def _rawmode(tile: tuple) -> str | None:
    args = tile[3]
    return args if isinstance(args, str) else args[0] if args else None


def _with_rawmode(tile: tuple, rawmode: str) -> tuple:
    args = rawmode if isinstance(tile[3], str) else (rawmode, *tile[3][1:])
    return tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args)


# --------------------------------------------------------------------------------------- writing


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
    return _EXTENSIONS[resolve_format(format)]


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
    if max(rgb.shape[:2]) > _MAX_SIDE.get(fmt, 2**31):
        raise ImageError(
            path,
            f"{rgb.shape[1]}x{rgb.shape[0]} is larger than {fmt} allows ({_MAX_SIDE[fmt]} pixels a side)",
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
    pixels = _quantise(rgb, bits, grey)
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
        writer = _tiff_writer(pixels, bits, exif, icc, xmp, meta.dpi)
    elif fmt == "PNG" and bits == 16:
        writer = _png16_writer(pixels, exif, icc, xmp, meta.dpi)
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
    pixels = _quantise(rgb, 8, grey)
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


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through `write(f)` to a temporary file beside it, then os.replace it in place.

    Whatever fails, no temporary file is left behind and an existing `path` is untouched.
    OSErrors become ImageError(path, ...).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ImageError(path, f"cannot write: folder {path.parent} does not exist")
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise ImageError(path, f"cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException as e:
        temp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ImageError(path, f"cannot write ({e.strerror or e})") from None
        raise
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """atomic_write for data already in memory (reports, JSON)."""
    atomic_write(path, lambda f: f.write(data))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _quantise(rgb: np.ndarray, bits: int, grey: bool) -> np.ndarray:
    """float [0, 1] -> rounded uint8/uint16; H x W for grey (ITU-R 601 luma), else H x W x 3."""
    x = np.fmin(np.fmax(rgb, np.float32(0)), np.float32(1))  # NaN -> 0, unlike np.clip
    if grey:
        x = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    top = 65535 if bits == 16 else 255
    return np.ascontiguousarray((x * np.float32(top) + np.float32(0.5)).astype(np.uint16 if bits == 16 else np.uint8))


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


# ----------------------------------------------------------------------------- 16-bit PNG writer


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16_writer(
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


# ---------------------------------------------------------------------------------- TIFF writer


def _tiff_writer(
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
        if tag in _TIFF_LAYOUT_TAGS:
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
