"""Reading the input of a video job: any file FFmpeg can read (through PyAV), or a folder of frames.

A reader yields upright 8-bit RGB ``Frame``s with timestamps counted from the start of the output,
and, for a video file, keeps the packets of its audio and subtitle streams so that the writer can
copy them into the output unchanged (no re-encoding: the bytes stay identical).

``--start`` / ``--duration`` pick a part: the file is sought to the key frame before ``start``,
frames before it are decoded and dropped, and every timestamp (video and copied packets alike) is
shifted so the part begins at 0. Copied packets are cut at packet granularity (an audio packet is
20-40 ms). Without ``--start`` timestamps are left exactly as they are, so the streams stay in sync
as in the input, including any start offset it has.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError, VideoError
from ._av import problem, require_av
from .frames import Frame, VideoInfo, to_upright

COPIED_STREAM_TYPES = ("audio", "subtitle")
DEFAULT_FOLDER_FPS = 25
# Container tags that the muxer writes itself and must not be carried over.
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}


def open_input(path: str | Path, *, start: float = 0.0, duration: float | None = None,
               fps: float | None = None) -> ContainerReader | FolderReader:
    """A reader for ``path``: a folder is a frame sequence, anything else a video file."""
    path = Path(path)
    if start < 0:
        raise UsageError(f"--start must be >= 0, not {start:g}")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration must be > 0, not {duration:g}")
    if path.is_dir():
        return FolderReader(path, start=start, duration=duration, fps=fps or DEFAULT_FOLDER_FPS)
    if fps is not None:
        raise UsageError("--fps is for frame folders; a video file keeps its own frame rate")
    return ContainerReader(path, start=start, duration=duration)


def _packet_time(packet) -> float | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return None
    return float(ts * packet.time_base)


class ContainerReader:
    """Frames and copyable packets of a video file, read in one pass."""

    def __init__(self, path: Path, *, start: float = 0.0, duration: float | None = None):
        av = require_av()
        self._av = av
        self.path = path
        if not path.exists():
            raise VideoError(path, "no such file")
        if not path.is_file():
            raise VideoError(path, "not a file or a folder of frames")
        try:
            self._container = av.open(str(path), mode="r", metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
            raise VideoError(path, f"not a readable video ({problem(exc)})") from None
        try:
            self._video = self._pick_video_stream()
            self._video.thread_type = "AUTO"  # frame-parallel decoding where the codec allows it
            self.copied_streams = [s for s in self._container.streams if s.type in COPIED_STREAM_TYPES]
            self.notes = [
                f"stream #{s.index} ({s.type}{', ' + s.codec_context.name if s.codec_context else ''}) is not copied"
                for s in self._container.streams
                if s is not self._video and s not in self.copied_streams and not _is_cover_art(s)
            ]
            self.damaged_packets = 0
            self._start = start
            self._end = start + duration if duration is not None else None
            self._queue: deque = deque()  # copied packets, in demux order, not yet shifted
            self._offset = 0.0  # seconds taken off every timestamp (the first kept frame's time)
            self._decoded = self._decode()
            first = next(self._decoded, None)
            if first is None:
                where = f" at or after {start:g} s" if start else ""
                raise VideoError(path, f"no decodable video frames{where}")
            self._first = first
            if start > 0:
                self._offset = float(first.pts * first.time_base) if first.pts is not None else start
            self.info = self._describe(first, duration)
        except BaseException:
            self._container.close()
            raise

    # -- set-up ------------------------------------------------------------------------------
    def _pick_video_stream(self):
        streams = [s for s in self._container.streams.video if not _is_cover_art(s)]
        if not streams:
            raise VideoError(self.path, "has no video stream")
        return streams[0]

    def _describe(self, first, duration: float | None) -> VideoInfo:
        vs = self._video
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        total = None
        if self._container.duration:
            total = self._container.duration / 1_000_000
        elif vs.duration and vs.time_base:
            total = float(vs.duration * vs.time_base)
        count = vs.frames or (round(total * rate) if total and rate else None)
        if count and rate:
            if self._start:
                count = max(0, count - math.floor(self._start * rate))
            if duration is not None:
                count = min(count, math.ceil(duration * rate))
        matrix, rotation = _display_matrix(first), first.rotation
        if matrix is None and vs.metadata.get("rotate", "").lstrip("-").isdigit():
            rotation = -int(vs.metadata["rotate"])  # the old tag is clockwise
            rotation = (rotation + 180) % 360 - 180
        ctx = vs.codec_context
        return VideoInfo(
            path=self.path, kind="file", width=first.width, height=first.height,
            time_base=vs.time_base or Fraction(1, 90000), rate=Fraction(rate) if rate else None,
            rotation=int(rotation or 0), display_matrix=matrix, frame_count=count or None,
            duration=(min(total - self._start, duration) if duration is not None else total - self._start)
            if total else duration,
            codec=ctx.name if ctx else None, pixel_format=first.format.name,
            colorspace=int(first.colorspace), color_range=int(first.color_range),
            color_primaries=int(getattr(ctx, "color_primaries", 2)), color_trc=int(getattr(ctx, "color_trc", 2)),
            metadata={k: v for k, v in self._container.metadata.items() if k.lower() not in _MUXER_TAGS},
            stream_language=vs.metadata.get("language"),
        )

    # -- decoding ----------------------------------------------------------------------------
    def _decode(self) -> Iterator[Any]:
        """Decoded video frames in the chosen range; copied packets go to the queue as they pass."""
        av, vs = self._av, self._video
        if self._start > 0:
            # not seekable: decode from the beginning and drop the frames before start
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.seek(int(self._start / vs.time_base), stream=vs, backward=True)
        eps = 1e-6
        video_done = False
        copied_done = {s.index: False for s in self.copied_streams}
        streams = [vs, *self.copied_streams]
        try:
            for packet in self._container.demux(*streams):
                if packet.stream is not vs:
                    time = _packet_time(packet)
                    if packet.size == 0 or time is None:
                        continue
                    if self._end is not None and time >= self._end + eps:
                        copied_done[packet.stream.index] = True
                    else:
                        self._queue.append(packet)
                elif not video_done:
                    for frame in self._decode_packet(packet):
                        time = frame.time if frame.pts is not None else None
                        if time is not None and time < self._start - eps:
                            continue
                        if self._end is not None and time is not None and time >= self._end - eps:
                            video_done = True
                            break
                        yield frame
                if video_done and all(copied_done.values()):
                    break
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(self.path, f"cannot read further ({problem(exc)})") from None

    def _decode_packet(self, packet) -> list:
        try:
            return packet.decode()
        except self._av.error.InvalidDataError:
            self.damaged_packets += 1  # FFmpeg conceals what it can; a packet it cannot is skipped
            return []

    def frames(self) -> Iterator[Frame]:
        """Upright RGB frames from the start of the chosen range; timestamps start at its beginning."""
        info = self.info
        tb = info.time_base
        shift = round(self._offset / tb) if self._offset else 0
        step = round(1 / (info.rate * tb)) if info.rate else 1
        last_pts: int | None = None
        index = 0
        for frame in self._frames_from_first():
            if frame.pts is not None:
                pts = frame.pts - shift
            else:  # some AVI and raw streams carry no timestamps: continue at the frame rate
                pts = 0 if last_pts is None else last_pts + step
            if last_pts is not None and pts <= last_pts:
                continue  # a repeated timestamp cannot be encoded; FFmpeg drops such frames too
            size = {} if (frame.width, frame.height) == (info.width, info.height) else \
                {"width": info.width, "height": info.height}  # a mid-stream size change: keep the first
            rgb = frame.to_ndarray(format="rgb24", **size)
            yield Frame(index=index, rgb=to_upright(rgb, info.rotation), pts=pts, time_base=tb,
                        duration=frame.duration or None)
            last_pts = pts
            index += 1

    def _frames_from_first(self) -> Iterator[Any]:
        yield self._first
        yield from self._decoded

    def ready_packets(self, until: float | None = None) -> list:
        """Copied packets up to ``until`` seconds of output time (all that are left when None).

        Their timestamps are shifted like the frames'; with ``--start`` those before it are dropped.
        """
        out = []
        while self._queue:
            packet = self._queue[0]
            time = (_packet_time(packet) or 0.0) - self._offset  # queued packets all have a time
            if until is not None and time > until:
                break
            self._queue.popleft()
            if self._start > 0:
                if time < -1e-6:
                    continue
                shift = round(self._offset / packet.time_base)
                packet.pts = packet.pts - shift if packet.pts is not None else None
                packet.dts = packet.dts - shift if packet.dts is not None else None
            out.append(packet)
        return out

    def drain_packets(self) -> list:
        """Every copied packet left, after the last frame (demuxing the rest of the range)."""
        for _ in self._decoded:  # frames past the last one that was asked for are not wanted
            pass
        return self.ready_packets(None)

    def close(self) -> None:
        self._container.close()


def _is_cover_art(stream) -> bool:
    disposition = getattr(stream, "disposition", 0)
    attached = getattr(type(disposition), "attached_pic", None)
    return bool(attached is not None and disposition & attached)


def _display_matrix(frame) -> tuple[int, ...] | None:
    """The frame's DISPLAYMATRIX side data (9 int32s, as FFmpeg stores it), or None."""
    for side in frame.side_data:
        if getattr(side.type, "name", "") == "DISPLAYMATRIX":
            values = np.frombuffer(bytes(side), dtype="<i4")
            return tuple(int(v) for v in values) if values.size == 9 else None
    return None


def _natural_key(path: Path) -> list:
    """frame2.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class FolderReader:
    """A folder of images read as frames at a fixed rate (``--fps``), sorted by name (naturally)."""

    def __init__(self, path: Path, *, start: float = 0.0, duration: float | None = None,
                 fps: float = DEFAULT_FOLDER_FPS):
        from ..imaging import SUPPORTED_EXTENSIONS

        if fps <= 0:
            raise UsageError(f"--fps must be > 0, not {fps:g}")
        self.path = path
        self.copied_streams: list = []
        self.notes: list[str] = []
        self.damaged_packets = 0
        files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                        and p.suffix.lower() in SUPPORTED_EXTENSIONS), key=_natural_key)
        if not files:
            raise VideoError(path, "no image files in this folder")
        rate = Fraction(fps).limit_denominator(1001)
        first = math.ceil(start * rate - 1e-9)
        last = len(files) if duration is None else min(len(files), math.ceil((start + duration) * rate - 1e-9))
        self._files = files[first:last]
        if not self._files:
            raise VideoError(path, f"no frames at or after {start:g} s ({len(files)} frames at {float(rate):g} fps)")
        self._first = self._read(self._files[0])
        height, width = self._first.shape[:2]
        self.info = VideoInfo(
            path=path, kind="frames", width=width, height=height, time_base=1 / rate, rate=rate,
            frame_count=len(self._files), duration=float(len(self._files) / rate), codec="images",
        )

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        from ..imaging import read_image
        from .frames import to_uint8

        return to_uint8(read_image(path).rgb)

    def frames(self) -> Iterator[Frame]:
        info = self.info
        for index, path in enumerate(self._files):
            rgb = self._first if index == 0 else self._read(path)
            if rgb.shape[:2] != (info.height, info.width):
                raise VideoError(path, f"frame is {rgb.shape[1]}x{rgb.shape[0]}, the first frame is "
                                       f"{info.width}x{info.height} (all frames must be one size)")
            yield Frame(index=index, rgb=rgb, pts=index, time_base=info.time_base, duration=1, name=path.name)

    def ready_packets(self, until: float | None = None) -> list:
        return []

    def drain_packets(self) -> list:
        return []

    def close(self) -> None:
        pass
