"""Conversions between the product's images and a network's input contract.

The product's images are float tensors N x 3 x H x W, RGB, in [0, 1] (a video model's clips:
N x 3 x T x H x W, every frame padded and cropped alike). A network may want BGR,
another value range, or H and W padded to a multiple; its forward may return several tensors.
``product_forward`` converts a product image into what the authors' forward expects, picks the
result out of the forward's return value, and converts it back (crop, range, channel order). It
does not clamp: the caller clamps once at the end, after tiles are blended.

``LoadedModel`` (in ``_loading``) calls ``product_forward`` for inference and for training, so the
two cannot drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._contract import Contract


def to_model_space(x: torch.Tensor, contract: Contract) -> torch.Tensor:
    """RGB in [0, 1] -> the contract's channel order and value range."""
    if contract.channels == "BGR":
        x = x.flip(1)
    lo, hi = contract.value_range
    if (lo, hi) != (0.0, 1.0):
        x = x * (hi - lo) + lo
    return x


def from_model_space(y: torch.Tensor, contract: Contract) -> torch.Tensor:
    """The contract's channel order and value range -> RGB on the [0, 1] scale."""
    lo, hi = contract.value_range
    if (lo, hi) != (0.0, 1.0):
        y = (y - lo) / (hi - lo)
    if contract.channels == "BGR":
        y = y.flip(1)
    return y


def pad_to_multiple(x: torch.Tensor, contract: Contract) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad H and W up to the contract's size multiple and minimum size; return (padded, (l, r, t, b)).

    ``x`` is N x C x H x W, or a clip N x C x T x H x W whose frames are padded alike.
    """
    if x.dim() == 5:  # fold the frames into the channels: F.pad pads the last two axes of a 4-d tensor
        n, c, t = x.shape[:3]
        padded, pad = pad_to_multiple(x.reshape(n, c * t, *x.shape[-2:]), contract)
        return padded.reshape(n, c, t, *padded.shape[-2:]), pad
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
    """The derained image among a forward's outputs (``contract.output`` says which)."""
    sel = contract.output
    if callable(sel):
        return sel(outputs, model_input)
    if sel is None:
        if isinstance(outputs, (tuple, list)):
            return outputs[0]
        return outputs
    return outputs[sel]


def product_forward(module: torch.nn.Module, contract: Contract, x: torch.Tensor, *,
                    autocast: torch.dtype | None = None, float_result: bool = False) -> torch.Tensor:
    """``module`` applied to product image ``x`` under ``contract``: RGB [0, 1] in, RGB [0, 1]-scale
    out (unclamped), same size. Differentiable.

    ``autocast``: run the forward under autocast to that dtype on ``x``'s device. ``float_result``:
    the selected output is cast to float32 before it is cropped and converted back (inference
    hands float32 to the tiler; training keeps autocast's dtype for the loss to decide).
    """
    h, w = x.shape[-2:]
    z, (left, _right, top, _bottom) = pad_to_multiple(to_model_space(x, contract), contract)
    if autocast is not None:
        with torch.autocast(device_type=z.device.type, dtype=autocast):
            outputs = module(z)
    else:
        outputs = module(z)
    y = select_output(outputs, contract, z)
    if float_result:
        y = y.float()
    return from_model_space(y[..., top : top + h, left : left + w], contract)
