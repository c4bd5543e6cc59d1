"""Layers and helpers shared by the peer networks (PReNet family, BRN, DRN, SAPNet, VRGNet, ...).

The authors' checkpoints wrap every convolution in an ``nn.Sequential``, so their parameters are
stored as ``<name>.0.weight``; ``seq_conv`` reproduces that layout. The recurrent networks run
their body many times, so the helpers here update tensors in place whenever autograd does not need
the old values (always in inference), which saves a full-size allocation per operation; results
agree with the out-of-place computation up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def recording_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd needs the tensors intact (then in-place updates are not allowed)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def add_relu(t: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``relu(t + skip)``, computed in ``t``'s storage when no gradient is recorded."""
    if recording_grad(t, skip):
        return F.relu(t + skip)
    return t.add_(skip).relu_()


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` in channels-last layout: oneDNN's convolutions run markedly faster on it on CPU."""
    return x.contiguous(memory_format=torch.channels_last)


def conv3(cin: int, cout: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution, stride 1, size-preserving zero padding."""
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=bias)


def seq_conv(cin: int, cout: int) -> nn.Sequential:
    """A 3x3 convolution stored as ``<name>.0`` (the authors' ``nn.Sequential`` wrapper)."""
    return nn.Sequential(conv3(cin, cout))


class ResBlock(nn.Sequential):
    """``relu(relu(conv2(relu(conv0(y)))) + y)``; convs stored as ``.0`` and ``.2``."""

    def __init__(self, channels: int):
        super().__init__(conv3(channels, channels), nn.ReLU(inplace=True),
                         conv3(channels, channels), nn.ReLU(inplace=True))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return add_relu(super().forward(y), y)


class ConvLSTMGates:
    """The four gate convolutions of a convolutional LSTM, applied as one fused convolution.

    The checkpoints store the gates as four separate ``nn.Sequential`` convolutions (``conv_i``,
    ``conv_f``, ``conv_g``, ``conv_o``) that all read the same concatenated input. One convolution
    with the four weight sets stacked computes the same sums in a single pass.
    """

    def __init__(self, conv_i: nn.Sequential, conv_f: nn.Sequential, conv_g: nn.Sequential,
                 conv_o: nn.Sequential):
        # Order i, f, o, g: the three sigmoid gates are contiguous.
        self.convs = [conv_i[0], conv_f[0], conv_o[0], conv_g[0]]

    def step(self, parts: Sequence[torch.Tensor | None], c: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step on ``cat(parts)``; a ``None`` part is an all-zero state (first step).

        ``c`` is the previous cell state (``None``: zeros). Returns the new ``(h, c)``.
        """
        weight = torch.cat([conv.weight for conv in self.convs])
        bias = torch.cat([conv.bias for conv in self.convs])
        width = weight.shape[1] // len(parts)
        present = [k for k, p in enumerate(parts) if p is not None]
        if len(present) < len(parts):  # zero inputs contribute nothing: drop their weights
            weight = torch.cat([weight[:, k * width:(k + 1) * width] for k in present], dim=1)
        z = torch.cat([parts[k] for k in present], dim=1) if len(present) > 1 else parts[present[0]]
        gates = F.conv2d(z, weight, bias, padding=1)
        n = weight.shape[0] // 4
        if recording_grad(gates) or (c is not None and recording_grad(c)):
            sig = torch.sigmoid(gates[:, : 3 * n])
            i, f, o = sig[:, :n], sig[:, n: 2 * n], sig[:, 2 * n:]
            g = torch.tanh(gates[:, 3 * n:])
            c = i * g if c is None else f * c + i * g
            return o * torch.tanh(c), c
        gates[:, : 3 * n].sigmoid_()
        gates[:, 3 * n:].tanh_()
        i, f, o, g = gates[:, :n], gates[:, n: 2 * n], gates[:, 2 * n: 3 * n], gates[:, 3 * n:]
        if c is None:
            c = i * g
        else:
            c = c.mul_(f).addcmul_(i, g)
        return torch.tanh(c).mul_(o), c


def gates_of(module: nn.Module, suffix: str = "") -> ConvLSTMGates:
    """The LSTM gates stored on ``module`` as ``conv_i<suffix>`` ... ``conv_o<suffix>``."""
    return ConvLSTMGates(*(getattr(module, f"conv_{g}{suffix}") for g in "ifgo"))


def drop_keys(state: dict, prefixes: Sequence[str] = (), contains: Sequence[str] = ()) -> dict:
    """``state`` without the keys that start with any of ``prefixes`` or contain any of ``contains``."""
    return {
        k: v for k, v in state.items()
        if not k.startswith(tuple(prefixes)) and not any(s in k for s in contains)
    }
