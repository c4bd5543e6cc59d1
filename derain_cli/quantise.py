"""Float pixels -> integer pixels: the one rounding rule of the package.

The image writer, the PSNR/SSIM metrics (``metrics.to_uint8``), the comparison images and the
array API all turn float pixels in [0, 1] into integers here, so that ``--gt`` and ``derain bench``
score exactly the 8-bit pixels a lossless output file holds.

The rule is the writer's, which every output ever written by derain followed: clamp to [0, 1]
(NaN -> 0, +inf -> 1), scale by 2**bits - 1, add one half and truncate, i.e. halves round up.
It is computed in the input's own precision (float32 stays float32, as the writer always did),
so the same float array gives the same integers wherever it is quantised.
"""

from __future__ import annotations

import numpy as np

_DTYPES = {8: np.uint8, 16: np.uint16}


def _floats(x) -> np.ndarray:
    """`x` as a float array: float64 stays float64, anything else becomes float32."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


def clamp_unit(x) -> np.ndarray:
    """`x` clamped to [0, 1] with NaN -> 0 (np.clip would keep NaN), in `x`'s float precision."""
    x = _floats(x)
    zero, one = x.dtype.type(0), x.dtype.type(1)
    return np.fmin(np.fmax(x, zero), one)


def quantise(x, bits: int = 8) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8 (`bits` 8) or uint16 (`bits` 16), same shape, contiguous.

    Values are clamped first (NaN -> 0); halves round up: ``floor(x * (2**bits - 1) + 0.5)``.
    """
    if bits not in _DTYPES:
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    x = clamp_unit(x)
    scale = x.dtype.type(2**bits - 1)
    return np.ascontiguousarray((x * scale + x.dtype.type(0.5)).astype(_DTYPES[bits]))
