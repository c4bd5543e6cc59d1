"""The deraining engine: a model on a device, at a precision, run whole or in tiles, on pixels.

    engine = Engine("prenet:rain100h", device="auto")
    clean = engine.derain(pil_image)      # PIL image or numpy array in, the same kind out
    rgb = engine.derain_rgb(float_rgb)    # float32 H x W x 3 in [0, 1] -> the same, derained

It knows nothing about files: ``pipeline`` reads, calls ``derain_rgb`` and writes. torch is
imported only when a model is loaded or run, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import imaging
from .errors import UsageError
from .quantise import quantise

if TYPE_CHECKING:
    from .models import LoadedModel

#: Pixels shared by neighbouring tiles unless told otherwise.
DEFAULT_OVERLAP = 32


class Engine:
    """A deraining model ready to run on arrays and in-memory images.

    Parameters
    ----------
    model: ``arch:variant`` or ``arch`` (its default variant); None for the built-in default.
    device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision: ``auto`` (fp32 on CPU, bf16/fp16 on a GPU for models that allow it), ``fp32``,
        ``fp16`` or ``bf16``.
    tile: ``auto`` (from free memory and the model's suggestion), 0 (whole image) or a size in pixels.
    tile_overlap: pixels shared by neighbouring tiles, blended smoothly; less than half of a fixed
        `tile` (None: 32, or the most a small fixed tile allows).
    threads: CPU threads (default: DERAIN_THREADS, else the number of cores, at most 8).
    progress: show a progress bar while weights download.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        tile: str | int | None = "auto",
        tile_overlap: int | None = None,
        threads: int | None = None,
        progress: bool = False,
    ):
        from . import models
        from .device import choose_device, choose_dtype, configure_threads

        self.model = models.resolve(model)
        self.device = choose_device(device)
        if self.device.type == "cpu":
            configure_threads(threads)
        self.dtype = choose_dtype(precision, self.device, self.model.contract.half_precision)
        self.tile = self._check_tile(tile)
        self.tile_overlap = self._check_overlap(tile_overlap, self.tile)
        self.progress = progress
        #: The tile size the last derain_rgb call used (None: the whole image in one pass).
        self.last_tile: int | None = None
        self._runner: LoadedModel | None = None

    @staticmethod
    def _check_tile(tile):
        if tile is None or tile == "auto":
            return "auto"
        if isinstance(tile, str):
            from .tiling import parse_tile

            try:
                tile = parse_tile(tile)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            if tile == "auto":
                return tile
        tile = int(tile)
        if tile < 0:
            raise UsageError("--tile must be auto, 0 (whole image) or a positive size")
        return tile

    @staticmethod
    def _check_overlap(overlap: int | None, tile: str | int) -> int:
        """The overlap in pixels: less than half a fixed tile, so that tiles advance by more than
        half their size (an overlap of half a tile or more would run every pixel 4 times or more).
        """
        fixed = tile if isinstance(tile, int) and tile > 0 else None
        if overlap is None:
            return DEFAULT_OVERLAP if fixed is None else min(DEFAULT_OVERLAP, (fixed - 1) // 2)
        if overlap < 0:
            raise UsageError("--tile-overlap must be >= 0")
        if fixed is not None and 2 * overlap >= fixed:
            raise UsageError(f"--tile-overlap {overlap} must be less than half of --tile {fixed} "
                             f"(at most {(fixed - 1) // 2})")
        return overlap

    # -- model ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.model.name

    def load(self) -> LoadedModel:
        """Fetch the weights (if needed) and put the network on the device. Called lazily."""
        if self._runner is None:
            from .models import load_model

            self._runner = load_model(self.model, device=self.device, dtype=self.dtype, progress=self.progress)
        return self._runner

    def tile_for(self, height: int, width: int, prefer_whole: bool = False) -> int | None:
        """The tile size used for an image of this size (None: the whole image in one pass)."""
        if self.tile != "auto":
            return None if self.tile == 0 else int(self.tile)
        from .tiling import choose_tile

        contract = self.model.contract
        return choose_tile(
            height, width, contract.bytes_per_pixel, self.device,
            suggested=None if prefer_whole else contract.tile,
            dtype_bytes=self.dtype.itemsize,
        )

    # -- arrays and images -----------------------------------------------------------------------
    def derain_rgb(self, rgb: np.ndarray, prefer_whole: bool = False,
                   tile_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """float32 H x W x 3 RGB in [0, 1] -> derained, same shape, clamped to [0, 1].

        `prefer_whole` runs the whole image in one pass where it fits in memory, ignoring the
        model's suggested tile (as the papers measured); `tile_progress(done, total)` is called
        after each tile.
        """
        from ._tensors import to_hwc, to_nchw
        from .tiling import run_tiled

        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UsageError(f"expected an H x W x 3 RGB array, got shape {rgb.shape}")
        if self.model.contract.is_video:
            raise UsageError(f"{self.name} is a video model: use `derain video` (or an image model here)")
        runner = self.load()
        h, w = rgb.shape[:2]
        tile = self.tile_for(h, w, prefer_whole=prefer_whole)
        self.last_tile = tile
        y = run_tiled(runner, to_nchw(rgb), tile=tile, overlap=self.tile_overlap, progress=tile_progress)
        return to_hwc(y.clamp_(0, 1))

    def derain(self, image: Any) -> Any:
        """Derain a PIL image or a numpy array; returns the same kind.

        PIL images come back with their mode's kind (greyscale stays greyscale, alpha is kept
        untouched), size and metadata in ``info``. numpy arrays: H x W x 3 (RGB) or H x W (grey);
        uint8 and uint16 come back in the same type at full precision, floats (in [0, 1]) as the
        same float type.
        """
        from PIL import Image

        if isinstance(image, Image.Image):
            decoded = imaging.decode_pil(image)
            out = self.derain_rgb(decoded.rgb)
            return imaging.to_pil(out, like=decoded)
        if isinstance(image, np.ndarray):
            return self._derain_ndarray(image)
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")

    def _derain_ndarray(self, arr: np.ndarray) -> np.ndarray:
        grey = arr.ndim == 2
        if grey:
            rgb = np.repeat(arr[..., None], 3, axis=2)
        elif arr.ndim == 3 and arr.shape[2] == 3:
            rgb = arr
        else:
            raise UsageError(f"expected H x W x 3 or H x W, got shape {arr.shape}")
        if arr.dtype == np.uint8:
            scale, bits = 255.0, 8
        elif arr.dtype == np.uint16:
            scale, bits = 65535.0, 16
        elif np.issubdtype(arr.dtype, np.floating):
            scale, bits = 1.0, 0
        else:
            raise UsageError(f"unsupported array dtype {arr.dtype}")
        out = self.derain_rgb(rgb.astype(np.float32) / scale)
        if grey:
            out = out.mean(axis=2)
        if not bits:
            return out.astype(arr.dtype, copy=False)
        return quantise(out, bits)
