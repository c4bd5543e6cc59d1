"""S2VD's deraining network (Yue et al., CVPR 2021): a 3-D convolutional video deraining network.

It is a *video* model: its forward takes a clip N x 3 x T x H x W (RGB in [0, 1]) and returns the
derained clip of the same shape. Every temporal convolution pads its time axis by repeating the
first and last frame, so any clip length works, but each output frame sees only a few neighbours;
the authors therefore run long clips in chunks of 24 frames, each extended by 2 frames into its
neighbours (``Contract.frames`` / ``Contract.frame_overlap``; ``derain_cli.video`` does the chunking).

The network works at half resolution: a 2x2 space-to-depth step turns the 3 colour channels into
12, a head and 8 residual blocks (3-D batch norm, ReLU, 3x3x3 convolution, twice) estimate the
rain, a depth-to-space step brings it back to full resolution, and a small tail network refines
the input minus that rain estimate. H and W must therefore be even (``size_multiple=2``).

Only the deraining network is needed at inference: S2VD's dynamical rain generator is a training
device for unlabelled real video.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...weights import WeightSource
from .._contract import Contract
from .._registry import Architecture, ModelEntry


class TimePaddedConv3d(nn.Module):
    """3x3x3 convolution that keeps the clip length by repeating the first and last frame.

    Spatially it zero-pads by one pixel like a 2-D "same" convolution; in time it pads by
    replication, so the end frames of a clip are not darkened by zero frames. The convolution is
    stored as ``conv`` (state-dict keys ``<name>.conv.weight`` / ``.bias``), as in the release.
    """

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel_size=3, stride=1, padding=(0, 1, 1), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate"))


def space_to_depth(x: torch.Tensor, r: int) -> torch.Tensor:
    """(N, C, T, rH, rW) -> (N, C*r*r, T, H, W); channel c*r*r + i*r + j holds row offset i, column offset j."""
    n, c, t, h, w = x.shape
    x = x.reshape(n, c, t, h // r, r, w // r, r)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(n, c * r * r, t, h // r, w // r)


def depth_to_space(x: torch.Tensor, r: int) -> torch.Tensor:
    """The exact inverse of ``space_to_depth``."""
    n, crr, t, h, w = x.shape
    c = crr // (r * r)
    x = x.reshape(n, c, r, r, t, h, w)
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(n, c, t, h * r, w * r)


class DepthToSpace(nn.Module):
    """``depth_to_space`` as a layer (the last step of the body; it holds no parameters)."""

    def __init__(self, r: int):
        super().__init__()
        self.r = r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depth_to_space(x, self.r)


class ResBlock3d(nn.Module):
    """Pre-activation residual block: ``x + conv(relu(bn(conv(relu(bn(x))))))`` (keys ``res.0`` .. ``res.5``)."""

    def __init__(self, features: int):
        super().__init__()
        self.res = nn.Sequential(
            nn.BatchNorm3d(features), nn.ReLU(inplace=True), TimePaddedConv3d(features, features),
            nn.BatchNorm3d(features), nn.ReLU(inplace=True), TimePaddedConv3d(features, features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class S2VDDerainer(nn.Module):
    """The S2VD deraining network (``DerainNet`` in the authors' code).

    Args:
        n_channels: colour channels of the clip (3).
        upscale_factor: the space-to-depth factor r (2): the body runs at 1/r resolution.
        n_features: feature width F of the head, body and tail (32).
        n_resblocks: residual blocks in the body (8).
    """

    def __init__(self, n_channels: int = 3, upscale_factor: int = 2, n_features: int = 32, n_resblocks: int = 8):
        super().__init__()
        self.r = upscale_factor
        packed = n_channels * upscale_factor**2
        self.head = nn.Sequential(
            TimePaddedConv3d(packed, n_features), nn.ReLU(inplace=True), TimePaddedConv3d(n_features, n_features),
        )
        self.body = nn.Sequential(
            *[ResBlock3d(n_features) for _ in range(n_resblocks)],
            nn.BatchNorm3d(n_features), nn.ReLU(inplace=True), TimePaddedConv3d(n_features, packed),
            DepthToSpace(upscale_factor),
        )
        self.tail = nn.Sequential(
            TimePaddedConv3d(n_channels, n_features, bias=False), nn.ReLU(inplace=True),
            TimePaddedConv3d(n_features, n_features, bias=False), nn.ReLU(inplace=True),
            TimePaddedConv3d(n_features, n_channels, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip N x C x T x H x W (H, W multiples of r) -> derained clip, same shape, unclamped."""
        if x.dim() != 5:
            raise ValueError(f"S2VD takes a clip N x C x T x H x W, got shape {tuple(x.shape)}")
        rain = self.body(self.head(space_to_depth(x, self.r)))
        return self.tail(x - rain)


# Chunking of the authors' real-video test procedure: 24 frames a chunk, each run with 2 more
# frames of context on every inner side (the context frames' outputs are dropped).
CHUNK_FRAMES = 24
CHUNK_OVERLAP = 2

ARCHITECTURE = Architecture(
    name="s2vd",
    title="S2VD",
    builder=S2VDDerainer,
    default_config={"n_channels": 3, "upscale_factor": 2, "n_features": 32, "n_resblocks": 8},
    # bytes_per_pixel is per pixel of one frame: about 4 feature maps of 32 channels at quarter
    # area alive at once, plus the full-resolution tail (rounded up from a measured 24-frame run).
    contract=Contract(size_multiple=2, pad_mode="reflect", bytes_per_pixel=1024,
                      frames=CHUNK_FRAMES, frame_overlap=CHUNK_OVERLAP),
    paper=("Z. Yue, J. Xie, Q. Zhao, D. Meng: Semi-supervised Video Deraining with Dynamical Rain "
           "Generator. CVPR 2021"),
    url="https://github.com/zsyOAOA/S2VD",
    licence="MIT",
    description=("Video deraining network: 3-D convolutions over clips (chunks of 24 frames), "
                 "8 residual blocks at half resolution."),
    default_variant="ntu",
)

MODELS = [
    ModelEntry(
        arch="s2vd", variant="ntu",
        trained_on="NTURain (labelled synthetic + unlabelled real clips), rho=0.5",
        description="The authors' released deraining network (derainer_rho05.pt).",
        source=WeightSource(
            kind="url", filename="s2vd-ntu.pt",
            url=("https://github.com/zsyOAOA/S2VD/raw/e6c09e065f446abf4c8513bf32e0267ed20b9453/"
                 "model_states/derainer_rho05.pt"),
            sha256="e14990a8bb202953e0e33d2fda7814312e49cdd52c9088bba5b298330fa1926d", size=2149309,
        ),
    ),
]
