"""Reading: colour conversions, odd files, and one clear error naming the file for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli import imaging
from derain_cli.errors import ImageError
from derain_cli.imaging import read_image, write_image

from . import helpers as h


def test_palette_image_is_converted_with_a_warning(tmp_path):
    path = tmp_path / "palette.png"
    Image.fromarray(h.pattern()).quantize(8).save(path)
    source = read_image(path)
    assert "palette image converted to RGB" in source.warnings
    with Image.open(path) as img:
        assert np.allclose(source.rgb * 255, np.asarray(img.convert("RGB")), atol=0.01)


def test_transparent_palette_image_keeps_its_transparency(tmp_path):
    path = tmp_path / "palette.png"
    img = Image.fromarray(h.pattern()).quantize(8)
    img.save(path, transparency=0)
    source = read_image(path)
    assert "palette image converted to RGBA" in source.warnings
    assert source.alpha is not None and set(np.unique(source.alpha)) <= {0, 255}
    assert (source.alpha == 0).any()


def test_cmyk_is_converted_and_its_profile_dropped(tmp_path):
    path = tmp_path / "print.jpg"
    cmyk_profile = h.SRGB_ICC[:16] + b"CMYK" + h.SRGB_ICC[20:]
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, icc_profile=cmyk_profile)
    source = read_image(path)
    assert any("CMYK" in w for w in source.warnings)
    assert source.metadata.icc is None
    assert source.rgb[..., 0].mean() > 0.9 and source.rgb[..., 1].mean() < 0.1  # red


def test_multi_picture_jpeg_from_a_phone_reads_as_jpeg(tmp_path):
    path = tmp_path / "phone.jpg"
    preview = Image.new("RGB", (10, 8), (9, 9, 9))
    Image.fromarray(h.pattern()).save(
        path, "MPO", save_all=True, append_images=[preview], exif=h.exif().tobytes()
    )
    with Image.open(path) as img:
        assert img.format == "MPO"
    source = read_image(path)
    assert (source.metadata.format, source.size, source.warnings) == ("JPEG", (40, 30), [])
    assert imaging.resolve_format("same", path) == "JPEG"


def test_non_ascii_path(tmp_path):
    folder = tmp_path / "Regen über Köln 雨"
    folder.mkdir()
    source = read_image(h.photo(folder / "straße 雨.jpg"))
    out = write_image(folder / "straße 雨 derained.png", source.rgb, source)
    assert read_image(out).size == (40, 30)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.png", lambda: b"", "file is empty"),
        ("notes.txt", lambda: b"remember the umbrella\n", "not an image file"),
        ("photo.jpg", lambda: h.good("JPEG")[:-300], "truncated image data"),
        ("photo.png", lambda: h.good("PNG")[: len(h.good("PNG")) // 2], "truncated image data"),
        ("photo.bmp", lambda: h.good("BMP")[:-100], "truncated image data"),
        ("photo.webp", lambda: h.good("WEBP")[:-40], "truncated image data"),
        ("broken.png", lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "corrupt"),
        ("animation.gif", lambda: h.good("GIF"), "unsupported image format GIF"),
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
    like = h.like(np.random.default_rng(7).integers(0, 256, (64, 64, 3), dtype=np.uint8))
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
    like = h.like(h.pattern())
    with pytest.raises(ImageError, match=r"install derain-cli\[heif\]"):
        write_image(tmp_path / "out.heic", like.rgb, like)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = h.png_header_only(tmp_path / "bomb.png", 20000, 20000)
    with pytest.raises(ImageError) as caught:
        read_image(path)
    assert "bomb.png: image is 20000x20000 = 400 megapixels" in str(caught.value)
    assert "--max-pixels" in str(caught.value)


def test_max_pixels_is_configurable_and_can_be_disabled(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(h.pattern()).save(path)
    with pytest.raises(ImageError, match="--max-pixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=None).size == (40, 30)
    assert read_image(path, max_pixels=1200).size == (40, 30)
