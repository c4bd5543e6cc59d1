"""Video: derain video files and frame sequences (`derain video`), with S2VD or any image model.

    from derain_cli.video import derain_video
    derain_video("dashcam.mp4", "dashcam_clean.mp4")           # S2VD; audio, timestamps, rotation kept

Modules, in the order data flows through them: ``reader`` (PyAV or a frame folder -> upright
frames + packets to copy), ``engines`` (the model: per-frame batches or overlapping chunks),
``temporal`` (flicker measures and ``--temporal`` steadying), ``writer`` (encode, copy streams,
rename into place), ``pipeline`` (one job end to end). The `derain video` command is
``derain_cli.cli.video``.
PyAV is an optional dependency (``pip install 'derain-cli[video]'``); importing this package does
not import it, nor torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_VIDEO_MODEL", "VideoResult", "derain_video"]

DEFAULT_VIDEO_MODEL = "s2vd:ntu"


def __getattr__(name: str) -> Any:
    if name in ("derain_video", "VideoResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
