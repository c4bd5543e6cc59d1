"""RESCAN (Li et al., ECCV 2018), as retrained on Rain200H/Rain200L by the BRN authors (csdwren/RecDerain).

Configuration of the released checkpoints: ConvGRU units with squeeze-and-excitation, 24 channels,
depth 7 (one input unit plus four dilated units, dilations 1, 2, 4, 8), 4 stages, "Full" frame. Each
stage estimates the rain layer from the previous stage's derained image, carrying every unit's GRU
state to the next stage. The network works in BGR; the result is input minus the last rain estimate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import bias_of, channels_last


class SE(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc0(mean_hw(x)))))`` (``fc.0``, ``fc.2``)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc(x.mean(dim=(2, 3)))
        return x * s[:, :, None, None]


class ConvGRU(nn.Module):
    """A ConvGRU unit whose output passes through SE and LeakyReLU(0.2); it is also the new state."""

    # Set by name in ``__init__`` (the checkpoint's keys); declared here so the checker knows them.
    conv_xz: nn.Conv2d
    conv_xr: nn.Conv2d
    conv_xn: nn.Conv2d
    conv_hz: nn.Conv2d
    conv_hr: nn.Conv2d
    conv_hn: nn.Conv2d

    def __init__(self, cin: int, channels: int, dilation: int, se_hidden: int):
        super().__init__()
        for gate in "zrn":
            setattr(self, f"conv_x{gate}", nn.Conv2d(cin, channels, 3, padding=dilation, dilation=dilation))
        for gate in "zrn":
            setattr(self, f"conv_h{gate}", nn.Conv2d(channels, channels, 3, padding=1))
        self.se = SE(channels, se_hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        # In-place updates below only touch fresh tensors whose old values autograd does not need.
        c = self.conv_xz.out_channels
        pad, dil = self.conv_xz.padding, self.conv_xz.dilation
        if h is None:  # first stage: no reset gate, h = z * n
            w = torch.cat([self.conv_xz.weight, self.conv_xn.weight])
            b = torch.cat([bias_of(self.conv_xz), bias_of(self.conv_xn)])
            xs = F.conv2d(x, w, b, padding=pad, dilation=dil)
            h = torch.sigmoid(xs[:, :c]) * torch.tanh(xs[:, c:])
        else:
            w = torch.cat([self.conv_xz.weight, self.conv_xr.weight, self.conv_xn.weight])
            b = torch.cat([bias_of(self.conv_xz), bias_of(self.conv_xr), bias_of(self.conv_xn)])
            xs = F.conv2d(x, w, b, padding=pad, dilation=dil)
            hw = torch.cat([self.conv_hz.weight, self.conv_hr.weight])
            hb = torch.cat([bias_of(self.conv_hz), bias_of(self.conv_hr)])
            zr = F.conv2d(h, hw, hb, padding=1).add_(xs[:, : 2 * c]).sigmoid_()
            z, r = zr[:, :c], zr[:, c:]
            n = self.conv_hn(r * h).add_(xs[:, 2 * c:]).tanh_()
            h = torch.addcmul(h, z, n - h)  # (1 - z) * h + z * n
        return F.leaky_relu(self.se(h), 0.2, inplace=True)


class RESCAN(nn.Module):
    """Recurrent SE context aggregation net; ``forward`` returns the last stage's rain layer."""

    def __init__(self, channels: int = 24, depth: int = 7, stage_num: int = 4, se_hidden: int = 6):
        super().__init__()
        self.stage_num = stage_num
        dilations = [1] + [2 ** k for k in range(depth - 3)]
        self.rnns = nn.ModuleList(
            ConvGRU(3 if k == 0 else channels, channels, d, se_hidden) for k, d in enumerate(dilations)
        )
        self.dec = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), SE(channels, se_hidden),
                                 nn.LeakyReLU(0.2), nn.Conv2d(channels, 3, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The rain layer estimated by the last stage (the derained image is ``inp`` minus it)."""
        inp = channels_last(inp)
        states: list[torch.Tensor | None] = [None] * len(self.rnns)
        x = inp
        for stage in range(self.stage_num):
            for k, rnn in enumerate(self.rnns):
                x = states[k] = rnn(x, states[k])
            rain = self.dec(x)
            if stage + 1 < self.stage_num:
                x = inp - rain
        return rain.contiguous()


def input_minus_rain(outputs: torch.Tensor, model_input: torch.Tensor) -> torch.Tensor:
    """input minus the last rain estimate"""
    return model_input - outputs


_BASE = "https://github.com/csdwren/RecDerain/raw/5b2ad01d41d3b0cd251d0b4033071b796f234cac/logs"

ARCHITECTURE = Architecture(
    name="rescan",
    title="RESCAN",
    builder=RESCAN,
    default_config={"channels": 24, "depth": 7, "stage_num": 4},
    contract=Contract(channels="BGR", output=input_minus_rain, bytes_per_pixel=2048),
    paper="X. Li, J. Wu, Z. Lin, H. Liu, H. Zha: Recurrent Squeeze-and-Excitation Context Aggregation Net "
          "for Single Image Deraining. ECCV 2018",
    url="https://github.com/XiaLiPKU/RESCAN",
    licence="MIT",
    description="Recurrent SE context aggregation net (ConvGRU, 4 stages); weights retrained by the BRN authors.",
    default_variant="rain200h",
)

MODELS = [
    ModelEntry(
        arch="rescan", variant="rain200h", trained_on="Rain200H (RecDerain 'RainHeavy', 1800 pairs)",
        source=WeightSource(kind="url", filename="rescan-rain200h.pth", url=f"{_BASE}/RainHeavy/RESCAN/latest",
                            sha256="237e29616891f599334c236def92ce216ef9662ca1f77437643ac4b1987c58a3", size=1842353),
    ),
    ModelEntry(
        arch="rescan", variant="rain200l", trained_on="Rain200L (RecDerain 'RainLight', 1800 pairs)",
        source=WeightSource(kind="url", filename="rescan-rain200l.pth", url=f"{_BASE}/RainLight/RESCAN/latest",
                            sha256="49bfd63951fc6fde251de82db9af42ef995db9d00113a585cd171c51fb533017", size=1842353),
    ),
]
