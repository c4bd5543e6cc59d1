"""VRGNet's deraining network (Wang et al., CVPR 2021), trained jointly with its rain generator.

A PReNet variant: 5 ordinary PReNet stages, then a sixth stage whose head (``convfinal``, 6 channels)
predicts the mean (``+ input``) and log-variance of the background. The result is the mean. The
checkpoints store the network under the attribute ``derainet``, which this module keeps, so they load
as stored.
"""

from __future__ import annotations

import torch
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import channels_last, seq_conv
from .prenet import PReNetStages


class _VRGPReNet(PReNetStages):
    """PReNet (T fixed at 5+1) with the 6-channel final head ``convfinal``."""

    def __init__(self, channels: int = 32):
        super().__init__(recurrent_iter=5, channels=channels)
        self.convfinal = seq_conv(channels, 6)

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inp = channels_last(inp)
        x, h, c = inp, None, None
        for _ in range(self.recurrent_iter):
            y, h, c = self.features(inp, x, h, c)
            x = self.conv(y).add_(inp)
        y, _, _ = self.features(inp, x, h, c)
        q = self.convfinal(y)
        return (q[:, :3] + inp).contiguous(), q[:, 3:]


class VRGDerainNet(nn.Module):
    """VRGNet's ``Derain`` wrapper: ``forward`` returns ``(mean, log-variance)`` of the background."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.derainet = _VRGPReNet(channels)

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.derainet(inp)


_BASE = "https://github.com/hongwang01/VRGNet/raw/036d7a9757abcefde89abadce6a706ec9d1ce15e"

ARCHITECTURE = Architecture(
    name="vrgnet",
    title="VRGNet",
    builder=VRGDerainNet,
    default_config={},
    contract=Contract(output=0, bytes_per_pixel=1536),
    paper="H. Wang, Z. Yue, Q. Xie, Q. Zhao, Y. Zheng, D. Meng: From Rain Generation to Rain Removal. CVPR 2021",
    url="https://github.com/hongwang01/VRGNet",
    licence="unstated",
    description="PReNet-style deraining net trained jointly with VRGNet's rain generator (5+1 stages).",
    default_variant="spa",
)

# (variant, path in the repository, trained on, sha256, bytes)
_FILES = [
    ("spa", "for_spa/spamodels/DerainNet_state_800.pt", "SPA-Data (real rain) + VRGNet-generated pairs",
     "d571fdafb796cc90e9f9a18e380c449d1e66f537e066e498ba63f83e6079594c", 690012),
    ("rain100h", "for_syn/syn100hmodels/DerainNet_state_700.pt", "Rain100H + VRGNet-generated pairs",
     "444da542538a6667f2a3f834ba9d91e1de8e1a1e47e0ec98657270ba0dff6a9a", 689332),
    ("rain100l", "for_syn/syn100lmodels/DerainNet_state_700.pt", "Rain100L + VRGNet-generated pairs",
     "767bf9c96a755a0eb1a6bea4713ba3555134e8e0ee8f4681d80f89f870286837", 689332),
    ("rain1400", "for_syn/syn1400models/DerainNet_state_700.pt", "Rain1400 + VRGNet-generated pairs",
     "0e6235c59e8afa1996e9dd1858a1a8995af8e36754e3d42a712ced01201ea5b8", 690012),
]

MODELS = [
    ModelEntry(
        arch="vrgnet", variant=variant, trained_on=trained_on,
        source=WeightSource(kind="url", filename=f"vrgnet-{variant}.pt", url=f"{_BASE}/{path}",
                            sha256=sha256, size=size),
    )
    for variant, path, trained_on, sha256, size in _FILES
]
