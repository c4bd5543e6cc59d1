"""Before/after comparison images: the rainy input beside (or split with) its derained output."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ._atomic import atomic_write
from .errors import UsageError
from .quantise import quantise

Mode = Literal["side", "split"]
MODES = ("side", "split")
GAP = 8  # px between the two panels of a side-by-side comparison
DIVIDER = 2  # px, the line between the halves of a split comparison
_GAP_COLOUR = (24, 24, 24)
_DIVIDER_COLOUR = (235, 235, 235)
_LABEL_BOX = (20, 20, 20)
_LABEL_TEXT = (240, 240, 240)


def make_comparison(
    before: np.ndarray,
    after: np.ndarray,
    mode: Mode,
    max_side: int = 2048,
    labels: tuple[str, str] | None = ("rainy", "derained"),
) -> Image.Image:
    """An 8-bit RGB comparison of two float32 H x W x 3 images in [0, 1].

    'side' puts them next to each other with a small gap; 'split' shows the left half of
    `before` and the right half of `after` in one frame, with a thin light divider. Images are
    scaled down (LANCZOS) so that the result's longest side is at most `max_side`; `labels`
    (None for none) are drawn on a dark box in each panel's top corner.
    """
    if mode not in MODES:
        raise UsageError(f"unknown comparison mode {mode!r} (use side or split)")
    if before.shape != after.shape or before.ndim != 3 or before.shape[2] != 3:
        raise ValueError(f"before {before.shape} and after {after.shape} must be the same H x W x 3")
    if max_side < GAP + 2:
        raise UsageError(f"max_side must be at least {GAP + 2}, not {max_side}")
    height, width = before.shape[:2]
    if mode == "side":
        scale = min(1.0, (max_side - GAP) / (2 * width), max_side / height)
    else:
        scale = min(1.0, max_side / max(width, height))
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    first, second = _panel(before, size), _panel(after, size)
    panel_w, panel_h = size

    if mode == "side":
        canvas = Image.new("RGB", (2 * panel_w + GAP, panel_h), _GAP_COLOUR)
        canvas.paste(first, (0, 0))
        canvas.paste(second, (panel_w + GAP, 0))
        boxes = ((0, panel_w), (panel_w + GAP, 2 * panel_w + GAP))
    else:
        canvas = second.copy()
        middle = panel_w // 2
        canvas.paste(first.crop((0, 0, middle, panel_h)), (0, 0))
        left = max(0, middle - DIVIDER // 2)  # columns [middle - 1, middle] for a 2 px divider
        ImageDraw.Draw(canvas).rectangle(
            (left, 0, min(panel_w, left + DIVIDER) - 1, panel_h - 1), fill=_DIVIDER_COLOUR
        )
        boxes = ((0, middle), (middle, panel_w))
    if labels is not None:
        _draw_labels(canvas, labels, boxes, panel_h)
    return canvas


def write_comparison(
    path: str | os.PathLike,
    before: np.ndarray,
    after: np.ndarray,
    mode: Mode,
    max_side: int = 2048,
    labels: tuple[str, str] | None = ("rainy", "derained"),
) -> Path:
    """Write make_comparison(...) atomically as JPEG (quality 90) or PNG, by `path`'s extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise UsageError(f"{path}: a comparison image must be a .jpg or .png file")
    image = make_comparison(before, after, mode, max_side=max_side, labels=labels)

    def write(f: BinaryIO) -> None:
        if suffix == ".png":
            image.save(f, format="PNG")
        else:
            image.save(f, format="JPEG", quality=90)

    atomic_write(path, write)
    return path


def _panel(rgb: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """float [0, 1] -> 8-bit RGB image of `size`, quantised as the written output is."""
    image = Image.fromarray(quantise(rgb, 8))
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _draw_labels(
    canvas: Image.Image, labels: tuple[str, str], boxes: tuple[tuple[int, int], ...], panel_h: int
) -> None:
    """Each label on a dark box: the first at its panel's top left, the second at its top right."""
    font_size = int(min(36, max(12, panel_h * 0.035)))
    font = ImageFont.load_default(font_size)
    pad = max(2, font_size // 4)
    draw = ImageDraw.Draw(canvas)
    for index, (text, (left, right)) in enumerate(zip(labels, boxes)):
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        box_w, box_h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
        if box_w + 2 * pad > right - left or box_h + 2 * pad > panel_h:
            continue  # too small a panel for a legible label
        bx = left + pad if index == 0 else right - pad - box_w
        draw.rectangle((bx, pad, bx + box_w - 1, pad + box_h - 1), fill=_LABEL_BOX)
        draw.text((bx + pad - x0, 2 * pad - y0), text, font=font, fill=_LABEL_TEXT)
