"""Files and folders: decode -> engine -> encode, one file at a time, never losing an input.

    result = derain_file(engine, "rainy.jpg")             # -> rainy_derained.jpg beside it
    report = derain_folder(engine, "rainy/", "clean/")    # mirrors the tree, resumable

Where each output goes is decided by :func:`output_path` alone (the CLI's ``-o`` folders, the
default name beside the input and the mirrored folder tree all use it). Before any model runs,
:func:`check_plan` sets aside inputs that are outputs of derain (so that no rerun derains its own
outputs) and inputs whose output another input would get too, and :func:`prepare_outputs` checks
that the output folders can be written. A bad input never stops a batch: its FileResult says
``failed`` and why; a write failure that would repeat for every other output (no permission, a
full disk) does stop it, with an :class:`OutputError`. Outputs are written atomically by
``imaging``, so an existing output is a finished one and an interrupted folder run resumes where it
stopped.
"""

from __future__ import annotations

import fnmatch
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from . import imaging
from ._atomic import check_writable, remove_stale_temps
from .engine import Engine
from .errors import DerainError, ImageError, OutputError, UsageError
from .imaging.formats import EXTENSIONS, HEIF_EXTENSIONS, output_extension

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
    #: Images in the input folder that are outputs of derain, and why (never derained again).
    own_outputs: dict[Path, str] = field(default_factory=dict)

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


#: The extensions of every file a folder run picks up: HEIC too where the extra is missing, so
#: that such files are reported (with how to install it) instead of being passed over.
IMAGE_EXTENSIONS = frozenset(imaging.SUPPORTED_EXTENSIONS | HEIF_EXTENSIONS)
#: The extensions of the files we write (for removing our leftover temporary files).
OUTPUT_EXTENSIONS = frozenset({*EXTENSIONS.values(), ".jpeg", ".tiff"})


def iter_images(root: Path, recursive: bool = True, glob: str | None = None) -> Iterator[Path]:
    """Image files under ``root`` in a stable order (hidden files and folders skipped).

    `glob` matches the path relative to ``root`` or the file name, ignoring case ('*.jpg' takes
    IMG_0001.JPG). Recursive walks follow symbolic links to folders, each folder once (a link
    to a folder above it is not a loop). A broken symbolic link with an image's name is yielded,
    so that it is reported instead of passed over.
    """
    pattern = glob.lower() if glob else None
    for dirpath, filenames in _walk(Path(root), recursive):
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = dirpath / name
            if pattern:
                rel = path.relative_to(root).as_posix().lower()
                if not (fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name.lower(), pattern)):
                    continue
            elif path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if path.is_file() or (path.is_symlink() and not path.exists()):
                yield path


def _walk(root: Path, recursive: bool) -> Iterator[tuple[Path, list[str]]]:
    """(folder, names of the non-folders in it), top-down, each real folder once."""
    if not recursive:
        yield root, os.listdir(root)
        return
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: a loop or a second path
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield Path(dirpath), filenames


# -- before any model runs -----------------------------------------------------------------------------


@dataclass
class Plan:
    """The (input, output) pairs of a run, sorted out before any model runs (see check_plan)."""

    #: Pairs to derain, in the given order.
    todo: list[tuple[Path, Path]]
    #: Inputs that are outputs of derain, and why: they are not derained.
    own_outputs: dict[Path, str] = field(default_factory=dict)
    #: Inputs whose output another input would get too, with the error: neither is derained.
    collisions: dict[Path, FileResult] = field(default_factory=dict)

    def own_output_result(self, src: Path) -> FileResult:
        """The result that reports `src` as an output of derain (skipped)."""
        return FileResult(input=str(src), output=None, status="skipped", error=self.own_outputs[src])


def check_plan(pairs: list[tuple[Path, Path]], suffix: str | None) -> Plan:
    """Sort (input, output) pairs into those to derain, outputs of derain, and name collisions.

    An input is taken for an output of derain, so that rerunning a command never derains its
    own outputs (``a_derained.jpg`` -> ``a_derained_derained.jpg``), when

    - its folder and name (without the extension) are those of another input's output, e.g.
      ``a_derained.png`` beside ``a.jpg``, whatever the output format; or
    - `suffix` is not empty, its output goes into its own folder, and its name ends with `suffix`
      (an output whose input is gone, or one written in another format). `suffix` is None where
      the output names were not made from the input names (``-o FILE``).

    An input listed twice counts once. Inputs that would get the same output as another one are
    collisions: each gets a failed result that names the other, and neither is derained, whatever
    ``--overwrite`` says.
    """
    unique: dict[str, tuple[Path, Path]] = {}
    for src, dst in pairs:
        unique.setdefault(_key(src), (src, dst))
    pairs = list(unique.values())
    owners: dict[str, Path] = {}
    for src, dst in pairs:
        owners.setdefault(_key(dst.with_suffix("")), src)
    plan = Plan(todo=[])
    rest = []
    for src, dst in pairs:
        owner = owners.get(_key(src.with_suffix("")))
        if owner is not None and _key(owner) != _key(src):
            plan.own_outputs[src] = f"the output of {owner}"
        elif suffix and src.stem.endswith(suffix) and _key(src.parent) == _key(dst.parent):
            plan.own_outputs[src] = (f"its name ends with the suffix {suffix} (an output of derain; give "
                                     "another --suffix to derain it)")
        else:
            rest.append((src, dst))
    by_output: dict[str, list[Path]] = {}
    for src, dst in rest:
        by_output.setdefault(_key(dst), []).append(src)
    for src, dst in rest:
        sharing = by_output[_key(dst)]
        if len(sharing) == 1:
            plan.todo.append((src, dst))
            continue
        others = " and ".join(str(s) for s in sharing if s is not src)
        plan.collisions[src] = FileResult(
            input=str(src), output=str(dst), status="failed",
            error=f"{src}: its output {dst} would also be the output of {others}; rename one of them "
                  "(neither is derained)")
    return plan


def _key(path: Path) -> str:
    """A path as the file system compares it (absolute, case-folded where the platform folds)."""
    return os.path.normcase(os.path.abspath(path))


def prepare_outputs(folders: Iterable[Path], pairs: Iterable[tuple[Path, Path]]) -> None:
    """Make sure, before any model runs, that outputs can be written; tidy up after killed runs.

    Each of `folders` is created if needed and written to (a probe file, deleted at once): one
    that cannot be is a UsageError naming it. In the folder of every output that exists,
    temporary files that a killed run left (``.NAME.XXXXXXXX.tmp`` of an image NAME, held by no
    live writer) are deleted.
    """
    for folder in dict.fromkeys(folders):
        try:
            check_writable(folder)
        except OutputError as exc:
            raise UsageError(str(exc)) from None
    for folder in dict.fromkeys(dst.parent for _, dst in pairs):
        remove_stale_temps(folder, OUTPUT_EXTENSIONS)


def stopped(exc: OutputError, left: int) -> OutputError:
    """The error that stops a run at a write failure that would repeat, saying how many were left."""
    if not left:
        return exc
    return OutputError(exc.path, f"{exc.problem}; stopped with {left} image(s) left: fix this and run the same "
                                 "command again to go on", exc.errno)


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

    Usage errors (e.g. an output that would overwrite the input, an unknown format) do raise, and
    so does an OutputError whose cause would repeat for every other output (``repeats``: no
    permission, a full disk), for the caller to stop at; the output then names the output path.
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
    if src.is_symlink() and not src.exists():
        _failed(result, f"{src}: broken symbolic link (its target {os.readlink(src)} does not exist)")
        return result
    try:
        decoded = imaging.read_image(src, max_pixels=max_pixels)
        result.width, result.height = decoded.size
        result.warnings.extend(decoded.warnings)
        start = time.perf_counter()
        out = engine.derain_rgb(decoded.rgb, tile_progress=tile_progress)
        result.seconds = round(time.perf_counter() - start, 4)
        result.tile = engine.last_tile
        _make_folder(dst)
        fmt = None if not format or format == "same" else format
        from . import __version__

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", imaging.ImageWarning)
            try:
                imaging.write_image(dst, out, like=decoded, format=fmt, quality=quality,
                                    software=f"derain {__version__} ({engine.name})")
            except OSError as exc:  # the writer's own OSErrors come as OutputError already
                raise OutputError.from_os_error(dst, "cannot write", exc) from None
        result.warnings.extend(str(w.message) for w in caught if issubclass(w.category, imaging.ImageWarning))
        if gt is not None:
            _score_against(result, decoded.rgb, out, Path(gt), convention, max_pixels)
        if compare and compare != "none":
            result.compare = str(_write_compare(src, dst, decoded.rgb, out, compare, compare_dir))
    except UsageError:
        raise
    except OutputError as exc:
        if exc.repeats:
            raise
        _failed(result, str(exc))
    except DerainError as exc:
        _failed(result, str(exc))
    except MemoryError:
        _failed(result, f"{src}: out of memory (try a smaller --tile)")
    except Exception as exc:  # noqa: BLE001 - a model or library failure must not stop a batch
        _failed(result, f"{src}: {type(exc).__name__}: {exc}".splitlines()[0])
    return result


def _make_folder(path: Path) -> None:
    """Create the folder of output `path`; a failure is an OutputError naming the output."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os_error(path, f"cannot create the folder {path.parent}", exc) from None


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
    path = folder / f"{src.stem}_compare_{mode}.jpg"
    _make_folder(path)
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
    stopped (outputs are written atomically: a file is either complete or absent). Before the
    model is loaded, prepare_folder plans and checks: a folder without images is a UsageError,
    outputs of derain in the input folder are set aside (``FolderReport.own_outputs``), inputs
    with the same output name fail (see check_plan), and ``dst_dir`` is created and checked
    writable. A write failure that would repeat for every other output raises OutputError,
    saying how many images were left.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    plan = prepare_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format, suffix=suffix,
                          compare=compare, compare_dir=compare_dir)
    compare_on = bool(compare and compare != "none")
    results = list(plan.collisions.values())
    for result in results:
        if on_result:
            on_result(result)
    if plan.todo:
        engine.load()
    bar = _progress_bar(len(plan.todo), "derain", enabled=progress)
    try:
        for done, (src, dst) in enumerate(plan.todo, 1):
            cdir = None
            if compare_on:
                base = Path(compare_dir) if compare_dir else dst_dir / "_compare"
                cdir = base / src.relative_to(src_dir).parent
            try:
                result = derain_file(engine, src, dst, format=format, quality=quality, overwrite=overwrite,
                                     compare=compare, compare_dir=cdir, suffix=suffix, max_pixels=max_pixels)
            except OutputError as exc:
                raise stopped(exc, len(plan.todo) - done) from None
            results.append(result)
            if on_result:
                on_result(result)
            bar.update(1)
    finally:
        bar.close()
    return FolderReport(results, own_outputs=plan.own_outputs)


def prepare_folder(
    src_dir: str | Path, dst_dir: str | Path, *, recursive: bool = True, glob: str | None = None,
    format: str | None = None, suffix: str = "", compare: str | None = None,
    compare_dir: str | Path | None = None,
) -> Plan:
    """Everything a folder run does before any model runs, whichever engine then derains it.

    Plans the mirrored tree (plan_folder); a folder without images is a UsageError that says
    what to change, and so is one with only HEIC files where they cannot be read; sorts the pairs
    (check_plan); creates ``dst_dir`` (and `compare_dir`) and checks they can be written, and
    removes temporary files a killed run left (prepare_outputs).
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    pairs = plan_folder(src_dir, dst_dir, recursive=recursive, glob=glob, format=format, suffix=suffix)
    if not pairs:
        raise UsageError(_nothing_found(src_dir, recursive, glob))
    if not imaging.HEIF_AVAILABLE and all(src.suffix.lower() in HEIF_EXTENSIONS for src, _ in pairs):
        raise UsageError(f"{src_dir}: {len(pairs)} HEIC file(s) and no other images; {imaging.HEIF_HINT}")
    plan = check_plan(pairs, suffix)
    compare_on = bool(compare and compare != "none")
    prepare_outputs([dst_dir] + ([Path(compare_dir)] if compare_on and compare_dir else []), plan.todo)
    return plan


def _nothing_found(src_dir: Path, recursive: bool, glob: str | None) -> str:
    """Why a folder run found no input, in words that say what to change."""
    if glob:
        return f"{src_dir}: no images match --glob '{glob}'"
    has_subfolders = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(src_dir))
    hint = " (add --recursive for subfolders)" if not recursive and has_subfolders else ""
    return f"{src_dir}: no images found{hint}"


def _progress_bar(total: int, desc: str, enabled: bool):
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not (enabled and sys.stderr.isatty()),
                file=sys.stderr, leave=False)
