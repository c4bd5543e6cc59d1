"""1x1 convolutions as matrix products over the pixels of channels-last images.

On a channels-last tensor (N x C x H x W shaped, stored N x H x W x C) the pixels are the rows of an
(N*H*W) x C matrix that is a view, also for a slice of the channels or of the rows of a larger
map. A 1x1 convolution is then one matrix product; a residual can be accumulated by the product
itself (``baddbmm``/``addmm``) instead of by a separate pass over the image, and a per-image matrix
(channel scalings or an attention map folded into the weights) costs no more than a plain one.
GLGFN, DRSformer and DCSFN compute their 1x1 convolutions with these helpers.
"""

from __future__ import annotations

import torch
from torch import nn


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """The (N*H*W) x C pixel matrix of an image tensor (a view when it is channels-last)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def image_of_rows(pixel_matrix: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """A (B*H*W) x C or B x (H*W) x C matrix seen as a channels-last B x C x H x W image (a view)."""
    return pixel_matrix.reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def conv_matrix(conv: nn.Conv2d) -> torch.Tensor:
    """The out x in matrix of a 1x1 convolution."""
    return conv.weight.flatten(1)


def accumulate(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out += a @ b`` in place (batched for 3-d operands), in ``out``'s dtype: in-place
    operations are not autocast, so under autocast the operands are cast here."""
    a, b = a.to(out.dtype), b.to(out.dtype)
    return out.baddbmm_(a, b) if out.dim() == 3 else out.addmm_(a, b)


def mix_channels(
    x: torch.Tensor,
    matrix: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``residual + bias + matrix @ x`` at every pixel: a 1x1 convolution as one matrix product.

    ``matrix`` is O x I, or N x O x I for a per-sample matrix. With a residual the result has
    ``x``'s dtype (under autocast: the reduced one). Returns a channels-last N x O x H x W tensor.
    """
    n, c, h, w = x.shape
    o = matrix.shape[-2]
    weight = matrix.transpose(-1, -2)
    if residual is None and matrix.dim() == 2:  # one (N*H*W) x C product, the bias added by it
        rows = pixel_rows(x)
        y = torch.mm(rows, weight) if bias is None else torch.addmm(bias, rows, weight)
        return image_of_rows(y, n, h, w)
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view for channels-last x
    if residual is None:
        y = torch.matmul(pixels, weight)
        if bias is not None:
            y = y.add_(bias)
    else:
        acc = residual.permute(0, 2, 3, 1).reshape(n, h * w, o)
        acc = acc + bias if bias is not None else acc.clone()
        # In-place products are not autocast: give all three operands x's dtype.
        y = acc.to(x.dtype).baddbmm_(pixels, weight.to(x.dtype).expand(n, c, o))
    return y.view(n, h, w, o).permute(0, 3, 1, 2)


def pointwise(x: torch.Tensor, conv: nn.Conv2d, residual: torch.Tensor | None = None) -> torch.Tensor:
    """``conv(x)`` (+ ``residual``) for a 1x1 ``nn.Conv2d``, as one matrix product."""
    return mix_channels(x, conv_matrix(conv), conv.bias, residual)


class Pointwise(nn.Conv2d):
    """1x1 convolution (parameters as ``nn.Conv2d``, so checkpoints load) computed with ``mix_channels``."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__(cin, cout, 1, bias=bias)

    @property
    def matrix(self) -> torch.Tensor:
        """The weight as an O x I matrix."""
        return self.weight.view(self.out_channels, self.in_channels)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return mix_channels(x, self.matrix, self.bias, residual)
