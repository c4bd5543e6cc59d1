"""PSNR and SSIM computed exactly as the deraining papers' MATLAB evaluation scripts compute them.

Two conventions are in use in the literature and give different numbers for the same images:

``restormer`` (default)
    The luma Y of MATLAB's ``rgb2ycbcr`` on uint8 RGB, rounded to integers as MATLAB rounds when it
    returns uint8 (half away from zero); PSNR with peak 255; SSIM with an 11x11 Gaussian window
    (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, only windows that fit inside the image ('valid'),
    no downsampling. Used for Rain200L/H, Rain100L and SPA-Data.
``rcdnet``
    The unrounded Y scaled to [0, 1]; PSNR with peak 1; SSIM as MATLAB's ``ssim_index`` with its
    automatic downsampling: with f = max(1, round(min(H, W) / 256)), each image is first
    averaged with an f x f box filter (symmetric borders, MATLAB's anchor for even f) and then
    every f-th row and column from the first is kept; then the Gaussian SSIM above with L = 1.
    Used for DID-Data and DDN-Data.

Inputs are uint8 arrays, H x W x 3 RGB or H x W grey (grey is used as Y directly). Float images
(model outputs) are turned into 8 bits with ``to_uint8`` first, as the papers save their outputs as
8-bit images before scoring; ``to_uint8`` rounds as derain's image writer does (``quantise``), so
the pixels scored are those an 8-bit PNG output holds. Identical images have PSNR = inf (the mean
squared error is 0).

``rgb2ycbcr``'s rounding is done in exact integer arithmetic; MATLAB/Octave round in floating
point, so a pixel whose Y is exactly half-way between two integers may round the other way there.
Against values printed by the papers' scripts this leaves differences below 1e-5 dB.
"""

from __future__ import annotations

import operator
from functools import reduce

import numpy as np
from scipy.ndimage import correlate1d

from .quantise import quantise

CONVENTIONS = ("restormer", "rcdnet")

# ITU-R BT.601 luma as MATLAB's rgb2ycbcr states it, times 1000 so that it is an integer.
_Y_WEIGHTS_1000 = (65481, 128553, 24966)

_WINDOW = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _gaussian_1d(size: int = _WINDOW, sigma: float = _SIGMA) -> np.ndarray:
    """1-D factor of MATLAB's fspecial('gaussian', size, sigma) (whose 2-D form is separable)."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


_GAUSS = _gaussian_1d()


def to_uint8(x) -> np.ndarray:
    """Float image in [0, 1] -> uint8, exactly as the image writer quantises: clamp to [0, 1]
    (NaN -> 0), then floor(x * 255 + 0.5), in the input's float precision.

    So a score is computed on the very pixels an 8-bit lossless output file holds.
    """
    return quantise(x, 8)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; known: {', '.join(CONVENTIONS)}")


def _size(img: np.ndarray) -> str:
    return f"{img.shape[1]}x{img.shape[0]}"


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for name, img in (("first", a), ("second", b)):
        if img.dtype != np.uint8:
            raise ValueError(f"{name} image is {img.dtype}, expected uint8 (convert floats with to_uint8)")
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3))):
            raise ValueError(f"{name} image has shape {img.shape}, expected H x W x 3 (RGB) or H x W (grey)")
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"images differ in size: {_size(a)} and {_size(b)} (width x height)")
    if a.shape != b.shape:
        raise ValueError(f"images differ in channels: shapes {a.shape} and {b.shape}")
    return a, b


def _luma(img: np.ndarray, convention: str) -> np.ndarray:
    """The Y channel as float64: integer-valued 0..255 ('restormer') or unrounded in [0, 1] ('rcdnet')."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        y = img.astype(np.float64)
        return y if convention == "restormer" else y / 255.0
    wr, wg, wb = (np.int32(w) for w in _Y_WEIGHTS_1000)
    # 255000 * Y = 16 * 255000 + 65481 R + 128553 G + 24966 B, exactly (< 2**31) in int32.
    num = img[..., 0] * wr
    num += img[..., 1] * wg
    num += img[..., 2] * wb
    num += 16 * 255000
    if convention == "restormer":
        num *= 2
        num += 255000
        return (num // 510000).astype(np.float64)  # round half up (Y > 0), as MATLAB does
    return num / (255000.0 * 255.0)


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Correlate with the 11x11 Gaussian and keep the 'valid' part (MATLAB filter2(w, x, 'valid'))."""
    r = _WINDOW // 2
    y = correlate1d(x, _GAUSS, axis=0, mode="constant")[r:-r]
    return correlate1d(y, _GAUSS, axis=1, mode="constant")[:, r:-r]


def _downsample(x: np.ndarray) -> np.ndarray:
    """ssim_index's automatic downsampling: f x f box average (symmetric borders), then x[::f, ::f].

    MATLAB anchors an even-sized filter at element floor((f + 1) / 2), so the box for output pixel
    i spans input pixels i - (c - 1) ... i + (f - c) with c = floor((f + 1) / 2) (1-based).
    """
    f = max(1, int(np.floor(min(x.shape) / 256 + 0.5)))  # MATLAB round: half away from zero
    if f == 1:
        return x
    c = (f + 1) // 2
    p = np.pad(x, ((c - 1, f - c), (c - 1, f - c)), mode="symmetric")
    n_rows, n_cols = -(-x.shape[0] // f), -(-x.shape[1] // f)
    # Sums of f >= 2 strided views, added in order (reduce: the result is typed as an array).
    rows = reduce(operator.add, (p[k : k + (n_rows - 1) * f + 1 : f] for k in range(f)))
    out = reduce(operator.add, (rows[:, k : k + (n_cols - 1) * f + 1 : f] for k in range(f)))
    return out / (f * f)


def _ssim_gauss(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    if min(a.shape) < _WINDOW:
        raise ValueError(f"image too small for SSIM: {a.shape[1]}x{a.shape[0]} after downsampling, "
                         f"needs at least {_WINDOW}x{_WINDOW}")
    c1, c2 = (_K1 * peak) ** 2, (_K2 * peak) ** 2
    mu_a, mu_b = _filter_valid(a), _filter_valid(b)
    mu_ab, mu_aa, mu_bb = mu_a * mu_b, mu_a * mu_a, mu_b * mu_b
    del mu_a, mu_b
    covariance_term = 2 * (_filter_valid(a * b) - mu_ab) + c2
    variance_term = _filter_valid(a * a) + _filter_valid(b * b) - mu_aa - mu_bb + c2
    ssim_map = (2 * mu_ab + c1) * covariance_term / ((mu_aa + mu_bb + c1) * variance_term)
    return float(ssim_map.mean())


def _peak(convention: str) -> float:
    return 255.0 if convention == "restormer" else 1.0


def _psnr_luma(ya: np.ndarray, yb: np.ndarray, convention: str) -> float:
    mse = float(np.mean((ya - yb) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(_peak(convention) ** 2 / mse))


def _ssim_luma(ya: np.ndarray, yb: np.ndarray, convention: str) -> float:
    if convention == "rcdnet":
        ya, yb = _downsample(ya), _downsample(yb)
    return _ssim_gauss(ya, yb, _peak(convention))


def psnr(a, b, convention: str = "restormer") -> float:
    """PSNR in dB of two uint8 images under ``convention``; inf for identical images. Symmetric."""
    _check_convention(convention)
    a, b = _check_pair(a, b)
    return _psnr_luma(_luma(a, convention), _luma(b, convention), convention)


def ssim(a, b, convention: str = "restormer") -> float:
    """Mean SSIM of two uint8 images under ``convention`` (1.0 for identical images). Symmetric."""
    _check_convention(convention)
    a, b = _check_pair(a, b)
    return _ssim_luma(_luma(a, convention), _luma(b, convention), convention)


def score(a, b, convention: str = "restormer") -> tuple[float, float]:
    """(PSNR, SSIM) of two uint8 images under ``convention``, converting to Y only once."""
    _check_convention(convention)
    a, b = _check_pair(a, b)
    ya, yb = _luma(a, convention), _luma(b, convention)
    return _psnr_luma(ya, yb, convention), _ssim_luma(ya, yb, convention)
