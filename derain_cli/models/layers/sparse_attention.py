"""Top-k sparse attention: the weighted sum of four softmaxes over the top-k entries of each row.

DRSformer's top-k sparse attention and GLGFN's cross sparse attention both replace one softmax
over a C x C channel attention map by ``sum_i w_i * softmax(top-k_i of each row)``, the entries
outside a row's top k_i counting as -inf, with k_i = C/2, 2C/3, 3C/4 and 4C/5 (rounded down) and
four learned weights w_i. Here it is computed once for both, as one dense matrix, so the values are
multiplied once instead of four times.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Fractions of the channels kept by the four sparse masks (numerator, denominator).
TOPK_FRACTIONS = ((1, 2), (2, 3), (3, 4), (4, 5))


def topk_sizes(channels: int) -> list[int]:
    """How many entries per row each of the four sparse masks keeps."""
    return [channels * num // den for num, den in TOPK_FRACTIONS]


def sparse_attention_mix(scores: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_i weights[i] * softmax(top-k_i of each row of scores)`` as a dense matrix.

    ``scores`` is (..., C, C); mask i keeps the ``topk_sizes(C)[i]`` largest entries of each row
    (``torch.topk``) and gives the others probability 0. One ``topk`` at the largest k gives all
    four selections, as each is a prefix of the sorted one, and the four softmaxes share their
    exponentials (shifted by the row maximum, the first sorted value).
    """
    sizes = topk_sizes(scores.shape[-1])
    values, index = scores.topk(max(sizes), dim=-1, largest=True, sorted=True)
    exp = (values - values[..., :1]).exp()
    coef = torch.zeros_like(exp)
    for k, weight in zip(sizes, weights):
        coef[..., :k] += weight / exp[..., :k].sum(dim=-1, keepdim=True)
    return torch.zeros_like(scores).scatter_(-1, index, exp * coef)
