"""Reading 16-bit RGB(A) at full precision with Pillow alone.

Pillow holds 16-bit greyscale natively but reduces 16-bit RGB(A) to 8 bits when it decodes. Such
files are therefore decoded twice, once keeping the high and once the low byte of every sample
(Pillow's 8-bit unpackers for the two byte orders), and the two are joined: exact for PNG and for
TIFF in every compression libtiff reads, with no new dependency. TIFF with compressed separate
colour planes and premultiplied alpha are read at 8 bits, with a note.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

import numpy as np
from PIL import Image, ImageFile, TiffImagePlugin

Plan = tuple[list[str] | None, list[str]]


def sixteen_bit_plan(img: Image.Image, notes: list[str]) -> Plan | None:
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
            tiff = cast(TiffImagePlugin.TiffImageFile, img)
            order = "L" if tiff.tag_v2._endian == "<" else "B"  # one plane a tile, unpacked as 8 bits
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


def read_sixteen_bit(
    img: Image.Image,
    plan: Plan,
    reopen: Callable[[], AbstractContextManager[Image.Image]] | None,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray | None, int, bool] | None:
    """Full-precision samples of a file with a sixteen_bit_plan: decoded once for the high and
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
    opened = cast(ImageFile.ImageFile, img)  # opened from a file, so it has tiles
    opened.tile = [_with_rawmode(tile, rawmode) for tile, rawmode in zip(opened.tile, rawmodes, strict=True)]
    opened.load()
    return np.asarray(opened)


def _rawmode(tile: tuple) -> str | None:
    args = tile[3]
    return args if isinstance(args, str) else args[0] if args else None


def _with_rawmode(tile: tuple, rawmode: str) -> Any:
    """`tile` with its rawmode replaced: Pillow's own tile type (a named tuple since Pillow 11)."""
    args = rawmode if isinstance(tile[3], str) else (rawmode, *tile[3][1:])
    return tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args)
