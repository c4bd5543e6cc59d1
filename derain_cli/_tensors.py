"""Images between numpy (H x W x C, as decoded) and torch (N x C x H x W, as networks take them).

One place for the layout change, so the engine, the training loop's validation, the evaluation
script and the benchmarks cannot drift apart in how they scale integer pixels or which axis is
which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def to_nchw(array: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """H x W x C image -> 1 x C x H x W float32 tensor (on `device` if given).

    Float input is taken as it is (expected in [0, 1]); uint8 and uint16 input is divided by
    255 or 65535. On the CPU the result is a view of a float32 copy of `array`, not a new copy.
    """
    import torch

    if array.ndim != 3:
        raise ValueError(f"expected an H x W x C image, got shape {array.shape}")
    if array.dtype in (np.uint8, np.uint16):
        array = array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    elif not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"unsupported pixel type {array.dtype} (use uint8, uint16 or float)")
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)[None]
    return tensor if device is None else tensor.to(device)


def to_hwc(tensor: torch.Tensor) -> np.ndarray:
    """1 x C x H x W (or C x H x W) tensor -> contiguous float32 H x W x C numpy array on the CPU.

    Values are not clamped: the caller decides (the engine clamps to [0, 1]).
    """
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise ValueError(f"expected a C x H x W image, got shape {tuple(tensor.shape)}")
    return np.ascontiguousarray(tensor.detach().permute(1, 2, 0).float().cpu().numpy())
