"""HWC numpy images <-> NCHW torch tensors: one conversion for the engine, training and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from derain_cli._tensors import to_hwc, to_nchw


def test_round_trip_is_exact_and_channels_go_first():
    rgb = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    x = to_nchw(rgb)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    assert torch.equal(x[0, 2], torch.from_numpy(rgb[..., 2]))  # blue plane
    back = to_hwc(x)
    assert back.flags.c_contiguous and np.array_equal(back, rgb)


@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255), (np.uint16, 65535)])
def test_integer_pixels_are_scaled_to_the_unit_range(dtype, top):
    pixels = np.array([[[0, top // 2, top]]], dtype=dtype)
    x = to_nchw(pixels)
    assert x.dtype == torch.float32
    assert x.flatten().tolist() == pytest.approx([0.0, (top // 2) / top, 1.0])


def test_float64_becomes_float32_and_device_is_honoured():
    x = to_nchw(np.full((2, 3, 3), 0.25), device="cpu")
    assert x.dtype == torch.float32 and x.device.type == "cpu" and float(x.max()) == 0.25


def test_refuses_what_is_not_one_image():
    with pytest.raises(ValueError, match="H x W x C"):
        to_nchw(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="int32"):
        to_nchw(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError, match="batch of 2"):
        to_hwc(torch.zeros(2, 3, 4, 4))
    assert to_hwc(torch.zeros(3, 4, 5)).shape == (4, 5, 3)
