"""HCT-FFN (Chen et al., AAAI 2023): hybrid CNN-transformer feature fusion for single-image deraining.

Three sub-networks run in sequence, each guided by a "residue" image (per-pixel max minus min over
the colour channels) of the previous estimate: a dynamic mixture of convolution operations (DaMoE),
a transformer over 3x3 patch tokens (BaViT), and a second DaMoE. The network works on 0..255 RGB and
returns the three stage outputs, the last one being the result.

The transformer attends within consecutive raster-order blocks of floor(H*W/16) tokens, so its
output depends on the image size (tiling changes it) and its cost grows with H*W per pixel; blocks
are computed with fused scaled-dot-product attention, which never materialises the score matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._adapters import default_adapter, drop_keys
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import channels_last

N_FEATS = 32


class ConvD(nn.Module):
    """Reflection-padded 3x3 convolution and ReLU (``conv``; the checkpoints' ``ins`` is unused)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


class SE(nn.Module):
    """Bias-free squeeze-and-excitation with reduction 1 (``fc.0``, ``fc.2``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class RB(nn.Module):
    """``x + SE(relu(conv(relu(conv(x)))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.module_body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                         nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.se = SE(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.module_body(x))


class RIR(nn.Module):
    """Residual in residual: ``relu(conv(RB(RB(RB(x)))) + x)``."""

    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        self.module_body = nn.Sequential(*(RB(channels) for _ in range(n_blocks)),
                                         nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.module_body(x) + x)


class ResidueBranch(nn.Module):
    """Features of the 3-channel residue image."""

    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        self.conv_init1 = ConvD(3, channels // 2)
        self.conv_init2 = ConvD(channels // 2, channels)
        self.extra = RIR(channels, n_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extra(self.conv_init2(self.conv_init1(x)))


def residue(x: torch.Tensor) -> torch.Tensor:
    """Max minus min over the colour channels, repeated to 3 channels."""
    r = x.amax(dim=1, keepdim=True) - x.amin(dim=1, keepdim=True)
    return r.expand(-1, 3, -1, -1)


class PriorSp(nn.Module):
    """Mutual spatial attention between the image features and the residue features."""

    def __init__(self, channels: int):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.key_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.gamma1 = nn.Conv2d(2 * channels, 2, 3, padding=1)
        self.gamma2 = nn.Conv2d(2 * channels, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        att = torch.sigmoid(self.query_conv(x) * self.key_conv(prior))
        ax, ap = x * att, prior * att
        gx = self.gamma1(torch.cat([x, ax], dim=1))
        gp = self.gamma2(torch.cat([prior, ap], dim=1))
        return x * gx[:, 0:1] + ax * gx[:, 1:2], prior * gp[:, 0:1] + ap * gp[:, 1:2]


class ChannelScale(nn.Conv2d):
    """A bias-free 1x1 depthwise convolution, computed as the per-channel product it is (much faster)."""

    def __init__(self, channels: int):
        super().__init__(channels, channels, 1, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1)


def _depthwise(channels: int, k: int, dilation: int = 1) -> nn.Conv2d:
    if k == 1:
        return ChannelScale(channels)
    return nn.Conv2d(channels, channels, k, padding=dilation * (k // 2), dilation=dilation, groups=channels,
                     bias=False)


def _pointwise(channels: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 1, bias=False)


class SepConv(nn.Module):
    """Two depthwise-separable k x k convolutions with a ReLU between them (``op.0/1/3/4``)."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        self.op = nn.Sequential(_depthwise(channels, k), _pointwise(channels), nn.ReLU(inplace=True),
                                _depthwise(channels, k), _pointwise(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """A dilated (2) depthwise k x k convolution and a pointwise one (``op.0/1``)."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        self.op = nn.Sequential(_depthwise(channels, k, dilation=2), _pointwise(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _operations(channels: int) -> list[nn.Module]:
    """The 8 candidate operations, in the checkpoints' index order."""
    return [SepConv(channels, 1), SepConv(channels, 3), SepConv(channels, 5), SepConv(channels, 7),
            DilConv(channels, 3), DilConv(channels, 5), DilConv(channels, 7),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)]


class OperationLayer(nn.Module):
    """``relu(conv1x1(cat_j(op_j(x) * w_j)))``: a per-image weighted mixture of the 8 operations."""

    def __init__(self, channels: int):
        super().__init__()
        self._ops = nn.ModuleList(_operations(channels))
        self._out = nn.Sequential(nn.Conv2d(8 * channels, channels, 1, bias=False), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        outs = [op(x) * weights[:, j, None, None, None] for j, op in enumerate(self._ops)]
        return self._out(torch.cat(outs, dim=1))


class _Preprocess(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class GroupOLs(nn.Module):
    """A 1x1 conv, then ``steps`` residual operation layers, each with its own mixture weights."""

    def __init__(self, channels: int, steps: int = 4):
        super().__init__()
        self.preprocess = _Preprocess(channels)
        self._ops = nn.ModuleList(OperationLayer(channels) for _ in range(steps))

    def forward(self, s: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s = self.preprocess(s)
        for i, layer in enumerate(self._ops):
            s = F.relu(layer(s, weights[:, i]) + s)
        return s


class OALayer(nn.Module):
    """Operation attention: mixture logits (B, steps, 8) from the pooled features."""

    def __init__(self, channels: int, steps: int = 4, n_ops: int = 8):
        super().__init__()
        self.steps, self.n_ops = steps, n_ops
        self.ca_fc = nn.Sequential(nn.Linear(channels, 2 * channels), nn.ReLU(inplace=True),
                                   nn.Linear(2 * channels, steps * n_ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca_fc(x.mean(dim=(2, 3))).view(-1, self.steps, self.n_ops)


class DaMoE(nn.Module):
    """Residue-guided dynamic mixture of convolution operations."""

    def __init__(self, channels: int):
        super().__init__()
        self.prior = PriorSp(channels)
        self.fuse_res = ConvD(2 * channels, channels)
        self.layers = nn.ModuleList([OALayer(channels), GroupOLs(channels)])

    def forward(self, x: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        y = self.fuse_res(torch.cat(self.prior(x, res), dim=1))
        weights = torch.softmax(self.layers[0](y), dim=-1)
        return self.layers[1](y, weights)


class EffAttention(nn.Module):
    """Multi-head attention on reduced tokens, within raster-order blocks of floor(N/16) tokens."""

    def __init__(self, dim: int, heads: int = 8, blocks: int = 16):
        super().__init__()
        self.heads, self.blocks = heads, blocks
        self.scale = (dim // heads) ** -0.5  # the authors' scale uses the pre-reduction head width
        self.reduce = nn.Linear(dim, dim // 2, bias=False)
        self.qkv = nn.Linear(dim // 2, 3 * (dim // 2), bias=False)
        self.proj = nn.Linear(dim // 2, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        if n < self.blocks:
            raise ValueError(f"HCT-FFN needs at least {self.blocks} pixels, got {n}")
        qkv = self.qkv(self.reduce(t)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, N, d)
        d = q.shape[-1]
        size = n // self.blocks
        full = size * self.blocks

        def blocked(z: torch.Tensor) -> torch.Tensor:  # (B, heads, blocks * size, d) -> (B, heads * blocks, size, d)
            return z[:, :, :full].reshape(b, self.heads * self.blocks, size, d)

        out = F.scaled_dot_product_attention(blocked(q), blocked(k), blocked(v), scale=self.scale)
        out = out.view(b, self.heads, full, d)
        if full < n:  # the remainder tokens form one more, shorter block
            rest = F.scaled_dot_product_attention(q[:, :, full:], k[:, :, full:], v[:, :, full:], scale=self.scale)
            out = torch.cat([out, rest], dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class TransBlock(nn.Module):
    """Pre-norm transformer block: attention and MLP, each residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.atten = EffAttention(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim // 4)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t + self.atten(self.norm1(t))
        return t + self.mlp(self.norm2(t))


class BaViT(nn.Module):
    """Residue-guided transformer over 3x3 patch tokens (one block applied three times)."""

    def __init__(self, channels: int, passes: int = 3):
        super().__init__()
        self.passes = passes
        self.prior = PriorSp(channels)
        self.fuse_res = ConvD(2 * channels, channels)
        self.attention = TransBlock(9 * channels)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        y = self.fuse_res(torch.cat(self.prior(x, res), dim=1))
        h, w = y.shape[-2:]
        t = F.unfold(y, 3, padding=1).transpose(1, 2)  # (B, H*W, 9C): one token per pixel
        for _ in range(self.passes):
            t = self.attention(t)
        y = F.fold(t.transpose(1, 2), (h, w), 3, padding=1)  # overlap-add back to the image
        return self.c2(y)


class HCTFFN(nn.Module):
    """HCT-FFN (the authors' ``Rainnet``); ``forward`` returns ``(out3, out2, out1)`` on 0..255."""

    def __init__(self, n_feats: int = N_FEATS, n_resblocks: int = 3):
        super().__init__()
        c = n_feats
        self.conv_init1 = ConvD(3, c // 2)
        self.conv_init2 = ConvD(c // 2, c)
        self.res_extra1 = ResidueBranch(c, n_resblocks)
        self.res_extra2 = ResidueBranch(c, n_resblocks)
        self.res_extra3 = ResidueBranch(c, n_resblocks)
        self.sub1 = DaMoE(c)
        self.sub2 = BaViT(c)
        self.sub3 = DaMoE(c)
        self.ag1 = ConvD(2 * c, c)
        self.ag2 = ConvD(3 * c, c)
        self.ag2_en = ConvD(2 * c, c)
        self.ag_en = ConvD(3 * c, c)
        self.output1 = nn.Conv2d(c, 3, 3, padding=1)
        self.output2 = nn.Conv2d(c, 3, 3, padding=1)
        self.output3 = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = channels_last(x)
        x0 = self.conv_init2(self.conv_init1(x))
        x1 = self.sub1(x0, self.res_extra1(residue(x)))
        out1 = self.output1(x1)
        x2 = self.sub2(self.ag1(torch.cat([x1, x0], dim=1)), self.res_extra2(residue(out1)))
        out2 = self.output2(self.ag2_en(torch.cat([x2, x1], dim=1)))
        x3 = self.sub3(self.ag2(torch.cat([x2, x1, x0], dim=1)), self.res_extra3(residue(out2)))
        out3 = self.output3(self.ag_en(torch.cat([x3, x2, x1], dim=1)))
        return out3.contiguous(), out2.contiguous(), out1.contiguous()


def hct_ffn_adapter(checkpoint) -> dict:
    """The authors' state dict minus the InstanceNorm parameters (``*.ins.*``) their forward never uses."""
    return drop_keys(default_adapter(checkpoint), contains=(".ins.",))


_BASE = "https://github.com/cschenxiang/HCT-FFN/raw/0aa6526e4642dc4efa3e49ab29700fa7a312a318/experiment/HCT-FFN/model"

# Tiles of 128 bound the attention's cost (about 2.1 M MACs per pixel instead of 1.2 M + 54 H W) and
# memory; on the five Rain200H samples they also scored best (31.6 dB; 31.5 with 256, 31.2 whole).
# Half precision measured on an H200 with the released rain100h weights (benchmarks/RESULTS.md): finite
# in bf16 and fp16 on random, black and white inputs, 51.1 dB (bf16) and 69.4 dB (fp16) from fp32.
ARCHITECTURE = Architecture(
    name="hct-ffn",
    title="HCT-FFN",
    builder=HCTFFN,
    default_config={"n_feats": N_FEATS, "n_resblocks": 3},
    contract=Contract(value_range=(0.0, 255.0), output=0, min_size=4, global_context=True, tile=128,
                      bytes_per_pixel=8192, half_precision=True),
    paper="X. Chen, J. Pan, J. Lu, Z. Fan, H. Li: Hybrid CNN-Transformer Feature Fusion for Single Image "
          "Deraining. AAAI 2023",
    url="https://github.com/cschenxiang/HCT-FFN",
    licence="unstated",
    description="Hybrid CNN-transformer guided by a rain residue image; attention cost grows with image size.",
    default_variant="rain100h",
    adapter=hct_ffn_adapter,
)

MODELS = [
    ModelEntry(
        arch="hct-ffn", variant="rain100h", trained_on="Rain100H (1800 training pairs: the set later called Rain200H)",
        source=WeightSource(kind="url", filename="hct-ffn-rain100h.pt", url=f"{_BASE}/model_best_Rain100H.pt",
                            sha256="3c072706a7693c55e60324db0bea2eefd32edea1247b6bee21f0c9c4d62a4a29", size=3595067),
    ),
    ModelEntry(
        arch="hct-ffn", variant="rain100l", trained_on="Rain100L (200 training pairs)",
        source=WeightSource(kind="url", filename="hct-ffn-rain100l.pt", url=f"{_BASE}/model_best_Rain100L.pt",
                            sha256="fa7b9d3227743844da34036a781ca996245aab1c199ce4a21b719c7d15596d8e", size=3595067),
    ),
]
