"""The Python API that the CLI and users share.

    from derain_cli import Derainer
    d = Derainer("prenet:rain100h")            # or Derainer() for the built-in default model
    clean = d.derain(pil_image)                # PIL image or numpy array in, same kind out
    d.derain_file("rainy.jpg", "clean.jpg")    # keeps EXIF, ICC and XMP
    d.derain_folder("rainy/", "clean/")        # mirrors the tree, resumable

Data flows one way: decode + metadata (imaging) -> model (tiled, on a device) -> encode + metadata.
"""

from __future__ import annotations

import fnmatch
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import imaging
from .errors import DerainError, ImageError, UsageError

DEFAULT_SUFFIX = "_derained"
FORMATS = ("same", "jpg", "png", "webp", "tiff")


@dataclass
class FileResult:
    """What happened to one input file (one JSON record of `--json`)."""

    input: str
    output: str | None
    status: str  # "ok", "skipped" or "failed"
    model: str | None = None
    error: str | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    device: str | None = None
    tile: int | None = None
    compare: str | None = None
    warnings: list = field(default_factory=list)
    traceback: str | None = field(default=None, repr=False)  # for -v; not part of the JSON record
    psnr_input: float | None = None
    ssim_input: float | None = None
    psnr_output: float | None = None
    ssim_output: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != [] and k != "traceback"}


@dataclass
class FolderReport:
    results: list[FileResult]

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def output_extension(src: Path, fmt: str | None) -> str:
    """The extension of the output for ``src``: its own, or that of ``fmt`` (HEIC is written as JPEG)."""
    fmt = (fmt or "same").lower()
    if fmt == "same":
        return src.suffix.lower() if src.suffix.lower() not in (".heic", ".heif") else ".jpg"
    return imaging.extension_for(fmt)


def default_output_path(src: Path, suffix: str = DEFAULT_SUFFIX, fmt: str | None = None) -> Path:
    """``photo.jpg`` -> ``photo_derained.jpg`` next to the input."""
    return src.with_name(f"{src.stem}{suffix}{output_extension(src, fmt)}")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def iter_images(root: Path, recursive: bool = True, glob: str | None = None) -> Iterator[Path]:
    """Image files under ``root`` in a stable order (hidden files and folders skipped)."""
    exts = imaging.SUPPORTED_EXTENSIONS
    walker = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for dirpath, dirnames, filenames in walker:
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if glob:
                rel = path.relative_to(root).as_posix()
                if not (fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(name, glob)):
                    continue
            elif path.suffix.lower() not in exts:
                continue
            if path.is_file():
                yield path


class Derainer:
    """A deraining model ready to run on images, files and folders.

    Parameters
    ----------
    model: ``arch:variant`` or ``arch`` (its default variant); None for the built-in default.
    device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision: ``auto`` (fp32 on CPU, bf16/fp16 on a GPU for models that allow it), ``fp32``,
        ``fp16`` or ``bf16``.
    tile: ``auto`` (from free memory and the model's suggestion), 0 (whole image) or a size in pixels.
    tile_overlap: pixels shared by neighbouring tiles, blended smoothly.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        tile: str | int | None = "auto",
        tile_overlap: int = 32,
        threads: int | None = None,
        progress: bool = False,
        max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
    ):
        from . import models
        from .device import choose_device, choose_dtype, configure_threads

        self.model = models.resolve(model)
        self.device = choose_device(device)
        if self.device.type == "cpu":
            configure_threads(threads)
        self.dtype = choose_dtype(precision, self.device, self.model.contract.half_precision)
        self.tile = self._check_tile(tile)
        if tile_overlap < 0:
            raise UsageError("--tile-overlap must be >= 0")
        self.tile_overlap = tile_overlap
        self.progress = progress
        self.max_pixels = max_pixels
        self._runner = None

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

    # -- model ---------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.model.name

    def load(self):
        """Fetch the weights (if needed) and put the network on the device. Called lazily."""
        if self._runner is None:
            from .models import load_from_file
            from .models.runner import ModelRunner
            from .weights import ensure_weights

            path = ensure_weights(self.model, progress=self.progress)
            module = load_from_file(self.model, path, device=str(self.device))
            self._runner = ModelRunner(module, self.model.contract, dtype=self.dtype)
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
        """float32 H x W x 3 RGB in [0, 1] -> derained, same shape, clamped to [0, 1]."""
        import torch

        from .tiling import run_tiled

        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise UsageError(f"expected an H x W x 3 RGB array, got shape {rgb.shape}")
        runner = self.load()
        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
        tile = self.tile_for(h, w, prefer_whole=prefer_whole)
        self.last_tile = tile
        y = run_tiled(runner, x, tile=tile, overlap=self.tile_overlap, progress=tile_progress)
        return np.ascontiguousarray(y[0].clamp_(0, 1).permute(1, 2, 0).numpy())

    def derain(self, image):
        """Derain a PIL image or a numpy array; returns the same kind.

        numpy arrays: H x W x 3 (RGB) or H x W (grey); uint8, uint16, or float in [0, 1].
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
            scale = 255.0
        elif arr.dtype == np.uint16:
            scale = 65535.0
        elif np.issubdtype(arr.dtype, np.floating):
            scale = 1.0
        else:
            raise UsageError(f"unsupported array dtype {arr.dtype}")
        out = self.derain_rgb(rgb.astype(np.float32) / scale)
        if grey:
            out = out.mean(axis=2)
        if scale == 1.0:
            return out.astype(arr.dtype, copy=False)
        return np.clip(np.rint(out * scale), 0, scale).astype(arr.dtype)

    # -- files -------------------------------------------------------------------------------------
    def derain_file(
        self,
        src: str | Path,
        dst: str | Path | None = None,
        *,
        format: str | None = None,
        quality: int | None = None,
        suffix: str = DEFAULT_SUFFIX,
        overwrite: bool = False,
        compare: str | None = None,
        compare_dir: str | Path | None = None,
        gt: str | Path | None = None,
        convention: str = "restormer",
        tile_progress: Callable[[int, int], None] | None = None,
    ) -> FileResult:
        """Derain one file. Never raises for a bad input: the result says ``failed`` and why.

        Usage errors (e.g. an output that would overwrite the input) do raise.
        """
        src = Path(src)
        dst = Path(dst) if dst is not None else default_output_path(src, suffix, format)
        if format and format != "same":
            output_extension(src, format)  # validates
        if same_file(src, dst) or src.resolve() == dst.resolve():
            raise UsageError(f"{dst}: refusing to write over the input file")
        result = FileResult(input=str(src), output=str(dst), status="ok", model=self.name,
                            device=str(self.device))
        if dst.exists() and not overwrite:
            result.status = "skipped"
            result.error = "output exists (use --overwrite to replace it)"
            return result
        try:
            decoded = imaging.read_image(src, max_pixels=self.max_pixels)
            result.width, result.height = decoded.size
            result.warnings.extend(decoded.warnings)
            start = time.perf_counter()
            out = self.derain_rgb(decoded.rgb, tile_progress=tile_progress)
            result.seconds = round(time.perf_counter() - start, 4)
            result.tile = self.last_tile
            dst.parent.mkdir(parents=True, exist_ok=True)
            fmt = None if not format or format == "same" else format
            from . import __version__

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", imaging.ImageWarning)
                imaging.write_image(dst, out, like=decoded, format=fmt, quality=quality,
                                    software=f"derain {__version__} ({self.name})")
            result.warnings.extend(str(w.message) for w in caught if issubclass(w.category, imaging.ImageWarning))
            if gt is not None:
                self._score_against(result, decoded.rgb, out, Path(gt), convention)
            if compare and compare != "none":
                result.compare = str(self._write_compare(src, dst, decoded.rgb, out, compare, compare_dir))
        except UsageError:
            raise
        except DerainError as exc:
            self._failed(result, str(exc))
        except MemoryError:
            self._failed(result, f"{src}: out of memory (try a smaller --tile)")
        except Exception as exc:  # noqa: BLE001 - a model or library failure must not stop a batch
            self._failed(result, f"{src}: {type(exc).__name__}: {exc}".splitlines()[0])
        return result

    @staticmethod
    def _failed(result: FileResult, message: str) -> None:
        import traceback

        result.status = "failed"
        result.error = message
        result.traceback = traceback.format_exc()

    def _score_against(self, result: FileResult, before, after, gt_path: Path, convention: str) -> None:
        from .metrics import score, to_uint8

        gt = imaging.read_image(gt_path, max_pixels=self.max_pixels)
        if gt.rgb.shape != before.shape:
            raise ImageError(gt_path, f"ground truth is {gt.size[0]}x{gt.size[1]}, input is "
                                      f"{before.shape[1]}x{before.shape[0]}")
        gt8 = to_uint8(gt.rgb)
        result.psnr_input, result.ssim_input = (round(v, 4) for v in score(to_uint8(before), gt8, convention))
        result.psnr_output, result.ssim_output = (round(v, 4) for v in score(to_uint8(after), gt8, convention))

    def _write_compare(self, src: Path, dst: Path, before, after, mode: str, compare_dir) -> Path:
        from .compare import write_comparison

        folder = Path(compare_dir) if compare_dir else dst.parent
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{src.stem}_compare_{mode}.jpg"
        write_comparison(path, before, after, mode)
        return path

    # -- folders -------------------------------------------------------------------------------------
    def plan_folder(
        self, src_dir: str | Path, dst_dir: str | Path, *, recursive: bool = True,
        glob: str | None = None, format: str | None = None, suffix: str = "",
    ) -> list[tuple[Path, Path]]:
        """(input, output) pairs for a folder: the output tree mirrors the input tree."""
        src_dir, dst_dir = Path(src_dir), Path(dst_dir)
        if not src_dir.is_dir():
            raise UsageError(f"{src_dir}: not a folder")
        if dst_dir.resolve() == src_dir.resolve() and not suffix:
            raise UsageError(f"{dst_dir}: output folder is the input folder; give --suffix or another --out")
        pairs = []
        for path in iter_images(src_dir, recursive=recursive, glob=glob):
            if dst_dir.resolve() in path.resolve().parents and dst_dir.resolve() != src_dir.resolve():
                continue  # never re-process our own outputs when --out is inside the input tree
            rel = path.relative_to(src_dir)
            out = dst_dir / rel.parent / f"{rel.stem}{suffix}{output_extension(path, format)}"
            pairs.append((path, out))
        return pairs

    def derain_folder(
        self,
        src_dir: str | Path,
        dst_dir: str | Path,
        *,
        recursive: bool = True,
        glob: str | None = None,
        overwrite: bool = False,
        format: str | None = None,
        quality: int | None = None,
        suffix: str = "",
        compare: str | None = None,
        compare_dir: str | Path | None = None,
        progress: bool = False,
        on_result: Callable[[FileResult], None] | None = None,
    ) -> FolderReport:
        """Derain every image under ``src_dir`` into ``dst_dir`` (same tree).

        Existing outputs are skipped unless ``overwrite``, so an interrupted run resumes where it
        stopped (outputs are written atomically: a file is either complete or absent).
        """
        pairs = self.plan_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format, suffix=suffix)
        results = []
        bar = _progress_bar(len(pairs), "derain", enabled=progress)
        try:
            for src, dst in pairs:
                cdir = None
                if compare and compare != "none":
                    base = Path(compare_dir) if compare_dir else Path(dst_dir) / "_compare"
                    cdir = base / src.relative_to(src_dir).parent
                result = self.derain_file(src, dst, format=format, quality=quality, overwrite=overwrite,
                                          compare=compare, compare_dir=cdir, suffix=suffix)
                results.append(result)
                if on_result:
                    on_result(result)
                bar.update(1)
        finally:
            bar.close()
        return FolderReport(results)


def _progress_bar(total: int, desc: str, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr, leave=False)

