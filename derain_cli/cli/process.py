"""Commands that process images: `derain run` (the default), `batch`, `bench`, and `doctor`.

Each one checks its arguments (usage errors, exit 2, before a model is loaded), calls the API,
and prints what happened. Nothing heavy is imported at module level: torch comes in only when a
command runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import UsageError
from ._errors import EXIT_FAILED, handle_errors
from ._options import (
    COMPARE_CHOICES,
    METRIC_CHOICES,
    CompareDirOpt,
    CompareOpt,
    DeviceOpt,
    FormatOpt,
    JsonOpt,
    MaxPixelsOpt,
    MetricOpt,
    ModelOpt,
    OverlapOpt,
    OverwriteOpt,
    PrecisionOpt,
    QualityOpt,
    QuietOpt,
    ThreadsOpt,
    TileOpt,
    VerboseOpt,
    check_choice,
    max_pixels_limit,
    resolve_model,
)
from ._output import Output, json_safe, number_text

if TYPE_CHECKING:
    from ..api import Derainer, FileResult, FolderReport
    from ..bench import BenchStep
    from ..distributed import RayBatch


def run(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="Images to derain."),
    output: str | None = typer.Option(None, "-o", "--output", metavar="PATH",
                                      help="Output file (one input), or folder (several inputs, a name "
                                           "ending in / or without an extension; created if needed)."),
    gt: Path | None = typer.Option(None, "--gt", metavar="GT_FILE",
                                   help="Ground truth: print PSNR/SSIM of input and output against it."),
    metric: str = MetricOpt,
    model: str | None = ModelOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    tile_overlap: int | None = OverlapOpt,
    fmt: str = FormatOpt,
    quality: int | None = QualityOpt,
    suffix: str | None = typer.Option(None, "--suffix", metavar="TEXT",
                                      help="Added to output file names (default: _derained in the input's own "
                                           "folder, nothing in another -o folder)."),
    overwrite: bool = OverwriteOpt,
    compare: str = CompareOpt,
    compare_dir: Path | None = CompareDirOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    max_pixels: int | None = MaxPixelsOpt,
    threads: int | None = ThreadsOpt,
) -> None:
    """Derain one or more image files (the default command: `derain FILE...`).

    Each output is written next to its input as NAME_derained.EXT unless -o says otherwise; inputs
    are never overwritten, and inputs that are outputs of derain (a_derained.jpg beside a.jpg)
    are skipped. EXIF, ICC profile and XMP are kept.
    """
    from ..errors import OutputError
    from ..imaging.formats import FORMAT_CHOICES
    from ..pipeline import DEFAULT_SUFFIX, check_plan, prepare_outputs, stopped

    out = Output(quiet, verbose, as_json)
    fmt = check_choice("--format", fmt, FORMAT_CHOICES)
    compare = check_choice("--compare", compare, COMPARE_CHOICES)
    metric = check_choice("--metric", metric, METRIC_CHOICES)
    if gt is not None and len(files) > 1:
        raise typer.BadParameter("--gt takes one ground-truth file, so give one input", param_hint="--gt")
    if gt is not None and not gt.is_file():
        raise typer.BadParameter(f"{gt}: {'is a folder' if gt.is_dir() else 'no such file'}", param_hint="--gt")
    for path in files:
        if path.is_dir():
            raise UsageError(f"{path}: is a folder; use `derain batch {path} --out OUT_DIR`")
    pairs, named_from_input = _output_paths(files, output, fmt, suffix)
    derainer = _make_derainer(out, model, device, precision, tile, tile_overlap, threads, max_pixels, load=False)
    plan = check_plan(pairs, (suffix if suffix is not None else DEFAULT_SUFFIX) if named_from_input else None)
    for result in plan.collisions.values():  # before anything runs
        _report_file(out, result)
    prepare_outputs({dst.parent for src, dst in plan.todo if src.exists()}, plan.todo)
    if plan.todo:
        derainer.load()  # missing weights: one clear error before any file is touched
    failed, left, todo = len(plan.collisions), len(plan.todo), set(plan.todo)
    for src, dst in dict.fromkeys(pairs):
        if src in plan.own_outputs:
            _report_file(out, plan.own_output_result(src))
        if (src, dst) not in todo:  # an output of derain, a collision (reported above), or listed twice
            continue
        todo.discard((src, dst))
        left -= 1
        bar = _TileProgress(not quiet and not as_json and sys.stderr.isatty(), src.name)
        try:
            result = derainer.derain_file(src, dst, format=fmt, quality=quality, overwrite=overwrite,
                                          compare=compare, compare_dir=compare_dir, gt=gt,
                                          convention=metric, tile_progress=bar)
        except OutputError as exc:
            raise stopped(exc, left) from None
        finally:
            bar.close()
        _report_file(out, result)
        failed += result.status == "failed"
    if failed:
        if len(files) > 1:
            out.error(f"{failed} of {len(files)} file(s) failed")
        raise typer.Exit(EXIT_FAILED)


def _make_derainer(out: Output, model: str | None, device: str, precision: str, tile: str, overlap: int | None,
                   threads: int | None, max_pixels: int | None, load: bool = True) -> Derainer:
    """A model (loaded unless `load` is False), or a one-line error before any file is touched."""
    resolve_model(model)  # an unknown name is a usage error (exit 2), before torch is imported
    from ..api import Derainer

    derainer = Derainer(model, device=device, precision=precision, tile=tile, tile_overlap=overlap,
                        threads=threads, progress=not out.quiet and not out.json_mode,
                        max_pixels=max_pixels_limit(max_pixels))
    if load:
        derainer.load()  # missing weights: one clear error before any file is touched
    return derainer


def _output_paths(files: list[Path], output: str | None, fmt: str,
                  suffix: str | None) -> tuple[list[tuple[Path, Path]], bool]:
    """(input, output) pairs for -o, and whether the output names were made from the input names.

    -o is a folder when it ends in a slash, is an existing folder, or, with several inputs, is
    anything but an image file name; with one input, a name with an extension is the output file.
    Outputs in an input's own folder get `suffix` (default _derained), elsewhere only a given one.
    """
    from ..pipeline import DEFAULT_SUFFIX, IMAGE_EXTENSIONS, output_path

    def named(src: Path, folder: Path | None) -> Path:
        own_folder = folder is None or os.path.abspath(folder) == os.path.abspath(src.parent)
        chosen = suffix if suffix is not None else (DEFAULT_SUFFIX if own_folder else "")
        return output_path(src, out_dir=folder, suffix=chosen, fmt=fmt)

    if output is None:
        return [(f, named(f, None)) for f in files], True
    path = Path(output)
    if output.endswith(("/", os.sep)):
        if path.exists() and not path.is_dir():
            raise typer.BadParameter(f"{path} is a file, not a folder", param_hint="-o")
    elif not path.is_dir():
        if len(files) == 1 and path.suffix:
            return [(files[0], path)], False
        if len(files) > 1 and path.exists():
            raise typer.BadParameter(f"{path} is a file; with several inputs -o must be a folder", param_hint="-o")
        if len(files) > 1 and path.suffix.lower() in IMAGE_EXTENSIONS:
            raise typer.BadParameter(f"{path} is a file name ({path.suffix}), but there are {len(files)} inputs: "
                                     "give a folder", param_hint="-o")
    return [(f, named(f, path)) for f in files], True


class _TileProgress:
    """A tqdm bar for the tiles of one image, shown only on a terminal and only when there are several."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc = enabled, desc
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit="tile", file=sys.stderr, leave=False)
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _report_file(out: Output, result: FileResult) -> None:
    """One file's outcome: a line (or a JSON record), its scores and warnings, or its error."""
    if out.json_mode:
        out.record(result.to_dict())
        if result.status == "failed":
            out.error(str(result.error))
        return
    if result.status == "ok":
        details = f"{result.width}x{result.height}, {result.seconds:.2f} s"
        if result.tile:
            details += f", tiles of {result.tile}"
        details += f", {result.model} on {result.device}"
        out.info(f"{result.input} -> {result.output} ({details})")
        if result.compare:
            out.info(f"  comparison: {result.compare}")
        if result.psnr_output is not None:
            out.info(f"  PSNR {number_text(result.psnr_input)} -> {number_text(result.psnr_output)} dB, "
                     f"SSIM {number_text(result.ssim_input, 4)} -> {number_text(result.ssim_output, 4)}")
        for w in result.warnings:
            out.warn(f"{result.input}: {w}")
    elif result.status == "skipped" and result.output is None:  # not an input: an output of derain
        out.note(f"{result.input}: skipped, {result.error}")
    elif result.status == "skipped":
        out.note(f"{result.input}: skipped, {result.output} exists (use --overwrite to replace it)")
    else:
        out.error(str(result.error))
        if out.verbose and result.traceback:
            typer.echo(result.traceback, err=True)


# --------------------------------------------------------------------------------------------------
def batch(
    in_dir: Path = typer.Argument(..., metavar="IN_DIR", help="Folder of rainy images."),
    out_dir: Path = typer.Option(..., "--out", metavar="OUT_DIR", help="Where the derained images go."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Include subfolders (the tree is mirrored)."),
    glob: str | None = typer.Option(None, "--glob", metavar="PATTERN",
                                    help="Only files matching PATTERN (any case), e.g. '*.jpg' or 'cam1/*.png'."),
    model: str | None = ModelOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    tile_overlap: int | None = OverlapOpt,
    fmt: str = FormatOpt,
    quality: int | None = QualityOpt,
    suffix: str = typer.Option("", "--suffix", metavar="TEXT",
                               help="Added to output file names (default: same names)."),
    overwrite: bool = OverwriteOpt,
    compare: str = CompareOpt,
    compare_dir: Path | None = CompareDirOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    max_pixels: int | None = MaxPixelsOpt,
    threads: int | None = ThreadsOpt,
    # -- where the work runs: this process, or a pool of Ray workers (derain_cli.distributed) --
    engine: str = typer.Option("local", "--engine", metavar="local|ray",
                               help="local: this process; ray: a pool of Ray workers, on this machine or a "
                                    "cluster (pip install 'derain-cli[ray]')."),
    address: str | None = typer.Option(None, "--address", metavar="ADDR",
                                       help="Ray cluster to join: auto (the one `ray start` made here) or "
                                            "HOST:PORT; default: a new Ray instance on this machine."),
    workers: int | None = typer.Option(None, "--workers", min=1, metavar="N",
                                       help="Ray workers (default: one per GPU, else one per 4 CPUs); "
                                            "--threads is then per worker."),
    gpus_per_worker: float | None = typer.Option(None, "--gpus-per-worker", min=0.0, metavar="F",
                                                 help="GPUs each Ray worker reserves; 0.25 puts four on a GPU "
                                                      "(default: 1 where the cluster has GPUs)."),
) -> None:
    """Derain every image in a folder (tree) into another folder with the same layout.

    Outputs that exist are skipped unless --overwrite, so an interrupted run resumes where it
    stopped; images in IN_DIR that are outputs of derain are never derained again. Bad files are
    reported at the end; the exit code is 1 if any file failed, 2 if IN_DIR has no images or
    OUT_DIR cannot be written. With --engine ray the same files are written by Ray workers (each
    loads the model once).
    """
    from ..imaging.formats import FORMAT_CHOICES

    out = Output(quiet, verbose, as_json)
    fmt = check_choice("--format", fmt, FORMAT_CHOICES)
    compare = check_choice("--compare", compare, COMPARE_CHOICES)
    engine = check_choice("--engine", engine, ("local", "ray"))
    if engine == "local" and (address, workers, gpus_per_worker) != (None, None, None):
        raise typer.BadParameter("--address, --workers and --gpus-per-worker need --engine ray",
                                 param_hint="--engine")
    if not in_dir.is_dir():
        raise UsageError(f"{in_dir}: not a folder")
    with handle_errors(out, interrupted="interrupted; run the same command again to resume"):
        derainer: Derainer | RayBatch
        if engine == "ray":
            resolve_model(model)  # an unknown name is a usage error (exit 2), as locally
            from ..distributed import RayBatch

            derainer = RayBatch(model, device=device, precision=precision, tile=tile, tile_overlap=tile_overlap,
                                threads=threads, max_pixels=max_pixels_limit(max_pixels), address=address,
                                workers=workers, gpus_per_worker=gpus_per_worker)
        else:
            # loaded by derain_folder once it has found images and checked that --out can be written
            derainer = _make_derainer(out, model, device, precision, tile, tile_overlap, threads, max_pixels,
                                      load=False)
        report = derainer.derain_folder(
            in_dir, out_dir, recursive=recursive, glob=glob, overwrite=overwrite, format=fmt, quality=quality,
            suffix=suffix, compare=compare, compare_dir=compare_dir,
            progress=not quiet and not as_json,
            on_result=(lambda r: _report_file(out, r)) if (as_json or verbose) else None,
        )
    if report.own_outputs:
        if verbose:
            for src, why in report.own_outputs.items():
                out.note(f"{src}: skipped, {why}")
        else:
            out.note(f"{in_dir}: {len(report.own_outputs)} image(s) are outputs of derain and are not derained "
                     "again (-v lists them)")
    if not as_json:
        _print_batch_summary(out, report, derainer.name)
    else:
        for r in report.failed:
            typer.echo(f"failed: {r.error}", err=True)
    if report.counts["failed"]:
        raise typer.Exit(EXIT_FAILED)


def _print_batch_summary(out: Output, report: FolderReport, model_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    counts = report.counts
    seconds = sum(r.seconds or 0 for r in report.results)
    console = Console(stderr=out.json_mode, highlight=False)
    if not out.quiet:
        table = Table(title=f"derain batch ({model_name})", show_header=True)
        table.add_column("done", justify="right")
        table.add_column("skipped", justify="right")
        table.add_column("failed", justify="right")
        table.add_column("model time", justify="right")
        table.add_row(str(counts["ok"]), str(counts["skipped"]), str(counts["failed"]), f"{seconds:.1f} s")
        console.print(table)
    if report.failed:
        typer.echo(f"{len(report.failed)} file(s) failed:", err=True)
        for r in report.failed:
            typer.echo(f"  {r.error}", err=True)


# --------------------------------------------------------------------------------------------------
def bench(
    in_dir: Path = typer.Argument(..., metavar="IN_DIR", help="Folder of rainy inputs."),
    gt_dir: Path = typer.Option(..., "--gt", metavar="GT_DIR", help="Folder of clean ground-truth images."),
    models: list[str] | None = typer.Option(None, "-m", "--model", metavar="NAME",
                                            help="Model to score; repeat for several; `none` = input only."),
    pair: str = typer.Option("name", "--pair", metavar="name|sorted",
                             help="Pair inputs with ground truth by file name or by sorted order."),
    metric: str = MetricOpt,
    save: Path | None = typer.Option(None, "--save", metavar="DIR", help="Also save every model's outputs here."),
    json_file: Path | None = typer.Option(None, "--json", metavar="FILE", help="Write the full report as JSON."),
    csv_file: Path | None = typer.Option(None, "--csv", metavar="FILE", help="Write per-image scores as CSV."),
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    max_pixels: int | None = MaxPixelsOpt,
    threads: int | None = ThreadsOpt,
) -> None:
    """Score models against ground truth: per image and mean PSNR/SSIM of the rainy input and of
    every model, seconds per image, megapixels per second and peak memory.

    Scores follow the deraining papers' MATLAB scripts (--metric restormer or rcdnet). Models run
    on the whole image where it fits in memory, as the papers did. `-m none` scores only the input.
    """
    out = Output(quiet, verbose)
    pair = check_choice("--pair", pair, ("name", "sorted"))
    metric = check_choice("--metric", metric, METRIC_CHOICES)
    for folder, what in ((in_dir, "IN_DIR"), (gt_dir, "--gt")):
        if not folder.is_dir():
            raise UsageError(f"{folder}: not a folder ({what})")
    # unknown names are usage errors before any image is read; `none` scores the input alone
    requested: list[str | None] = list(models) if models else [None]  # None: the built-in model
    names = ["none" if n and n.lower() == "none" else resolve_model(n).name for n in requested]
    from ..bench import benchmark, write_csv
    from ..device import configure_threads

    configure_threads(threads)
    progress = _BenchProgress(out, bar=sys.stderr.isatty())
    try:
        report = benchmark(in_dir, gt_dir, names, pair=pair,
                           convention=metric, save_dir=save, device=device, precision=precision, tile=tile,
                           max_pixels=max_pixels_limit(max_pixels), on_progress=None if quiet else progress)
    finally:
        progress.close()
    if json_file:
        from .._atomic import atomic_write_bytes

        atomic_write_bytes(json_file, json.dumps(json_safe(report), indent=2).encode())
    if csv_file:
        write_csv(report, csv_file)
    _print_bench(out, report, in_dir)
    for name in report["unmatched_inputs"]:
        out.warn(f"{in_dir / name}: no ground truth with a matching name (not scored)")
    for name in report["unmatched_targets"]:
        out.warn(f"{gt_dir / name}: no input with a matching name (not used)")


class _BenchProgress:
    """`derain bench`'s progress on stderr: a bar per model on a terminal, else a line per model and
    per image (logs of long runs show where they are)."""

    def __init__(self, out: Output, bar: bool):
        self.out, self.bar = out, bar
        self._bar: Any = None

    def __call__(self, step: BenchStep) -> None:
        if not self.bar:
            if step.image is None:
                self.out.note(f"bench: {step.model}: loading")
            else:
                self.out.note(f"bench: {step.model}: {step.done}/{step.total} {step.image} ({step.seconds:.2f} s)")
            return
        if step.image is None:
            from tqdm import tqdm

            self.close()
            self._bar = tqdm(total=step.total, desc=step.model, unit="img", file=sys.stderr, leave=False)
        elif self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _print_bench(out: Output, report: dict, in_dir: Path) -> None:
    if out.quiet:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{in_dir} — {report['pairs']} image(s), metric: {report['metric']}")
    table.add_column("model")
    for col in ("PSNR dB", "SSIM", "s/image", "MP/s", "peak MB"):
        table.add_column(col, justify="right")
    inp = report["input"]
    table.add_row("input (rainy)", number_text(inp["psnr"]), number_text(inp["ssim"], 4), "-", "-", "-")
    for m in report["models"]:
        table.add_row(m["model"], number_text(m["psnr"]), number_text(m["ssim"], 4),
                      number_text(m["seconds_per_image"], 3), number_text(m["megapixels_per_second"], 3),
                      number_text(m["peak_memory_mb"], 0))
    Console(highlight=False).print(table)


# --------------------------------------------------------------------------------------------------
def doctor() -> None:
    """Show torch, CUDA/MPS devices, threads and the weights cache folder."""
    import platform

    import torch

    from .. import __version__
    from ..device import choose_device, configure_threads, describe_devices, mps_available
    from ..weights import cache_dir

    threads = configure_threads()
    lines = [
        ("derain", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'no'})"),
        ("CUDA available", str(torch.cuda.is_available())),
        ("MPS available", str(mps_available())),
        ("auto device", str(choose_device("auto"))),
        ("CPU threads", f"{threads} (set DERAIN_THREADS to change)"),
        ("weights cache", str(cache_dir())),
    ]
    for d in describe_devices():
        mem = f", {d.memory_gb:.1f} GB" if d.memory_gb else ""
        lines.append((f"device {d.name}", f"{d.detail}{mem}"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        typer.echo(f"{k:<{width}}  {v}")

