"""Rain synthesis: turn clean photographs into (rainy, clean) training pairs.

The rain model follows how rain is photographed. A rain layer is a sum of several streak layers,
each standing for drops at one distance from the camera: drops are random seeds (density,
brightness), given a width by a small blur and a length by a motion-blur line kernel (length,
angle with per-streak jitter, soft ends). Near layers are long, wide, sparse and bright; far layers
short, thin, dense and dim. A depth-like map (far at the top, smooth random variation) attenuates
the streaks and drives an optional veiling haze ``J t + A (1 - t)``. Optional lens drops blur and
brighten small discs. The rain is composited additively (``clip(I + R)``) or with a screen blend
(``1 - (1 - I)(1 - R)``).

Everything is numpy float32 in [0, 1], H x W x 3, and deterministic for a ``numpy.random.Generator``.
``synth_folder`` writes ``OUT/input`` and ``OUT/target`` with identical file names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage, signal

from ..errors import ImageError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class RainPreset:
    """Ranges (low, high) that each synthesised image draws its rain parameters from."""

    layers: tuple[int, int]  # number of streak layers (inclusive)
    cover: tuple[float, float]  # mean rain intensity added over the image, all streak layers
    length: tuple[float, float]  # streak length in pixels (at scale 1), nearest layer
    width: tuple[float, float]  # streak width (blur sigma in pixels), nearest layer
    brightness: tuple[float, float]  # peak streak intensity, nearest layer
    angle_spread: float  # degrees: layer angles differ from the main angle by up to this
    haze: tuple[float, float]  # probability of haze, and its maximum density
    drops: float  # probability of lens drops
    screen: float  # probability of screen (instead of additive) compositing
    cross: float  # probability of one extra sparse layer at a clearly different angle


PRESETS: dict[str, RainPreset] = {
    "light": RainPreset(layers=(1, 2), cover=(0.008, 0.04), length=(8, 30), width=(0.3, 0.8),
                        brightness=(0.35, 0.8), angle_spread=6, haze=(0.1, 0.25), drops=0.1, screen=0.5,
                        cross=0.15),
    "medium": RainPreset(layers=(2, 3), cover=(0.03, 0.09), length=(15, 45), width=(0.4, 1.1),
                         brightness=(0.3, 0.7), angle_spread=10, haze=(0.3, 0.4), drops=0.15, screen=0.5,
                         cross=0.3),
    "heavy": RainPreset(layers=(2, 4), cover=(0.1, 0.4), length=(30, 120), width=(0.6, 2.4),
                        brightness=(0.2, 0.85), angle_spread=14, haze=(0.5, 0.6), drops=0.2, screen=0.3,
                        cross=0.6),
}
# "streaks": the dense, sharp, crossing streaks of the Photoshop-style benchmarks (Rain100H, Rain200H,
# Rain1400): noise seeds, a small blur, a long motion blur and a levels stretch, composited without haze.
# Its parameters are drawn in ``_dense_streaks``; this entry only names it.
STREAKS = "streaks"
# "none": no rain at all, the clean image as its own input. A small share in a training mix teaches
# the network to leave rain-free photographs (and rain-free parts of a photograph) as they are.
NONE = "none"
# The mix that the preset name "mixed" stands for (the shipped model's phases 1 and 2 trained on it).
MIXED = {"light": 0.2, "medium": 0.3, "heavy": 0.5}
PRESET_NAMES = (*PRESETS, STREAKS, NONE, "mixed")


def parse_preset(spec: str) -> dict[str, float]:
    """A preset name or a weighted mix (``"heavy:0.5,streaks:0.5"``) as {preset: probability}.

    Raises UsageError naming the problem for an unknown preset or a bad weight.
    """
    spec = spec.strip().lower()
    if spec == "mixed":
        return dict(MIXED)
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        if name not in PRESET_NAMES or name == "mixed":
            raise UsageError(f"unknown rain preset {name!r}; choose one of {', '.join(PRESET_NAMES)}, "
                             "or a mix such as light:0.2,heavy:0.4,streaks:0.4")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"rain preset {part.strip()!r}: the weight after ':' must be a number") from None
        if not w > 0:
            raise UsageError(f"rain preset {part.strip()!r}: the weight must be positive")
        weights[name] = weights.get(name, 0.0) + w
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()}


def line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """An anti-aliased line of ``length`` pixels at ``angle_deg`` from vertical, with soft ends.

    Values are about 1 along the line (not normalised to sum 1), so a single seed becomes a streak
    of the seed's brightness.
    """
    length = max(1.0, float(length))
    half = math.ceil(length / 2) + 1
    size = 2 * half + 1
    theta = math.radians(angle_deg)
    dx, dy = math.sin(theta), math.cos(theta)
    ys, xs = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    along = xs * dx + ys * dy
    across = np.abs(-xs * dy + ys * dx)
    profile = np.clip(1.0 - across, 0.0, 1.0)  # anti-aliased one-pixel line
    t = np.clip(np.abs(along) / (length / 2), 0.0, 1.0)
    taper = np.clip(np.cos(t * math.pi / 2), 0.0, 1.0) ** 0.5  # bright middle, soft ends
    k = (profile * taper).astype(np.float32)
    k[np.abs(along) > length / 2 + 0.5] = 0.0
    assert k.shape == (size, size)
    return k


def _streak_layer(shape: tuple[int, int], rng: np.random.Generator, density: float, length: float,
                  width: float, angle: float, jitter: float) -> np.ndarray:
    """One layer of streaks, H x W, peak values around 1 (before brightness)."""
    out = np.zeros(shape, np.float32)
    groups = 3 if jitter > 0 else 1  # per-streak angle jitter: seeds split into groups
    for _ in range(groups):
        seeds = (rng.random(shape, dtype=np.float32) < density / groups).astype(np.float32)
        seeds *= rng.uniform(0.5, 1.0, size=shape).astype(np.float32)
        if width > 0.35:
            seeds = ndimage.gaussian_filter(seeds, width) * (2 * math.pi * width**2) ** 0.5
        a = angle + (rng.uniform(-jitter, jitter) if jitter > 0 else 0.0)
        ln = length * rng.uniform(0.8, 1.2)
        out += signal.oaconvolve(seeds, line_kernel(ln, a), mode="same").astype(np.float32)
    return np.clip(out, 0.0, None)


def _density_for(cover: float, brightness: float, length: float, width: float) -> float:
    """Seed density that makes a streak layer's mean intensity about ``cover``."""
    per_seed = 0.75 * brightness * 0.9 * max(1.0, length) * max(1.0, 2.5 * width if width > 0.35 else 1.0)
    return min(0.5, cover / per_seed)


def _depth_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth depth-like map in [0, 1]: far (1) towards the top, with low-frequency variation."""
    h, w = shape
    ramp = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None] * rng.uniform(0.3, 1.0)
    coarse = rng.random((4, 4)).astype(np.float32)
    noise = ndimage.zoom(coarse, (h / 4, w / 4), order=1)[:h, :w]
    noise = np.pad(noise, ((0, h - noise.shape[0]), (0, w - noise.shape[1])), mode="edge")
    d = ramp + 0.5 * noise
    d -= d.min()
    return d / max(float(d.max()), 1e-6)


def _lens_drops(img: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Blur and brighten a few small discs, like drops or splashes on the lens."""
    h, w = img.shape[:2]
    blurred = np.stack([ndimage.gaussian_filter(img[..., c], 3 * scale) for c in range(3)], -1)
    mask = np.zeros((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(1, 6))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(3, 12) * scale
        mask = np.maximum(mask, np.clip(1.0 - np.hypot(ys - cy, xs - cx) / r, 0.0, 1.0) ** 0.5)
    mask = mask[..., None]
    return img * (1 - mask) + np.clip(blurred * 1.1 + 0.05, 0, 1) * mask


def _dense_streaks(clean: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Benchmark-style heavy rain: 1-3 dense layers of thin, long, bright streaks, often crossing.

    Each layer is noise seeds given a width by a small blur and a length by a motion blur, then
    a levels stretch (gain, clipped) that makes streak cores saturate as in Rain200H. Layers after
    the first lean at a clearly different angle. The rain is added (mostly) or screened; no haze.
    """
    h, w = clean.shape[:2]
    angle = rng.uniform(-30, 30)
    rain: np.ndarray = np.zeros((h, w), np.float32)
    n_layers = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.3]))
    for i in range(n_layers):
        a = angle if i == 0 else angle + rng.choice([-1, 1]) * rng.uniform(8, 35)
        length = rng.uniform(20, 75) * scale
        width = rng.uniform(0.3, 1.1) * scale
        cover = rng.uniform(0.2, 0.7) / n_layers ** 0.5  # fraction of pixels this layer's streaks touch
        density = cover / (length * max(1.0, 2.0 * width))
        layer = _streak_layer((h, w), rng, density=density, length=length, width=width, angle=a,
                              jitter=rng.uniform(0, 4))
        gain = rng.uniform(0.9, 1.8)
        bright = rng.uniform(0.55, 1.0)
        rain = 1 - (1 - rain) * (1 - np.clip(layer * gain, 0, 1) * bright)
    rain3 = rain[..., None] * (1.0 - rng.uniform(0, 0.03, size=3)).astype(np.float32)
    img = clean.astype(np.float32)
    img = img + rain3 if rng.random() < 0.8 else 1 - (1 - img) * (1 - rain3)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def add_rain(clean: np.ndarray, rng: np.random.Generator, preset: str = "mixed", scale: float = 1.0) -> np.ndarray:
    """Return ``clean`` (H x W x 3 float32 in [0, 1]) with synthetic rain drawn from ``preset``.

    ``preset`` is a name of ``PRESET_NAMES`` or a weighted mix (see ``parse_preset``).
    ``scale`` multiplies streak lengths and widths (use about ``short_side / 400`` for photographs
    much larger than the benchmark images).
    """
    mix = parse_preset(preset)
    if len(mix) > 1:
        preset = str(rng.choice(list(mix), p=list(mix.values())))
    else:
        (preset,) = mix
    if preset == STREAKS:
        return _dense_streaks(clean, rng, scale)
    if preset == NONE:
        return np.clip(clean, 0.0, 1.0).astype(np.float32)
    p = PRESETS[preset]
    h, w = clean.shape[:2]
    img = clean.astype(np.float32)
    depth = _depth_map((h, w), rng)

    angle = rng.uniform(-25, 25) if rng.random() < 0.8 else rng.uniform(-45, 45)
    n_layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    cover = rng.uniform(*p.cover)
    near_length = rng.uniform(*p.length) * scale
    near_width = rng.uniform(*p.width) * scale
    near_bright = rng.uniform(*p.brightness)
    rain: np.ndarray = np.zeros((h, w), np.float32)
    for i in range(n_layers):
        z = i / (n_layers - 1) if n_layers > 1 else 0.0  # 0 nearest, 1 farthest
        length = near_length * (1 - 0.55 * z)
        width = near_width * (1 - 0.5 * z)
        bright = near_bright * (1 - 0.45 * z) * rng.uniform(0.85, 1.15)
        layer_cover = cover / n_layers * rng.uniform(0.7, 1.3)
        layer = _streak_layer((h, w), rng, density=_density_for(layer_cover, bright, length, width),
                              length=length, width=width,
                              angle=angle + rng.uniform(-p.angle_spread, p.angle_spread) * z,
                              jitter=rng.uniform(1, 6))
        atten = 1.0 - 0.6 * z * depth  # far layers fade where the scene is far (into the haze)
        rain = 1 - (1 - rain) * (1 - np.clip(layer * bright * atten, 0, 1))
    if rng.random() < p.cross:
        bright = rng.uniform(0.4, 0.9)
        length = near_length * rng.uniform(0.8, 1.6)
        layer = _streak_layer((h, w), rng, density=_density_for(cover * rng.uniform(0.05, 0.5), bright, length,
                                                                near_width * 0.6),
                              length=length, width=near_width * 0.6,
                              angle=angle + rng.choice([-1, 1]) * rng.uniform(15, 40), jitter=2)
        rain = 1 - (1 - rain) * (1 - np.clip(layer * bright, 0, 1))

    if rng.random() < p.haze[0]:
        beta = rng.uniform(0.1, p.haze[1])
        t = np.exp(-beta * 3 * depth)[..., None]
        airlight = rng.uniform(0.7, 1.0) + rng.uniform(-0.03, 0.05, size=3)
        img = img * t + airlight.astype(np.float32) * (1 - t)
    tint = (1.0 - rng.uniform(0, 0.04, size=3)).astype(np.float32)  # rain is white to faintly tinted
    rain3 = rain[..., None] * tint
    if rng.random() < p.screen:
        img = 1 - (1 - img) * (1 - rain3)
    else:
        img = img + rain3
    if rng.random() < p.drops:
        img = _lens_drops(np.clip(img, 0, 1), rng, scale)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def image_files(folder: Path) -> list[Path]:
    """The images directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H x W x 3 float32 in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot read image ({e})") from e


def write_rgb(path: Path, img: np.ndarray) -> None:
    """Write H x W x 3 float in [0, 1] as an 8-bit image (format from the suffix)."""
    from PIL import Image

    Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)


def synth_folder(clean_dir: Path, out_dir: Path, preset: str = "mixed", per_image: int = 1, seed: int = 0,
                 max_side: int | None = None, progress: Callable[[str], None] | None = None) -> int:
    """Write rainy/clean pairs for every image in ``clean_dir``; return the number of pairs.

    ``OUT/input/NAME.png`` is the rainy image and ``OUT/target/NAME.png`` the clean one (resized
    to ``max_side`` when given), with ``NAME = STEM`` or ``STEM_k`` for ``per_image > 1``.
    The rain of image ``i``, copy ``k`` depends only on (seed, i, k).
    """
    parse_preset(preset)  # a bad name fails before any file is written
    if per_image < 1:
        raise UsageError(f"--per-image must be at least 1, got {per_image}")
    files = image_files(Path(clean_dir))
    out_dir = Path(out_dir)
    (out_dir / "input").mkdir(parents=True, exist_ok=True)
    (out_dir / "target").mkdir(parents=True, exist_ok=True)
    count = 0
    for i, path in enumerate(files):
        clean = read_rgb(path)
        if max_side and max(clean.shape[:2]) > max_side:
            clean = resize(clean, max_side / max(clean.shape[:2]))
        scale = max(1.0, min(clean.shape[:2]) / 400)
        for k in range(per_image):
            rng = np.random.default_rng([seed, i, k])
            name = f"{path.stem}_{k}.png" if per_image > 1 else f"{path.stem}.png"
            write_rgb(out_dir / "input" / name, add_rain(clean, rng, preset, scale))
            write_rgb(out_dir / "target" / name, clean)
            count += 1
            if progress:
                progress(name)
    return count


def resize(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize H x W x 3 float32 by ``factor`` with Pillow's antialiased bicubic filter."""
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    chans = [Image.fromarray(img[..., c], mode="F").resize(size, Image.Resampling.BICUBIC) for c in range(3)]
    return np.clip(np.stack([np.asarray(c) for c in chans], -1), 0, 1).astype(np.float32)
