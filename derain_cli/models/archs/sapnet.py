"""SAPNet "Model11" (Zheng et al., WACV 2022): PReNet with dilated residual blocks and channel attention.

Six PReNet stages (conv-LSTM first, output ``+ input``) whose five residual blocks use dilations
1, 2, 4, 8, 16 and a "channel residual attention" after each of their two convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import add_relu, conv3
from .prenet import PReNet


class CRALayer(nn.Module):
    """Channel residual attention: ``x * sigmoid(mlp(pool(x)) + linear(pool(x)))`` per channel."""

    def __init__(self, channels: int, hidden: int = 2):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 1, bias=False))
        self.conv_1_1 = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv_du(p) + self.conv_1_1(p))


class DilatedCRABlock(nn.Sequential):
    """``relu(block(y) + y)`` with block = conv(d), CRA, ReLU, conv(d), CRA, ReLU (stored ``.0`` to ``.5``)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__(conv3(channels, channels, dilation), CRALayer(channels), nn.ReLU(inplace=True),
                         conv3(channels, channels, dilation), CRALayer(channels), nn.ReLU(inplace=True))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return add_relu(super().forward(y), y)


class SAPNet(PReNet):
    """PReNet (LSTM first, ``+ input``) whose residual blocks are dilated CRA blocks."""

    def __init__(self, recurrent_iter: int = 6, dilations: tuple = (1, 2, 4, 8, 16), channels: int = 32):
        if len(dilations) != 5:
            raise ValueError(f"SAPNet needs 5 dilations, got {len(dilations)}")
        self.dilations = tuple(dilations)
        super().__init__(recurrent_iter=recurrent_iter, channels=channels)

    def make_block(self, index: int, channels: int) -> nn.Module:
        return DilatedCRABlock(channels, self.dilations[index - 1])


ARCHITECTURE = Architecture(
    name="sapnet",
    title="SAPNet",
    builder=SAPNet,
    default_config={"recurrent_iter": 6, "dilations": (1, 2, 4, 8, 16)},
    contract=Contract(bytes_per_pixel=1536),
    paper="S. Zheng, C. Lu, Y. Wu, G. Gupta: SAPNet: Segmentation-Aware Progressive Network for "
          "Perceptual Contrastive Deraining. WACV Workshops 2022",
    url="https://github.com/ShenZheng2000/SAPNet-for-image-deraining",
    licence="MIT",
    description="PReNet with dilated residual blocks and channel attention (the released Model11).",
    default_variant="rain100h",
)

MODELS = [
    ModelEntry(
        arch="sapnet", variant="rain100h", trained_on="RainTrainH (1254 pairs)",
        source=WeightSource(
            kind="url", filename="sapnet-rain100h.pth",
            url="https://github.com/ShenZheng2000/SAPNet-for-image-deraining/raw/"
                "47215120e902b02fecd50f7e13309a8e34904bd1/logs/SAPNet/Model11/net_latest.pth",
            sha256="807bb16685280a493236f3e5fa804274198044ad838b5cc060bf66af03a259cb", size=746987),
    ),
]
