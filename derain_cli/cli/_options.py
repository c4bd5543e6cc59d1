"""Options shared by several commands, and the checks on their values that need no model.

Every option that takes a value has a metavar, so that help and usage lines show what to type
(`--tile auto|0|N`) instead of Python types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from ..errors import ModelError, UsageError

if TYPE_CHECKING:
    from ..models import ResolvedModel

COMPARE_CHOICES = ("none", "side", "split")
METRIC_CHOICES = ("restormer", "rcdnet")

ModelOpt = typer.Option(None, "-m", "--model", metavar="NAME[:VARIANT]",
                        help="Model to use (default: the built-in model); see `derain models list`. "
                             "A .safetensors file from `derain export` works too.")
DeviceOpt = typer.Option("auto", "--device", metavar="auto|cpu|cuda|cuda:N|mps",
                         help="auto picks CUDA, then MPS, then CPU. A missing named device is an error.")
PrecisionOpt = typer.Option("auto", "--precision", metavar="auto|fp32|fp16|bf16",
                            help="auto: fp32 on CPU, bf16/fp16 on a GPU where the model allows it.")
TileOpt = typer.Option("auto", "--tile", metavar="auto|0|N",
                       help="Tile size in pixels for large images; 0 = whole image; auto = from free memory.")
OverlapOpt = typer.Option(None, "--tile-overlap", metavar="N",
                          help="Pixels shared by neighbouring tiles (blended); less than half of --tile "
                               "(default 32, or less for small tiles).")
FormatOpt = typer.Option("same", "--format", metavar="same|jpg|png|webp|tiff", help="Output file format.")
QualityOpt = typer.Option(None, "--quality", min=1, max=100, metavar="N",
                          help="JPEG/WebP quality (default 95).")
OverwriteOpt = typer.Option(False, "--overwrite/--skip-existing",
                            help="Replace outputs that exist (default: skip them, so reruns resume).")
CompareOpt = typer.Option("none", "--compare", metavar="none|side|split",
                          help="Also write a before/after image: side by side, or split down the middle.")
CompareDirOpt = typer.Option(None, "--compare-dir", metavar="DIR",
                             help="Folder for comparison images (default: beside the outputs).")
MetricOpt = typer.Option("restormer", "--metric", metavar="restormer|rcdnet", help="PSNR/SSIM convention.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON record per processed file on stdout, nothing else.")
QuietOpt = typer.Option(False, "-q", "--quiet", help="Only errors.")
VerboseOpt = typer.Option(False, "-v", "--verbose", help="Show tracebacks and details.")
MaxPixelsOpt = typer.Option(None, "--max-pixels", metavar="N",
                            help="Refuse images larger than N pixels (decompression-bomb guard; 0 = no limit).")
ThreadsOpt = typer.Option(None, "--threads", min=1, metavar="N",
                          help="CPU threads (default: DERAIN_THREADS, else the number of cores, at most 8).")


def check_choice(option: str, value: str, choices: Sequence[str]) -> str:
    """``value`` lower-cased if it is one of ``choices``; else a usage error naming them (exit 2)."""
    lowered = value.lower()
    if lowered not in choices:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}", param_hint=option)
    return lowered


def max_pixels_limit(value: int | None) -> int | None:
    """--max-pixels: unset means the library's guard, 0 means no limit."""
    if value is None:
        from ..imaging import DEFAULT_MAX_PIXELS

        return DEFAULT_MAX_PIXELS
    return None if value == 0 else value


def resolve_model(name: str | None) -> ResolvedModel:
    """The registry entry for -m NAME; a name that resolves to nothing is a usage error (exit 2).

    The registry raises `ModelError` (exit 1, the code for "an input failed") for unknown names,
    variants and unreadable exported files alike; on the command line all of them mean the command
    asks for a model that cannot be had, before any input is looked at.
    """
    from .. import models

    try:
        return models.resolve(name)
    except ModelError as exc:
        raise UsageError(str(exc)) from None


def check_architecture(name: str) -> str:
    """The registered architecture ``name`` (for `derain train ARCH`); an unknown one is a usage error."""
    from .. import models

    try:
        return models.REGISTRY.architecture(name).name
    except ModelError as exc:
        raise UsageError(str(exc)) from None
