"""Short test videos made with PyAV: a moving bar on a gradient, with audio, subtitles, rotation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

SRT = ("1\n00:00:00,000 --> 00:00:00,200\nrain\n\n"
       "2\n00:00:00,200 --> 00:00:00,400\nmore rain\n\n")


def frame_pixels(i: int, width: int, height: int) -> np.ndarray:
    """Frame i: a horizontal gradient, a bright bar moving right, a dark marked top-left corner."""
    img = np.empty((height, width, 3), np.uint8)
    img[...] = np.linspace(40, 200, width, dtype=np.uint8)[None, :, None]
    x = (i * 5) % max(1, width - 6)
    img[:, x : x + 6] = (250, 250, 240)
    img[: height // 4, : width // 4] = (20, 30, 160)
    return img


def make_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (64, 48), fps: int = 25,
              audio: bool = True, rotation: int = 0, pts: list[int] | None = None,
              time_base: Fraction | None = None, subtitles: Path | None = None,
              full_range_bt709: bool = False) -> Path:
    """Encode a clip with H.264 (and AAC audio at 16 kHz, about as long as the video).

    ``pts`` (in ``time_base`` units) makes a variable-frame-rate clip; ``rotation`` writes a
    display matrix (counter-clockwise degrees); ``subtitles`` is an .srt file whose packets are
    muxed as a subtitle stream (for .mkv); ``full_range_bt709`` encodes (and tags) full-range
    BT.709 YUV, as many phones do, instead of FFmpeg's default limited-range BT.601.
    """
    import av

    width, height = size
    tb = time_base or Fraction(1, fps)
    out = av.open(str(path), "w")
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = video.codec_context.time_base = tb
    video.options = {"preset": "ultrafast"}
    if full_range_bt709:
        video.codec_context.colorspace = video.codec_context.color_primaries = video.codec_context.color_trc = 1
        video.codec_context.color_range = 2
    if rotation:
        video.set_display_rotation(rotation)
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
    srt = sub_stream = None
    if subtitles is not None:
        srt = av.open(str(subtitles))
        sub_stream = out.add_stream_from_template(srt.streams[0])
    timestamps = pts if pts is not None else list(range(frames))
    for i, p in enumerate(timestamps):
        picture = av.VideoFrame.from_ndarray(frame_pixels(i, width, height), format="rgb24")
        if full_range_bt709:
            picture.colorspace, picture.color_range = 1, 2
        picture = picture.reformat(format="yuv420p")
        picture.pts, picture.time_base = p, tb
        out.mux(video.encode(picture))
    if sound is not None:
        seconds = float((timestamps[-1] + 1) * tb) if pts is None else float(timestamps[-1] * tb) + 0.04
        t = np.arange(int(seconds * 16000), dtype=np.float32) / 16000
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            chunk = samples[k : k + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16000, k, Fraction(1, 16000)
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    if srt is not None:
        for packet in srt.demux(srt.streams[0]):
            if packet.dts is not None:
                packet.stream = sub_stream
                out.mux(packet)
        srt.close()
    out.mux(video.encode(None))
    out.close()
    return path


@dataclass
class Probe:
    """What a player and a muxer see in a file."""

    frames: int
    width: int
    height: int
    rate: Fraction | None
    pts_seconds: list[float]
    rotation: int
    streams: list[str]  # "video h264", "audio aac", ...
    packets: dict[str, list[bytes]]  # copied streams' packet payloads by type
    packet_times: dict[str, list[float]]

    @property
    def duration(self) -> float:
        """From the first frame's start to the last frame's end (one frame period assumed for the last)."""
        step = 1 / float(self.rate) if self.rate else 0.0
        return self.pts_seconds[-1] - self.pts_seconds[0] + step

    def digest(self, kind: str) -> str:
        return hashlib.sha256(b"".join(self.packets.get(kind, []))).hexdigest()


def probe(path: Path) -> Probe:
    import av

    with av.open(str(path)) as c:
        video = c.streams.video[0]
        streams = [f"{s.type} {s.codec_context.name}" for s in c.streams]
        frames = list(c.decode(video))
        rate = video.average_rate
    packets: dict[str, list[bytes]] = {}
    times: dict[str, list[float]] = {}
    with av.open(str(path)) as c:
        for packet in c.demux(*[s for s in c.streams if s.type in ("audio", "subtitle")]):
            if packet.size:
                packets.setdefault(packet.stream.type, []).append(bytes(packet))
                times.setdefault(packet.stream.type, []).append(float(packet.pts * packet.time_base))
    return Probe(frames=len(frames), width=frames[0].width, height=frames[0].height, rate=rate,
                 pts_seconds=[float(f.pts * f.time_base) for f in frames], rotation=frames[0].rotation,
                 streams=streams, packets=packets, packet_times=times)
