"""Reading and writing photographs: pixels, bit depth, alpha, metadata, errors, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin, TiffImagePlugin

from derain_cli import __version__, imaging
from derain_cli.errors import ImageError, UsageError
from derain_cli.imaging import DecodedImage, Metadata, read_image, write_image
from tests.conftest import shared_path

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


# ------------------------------------------------------------------------------------ helpers


def _pattern(width: int = 40, height: int = 30, seed: int = 0) -> np.ndarray:
    """A smooth uint8 RGB test picture (compresses like a photo) with a red marked top-left corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=2)
    noise = rng.integers(-8, 9, base.shape)
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    image[:8, :8] = (0, 0, 255)  # blue: unlike every corner of the gradient
    return image


def _exif(orientation: int | None = None) -> Image.Exif:
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


def _with_thumbnail(exif: bytes, thumbnail: bytes) -> bytes:
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


def _thumbnail() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (1, 2, 3)).save(buffer, "JPEG", quality=50, comment=b"THUMBNAIL-MARK")
    return buffer.getvalue()


def _photo(path: Path, orientation: int | None = None, **save) -> Path:
    """A JPEG (or other format by extension) with camera EXIF, GPS, ICC and XMP."""
    options = {"exif": _exif(orientation).tobytes(), "icc_profile": SRGB_ICC}
    if path.suffix == ".jpg":
        options.update(quality=95, xmp=XMP % (orientation or 1), dpi=(300, 300))
    options.update(save)
    Image.fromarray(_pattern()).save(path, **options)
    return path


def _png(path: Path, array: np.ndarray, bit_depth: int) -> Path:
    """A PNG written independently of imaging.py (filter type 0), any bit depth and channel count."""
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


def _decode_png(path: Path) -> tuple[dict, np.ndarray]:
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


def _tiff16(
    path: Path, array: np.ndarray, prefix: bytes = b"MM", planar: bool = False, deflate: bool = False
) -> Path:
    """A 16-bit RGB TIFF in layouts imaging.py does not write (big-endian, planes, no predictor)."""
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


def _like(array: np.ndarray, bit_depth: int = 8, alpha: np.ndarray | None = None, **meta) -> DecodedImage:
    top = 65535 if bit_depth == 16 else 255
    rgb = array.astype(np.float32) / top
    grey = rgb.ndim == 2
    if grey:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return DecodedImage(None, rgb, alpha, bit_depth, grey, Metadata(**meta))


def _gps(exif: Image.Exif) -> dict:
    return {k: tuple(map(float, v)) if isinstance(v, tuple) else v for k, v in exif.get_ifd(0x8825).items()}


# ---------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp", "tiff"])
def test_metadata_survives_into_every_output_format(tmp_path, fmt):
    source = read_image(_photo(tmp_path / "rain.jpg"))
    out = write_image(tmp_path / f"out.{fmt}", source.rgb, source, format=fmt)

    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[ExifTags.Base.Make] == "RainCam"
        assert exif[ExifTags.Base.Model] == "Drizzle 7"
        assert exif[ExifTags.Base.Software] == SOFTWARE
        assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:17 14:03:22"
        assert _gps(exif) == _gps(_exif())
        assert img.info["icc_profile"] == SRGB_ICC
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
        assert xmp and b"rainy-test" in (xmp if isinstance(xmp, bytes) else xmp.encode())
    again = read_image(out)
    assert again.metadata.icc == SRGB_ICC
    if fmt in ("jpg", "png", "tiff"):
        assert again.metadata.dpi == pytest.approx((300, 300), abs=0.1)


def test_real_photo_keeps_its_exif(tmp_path):
    path = shared_path("data", "real", "heavyrain", "Image0.jpg")
    source = read_image(path)
    out = write_image(tmp_path / "Image0.jpg", source.rgb, source)
    with Image.open(path) as before, Image.open(out) as after:
        old, new = dict(before.getexif()), dict(after.getexif())
        assert new.pop(ExifTags.Base.Software) == SOFTWARE
        old.pop(ExifTags.Base.Software)
        assert new == old
        assert after.size == before.size


@pytest.mark.parametrize(
    ("orientation", "marked"),
    [(6, (slice(2, 6), slice(24, 28))), (8, (slice(34, 38), slice(2, 6)))],  # inside the mark
)
def test_orientation_turns_pixels_upright_and_is_reset(tmp_path, orientation, marked):
    thumbnail = _thumbnail()
    exif = _with_thumbnail(_exif(orientation).tobytes(), thumbnail)
    path = _photo(tmp_path / "turned.jpg", orientation, exif=exif)
    with Image.open(path) as img:
        assert img.getexif().get_ifd(ExifTags.IFD.IFD1)  # the fixture really has a thumbnail

    source = read_image(path)
    assert source.size == (30, 40)  # stored 40 x 30, shown turned by 90 degrees
    assert np.all(source.rgb[marked][..., 2] > 0.9) and np.all(source.rgb[marked][..., :2] < 0.1)
    assert not np.any(source.rgb[2:6, 2:6, 2] > 0.9)  # the stored corner is not the marked one any more

    out = write_image(tmp_path / "upright.jpg", source.rgb, source)
    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[ExifTags.Base.Orientation] == 1
        assert not exif.get_ifd(ExifTags.IFD.IFD1)
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        assert exif_ifd[ExifTags.Base.ExifImageWidth] == 30
        assert exif_ifd[ExifTags.Base.ExifImageHeight] == 40
        assert b'tiff:Orientation="1"' in img.info["xmp"]
        assert img.size == (30, 40)
    assert b"THUMBNAIL-MARK" not in out.read_bytes()
    again = read_image(out)
    assert np.all(again.rgb[marked][..., 2] > 0.85)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(_pattern(7, 5)).save(path, exif=exif)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(np.round(read_image(path).rgb * 255).astype(np.uint8), expected)


# ------------------------------------------------------------------------------ bit depth


def test_sixteen_bit_rgb_png_round_trip(tmp_path):
    samples = np.random.default_rng(1).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    source = read_image(_png(tmp_path / "deep.png", samples, 16))
    assert source.bit_depth == 16 and not source.grey
    assert np.array_equal(np.round(source.rgb * 65535).astype(np.uint16), samples)

    out = write_image(tmp_path / "out.png", source.rgb, source)
    chunks, written = _decode_png(out)
    assert chunks[b"IHDR"][8] == 16
    assert np.array_equal(written, samples)
    assert b"derain" in chunks[b"eXIf"]


def test_sixteen_bit_rgba_png_keeps_alpha(tmp_path):
    samples = np.random.default_rng(2).integers(0, 65536, (8, 10, 4), dtype=np.uint16)
    source = read_image(_png(tmp_path / "deep.png", samples, 16))
    assert source.alpha.dtype == np.uint16 and np.array_equal(source.alpha, samples[..., 3])
    _, written = _decode_png(write_image(tmp_path / "out.png", source.rgb, source))
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("channels", [1, 2])
def test_sixteen_bit_grey_png_stays_sixteen_bit_grey(tmp_path, channels):
    samples = np.random.default_rng(3).integers(0, 65536, (7, 9, channels), dtype=np.uint16)
    source = read_image(_png(tmp_path / "grey16.png", samples, 16))
    assert source.grey and source.bit_depth == 16
    assert np.array_equal(np.round(source.rgb[..., 0] * 65535).astype(np.uint16), samples[..., 0])
    _, written = _decode_png(write_image(tmp_path / "out.png", source.rgb, source))
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("deflate", [False, True])  # Pillow's own decoder, then libtiff
def test_sixteen_bit_tiff_round_trip(tmp_path, deflate):
    samples = np.random.default_rng(4).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    source = read_image(_tiff16(tmp_path / "deep.tif", samples, deflate=deflate))
    assert source.bit_depth == 16
    assert np.array_equal(np.round(source.rgb * 65535).astype(np.uint16), samples)

    out = write_image(tmp_path / "out.tiff", source.rgb, source)
    with Image.open(out) as img:
        assert img.tag_v2[258] == (16, 16, 16)
    again = read_image(out)
    assert again.bit_depth == 16
    assert np.array_equal(np.round(again.rgb * 65535).astype(np.uint16), samples)


@pytest.mark.parametrize(("prefix", "deflate"), [(b"II", False), (b"MM", False), (b"II", True)])
def test_sixteen_bit_tiff_with_separate_colour_planes(tmp_path, prefix, deflate):
    samples = np.random.default_rng(8).integers(0, 65536, (5, 7, 3), dtype=np.uint16)
    source = read_image(_tiff16(tmp_path / "planes.tif", samples, prefix, planar=True, deflate=deflate))
    if deflate:  # libtiff decodes these planes only to 8 bits through Pillow: said, and still right
        assert source.bit_depth == 8 and "16-bit image read at 8 bits per channel" in source.warnings
        assert np.array_equal(np.round(source.rgb * 255).astype(np.uint16), samples >> 8)
    else:
        assert source.bit_depth == 16 and source.warnings == []
        assert np.array_equal(np.round(source.rgb * 65535).astype(np.uint16), samples)


@pytest.mark.parametrize("channels", [1, 4])
def test_sixteen_bit_tiff_grey_and_alpha(tmp_path, channels):
    samples = np.random.default_rng(5).integers(0, 65536, (6, 5, channels), dtype=np.uint16)
    alpha = samples[..., 3] if channels == 4 else None
    like = _like(samples[..., 0] if channels == 1 else samples[..., :3], 16, alpha)
    again = read_image(write_image(tmp_path / "out.tif", like.rgb, like))
    assert (again.grey, again.bit_depth) == (channels == 1, 16)
    assert np.array_equal(np.round(again.rgb * 65535).astype(np.uint16), np.round(like.rgb * 65535))
    if alpha is not None:
        assert np.array_equal(again.alpha, alpha)


def test_sixteen_bit_to_jpeg_is_eight_bit_with_a_warning(tmp_path):
    like = _like(np.full((4, 4, 3), 40000, np.uint16), 16)
    with pytest.warns(imaging.ImageWarning, match="8 bits"):
        out = write_image(tmp_path / "out.jpg", like.rgb, like)
    assert read_image(out).bit_depth == 8


# ---------------------------------------------------------------------------- alpha, grey


def test_rgba_png_alpha_is_carried_untouched(tmp_path):
    rgba = np.dstack([_pattern(), np.random.default_rng(6).integers(0, 256, (30, 40), dtype=np.uint8)])
    path = tmp_path / "clear.png"
    Image.fromarray(rgba).save(path)
    source = read_image(path)
    assert np.array_equal(source.alpha, rgba[..., 3])
    out = write_image(tmp_path / "out.png", source.rgb * 0.5, source)
    with Image.open(out) as img:
        assert img.mode == "RGBA"
        assert np.array_equal(np.asarray(img)[..., 3], rgba[..., 3])
    webp = write_image(tmp_path / "out.webp", source.rgb, source)
    assert np.array_equal(read_image(webp).alpha, rgba[..., 3])


def test_alpha_is_dropped_from_jpeg_with_a_warning(tmp_path):
    like = _like(_pattern(), alpha=np.full((30, 40), 128, np.uint8))
    with pytest.warns(imaging.ImageWarning, match="alpha channel is dropped"):
        out = write_image(tmp_path / "out.jpg", like.rgb, like)
    with Image.open(out) as img:
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["png", "jpg", "tiff"])
def test_greyscale_in_greyscale_out(tmp_path, fmt):
    grey = _pattern()[..., 0]
    path = tmp_path / f"grey.{fmt}"
    Image.fromarray(grey).save(path)
    source = read_image(path)
    assert source.grey and source.bit_depth == 8
    assert np.array_equal(source.rgb[..., 0], source.rgb[..., 2])
    out = write_image(tmp_path / f"out.{fmt}", source.rgb, source)
    with Image.open(out) as img:
        assert img.mode == "L"
        if fmt != "jpg":
            assert np.array_equal(np.asarray(img), np.asarray(Image.open(path)))


def test_greyscale_into_webp_becomes_rgb_without_its_grey_profile(tmp_path):
    grey_profile = SRGB_ICC[:16] + b"GRAY" + SRGB_ICC[20:]
    like = _like(_pattern()[..., 1], icc=grey_profile)
    with Image.open(write_image(tmp_path / "out.png", like.rgb, like)) as img:
        assert img.mode == "L" and img.info["icc_profile"] == grey_profile
    with pytest.warns(imaging.ImageWarning, match="GRAY colour profile does not fit"):
        out = write_image(tmp_path / "out.webp", like.rgb, like)
    with Image.open(out) as img:
        assert img.mode == "RGB" and "icc_profile" not in img.info


# ------------------------------------------------------------------------- conversions


def test_palette_image_is_converted_with_a_warning(tmp_path):
    path = tmp_path / "palette.png"
    Image.fromarray(_pattern()).quantize(8).save(path)
    source = read_image(path)
    assert "palette image converted to RGB" in source.warnings
    with Image.open(path) as img:
        assert np.allclose(source.rgb * 255, np.asarray(img.convert("RGB")), atol=0.01)


def test_transparent_palette_image_keeps_its_transparency(tmp_path):
    path = tmp_path / "palette.png"
    img = Image.fromarray(_pattern()).quantize(8)
    img.save(path, transparency=0)
    source = read_image(path)
    assert "palette image converted to RGBA" in source.warnings
    assert source.alpha is not None and set(np.unique(source.alpha)) <= {0, 255}
    assert (source.alpha == 0).any()


def test_cmyk_is_converted_and_its_profile_dropped(tmp_path):
    path = tmp_path / "print.jpg"
    cmyk_profile = SRGB_ICC[:16] + b"CMYK" + SRGB_ICC[20:]
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, icc_profile=cmyk_profile)
    source = read_image(path)
    assert any("CMYK" in w for w in source.warnings)
    assert source.metadata.icc is None
    assert source.rgb[..., 0].mean() > 0.9 and source.rgb[..., 1].mean() < 0.1  # red


def test_multi_picture_jpeg_from_a_phone_reads_as_jpeg(tmp_path):
    path = tmp_path / "phone.jpg"
    preview = Image.new("RGB", (10, 8), (9, 9, 9))
    Image.fromarray(_pattern()).save(
        path, "MPO", save_all=True, append_images=[preview], exif=_exif().tobytes()
    )
    with Image.open(path) as img:
        assert img.format == "MPO"
    source = read_image(path)
    assert (source.metadata.format, source.size, source.warnings) == ("JPEG", (40, 30), [])
    assert imaging.resolve_format("same", path) == "JPEG"


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "Regen über Köln 雨"
    folder.mkdir()
    source = read_image(_photo(folder / "straße 雨.jpg"))
    out = write_image(folder / "straße 雨 derained.png", source.rgb, source)
    assert read_image(out).size == (40, 30)


# ----------------------------------------------------------------------------- errors


def _good(kind: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pattern(64, 48)).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.png", lambda: b"", "file is empty"),
        ("notes.txt", lambda: b"remember the umbrella\n", "not an image file"),
        ("photo.jpg", lambda: _good("JPEG")[:-300], "truncated image data"),
        ("photo.png", lambda: _good("PNG")[: len(_good("PNG")) // 2], "truncated image data"),
        ("photo.bmp", lambda: _good("BMP")[:-100], "truncated image data"),
        ("photo.webp", lambda: _good("WEBP")[:-40], "truncated image data"),
        ("broken.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "corrupt"),
        ("animation.gif", lambda: _good("GIF"), "unsupported image format GIF"),
    ],
)
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content())
    with pytest.raises(ImageError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(str(path) + ": ")
    assert problem in message
    assert "\n" not in message


def test_truncated_tiff_written_by_us_is_detected(tmp_path):
    like = _like(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    out = write_image(tmp_path / "full.tif", like.rgb, like)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(out.read_bytes()[:-2000])
    with pytest.raises(ImageError, match=r"cut\.tif: truncated image data"):
        read_image(cut)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="nothing.jpg: no such file"):
        read_image(tmp_path / "nothing.jpg")


@pytest.mark.skipif(imaging.HEIF_AVAILABLE, reason="pillow-heif is installed")
def test_heic_without_the_extra_says_what_to_install(tmp_path):
    path = tmp_path / "phone.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    with pytest.raises(ImageError, match=r"phone\.heic: install derain-cli\[heif\] to read HEIC files"):
        read_image(path)
    like = _like(_pattern())
    with pytest.raises(ImageError, match=r"install derain-cli\[heif\]"):
        write_image(tmp_path / "out.heic", like.rgb, like)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert "bomb.png: image is 20000x20000 = 400 megapixels" in str(caught.value)
    assert "--max-pixels" in str(caught.value)


def test_max_pixels_is_configurable_and_can_be_disabled(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(_pattern()).save(path)
    with pytest.raises(ImageError, match="--max-pixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=None).size == (40, 30)
    assert read_image(path, max_pixels=1200).size == (40, 30)


# ------------------------------------------------------------------------------ writing


def test_failed_write_leaves_no_temporary_file_and_the_old_file(tmp_path, monkeypatch):
    like = _like(_pattern())
    destination = tmp_path / "out.png"
    destination.write_bytes(b"the previous result")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ImageError, match=r"out\.png: cannot write \(No space left on device\)"):
        write_image(destination, like.rgb, like)
    assert destination.read_bytes() == b"the previous result"
    assert list(tmp_path.iterdir()) == [destination]


def test_atomic_write_cleans_up_after_an_encoder_failure(tmp_path):
    destination = tmp_path / "out.jpg"

    def half_then_crash(f):
        f.write(b"\xff\xd8\xff partial")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        imaging.atomic_write(destination, half_then_crash)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_bytes_replaces_a_file(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("old")
    imaging.atomic_write_bytes(report, b'{"psnr": 31.2}')
    assert report.read_bytes() == b'{"psnr": 31.2}'
    assert list(tmp_path.iterdir()) == [report]


def test_writing_into_a_missing_folder(tmp_path):
    like = _like(_pattern())
    with pytest.raises(ImageError, match="does not exist"):
        write_image(tmp_path / "no" / "out.png", like.rgb, like)


@pytest.mark.parametrize(
    ("fmt", "name", "tolerance"),
    [
        ("jpg", "JPEG", 3.0),
        ("png", "PNG", 0.0),
        ("webp", "WEBP", 4.0),
        ("tiff", "TIFF", 0.0),
        ("bmp", "BMP", 0.0),
    ],
)
def test_output_formats(tmp_path, fmt, name, tolerance):
    pixels = _pattern(64, 48)
    like = _like(pixels)
    out = write_image(tmp_path / f"out.{fmt}", like.rgb, like)
    assert out.suffix == f".{fmt}"
    with Image.open(out) as img:
        assert (img.format, img.size, img.mode) == (name, (64, 48), "RGB")
        assert np.abs(np.asarray(img).astype(float) - pixels).mean() <= tolerance
        if name == "JPEG":
            assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
    assert not list(tmp_path.glob(".*tmp"))


def test_format_overrides_the_extension_and_quality_is_used(tmp_path):
    like = _like(_pattern(64, 48))
    small = write_image(tmp_path / "a.jpg", like.rgb, like, format="jpg", quality=20)
    large = write_image(tmp_path / "b.jpg", like.rgb, like, format="jpeg")
    assert small.stat().st_size < large.stat().st_size
    with Image.open(write_image(tmp_path / "c.img", like.rgb, like, format="png")) as img:
        assert img.format == "PNG"


def test_values_outside_the_unit_range_are_clamped(tmp_path):
    like = _like(_pattern())
    rgb = np.full_like(like.rgb, 1.7)
    rgb[0, 0] = -0.4
    with Image.open(write_image(tmp_path / "out.png", rgb, like)) as img:
        pixels = np.asarray(img)
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[5, 5].tolist() == [255, 255, 255]


def test_output_larger_than_the_format_allows(tmp_path):
    like = _like(np.zeros((1, 16384, 3), np.uint8))
    with pytest.raises(ImageError, match=r"wide\.webp: 16384x1 is larger than WEBP allows"):
        write_image(tmp_path / "wide.webp", like.rgb, like)
    assert not list(tmp_path.iterdir())


def test_heic_round_trip(tmp_path):
    pytest.importorskip("pillow_heif", reason="the heif extra is not installed")
    source = read_image(_photo(tmp_path / "rain.jpg", orientation=6))
    out = write_image(tmp_path / "out.heic", source.rgb, source)
    again = read_image(out)
    assert again.metadata.format == "HEIF" and again.size == (30, 40)
    assert again.metadata.icc == SRGB_ICC
    with Image.open(out) as img:
        assert img.getexif()[ExifTags.Base.Make] == "RainCam"
    assert np.abs(again.rgb - source.rgb).mean() < 0.05


def test_format_names():
    assert imaging.resolve_format("jpg") == imaging.resolve_format("JPEG") == "JPEG"
    assert imaging.resolve_format(None, "x/photo.TIFF") == "TIFF"
    assert imaging.resolve_format("same", "x/photo.jpeg") == "JPEG"
    assert imaging.extension_for("tiff") == ".tif" and imaging.extension_for("WEBP") == ".webp"
    with pytest.raises(UsageError, match="unknown image format 'gif'"):
        imaging.resolve_format("gif")
    with pytest.raises(UsageError, match=r"photo\.xyz: cannot tell the output format"):
        imaging.resolve_format("same", "photo.xyz")
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"} <= imaging.SUPPORTED_EXTENSIONS


# ------------------------------------------------------------------------ Python API helpers


def test_decode_pil_and_to_pil(tmp_path):
    rgba = Image.fromarray(np.dstack([_pattern(), np.full((30, 40), 77, np.uint8)]))
    decoded = decode = imaging.decode_pil(rgba)
    assert decoded.path is None and decoded.size == (40, 30)
    assert np.array_equal(decode.alpha, np.full((30, 40), 77, np.uint8))
    back = imaging.to_pil(decoded.rgb, decoded)
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), np.asarray(rgba))

    grey = imaging.decode_pil(Image.fromarray(_pattern()[..., 0]))
    assert grey.grey and imaging.to_pil(grey.rgb, grey).mode == "L"
    assert imaging.to_pil(grey.rgb).mode == "RGB"

    photo = read_image(_photo(tmp_path / "p.jpg"))
    info = imaging.to_pil(photo.rgb, photo).info
    assert info["icc_profile"] == SRGB_ICC and b"RainCam" in info["exif"]
