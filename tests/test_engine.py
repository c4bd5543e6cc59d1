"""The engine: arrays and PIL images in, the same kind out, at the input's precision."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli.engine import Engine
from derain_cli.errors import UsageError
from derain_cli.pipeline import derain_file
from derain_cli.quantise import quantise


@pytest.fixture
def engine(testnet):
    return Engine(testnet, device="cpu", threads=1)


def _gradient16(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth 16-bit colour ramp: thousands of levels, far more than 8 bits hold."""
    y, x = np.mgrid[0:height, 0:width] / np.array([[[height - 1]], [[width - 1]]])
    return np.round(np.stack([x, y, (x + y) / 2], axis=2) * 60000 + 2000).astype(np.uint16)


def test_uint16_array_comes_back_at_sixteen_bit_precision(engine):
    pixels = _gradient16()
    out = engine.derain(pixels)
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    # exactly the model's float output, quantised to 16 bits: no 8-bit step on the way
    assert np.array_equal(out, quantise(engine.derain_rgb(pixels / np.float32(65535)), 16))
    assert len(np.unique(out)) > 2000
    assert np.count_nonzero(out % 257) > out.size // 2  # not 8-bit values scaled up


def test_rain_free_flat_image_stays_within_a_level():
    # The built-in model on a flat grey with no rain, as uint16 and as uint8: within one 8-bit
    # level everywhere but the outermost 4 pixels (padding), and a fraction of a level on average.
    engine = Engine(None, device="cpu", threads=1)
    for pixels, level in ((np.full((96, 128, 3), 32768, np.uint16), 257), (np.full((96, 128), 90, np.uint8), 1)):
        out = engine.derain(pixels)
        assert out.dtype == pixels.dtype and out.shape == pixels.shape
        change = np.abs(out.astype(np.float64) - pixels) / level
        assert change[4:-4, 4:-4].max() <= 1.0
        assert change.mean() < 0.25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_arrays_stay_float_in_the_unit_range(engine, dtype):
    rgb = np.random.default_rng(1).random((21, 30, 3)).astype(dtype)
    out = engine.derain(rgb)
    assert out.dtype == dtype and out.shape == rgb.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, engine.derain_rgb(rgb.astype(np.float32)).astype(dtype))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_pil_image_keeps_its_mode_size_and_alpha(engine, tmp_path, mode):
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    image = Image.fromarray(colour).convert(mode[0] if mode in ("L", "LA") else "RGB")
    if mode.endswith("A"):
        image.putalpha(Image.fromarray(alpha))
    out = engine.derain(image)
    assert (out.mode, out.size) == (mode, (53, 37))
    if mode.endswith("A"):
        assert np.array_equal(np.asarray(out.getchannel("A")), alpha)
    # the same pixels as the file the pipeline writes for that image
    image.save(tmp_path / "in.png")
    result = derain_file(engine, tmp_path / "in.png", tmp_path / "out.png")
    assert result.status == "ok"
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == mode and np.array_equal(np.asarray(written), np.asarray(out))
    assert not np.array_equal(np.asarray(out), np.asarray(image))  # the model did change it


def test_grey_array_stays_grey(engine):
    grey = (np.random.default_rng(3).random((20, 24)) * 255).astype(np.uint8)
    out = engine.derain(grey)
    assert out.shape == (20, 24) and out.dtype == np.uint8


def test_tiled_matches_whole_for_conv_model(testnet):
    rng = np.random.default_rng(2)
    rgb = rng.random((300, 260, 3)).astype(np.float32)
    whole = Engine(testnet, device="cpu", tile=0).derain_rgb(rgb)
    tiled = Engine(testnet, device="cpu", tile=128, tile_overlap=16).derain_rgb(rgb)
    mse = float(((whole - tiled) ** 2).mean())
    assert mse == 0 or 10 * np.log10(1 / mse) >= 50


def test_bad_inputs_and_settings(engine, testnet):
    with pytest.raises(UsageError, match="tile"):
        Engine(testnet, tile="big")
    with pytest.raises(UsageError, match="--tile must be"):
        Engine(testnet, tile=-3)
    with pytest.raises(UsageError, match="--tile-overlap"):
        Engine(testnet, tile_overlap=-1)
    with pytest.raises(UsageError, match="H x W x 3 or H x W"):
        engine.derain(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(UsageError, match="int32"):
        engine.derain(np.zeros((8, 8, 3), np.int32))
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        engine.derain([[0.5]])


def test_derain_rgb_reports_the_tile_used(testnet):
    engine = Engine(testnet, device="cpu", tile=64)
    out = engine.derain_rgb(np.random.default_rng(4).random((100, 90, 3), dtype=np.float32))
    assert out.shape == (100, 90, 3) and engine.last_tile == 64
    assert Engine(testnet, device="cpu", tile=0).tile_for(100, 90) is None
