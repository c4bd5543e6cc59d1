"""The input contract of a network's forward pass: what it expects and which output is the image.

The product always works in RGB float32 in [0, 1]; ``_runner`` converts to and from each
network's contract. This module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHANNEL_ORDERS = ("RGB", "BGR")
PAD_MODES = ("reflect", "replicate", "constant")
PAD_PLACES = ("bottom_right", "symmetric")


@dataclass(frozen=True)
class Contract:
    """How the authors' forward pass expects its input and what it returns."""

    channels: str = "RGB"  # "RGB" or "BGR"
    value_range: tuple[float, float] = (0.0, 1.0)  # what 0 and 1 of the product's range map to
    size_multiple: int = 1  # H and W must be multiples of this
    pad_mode: str = "reflect"  # "reflect", "replicate" or "constant" (zeros)
    pad_where: str = "bottom_right"  # "bottom_right" or "symmetric"
    # Which part of the forward's return value is the derained image: an index into a tuple or
    # list, None for a plain tensor, or a callable (outputs, model_input) -> tensor.
    output: int | Callable[[Any, Any], Any] | None = None
    min_size: int = 1  # smallest H or W the network accepts (after padding)
    # True where the output at a pixel depends on statistics of the whole image (global attention,
    # normalisation over the image). Tiling then changes the result; see ``tile``.
    global_context: bool = False
    # Suggested tile size for tiled inference (None: the tiler decides from free memory).
    tile: int | None = None
    # Rough peak bytes of activation memory per input pixel in float32, used to pick tile sizes.
    bytes_per_pixel: int = 4096
    # Whether the network is safe to run in fp16/bf16 as a whole.
    half_precision: bool = True
    # -- video models ------------------------------------------------------------------------
    # None: an image model (N x 3 x H x W), which video runs frame by frame. A number: a video
    # model whose forward takes a clip N x 3 x T x H x W; long videos are cut into chunks of this
    # many frames, each run with ``frame_overlap`` extra frames of context on every inner side
    # (their outputs are dropped). ``bytes_per_pixel`` is then per pixel of one frame.
    frames: int | None = None
    frame_overlap: int = 0

    @property
    def is_video(self) -> bool:
        """Whether the forward takes clips (N x 3 x T x H x W) rather than images."""
        return self.frames is not None

    def describe(self) -> str:
        """One line for ``derain models info``: channel order, range, size rule, which output."""
        lo, hi = self.value_range
        parts = [f"{self.channels} in [{lo:g}, {hi:g}]"]
        if self.size_multiple > 1:
            parts.append(f"size multiple {self.size_multiple} ({self.pad_mode} padding, {self.pad_where})")
        else:
            parts.append("any size")
        if isinstance(self.output, int):
            parts.append(f"result is output #{self.output}")
        elif callable(self.output):
            parts.append(f"result: {getattr(self.output, '__doc__', None) or 'derived from the outputs'}".strip())
        if self.global_context:
            parts.append("uses whole-image context")
        if self.is_video:
            parts.append(f"video model: clips of {self.frames} frames, {self.frame_overlap} frames of context")
        return "; ".join(parts)
