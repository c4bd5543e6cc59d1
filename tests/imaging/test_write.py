"""Writing: alpha and greyscale kept, every output format, clamping, atomic replacement, PIL helpers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import ExifTags, Image, JpegImagePlugin

from derain_cli import imaging
from derain_cli.errors import ImageError
from derain_cli.imaging import read_image, write_image

from . import helpers as h


def test_rgba_png_alpha_is_carried_untouched(tmp_path):
    rgba = np.dstack([h.pattern(), np.random.default_rng(6).integers(0, 256, (30, 40), dtype=np.uint8)])
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
    like = h.like(h.pattern(), alpha=np.full((30, 40), 128, np.uint8))
    with pytest.warns(imaging.ImageWarning, match="alpha channel is dropped"):
        out = write_image(tmp_path / "out.jpg", like.rgb, like)
    with Image.open(out) as img:
        assert img.mode == "RGB"


@pytest.mark.parametrize("fmt", ["png", "jpg", "tiff"])
def test_greyscale_in_greyscale_out(tmp_path, fmt):
    grey = h.pattern()[..., 0]
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
    grey_profile = h.SRGB_ICC[:16] + b"GRAY" + h.SRGB_ICC[20:]
    like = h.like(h.pattern()[..., 1], icc=grey_profile)
    with Image.open(write_image(tmp_path / "out.png", like.rgb, like)) as img:
        assert img.mode == "L" and img.info["icc_profile"] == grey_profile
    with pytest.warns(imaging.ImageWarning, match="GRAY colour profile does not fit"):
        out = write_image(tmp_path / "out.webp", like.rgb, like)
    with Image.open(out) as img:
        assert img.mode == "RGB" and "icc_profile" not in img.info


def test_failed_write_leaves_no_temporary_file_and_the_old_file(tmp_path, monkeypatch):
    like = h.like(h.pattern())
    destination = tmp_path / "out.png"
    destination.write_bytes(b"the previous result")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ImageError, match=r"out\.png: cannot write \(No space left on device\)"):
        write_image(destination, like.rgb, like)
    assert destination.read_bytes() == b"the previous result"
    assert list(tmp_path.iterdir()) == [destination]


def test_writing_into_a_missing_folder(tmp_path):
    like = h.like(h.pattern())
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
    pixels = h.pattern(64, 48)
    like = h.like(pixels)
    out = write_image(tmp_path / f"out.{fmt}", like.rgb, like)
    assert out.suffix == f".{fmt}"
    with Image.open(out) as img:
        assert (img.format, img.size, img.mode) == (name, (64, 48), "RGB")
        assert np.abs(np.asarray(img).astype(float) - pixels).mean() <= tolerance
        if name == "JPEG":
            assert JpegImagePlugin.get_sampling(img) == 0  # 4:4:4
    assert not list(tmp_path.glob(".*tmp"))


def test_format_overrides_the_extension_and_quality_is_used(tmp_path):
    like = h.like(h.pattern(64, 48))
    small = write_image(tmp_path / "a.jpg", like.rgb, like, format="jpg", quality=20)
    large = write_image(tmp_path / "b.jpg", like.rgb, like, format="jpeg")
    assert small.stat().st_size < large.stat().st_size
    with Image.open(write_image(tmp_path / "c.img", like.rgb, like, format="png")) as img:
        assert img.format == "PNG"


def test_values_outside_the_unit_range_are_clamped(tmp_path):
    like = h.like(h.pattern())
    rgb = np.full_like(like.rgb, 1.7)
    rgb[0, 0] = -0.4
    with Image.open(write_image(tmp_path / "out.png", rgb, like)) as img:
        pixels = np.asarray(img)
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[5, 5].tolist() == [255, 255, 255]


def test_output_larger_than_the_format_allows(tmp_path):
    like = h.like(np.zeros((1, 16384, 3), np.uint8))
    with pytest.raises(ImageError, match=r"wide\.webp: 16384x1 is larger than WEBP allows"):
        write_image(tmp_path / "wide.webp", like.rgb, like)
    assert not list(tmp_path.iterdir())


def test_heic_round_trip(tmp_path):
    pytest.importorskip("pillow_heif", reason="the heif extra is not installed")
    source = read_image(h.photo(tmp_path / "rain.jpg", orientation=6))
    out = write_image(tmp_path / "out.heic", source.rgb, source)
    again = read_image(out)
    assert again.metadata.format == "HEIF" and again.size == (30, 40)
    assert again.metadata.icc == h.SRGB_ICC
    with Image.open(out) as img:
        assert img.getexif()[ExifTags.Base.Make] == "RainCam"
    assert np.abs(again.rgb - source.rgb).mean() < 0.05


def test_decode_pil_and_to_pil(tmp_path):
    rgba = Image.fromarray(np.dstack([h.pattern(), np.full((30, 40), 77, np.uint8)]))
    decoded = decode = imaging.decode_pil(rgba)
    assert decoded.path is None and decoded.size == (40, 30)
    assert np.array_equal(decode.alpha, np.full((30, 40), 77, np.uint8))
    back = imaging.to_pil(decoded.rgb, decoded)
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), np.asarray(rgba))

    grey = imaging.decode_pil(Image.fromarray(h.pattern()[..., 0]))
    assert grey.grey and imaging.to_pil(grey.rgb, grey).mode == "L"
    assert imaging.to_pil(grey.rgb).mode == "RGB"

    photo = read_image(h.photo(tmp_path / "p.jpg"))
    info = imaging.to_pil(photo.rgb, photo).info
    assert info["icc_profile"] == h.SRGB_ICC and b"RainCam" in info["exif"]
