"""One video job, end to end: read -> derain (per frame or in chunks) -> steady -> write.

    from derain_cli.video import derain_video
    result = derain_video("dashcam.mp4", "dashcam_clean.mp4")            # S2VD, audio kept
    result = derain_video("frames/", "clean.mp4", model="derainlite", temporal=True, fps=30)

Data flows one way: the reader yields upright frames (and keeps the packets of the streams it
copies), the engine derains them, the optional stabiliser steadies them, and the writer encodes
them into a temporary file, copying the other streams' packets as the video reaches their time;
the file is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from ..errors import UsageError
from . import DEFAULT_VIDEO_MODEL
from .engines import video_engine_for
from .frames import Frame, to_float, to_uint8
from .reader import open_input
from .temporal import StillFlicker, TemporalStabiliser
from .writer import VIDEO_SUFFIXES, FrameFolderWriter, VideoFileWriter

COMPARE_MODES = ("side", "split")
DEFAULT_SUFFIX = "_derained"


@dataclass
class VideoResult:
    """What a video job did (the record `derain video --json` prints)."""

    input: str
    output: str | None
    status: str  # "ok" or "skipped"
    model: str | None = None
    device: str | None = None
    frames: int = 0
    width: int | None = None  # as displayed
    height: int | None = None
    frame_rate: float | None = None  # of the input (average)
    duration: float | None = None  # seconds of output video
    seconds: float | None = None  # wall time of the job
    frames_per_second: float | None = None  # processing speed
    codec: str | None = None
    rotation: int | None = None
    copied_streams: list = field(default_factory=list)  # e.g. ["audio aac", "subtitle mov_text"]
    temporal: bool = False
    compare: str | None = None
    tile: int | None = None
    # flicker on the still parts of the picture (StillFlicker), in luma levels
    flicker_input: float | None = None
    flicker_output: float | None = None
    still_fraction: float | None = None
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}


def is_folder_target(path: Path) -> bool:
    """A target is a frame folder if it is one already or has no extension (as for photos)."""
    return path.is_dir() or not path.suffix


def default_output(src: Path) -> Path:
    """``clip.mov`` -> ``clip_derained.mov``; a frame folder ``shots/`` -> ``shots_derained.mp4``."""
    if src.is_dir():
        return src.with_name(f"{src.name}{DEFAULT_SUFFIX}.mp4")
    suffix = src.suffix.lower() if src.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
    return src.with_name(f"{src.stem}{DEFAULT_SUFFIX}{suffix}")


def compare_output(dst: Path, mode: str, folder: bool) -> Path:
    """Where the before/after video goes: beside the output, named after it."""
    if folder:
        return dst.with_name(f"{dst.name}_compare_{mode}")
    return dst.with_name(f"{dst.stem}_compare_{mode}{dst.suffix}")


def _comparison(before: np.ndarray, after: np.ndarray, mode: str) -> np.ndarray:
    from ..compare import GAP, make_comparison

    height, width = before.shape[:2]
    full = 2 * width + GAP if mode == "side" else max(width, height)  # never scaled down
    side_or_split = cast(Literal["side", "split"], mode)
    return np.asarray(make_comparison(to_float(before), to_float(after), side_or_split, max_side=max(full, height)))


def derain_video(
    src: str | Path,
    dst: str | Path | None = None,
    *,
    model: str | None = None,
    engine: Any = None,
    device: str = "auto",
    precision: str = "auto",
    tile: str | int | None = "auto",
    tile_overlap: int = 32,
    threads: int | None = None,
    codec: str | None = None,
    crf: int | None = None,
    start: float = 0.0,
    duration: float | None = None,
    fps: float | None = None,
    temporal: bool = False,
    compare: str | None = None,
    overwrite: bool = False,
    batch: int | None = None,
    scale: float | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Derain a video file or a folder of frames into a video file or a folder of frames.

    ``model`` defaults to S2VD (a video network); any image model works too, frame by frame, and
    ``temporal`` then steadies its output. Pass a ready ``engine`` (a ``derain_cli.engine.Engine``,
    e.g. a ``Derainer``) to reuse a loaded model across jobs; ``model``, ``device``, ``precision``,
    ``tile`` and ``threads`` are then ignored.
    ``scale`` is the hook for camera-scale handling, passed to the engine (not available yet).
    ``progress(done, total)`` is called after every frame (``total`` is an estimate, or None).

    Raises DerainError subclasses (one-line messages) for unreadable inputs, impossible options
    and write failures; nothing is left at the output path then, or on KeyboardInterrupt.
    """
    src = Path(src)
    target = Path(dst) if dst is not None else default_output(src)
    folder_out = is_folder_target(target)
    if compare is not None and compare not in COMPARE_MODES:
        raise UsageError(f"unknown comparison mode {compare!r} (use side or split)")
    if target.exists() and src.exists() and target.resolve() == src.resolve():
        raise UsageError(f"{target}: refusing to write over the input")
    if target.exists() and not overwrite:
        return VideoResult(input=str(src), output=str(target), status="skipped",
                           warnings=["output exists (use --overwrite to replace it)"])

    reader = open_input(src, start=start, duration=duration, fps=fps)
    try:
        if engine is None:
            from ..engine import Engine

            engine = Engine(model or DEFAULT_VIDEO_MODEL, device=device, precision=precision, tile=tile,
                            tile_overlap=tile_overlap, threads=threads)
        engine.load()  # weights first: a missing file must not leave a half-made output behind
        frames_engine = video_engine_for(engine, batch=batch, scale=scale)
        return _run(reader, frames_engine, engine, target, folder_out, codec=codec, crf=crf, temporal=temporal,
                    compare=compare, progress=progress)
    finally:
        reader.close()


def _open_writer(target: Path, folder: bool, reader, *, size=None, codec=None, crf=None, copy=True,
                 keep_rotation=True):
    if folder:
        return FrameFolderWriter(target)
    return VideoFileWriter(target, reader.info, size=size, codec=codec, crf=crf,
                           copy_streams=reader.copied_streams if copy else (), keep_rotation=keep_rotation)


def _run(reader, frames_engine, engine, target: Path, folder_out: bool, *, codec, crf, temporal, compare,
         progress) -> VideoResult:
    info = reader.info
    result = VideoResult(input=str(info.path), output=str(target), status="ok", model=engine.name,
                         device=str(engine.device), width=info.upright_size[0], height=info.upright_size[1],
                         frame_rate=round(float(info.rate), 3) if info.rate else None, temporal=temporal,
                         rotation=info.rotation or None)
    result.warnings.extend(reader.notes)
    stabiliser = TemporalStabiliser() if temporal else None
    meter = StillFlicker()
    writers = []
    started = time.perf_counter()
    try:
        writer = _open_writer(target, folder_out, reader, codec=codec, crf=crf)
        writers.append(writer)
        compare_writer = None
        last: Frame | None = None
        for frame, derained in frames_engine.run(reader.frames()):
            out8 = to_uint8(stabiliser(frame.rgb, derained) if stabiliser is not None else derained)
            meter.add(frame.rgb, out8)
            writer.write(frame, out8)
            writer.copy(reader.ready_packets(frame.time))
            if compare:
                both = _comparison(frame.rgb, out8, compare)
                if compare_writer is None:  # sized by the first comparison frame
                    compare_writer = _open_writer(compare_output(target, compare, folder_out), folder_out, reader,
                                                  size=(both.shape[1], both.shape[0]), codec=codec, crf=crf,
                                                  copy=False, keep_rotation=False)
                    writers.append(compare_writer)
                compare_writer.write(frame, both)
            result.frames += 1
            last = frame
            if progress is not None:
                progress(result.frames, info.frame_count)
        writer.copy(reader.drain_packets())
        for w in writers:
            w.commit()
    except BaseException:
        for w in writers:
            with contextlib.suppress(Exception):
                w.abort()
        raise
    result.seconds = round(time.perf_counter() - started, 3)
    result.frames_per_second = round(result.frames / result.seconds, 3) if result.seconds else None
    if last is not None:
        end = last.pts + (last.duration or 0)
        result.duration = round(float(end * last.time_base), 3) if last.duration else round(last.time, 3)
    result.tile = getattr(frames_engine, "tile", None)
    if compare_writer is not None:
        result.compare = str(compare_writer.target)
    if folder_out:
        result.codec = "png"
        if reader.copied_streams:
            result.warnings.append("audio and subtitle streams are not written to a frame folder")
    else:
        result.codec = writer.codec
        result.copied_streams = [f"{s.type} {s.codec_context.name if s.codec_context else '?'}"
                                 for s in reader.copied_streams]
    for w in writers:
        result.warnings.extend(w.warnings)
    if reader.damaged_packets:
        result.warnings.append(f"{reader.damaged_packets} damaged video packet(s) could not be decoded "
                               "and were skipped")
    result.flicker_input = _round(meter.input_level)
    result.flicker_output = _round(meter.output_level)
    result.still_fraction = _round(meter.still_fraction)
    return result


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
