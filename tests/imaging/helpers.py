"""Builders of test images for the imaging tests: files written independently of derain's writer."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, TiffImagePlugin

from derain_cli import __version__
from derain_cli.imaging import DecodedImage, Metadata

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
GPS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.5),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0),
}
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    b' tiff:Orientation="%d" dc:format="rainy-test"/></rdf:RDF></x:xmpmeta>'
)
SOFTWARE = f"derain {__version__}"


def pattern(width: int = 40, height: int = 30, seed: int = 0) -> np.ndarray:
    """A smooth uint8 RGB test picture (compresses like a photo) with a red marked top-left corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=2)
    noise = rng.integers(-8, 9, base.shape)
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    image[:8, :8] = (0, 0, 255)  # blue: unlike every corner of the gradient
    return image


def exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RainCam"
    exif[ExifTags.Base.Model] = "Drizzle 7"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.DateTimeOriginal] = "2024:05:17 14:03:22"
    exif_ifd[ExifTags.Base.ExifImageWidth], exif_ifd[ExifTags.Base.ExifImageHeight] = 40, 30
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return exif


def with_thumbnail(exif: bytes, thumbnail: bytes) -> bytes:
    """`exif` (Exif.tobytes()) with an IFD1 holding a JPEG thumbnail, as cameras write it."""
    tiff = exif[6:]
    endian = ">" if tiff[:2] == b"MM" else "<"
    (ifd0,) = struct.unpack(endian + "I", tiff[4:8])
    (count,) = struct.unpack(endian + "H", tiff[ifd0 : ifd0 + 2])
    next_pointer = ifd0 + 2 + 12 * count
    tiff += b"\0" * (len(tiff) % 2)
    ifd1 = len(tiff)
    data = ifd1 + 2 + 2 * 12 + 4
    directory = struct.pack(endian + "H", 2)
    directory += struct.pack(endian + "HHII", 0x0201, 4, 1, data)
    directory += struct.pack(endian + "HHII", 0x0202, 4, 1, len(thumbnail))
    directory += struct.pack(endian + "I", 0)
    tiff = tiff[:next_pointer] + struct.pack(endian + "I", ifd1) + tiff[next_pointer + 4 :]
    return b"Exif\x00\x00" + tiff + directory + thumbnail


def thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(buffer, "JPEG", quality=50, comment=b"THUMBNAIL-MARK")
    return buffer.getvalue()


def photo(path: Path, orientation: int | None = None, **save) -> Path:
    """A JPEG (or other format by extension) with camera EXIF, GPS, ICC and XMP."""
    options = {"exif": exif(orientation).tobytes(), "icc_profile": SRGB_ICC}
    if path.suffix == ".jpg":
        options.update(quality=95, xmp=XMP % (orientation or 1), dpi=(300, 300))
    options.update(save)
    Image.fromarray(pattern()).save(path, **options)
    return path


def png(path: Path, array: np.ndarray, bit_depth: int) -> Path:
    """A PNG written independently of derain_cli.imaging (filter type 0), any bit depth and channel count."""
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + row.astype(dtype).tobytes() for row in array)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def decode_png(path: Path) -> tuple[dict, np.ndarray]:
    """Independent PNG decoder for small files: (chunk kinds -> data, samples as H x W x C)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    position = 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    bpp = channels * depth // 8
    stride = width * bpp
    raw = zlib.decompress(chunks[b"IDAT"])
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    samples = np.frombuffer(b"".join(rows), ">u2" if depth == 16 else "u1").reshape(height, width, channels)
    return chunks, samples


def tiff16(
    path: Path, array: np.ndarray, prefix: bytes = b"MM", planar: bool = False, deflate: bool = False
) -> Path:
    """A 16-bit RGB TIFF in layouts derain_cli.imaging does not write (big-endian, planes, no predictor)."""
    height, width, _ = array.shape
    samples = array.astype(">u2" if prefix == b"MM" else "<u2")
    strips = (
        [np.ascontiguousarray(samples[..., c]).tobytes() for c in range(3)] if planar else [samples.tobytes()]
    )
    if deflate:
        strips = [zlib.compress(strip) for strip in strips]
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=prefix)
    ifd[256], ifd[257], ifd[258], ifd[259], ifd[262] = width, height, (16, 16, 16), 8 if deflate else 1, 2
    ifd[273] = tuple(int(o) for o in np.cumsum([0] + [len(s) for s in strips[:-1]]))
    ifd[277], ifd[278], ifd[279], ifd[284] = 3, height, tuple(len(s) for s in strips), 2 if planar else 1
    ifd.tagtype[273] = ifd.tagtype[279] = TiffImagePlugin.TiffTags.LONG
    buffer = io.BytesIO()
    ifd.save(buffer)
    buffer.write(b"".join(strips))
    path.write_bytes(buffer.getvalue())
    return path


def like(array: np.ndarray, bit_depth: int = 8, alpha: np.ndarray | None = None, **meta) -> DecodedImage:
    top = 65535 if bit_depth == 16 else 255
    rgb = array.astype(np.float32) / top
    grey = rgb.ndim == 2
    if grey:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return DecodedImage(None, rgb, alpha, bit_depth, grey, Metadata(**meta))


def gps(exif: Image.Exif) -> dict:
    return {k: tuple(map(float, v)) if isinstance(v, tuple) else v for k, v in exif.get_ifd(0x8825).items()}


def good(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pattern(64, 48)).save(buffer, kind)
    return buffer.getvalue()



def png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path
