"""Writing the output of a video job: a video file (through PyAV) or a folder of PNG frames.

Both are written under a temporary name beside the target and renamed into place only when
complete, so an interrupted or failed job (Ctrl-C included) leaves nothing at the target path and
an existing output untouched.

A video file keeps what the input had: every frame's timestamp (so variable frame rates survive),
the average frame rate, the rotation (display matrix), the colour description, the container tags
(creation time, location) and the audio and subtitle streams, whose packets are copied unchanged.
Video is encoded as H.264 (VP9 in .webm) with a constant-quality setting (``--crf``) in yuv420p,
which needs even sizes: an odd last row or column is dropped, with a warning.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import UsageError, VideoError
from ._av import problem, require_av
from .frames import Frame, VideoInfo, quarter_turns, to_stored

DEFAULT_CODEC = "libx264"
CODEC_FOR_SUFFIX = {".webm": "libvpx-vp9"}
# Constant-quality defaults per encoder (each has its own scale); 18 is visually lossless for x264.
DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 24, "libsvtav1": 28, "libaom-av1": 28}
EXTRA_OPTIONS = {"libx264": {"preset": "medium"}, "libvpx-vp9": {"b": "0", "row-mt": "1"}}
PIXEL_FORMAT = "yuv420p"  # what every player decodes
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".flv")
FRAME_NAME = "frame_{:06d}.png"
# FFmpeg's enum values that mean "not stated" for each colour property (0 is RGB for colorspace
# and reserved for primaries and transfer; 2 is "unspecified" for those three, JPEG range for range).
_UNSPECIFIED = {"colorspace": (0, 2), "color_range": (0,), "color_primaries": (0, 2), "color_trc": (0, 2)}


def default_codec(target: Path) -> str:
    return CODEC_FOR_SUFFIX.get(target.suffix.lower(), DEFAULT_CODEC)


def _temp_sibling(target: Path, suffix: str = "") -> Path:
    """A hidden, unique name beside ``target`` (same folder, so the final rename is atomic)."""
    return target.with_name(f".{target.stem}.partial-{secrets.token_hex(4)}{suffix}")


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class VideoFileWriter:
    """Encodes upright RGB frames into ``target`` and copies packets of the input's other streams.

    ``size`` is the (width, height) of the upright frames it will be given (default: the input's).
    With ``keep_rotation`` the frames are turned back to the input's stored orientation and its
    display matrix is written, so players show the output as they showed the input.
    """

    def __init__(self, target: Path, info: VideoInfo, *, size: tuple[int, int] | None = None,
                 codec: str | None = None, crf: int | None = None, copy_streams=(),
                 keep_rotation: bool = True):
        self._av = av = require_av()
        self.target = Path(target)
        self.info = info
        self.warnings: list[str] = []
        self.rotation = info.rotation if keep_rotation else 0
        width, height = size or info.upright_size
        if quarter_turns(self.rotation) % 2:
            width, height = height, width  # the stored orientation
        self.width, self.height = width - width % 2, height - height % 2
        if not (self.width and self.height):
            raise VideoError(info.path, f"frames of {width}x{height} are too small to encode")
        if (self.width, self.height) != (width, height):
            self.warnings.append(f"{width}x{height} frames are stored as {self.width}x{self.height}: "
                                 f"{PIXEL_FORMAT} video needs even sizes")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temp = _temp_sibling(self.target, self.target.suffix)
        try:
            self.container = av.open(str(self.temp), mode="w")
        except ValueError:
            raise UsageError(f"{self.target}: FFmpeg cannot write '{self.target.suffix or 'no extension'}' "
                             f"files; use one of {', '.join(VIDEO_SUFFIXES[:5])}") from None
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(self.target, f"cannot write ({problem(exc)})") from None
        try:
            self.codec = codec or default_codec(self.target)
            self.stream = self._add_video_stream(crf)
            self._copies = {s.index: self._add_copy(s) for s in copy_streams}
            self.container.metadata.update(info.metadata)
        except BaseException:
            self.abort()
            raise

    # -- set-up ------------------------------------------------------------------------------
    def _add_video_stream(self, crf: int | None):
        info = self.info
        rate = info.rate or Fraction(25)  # a nominal rate; every frame keeps its own timestamp
        try:
            stream = self.container.add_stream(self.codec, rate=rate)
        except ValueError as exc:
            raise UsageError(f"--codec {self.codec}: {problem(exc)} (for {self.target.suffix} files)") from None
        if stream.type != "video":
            raise UsageError(f"--codec {self.codec} is not a video encoder")
        formats = [f.name for f in (stream.codec_context.codec.video_formats or [])]
        self.pixel_format = PIXEL_FORMAT if not formats or PIXEL_FORMAT in formats else formats[0]
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pixel_format
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        options = dict(EXTRA_OPTIONS.get(self.codec, {}))
        if self.codec in DEFAULT_CRF:
            options["crf"] = str(DEFAULT_CRF[self.codec] if crf is None else crf)
        elif crf is not None:
            self.warnings.append(f"--crf does not apply to {self.codec}; its default quality is used")
        stream.options = options
        # The colour description of a YUV input travels to the output: its matrix and range are
        # used for the RGB -> YUV conversion and written as tags. An RGB input (a lossless RGB
        # codec, PNG frames) has none: FFmpeg's defaults (BT.601 matrix, limited range) apply.
        yuv_input = info.colorspace != 0  # AVCOL_SPC_RGB
        self._matrix = info.colorspace if yuv_input and info.colorspace != 2 else 2
        self._range = info.color_range if yuv_input else 0
        tags = {"colorspace": self._matrix, "color_range": self._range,
                "color_primaries": info.color_primaries, "color_trc": info.color_trc}
        ctx = stream.codec_context
        for name, value in tags.items():
            if value not in _UNSPECIFIED[name]:
                with contextlib.suppress(AttributeError, ValueError, TypeError):
                    setattr(ctx, name, value)
        if self.rotation and info.display_matrix:
            stream.set_display_matrix(info.display_matrix)
        elif self.rotation:
            stream.set_display_rotation(self.rotation)
        if info.stream_language:
            stream.metadata["language"] = info.stream_language
        return stream

    def _add_copy(self, source):
        try:
            stream = self.container.add_stream_from_template(source)
        except ValueError:
            name = source.codec_context.name if source.codec_context else "unknown codec"
            raise UsageError(
                f"{self.target}: the input's {source.type} stream #{source.index} ({name}) cannot be "
                f"stored in a {self.target.suffix} file; write .mkv instead"
            ) from None
        for key in ("language", "title", "handler_name"):
            if key in source.metadata:
                stream.metadata[key] = source.metadata[key]
        with contextlib.suppress(AttributeError, ValueError, TypeError):
            stream.disposition = source.disposition
        return stream

    # -- writing -----------------------------------------------------------------------------
    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        """Encode ``rgb`` (upright uint8 H x W x 3) at ``frame``'s timestamp."""
        av = self._av
        stored = to_stored(rgb, self.rotation)[: self.height, : self.width]
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="rgb24")
        # Convert with the colour matrix and range the decoder used, so colours do not shift.
        picture.colorspace, picture.color_range = self._matrix, self._range
        picture = picture.reformat(format=self.pixel_format)
        picture.pts, picture.time_base = frame.pts, frame.time_base
        if frame.duration:
            with contextlib.suppress(AttributeError):
                picture.duration = frame.duration
        try:
            for packet in self.stream.encode(picture):
                self.container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(self.target, f"cannot encode frame {frame.index + 1} ({problem(exc)})") from None

    def copy(self, packets) -> None:
        """Mux packets of the input's copied streams unchanged."""
        for packet in packets:
            packet.stream = self._copies[packet.stream.index]
            try:
                self.container.mux(packet)
            except (self._av.FFmpegError, OSError) as exc:
                raise VideoError(self.target, f"cannot copy a {packet.stream.type} packet ({problem(exc)})") from None

    def commit(self) -> Path:
        """Finish the file and move it to the target path."""
        av = self._av
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            os.replace(self.temp, self.target)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(self.target, f"cannot write ({problem(exc)})") from None
        except BaseException:
            self.abort()
            raise
        _fsync_folder(self.target.parent)
        return self.target

    def abort(self) -> None:
        """Drop the unfinished file; the target path is left as it was."""
        with contextlib.suppress(Exception):
            self.container.close()
        self.temp.unlink(missing_ok=True)


class FrameFolderWriter:
    """Writes upright frames as PNG files into a folder that appears at ``target`` when complete.

    Frames read from a folder keep their names (with a .png extension); frames of a video file
    are named frame_000001.png, frame_000002.png, ... A folder has no rotation metadata, so frames
    are written as a player shows them.
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.warnings: list[str] = []
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.temp = _temp_sibling(self.target)
        try:
            self.temp.mkdir()
        except OSError as exc:
            raise VideoError(self.target, f"cannot create the folder ({exc.strerror or exc})") from None
        self._names: set[str] = set()

    def write(self, frame: Frame, rgb: np.ndarray) -> None:
        from PIL import Image

        name = f"{Path(frame.name).stem}.png" if frame.name else FRAME_NAME.format(frame.index + 1)
        if name in self._names:  # a.jpg and a.png in one input folder
            name = FRAME_NAME.format(frame.index + 1)
        self._names.add(name)
        try:
            Image.fromarray(rgb).save(self.temp / name, format="PNG", compress_level=3)
        except OSError as exc:
            raise VideoError(self.target / name, f"cannot write ({exc.strerror or exc})") from None

    def copy(self, packets) -> None:
        """A folder of frames has no place for audio or subtitles."""

    def commit(self) -> Path:
        old = None
        try:
            if self.target.exists():
                old = _temp_sibling(self.target, ".old")
                os.replace(self.target, old)
            os.replace(self.temp, self.target)
        except OSError as exc:
            if old is not None and not self.target.exists():
                os.replace(old, self.target)
            self.abort()
            raise VideoError(self.target, f"cannot write ({exc.strerror or exc})") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        _fsync_folder(self.target.parent)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.temp, ignore_errors=True)
