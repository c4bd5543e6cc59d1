"""Recurrent cells: the fused ConvLSTM gates of the PReNet family and the ConvGRU of DCSFN.

Both cells keep the authors' parameter names (one ``nn.Conv2d`` per gate) so that checkpoints load
unchanged; the LSTM computes its four gates as one convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .conv import layer_of, recording_grad


def _wrapped_conv(seq: nn.Sequential) -> nn.Conv2d:
    """The convolution inside one of the checkpoints' ``nn.Sequential`` wrappers."""
    return layer_of(seq, 0, nn.Conv2d)


class ConvLSTMGates:
    """The four gate convolutions of a convolutional LSTM, applied as one fused convolution.

    The checkpoints store the gates as four separate ``nn.Sequential`` convolutions (``conv_i``,
    ``conv_f``, ``conv_g``, ``conv_o``) that all read the same concatenated input. One convolution
    with the four weight sets stacked computes the same sums in a single pass.
    """

    def __init__(self, conv_i: nn.Sequential, conv_f: nn.Sequential, conv_g: nn.Sequential,
                 conv_o: nn.Sequential):
        # Order i, f, o, g: the three sigmoid gates are contiguous.
        self.convs = [_wrapped_conv(seq) for seq in (conv_i, conv_f, conv_o, conv_g)]

    def step(self, parts: Sequence[torch.Tensor | None], c: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step on ``cat(parts)``; a ``None`` part is an all-zero state (first step).

        ``c`` is the previous cell state (``None``: zeros). Returns the new ``(h, c)``.
        """
        weight = torch.cat([conv.weight for conv in self.convs])
        bias = torch.cat([conv.bias for conv in self.convs if conv.bias is not None])
        width = weight.shape[1] // len(parts)
        present = [k for k, p in enumerate(parts) if p is not None]
        if len(present) < len(parts):  # zero inputs contribute nothing: drop their weights
            weight = torch.cat([weight[:, k * width:(k + 1) * width] for k in present], dim=1)
        inputs = [p for p in parts if p is not None]
        z = torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0]
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


class ConvGRU(nn.Module):
    """Convolutional GRU cell (3x3 convs); the new state, after LeakyReLU(0.2), is also the output."""

    def __init__(self, channel: int):
        super().__init__()
        self.conv_xz = nn.Conv2d(channel, channel, 3, padding=1)
        self.conv_xr = nn.Conv2d(channel, channel, 3, padding=1)
        self.conv_xn = nn.Conv2d(channel, channel, 3, padding=1)
        self.conv_hz = nn.Conv2d(channel, channel, 3, padding=1)
        self.conv_hr = nn.Conv2d(channel, channel, 3, padding=1)
        self.conv_hn = nn.Conv2d(channel, channel, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            # Without a state only conv_xz and conv_xn are used (the others still hold weights).
            h = torch.sigmoid(self.conv_xz(x)) * torch.tanh(self.conv_xn(x))
        else:
            z = torch.sigmoid(self.conv_xz(x) + self.conv_hz(h))
            r = torch.sigmoid(self.conv_xr(x) + self.conv_hr(h))
            n = torch.tanh(self.conv_xn(x) + self.conv_hn(r * h))
            h = (1 - z) * h + z * n
        return F.leaky_relu(h, 0.2)
