"""A training-progress chart drawn with Pillow (matplotlib is not a dependency).

Two panels share the step axis: the training loss (log scale) and the validation PSNR.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

_W, _H, _MARGIN = 900, 300, 60


def _read_series(log_csv: Path) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    loss, psnr = [], []
    with open(log_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            step = float(row["step"])
            if row.get("loss"):
                loss.append((step, float(row["loss"])))
            if row.get("val_psnr"):
                psnr.append((step, float(row["val_psnr"])))
    return loss, psnr


def _panel(draw: ImageDraw.ImageDraw, top: int, points: Sequence[tuple[float, float]], title: str,
           colour: str, x_max: float, log_y: bool) -> None:
    left, right, bottom = _MARGIN, _W - 20, top + _H - 40
    draw.rectangle([left, top + 20, right, bottom], outline="black")
    draw.text((left, top + 4), title, fill="black")
    if not points:
        draw.text((left + 10, top + 30), "no data yet", fill="gray")
        return

    def fy(v: float) -> float:
        return math.log10(max(v, 1e-12)) if log_y else v

    ys = [fy(v) for _, v in points]
    y_lo, y_hi = min(ys), max(ys)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5

    def xy(step: float, v: float) -> tuple[float, float]:
        x = left + (right - left) * step / max(x_max, 1.0)
        y = bottom - (bottom - top - 20) * (fy(v) - y_lo) / (y_hi - y_lo)
        return x, y

    fmt = (lambda v: f"{10 ** v:.3g}") if log_y else (lambda v: f"{v:.2f}")
    draw.text((4, top + 20), fmt(y_hi), fill="black")
    draw.text((4, bottom - 10), fmt(y_lo), fill="black")
    draw.text((right - 60, bottom + 4), f"step {int(x_max)}", fill="black")
    coords = [xy(s, v) for s, v in points]
    if len(coords) == 1:
        x, y = coords[0]
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    else:
        draw.line(coords, fill=colour, width=2)


def plot_progress(log_csv: Path, out_png: Path) -> None:
    """Draw ``log_csv`` (columns step, loss, val_psnr, ...) into ``out_png``."""
    loss, psnr = _read_series(log_csv)
    x_max = max([s for s, _ in loss + psnr] or [1.0])
    img = Image.new("RGB", (_W, 2 * _H), "white")
    draw = ImageDraw.Draw(img)
    _panel(draw, 0, loss, "training loss (log scale)", "#1f5fbf", x_max, log_y=True)
    _panel(draw, _H, psnr, "validation PSNR (dB, EMA weights)", "#c0392b", x_max, log_y=False)
    img.save(out_png)
