"""Restormer-style building blocks (Zamir et al., CVPR 2022), as GLGFN and DRSformer use them.

* ``LayerNorm``: per-pixel LayerNorm over the channels, parameters nested as ``body.weight`` /
  ``body.bias`` as in the authors' checkpoints ('WithBias'; 'BiasFree' scales without centring).
* ``Downsample`` / ``Upsample``: 3x3 convolution and pixel (un)shuffle by 2 (key ``body.0``).
* ``ChannelAttention`` (MDTA) and ``GatedFeedForward`` (GDFN), the two halves of a Restormer block.
* ``TransformerBlock``: ``x + attn(norm1(x))``, then ``+ ffn(norm2(x))``, for any attention and
  feed-forward layer that take ``(normalised, residual)`` (DRSformer plugs in its own).
* ``cosine_gram`` and ``fold_heads``: the channel Gram matrix of transposed attention, and the
  output projection folded with the per-head maps into one matrix, so the image is multiplied once.

The 1x1 convolutions are matrix products over channels-last pixel rows (``pointwise``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pointwise import Pointwise, mix_channels

_LN_EPS = 1e-5


def channel_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """LayerNorm over the channels of every pixel of an N x C x H x W tensor (population variance)."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, eps)
    return y.permute(0, 3, 1, 2)


class _NormParameters(nn.Module):
    """Holds a LayerNorm's affine parameters (the released checkpoints nest them as ``body``)."""

    def __init__(self, channels: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None


class LayerNorm(nn.Module):
    """Restormer's per-pixel LayerNorm over channels, eps 1e-5 (keys ``body.weight``, ``body.bias``).

    ``with_bias=False`` is Restormer's 'BiasFree' variant: it scales by the inverse standard
    deviation without subtracting the mean, and has no bias.
    """

    def __init__(self, channels: int, with_bias: bool = True):
        super().__init__()
        self.body = _NormParameters(channels, with_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.body.bias is not None:
            return channel_layer_norm(x, self.body.weight, self.body.bias, _LN_EPS)
        nhwc = x.permute(0, 2, 3, 1)
        var = nhwc.var(dim=-1, keepdim=True, unbiased=False)
        return (nhwc * torch.rsqrt(var + _LN_EPS) * self.body.weight).permute(0, 3, 1, 2)


class Downsample(nn.Module):
    """Halve the resolution: 3x3 conv to n/2 channels, then pixel-unshuffle to 2n channels."""

    def __init__(self, n: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution: 3x3 conv to 2n channels, then pixel-shuffle to n/2 channels."""

    def __init__(self, n: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n, n * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """N x (heads*c) x H x W -> N x heads x c x (H*W) (a view)."""
    n, ch, h, w = x.shape
    return x.reshape(n, heads, ch // heads, h * w)


def cosine_gram(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """Per head, the cosine similarities between the channels of q and of k over all pixels.

    As ``F.normalize(q) @ F.normalize(k)^T`` with vectors over H*W (eps 1e-12); the norms come from
    a plain sum of squares (in float32), which on channels-last maps is far faster than a strided
    ``vector_norm``, and the maps are normalised before the product so that half precision cannot
    overflow.
    """

    def normalize(x: torch.Tensor) -> torch.Tensor:
        norm = x.float().square().sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12)
        return _split_heads(x / norm.to(x.dtype), heads)

    return normalize(q) @ normalize(k).transpose(-2, -1)


def fold_heads(projection: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """``projection @ blockdiag(maps)`` per sample: the output projection (O x heads*c) of a
    per-head channel mixing (N x heads x c x c) is one N x O x (heads*c) matrix."""
    n, heads, c = maps.shape[:3]
    blocks = projection.reshape(-1, heads, c).transpose(0, 1)  # heads x O x c
    return torch.matmul(blocks, maps).transpose(1, 2).reshape(n, -1, heads * c)


def attention_output(maps: torch.Tensor, project: Pointwise, v: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``residual + project(blockdiag(maps) @ v)``, the image multiplied once (see ``fold_heads``).

    ``maps`` is N x heads x c x c, ``v`` N x (heads*c) x H x W.
    """
    return mix_channels(v, fold_heads(project.matrix, maps), project.bias, residual)


class ChannelAttention(nn.Module):
    """Multi-Dconv head Transposed Attention: softmax over a c x c channel Gram matrix per head."""

    def __init__(self, dim: int, heads: int, bias: bool = False):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = Pointwise(dim, dim * 3, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = Pointwise(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual`` plus the attention output for ``x`` (the normalised residual)."""
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        attn = torch.softmax(cosine_gram(q, k, self.heads) * self.temperature, dim=-1)
        return attention_output(attn, self.project_out, v, residual)


class GatedFeedForward(nn.Module):
    """Gated-Dconv feed-forward: 1x1 to 2h, depthwise 3x3, gelu(first half) * second half, 1x1 back."""

    def __init__(self, dim: int, expansion: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = Pointwise(dim, hidden * 2, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = Pointwise(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual`` plus the feed-forward output for ``x``."""
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a).mul_(b), residual)


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``x + ffn(norm2(x))`` (keys ``norm1``, ``attn``, ``norm2``, ``ffn``).

    ``attn`` and ``ffn`` are called as ``layer(normalised, residual)`` and add the residual
    themselves, inside their last matrix product. Without them: Restormer's MDTA and GDFN.
    """

    def __init__(self, dim: int, heads: int = 1, expansion: float = 2.66, *, attn: nn.Module | None = None,
                 ffn: nn.Module | None = None, with_bias: bool = True):
        super().__init__()
        self.norm1 = LayerNorm(dim, with_bias)
        self.attn = attn if attn is not None else ChannelAttention(dim, heads)
        self.norm2 = LayerNorm(dim, with_bias)
        self.ffn = ffn if ffn is not None else GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(self.norm1(x), x)
        return self.ffn(self.norm2(x), x)
