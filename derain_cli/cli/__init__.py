"""The `derain` command line, assembled in one place: which command runs which function.

The commands live by group: `process` (run, batch, bench, doctor), `models` (the `derain models`
sub-commands) and `train` (synth, train, export). Shared pieces are behind underscores: `_output`
(where messages go), `_options` (options several commands share), `_errors` (exit codes and the
one error handler) and `_help` (parsing of the first word and the layout of --help).

Nothing heavy is imported here, so `derain --help` and `derain --version` stay fast; torch comes
in only with the commands that run a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer

from .. import __version__, settings
from . import models, process, train, video
from ._errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exit_code_of, handle_errors
from ._help import DerainCommand, DerainGroup, RootGroup
from ._output import Output

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Output", "app", "handle_errors", "main"]

_HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
TRAINING = "Training your own model"

app = typer.Typer(
    cls=RootGroup,
    name="derain",
    help=(
        "Remove rain from photographs with published deep deraining networks.\n\n"
        "\b\n"
        "  derain photo.jpg                    derain files with the built-in model\n"
        "  derain photo.jpg -m prenet          ...with another model (`derain models list`)\n"
        "  derain batch ./rainy --out ./clean  a whole folder, resumable\n"
        "  derain bench ./rainy --gt ./clean   PSNR/SSIM and speed against ground truth\n"
        "  derain video clip.mp4 -o clean.mp4  a video, with its sound (pip install 'derain-cli[video]')\n\n"
        "Run `derain run --help` for every option of the default command."
    ),
    context_settings=_HELP_OPTIONS,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    cls=DerainGroup,
    help="List, download, import and verify model weights.",
    context_settings=_HELP_OPTIONS,
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _command(group: typer.Typer, name: str, function: Callable[..., Any], short_help: str,
             section: str | None = None) -> None:
    """Register ``function`` (its docstring is its --help) as command ``name`` of ``group``."""
    group.command(name, cls=DerainCommand, short_help=short_help, rich_help_panel=section)(function)


_command(app, "run", process.run, "Derain image files (the default: `derain FILE...`).")
_command(app, "batch", process.batch, "Derain a folder (tree) into another folder; rerun to resume.")
_command(app, "bench", process.bench, "Score models against ground truth: PSNR/SSIM, speed, memory.")
_command(app, "video", video.video, "Derain a video file or a folder of frames; sound, timing, rotation kept.")
_command(app, "doctor", process.doctor, "Show torch, devices, threads and the weights cache folder.")
app.add_typer(models_app, name="models", short_help="List, download, import and verify model weights.")
_command(app, "synth", train.synth, "Make rainy/clean training pairs from clean photos.", TRAINING)
_command(app, "train", train.train, "Train an architecture on paired and/or synthesised data.", TRAINING)
_command(app, "export", train.export, "Write a training run's weights as a .safetensors model.", TRAINING)

_command(models_app, "list", models.list_cmd, "All models: architecture, training set, size, installed.")
_command(models_app, "info", models.info_cmd, "Everything the registry knows about a model.")
_command(models_app, "download", models.download_cmd, "Fetch weights into the cache.")
_command(models_app, "import", models.import_cmd, "Check a weights file you downloaded and cache it.")
_command(models_app, "verify", models.verify_cmd, "Re-hash every cached weights file against its sha256.")
_command(models_app, "rm", models.rm_cmd, "Delete a model's cached weights.")
_command(models_app, "path", models.path_cmd, "Print the cache folder, or a model's cached file.")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"derain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Remove rain from photographs."""


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point: returns the exit code (0 ok, 1 failures, 2 usage, 130 interrupted,
    143 SIGTERM, 129 SIGHUP)."""
    settings.prefer_passive_openmp_wait()  # before torch is imported; the user's own setting wins
    try:
        app(args=argv, prog_name="derain")
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except KeyboardInterrupt as exc:  # between parsing and a command's own handler
        Output().error("interrupted")
        return exit_code_of(exc)
    return EXIT_OK
