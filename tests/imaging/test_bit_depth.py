"""16 bits per channel: read at full precision (_read16), written by our PNG and TIFF encoders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli import imaging
from derain_cli.imaging import read_image, write_image

from . import helpers as h


def test_sixteen_bit_rgb_png_round_trip(tmp_path):
    samples = np.random.default_rng(1).integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    source = read_image(h.png(tmp_path / "deep.png", samples, 16))
    assert source.bit_depth == 16 and not source.grey
    assert np.array_equal(np.round(source.rgb * 65535).astype(np.uint16), samples)

    out = write_image(tmp_path / "out.png", source.rgb, source)
    chunks, written = h.decode_png(out)
    assert chunks[b"IHDR"][8] == 16
    assert np.array_equal(written, samples)
    assert b"derain" in chunks[b"eXIf"]


def test_sixteen_bit_rgba_png_keeps_alpha(tmp_path):
    samples = np.random.default_rng(2).integers(0, 65536, (8, 10, 4), dtype=np.uint16)
    source = read_image(h.png(tmp_path / "deep.png", samples, 16))
    assert source.alpha.dtype == np.uint16 and np.array_equal(source.alpha, samples[..., 3])
    _, written = h.decode_png(write_image(tmp_path / "out.png", source.rgb, source))
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("channels", [1, 2])
def test_sixteen_bit_grey_png_stays_sixteen_bit_grey(tmp_path, channels):
    samples = np.random.default_rng(3).integers(0, 65536, (7, 9, channels), dtype=np.uint16)
    source = read_image(h.png(tmp_path / "grey16.png", samples, 16))
    assert source.grey and source.bit_depth == 16
    assert np.array_equal(np.round(source.rgb[..., 0] * 65535).astype(np.uint16), samples[..., 0])
    _, written = h.decode_png(write_image(tmp_path / "out.png", source.rgb, source))
    assert np.array_equal(written, samples)


@pytest.mark.parametrize("deflate", [False, True])  # Pillow's own decoder, then libtiff
def test_sixteen_bit_tiff_round_trip(tmp_path, deflate):
    samples = np.random.default_rng(4).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    source = read_image(h.tiff16(tmp_path / "deep.tif", samples, deflate=deflate))
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
    source = read_image(h.tiff16(tmp_path / "planes.tif", samples, prefix, planar=True, deflate=deflate))
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
    like = h.like(samples[..., 0] if channels == 1 else samples[..., :3], 16, alpha)
    again = read_image(write_image(tmp_path / "out.tif", like.rgb, like))
    assert (again.grey, again.bit_depth) == (channels == 1, 16)
    assert np.array_equal(np.round(again.rgb * 65535).astype(np.uint16), np.round(like.rgb * 65535))
    if alpha is not None:
        assert np.array_equal(again.alpha, alpha)


def test_sixteen_bit_to_jpeg_is_eight_bit_with_a_warning(tmp_path):
    like = h.like(np.full((4, 4, 3), 40000, np.uint16), 16)
    with pytest.warns(imaging.ImageWarning, match="8 bits"):
        out = write_image(tmp_path / "out.jpg", like.rgb, like)
    assert read_image(out).bit_depth == 8
