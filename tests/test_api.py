"""The Python API: images and arrays in, the same kind out; files and folders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from derain_cli.api import Derainer, default_output_path, iter_images
from derain_cli.errors import UsageError


@pytest.fixture
def d(testnet):
    return Derainer(testnet, device="cpu", threads=1)


def test_pil_in_pil_out(d):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    out = d.derain(img)
    assert isinstance(out, Image.Image) and out.size == (53, 37) and out.mode == "RGB"
    assert np.abs(np.asarray(out).astype(int) - np.asarray(img)).max() > 0  # the model did something


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)])
def test_arrays_keep_dtype_and_shape(d, dtype, scale):
    rng = np.random.default_rng(1)
    arr = (rng.random((21, 30, 3)) * scale).astype(dtype)
    out = d.derain(arr)
    assert out.dtype == dtype and out.shape == arr.shape
    grey = d.derain(arr[..., 0])
    assert grey.shape == (21, 30)


def test_tiled_matches_whole_for_conv_model(testnet):
    rng = np.random.default_rng(2)
    rgb = rng.random((300, 260, 3)).astype(np.float32)
    whole = Derainer(testnet, device="cpu", tile=0).derain_rgb(rgb)
    tiled = Derainer(testnet, device="cpu", tile=128, tile_overlap=16).derain_rgb(rgb)
    mse = float(((whole - tiled) ** 2).mean())
    assert mse == 0 or 10 * np.log10(1 / mse) >= 50


def test_output_naming_and_refusal(d, tmp_path):
    src = tmp_path / "x.jpg"
    assert default_output_path(src) == tmp_path / "x_derained.jpg"
    assert default_output_path(src, fmt="png") == tmp_path / "x_derained.png"
    Image.new("RGB", (8, 8)).save(src)
    with pytest.raises(UsageError):
        d.derain_file(src, src, overwrite=True)


def test_bad_tile_values(testnet):
    with pytest.raises(UsageError):
        Derainer(testnet, tile="big")
    with pytest.raises(UsageError):
        Derainer(testnet, tile=-3)


def test_folder_skips_hidden_and_own_outputs(d, tmp_path):
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in iter_images(tmp_path)] == ["b.png"]
    report = d.derain_folder(tmp_path, tmp_path / "out", recursive=True)
    assert report.counts == {"ok": 1, "skipped": 0, "failed": 0}
    again = d.derain_folder(tmp_path, tmp_path / "out", recursive=True)
    assert again.counts == {"ok": 0, "skipped": 1, "failed": 0}
