"""One rounding rule: the written file, the metrics and the comparison images hold the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli.compare import make_comparison
from derain_cli.imaging import DecodedImage, Metadata, read_image, write_image
from derain_cli.metrics import to_uint8
from derain_cli.quantise import quantise

# float32 values just below a half step in float64 (x * 255 = k + 0.49999...) that float32
# arithmetic rounds up to exactly k + 0.5: the writer has always written k + 1 for them, while
# rounding in float64 (the metrics' old rule) gave k.
EDGE_CASES = np.array([0.6098039, 0.53137255, 0.76666665, 0.73137254, 0.6843137], dtype=np.float32)


def _like(height: int, width: int, bit_depth: int = 8) -> DecodedImage:
    return DecodedImage(None, np.zeros((height, width, 3), np.float32), None, bit_depth, False, Metadata())


def test_clamps_and_rounds_halves_up():
    x = np.array([-0.2, 0.0, 1.4 / 255, 1.6 / 255, 0.5, 254.6 / 255, 1.0, 1.3, np.nan, np.inf, -np.inf],
                 dtype=np.float32)
    assert quantise(x).tolist() == [0, 0, 1, 2, 128, 255, 255, 255, 0, 255, 0]
    assert quantise(np.float32([2.5 / 255, 3.5 / 255])).tolist() == [3, 4]  # halves up, not to even
    assert quantise(x, 16)[[4, 6, 8]].tolist() == [32768, 65535, 0]
    assert quantise(x).dtype == np.uint8 and quantise(x, 16).dtype == np.uint16
    with pytest.raises(ValueError, match="8 or 16"):
        quantise(x, 12)


def test_edge_cases_differ_from_rounding_in_float64():
    # what makes them edge cases: the old metrics rule scored other pixels than the file held
    assert (np.rint(EDGE_CASES.astype(np.float64) * 255) != quantise(EDGE_CASES)).all()


@pytest.mark.parametrize("bits", [8, 16])
def test_written_png_holds_exactly_the_quantised_pixels(tmp_path, bits):
    rng = np.random.default_rng(0)
    rgb = rng.random((40, 50, 3), dtype=np.float32)
    rgb.reshape(-1)[: len(EDGE_CASES)] = EDGE_CASES
    rgb[0, 10:13] = (np.nan, -0.5, 1.5)
    out = write_image(tmp_path / "out.png", rgb, like=_like(40, 50, bits))
    if bits == 8:
        with Image.open(out) as img:
            written = np.asarray(img)
    else:
        written = np.round(read_image(out).rgb * 65535).astype(np.uint16)
    assert np.array_equal(written, quantise(rgb, bits))


def test_metrics_and_comparisons_see_the_written_pixels(tmp_path):
    rgb = np.random.default_rng(1).random((30, 40, 3), dtype=np.float32)
    rgb.reshape(-1)[: len(EDGE_CASES)] = EDGE_CASES
    with Image.open(write_image(tmp_path / "out.png", rgb, like=_like(30, 40))) as img:
        written = np.asarray(img)
    assert np.array_equal(to_uint8(rgb), written)
    side = np.asarray(make_comparison(rgb, rgb, "side", labels=None))
    assert np.array_equal(side[:, :40], written)
