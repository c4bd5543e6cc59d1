"""DRSformer (Chen et al., CVPR 2023): a sparse-attention transformer for single-image deraining.

Our own implementation, written from a clean-room description of the authors' released network.
Parameter names and shapes equal the released checkpoints, so they load strictly and give the
authors' outputs (to float rounding). Two released layouts exist: with the MEFC blocks
(``encoder_level0`` and ``refinement``; Rain200H, DID-Data, DDN-Data) and without them (Rain200L,
SPA-Data); ``mefc=False`` builds the latter and ``config_for_state_dict`` tells them apart.

How the forward pass is organised (same results as the straightforward formulation, to float
rounding; about 3x less CPU time and memory than it):

* Activations are channels-last, so 1x1 convolutions are matrix products over pixel rows and the
  many depthwise convolutions take oneDNN's fast channels-last path.
* Residual additions and concatenations that feed a 1x1 convolution are folded into the matrix
  products (``addmm``/``baddbmm``); ReLUs and sums are done in place on fresh temporaries.
* Attention and feed-forward layers run in horizontal stripes (``StripedLayer``) with the rows of
  context their convolutions need, so their wide temporaries stay small and in cache.
* Top-k attention: one ``topk`` at the largest k gives all four masks (each is a prefix of the
  sorted selection); the four weighted sparse softmaxes and the output projection make one
  dim x dim matrix applied to the values once. Gram matrices, norms, top-k and softmax run in
  float32 even under autocast.
* The feed-forward network's grouped convolutions (two input channels per group) become
  depthwise convolutions on separately computed even and odd hidden channels plus one addition.
* In the MEFC blocks the trailing 1x1 convolution of every operation, its per-image weight and
  the block's output convolution are multiplied into one matrix per operation, so the eight
  operation outputs are never concatenated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ModelError
from ...weights import WeightSource
from .._adapters import default_adapter, strip_prefix
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import add_relu, channels_last, layer_of
from ..layers.pointwise import accumulate, conv_matrix, image_of_rows, mix_channels, pixel_rows, pointwise
from ..layers.restormer import Downsample, TransformerBlock, Upsample, fold_heads
from ..layers.sparse_attention import sparse_attention_mix

__all__ = ["Attention", "DRSformer", "FeedForward", "config_for_state_dict", "has_mefc", "transformer_block"]

# Prefixes of the parameters that only the MEFC layout has.
MEFC_PREFIXES = ("encoder_level0.", "refinement.")
_NORMALIZE_EPS = 1e-12


# -- building blocks --------------------------------------------------------------------------


def _sum_squares(rows: Tensor, chunk: int = 4096) -> Tensor:
    """Sums of squares (float32) of the columns of an (N, C) matrix.

    Summing over cache-sized blocks of rows is several times faster than a strided
    ``vector_norm`` over N and at least as accurate.
    """
    total: Tensor | None = None
    for block in rows.split(chunk):
        squares = block.float().square().sum(dim=0)
        total = squares if total is None else total.add_(squares)
    assert total is not None  # split yields at least one block
    return total


class StripedLayer(nn.Module):
    """A layer evaluated on the CPU in horizontal stripes of about ``STRIPE_PIXELS`` pixels (at
    least ``MIN_STRIPE_ROWS`` rows), with the rows of context its convolutions need: its wide
    temporaries then stay small and in cache. The result equals the whole-image computation.
    Other devices take the whole image at once (large kernels suit them better)."""

    STRIPE_PIXELS = 8192  # measured best between 4k and 16k pixels on one CPU core
    MIN_STRIPE_ROWS = 32

    def stripes(self, x: Tensor) -> list[slice]:
        """The row ranges in which to process image ``x``."""
        height, width = x.shape[-2:]
        if x.device.type != "cpu":
            return [slice(0, height)]
        step = max(self.MIN_STRIPE_ROWS, self.STRIPE_PIXELS // width)
        return [slice(top, min(height, top + step)) for top in range(0, height, step)]


class Attention(StripedLayer):
    """Top-k sparse channel attention (TKSA): C x C attention per head over all pixels.

    The image is read in stripes: each stripe's queries and keys add to the Gram matrices and the
    squared norms (float32, also under autocast), its values are kept; then the four sparse
    softmaxes and the output projection make one dim x dim matrix applied to the values once.
    """

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

    def _qkv_rows(self, x: Tensor, rows: slice) -> Tensor:
        """Rows (len(rows)*W, 3*dim) of qkv_dwconv(qkv(x)) for image rows ``rows`` of one image."""
        lo, hi = max(0, rows.start - 1), min(x.shape[2], rows.stop + 1)  # one row of 3x3 context
        qkv = self.qkv_dwconv(pointwise(x[:, :, lo:hi], self.qkv))[:, :, rows.start - lo : rows.stop - lo]
        return pixel_rows(qkv)

    def _mixing_matrix(self, gram: Tensor, squares: Tensor) -> Tensor:
        """(B, dim, dim) matrix ``project_out @ blockdiag(sparse attention)`` from the per-head Gram
        matrices q k^T (B, heads, C, C) and the squared norms of q and k (B, 2*dim), in float32."""
        heads, dim = self.num_heads, squares.shape[1] // 2
        norms = squares.sqrt().clamp_min(_NORMALIZE_EPS)
        q_norm, k_norm = norms[:, :dim].unflatten(-1, (heads, -1)), norms[:, dim:].unflatten(-1, (heads, -1))
        scores = gram / (q_norm.unsqueeze(-1) * k_norm.unsqueeze(-2)) * self.temperature.float()
        weights = [w.float() for w in (self.attn1, self.attn2, self.attn3, self.attn4)]
        maps = sparse_attention_mix(scores, weights)  # (B, heads, C, C)
        return fold_heads(conv_matrix(self.project_out).float(), maps)  # (B, dim, dim)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """Attention output for image ``x``, plus ``residual`` (same shape) if given."""
        b, dim, h, w = x.shape
        heads = self.num_heads
        gram = x.new_zeros(b, heads, dim // heads, dim // heads, dtype=torch.float32)
        squares = x.new_zeros(b, 2 * dim, dtype=torch.float32)
        values = []
        for i in range(b):
            for rows in self.stripes(x):
                qkv = self._qkv_rows(x[i : i + 1], rows)
                with torch.autocast(device_type=x.device.type, enabled=False):
                    q = qkv[:, :dim].float().unflatten(-1, (heads, -1)).permute(1, 2, 0)  # (heads, C, n)
                    k = qkv[:, dim : 2 * dim].float().unflatten(-1, (heads, -1)).transpose(0, 1)  # (heads, n, C)
                    gram[i] += q @ k
                    squares[i] += _sum_squares(qkv[:, : 2 * dim])
                values.append(qkv[:, 2 * dim :])
        v = values[0] if len(values) == 1 else torch.cat(values)
        with torch.autocast(device_type=x.device.type, enabled=False):
            mix = self._mixing_matrix(gram, squares)
        # project_out(blockdiag(maps) @ v) == (project_out @ blockdiag(maps)) @ v
        v, mix = v.reshape(b, h * w, dim), mix.to(v.dtype).transpose(1, 2)
        if residual is None:
            out = torch.bmm(v, mix)
        else:
            out = torch.baddbmm(residual.permute(0, 2, 3, 1).reshape(b, h * w, dim), v, mix)
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        return image_of_rows(out, b, h, w)


class FeedForward(StripedLayer):
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

    def _branches(self, x: Tensor, channels: slice, keep: slice) -> tuple[Tensor, Tensor]:
        """relu(dw3(y)), relu(dw5(y)) on rows ``keep`` for the channels ``channels`` of project_in(x)."""

        def pick(t: Tensor) -> Tensor:
            return t[channels]

        def pick_bias(conv: nn.Conv2d) -> Tensor | None:
            return None if conv.bias is None else conv.bias[channels]

        y = mix_channels(x, pick(conv_matrix(self.project_in)), pick_bias(self.project_in))
        n = y.shape[1]
        small = F.conv2d(y, pick(self.dwconv3x3.weight), pick_bias(self.dwconv3x3), padding=1, groups=n)
        large = F.conv2d(y, pick(self.dwconv5x5.weight), pick_bias(self.dwconv5x5), padding=2, groups=n)
        return small[:, :, keep].relu_(), large[:, :, keep].relu_()

    def _half(self, x: Tensor, part: int, mixer: nn.Conv2d, rows: slice) -> list[Tensor]:
        """Half ``part`` (0 or 1) of the hidden features on rows ``rows`` of ``x``, as pieces
        covering its groups in order. Rows near the ends of ``x`` are wrong unless they are the
        image's own ends: ``x`` must extend 2 + mixer padding rows beyond ``rows`` there."""
        n = self.hidden
        n_even, n_odd = (n + 1) // 2, n // 2
        pad = mixer.kernel_size[0] // 2
        keep = slice(max(0, rows.start - pad), min(x.shape[2], rows.stop + pad))
        a_even, b_even = self._branches(x, slice(part * n, (part + 1) * n, 2), keep)
        a_odd, b_odd = self._branches(x, slice(part * n + 1, (part + 1) * n, 2), keep)
        first, second = mixer.weight[:, 0:1], mixer.weight[:, 1:2]  # (n, 1, k, k)

        def conv(t: Tensor, weight: Tensor, groups: slice, with_bias: bool = False) -> Tensor:
            bias = mixer.bias[groups] if (with_bias and mixer.bias is not None) else None
            return F.conv2d(t, weight[groups], bias, padding=pad, groups=t.shape[1])

        low = conv(a_even, first, slice(0, n_even), with_bias=True)  # groups 0 .. n_even-1
        low[:, :n_odd] += conv(a_odd, second, slice(0, n_odd))
        if n % 2 == 0:  # groups n/2 .. n-1 read (b[2i], b[2i+1])
            high = conv(b_even, first, slice(n_even, n), with_bias=True).add_(conv(b_odd, second, slice(n_even, n)))
        else:  # group n_odd reads (a[n-1], b[0]); the rest read (b[2i-1], b[2i])
            from_b_even = conv(b_even, second, slice(n_odd, n))
            low[:, n_odd:] += from_b_even[:, :1]
            high = conv(b_odd, first, slice(n_even, n), with_bias=True).add_(from_b_even[:, 1:])
        crop = slice(rows.start - keep.start, rows.stop - keep.start)
        return [low[:, :, crop].relu_(), high[:, :, crop].relu_()]

    def _stripe(self, x: Tensor, rows: slice, residual: Tensor | None) -> Tensor:
        """Output rows (len(rows)*W, dim) of one image ``x`` (1, dim, H, W) for image rows ``rows``."""
        out_w = conv_matrix(self.project_out)
        out: Tensor | None = None
        column = 0
        for part, mixer in enumerate((self.dwconv3x3_1, self.dwconv5x5_1)):
            reach = 2 + mixer.kernel_size[0] // 2  # rows of context: 5x5 branch, then the mixer
            lo, hi = max(0, rows.start - reach), min(x.shape[2], rows.stop + reach)
            local = slice(rows.start - lo, rows.stop - lo)
            for piece in self._half(x[:, :, lo:hi], part, mixer, local):
                block = out_w[:, column : column + piece.shape[1]].t()
                column += piece.shape[1]
                if out is None:
                    res = None if residual is None else pixel_rows(residual[:, :, rows])
                    out = pixel_rows(piece) @ block if res is None else torch.addmm(res, pixel_rows(piece), block)
                else:
                    accumulate(out, pixel_rows(piece), block)
        assert out is not None  # both mixers produce pieces
        if self.project_out.bias is not None:
            out += self.project_out.bias.to(out.dtype)
        return out

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        """FFN output for image ``x``, plus ``residual`` (same shape) if given (in stripes)."""
        b, dim, h, w = x.shape
        stripes = self.stripes(x)
        if b == 1 and len(stripes) == 1:
            return image_of_rows(self._stripe(x, stripes[0], residual), b, h, w)
        out: Tensor | None = None
        for i in range(b):
            for rows in stripes:
                part = self._stripe(x[i : i + 1], rows, None if residual is None else residual[i : i + 1])
                if out is None:
                    out = part.new_empty(b, h * w, dim)
                out[i, rows.start * w : rows.stop * w] = part
        assert out is not None  # b >= 1 and at least one stripe
        return image_of_rows(out, b, h, w)


def transformer_block(dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool,
                      layer_norm_type: str) -> TransformerBlock:
    """``x + attn(norm1(x))``, then ``x + ffn(norm2(x))``: a Restormer block with DRSformer's top-k
    sparse attention and mixed-scale feed-forward."""
    if layer_norm_type not in ("WithBias", "BiasFree"):
        raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', not {layer_norm_type!r}")
    return TransformerBlock(dim, attn=Attention(dim, num_heads, bias), ffn=FeedForward(dim, ffn_expansion_factor, bias),
                            with_bias=layer_norm_type == "WithBias")


# -- MEFC: mixture of experts feature compensator ---------------------------------------------

_MEFC_STEPS = 4
_MEFC_OA_HIDDEN = 64


class _Wrapped(nn.Module):
    """A container whose layers sit under ``op`` (as in the released key names)."""

    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.op = nn.Sequential(*layers)

    def conv(self, index: int) -> nn.Conv2d:
        """The convolution at ``op.<index>``."""
        return layer_of(self.op, index, nn.Conv2d)


class _Operation(nn.Module):
    """One of the candidate operations mixed by ``OperationLayer``.

    ``features(s)`` is the input of the operation's trailing 1x1 convolution and ``tail()`` that
    convolution's matrix (``None``: no convolution), so the layer can fold it into its own 1x1.
    """

    def features(self, s: Tensor) -> Tensor:
        raise NotImplementedError

    def tail(self) -> Tensor | None:
        raise NotImplementedError


def _depthwise(channels: int, k: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, k, padding=dilation * (k // 2), dilation=dilation, groups=channels,
                     bias=False)


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, bias=False)


class SepConv(_Wrapped, _Operation):
    """depthwise kxk -> 1x1 -> ReLU -> depthwise kxk -> 1x1 (the last 1x1 is applied by the caller)."""

    def __init__(self, channels: int, k: int):
        super().__init__(_depthwise(channels, k), _conv1x1(channels, channels), nn.ReLU(),
                         _depthwise(channels, k), _conv1x1(channels, channels))

    def features(self, s: Tensor) -> Tensor:
        """The input of the trailing 1x1 convolution (for k=1 the depthwise scales are folded)."""
        dw1, pw1, dw2 = self.conv(0), self.conv(1), self.conv(3)
        if dw1.kernel_size[0] == 1:
            return mix_channels(s, conv_matrix(pw1) * dw1.weight.flatten()).relu_()
        return dw2(pointwise(dw1(s), pw1).relu_())

    def tail(self) -> Tensor:
        dw2, pw2 = self.conv(3), self.conv(4)
        return conv_matrix(pw2) * dw2.weight.flatten() if dw2.kernel_size[0] == 1 else conv_matrix(pw2)


class DilConv(_Wrapped, _Operation):
    """depthwise kxk with dilation 2 -> 1x1 (the 1x1 is applied by the caller)."""

    def __init__(self, channels: int, k: int):
        super().__init__(_depthwise(channels, k, dilation=2), _conv1x1(channels, channels))

    def features(self, s: Tensor) -> Tensor:
        return self.op[0](s)

    def tail(self) -> Tensor:
        return conv_matrix(self.conv(1))


class AvgPool3x3(_Operation):
    """3x3 average over the pixels inside the image (count_include_pad=False)."""

    def features(self, s: Tensor) -> Tensor:
        return F.avg_pool2d(s, 3, stride=1, padding=1, count_include_pad=False)

    def tail(self) -> Tensor | None:
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
        out_w = conv_matrix(layer_of(self._out, 0, nn.Conv2d))
        out: Tensor | None = None
        for j in range(len(self._ops)):
            op = layer_of(self._ops, j, _Operation)
            tail = op.tail()
            block = out_w[:, j * c : (j + 1) * c]
            combined = block if tail is None else block @ tail  # (C, C)
            mat = (weights[:, j, None, None] * combined).transpose(1, 2)  # (B, C, C), applied on the right
            rows = op.features(s).permute(0, 2, 3, 1).reshape(b, h * w, c)
            out = torch.bmm(rows, mat) if out is None else accumulate(out, rows, mat)
        assert out is not None  # eight operations
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
        s = pointwise(x, self.preprocess.conv(0)).relu_()
        for i, layer in enumerate(self._ops):
            s = image_of_rows(add_relu(layer(s, weights[:, i]), s.permute(0, 2, 3, 1).reshape(b, h * w, -1)), b, h, w)
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


class _PatchEmbed(nn.Module):
    """3x3 convolution from the image to ``dim`` channels: key ``proj.weight``."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def _stage(n: int, dim: int, heads: int, ffn: float, bias: bool, ln: str) -> nn.Sequential:
    return nn.Sequential(*[transformer_block(dim, heads, ffn, bias, ln) for _ in range(n)])


def _fuse_reduce(up: Tensor, skip: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(cat(up, skip))`` for a 1x1 ``conv``, without building the concatenation."""
    c = up.shape[1]
    weight = conv_matrix(conv)
    out = mix_channels(up, weight[:, :c], conv.bias)
    accumulate(pixel_rows(out), pixel_rows(skip), weight[:, c:].t())  # pixel_rows(out) is a view of out
    return out


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
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = _stage(num_blocks[1], dim * 2, heads[1], ffn, bias, ln)
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = _stage(num_blocks[2], dim * 4, heads[2], ffn, bias, ln)
        self.down3_4 = Downsample(dim * 4)
        self.latent = _stage(num_blocks[3], dim * 8, heads[3], ffn, bias, ln)
        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = _stage(num_blocks[2], dim * 4, heads[2], ffn, bias, ln)
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = _stage(num_blocks[1], dim * 2, heads[1], ffn, bias, ln)
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = _stage(num_blocks[0], dim * 2, heads[0], ffn, bias, ln)
        if mefc:
            self.refinement = MEFC(dim * 2)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"DRSformer needs height and width divisible by 8, got {tuple(x.shape[-2:])}")
        f = self.patch_embed(channels_last(x))
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


# -- checkpoints and registry -----------------------------------------------------------------

RELEASED_CONFIG: dict[str, Any] = {
    "inp_channels": 3, "out_channels": 3, "dim": 48, "num_blocks": (4, 6, 6, 8), "heads": (1, 2, 4, 8),
    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias",
}


def has_mefc(state: Mapping[str, Any]) -> bool:
    """Whether a state dict has the MEFC blocks (the Rain200H/DID/DDN layout)."""
    return any(k.startswith(MEFC_PREFIXES) for k in state)


def config_for_state_dict(state: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments for a released checkpoint's state dict: the released configuration
    with ``mefc`` set to the layout the keys show."""
    return {**RELEASED_CONFIG, "mefc": has_mefc(state)}


def checkpoint_state(checkpoint: Any) -> dict:
    """The state dict in a DRSformer checkpoint.

    The authors' files are ``{'params': state_dict}``; ``params`` is preferred over ``params_ema``
    when both exist, and the usual other containers, bare state dicts and ``module.`` prefixes are
    accepted. Files from an older code version without the four top-k mixing weights (``attn1`` ..
    ``attn4``) are refused.
    """
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("params"), Mapping):
        state = strip_prefix({k: v for k, v in checkpoint["params"].items() if hasattr(v, "shape")}, "module.")
    else:
        state = default_adapter(checkpoint)
    if any(k.endswith(".attn.qkv.weight") for k in state) and not any(k.endswith(".attn.attn1") for k in state):
        raise ModelError(
            "the checkpoint lacks the top-k mixing weights attn1..attn4: it comes from an older DRSformer "
            "code version that is not supported"
        )
    return state


def _adapter(mefc: bool):
    """A checkpoint adapter for one layout that names the right variants for the other one."""
    def adapt(checkpoint: Any) -> dict:
        state = checkpoint_state(checkpoint)
        if has_mefc(state) != mefc:
            names = " or ".join(f"drsformer:{r[0]}" for r in _RELEASES if r[-1] == has_mefc(state))
            layout = "with" if has_mefc(state) else "without"
            raise ModelError(f"the checkpoint has the layout {layout} MEFC blocks; import it as {names}")
        return state

    adapt.__doc__ = f"DRSformer checkpoint -> state dict of the layout {'with' if mefc else 'without'} MEFC."
    return adapt


ARCHITECTURE = Architecture(
    name="drsformer",
    title="DRSformer",
    builder=DRSformer,
    default_config={**RELEASED_CONFIG, "mefc": True},
    contract=Contract(
        channels="RGB", value_range=(0.0, 1.0), size_multiple=8, pad_mode="reflect", pad_where="bottom_right",
        output=None, min_size=8,
        # Attention over channels uses Gram matrices of the whole image and MEFC pools it globally,
        # so tiles change the result; a large tile keeps that effect small (not measured: no real
        # weights were available when this was written).
        global_context=True, tile=512,
        # Peak activation memory measured on the CPU in float32: 4.9-5.8 kB per pixel (256-512 px).
        bytes_per_pixel=6000,
        # Gram matrices, norms, top-k and softmax stay in float32 under autocast; fp16 autocast
        # changed outputs by < 5e-3 with test weights (not checked with the released ones).
        half_precision=True,
    ),
    paper=(
        "Xiang Chen, Hao Li, Mingqiang Li, Jinshan Pan: Learning a Sparse Transformer Network for Effective "
        "Image Deraining. Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition "
        "(CVPR), 2023, pp. 5896-5905"
    ),
    url="https://github.com/cschenxiang/DRSformer",
    licence="unstated",
    description=(
        "Transformer with top-k sparse channel attention, mixed-scale feed-forward and MEFC "
        "convolution experts (33.7 M parameters; 32.6 M without MEFC)."
    ),
    default_variant="rain200h",
    adapter=checkpoint_state,
)

# (variant, training set, Baidu share, password, Google Drive file, with MEFC)
_RELEASES = [
    ("rain200h", "Rain200H (synthetic heavy rain streaks)",
     "https://pan.baidu.com/s/1paqtkKfdjLGetnRVhDb6LQ?pwd=j10m", "j10m",
     "https://drive.google.com/file/d/1mt8ydHE540_qtytger4dVcv6xqZ5YMhh/view?usp=sharing", True),
    ("rain200l", "Rain200L (synthetic light rain streaks)",
     "https://pan.baidu.com/s/1uj7TWVr4Ys00Xfc8i-AquQ?pwd=kzj5", "kzj5",
     "https://drive.google.com/file/d/1Mm6hWdpjo9eEoNlCHAxd03etY3ks-zyy/view?usp=sharing", False),
    ("did", "DID-Data (synthetic rain of three densities)",
     "https://pan.baidu.com/s/1xSS5N5gUkpQ_Jl8MUz6wlw?pwd=nact", "nact",
     "https://drive.google.com/file/d/1U_UEGPhYRJ-G10-Dypr7FbwDRGmroAHC/view?usp=sharing", True),
    ("ddn", "DDN-Data (synthetic rain streaks of many directions and sizes)",
     "https://pan.baidu.com/s/1RKG-Eel29lgi0nHwdk2JIw?pwd=hj6r", "hj6r",
     "https://drive.google.com/file/d/1kwPOfufdUf9bCZ-OvwIziw-6ZRdcT2RX/view?usp=sharing", True),
    ("spa", "SPA-Data (real rain with derived clean images)",
     "https://pan.baidu.com/s/1Jp5sAsFFmJmko7ZwHdKmxQ?pwd=vfvt", "vfvt",
     "https://drive.google.com/file/d/1i33Zmb1YXdLcalJOIP7YTegjnuTsVcC1/view?usp=sharing", False),
]


def _entry(variant: str, trained_on: str, page: str, password: str, drive: str, mefc: bool) -> ModelEntry:
    layout = "with MEFC blocks" if mefc else "without MEFC blocks (as the authors trained it)"
    return ModelEntry(
        arch="drsformer",
        variant=variant,
        trained_on=trained_on,
        config={} if mefc else {"mefc": False},
        adapter=_adapter(mefc),
        matches=has_mefc if mefc else (lambda state: not has_mefc(state)),
        description=f"The authors' {trained_on.split(' ')[0]} checkpoint, {layout}.",
        source=WeightSource(
            kind="manual",
            filename=f"drsformer-{variant}.pth",
            page=page,
            password=password,
            instructions=(
                f"Open the Baidu share (password {password}) and download the PyTorch checkpoint (.pth) it "
                f"holds (also on Google Drive: {drive}); then run `derain models import drsformer:{variant} FILE`."
            ),
        ),
    )


MODELS = [_entry(*release) for release in _RELEASES]
