"""DRN, the deep recursive network of csdwren/DRN (inter=7 stages, intra=7 recursions).

Each of the 7 progressive stages reads ``cat[input, previous estimate]`` and runs the same pair of
16-channel residual blocks 7 times (shared weights), then a conv back to RGB plus the input.
"""

from __future__ import annotations

import torch
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import ResBlock, channels_last, conv3, seq_conv


class DRN(nn.Module):
    """Deep recursive deraining network (10.6 k parameters)."""

    def __init__(self, inter_iter: int = 7, intra_iter: int = 7, channels: int = 16):
        super().__init__()
        self.inter_iter = inter_iter
        self.intra_iter = intra_iter
        self.conv0 = nn.Sequential(conv3(6, channels), nn.ReLU(inplace=True))
        self.res_conv1 = ResBlock(channels)
        self.res_conv2 = ResBlock(channels)
        self.conv = seq_conv(channels, 3)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The last stage's estimate of the rain-free image."""
        inp = channels_last(inp)
        x = inp
        for _ in range(self.inter_iter):
            y = self.conv0(torch.cat([inp, x], dim=1))
            for _ in range(self.intra_iter):
                y = self.res_conv2(self.res_conv1(y))
            x = self.conv(y).add_(inp)
        return x.contiguous()


_BASE = "https://github.com/csdwren/DRN/raw/9f2bf507891f5c45127e514085b59545390c153c/logs"

ARCHITECTURE = Architecture(
    name="drn",
    title="DRN",
    builder=DRN,
    default_config={"inter_iter": 7, "intra_iter": 7},
    contract=Contract(bytes_per_pixel=512),
    paper="D. Ren et al.: deep recursive deraining network (csdwren/DRN, by the PReNet/BRN authors)",
    url="https://github.com/csdwren/DRN",
    licence="unstated",
    description="Tiny recursive network: 7 stages, each repeating two shared 16-channel residual blocks 7 times.",
    default_variant="rain100h",
)

MODELS = [
    ModelEntry(
        arch="drn", variant="rain100h", trained_on="RainTrainH (1254 pairs)",
        source=WeightSource(kind="url", filename="drn-rain100h.pth",
                            url=f"{_BASE}/Rain100H_inter7_intra7/pretrained/net_latest.pth",
                            sha256="23dd9371378e688656161a918e54f464adfc14a426d7057f48b61d5ad20d559a", size=44578),
    ),
    ModelEntry(
        arch="drn", variant="rain100l", trained_on="RainTrainL (200 pairs)",
        source=WeightSource(kind="url", filename="drn-rain100l.pth",
                            url=f"{_BASE}/Rain100L_inter7_intra7/pretrained/net_latest.pth",
                            sha256="aca158a1729dd5d454fe4f6e94b7bb5e82b36240c34f72e558aefd3f1696e6cb", size=44578),
    ),
]
