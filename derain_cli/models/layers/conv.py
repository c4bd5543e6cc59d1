"""Convolutions and residual blocks shared by the peer networks (PReNet family, BRN, DRN, SAPNet, ...).

The authors' checkpoints wrap every convolution in an ``nn.Sequential``, so their parameters are
stored as ``<name>.0.weight``; ``seq_conv`` reproduces that layout. The recurrent networks run
their body many times, so the helpers here update tensors in place whenever autograd does not need
the old values (always in inference), which saves a full-size allocation per operation; results
agree with the out-of-place computation up to float rounding.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def layer_of(container: nn.Sequential | nn.ModuleList, index: int, kind: type[ModuleT]) -> ModuleT:
    """Layer ``index`` of ``container``, checked to be the ``kind`` the network built there.

    Containers hand out plain ``nn.Module``s; the blocks that read a layer's weights directly
    (fused or matrix-product forms) need its real type, and a changed layout fails here by name.
    """
    module = container[index]
    if not isinstance(module, kind):
        raise TypeError(f"layer {index} is a {type(module).__name__}, expected {kind.__name__}")
    return module


def bias_of(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of a convolution built with one (``nn.Conv2d`` types its bias as optional)."""
    if conv.bias is None:
        raise ValueError("this convolution was built without a bias")
    return conv.bias


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
