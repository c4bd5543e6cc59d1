"""BRN, the bilateral recurrent network (Ren et al., IEEE TIP 2020; csdwren/RecDerain).

Two coupled PReNet-like branches run for T=8 stages: a rain branch estimates the rain layer, then a
background branch estimates the clean image from ``cat[input, previous background, current rain]``.
Each branch's LSTM also reads the other branch's hidden state. The result is the last background
estimate (no ``+ input``); the forward also returns the last rain layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ...weights import WeightSource
from .._adapters import default_adapter, drop_keys
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import ResBlock, channels_last, conv3, seq_conv
from ..layers.recurrent import gates_of


class BRN(nn.Module):
    """Bilateral recurrent network; ``forward`` returns ``(background, rain)`` of the last stage."""

    def __init__(self, recurrent_iter: int = 8, channels: int = 32):
        super().__init__()
        self.recurrent_iter = recurrent_iter
        # background branch
        self.conv0 = nn.Sequential(conv3(9, channels), nn.ReLU(inplace=True))
        for k in range(1, 6):
            setattr(self, f"res_conv{k}", ResBlock(channels))
        for gate in "ifgo":
            setattr(self, f"conv_{gate}", seq_conv(3 * channels, channels))
        self.conv = seq_conv(channels, 3)
        # rain branch (the released checkpoints also hold res_conv4_r/res_conv5_r, which the
        # authors' forward never uses; the adapter drops them)
        self.conv0_r = nn.Sequential(conv3(6, channels), nn.ReLU(inplace=True))
        for k in range(1, 4):
            setattr(self, f"res_conv{k}_r", ResBlock(channels))
        for gate in "ifgo":
            setattr(self, f"conv_{gate}_r", seq_conv(3 * channels, channels))
        self.conv_r = seq_conv(channels, 3)

    # Set by name in ``__init__``; declared here so the checker knows them.
    res_conv1_r: ResBlock
    res_conv2_r: ResBlock
    res_conv3_r: ResBlock

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(background, rain layer)`` of the last stage."""
        inp = channels_last(inp)
        gates, gates_r = gates_of(self), gates_of(self, "_r")
        x = r = inp
        h = c = h_r = c_r = None
        for _ in range(self.recurrent_iter):
            # rain branch: its LSTM sees [own feature, own hidden, background hidden (previous stage)]
            a = self.conv0_r(torch.cat([inp, r], dim=1))
            h_r, c_r = gates_r.step([a, h_r, h], c_r)
            q = self.res_conv3_r(self.res_conv2_r(self.res_conv1_r(h_r)))
            r = self.conv_r(q)
            # background branch: [own feature, own hidden, rain hidden (this stage)]
            b = self.conv0(torch.cat([inp, x, r], dim=1))
            h, c = gates.step([b, h, h_r], c)
            y = h
            for k in range(1, 6):
                y = getattr(self, f"res_conv{k}")(y)
            x = self.conv(y)
        return x.contiguous(), r.contiguous()


def brn_adapter(checkpoint) -> dict:
    """The authors' checkpoint (``module.`` keys) minus the two rain-branch blocks the forward never uses."""
    return drop_keys(default_adapter(checkpoint), prefixes=("res_conv4_r.", "res_conv5_r."))


_BASE = "https://github.com/csdwren/RecDerain/raw/5b2ad01d41d3b0cd251d0b4033071b796f234cac/logs"

ARCHITECTURE = Architecture(
    name="brn",
    title="BRN",
    builder=BRN,
    default_config={"recurrent_iter": 8},
    contract=Contract(output=0, bytes_per_pixel=2304),
    paper="D. Ren, W. Shang, P. Zhu, Q. Hu, D. Meng, W. Zuo: Single Image Deraining Using Bilateral "
          "Recurrent Network. IEEE TIP 2020",
    url="https://github.com/csdwren/RecDerain",
    licence="unstated",
    description="Bilateral recurrent network: coupled rain and background LSTM branches, 8 stages.",
    default_variant="rain200h",
    adapter=brn_adapter,
)

# (variant, folder, trained on, sha256, bytes)
_FILES = [
    ("rain100h", "Rain100H", "RainTrainH (old Rain100H, 1254 pairs)",
     "46db6bbda038b49bc6c4e00d4af473939f586a6505384682769f8b4d98eda567", 1663403),
    ("rain100l", "Rain100L", "RainTrainL (old Rain100L, 200 pairs)",
     "de9b4bb3e2c076386f8298357e28f5a1d694797a61aadbbafc04f3b7ca93f885", 1663403),
    ("rain1400", "Rain1400", "Rain12600 (DDN)",
     "11b4d2d77a75f081196f2ed77447b1b1b401bedd92543272217391f7ec56c3a2", 1663403),
    ("rain200h", "RainHeavy", "Rain200H (RecDerain 'RainHeavy', 1800 pairs)",
     "8663ddfb16af5065016f707863af12f45a006ff0f2c88639e85ebc05ff7c75fd", 1663915),
    ("rain200l", "RainLight", "Rain200L (RecDerain 'RainLight', 1800 pairs)",
     "7683c2227b4b8c12cb039d2643b329a7ec4b2e6bb03ff4ef9d16a308a2527dc5", 1663915),
]

MODELS = [
    ModelEntry(
        arch="brn", variant=variant, trained_on=trained_on,
        source=WeightSource(kind="url", filename=f"brn-{variant}.pth", url=f"{_BASE}/{folder}/BRN/net_latest.pth",
                            sha256=sha256, size=size),
    )
    for variant, folder, trained_on, sha256, size in _FILES
]
