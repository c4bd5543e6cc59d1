"""The shared building blocks against their plain definitions (the archs' golden tests cover them in context)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from derain_cli.models.layers.pointwise import Pointwise, accumulate, mix_channels, pixel_rows, pointwise
from derain_cli.models.layers.restormer import LayerNorm, TransformerBlock, cosine_gram, fold_heads
from derain_cli.models.layers.sparse_attention import sparse_attention_mix, topk_sizes
from tests.models.golden import max_diff

WEIGHTS = [torch.tensor([w]) for w in (0.3, -0.2, 0.5, 0.1)]


def _four_masked_softmaxes(scores: torch.Tensor, weights) -> torch.Tensor:
    """The authors' definition: four top-k masks, -inf elsewhere, four softmaxes, weighted sum."""
    out = 0
    for k, w in zip(topk_sizes(scores.shape[-1]), weights):
        keep = torch.zeros_like(scores).scatter_(-1, torch.topk(scores, k, dim=-1).indices, 1.0)
        masked = torch.where(keep > 0, scores, torch.full_like(scores, float("-inf")))
        out = out + w * torch.softmax(masked, dim=-1)
    return out


def test_topk_sizes_are_the_papers_fractions_rounded_down():
    assert topk_sizes(48) == [24, 32, 36, 38]
    assert topk_sizes(96) == [48, 64, 72, 76]
    assert topk_sizes(10) == [5, 6, 7, 8]


@pytest.mark.parametrize("c", [10, 24, 32, 48, 96, 128])
def test_sparse_mix_equals_four_masked_softmaxes(c):
    g = torch.Generator().manual_seed(c)
    scores = torch.randn(2, 3, c, c, generator=g)
    assert max_diff(sparse_attention_mix(scores, WEIGHTS), _four_masked_softmaxes(scores, WEIGHTS)) < 1e-6
    # GLGFN's formulation: each masked softmax multiplied with the values, then summed
    v = torch.randn(2, 3, c, 50, generator=g)
    per_mask = sum(w * (_four_masked_softmaxes(scores, [torch.ones(1) if j == i else torch.zeros(1)
                                                         for j in range(4)]) @ v) for i, w in enumerate(WEIGHTS))
    assert max_diff(sparse_attention_mix(scores, WEIGHTS) @ v, per_mask) < 1e-5


def _conv1x1(x, weight, bias=None):
    return F.conv2d(x, weight[..., None, None], bias)


@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
def test_mix_channels_is_a_1x1_convolution(layout):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 5, 7, generator=g)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w, b = torch.randn(4, 6, generator=g), torch.randn(4, generator=g)
    residual = torch.randn(2, 4, 5, 7, generator=g)
    assert max_diff(mix_channels(x, w), _conv1x1(x, w)) < 1e-5
    assert max_diff(mix_channels(x, w, b), _conv1x1(x, w, b)) < 1e-5
    assert max_diff(mix_channels(x, w, b, residual), _conv1x1(x, w, b) + residual) < 1e-5
    per_sample = torch.randn(2, 4, 6, generator=g)  # a different matrix for each image
    expected = torch.stack([_conv1x1(x[i : i + 1], per_sample[i])[0] for i in range(2)])
    assert max_diff(mix_channels(x, per_sample, b, residual), expected + b[:, None, None] + residual) < 1e-5
    assert mix_channels(x, w).is_contiguous(memory_format=torch.channels_last)


def test_pointwise_reads_a_channel_slice_in_place_and_accumulates_into_a_view():
    g = torch.Generator().manual_seed(1)
    big = torch.randn(1, 10, 4, 6, generator=g).contiguous(memory_format=torch.channels_last)
    part = big[:, 2:5]  # a channel slice: no copy
    assert pixel_rows(part).data_ptr() == part.data_ptr()
    conv = Pointwise(3, 8)
    assert max_diff(conv(part), F.conv2d(part, conv.weight, conv.bias)) < 1e-5
    assert max_diff(pointwise(part, conv), conv(part)) == 0

    y = conv(part).detach()
    more = torch.randn(1, 2, 4, 6, generator=g).contiguous(memory_format=torch.channels_last)
    w2 = torch.randn(8, 2, generator=g)
    expected = y + _conv1x1(more, w2)
    accumulate(pixel_rows(y), pixel_rows(more), w2.t())  # y += w2 @ more, through the view
    assert max_diff(y, expected) < 1e-5


def test_restormer_layer_norm_with_and_without_bias():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 3, 4, generator=g)
    ln = LayerNorm(5)
    with torch.no_grad():
        ln.body.weight.copy_(torch.randn(5, generator=g))
        ln.body.bias.copy_(torch.randn(5, generator=g))
    mu = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    w, b = ln.body.weight[None, :, None, None], ln.body.bias[None, :, None, None]
    assert max_diff(ln(x), (x - mu) / torch.sqrt(var + 1e-5) * w + b) < 1e-5
    bias_free = LayerNorm(5, with_bias=False)
    assert list(bias_free.state_dict()) == ["body.weight"]
    assert max_diff(bias_free(x), x / torch.sqrt(var + 1e-5)) < 1e-5


def test_fold_heads_is_the_projection_of_a_block_diagonal_mixing():
    g = torch.Generator().manual_seed(3)
    heads, c, out = 3, 4, 7
    maps = torch.randn(2, heads, c, c, generator=g)
    projection = torch.randn(out, heads * c, generator=g)
    blockdiag = torch.stack([torch.block_diag(*maps[i]) for i in range(2)])
    assert max_diff(fold_heads(projection, maps), projection @ blockdiag) < 1e-5


def test_cosine_gram_normalises_over_the_pixels():
    g = torch.Generator().manual_seed(4)
    q, k = torch.randn(1, 4, 5, 6, generator=g), torch.randn(1, 4, 5, 6, generator=g)
    qn, kn = (F.normalize(t.reshape(1, 2, 2, 30), dim=-1) for t in (q, k))  # 2 heads of 2 channels
    expected = qn @ kn.transpose(-2, -1)
    assert max_diff(cosine_gram(q, k, heads=2), expected) < 1e-6


def test_transformer_block_keeps_restormers_checkpoint_keys():
    block = TransformerBlock(8, heads=2, expansion=2.66)
    assert {k: tuple(v.shape) for k, v in block.state_dict().items()} == {
        "norm1.body.weight": (8,), "norm1.body.bias": (8,),
        "attn.temperature": (2, 1, 1), "attn.qkv.weight": (24, 8, 1, 1), "attn.qkv_dwconv.weight": (24, 1, 3, 3),
        "attn.project_out.weight": (8, 8, 1, 1),
        "norm2.body.weight": (8,), "norm2.body.bias": (8,),
        "ffn.project_in.weight": (42, 8, 1, 1), "ffn.dwconv.weight": (42, 1, 3, 3),
        "ffn.project_out.weight": (8, 21, 1, 1),
    }
    x = torch.randn(1, 8, 6, 5)
    assert block(x).shape == x.shape
