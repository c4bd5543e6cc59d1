"""PSNR/SSIM: the papers' MATLAB numbers (shared/reference/metrics) and basic properties."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from derain_cli.metrics import CONVENTIONS, psnr, score, ssim, to_uint8
from derain_cli.quantise import quantise
from tests.conftest import SHARED, shared_path

REFERENCE = ("reference", "metrics")
# Column names in expected.csv for each convention.
COLUMNS = {"restormer": ("psnr_restormer", "ssim_restormer"), "rcdnet": ("psnr_did", "ssim_did")}


def _reference_names() -> list[str]:
    """Names of the `*_out.png` rows (read at collection time; empty when shared/ is absent)."""
    table = SHARED.joinpath(*REFERENCE, "expected.csv")
    if not table.exists():
        return ["(reference missing)"]
    with open(table, newline="") as f:
        return [row["name"] for row in csv.DictReader(f)]


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("name", _reference_names())
def test_matches_matlab_reference(name, convention):
    table = shared_path(*REFERENCE, "expected.csv")
    with open(table, newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["name"] == name)
    pairs = shared_path(*REFERENCE, "pairs")
    out = _load(pairs / name)
    gt = _load(pairs / name.replace("_out.png", "_gt.png"))
    p, s = score(out, gt, convention)
    psnr_col, ssim_col = COLUMNS[convention]
    assert p == pytest.approx(float(row[psnr_col]), abs=1e-4)
    assert s == pytest.approx(float(row[ssim_col]), abs=1e-5)
    assert psnr(out, gt, convention) == p


def _pair(h=64, w=80, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    noise = rng.integers(-12, 13, (h, w, 3))
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_identical_images_give_inf_and_one(convention):
    a, _ = _pair()
    p, s = score(a, a.copy(), convention)
    assert math.isinf(p) and p > 0
    assert s == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_symmetric_and_worse_for_more_noise(convention):
    a, b = _pair()
    assert psnr(a, b, convention) == pytest.approx(psnr(b, a, convention), abs=1e-12)
    assert ssim(a, b, convention) == pytest.approx(ssim(b, a, convention), abs=1e-12)
    _, c = _pair(seed=1)
    noisier = np.clip(b.astype(int) + (c.astype(int) - 128) // 4, 0, 255).astype(np.uint8)
    assert psnr(a, noisier, convention) < psnr(a, b, convention)
    assert ssim(a, noisier, convention) < ssim(a, b, convention)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_score_is_psnr_and_ssim(convention):
    a, b = _pair(300, 520)
    assert score(a, b, convention) == (psnr(a, b, convention), ssim(a, b, convention))


def test_psnr_value_by_hand():
    a = np.full((32, 32), 100, dtype=np.uint8)
    b = a.copy()
    b[:16] = 110  # half the pixels off by 10: mse 50
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 50))
    assert psnr(a, b, "rcdnet") == pytest.approx(10 * math.log10(1 / (50 / 255**2)))


def test_rcdnet_downsamples_before_ssim():
    # A smooth image plus a +-10 checkerboard: rcdnet's 2x2 box average (round(520/256) = 2)
    # cancels the checkerboard exactly, so its SSIM is 1; restormer sees the full pattern.
    yy, xx = np.mgrid[0:520, 0:600]
    smooth = (60 + 130 * (yy + xx) / (520 + 600)).astype(np.uint8)
    a = np.repeat(smooth[..., None], 3, axis=2)
    checker = np.where((yy + xx) % 2 == 0, 10, -10)[..., None]
    b = (a.astype(int) + checker).astype(np.uint8)
    assert ssim(a, b, "rcdnet") == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b, "restormer") < 0.9
    assert psnr(a, b, "restormer") != pytest.approx(psnr(a, b, "rcdnet"), abs=0.01)  # rounded vs unrounded Y


def test_grey_input_is_its_own_luma():
    a, b = _pair()
    ga, gb = a[..., 1], b[..., 1]
    grey = score(ga, gb)
    assert grey == score(ga[..., None], gb[..., None])
    mse = np.mean((ga.astype(float) - gb.astype(float)) ** 2)
    assert grey[0] == pytest.approx(10 * math.log10(255**2 / mse))
    # Grey repeated into RGB gives the same Y up to MATLAB's 16..235 luma scaling.
    rgb_a, rgb_b = np.repeat(ga[..., None], 3, axis=2), np.repeat(gb[..., None], 3, axis=2)
    assert psnr(rgb_a, rgb_b, "rcdnet") == pytest.approx(grey[0] - 20 * math.log10(219 / 255), abs=1e-9)


def test_size_mismatch_names_both_sizes():
    a, _ = _pair(64, 80)
    b, _ = _pair(64, 81)
    with pytest.raises(ValueError, match="80x64 and 81x64"):
        score(a, b)
    with pytest.raises(ValueError, match="channels"):
        psnr(a, a[..., 0])


def test_unknown_convention_lists_known():
    a, b = _pair()
    with pytest.raises(ValueError, match="restormer, rcdnet"):
        psnr(a, b, "matlab")


def test_rejects_float_input_and_tiny_images():
    a, b = _pair()
    with pytest.raises(ValueError, match="to_uint8"):
        ssim(a / 255.0, b)
    with pytest.raises(ValueError, match="too small"):
        ssim(a[:10, :10], b[:10, :10])


def test_to_uint8_rounds_and_clips_as_the_writer_does():
    x = np.array([-0.2, 0.0, 1.4 / 255, 1.6 / 255, 0.5, 254.6 / 255, 1.0, 1.3, np.nan], dtype=np.float32)
    assert to_uint8(x).tolist() == [0, 0, 1, 2, 128, 255, 255, 255, 0]
    assert to_uint8(x).dtype == np.uint8
    rgb = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    assert np.array_equal(to_uint8(rgb), quantise(rgb, 8))  # the written file's pixels (tests/test_quantise.py)
