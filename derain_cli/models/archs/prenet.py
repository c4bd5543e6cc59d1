"""PReNet family (Ren et al., CVPR 2019): PReNet, PReNet_r, PRN, PRN_r and the `real` Generator_lstm.

All of them repeat one stage T times. A stage reads ``cat[input, previous estimate]``, optionally
runs a convolutional LSTM, five residual blocks (``_r``: one block applied five times) and a conv
back to RGB, plus the input. The two ``real`` checkpoints of the authors' repository belong to a
fourth forward with the very same keys (``Generator_lstm``: T=4, residual blocks *before* the LSTM,
no ``+ input``); loaded into PReNet they load without error and give a poor result, so they are
registered as ``prenet:real`` / ``prenet:real2`` with the config flags that select that forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import ResBlock, channels_last, conv3, seq_conv
from ..layers.recurrent import gates_of


class PReNetStages(nn.Module):
    """The layers of the PReNet family and one stage's features; subclasses add the forward.

    PReNet's forward returns the image; VRGNet's variant adds a head and returns two tensors, so
    the two share this base rather than one overriding the other's forward.

    Args:
        recurrent_iter: number of stages T.
        recurrent_unit: whether a convolutional LSTM carries state between stages (PReNet) or not (PRN).
        recursive_blocks: one residual block applied five times (``_r``) instead of five blocks.
        blocks_before_lstm: the `real` Generator_lstm order (blocks, then LSTM).
        input_residual: whether each stage's output is ``conv(...) + input``.
        channels: feature width.
    """

    def __init__(self, recurrent_iter: int = 6, recurrent_unit: bool = True, recursive_blocks: bool = False,
                 blocks_before_lstm: bool = False, input_residual: bool = True, channels: int = 32):
        super().__init__()
        if blocks_before_lstm and not recurrent_unit:
            raise ValueError("blocks_before_lstm needs recurrent_unit=True")
        self.recurrent_iter = recurrent_iter
        self.recurrent_unit = recurrent_unit
        self.blocks_before_lstm = blocks_before_lstm
        self.input_residual = input_residual
        self.conv0 = nn.Sequential(conv3(6, channels), nn.ReLU(inplace=True))
        n_blocks = 1 if recursive_blocks else 5
        for k in range(1, n_blocks + 1):
            setattr(self, f"res_conv{k}", self.make_block(k, channels))
        self.block_order = [f"res_conv{1 if recursive_blocks else k}" for k in range(1, 6)]
        if recurrent_unit:
            for gate in "ifgo":
                setattr(self, f"conv_{gate}", seq_conv(2 * channels, channels))
        self.conv = seq_conv(channels, 3)

    def make_block(self, index: int, channels: int) -> nn.Module:
        """The residual block stored as ``res_conv<index>`` (subclasses change it)."""
        return ResBlock(channels)

    def blocks(self, y: torch.Tensor) -> torch.Tensor:
        for name in self.block_order:
            y = getattr(self, name)(y)
        return y

    def features(self, inp: torch.Tensor, x: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor | None):
        """One stage up to the output conv: ``(features, h, c)`` (h, c None before the first stage)."""
        y = self.conv0(torch.cat([inp, x], dim=1))
        if not self.recurrent_unit:
            return self.blocks(y), None, None
        gates = gates_of(self)
        if self.blocks_before_lstm:
            h, c = gates.step([self.blocks(y), h], c)
            return h, h, c
        h, c = gates.step([y, h], c)
        return self.blocks(h), h, c


class PReNet(PReNetStages):
    """One network class for the whole family; the flags pick the member (see ``PReNetStages``)."""

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """The last stage's estimate of the rain-free image."""
        inp = channels_last(inp)
        x, h, c = inp, None, None
        for _ in range(self.recurrent_iter):
            y, h, c = self.features(inp, x, h, c)
            x = self.conv(y)
            if self.input_residual:
                x = x.add_(inp)  # in place on a fresh conv output: safe under autograd too
        return x.contiguous()


PAPER = ("D. Ren, W. Zuo, Q. Hu, P. Zhu, D. Meng: Progressive Image Deraining Networks: "
         "A Better and Simpler Baseline. CVPR 2019")
URL = "https://github.com/csdwren/PReNet"
_PRENET = "https://github.com/csdwren/PReNet/raw/6d908d1e3c7ff5c26fee624112297ad1c8603ca7/logs"
_RECDERAIN = "https://github.com/csdwren/RecDerain/raw/5b2ad01d41d3b0cd251d0b4033071b796f234cac/logs"

# Peak activation memory (bytes per input pixel, float32 inference; process RSS at 512x512, rounded
# up): about 1.5 KB with the LSTM, 0.7 KB without.
LSTM_CONTRACT = Contract(bytes_per_pixel=1536)
PLAIN_CONTRACT = Contract(bytes_per_pixel=768)


def _arch(name: str, title: str, config: dict, description: str) -> Architecture:
    contract = LSTM_CONTRACT if config.get("recurrent_unit", True) else PLAIN_CONTRACT
    return Architecture(name=name, title=title, builder=PReNet, default_config=config, contract=contract,
                        paper=PAPER, url=URL, licence="unstated", description=description,
                        default_variant="rain100h")


ARCHITECTURES = [
    _arch("prenet", "PReNet", {"recurrent_iter": 6},
          "Progressive recurrent network: 6 stages of a conv-LSTM and 5 residual blocks."),
    _arch("prenet_r", "PReNet_r", {"recurrent_iter": 6, "recursive_blocks": True},
          "PReNet with one residual block applied five times (95 k parameters)."),
    _arch("prn", "PRN", {"recurrent_iter": 6, "recurrent_unit": False},
          "PReNet without the recurrent unit: 6 progressive stages of 5 residual blocks."),
    _arch("prn_r", "PRN_r", {"recurrent_iter": 6, "recurrent_unit": False, "recursive_blocks": True},
          "PRN with one residual block applied five times (21 k parameters)."),
]

# The `real` checkpoints: the authors' Generator_lstm forward (see the module docstring).
_REAL = {"recurrent_iter": 4, "blocks_before_lstm": True, "input_residual": False}
_REAL_TRAINED_ON = "RainTrainH + RainTrainL + Rain12600 mix, 1 epoch"

_TRAINED_ON = {
    "rain100h": "RainTrainH (1254 pairs, strict)",
    "rain100l": "RainTrainL (200 pairs); also used for Rain12",
    "rain1400": "Rain12600 (DDN)",
}

# (arch, variant, mirror file name, url, sha256, bytes)
_FILES = [
    ("prenet", "rain100h", "Rain100H/PReNet6", "127c0098787c5272f1f8583f6c5202e7ef674f750cd145a1691912a6d9e96210", 681694),
    ("prenet_r", "rain100h", "Rain100H/PReNet6_r", "ece8127c651cf49026d998fa36857cb9d462c92cf535b640a377fc025f765b5f", 382755),
    ("prn", "rain100h", "Rain100H/PRN6", "f1d56a7df0851eb087652663781d3f34c4c37a4c7ddd9a3f0802abbede1a06c2", 384596),
    ("prn_r", "rain100h", "Rain100H/PRN6_r", "99242ce096c9c617bd529a5e189797e8955a4b8611d355974c7c1c64a18b9074", 86047),
    ("prenet", "rain100l", "Rain100L/PReNet6", "cb9b743bb33cf6e5c56ba45f8ade93add46266dea9fa582e1934dc5eed942333", 681694),
    ("prenet_r", "rain100l", "Rain100L/PReNet6_r", "31dd4419cdb0f4da623d974747113d60e2c22803598c39dcf03d789f86a7f62b", 382755),
    ("prn", "rain100l", "Rain100L/PRN6", "ed4be5b78f76dcec5c781e1655dee48c2a90b56993de555945d72e31848aea99", 384596),
    ("prn_r", "rain100l", "Rain100L/PRN6_r", "87ee3b1c027b33e7e532a4881c3b077d100cf40c65dd2843690600e3023acee0", 86047),
    ("prenet", "rain1400", "Rain1400/PReNet6", "d5744dc2e35d73187a3f34936b3413884d293277073ffb78b961a78e65337879", 681694),
    ("prenet_r", "rain1400", "Rain1400/PReNet6_r", "c639c19b342d6ae977b7ff8a4b2fbeb24179510a6e57b8bf5ef32d6b071fc8d5", 382755),
    ("prn", "rain1400", "Rain1400/PRN6", "c6620860a51b54afec0c1eebe412f0f1ca00128100f5b23c13758605206a0bf2", 384596),
    ("prn_r", "rain1400", "Rain1400/PRN6_r", "c0f7f18f3d33e26f50af8c693494a03c2776c627140a1d8e0514edd53e9398fb", 86047),
]

MODELS = [
    ModelEntry(
        arch=arch, variant=variant, trained_on=_TRAINED_ON[variant],
        source=WeightSource(kind="url", filename=f"{arch}-{variant}.pth", url=f"{_PRENET}/{folder}/net_latest.pth",
                            sha256=sha256, size=size),
    )
    for arch, variant, folder, sha256, size in _FILES
] + [
    ModelEntry(
        arch="prenet", variant="rain200h", trained_on="Rain200H (RecDerain 'RainHeavy', 1800 pairs)",
        description="PReNet T=6 retrained on Rain200H by the BRN authors (RecDerain).",
        source=WeightSource(kind="url", filename="prenet-rain200h.pth", url=f"{_RECDERAIN}/RainHeavy/PReNet/net_latest.pth",
                            sha256="cef889ca3daba79c6e96c7f13ecfd8cf823e105b8acf63efa8296b5020c27bed", size=681950),
    ),
    ModelEntry(
        arch="prenet", variant="rain200l", trained_on="Rain200L (RecDerain 'RainLight', 1800 pairs)",
        description="PReNet T=6 retrained on Rain200L by the BRN authors (RecDerain).",
        source=WeightSource(kind="url", filename="prenet-rain200l.pth", url=f"{_RECDERAIN}/RainLight/PReNet/net_latest.pth",
                            sha256="a1df2965e2e99081371210c678f63d95de95c40d87f556deb491dd064cb59a27", size=681950),
    ),
    ModelEntry(
        arch="prenet", variant="real", trained_on=_REAL_TRAINED_ON + " (recursive loss)", config=_REAL,
        description="The authors' model for real photographs (PReNet1.pth): Generator_lstm, T=4, no input residual.",
        source=WeightSource(kind="url", filename="prenet-real.pth", url=f"{_PRENET}/real/PReNet1.pth",
                            sha256="eba0c0ed941565abce9c61ceb8b36ff5e1532320c20efc11843f5f7fc810f7bb", size=681694),
    ),
    ModelEntry(
        arch="prenet", variant="real2", trained_on=_REAL_TRAINED_ON + " (final-stage loss)", config=_REAL,
        description="The authors' second model for real photographs (PReNet2.pth): Generator_lstm, T=4.",
        source=WeightSource(kind="url", filename="prenet-real2.pth", url=f"{_PRENET}/real/PReNet2.pth",
                            sha256="cbf6068474e64bf81ea8597fe1473cda19e7d0afadb3c81beb41f8dcc3751269", size=681694),
    ),
]
