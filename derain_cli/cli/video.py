"""The `derain video` command: check the arguments, call ``derain_cli.video.derain_video``, print.

Nothing heavy is imported at module level: PyAV and torch come in when the command runs, so
`derain --help` stays fast and a missing PyAV is an error of this command only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import DerainError, VideoError
from ._errors import handle_errors
from ._options import (
    COMPARE_CHOICES,
    DeviceOpt,
    OverlapOpt,
    PrecisionOpt,
    QuietOpt,
    ThreadsOpt,
    TileOpt,
    VerboseOpt,
    check_choice,
    resolve_model,
)
from ._output import Output

if TYPE_CHECKING:
    from ..video.pipeline import VideoResult


class _FrameProgress:
    """A tqdm bar in frames (with frames per second and ETA) on a terminal; a no-op elsewhere."""

    def __init__(self, enabled: bool, desc: str):
        self.enabled, self.desc = enabled, desc
        self.bar: Any = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="frame", file=sys.stderr, leave=False,
                            dynamic_ncols=True)
        if self.bar.total is not None and done > self.bar.total:
            self.bar.total = done  # the container's frame count was an estimate
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def video(
    src: Path = typer.Argument(..., metavar="IN", help="Video file, or a folder of frames."),
    output: Path | None = typer.Option(None, "-o", "--output", metavar="OUT",
                                       help="Output video (its extension picks the container), or a folder "
                                            "of PNG frames (a name without an extension)."),
    model: str | None = typer.Option(None, "-m", "--model", metavar="NAME[:VARIANT]",
                                     help="Model (default: s2vd:ntu, a video network); any image model runs "
                                          "frame by frame."),
    crf: int | None = typer.Option(None, "--crf", min=0, max=63, metavar="N",
                                   help="Constant quality, lower is better (default: 18 for H.264, 24 for VP9)."),
    codec: str | None = typer.Option(None, "--codec", metavar="NAME",
                                     help="FFmpeg video encoder (default: libx264; libvpx-vp9 for .webm), "
                                          "e.g. libx265, libsvtav1, ffv1."),
    start: float = typer.Option(0.0, "--start", metavar="SECONDS", help="Begin this far into the input."),
    duration: float | None = typer.Option(None, "--duration", metavar="SECONDS",
                                          help="Process only this much (default: to the end)."),
    fps: float | None = typer.Option(None, "--fps", metavar="RATE",
                                     help="Frame rate of a frame-folder input (default 25)."),
    temporal: bool = typer.Option(False, "--temporal",
                                  help="Steady the result: blend each frame with the previous one where the "
                                       "scene is still (for image models, which flicker)."),
    compare: str = typer.Option("none", "--compare", metavar="none|side|split",
                                help="Also write a before/after video beside the output."),
    overwrite: bool = typer.Option(False, "--overwrite/--skip-existing",
                                   help="Replace an existing output (default: leave it and do nothing)."),
    device: str = DeviceOpt,
    precision: str = PrecisionOpt,
    tile: str = TileOpt,
    tile_overlap: int | None = OverlapOpt,
    threads: int | None = ThreadsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary on stdout, nothing else."),
    quiet: bool = QuietOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Derain a video (any file FFmpeg reads: mp4, mov, mkv, avi, webm...) or a folder of frames.

    The default model is S2VD, a video network that sees neighbouring frames; any image model (-m)
    works too, frame by frame, and --temporal steadies its result. The output keeps the frame
    timestamps (variable frame rate too), the rotation and the container tags, and copies audio
    and subtitle streams unchanged. It is H.264 in yuv420p (VP9 in .webm), in the container that -o
    names (default: IN_derained with IN's extension); -o NAME without an extension writes PNG
    frames into a folder. Nothing appears at -o until the job is complete.

    Needs PyAV: pip install 'derain-cli[video]'.
    """
    from ..video import DEFAULT_VIDEO_MODEL
    from ..video._av import require_av

    out = Output(quiet, verbose, as_json)
    compare = check_choice("--compare", compare, COMPARE_CHOICES)
    require_av()  # missing PyAV: a usage error that says how to install it (exit 2)
    name = model or DEFAULT_VIDEO_MODEL
    resolve_model(name)  # an unknown name is a usage error, before torch is imported
    from ..engine import Engine
    from ..video.pipeline import derain_video

    progress = _FrameProgress(not quiet and not as_json and sys.stderr.isatty(), src.name)
    try:
        with handle_errors(out, "interrupted; nothing was written to the output"):
            try:
                engine = Engine(name, device=device, precision=precision, tile=tile,
                                tile_overlap=tile_overlap, threads=threads, progress=not quiet and not as_json)
                result = derain_video(src, output, engine=engine, codec=codec, crf=crf, start=start,
                                      duration=duration, fps=fps, temporal=temporal,
                                      compare=None if compare == "none" else compare, overwrite=overwrite,
                                      progress=progress)
            except DerainError:
                raise
            except Exception as exc:  # a codec or model failure mid-video: one line, exit 1
                raise VideoError(src, f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc
    finally:
        progress.close()
    _report(out, result)


def _report(out: Output, result: VideoResult) -> None:
    if out.json_mode:
        out.record(result.to_dict())
        return
    if result.status == "skipped":
        out.note(f"{result.input}: skipped, {result.output} exists (use --overwrite to replace it)")
        return
    rate = f", {result.frame_rate:g} fps" if result.frame_rate else ""
    speed = f"{result.seconds or 0:.1f} s, {result.frames_per_second or 0:.2f} frames/s"
    out.info(f"{result.input} -> {result.output} ({result.frames} frames, {result.width}x{result.height}{rate}; "
             f"{result.model} on {result.device}: {speed})")
    if result.copied_streams:
        out.info(f"  copied unchanged: {', '.join(result.copied_streams)}")
    if result.compare:
        out.info(f"  comparison: {result.compare}")
    if result.flicker_output is not None and result.flicker_input is not None and result.still_fraction:
        out.info(f"  flicker on still parts: {result.flicker_input:.2f} -> {result.flicker_output:.2f} luma levels "
                 f"per frame ({100 * result.still_fraction:.0f} % of the picture still)")
    for warning in result.warnings:
        out.warn(f"{result.input}: {warning}")
