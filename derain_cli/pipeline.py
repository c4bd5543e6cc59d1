"""Files and folders: decode -> engine -> encode, one file at a time, never losing an input.

    result = derain_file(engine, "rainy.jpg")             # -> rainy_derained.jpg beside it
    report = derain_folder(engine, "rainy/", "clean/")    # mirrors the tree, resumable

Where each output goes is decided by :func:`output_path` alone (the CLI's ``-o`` folders, the
default name beside the input and the mirrored folder tree all use it). A bad input never stops a
batch: its FileResult says ``failed`` and why. Outputs are written atomically by ``imaging``, so
an existing output is a finished one and an interrupted folder run resumes where it stopped.
"""

from __future__ import annotations

import fnmatch
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from . import imaging
from .engine import Engine
from .errors import DerainError, ImageError, UsageError
from .imaging.formats import output_extension

DEFAULT_SUFFIX = "_derained"


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


def output_path(src: str | os.PathLike, *, out_dir: str | os.PathLike | None = None, suffix: str,
                fmt: str | None = None) -> Path:
    """Where the output of input `src` goes: ``out_dir / (stem + suffix + extension)``.

    `out_dir` None means beside the input. The extension is `src`'s own for `fmt` None or
    'same' (HEIC inputs get .jpg), else `fmt`'s; an unknown `fmt` raises UsageError.
    ``output_path(Path("a/photo.jpg"), suffix="_derained")`` is ``a/photo_derained.jpg``.
    """
    src = Path(src)
    folder = src.parent if out_dir is None else Path(out_dir)
    return folder / f"{src.stem}{suffix}{output_extension(src, fmt)}"


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


# -- one file ------------------------------------------------------------------------------------------


def derain_file(
    engine: Engine,
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
    max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
) -> FileResult:
    """Derain one file with `engine`. Never raises for a bad input: the result says ``failed`` and why.

    Usage errors (e.g. an output that would overwrite the input, an unknown format) do raise.
    With `gt`, PSNR/SSIM of input and output against that ground truth are computed on the
    8-bit pixels quantised as the writer quantises them: a lossless 8-bit output file holds
    exactly the pixels scored.
    """
    src = Path(src)
    dst = Path(dst) if dst is not None else output_path(src, suffix=suffix, fmt=format)
    if format and format != "same":
        output_extension(src, format)  # validates
    if same_file(src, dst) or src.resolve() == dst.resolve():
        raise UsageError(f"{dst}: refusing to write over the input file")
    result = FileResult(input=str(src), output=str(dst), status="ok", model=engine.name,
                        device=str(engine.device))
    if dst.exists() and not overwrite:
        result.status = "skipped"
        result.error = "output exists (use --overwrite to replace it)"
        return result
    try:
        decoded = imaging.read_image(src, max_pixels=max_pixels)
        result.width, result.height = decoded.size
        result.warnings.extend(decoded.warnings)
        start = time.perf_counter()
        out = engine.derain_rgb(decoded.rgb, tile_progress=tile_progress)
        result.seconds = round(time.perf_counter() - start, 4)
        result.tile = engine.last_tile
        dst.parent.mkdir(parents=True, exist_ok=True)
        fmt = None if not format or format == "same" else format
        from . import __version__

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", imaging.ImageWarning)
            imaging.write_image(dst, out, like=decoded, format=fmt, quality=quality,
                                software=f"derain {__version__} ({engine.name})")
        result.warnings.extend(str(w.message) for w in caught if issubclass(w.category, imaging.ImageWarning))
        if gt is not None:
            _score_against(result, decoded.rgb, out, Path(gt), convention, max_pixels)
        if compare and compare != "none":
            result.compare = str(_write_compare(src, dst, decoded.rgb, out, compare, compare_dir))
    except UsageError:
        raise
    except DerainError as exc:
        _failed(result, str(exc))
    except MemoryError:
        _failed(result, f"{src}: out of memory (try a smaller --tile)")
    except Exception as exc:  # noqa: BLE001 - a model or library failure must not stop a batch
        _failed(result, f"{src}: {type(exc).__name__}: {exc}".splitlines()[0])
    return result


def _failed(result: FileResult, message: str) -> None:
    import traceback

    result.status = "failed"
    result.error = message
    result.traceback = traceback.format_exc()


def _score_against(result: FileResult, before: np.ndarray, after: np.ndarray, gt_path: Path, convention: str,
                   max_pixels: int | None) -> None:
    from .metrics import score, to_uint8

    gt = imaging.read_image(gt_path, max_pixels=max_pixels)
    if gt.rgb.shape != before.shape:
        raise ImageError(gt_path, f"ground truth is {gt.size[0]}x{gt.size[1]}, input is "
                                  f"{before.shape[1]}x{before.shape[0]}")
    gt8 = to_uint8(gt.rgb)
    result.psnr_input, result.ssim_input = (round(v, 4) for v in score(to_uint8(before), gt8, convention))
    result.psnr_output, result.ssim_output = (round(v, 4) for v in score(to_uint8(after), gt8, convention))


def _write_compare(src: Path, dst: Path, before: np.ndarray, after: np.ndarray, mode: str,
                   compare_dir: str | Path | None) -> Path:
    from .compare import Mode, write_comparison

    folder = Path(compare_dir) if compare_dir else dst.parent
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{src.stem}_compare_{mode}.jpg"
    write_comparison(path, before, after, cast(Mode, mode))  # an unknown mode is refused there
    return path


# -- folders -------------------------------------------------------------------------------------------


def plan_folder(
    src_dir: str | Path, dst_dir: str | Path, *, recursive: bool = True,
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
        pairs.append((path, output_path(path, out_dir=dst_dir / rel.parent, suffix=suffix, fmt=format)))
    return pairs


def derain_folder(
    engine: Engine,
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
    max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
) -> FolderReport:
    """Derain every image under ``src_dir`` into ``dst_dir`` (same tree) with `engine`.

    Existing outputs are skipped unless ``overwrite``, so an interrupted run resumes where it
    stopped (outputs are written atomically: a file is either complete or absent).
    """
    pairs = plan_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format, suffix=suffix)
    results = []
    bar = _progress_bar(len(pairs), "derain", enabled=progress)
    try:
        for src, dst in pairs:
            cdir = None
            if compare and compare != "none":
                base = Path(compare_dir) if compare_dir else Path(dst_dir) / "_compare"
                cdir = base / src.relative_to(src_dir).parent
            result = derain_file(engine, src, dst, format=format, quality=quality, overwrite=overwrite,
                                 compare=compare, compare_dir=cdir, suffix=suffix, max_pixels=max_pixels)
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
