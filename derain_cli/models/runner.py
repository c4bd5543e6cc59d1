"""Run a network under its input contract on the product's images.

The product's images are float tensors N x 3 x H x W, RGB, in [0, 1]. ``ModelRunner`` converts such
a tensor into what the authors' forward expects (channel order, value range, padding to the size
multiple), picks the result out of the forward's return value, and converts it back (crop, range,
channel order). It does not clamp: the caller clamps once at the end, after tiles are blended.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import Contract


def pad_to_multiple(x: torch.Tensor, contract: Contract) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad H and W up to the contract's size multiple and minimum size; return (padded, (l, r, t, b))."""
    h, w = x.shape[-2:]
    m = max(1, contract.size_multiple)
    th = max(-(-h // m) * m, -(-contract.min_size // m) * m)
    tw = max(-(-w // m) * m, -(-contract.min_size // m) * m)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x, (0, 0, 0, 0)
    symmetric = contract.pad_where == "symmetric"
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2) if symmetric else (0, pw, 0, ph)
    mode = contract.pad_mode
    if mode == "constant":
        return F.pad(x, pad, mode="constant", value=0.0), pad
    if mode == "reflect" and (ph >= h or pw >= w):
        # reflect padding cannot exceed the image; fall back to replicate for tiny images
        mode = "replicate"
    return F.pad(x, pad, mode=mode), pad


def select_output(outputs, contract: Contract, model_input: torch.Tensor) -> torch.Tensor:
    sel = contract.output
    if callable(sel):
        return sel(outputs, model_input)
    if sel is None:
        if isinstance(outputs, (tuple, list)):
            return outputs[0]
        return outputs
    return outputs[sel]


class ModelRunner:
    """Callable: RGB [0,1] tensor -> RGB [0,1]-scale tensor (unclamped), same size."""

    def __init__(self, module: torch.nn.Module, contract: Contract, dtype: torch.dtype = torch.float32):
        self.module = module
        self.contract = contract
        self.dtype = dtype

    @property
    def device(self) -> torch.device:
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        c = self.contract
        if c.channels == "BGR":
            x = x.flip(1)
        lo, hi = c.value_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        return x

    def from_model_space(self, y: torch.Tensor) -> torch.Tensor:
        c = self.contract
        lo, hi = c.value_range
        if (lo, hi) != (0.0, 1.0):
            y = (y - lo) / (hi - lo)
        if c.channels == "BGR":
            y = y.flip(1)
        return y

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        device = self.device
        z = self.to_model_space(x.to(device=device, dtype=torch.float32))
        z, (left, _right, top, _bottom) = pad_to_multiple(z, self.contract)
        if self.dtype != torch.float32 and device.type in ("cuda", "mps"):
            with torch.autocast(device_type=device.type, dtype=self.dtype):
                outputs = self.module(z)
        else:
            outputs = self.module(z)
        y = select_output(outputs, self.contract, z).float()
        y = y[..., top : top + h, left : left + w]
        return self.from_model_space(y)
