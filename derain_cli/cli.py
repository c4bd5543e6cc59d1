"""The `derain` command line: parse, call the API, print.

Nothing heavy is imported at module level, so `derain --help` and `derain --version` stay fast;
torch comes in only with the commands that run a model.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from . import __version__, settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_COMMAND = "run"
FORMAT_CHOICES = ("same", "jpg", "jpeg", "png", "webp", "tiff", "tif")
COMPARE_CHOICES = ("none", "side", "split")


class DefaultCommandGroup(TyperGroup):
    """`derain FILE...` means `derain run FILE...`: any first word that is not a command."""

    def parse_args(self, ctx, args):
        if args and self._needs_default_command(args):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def _needs_default_command(self, args: list) -> bool:
        first = args[0]
        if not first.startswith("-"):
            return first not in self.commands  # `derain photo.jpg ...`
        # `derain -m prenet photo.jpg`: options first, and no command anywhere
        return first not in ("--help", "-h", "--version") and not any(a in self.commands for a in args)

    def list_commands(self, ctx):
        return [c for c in super().list_commands(ctx) if c != DEFAULT_COMMAND]

    def format_usage(self, ctx, formatter):
        formatter.write_usage("derain", "FILE... [OPTIONS]  |  derain COMMAND [ARGS]...")


app = typer.Typer(
    cls=DefaultCommandGroup,
    name="derain",
    help=(
        "Remove rain from photographs with published deep deraining networks.\n\n"
        "\b\n"
        "  derain photo.jpg                    derain files with the built-in model\n"
        "  derain photo.jpg -m prenet          ...with another model (`derain models list`)\n"
        "  derain batch ./rainy --out ./clean  a whole folder, resumable\n"
        "  derain bench ./rainy --gt ./clean   PSNR/SSIM and speed against ground truth\n\n"
        "Run `derain run --help` for every option of the default command."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List, download, import and verify model weights.", no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(models_app, name="models")


# --------------------------------------------------------------------------------------------------
# output helpers
class Output:
    """Where messages go: results on stdout, diagnostics on stderr; --json keeps stdout pure JSON."""

    def __init__(self, quiet: bool = False, verbose: bool = False, json_mode: bool = False):
        self.quiet, self.verbose, self.json_mode = quiet, verbose, json_mode

    def info(self, msg: str) -> None:
        if not self.quiet:
            typer.echo(msg, err=self.json_mode)

    def note(self, msg: str) -> None:
        """Progress-like chatter: stderr, hidden by --quiet."""
        if not self.quiet:
            typer.echo(msg, err=True)

    def error(self, msg: str) -> None:
        typer.echo(f"error: {msg}", err=True)

    def warn(self, msg: str) -> None:
        if not self.quiet:
            typer.echo(f"warning: {msg}", err=True)

    def record(self, obj: dict) -> None:
        typer.echo(json.dumps(_json_safe(obj), ensure_ascii=False))


def _json_safe(obj):
    """Infinite PSNR (identical images) becomes null so the output stays valid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _fail(out: Output, exc: Exception) -> typer.Exit:
    from .errors import DerainError

    if out.verbose:
        import traceback

        traceback.print_exc()
    code = exc.exit_code if isinstance(exc, DerainError) else EXIT_FAILED
    out.error(str(exc))
    return typer.Exit(code)


def _tile_progress_bar(enabled: bool, desc: str):
    """A tqdm bar for the tiles of one image, shown only on a terminal and only when useful."""
    from tqdm import tqdm

    state = {"bar": None}

    def update(done: int, total: int) -> None:
        if not enabled or total <= 1:
            return
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, desc=desc, unit="tile", file=sys.stderr, leave=False)
        state["bar"].n = done
        state["bar"].refresh()

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()

    update.close = close
    return update


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------------
# shared options
ModelOpt = typer.Option(None, "-m", "--model", metavar="NAME[:VARIANT]",
                        help="Model to use (default: the built-in model); see `derain models list`. "
                             "A .safetensors file from `derain export` works too.")
DeviceOpt = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N|mps",
                         help="auto picks CUDA, then MPS, then CPU. A missing named device is an error.")
PrecisionOpt = typer.Option("auto", "--precision", metavar="auto|fp32|fp16|bf16",
                            help="auto: fp32 on CPU, bf16/fp16 on a GPU where the model allows it.")
TileOpt = typer.Option("auto", "--tile", metavar="auto|0|N",
                       help="Tile size in pixels for large images; 0 = whole image; auto = from free memory.")
OverlapOpt = typer.Option(32, "--tile-overlap", metavar="N", help="Pixels shared by neighbouring tiles (blended).")
FormatOpt = typer.Option("same", "--format", metavar="same|jpg|png|webp|tiff", help="Output file format.")
QualityOpt = typer.Option(None, "--quality", min=1, max=100, help="JPEG/WebP quality (default 95).")
OverwriteOpt = typer.Option(False, "--overwrite/--skip-existing",
                            help="Replace outputs that exist (default: skip them, so reruns resume).")
CompareOpt = typer.Option("none", "--compare", metavar="none|side|split",
                          help="Also write a before/after image: side by side, or split down the middle.")
CompareDirOpt = typer.Option(None, "--compare-dir", help="Folder for comparison images (default: beside the outputs).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON record per processed file on stdout, nothing else.")
QuietOpt = typer.Option(False, "-q", "--quiet", help="Only errors.")
VerboseOpt = typer.Option(False, "-v", "--verbose", help="Show tracebacks and details.")
MaxPixelsOpt = typer.Option(None, "--max-pixels", metavar="N",
                            help="Refuse images larger than N pixels (decompression-bomb guard; 0 = no limit).")
ThreadsOpt = typer.Option(None, "--threads", min=1, help="CPU threads (default: DERAIN_THREADS or all cores).")


def _max_pixels(value: int | None):
    from .imaging import DEFAULT_MAX_PIXELS

    if value is None:
        return DEFAULT_MAX_PIXELS
    return None if value == 0 else value


def _check_choice(name: str, value: str, choices) -> str:
    v = value.lower()
    if v not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=name)
    return v


def _make_derainer(out: Output, model, device, precision, tile, overlap, threads, max_pixels):
    from .api import Derainer

    derainer = Derainer(model, device=device, precision=precision, tile=tile, tile_overlap=overlap,
                        threads=threads, progress=not out.quiet and not out.json_mode,
                        max_pixels=_max_pixels(max_pixels))
    derainer.load()  # missing weights: one clear error before any file is touched
    return derainer


def _version_callback(value: bool):
    if value:
        typer.echo(f"derain {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the version and exit."),
):
    """Remove rain from photographs."""


# --------------------------------------------------------------------------------------------------
@app.command(DEFAULT_COMMAND, help=(
    "Derain one or more image files (the default command: `derain FILE...`).\n\n"
    "Each output is written next to its input as NAME_derained.EXT unless -o says otherwise; "
    "inputs are never overwritten. EXIF, ICC profile and XMP are kept."
))
def run_cmd(
    files: list[Path] = typer.Argument(..., metavar="FILE", help="Images to derain."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="Output file (one input), or folder (several inputs, or a name "
                                            "without an extension; created if needed)."),
    gt: Path | None = typer.Option(None, "--gt", metavar="GT_FILE",
                                      help="Ground truth: print PSNR/SSIM of input and output against it."),
    metric: str = typer.Option("restormer", "--metric", metavar="restormer|rcdnet", help="PSNR/SSIM convention."),
    model: str | None = ModelOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    tile_overlap: int = OverlapOpt,
    fmt: str = FormatOpt,
    quality: int | None = QualityOpt,
    suffix: str = typer.Option("_derained", "--suffix",
                               help="Added to the file name of outputs written beside inputs."),
    overwrite: bool = OverwriteOpt,
    compare: str = CompareOpt,
    compare_dir: Path | None = CompareDirOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    max_pixels: int | None = MaxPixelsOpt,
    threads: int | None = ThreadsOpt,
):
    from .api import default_output_path
    from .errors import DerainError

    out = Output(quiet, verbose, as_json)
    fmt = _check_choice("--format", fmt, FORMAT_CHOICES)
    compare = _check_choice("--compare", compare, COMPARE_CHOICES)
    if gt is not None and len(files) > 1:
        raise typer.BadParameter("--gt takes one ground-truth file, so give one input", param_hint="--gt")
    targets = _output_paths(files, output, suffix, fmt)
    try:
        derainer = _make_derainer(out, model, device, precision, tile, tile_overlap, threads, max_pixels)
        failed = 0
        for src, dst in zip(files, targets):
            bar = _tile_progress_bar(not quiet and not as_json and sys.stderr.isatty(), src.name)
            try:
                result = derainer.derain_file(src, dst or default_output_path(src, suffix, fmt), format=fmt,
                                              quality=quality, suffix=suffix, overwrite=overwrite,
                                              compare=compare, compare_dir=compare_dir, gt=gt,
                                              convention=metric, tile_progress=bar)
            finally:
                bar.close()
            _report_file(out, result)
            failed += result.status == "failed"
    except KeyboardInterrupt:
        out.error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        raise _fail(out, exc) from None
    if failed:
        if len(files) > 1:
            out.error(f"{failed} of {len(files)} file(s) failed")
        raise typer.Exit(EXIT_FAILED) from None


def _output_paths(files: list[Path], output: Path | None, suffix: str, fmt: str) -> list:
    from .api import output_extension

    if output is None:
        return [None] * len(files)
    # a folder: several inputs, an existing folder, or a name without an extension ("out/" arrives
    # here without its slash, and a file name needs an extension to choose the format anyway)
    as_folder = len(files) > 1 or output.is_dir() or not output.suffix
    if not as_folder:
        return [output]
    if output.exists() and not output.is_dir():
        raise typer.BadParameter(f"{output} is a file; with several inputs -o must be a folder", param_hint="-o")
    names = [f"{f.stem}{output_extension(f, fmt)}" for f in files]
    if len(set(names)) != len(names):
        raise typer.BadParameter("several inputs would get the same output name in that folder", param_hint="-o")
    return [output / n for n in names]


def _report_file(out: Output, result) -> None:
    if out.json_mode:
        out.record(result.to_dict())
        if result.status == "failed":
            out.error(result.error)
        return
    if result.status == "ok":
        details = f"{result.width}x{result.height}, {result.seconds:.2f} s"
        if result.tile:
            details += f", tiles of {result.tile}"
        out.info(f"{result.input} -> {result.output} ({details})")
        if result.compare:
            out.info(f"  comparison: {result.compare}")
        if result.psnr_output is not None:
            out.info(f"  PSNR {_fmt(result.psnr_input)} -> {_fmt(result.psnr_output)} dB, "
                     f"SSIM {_fmt(result.ssim_input, 4)} -> {_fmt(result.ssim_output, 4)}")
        for w in result.warnings:
            out.warn(f"{result.input}: {w}")
    elif result.status == "skipped":
        out.note(f"{result.input}: skipped, {result.output} exists (use --overwrite to replace it)")
    else:
        out.error(result.error)
        if out.verbose and getattr(result, "traceback", None):
            typer.echo(result.traceback, err=True)


# --------------------------------------------------------------------------------------------------
@app.command("batch", help=(
    "Derain every image in a folder (tree) into another folder with the same layout.\n\n"
    "Outputs that exist are skipped unless --overwrite, so an interrupted run resumes where it "
    "stopped. Bad files are reported at the end; the exit code is 1 if any file failed."
))
def batch_cmd(
    in_dir: Path = typer.Argument(..., metavar="IN_DIR", help="Folder of rainy images."),
    out_dir: Path = typer.Option(..., "--out", metavar="OUT_DIR", help="Where the derained images go."),
    recursive: bool = typer.Option(False, "-r", "--recursive", help="Include subfolders (the tree is mirrored)."),
    glob: str | None = typer.Option(None, "--glob", metavar="PATTERN",
                                       help="Only files matching PATTERN, e.g. '*.jpg' or 'cam1/*.png'."),
    model: str | None = ModelOpt,
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    tile_overlap: int = OverlapOpt,
    fmt: str = FormatOpt,
    quality: int | None = QualityOpt,
    suffix: str = typer.Option("", "--suffix", help="Added to output file names (default: same names)."),
    overwrite: bool = OverwriteOpt,
    compare: str = CompareOpt,
    compare_dir: Path | None = CompareDirOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
    max_pixels: int | None = MaxPixelsOpt,
    threads: int | None = ThreadsOpt,
):
    from .errors import DerainError

    out = Output(quiet, verbose, as_json)
    fmt = _check_choice("--format", fmt, FORMAT_CHOICES)
    compare = _check_choice("--compare", compare, COMPARE_CHOICES)
    if not in_dir.is_dir():
        out.error(f"{in_dir}: not a folder")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        derainer = _make_derainer(out, model, device, precision, tile, tile_overlap, threads, max_pixels)
        report = derainer.derain_folder(
            in_dir, out_dir, recursive=recursive, glob=glob, overwrite=overwrite, format=fmt, quality=quality,
            suffix=suffix, compare=compare, compare_dir=compare_dir,
            progress=not quiet and not as_json,
            on_result=(lambda r: _report_file(out, r)) if (as_json or verbose) else None,
        )
    except KeyboardInterrupt:
        out.error("interrupted; run the same command again to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        raise _fail(out, exc) from None
    counts = report.counts
    if not report.results:
        out.warn(f"{in_dir}: no images found" + ("" if recursive else " (add --recursive for subfolders)"))
    elif not as_json:
        _print_batch_summary(out, report, derainer.name)
    elif report.failed:
        for r in report.failed:
            typer.echo(f"failed: {r.error}", err=True)
    if counts["failed"]:
        raise typer.Exit(EXIT_FAILED) from None


def _print_batch_summary(out: Output, report, model_name: str) -> None:
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
@app.command("bench", help=(
    "Score models against ground truth: per image and mean PSNR/SSIM of the rainy input and of every "
    "model, seconds per image, megapixels per second and peak memory.\n\n"
    "Scores follow the deraining papers' MATLAB scripts (--metric restormer or rcdnet). Models run on "
    "the whole image where it fits in memory, as the papers did. `-m none` scores only the input."
))
def bench_cmd(
    in_dir: Path = typer.Argument(..., metavar="IN_DIR", help="Folder of rainy inputs."),
    gt_dir: Path = typer.Option(..., "--gt", metavar="GT_DIR", help="Folder of clean ground-truth images."),
    models: list[str] | None = typer.Option(None, "-m", "--model", metavar="NAME",
                                               help="Model to score; repeat for several; `none` = input only."),
    pair: str = typer.Option("name", "--pair", metavar="name|sorted",
                             help="Pair inputs with ground truth by file name or by sorted order."),
    metric: str = typer.Option("restormer", "--metric", metavar="restormer|rcdnet", help="PSNR/SSIM convention."),
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
):
    from .bench import benchmark, write_csv
    from .errors import DerainError

    out = Output(quiet, verbose)
    pair = _check_choice("--pair", pair, ("name", "sorted"))
    metric = _check_choice("--metric", metric, ("restormer", "rcdnet"))
    for folder, flag in ((in_dir, "IN_DIR"), (gt_dir, "--gt")):
        if not folder.is_dir():
            out.error(f"{folder}: not a folder ({flag})")
            raise typer.Exit(EXIT_USAGE) from None
    names = models or [None]
    try:
        from .device import configure_threads

        configure_threads(threads)
        from . import models as registry

        resolved = ["none" if n and n.lower() == "none" else registry.resolve(n).name for n in names]
        report = benchmark(in_dir, gt_dir, resolved, pair=pair, convention=metric, save_dir=save,
                           device=device, precision=precision, tile=tile, max_pixels=_max_pixels(max_pixels),
                           on_progress=out.note if verbose else None)
    except KeyboardInterrupt:
        out.error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        raise _fail(out, exc) from None
    if json_file:
        from .imaging import atomic_write_bytes

        atomic_write_bytes(json_file, json.dumps(_json_safe(report), indent=2).encode())
    if csv_file:
        write_csv(report, csv_file)
    _print_bench(out, report, in_dir)
    for name in report["unmatched_inputs"]:
        out.warn(f"{in_dir / name}: no ground truth with a matching name (not scored)")
    for name in report["unmatched_targets"]:
        out.warn(f"{gt_dir / name}: no input with a matching name (not used)")


def _print_bench(out: Output, report: dict, in_dir: Path) -> None:
    if out.quiet:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{in_dir} — {report['pairs']} image(s), metric: {report['metric']}")
    for col, justify in (("model", "left"), ("PSNR dB", "right"), ("SSIM", "right"), ("s/image", "right"),
                         ("MP/s", "right"), ("peak MB", "right")):
        table.add_column(col, justify=justify)
    inp = report["input"]
    table.add_row("input (rainy)", _fmt(inp["psnr"]), _fmt(inp["ssim"], 4), "-", "-", "-")
    for m in report["models"]:
        table.add_row(m["model"], _fmt(m["psnr"]), _fmt(m["ssim"], 4), _fmt(m["seconds_per_image"], 3),
                      _fmt(m["megapixels_per_second"], 3), _fmt(m["peak_memory_mb"], 0))
    Console(highlight=False).print(table)


# --------------------------------------------------------------------------------------------------
@app.command("doctor", help="Show torch, CUDA/MPS devices, threads and the weights cache folder.")
def doctor_cmd():
    import platform

    import torch

    from .device import choose_device, configure_threads, describe_devices
    from .weights import cache_dir

    threads = configure_threads()
    lines = [
        ("derain", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", f"{torch.__version__} (CUDA build: {torch.version.cuda or 'no'})"),
        ("CUDA available", str(torch.cuda.is_available())),
        ("MPS available", str(bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))),
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


# --------------------------------------------------------------------------------------------------
# models
def _size_text(nbytes) -> str:
    if not nbytes:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def _model_record(m) -> dict:
    from .models import default_model_name
    from .weights import installed

    src = m.source
    return {
        "name": m.name,
        "architecture": m.architecture.title,
        "arch": m.arch,
        "variant": m.variant,
        "trained_on": m.entry.trained_on,
        "size": src.size,
        "installed": installed(m),
        "source": src.kind,
        "sha256": src.sha256,
        "url": src.url or src.page,
        "default_variant": m.is_default_variant,
        "default_model": m.arch == default_model_name().split(":")[0] and m.is_default_variant,
    }


@models_app.command("list", help="All registered models: name, architecture, training set, size, "
                                 "whether installed, and where the weights come from.")
def models_list(as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout.")):
    from . import models

    records = [_model_record(m) for m in models.REGISTRY.models()]
    with_weights = {m.arch for m in models.REGISTRY.models()}
    for arch in models.REGISTRY.architectures().values():
        if arch.name not in with_weights:  # e.g. PLNLIN: no published weights, train your own
            records.append({"name": arch.name, "architecture": arch.title, "arch": arch.name, "variant": None,
                            "trained_on": "no weights published: train your own", "size": None,
                            "installed": False, "source": "none", "sha256": None, "url": arch.url or None,
                            "default_variant": False, "default_model": False})
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("architecture", no_wrap=True)
    table.add_column("trained on", no_wrap=True, overflow="ellipsis", max_width=34)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("installed", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for r in records:
        name = r["name"] + (" (default)" if r["default_model"] else "")
        table.add_row(name, r["architecture"], r["trained_on"] or "-", _size_text(r["size"]),
                      "yes" if r["installed"] else "no", r["source"])
    Console(highlight=False, width=max(120, _terminal_width())).print(table)
    typer.echo("An architecture name alone (e.g. `prenet`) means its default variant, listed first; "
               "`derain models info NAME` tells more.")


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


@models_app.command("info", help="Everything the registry knows about a model.")
def models_info(name: str = typer.Argument(..., metavar="NAME[:VARIANT]")):
    from . import models
    from .errors import DerainError
    from .weights import cached_path

    out = Output()
    try:
        m = models.resolve(name)
    except DerainError as exc:
        raise _fail(out, exc) from None
    a, src = m.architecture, m.source
    others = [e.name for e in models.REGISTRY.models() if e.arch == m.arch and e.name != m.name]
    rows = [
        ("name", m.name + (" (default variant)" if m.is_default_variant else "")),
        ("architecture", f"{a.title} — {a.description}" if a.description else a.title),
        ("paper", m.paper or "-"),
        ("code", a.url or "-"),
        ("trained on", m.entry.trained_on or "-"),
        ("licence", m.licence),
        ("input contract", m.contract.describe()),
        ("suggested tile", str(m.contract.tile) if m.contract.tile else "auto (from free memory)"),
        ("weights source", src.kind),
        ("file name", src.filename),
    ]
    if src.url:
        rows.append(("url", src.url))
    if src.page:
        rows.append(("download page", src.page))
    if src.password:
        rows.append(("password", src.password))
    if src.sha256:
        rows.append(("sha256", src.sha256))
    if src.size:
        rows.append(("size", _size_text(src.size)))
    path = cached_path(m)
    rows.append(("installed", str(path) if path else "no"))
    if m.entry.description:
        rows.append(("notes", m.entry.description))
    if others:
        rows.append(("other variants", ", ".join(others)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


@models_app.command("download", help="Fetch weights into the cache (for manual sources: print how to get them).")
def models_download(
    names: list[str] = typer.Argument(..., metavar="NAME..."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    quiet: bool = QuietOpt,
):
    from . import models
    from .errors import DerainError
    from .weights import ManualDownloadRequired, download

    out = Output(quiet)
    failed = 0
    for name in names:
        try:
            m = models.resolve(name)
            path = download(m, progress=not quiet, force=force)
            out.info(f"{m.name}: {path}")
        except ManualDownloadRequired as exc:
            failed += 1
            typer.echo(str(exc), err=True)
        except DerainError as exc:
            failed += 1
            out.error(str(exc))
    if failed:
        raise typer.Exit(EXIT_FAILED) from None


@models_app.command("import", help=(
    "Copy a weights file you downloaded yourself into the cache, after checking that it loads "
    "strictly into the model's architecture (and matches the known sha256, if any)."
))
def models_import(
    name: str = typer.Argument(..., metavar="NAME[:VARIANT]"),
    file: Path = typer.Argument(..., metavar="FILE", help="The checkpoint file (for MSPFN: epoch50.index)."),
    force: bool = typer.Option(False, "--force", help="Import even if the sha256 differs from the known release."),
    verbose: bool = VerboseOpt,
):
    from . import models
    from .errors import DerainError
    from .weights import import_weights

    out = Output(verbose=verbose)
    if not file.exists():
        out.error(f"{file}: no such file")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        m = models.resolve(name)
        path = import_weights(m, file, force=force)
    except DerainError as exc:
        raise _fail(out, exc) from None
    out.info(f"{m.name}: imported {file} -> {path}")


@models_app.command("verify", help="Re-hash every cached weights file against its recorded sha256.")
def models_verify():
    from .weights import verify_cache

    results = verify_cache()
    if not results:
        typer.echo("the cache holds no weights")
        return
    bad = 0
    for r in results:
        if r.ok:
            typer.echo(f"ok      {r.name}  {r.path}")
        else:
            bad += 1
            typer.echo(f"FAILED  {r.name}  {r.path}: {r.problem}")
    if bad:
        typer.echo(f"error: {bad} file(s) failed verification; `derain models rm NAME` then download again", err=True)
        raise typer.Exit(EXIT_FAILED) from None


@models_app.command("rm", help="Delete a model's cached weights.")
def models_rm(names: list[str] = typer.Argument(..., metavar="NAME...")):
    from . import models
    from .errors import DerainError
    from .weights import remove

    out = Output()
    for name in names:
        try:
            m = models.resolve(name)
            removed = remove(m)
        except DerainError as exc:
            raise _fail(out, exc) from None
        out.info(f"{m.name}: removed {len(removed)} file(s)" if removed else f"{m.name}: not in the cache")


@models_app.command("path", help="Print the cache folder, or the cached file of a model.")
def models_path(name: str | None = typer.Argument(None, metavar="[NAME]")):
    from . import models
    from .errors import DerainError
    from .weights import cache_dir, cached_path

    out = Output()
    if name is None:
        typer.echo(str(cache_dir()))
        return
    try:
        m = models.resolve(name)
    except DerainError as exc:
        raise _fail(out, exc) from None
    path = cached_path(m)
    if path is None:
        out.error(f"{m.name} is not installed (run `derain models download {m.name}`)")
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(str(path))


# --------------------------------------------------------------------------------------------------
# training
def _split_dirs(values: list[str] | None) -> list[str]:
    """`--data A,B --data C` -> [A, B, C]."""
    return [part for v in values or [] for part in v.split(",") if part]


@app.command("synth", help=(
    "Make rainy/clean training pairs from clean photos: OUT/input and OUT/target with the same names.\n\n"
    "Rain is rendered as several streak layers (density, length, width, angle, motion blur, brightness), "
    "with depth-like attenuation, optional haze and drop blur. The same --seed gives the same rain.\n\n"
    "Presets: light, medium, heavy (long wide streaks, often hazy), streaks (dense, sharp, crossing "
    "streaks like the Rain100H/Rain200H benchmarks), none (no rain: in a mix, samples that teach a network "
    "to leave rain-free photos alone), mixed (light 20 %, medium 30 %, heavy 50 %), or your own mix: "
    "--preset light:0.2,heavy:0.4,streaks:0.3,none:0.1"
))
def synth_cmd(
    clean_dir: Path = typer.Argument(..., metavar="CLEAN_DIR", help="Folder of clean photos."),
    out: Path = typer.Option(..., "--out", metavar="DIR", help="Where input/ and target/ are written."),
    preset: str = typer.Option("mixed", "--preset", metavar="PRESET[:W],...",
                                help="light, medium, heavy, streaks, none, mixed, or a weighted mix."),
    per_image: int = typer.Option(1, "--per-image", metavar="N", help="Rainy versions of each photo."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same rain)."),
    max_side: int | None = typer.Option(None, "--max-side", metavar="PX",
                                           help="Scale photos down so the longer side is at most PX."),
    quiet: bool = QuietOpt,
):
    from .errors import DerainError
    from .train.synth import synth_folder

    out_msg = Output(quiet)
    if not clean_dir.is_dir():
        out_msg.error(f"{clean_dir}: not a folder")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        count = synth_folder(clean_dir, out, preset=preset.lower(), per_image=per_image, seed=seed,
                             max_side=max_side, progress=None if quiet else out_msg.note)
    except KeyboardInterrupt:
        out_msg.error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        raise _fail(out_msg, exc) from None
    out_msg.info(f"wrote {count} pair(s) to {out}/input and {out}/target")


@app.command("train", help=(
    "Train a registered architecture on paired folders and/or rain synthesised on the fly.\n\n"
    "Random crops and flips, Charbonnier + SSIM losses, AdamW with warm-up and cosine decay, EMA weights, "
    "mixed precision on CUDA, validation PSNR/SSIM (paper convention), a CSV log and a plot. "
    "Interrupt at any time; `--resume RUN_DIR` continues exactly where it stopped.\n\n"
    "Every option of docs/training.md goes in the --config JSON file, e.g. {\"steps\": 20000, \"crop\": 192, "
    "\"synth_preset\": \"light:0.2,heavy:0.4,streaks:0.4\"}; PLNLIN trains with its paper's MCDDL "
    "adversarial losses given {\"gan\": \"mcddl\"}."
))
def train_cmd(
    arch: str | None = typer.Argument(None, metavar="ARCH", help="Architecture, e.g. derainlite or prenet."),
    data: list[str] | None = typer.Option(None, "--data", metavar="DIR[,DIR...]",
                                             help="Paired folders, each with input/ and target/."),
    synth: list[str] | None = typer.Option(None, "--synth", metavar="CLEAN_DIR[,DIR...]",
                                              help="Folders of clean photos to rain on during training."),
    out: Path | None = typer.Option(None, "--out", metavar="RUN_DIR", help="Run folder (checkpoints, log)."),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help="JSON file of training options."),
    resume: Path | None = typer.Option(None, "--resume", metavar="RUN_DIR", help="Continue a stopped run."),
    verbose: bool = VerboseOpt,
):
    from .errors import DerainError
    from .train import train

    out_msg = Output(verbose=verbose)
    if resume is None and arch is None:
        raise typer.BadParameter("give ARCH for a new run, or --resume RUN_DIR", param_hint="ARCH")
    try:
        result = train(arch, out, data=_split_dirs(data), synth=_split_dirs(synth), config_file=config,
                       resume=resume, log=lambda m: typer.echo(m, err=True))
    except KeyboardInterrupt:
        out_msg.error(f"interrupted; continue with `derain train --resume {resume or out}`")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except DerainError as exc:
        raise _fail(out_msg, exc) from None
    state = "finished" if result.finished else "stopped (resumable)"
    scores = f", validation PSNR {_fmt(result.val_psnr)} dB SSIM {_fmt(result.val_ssim, 4)}" \
        if result.val_psnr is not None else ""
    out_msg.info(f"{result.run_dir}: {state} at step {result.step}{scores}")
    if not result.finished:
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command("export", help=(
    "Write a training run's EMA weights as a .safetensors file with metadata (architecture, config, data, "
    "steps, validation scores); use it with `derain photo.jpg -m FILE.safetensors`."
))
def export_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR"),
    out: Path = typer.Option(..., "--out", metavar="FILE.safetensors"),
):
    from .errors import DerainError
    from .train import export_run

    out_msg = Output()
    try:
        meta = export_run(run_dir, out)
    except DerainError as exc:
        raise _fail(out_msg, exc) from None
    psnr = f", validation PSNR {meta['val_psnr']} dB" if meta.get("val_psnr") else ""
    out_msg.info(f"wrote {out} ({meta.get('architecture', '?')}, {meta.get('steps', '?')} steps{psnr})")


# --------------------------------------------------------------------------------------------------
def main(argv: list | None = None) -> int:
    """Console-script entry point: returns the exit code (0 ok, 1 failures, 2 usage, 130 interrupted)."""
    settings.prefer_passive_openmp_wait()  # before torch is imported; the user's own setting wins
    try:
        app(args=argv, prog_name="derain")
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK
