"""`derain bench`: PSNR/SSIM and speed of models against ground truth, as the papers report them.

Images are paired by file name (exact name first, then by stem when the extensions differ) or by
sorted order. Unmatched files are reported, never guessed. Each model runs whole-image where the
image fits in memory, as the papers did; outputs are rounded to 8 bits before scoring exactly as the
image writer rounds them (``derain_cli.quantise``), so a saved PNG holds the pixels scored.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import imaging
from ._atomic import atomic_write_bytes
from ._memory import PeakMemory
from .engine import Engine
from .errors import UsageError
from .pipeline import iter_images


@dataclass
class BenchStep:
    """How far a benchmark is: a model being loaded (``image`` None), or one more image done."""

    model: str
    done: int  # images this model has done
    total: int
    image: str | None = None
    seconds: float | None = None


@dataclass
class Pairing:
    pairs: list[tuple[Path, Path]]
    unmatched_inputs: list[Path] = field(default_factory=list)
    unmatched_targets: list[Path] = field(default_factory=list)


def pair_images(input_dir: Path, gt_dir: Path, mode: str = "name") -> Pairing:
    inputs = list(iter_images(input_dir, recursive=False))
    targets = list(iter_images(gt_dir, recursive=False))
    if not inputs:
        raise UsageError(f"{input_dir}: no images found")
    if not targets:
        raise UsageError(f"{gt_dir}: no images found")
    if mode == "sorted":
        n = min(len(inputs), len(targets))
        return Pairing(list(zip(inputs[:n], targets[:n])), inputs[n:], targets[n:])
    if mode != "name":
        raise UsageError(f"unknown --pair {mode!r}: use 'name' or 'sorted'")
    by_name = {t.name: t for t in targets}
    by_stem: dict[str, list[Path]] = {}
    for t in targets:
        by_stem.setdefault(t.stem, []).append(t)
    pairs, unmatched, used = [], [], set()
    for src in inputs:
        gt = by_name.get(src.name)
        if gt is None and len(by_stem.get(src.stem, [])) == 1:
            gt = by_stem[src.stem][0]
        if gt is None or gt in used:
            unmatched.append(src)
            continue
        used.add(gt)
        pairs.append((src, gt))
    return Pairing(pairs, unmatched, [t for t in targets if t not in used])


def _mean(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if len(finite) == len(values) else float("inf")


def benchmark(
    input_dir,
    gt_dir,
    models: list[str],
    *,
    pair: str = "name",
    convention: str = "restormer",
    save_dir=None,
    device: str = "auto",
    precision: str = "auto",
    tile="auto",
    max_pixels: int | None = imaging.DEFAULT_MAX_PIXELS,
    on_progress: Callable[[BenchStep], None] | None = None,
) -> dict:
    """Score the rainy inputs and every model against the ground truth; returns the JSON report.

    `on_progress` hears when each model starts loading and when each image is done.
    """
    from .metrics import CONVENTIONS, score, to_uint8

    if convention not in CONVENTIONS:
        raise UsageError(f"unknown --metric {convention!r}: use {' or '.join(CONVENTIONS)}")
    input_dir, gt_dir = Path(input_dir), Path(gt_dir)
    pairing = pair_images(input_dir, gt_dir, pair)
    if not pairing.pairs:
        raise UsageError(f"no input in {input_dir} has a ground truth in {gt_dir} (try --pair sorted)")
    say = on_progress or (lambda _step: None)

    loaded = []
    for src, gt_path in pairing.pairs:
        rainy = imaging.read_image(src, max_pixels=max_pixels)
        gt = imaging.read_image(gt_path, max_pixels=max_pixels)
        if rainy.rgb.shape != gt.rgb.shape:
            raise UsageError(f"{src.name}: input is {rainy.size[0]}x{rainy.size[1]} but {gt_path.name} "
                             f"is {gt.size[0]}x{gt.size[1]}")
        loaded.append((src, rainy, to_uint8(gt.rgb)))

    images = []
    for src, rainy, gt8 in loaded:
        p, s = score(to_uint8(rainy.rgb), gt8, convention)
        images.append({"name": src.name, "psnr": p, "ssim": s})
    report: dict[str, Any] = {
        "metric": convention,
        "pairs": len(loaded),
        "unmatched_inputs": [p.name for p in pairing.unmatched_inputs],
        "unmatched_targets": [p.name for p in pairing.unmatched_targets],
        "input": {"psnr": _mean(i["psnr"] for i in images), "ssim": _mean(i["ssim"] for i in images),
                  "images": images},
        "models": [],
    }

    for name in models:
        if name.lower() == "none":
            continue
        engine = Engine(name, device=device, precision=precision, tile=tile)
        say(BenchStep(engine.name, 0, len(loaded)))
        engine.load()
        _warm_up(engine)
        per_image, total_seconds, total_mp = [], 0.0, 0.0
        with PeakMemory(engine.device) as peak:
            for src, rainy, gt8 in loaded:
                start = time.perf_counter()
                out = engine.derain_rgb(rainy.rgb, prefer_whole=True)
                _sync(engine.device)
                seconds = time.perf_counter() - start
                total_seconds += seconds
                total_mp += rainy.rgb.shape[0] * rainy.rgb.shape[1] / 1e6
                p, s = score(to_uint8(out), gt8, convention)
                per_image.append({"name": src.name, "psnr": p, "ssim": s, "seconds": round(seconds, 4)})
                say(BenchStep(engine.name, len(per_image), len(loaded), src.name, seconds))
                if save_dir:
                    folder = Path(save_dir) / engine.name.replace(":", "_")
                    folder.mkdir(parents=True, exist_ok=True)
                    imaging.write_image(folder / f"{src.stem}.png", out, like=rainy, format="png")
        report["models"].append({
            "model": engine.name,
            "device": str(engine.device),
            "psnr": _mean(i["psnr"] for i in per_image),
            "ssim": _mean(i["ssim"] for i in per_image),
            "seconds_per_image": total_seconds / len(per_image),
            "megapixels_per_second": total_mp / total_seconds if total_seconds > 0 else None,
            "peak_memory_mb": round(peak.mb, 1),
            "images": per_image,
        })
        del engine
    return report


def _warm_up(engine: Engine) -> None:
    """One small pass so one-time start-up costs do not count against the first image."""
    import numpy as np

    m = max(engine.model.contract.size_multiple, engine.model.contract.min_size, 1)
    side = max(32, -(-32 // m) * m)
    engine.derain_rgb(np.full((side, side, 3), 0.5, np.float32), prefer_whole=True)
    _sync(engine.device)


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def write_csv(report: dict, path) -> None:
    """One row per (model, image) with the input's scores alongside."""
    import csv

    inputs = {i["name"]: i for i in report["input"]["images"]}
    rows = [["model", "image", "psnr", "ssim", "seconds", "input_psnr", "input_ssim"]]
    for name, item in inputs.items():
        rows.append(["input", name, item["psnr"], item["ssim"], "", item["psnr"], item["ssim"]])
    for model in report["models"]:
        for item in model["images"]:
            base = inputs[item["name"]]
            rows.append([model["model"], item["name"], item["psnr"], item["ssim"], item["seconds"],
                         base["psnr"], base["ssim"]])
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    atomic_write_bytes(Path(path), buf.getvalue().encode())
