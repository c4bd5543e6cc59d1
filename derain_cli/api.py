"""The Python API that the CLI and users share.

    from derain_cli import Derainer
    d = Derainer("prenet:rain100h")            # or Derainer() for the built-in default model
    clean = d.derain(pil_image)                # PIL image or numpy array in, same kind out
    d.derain_file("rainy.jpg", "clean.jpg")    # keeps EXIF, ICC and XMP
    d.derain_folder("rainy/", "clean/")        # mirrors the tree, resumable

Derainer is the :class:`~derain_cli.engine.Engine` (model, device, precision, tiling: pixels in,
pixels out) with the file and folder methods of :mod:`derain_cli.pipeline` on top. Data flows one
way: decode + metadata (imaging) -> engine (tiled, on a device) -> encode + metadata (imaging).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import imaging, pipeline
from .engine import Engine
from .pipeline import DEFAULT_SUFFIX, FileResult, FolderReport, iter_images, output_path

__all__ = ["DEFAULT_SUFFIX", "Derainer", "Engine", "FileResult", "FolderReport", "iter_images", "output_path"]


class Derainer(Engine):
    """A deraining model ready to run on images, arrays, files and folders.

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
    max_pixels: files larger than this are refused before decoding (None: no limit).
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
        max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
    ):
        super().__init__(model, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
                         threads=threads, progress=progress)
        self.max_pixels = max_pixels

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
        """Derain one file (see :func:`derain_cli.pipeline.derain_file`).

        Never raises for a bad input: the result says ``failed`` and why. Usage errors (e.g. an
        output that would overwrite the input) do raise.
        """
        return pipeline.derain_file(
            self, src, dst, format=format, quality=quality, suffix=suffix, overwrite=overwrite,
            compare=compare, compare_dir=compare_dir, gt=gt, convention=convention,
            tile_progress=tile_progress, max_pixels=self.max_pixels,
        )

    def plan_folder(
        self, src_dir: str | Path, dst_dir: str | Path, *, recursive: bool = True,
        glob: str | None = None, format: str | None = None, suffix: str = "",
    ) -> list[tuple[Path, Path]]:
        """(input, output) pairs for a folder: the output tree mirrors the input tree."""
        return pipeline.plan_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format,
                                    suffix=suffix)

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
        return pipeline.derain_folder(
            self, src_dir, dst_dir, recursive=recursive, glob=glob, overwrite=overwrite, format=format,
            quality=quality, suffix=suffix, compare=compare, compare_dir=compare_dir, progress=progress,
            on_result=on_result, max_pixels=self.max_pixels,
        )
