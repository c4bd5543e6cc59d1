"""The README's Python API: Derainer(...), .derain(image), .derain_file, .derain_folder, .load()."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ExifTags, Image

import derain_cli
from derain_cli.api import Derainer
from derain_cli.engine import Engine


@pytest.fixture
def d(testnet):
    return Derainer(testnet, device="cpu", tile="auto")


def test_derainer_is_importable_from_the_package_and_is_an_engine(d):
    assert derain_cli.Derainer is Derainer
    assert isinstance(d, Engine) and d.name == "testnet:random"
    assert d.load() is d.load()  # loaded once, then reused


def test_readme_example(d, tmp_path):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "RainCam"
    photo.save(tmp_path / "rainy.jpg", exif=exif, quality=95)

    clean = d.derain(photo)
    assert isinstance(clean, Image.Image) and clean.size == photo.size

    result = d.derain_file(tmp_path / "rainy.jpg", tmp_path / "clean.jpg")
    assert result.status == "ok" and (result.width, result.height) == (56, 40)
    with Image.open(tmp_path / "clean.jpg") as img:
        assert img.size == (56, 40) and img.getexif()[ExifTags.Base.Make] == "RainCam"

    (tmp_path / "rainy" / "sub").mkdir(parents=True)
    photo.save(tmp_path / "rainy" / "sub" / "a.png")
    report = d.derain_folder(tmp_path / "rainy", tmp_path / "clean", recursive=True)
    assert report.counts == {"ok": 1, "skipped": 0, "failed": 0}
    assert (tmp_path / "clean" / "sub" / "a.png").is_file()


def test_max_pixels_guards_files(testnet, tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "big.png")
    result = Derainer(testnet, device="cpu", max_pixels=1000).derain_file(tmp_path / "big.png")
    assert result.status == "failed" and "--max-pixels" in result.error
    assert result.error.startswith(str(tmp_path / "big.png"))
    assert not (tmp_path / "big_derained.png").exists()
