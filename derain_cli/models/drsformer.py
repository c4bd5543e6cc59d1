"""DRSformer (Chen et al., CVPR 2023): a sparse-attention transformer for single-image deraining.

Our own implementation, written from a clean-room description of the authors' released network.
Parameter names and shapes equal the released checkpoints, so they load strictly and give the
authors' outputs (to float rounding). Two released layouts exist: with the MEFC blocks
(``encoder_level0`` and ``refinement``; Rain200H, DID-Data, DDN-Data) and without them (Rain200L,
SPA-Data); ``mefc=False`` builds the latter and ``config_for_state_dict`` tells them apart.

How the forward pass is organised (results equal the straightforward formulation):

* Activations are kept channels-last, so 1x1 convolutions are plain matrix products over the
  pixel rows and the many depthwise convolutions take oneDNN's fast channels-last path.
* Residual additions, ReLUs and channel concatenations feeding a 1x1 convolution are fused into
  the matrix products (``addmm``/``baddbmm``) or done in place, to avoid large temporaries.
* Top-k attention: one ``topk`` call at the largest k gives the four masks (they are prefixes of
  the sorted selection); the four weighted sparse softmaxes, the value product and the output
  projection collapse into one dim x dim matrix per image applied to the values once. The Gram
  matrix and its normalisation run in float32 even under autocast.
* The feed-forward network's grouped convolutions with two input channels per group are computed
  as depthwise convolutions over a channel arrangement that puts the two members of every group
  in the two halves, followed by one addition of the halves; the arrangement is folded into the
  first 1x1 convolution's output order.
* In the MEFC blocks, the trailing 1x1 convolution of every candidate operation, the per-image
  operation weight and the block's output convolution are multiplied into one matrix per
  operation, so the eight operation outputs are never concatenated.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ModelError
from .registry import Architecture, Contract, ModelEntry, WeightSource, strip_prefix

__all__ = ["DRSformer", "Attention", "FeedForward", "TransformerBlock", "config_for_state_dict", "has_mefc"]

# Prefixes of the parameters that only the MEFC layout has.
MEFC_PREFIXES = ("encoder_level0.", "refinement.")
# Fractions of the channels kept by the four sparse attention masks (numerator, denominator).
_TOPK_FRACTIONS = ((1, 2), (2, 3), (3, 4), (4, 5))
_LN_EPS = 1e-5
_NORMALIZE_EPS = 1e-12


# -- layout helpers ---------------------------------------------------------------------------


def _channels_last(x: Tensor) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _rows(x: Tensor) -> Tensor:
    """The (B*H*W, C) matrix of an image tensor (a view when it is channels-last)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _image(rows: Tensor, batch: int, height: int, width: int) -> Tensor:
    """A (B*H*W, C) or (B, H*W, C) matrix seen as a channels-last (B, C, H, W) image (a view)."""
    return rows.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def _matrix(conv: nn.Conv2d) -> Tensor:
    """The (out, in) matrix of a 1x1 convolution."""
    return conv.weight.flatten(1)


def _pointwise(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 convolution as a matrix product over channels-last pixel rows."""
    b, _, h, w = x.shape
    return _image(F.linear(_rows(x), _matrix(conv), conv.bias), b, h, w)


# -- building blocks --------------------------------------------------------------------------


class _NormParameters(nn.Module):
    """Holds a LayerNorm's affine parameters (the released checkpoints nest them as ``body``)."""

    def __init__(self, channels: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None


class LayerNorm(nn.Module):
    """Per-pixel LayerNorm over channels (eps 1e-5). ``BiasFree`` scales without centring."""

    def __init__(self, channels: int, layer_norm_type: str = "WithBias"):
        super().__init__()
        if layer_norm_type not in ("WithBias", "BiasFree"):
            raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', not {layer_norm_type!r}")
        self.body = _NormParameters(channels, with_bias=layer_norm_type == "WithBias")

    def forward(self, x: Tensor) -> Tensor:
        nhwc = x.permute(0, 2, 3, 1)
        if self.body.bias is not None:
            out = F.layer_norm(nhwc, (x.shape[1],), self.body.weight, self.body.bias, _LN_EPS)
        else:
            var = nhwc.var(dim=-1, keepdim=True, unbiased=False)
            out = nhwc * torch.rsqrt(var + _LN_EPS) * self.body.weight
        return out.permute(0, 3, 1, 2)


def _column_norms(rows: Tensor, chunk: int = 4096) -> Tensor:
    """Euclidean norms (float32) of the columns of (B, N, C) ``rows``, over N.

    Summing squares over cache-sized blocks of rows is several times faster than a strided
    ``vector_norm`` and at least as accurate.
    """
    total: Optional[Tensor] = None
    for block in rows.split(chunk, dim=1):
        squares = block.float().square().sum(dim=1)
        total = squares if total is None else total.add_(squares)
    return total.sqrt_()


def topk_sizes(channels: int) -> list[int]:
    """How many entries per row each of the four sparse attention masks keeps."""
    return [channels * num // den for num, den in _TOPK_FRACTIONS]


def sparse_attention_mix(scores: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """``sum_i weights[i] * softmax(top-k_i of each row of scores)`` as a dense matrix.

    ``scores`` is (..., C, C); mask i keeps the ``topk_sizes(C)[i]`` largest entries of each row
    (``torch.topk``) and gives the others probability 0. One ``topk`` at the largest k gives all
    four selections, as each is a prefix of the sorted one.
    """
    sizes = topk_sizes(scores.shape[-1])
    values, index = scores.topk(max(sizes), dim=-1, largest=True, sorted=True)
    exp = (values - values[..., :1]).exp()
    coef = torch.zeros_like(exp)
    for k, weight in zip(sizes, weights):
        coef[..., :k] += weight / exp[..., :k].sum(dim=-1, keepdim=True)
    return torch.zeros_like(scores).scatter_(-1, index, exp * coef)


class Attention(nn.Module):
    """Top-k sparse channel attention (TKSA): C x C attention per head over all pixels."""

    def __init__(self, dim: int, num_heads: int, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.attn1 = nn.Parameter(torch.tensor([0.2]))
        self.attn2 = nn.Parameter(torch.tensor([0.2]))
        self.attn3 = nn.Parameter(torch.tensor([0.2]))
        self.attn4 = nn.Parameter(torch.tensor([0.2]))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def attention_maps(self, q: Tensor, k: Tensor) -> Tensor:
        """Sparse attention matrices (B, heads, C, C) from query/key rows (B, H*W, dim), in float32."""
        heads = self.num_heads
        with torch.autocast(device_type=q.device.type, enabled=False):
            qh = q.float().unflatten(-1, (heads, -1)).permute(0, 2, 3, 1)  # (B, heads, C, HW)
            kh = k.float().unflatten(-1, (heads, -1)).permute(0, 2, 1, 3)  # (B, heads, HW, C)
            # Per image: torch.matmul would copy the strided batch of a larger batch.
            gram = torch.stack([qi @ ki for qi, ki in zip(qh, kh)])
            q_norm = _column_norms(q).unflatten(-1, (heads, -1)).clamp_min(_NORMALIZE_EPS)
            k_norm = _column_norms(k).unflatten(-1, (heads, -1)).clamp_min(_NORMALIZE_EPS)
            scores = gram / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2)) * self.temperature.float()
            weights = [w.float() for w in (self.attn1, self.attn2, self.attn3, self.attn4)]
            return sparse_attention_mix(scores, weights)

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Attention output for image ``x``, plus ``residual`` (same shape) if given."""
        b, dim, h, w = x.shape
        qkv = self.qkv_dwconv(_pointwise(x, self.qkv))
        rows = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * dim)
        q, k, v = rows[..., :dim], rows[..., dim : 2 * dim], rows[..., 2 * dim :]
        maps = self.attention_maps(q, k)
        # project_out(blockdiag(maps) @ v) == (project_out @ blockdiag(maps)) @ v
        proj = _matrix(self.project_out).unflatten(1, (self.num_heads, -1))  # (dim, heads, C)
        mix = torch.einsum("ohc,bhcd->bohd", proj.to(maps.dtype), maps).reshape(b, dim, dim)
        mix = mix.to(v.dtype).transpose(1, 2)
        if residual is None:
            out = torch.bmm(v, mix)
        else:
            out = torch.baddbmm(residual.permute(0, 2, 3, 1).reshape(b, h * w, dim), v, mix)
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        return _image(out, b, h, w)


class FeedForward(nn.Module):
    """Mixed-scale feed-forward network (MSFN): 3x3 and 5x5 depthwise branches mixed pairwise.

    Each half of the released network computes ``relu(G(cat(a, b)))`` from its ``n`` channels of
    ``y = project_in(x)``, with ``a = relu(dw3(y))``, ``b = relu(dw5(y))`` and ``G`` a grouped
    convolution whose group g reads channels 2g and 2g+1 of the concatenation (mostly two
    neighbouring ``a`` or two neighbouring ``b`` channels). Here ``y``'s even and odd channels are
    produced separately, so every group's two inputs lie in two different tensors at the same
    position, and ``G`` becomes depthwise convolutions whose outputs are added: no concatenation.
    """

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.hidden = hidden
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv3x3 = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.dwconv5x5 = nn.Conv2d(hidden * 2, hidden * 2, 5, padding=2, groups=hidden * 2, bias=bias)
        self.dwconv3x3_1 = nn.Conv2d(hidden * 2, hidden, 3, padding=1, groups=hidden, bias=bias)
        self.dwconv5x5_1 = nn.Conv2d(hidden * 2, hidden, 5, padding=2, groups=hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden * 2, dim, kernel_size=1, bias=bias)

    def _branches(self, x: Tensor, channels: slice) -> tuple[Tensor, Tensor]:
        """relu(dw3(y)), relu(dw5(y)) for the channels ``channels`` of y = project_in(x)."""
        b, _, h, w = x.shape
        pick = (lambda t: None if t is None else t[channels])  # noqa: E731
        y = _image(F.linear(_rows(x), pick(_matrix(self.project_in)), pick(self.project_in.bias)), b, h, w)
        n = y.shape[1]
        small = F.conv2d(y, pick(self.dwconv3x3.weight), pick(self.dwconv3x3.bias), padding=1, groups=n)
        large = F.conv2d(y, pick(self.dwconv5x5.weight), pick(self.dwconv5x5.bias), padding=2, groups=n)
        return small.relu_(), large.relu_()

    def _half(self, x: Tensor, part: int, mixer: nn.Conv2d) -> list[Tensor]:
        """The released half ``part`` (0 or 1) as pieces covering its groups in order."""
        n = self.hidden
        n_even, n_odd = (n + 1) // 2, n // 2
        a_even, b_even = self._branches(x, slice(part * n, (part + 1) * n, 2))
        a_odd, b_odd = self._branches(x, slice(part * n + 1, (part + 1) * n, 2))
        pad = mixer.kernel_size[0] // 2
        first, second = mixer.weight[:, 0:1], mixer.weight[:, 1:2]  # (n, 1, k, k)
        bias = mixer.bias if mixer.bias is not None else None

        def conv(t: Tensor, weight: Tensor, groups: slice, with_bias: bool = False) -> Tensor:
            b = bias[groups] if (with_bias and bias is not None) else None
            return F.conv2d(t, weight[groups], b, padding=pad, groups=t.shape[1])

        low = conv(a_even, first, slice(0, n_even), with_bias=True)  # groups 0 .. n_even-1
        low[:, :n_odd] += conv(a_odd, second, slice(0, n_odd))
        if n % 2 == 0:  # groups n/2 .. n-1 read (b[2i], b[2i+1])
            high = conv(b_even, first, slice(n_even, n), with_bias=True).add_(conv(b_odd, second, slice(n_even, n)))
        else:  # group n_odd reads (a[n-1], b[0]); the rest read (b[2i-1], b[2i])
            from_b_even = conv(b_even, second, slice(n_odd, n))
            low[:, n_odd:] += from_b_even[:, :1]
            high = conv(b_odd, first, slice(n_even, n), with_bias=True).add_(from_b_even[:, 1:])
        return [low.relu_(), high.relu_()]

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """FFN output for image ``x``, plus ``residual`` (same shape) if given."""
        b, dim, h, w = x.shape
        out_w = _matrix(self.project_out)
        out: Optional[Tensor] = None
        column = 0
        for part, mixer in enumerate((self.dwconv3x3_1, self.dwconv5x5_1)):
            for piece in self._half(x, part, mixer):
                rows, block = _rows(piece), out_w[:, column : column + piece.shape[1]].t()
                column += piece.shape[1]
                if out is not None:
                    out.addmm_(rows, block)
                elif residual is not None:
                    out = torch.addmm(_rows(residual), rows, block)
                else:
                    out = rows @ block
        if self.project_out.bias is not None:
            out += self.project_out.bias
        return _image(out, b, h, w)


class TransformerBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(self.norm1(x), residual=x)
        return self.ffn(self.norm2(x), residual=x)


# -- MEFC: mixture of experts feature compensator ---------------------------------------------

_MEFC_STEPS = 4
_MEFC_OA_HIDDEN = 64


class _Wrapped(nn.Module):
    """A container whose layers sit under ``op`` (as in the released key names)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.op = nn.Sequential(*layers)


def _depthwise(channels: int, k: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, k, padding=dilation * (k // 2), dilation=dilation, groups=channels,
                     bias=False)


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=False)


class SepConv(_Wrapped):
    """depthwise kxk -> 1x1 -> ReLU -> depthwise kxk -> 1x1 (the last 1x1 is applied by the caller)."""

    def __init__(self, channels: int, k: int):
        super().__init__(_depthwise(channels, k), _conv1x1(channels, channels), nn.ReLU(),
                         _depthwise(channels, k), _conv1x1(channels, channels))

    def features(self, s: Tensor) -> Tensor:
        """The input of the trailing 1x1 convolution (for k=1 the depthwise scales are folded)."""
        dw1, pw1, _, dw2, _ = self.op
        if dw1.kernel_size[0] == 1:
            b, _, h, w = s.shape
            u = F.linear(_rows(s), _matrix(pw1) * dw1.weight.flatten()).relu_()
            return _image(u, b, h, w)
        return dw2(_pointwise(dw1(s), pw1).relu_())

    def tail(self) -> Tensor:
        dw2, pw2 = self.op[3], self.op[4]
        return _matrix(pw2) * dw2.weight.flatten() if dw2.kernel_size[0] == 1 else _matrix(pw2)


class DilConv(_Wrapped):
    """depthwise kxk with dilation 2 -> 1x1 (the 1x1 is applied by the caller)."""

    def __init__(self, channels: int, k: int):
        super().__init__(_depthwise(channels, k, dilation=2), _conv1x1(channels, channels))

    def features(self, s: Tensor) -> Tensor:
        return self.op[0](s)

    def tail(self) -> Tensor:
        return _matrix(self.op[1])


class AvgPool3x3(nn.Module):
    """3x3 average over the pixels inside the image (count_include_pad=False)."""

    def features(self, s: Tensor) -> Tensor:
        return F.avg_pool2d(s, 3, stride=1, padding=1, count_include_pad=False)

    def tail(self) -> Optional[Tensor]:
        return None


class OperationLayer(nn.Module):
    """``relu(_out(cat_j(op_j(s) * w_j)))`` over the eight candidate operations."""

    def __init__(self, channels: int):
        super().__init__()
        self._ops = nn.ModuleList([
            SepConv(channels, 1), SepConv(channels, 3), SepConv(channels, 5), SepConv(channels, 7),
            DilConv(channels, 3), DilConv(channels, 5), DilConv(channels, 7), AvgPool3x3(),
        ])
        self._out = nn.Sequential(_conv1x1(channels * len(self._ops), channels), nn.ReLU())

    def forward(self, s: Tensor, weights: Tensor) -> Tensor:
        """Rows (B, H*W, C) of the layer's output; ``weights`` (B, 8) mixes the operations."""
        b, c, h, w = s.shape
        out_w = _matrix(self._out[0])
        out: Optional[Tensor] = None
        for j, op in enumerate(self._ops):
            tail = op.tail()
            block = out_w[:, j * c : (j + 1) * c]
            combined = block if tail is None else block @ tail  # (C, C)
            mat = (weights[:, j, None, None] * combined).transpose(1, 2)  # (B, C, C), applied on the right
            rows = op.features(s).permute(0, 2, 3, 1).reshape(b, h * w, c)
            out = torch.bmm(rows, mat.to(rows.dtype)) if out is None else out.baddbmm_(rows, mat.to(rows.dtype))
        return out.relu_()


class OALayer(nn.Module):
    """Per-image operation weights (B, steps, ops) logits from globally pooled features."""

    def __init__(self, channels: int, steps: int = _MEFC_STEPS, num_ops: int = 8):
        super().__init__()
        self.steps, self.num_ops = steps, num_ops
        self.ca_fc = nn.Sequential(nn.Linear(channels, _MEFC_OA_HIDDEN), nn.ReLU(),
                                   nn.Linear(_MEFC_OA_HIDDEN, steps * num_ops))

    def forward(self, x: Tensor) -> Tensor:
        return self.ca_fc(x.mean(dim=(2, 3))).view(-1, self.steps, self.num_ops)


class GroupOLs(nn.Module):
    """``s = relu(1x1(x))``, then ``s = relu(op_i(s) + s)`` for the four steps."""

    def __init__(self, channels: int, steps: int = _MEFC_STEPS):
        super().__init__()
        self.preprocess = _Wrapped(_conv1x1(channels, channels), nn.ReLU())
        self._ops = nn.ModuleList([OperationLayer(channels) for _ in range(steps)])

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        b, _, h, w = x.shape
        s = _pointwise(x, self.preprocess.op[0]).relu_()
        for i, layer in enumerate(self._ops):
            s = _image(layer(s, weights[:, i]).add_(s.permute(0, 2, 3, 1).reshape(b, h * w, -1)).relu_(), b, h, w)
        return s


class MEFC(nn.Module):
    """Mixture of experts feature compensator: image-dependent mixture of eight conv operations."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.ModuleList([OALayer(channels), GroupOLs(channels)])

    def forward(self, x: Tensor) -> Tensor:
        weights = self.layers[0](x).softmax(dim=-1)
        return self.layers[1](x, weights)


# -- the network ------------------------------------------------------------------------------


class _Resample(nn.Module):
    """3x3 convolution then pixel (un)shuffle by 2: keys ``body.0.weight``."""

    def __init__(self, channels: int, out_channels: int, shuffle: nn.Module):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, out_channels, 3, padding=1, bias=False), shuffle)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _downsample(channels: int) -> _Resample:
    return _Resample(channels, channels // 2, nn.PixelUnshuffle(2))


def _upsample(channels: int) -> _Resample:
    return _Resample(channels, channels * 2, nn.PixelShuffle(2))


class _PatchEmbed(nn.Module):
    """3x3 convolution from the image to ``dim`` channels: key ``proj.weight``."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def _stage(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    return nn.Sequential(*[TransformerBlock(dim, heads, ffn, bias, ln) for _ in range(n)])


def _fuse_reduce(up: Tensor, skip: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(cat(up, skip))`` for a 1x1 ``conv``, without building the concatenation."""
    b, c, h, w = up.shape
    weight = _matrix(conv)
    out = F.linear(_rows(up), weight[:, :c], conv.bias)
    return _image(out.addmm_(_rows(skip), weight[:, c:].t()), b, h, w)


class DRSformer(nn.Module):
    """DRSformer: U-shaped transformer of sparse-attention blocks, optional MEFC blocks.

    Input RGB in [0, 1], N x 3 x H x W with H and W multiples of 8; output the derained image
    (input plus predicted residual, not clamped). The keyword arguments are the authors' (the
    defaults are the released configuration) plus ``mefc``: False builds the layout without
    ``encoder_level0``/``refinement`` used for the Rain200L and SPA-Data weights.
    """

    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                 num_blocks: Sequence[int] = (4, 6, 6, 8), heads: Sequence[int] = (1, 2, 4, 8),
                 ffn_expansion_factor: float = 2.66, bias: bool = False, LayerNorm_type: str = "WithBias",
                 mefc: bool = True):
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError("num_blocks and heads must have four entries (three encoder levels and the latent)")
        ffn, ln = ffn_expansion_factor, LayerNorm_type
        self.mefc = mefc
        self.patch_embed = _PatchEmbed(inp_channels, dim)
        if mefc:
            self.encoder_level0 = MEFC(dim)
        self.encoder_level1 = _stage(num_blocks[0], dim, heads[0], ffn, bias, ln)
        self.down1_2 = _downsample(dim)
        self.encoder_level2 = _stage(num_blocks[1], dim * 2, heads[1], ffn, bias, ln)
        self.down2_3 = _downsample(dim * 2)
        self.encoder_level3 = _stage(num_blocks[2], dim * 4, heads[2], ffn, bias, ln)
        self.down3_4 = _downsample(dim * 4)
        self.latent = _stage(num_blocks[3], dim * 8, heads[3], ffn, bias, ln)
        self.up4_3 = _upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = _stage(num_blocks[2], dim * 4, heads[2], ffn, bias, ln)
        self.up3_2 = _upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = _stage(num_blocks[1], dim * 2, heads[1], ffn, bias, ln)
        self.up2_1 = _upsample(dim * 2)
        self.decoder_level1 = _stage(num_blocks[0], dim * 2, heads[0], ffn, bias, ln)
        if mefc:
            self.refinement = MEFC(dim * 2)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"DRSformer needs height and width divisible by 8, got {tuple(x.shape[-2:])}")
        f = self.patch_embed(_channels_last(x))
        if self.mefc:
            f = self.encoder_level0(f)
        e1 = self.encoder_level1(f)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        z = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(_fuse_reduce(self.up4_3(z), e3, self.reduce_chan_level3))
        d2 = self.decoder_level2(_fuse_reduce(self.up3_2(d3), e2, self.reduce_chan_level2))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], dim=1))
        if self.mefc:
            d1 = self.refinement(d1)
        return (self.output(d1) + x).contiguous()
