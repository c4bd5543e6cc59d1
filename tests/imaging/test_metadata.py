"""Metadata through a read and a write: EXIF with GPS, ICC, XMP, dpi, orientation, thumbnail."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageOps

from derain_cli.imaging import read_image, write_image
from tests.conftest import shared_path

from . import helpers as h


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp", "tiff"])
def test_metadata_survives_into_every_output_format(tmp_path, fmt):
    source = read_image(h.photo(tmp_path / "rain.jpg"))
    out = write_image(tmp_path / f"out.{fmt}", source.rgb, source, format=fmt)

    with Image.open(out) as img:
        exif = img.getexif()
        assert exif[ExifTags.Base.Make] == "RainCam"
        assert exif[ExifTags.Base.Model] == "Drizzle 7"
        assert exif[ExifTags.Base.Software] == h.SOFTWARE
        assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:17 14:03:22"
        assert h.gps(exif) == h.gps(h.exif())
        assert img.info["icc_profile"] == h.SRGB_ICC
        xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
        assert xmp and b"rainy-test" in (xmp if isinstance(xmp, bytes) else xmp.encode())
    again = read_image(out)
    assert again.metadata.icc == h.SRGB_ICC
    if fmt in ("jpg", "png", "tiff"):
        assert again.metadata.dpi == pytest.approx((300, 300), abs=0.1)


def test_real_photo_keeps_its_exif(tmp_path):
    path = shared_path("data", "real", "heavyrain", "Image0.jpg")
    source = read_image(path)
    out = write_image(tmp_path / "Image0.jpg", source.rgb, source)
    with Image.open(path) as before, Image.open(out) as after:
        old, new = dict(before.getexif()), dict(after.getexif())
        assert new.pop(ExifTags.Base.Software) == h.SOFTWARE
        old.pop(ExifTags.Base.Software)
        assert new == old
        assert after.size == before.size


@pytest.mark.parametrize(
    ("orientation", "marked"),
    [(6, (slice(2, 6), slice(24, 28))), (8, (slice(34, 38), slice(2, 6)))],  # inside the mark
)
def test_orientation_turns_pixels_upright_and_is_reset(tmp_path, orientation, marked):
    thumbnail = h.thumbnail()
    exif = h.with_thumbnail(h.exif(orientation).tobytes(), thumbnail)
    path = h.photo(tmp_path / "turned.jpg", orientation, exif=exif)
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
    Image.fromarray(h.pattern(7, 5)).save(path, exif=exif)
    with Image.open(path) as img:
        expected = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(np.round(read_image(path).rgb * 255).astype(np.uint8), expected)
