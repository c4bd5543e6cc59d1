"""DCSFN: Deep Cross-scale Fusion Network for single image rain removal (ACM MM 2020).

Three sub-networks work on the image at full, half and quarter resolution. Each is a dense chain of
inner-scale connection blocks (convolutions at 1, 1/2, 1/4 and 1/8 scale fused coarse to fine); the
sub-networks exchange information through convolutional GRUs, first coarse to fine, then fine to
coarse, and a merge head predicts the rain layer that is subtracted from the input. Parameter names
follow the authors' release so that their checkpoints load unchanged.

The network takes BGR in [0, 1] at any size of at least 32 x 32 and returns the derained image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._adapters import default_adapter
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import layer_of
from ..layers.pointwise import accumulate, mix_channels, pixel_rows, pointwise
from ..layers.recurrent import ConvGRU

# The network runs on channels-last tensors (N x C x H x W shaped, stored N x H x W x C): with 20
# channels, 3x3 convolutions, max-pooling and nearest resizing are several times faster there, and a
# 1x1 convolution is one matrix product over the pixels, also over a channel slice of a larger map.
CHANNELS_LAST = torch.channels_last


class ConvLReLU(nn.Sequential):
    """Conv2d (same padding, bias) followed by LeakyReLU(0.2); keys ``0.weight``, ``0.bias``."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2), nn.LeakyReLU(0.2))

    @property
    def conv(self) -> nn.Conv2d:
        """The convolution (layer ``0``)."""
        return layer_of(self, 0, nn.Conv2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if conv.kernel_size == (1, 1):
            y = pointwise(x, conv)
        else:
            y = conv(x)
        return F.leaky_relu(y, 0.2, inplace=True)


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Nearest resize (floor-index, like the legacy ``F.upsample``) to ``size`` (H, W)."""
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="nearest")


def _fuse(conv: nn.Conv2d, fine: torch.Tensor, coarse: Sequence[torch.Tensor]) -> torch.Tensor:
    """LeakyReLU(conv(cat[fine, nearest(c) for c in coarse])) for a 1x1 ``conv``, without the concatenation.

    A 1x1 convolution and nearest resizing both work pixel by pixel, so they commute exactly: every
    coarse map is projected at its own resolution and only its C-channel projection is resized;
    the fine map's product is then accumulated onto the sum.
    """
    c = fine.shape[1]
    weight = conv.weight.view(conv.out_channels, -1)
    y: torch.Tensor | None = None
    for i, t in enumerate(coarse, start=1):
        z = mix_channels(t, weight[:, i * c : (i + 1) * c], conv.bias if y is None else None)
        z = _resize(z, fine.shape[-2:])
        y = z if y is None else y.add_(z)
    # pixel_rows(y) must be a view of y, or the accumulation below would be lost.
    assert y is not None and y.is_contiguous(memory_format=CHANNELS_LAST)
    accumulate(pixel_rows(y), pixel_rows(fine), weight[:, :c].t())
    return F.leaky_relu(y, 0.2, inplace=True)


class InnerScaleBlock(nn.Module):
    """Inner-scale connection block: convs at 1/8, 1/4, 1/2 and 1 scale, fused coarse to fine."""

    # Set by name in ``__init__``; declared here so the checker knows them.
    scale1: nn.Sequential
    scale2: nn.Sequential
    scale4: nn.Sequential
    scale8: nn.Sequential

    def __init__(self, channel: int, conv_num: int):
        super().__init__()
        for name in ("scale1", "scale2", "scale4", "scale8"):
            setattr(self, name, nn.Sequential(*[ConvLReLU(channel, channel, 3) for _ in range(conv_num)]))
        self.fusion84 = ConvLReLU(2 * channel, channel, 1)
        self.fusion42 = ConvLReLU(2 * channel, channel, 1)
        self.fusion21 = ConvLReLU(2 * channel, channel, 1)
        self.fusion_all = ConvLReLU(4 * channel, channel, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Max-pooling x by 4 (8) equals pooling its 2x (4x) pooled map by 2: same windows, same
        # floor sizes; the chain reads the full-resolution map once instead of three times.
        f2 = F.max_pool2d(x, 2)
        f4 = F.max_pool2d(f2, 2)
        s8 = self.scale8(F.max_pool2d(f4, 2))
        s4 = self.scale4(_fuse(self.fusion84.conv, f4, [s8]))
        s2 = self.scale2(_fuse(self.fusion42.conv, f2, [s4]))
        s1 = self.scale1(_fuse(self.fusion21.conv, x, [s2]))
        return x + _fuse(self.fusion_all.conv, s1, [s2, s4, s8])


class DenseStack:
    """The growing channel concatenation [x, t0, t1, ...] of a densely connected chain.

    Without autograd the maps are written into one preallocated tensor, so the concatenation of
    the first k maps is a view instead of a fresh copy per step; with autograd it is ``torch.cat``.
    """

    def __init__(self, first: torch.Tensor, capacity: int):
        self.channel = first.shape[1]
        self.parts: list[torch.Tensor] = []
        self.buffer: torch.Tensor | None = None
        if not torch.is_grad_enabled():
            n, c, h, w = first.shape
            self.buffer = torch.empty(
                n, c * capacity, h, w, dtype=first.dtype, device=first.device, memory_format=CHANNELS_LAST
            )
        self.put(0, first)

    def put(self, slot: int, t: torch.Tensor) -> None:
        """Store ``t`` in ``slot`` (slots are filled in order; a filled slot may be overwritten)."""
        if self.buffer is not None:
            self.buffer[:, slot * self.channel : (slot + 1) * self.channel] = t
        elif slot < len(self.parts):
            self.parts[slot] = t
        else:
            self.parts.append(t)

    def get(self, slot: int) -> torch.Tensor:
        if self.buffer is not None:
            return self.buffer[:, slot * self.channel : (slot + 1) * self.channel]
        return self.parts[slot]

    def concat(self, count: int) -> torch.Tensor:
        """The first ``count`` slots along the channels."""
        if self.buffer is not None:
            return self.buffer[:, : count * self.channel]
        return torch.cat(self.parts[:count], 1)


class DenseChain(nn.Module):
    """L inner-scale blocks; ``conv1x1[u]`` fuses the chain's input and the first u+1 block outputs."""

    def __init__(self, channel: int, num_units: int, conv_num: int):
        super().__init__()
        self.units = nn.ModuleList(InnerScaleBlock(channel, conv_num) for _ in range(num_units))
        self.conv1x1 = nn.ModuleList(ConvLReLU((u + 2) * channel, channel, 1) for u in range(num_units))


class Encoder(DenseChain):
    """A dense chain that also hands its block outputs to the decoder of the same scale."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, DenseStack]:
        """Return the chain's output and its stack, whose slot u+1 holds block u's output."""
        stack = DenseStack(x, len(self.units) + 1)
        out = x
        for u, (unit, fuse) in enumerate(zip(self.units, self.conv1x1)):
            stack.put(u + 1, unit(out))
            out = fuse(stack.concat(u + 2))
        return out, stack


class Decoder(DenseChain):
    """A dense chain whose block u sees its input plus the encoder's block-u output."""

    def forward(self, x: torch.Tensor, stack: DenseStack) -> torch.Tensor:
        """Decode ``x``; ``stack`` is the encoder's and is overwritten in place (its maps are read first)."""
        stack.put(0, x)
        out = x
        for u, (unit, fuse) in enumerate(zip(self.units, self.conv1x1)):
            stack.put(u + 1, unit(out + stack.get(u + 1)))
            out = fuse(stack.concat(u + 2))
        return out


class DCSFN(nn.Module):
    """DCSFN (the authors' ``Multi_model_fusion_learning``). Keyword arguments mirror the authors'
    ``settings.py`` and default to the released network; only the released structure (GRU fusion,
    cross-scale on, multi-model, four scales per block) is implemented.

    ``forward(x)`` takes BGR in [0, 1], N x 3 x H x W with H, W >= 32, and returns the derained image.
    """

    def __init__(
        self,
        channel: int = 20,
        Num_encoder: int = 16,
        uint: str = "GRU",
        cross_scale: bool = True,
        Net_cross: bool = True,
        single: bool = False,
        conv_num: int = 4,
        scale_num: int = 4,
    ):
        super().__init__()
        # cross_scale is declared by the authors' settings but read by nothing; accepted for symmetry.
        if uint != "GRU" or not Net_cross or single or scale_num != 4:
            raise ValueError(
                "only the released DCSFN structure is implemented (uint='GRU', Net_cross=True, single=False, "
                f"scale_num=4); got uint={uint!r}, Net_cross={Net_cross}, single={single}, scale_num={scale_num}"
            )
        c = channel
        self.convert = ConvLReLU(3, c, 3)
        self.encoder_scale1 = Encoder(c, Num_encoder, conv_num)
        self.encoder_scale2 = Encoder(c, Num_encoder, conv_num)
        self.encoder_scale4 = Encoder(c, Num_encoder, conv_num)
        self.fusion_1_2_1 = ConvLReLU(2 * c, c, 1)
        self.fusion_1_2_2 = ConvLReLU(2 * c, c, 1)  # LSTM-only in the release; kept for its weights
        self.fusion_2_2_1 = ConvLReLU(2 * c, c, 1)
        self.fusion_2_2_2 = ConvLReLU(2 * c, c, 1)  # LSTM-only in the release; kept for its weights
        self.decoder_scale1 = Decoder(c, Num_encoder, conv_num)
        self.decoder_scale2 = Decoder(c, Num_encoder, conv_num)
        self.decoder_scale4 = Decoder(c, Num_encoder, conv_num)
        self.rec1_1 = ConvGRU(c)
        self.rec1_2 = ConvGRU(c)
        self.rec1_4 = ConvGRU(c)
        self.rec2_1 = ConvGRU(c)
        self.rec2_2 = ConvGRU(c)
        self.rec2_4 = ConvGRU(c)
        self.merge = nn.Sequential(nn.Conv2d(3 * c, 3, 1), nn.LeakyReLU(0.2), nn.Conv2d(3, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 32 or w < 32:
            raise ValueError(f"DCSFN needs H and W of at least 32, got {h}x{w}")
        x = x.contiguous(memory_format=CHANNELS_LAST)
        f1 = self.convert(x)
        s1 = f1.shape[-2:]
        e1, stack1 = self.encoder_scale1(f1)
        f2 = F.max_pool2d(f1, 2)
        s2 = f2.shape[-2:]
        e2, stack2 = self.encoder_scale2(f2)
        f4 = F.max_pool2d(f1, 4)
        s4 = f4.shape[-2:]
        del f1, f2
        e4, stack4 = self.encoder_scale4(f4)
        # Pass 1, coarse to fine.
        c4 = self.rec1_4(e4)
        c2 = self.rec1_2(e2, _resize(c4, s2))
        c1 = self.rec1_1(e1, self.fusion_1_2_1(torch.cat([_resize(c2, s1), _resize(c4, s1)], 1)))
        # Pass 2, fine to coarse.
        d1 = self.rec2_1(c1)
        d2 = self.rec2_2(c2, _resize(d1, s2))
        d4 = self.rec2_4(c4, self.fusion_2_2_1(torch.cat([_resize(d1, s4), _resize(d2, s4)], 1)))
        o1 = self.decoder_scale1(d1, stack1)
        o2 = self.decoder_scale2(d2, stack2)
        o4 = self.decoder_scale4(d4, stack4)
        rain = self.merge(torch.cat([o1, _resize(o2, s1), _resize(o4, s1)], 1))
        return (x - rain).contiguous()


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_BAIDU = "https://pan.baidu.com/s/19GO38UnOlMKcDToGJyNwvw"

ARCHITECTURE = Architecture(
    name="dcsfn",
    title="DCSFN",
    builder=DCSFN,
    default_config={
        "channel": 20, "Num_encoder": 16, "uint": "GRU", "cross_scale": True, "Net_cross": True,
        "single": False, "conv_num": 4, "scale_num": 4,
    },
    contract=Contract(
        channels="BGR", value_range=(0.0, 1.0), size_multiple=1, pad_mode="reflect", min_size=32,
        global_context=False, tile=None, bytes_per_pixel=3072, half_precision=True,
    ),
    paper=(
        "Cong Wang, Xiaoying Xing, Yutong Wu, Zhixun Su, Junyang Chen: DCSFN: Deep Cross-scale Fusion "
        "Network for Single Image Rain Removal. ACM International Conference on Multimedia (ACM MM), "
        "2020, pp. 1643-1651"
    ),
    url="https://github.com/Ohraincu/DCSFN",
    licence="unstated",
    description=(
        "Three dense sub-networks (full, 1/2, 1/4 scale) fused across scales by convolutional GRUs "
        "(6.45 M parameters); all releases share one layout."
    ),
    default_variant="rain100h",
    adapter=default_adapter,
)

# (variant, dataset folder in the authors' Baidu share, training set)
_RELEASES = [
    ("rain100h", "Rain100H", "Rain100H (Yang et al., heavy synthetic rain)"),
    ("rain100l", "Rain100L", "Rain100L (Yang et al., light synthetic rain)"),
    ("rain1200", "Rain1200", "Rain1200 / DID-MDN (Zhang and Patel, three rain densities)"),
]

MODELS = [
    ModelEntry(
        arch="dcsfn",
        variant=variant,
        trained_on=trained_on,
        description=f"The authors' {folder} checkpoint. All DCSFN releases share one layout, so the "
        "variant is taken from the name you import under, not from the file.",
        source=WeightSource(
            kind="manual",
            filename=f"dcsfn-{variant}.pth",
            page=_BAIDU,
            password="c3ri",
            instructions=(
                f"In the authors' BaiduYun share open the {folder} folder and download 'latest_net' from its "
                f"models folder (the checkpoint the authors' test scripts use; 'net_<n>_epoch' files are "
                f"earlier snapshots); then run `derain models import dcsfn:{variant} latest_net`."
            ),
        ),
    )
    for variant, folder, trained_on in _RELEASES
]
