"""Commands for making your own model: `derain synth`, `derain train`, `derain export`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UsageError
from ._errors import EXIT_INTERRUPTED, handle_errors
from ._options import QuietOpt, VerboseOpt, check_architecture
from ._output import Output, number_text


def synth(
    clean_dir: Path = typer.Argument(..., metavar="CLEAN_DIR", help="Folder of clean photos."),
    out: Path = typer.Option(..., "--out", metavar="DIR", help="Where input/ and target/ are written."),
    preset: str = typer.Option("mixed", "--preset", metavar="PRESET[:W],...",
                               help="light, medium, heavy, streaks, none, mixed, or a weighted mix."),
    per_image: int = typer.Option(1, "--per-image", metavar="N", help="Rainy versions of each photo."),
    seed: int = typer.Option(0, "--seed", metavar="N", help="Random seed (same seed, same rain)."),
    max_side: int | None = typer.Option(None, "--max-side", metavar="PX",
                                        help="Scale photos down so the longer side is at most PX."),
    quiet: bool = QuietOpt,
) -> None:
    """Make rainy/clean training pairs from clean photos: OUT/input and OUT/target with the same names.

    Rain is rendered as several streak layers (density, length, width, angle, motion blur,
    brightness), with depth-like attenuation, optional haze and drop blur. The same --seed gives the
    same rain.

    Presets: light, medium, heavy (long wide streaks, often hazy), streaks (dense, sharp, crossing
    streaks like the Rain100H/Rain200H benchmarks), none (no rain: in a mix, samples that teach a
    network to leave rain-free photos alone), mixed (light 20 %, medium 30 %, heavy 50 %), or your
    own mix: --preset light:0.2,heavy:0.4,streaks:0.3,none:0.1
    """
    from ..train.synth import synth_folder

    msg = Output(quiet)
    if not clean_dir.is_dir():
        raise UsageError(f"{clean_dir}: not a folder")
    count = synth_folder(clean_dir, out, preset=preset.lower(), per_image=per_image, seed=seed,
                         max_side=max_side, progress=None if quiet else msg.note)
    msg.info(f"wrote {count} pair(s) to {out}/input and {out}/target")


def _split_dirs(values: list[str] | None) -> list[str]:
    """`--data A,B --data C` -> [A, B, C]."""
    return [part for v in values or [] for part in v.split(",") if part]


def train(
    arch: str | None = typer.Argument(None, metavar="ARCH", help="Architecture, e.g. derainlite or prenet."),
    data: list[str] | None = typer.Option(None, "--data", metavar="DIR[,DIR...]",
                                          help="Paired folders, each with input/ and target/."),
    synth: list[str] | None = typer.Option(None, "--synth", metavar="CLEAN_DIR[,DIR...]",
                                           help="Folders of clean photos to rain on during training."),
    out: Path | None = typer.Option(None, "--out", metavar="RUN_DIR", help="Run folder (checkpoints, log)."),
    config: Path | None = typer.Option(None, "--config", metavar="FILE", help="JSON file of training options."),
    resume: Path | None = typer.Option(None, "--resume", metavar="RUN_DIR", help="Continue a stopped run."),
    minutes: float | None = typer.Option(None, "--minutes", metavar="M",
                                         help="Time budget: stop after M minutes of training, validated and "
                                              "checkpointed (resumable); with --resume, for this invocation."),
    verbose: bool = VerboseOpt,
) -> None:
    """Train a registered architecture on paired folders and/or rain synthesised on the fly.

    Random crops and flips, Charbonnier + SSIM losses, AdamW with warm-up and cosine decay, EMA
    weights, mixed precision on CUDA, validation PSNR/SSIM (paper convention), a CSV log and a plot.
    Interrupt at any time; `--resume RUN_DIR` continues exactly where it stopped.

    Every option of docs/training.md goes in the --config JSON file, e.g. {"steps": 20000,
    "crop": 192, "synth_preset": "light:0.2,heavy:0.4,streaks:0.4"}; PLNLIN trains with its
    paper's MCDDL adversarial losses given {"gan": "mcddl"}.
    """
    from ..train import train as train_model

    msg = Output(verbose=verbose)
    if resume is None and arch is None:
        raise typer.BadParameter("give ARCH for a new run, or --resume RUN_DIR", param_hint="ARCH")
    if arch is not None:
        check_architecture(arch)
    with handle_errors(msg, interrupted=f"interrupted; continue with `derain train --resume {resume or out}`"):
        result = train_model(arch, out, data=_split_dirs(data), synth=_split_dirs(synth), config_file=config,
                             resume=resume, log=lambda m: typer.echo(m, err=True), minutes=minutes)
    state = "finished" if result.finished else "stopped (resumable)"
    scores = (f", validation PSNR {number_text(result.val_psnr)} dB SSIM {number_text(result.val_ssim, 4)}"
              if result.val_psnr is not None else "")
    msg.info(f"{result.run_dir}: {state} at step {result.step}{scores}")
    if not result.finished:
        raise typer.Exit(EXIT_INTERRUPTED)


def export(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="A training run's folder."),
    out: Path = typer.Option(..., "--out", metavar="FILE.safetensors", help="The file to write."),
) -> None:
    """Write a training run's EMA weights as a .safetensors file with metadata (architecture,
    config, data, steps, validation scores); use it with `derain photo.jpg -m FILE.safetensors`."""
    from ..train import export_run

    meta = export_run(run_dir, out)
    psnr = f", validation PSNR {meta['val_psnr']} dB" if meta.get("val_psnr") else ""
    Output().info(f"wrote {out} ({meta.get('architecture', '?')}, {meta.get('steps', '?')} steps{psnr})")
