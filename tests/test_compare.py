"""Before/after comparison images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli.compare import DIVIDER, GAP, make_comparison, write_comparison
from derain_cli.errors import UsageError
from derain_cli.imaging import read_image
from derain_cli.quantise import quantise
from tests.conftest import shared_path


def _pair(height: int = 60, width: int = 90) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    before = rng.random((height, width, 3), dtype=np.float32)
    return before, 1.0 - before


def _bytes(rgb: np.ndarray) -> np.ndarray:
    """The 8-bit pixels a written output holds for `rgb`."""
    return quantise(rgb, 8)


def test_side_by_side_size_and_panels():
    before, after = _pair()
    result = make_comparison(before, after, "side", labels=None)
    assert (result.mode, result.size) == ("RGB", (2 * 90 + GAP, 60))
    pixels = np.asarray(result)
    assert np.array_equal(pixels[:, :90], _bytes(before))
    assert np.array_equal(pixels[:, 90 + GAP :], _bytes(after))
    assert len(np.unique(pixels[:, 90 : 90 + GAP].reshape(-1, 3), axis=0)) == 1  # a plain gap


def test_split_left_half_is_the_input_right_half_the_output():
    before, after = _pair()
    result = make_comparison(before, after, "split", labels=None)
    assert result.size == (90, 60)
    pixels = np.asarray(result)
    middle = 45
    left, right = middle - DIVIDER // 2, middle - DIVIDER // 2 + DIVIDER
    assert np.array_equal(pixels[:, :left], _bytes(before)[:, :left])
    assert np.array_equal(pixels[:, right:], _bytes(after)[:, right:])
    divider = pixels[:, left:right]
    assert divider.shape[1] == 2 and np.all(divider >= 200)  # a thin light line


@pytest.mark.parametrize("mode", ["side", "split"])
def test_large_images_are_scaled_to_max_side(mode):
    before, after = _pair(300, 1000)
    result = make_comparison(before, after, mode, max_side=256)
    assert max(result.size) <= 256
    expected_width = 256 if mode == "split" else 2 * ((256 - GAP) // 2) + GAP
    assert abs(result.size[0] - expected_width) <= 1
    panel_width = result.size[0] if mode == "split" else (result.size[0] - GAP) // 2
    assert abs(result.size[1] / panel_width - 300 / 1000) < 0.02  # aspect ratio kept


def test_small_images_are_not_enlarged():
    before, after = _pair(20, 30)
    assert make_comparison(before, after, "split", max_side=2048).size == (30, 20)


def test_labels_are_drawn_on_a_dark_box():
    before = np.full((200, 300, 3), 0.5, np.float32)
    plain = np.asarray(make_comparison(before, before, "side", labels=None))
    labelled = np.asarray(make_comparison(before, before, "side"))
    changed = np.any(plain != labelled, axis=2)
    assert changed[:40, :150].any() and changed[:40, 300 + GAP :].any()  # one label per panel
    assert not changed[100:].any()  # only the top corners
    assert (labelled[:40, :150] < 40).all(axis=2).any()  # the dark box
    assert (labelled[:40, :150] > 200).all(axis=2).any()  # the light text


def test_bad_arguments():
    before, after = _pair()
    with pytest.raises(UsageError, match="unknown comparison mode 'blend'"):
        make_comparison(before, after, "blend")
    with pytest.raises(ValueError, match="same"):
        make_comparison(before, after[:10], "side")


@pytest.mark.parametrize(("name", "fmt"), [("cmp.jpg", "JPEG"), ("cmp.png", "PNG")])
def test_write_comparison(tmp_path, name, fmt):
    before, after = _pair()
    out = write_comparison(tmp_path / name, before, after, "side")
    with Image.open(out) as img:
        assert (img.format, img.size) == (fmt, (2 * 90 + GAP, 60))
    assert [p.name for p in tmp_path.iterdir()] == [name]
    with pytest.raises(UsageError, match=r"cmp\.gif: a comparison image must be a \.jpg or \.png file"):
        write_comparison(tmp_path / "cmp.gif", before, after, "side")


def test_real_photo_comparison_is_capped(tmp_path):
    photo = read_image(shared_path("data", "real", "heavyrain", "im_0035.png"))  # 2560 x 1280
    out = write_comparison(tmp_path / "cmp.jpg", photo.rgb, photo.rgb, "side", max_side=1024)
    with Image.open(out) as img:
        assert max(img.size) <= 1024 and img.size[1] >= 250
