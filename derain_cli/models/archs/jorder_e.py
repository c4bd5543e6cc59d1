"""JORDER-E, the "practical" heavy-rain model (Yang et al., IEEE TPAMI 2020).

Two identical sub-networks run in sequence. Each encodes ``cat[image, previous estimate]``, updates
the features with three multi-dilation residual blocks, estimates a rain mask and a rain level from
them, modulates the features with both (an additive and a multiplicative path) and decodes a
residual added to the input. The second sub-network adds the first one's block features, mask and
level to its own. The network works on 0..255 RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry
from ..layers.conv import bias_of, channels_last, conv3


class ResBlock(nn.Module):
    """``x + a + 0.1 b + 0.1 d`` with three two-conv ReLU branches of dilations (1,1), (2,2), (2,4)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = conv3(channels, channels), conv3(channels, channels)
        self.conv3, self.conv4 = conv3(channels, channels, 2), conv3(channels, channels, 2)
        self.conv5, self.conv6 = conv3(channels, channels, 2), conv3(channels, channels, 4)

    def forward(self, x: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv1.out_channels
        # conv3 and conv5 (both dilation 2) read the same input: one convolution computes both
        both = F.conv2d(x, torch.cat([self.conv3.weight, self.conv5.weight]),
                        torch.cat([bias_of(self.conv3), bias_of(self.conv5)]), padding=2, dilation=2).relu_()
        a = self.conv2(self.conv1(x).relu_()).relu_()
        b = self.conv4(both[:, :c]).relu_()
        d = self.conv6(both[:, c:]).relu_()
        out = x + a  # a fresh tensor, so the in-place updates below are safe under autograd
        out.add_(b, alpha=0.1).add_(d, alpha=0.1)
        return out if prev is None else out.add_(prev)


class Updater(nn.Module):
    """Three residual blocks; returns the final features and each block's output."""

    def __init__(self, channels: int):
        super().__init__()
        self.res1, self.res2, self.res3 = ResBlock(channels), ResBlock(channels), ResBlock(channels)

    def forward(self, x: torch.Tensor, prev: Sequence[torch.Tensor] | None = None):
        feats = []
        for k, block in enumerate((self.res1, self.res2, self.res3)):
            x = block(x, None if prev is None else prev[k])
            feats.append(x)
        return x, feats


class JORDER(nn.Module):
    """One JORDER-E sub-network."""

    def __init__(self, channels: int = 32):
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.encoder = conv3(6, channels)
        self.updater = Updater(channels)
        self.mask_estimator1, self.mask_estimator2 = conv3(channels, quarter), conv3(quarter, 2)
        self.level_estimator1, self.level_estimator2 = conv3(channels, quarter), conv3(quarter, 3)
        self.mask_F_w_encoder1, self.mask_F_w_encoder2 = conv3(2, half), conv3(half, channels)
        self.mask_F_b_encoder1, self.mask_F_b_encoder2 = conv3(2, half), conv3(half, channels)
        self.level_F_w_encoder1, self.level_F_w_encoder2 = conv3(3, half), conv3(half, channels)
        self.level_F_b_encoder1, self.level_F_b_encoder2 = conv3(3, half), conv3(half, channels)
        self.decoder = nn.Sequential(conv3(channels, channels), conv3(channels, 3))

    def forward(self, x: torch.Tensor, x_prev: torch.Tensor | None = None, prev_feats=None,
                mask_prev: torch.Tensor | None = None, level_prev: torch.Tensor | None = None):
        """``(estimate, block features, mask, level)``; the ``*_prev`` arguments are the first pass's."""
        f, feats = self.updater(self.encoder(torch.cat([x, x if x_prev is None else x_prev], dim=1)), prev_feats)
        mask = self.mask_estimator2(self.mask_estimator1(f))
        level = self.level_estimator2(self.level_estimator1(f))
        if mask_prev is not None:
            mask = mask + mask_prev
            level = level + level_prev
        f_add = self.mask_F_b_encoder2(self.mask_F_b_encoder1(mask).relu_()).add_(f)
        f_add.add_(self.level_F_b_encoder2(self.level_F_b_encoder1(level).relu_()))
        f_mul = self.mask_F_w_encoder2(self.mask_F_w_encoder1(mask).relu_()) * f
        f_mul = f_mul * self.level_F_w_encoder2(self.level_F_w_encoder1(level).relu_())
        out = self.decoder(f_add.add_(f_mul)).add_(x)
        return out, feats, mask, level


class JORDER_E(nn.Module):
    """JORDER-E; ``forward`` returns ``(final estimate, first estimate, mask, level)`` on 0..255."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.jorder1 = JORDER(channels)
        self.jorder2 = JORDER(channels)

    def forward(self, x: torch.Tensor):
        x = channels_last(x)
        x1, f1, m1, l1 = self.jorder1(x)
        x2, _, m2, l2 = self.jorder2(x, x1, f1, m1, l1)
        return x2.contiguous(), x1, m2, l2


ARCHITECTURE = Architecture(
    name="jorder-e",
    title="JORDER-E",
    builder=JORDER_E,
    default_config={"channels": 32},
    contract=Contract(value_range=(0.0, 255.0), output=0, bytes_per_pixel=1792),
    paper="W. Yang, R. T. Tan, J. Feng, Z. Guo, S. Yan, J. Liu: Joint Rain Detection and Removal from a "
          "Single Image with Contextualized Deep Networks. IEEE TPAMI 2020",
    url="https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal",
    licence="unstated",
    description="Joint rain detection and removal, the authors' 'practical' model for heavy real rain.",
    default_variant="practical",
)

MODELS = [
    ModelEntry(
        arch="jorder-e", variant="practical",
        trained_on="heavy-rain oriented (the authors' practical model; exact training set unstated)",
        source=WeightSource(
            kind="url", filename="jorder-e-practical.pt",
            url="https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal/raw/"
                "ccb4a465bcb48ad8a5d3fef3ab1b950bcf8b7050/testing_practical/src/pretrained_model/model_practical.pt",
            sha256="f97df015f95c76806b0deb6c9cf8929be9bde9d1fab2afafb2f6f8bbe9f7655d", size=1652875),
    ),
]
