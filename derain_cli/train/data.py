"""Training data: paired folders and clean images with rain synthesised on the fly.

All randomness comes from the ``numpy.random.Generator`` handed to ``TrainSampler.batch``, so a
run that restores that generator's state draws exactly the same batches again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError, UsageError
from .config import TrainConfig
from .synth import add_rain, image_files

Pair = tuple[Path, Path]


def paired_files(folder: Path) -> list[Pair]:
    """(input, target) paths of a paired folder: same names, or else the same count in sorted order."""
    folder = Path(folder)
    if not (folder / "input").is_dir() or not (folder / "target").is_dir():
        raise UsageError(f"{folder}: a paired data folder needs input/ and target/ sub-folders")
    inputs, targets = image_files(folder / "input"), image_files(folder / "target")
    by_name = {p.name: p for p in targets}
    if all(p.name in by_name for p in inputs):
        return [(p, by_name[p.name]) for p in inputs]
    if len(inputs) != len(targets):
        raise UsageError(
            f"{folder}: input/ has {len(inputs)} images and target/ {len(targets)}, and their names differ"
        )
    return list(zip(inputs, targets))


def split(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic (train, held-out) split; holds out round(fraction * n) items, none if n < 2."""
    n_val = round(fraction * len(items)) if len(items) >= 2 else 0
    order = np.random.default_rng([seed, len(items)]).permutation(len(items))
    held = set(order[:n_val].tolist())
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def load_uint8(path: Path, max_short_side: int | None = None) -> np.ndarray:
    """An image as H x W x 3 uint8, shrunk so that its short side is at most ``max_short_side``."""
    try:
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
        if max_short_side and min(rgb.size) > max_short_side:
            f = max_short_side / min(rgb.size)
            rgb = rgb.resize((max(1, round(rgb.width * f)), max(1, round(rgb.height * f))), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8).copy()
    except (OSError, ValueError) as e:
        raise ImageError(path, f"cannot read image ({e})") from e


def _augment(arrays: list[np.ndarray], rng: np.random.Generator, rot90: bool) -> list[np.ndarray]:
    """The same random flips (and 180 or, if allowed, 90-degree turns) applied to every array."""
    if rng.random() < 0.5:
        arrays = [a[:, ::-1] for a in arrays]
    if rng.random() < 0.5:
        arrays = [a[::-1, :] for a in arrays]  # with the flip above: a 180-degree turn
    if rot90 and rng.random() < 0.5:
        arrays = [np.rot90(a) for a in arrays]
    return [np.ascontiguousarray(a) for a in arrays]


def _as_float(img: np.ndarray) -> np.ndarray:
    """uint8 (0..255) or float (0..1) H x W x 3 -> float32 in [0, 1]."""
    return img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)


def _to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    """N float arrays H x W x 3 -> N x 3 x H x W float32."""
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()


def _resized_crop(img: np.ndarray, crop: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``crop`` x ``crop`` window of ``img`` scaled by ``factor`` (uint8)."""
    h, w = img.shape[:2]
    factor = max(factor, crop / min(h, w))
    size = min(h, w, max(1, round(crop / factor)))
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    window = Image.fromarray(img[y : y + size, x : x + size])
    return np.asarray(window.resize((crop, crop), Image.Resampling.BICUBIC) if size != crop else window)


@dataclass
class Sources:
    """The images a run trains and validates on."""

    train_pairs: list[Pair]
    val_pairs: list[Pair]
    train_clean: list[Path]
    val_clean: list[Path]

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> Sources:
        train_pairs, val_pairs = [], []
        for folder in cfg.data:
            tr, va = split(paired_files(Path(folder)), cfg.val_fraction, cfg.seed)
            train_pairs += tr
            val_pairs += va
        held_targets = {t.resolve() for _, t in val_pairs}
        clean = [p for folder in cfg.synth for p in image_files(Path(folder)) if p.resolve() not in held_targets]
        train_clean, val_clean = split(clean, cfg.val_fraction, cfg.seed)
        if not train_pairs and not train_clean:
            raise UsageError("no training data: give paired folders (--data) and/or clean images (--synth)")
        return cls(train_pairs, val_pairs, train_clean, val_clean)

    def describe(self) -> str:
        return (f"{len(self.train_pairs)} training pair(s), {len(self.train_clean)} clean image(s) for synthetic "
                f"rain; validation: {len(self.val_pairs)} pair(s), {len(self.val_clean)} clean image(s)")


def load_training_images(cfg: TrainConfig, sources: Sources
                         ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    """The training pairs (rainy, clean) and clean images as uint8 arrays, checked against the crop.

    Clean images are shrunk to a short side of at most ``synth_short_side[1]`` (the largest scale
    a sample is drawn at).
    """
    pairs = [(load_uint8(i), load_uint8(t)) for i, t in sources.train_pairs]
    for (a, b), (path, _) in zip(pairs, sources.train_pairs):
        if a.shape != b.shape:
            raise UsageError(f"{path}: input and target differ in size ({a.shape[1]}x{a.shape[0]} "
                             f"and {b.shape[1]}x{b.shape[0]})")
        if min(a.shape[:2]) < cfg.crop:
            raise UsageError(f"{path}: {a.shape[1]}x{a.shape[0]} is smaller than the crop size {cfg.crop}")
    clean = [load_uint8(p, max_short_side=cfg.synth_short_side[1]) for p in sources.train_clean]
    return pairs, clean


class TrainSampler:
    """Draws training batches (rainy, clean) as N x 3 x crop x crop float32 tensors in [0, 1].

    One sample at a time in numpy on the CPU (rain from ``synth.add_rain``); ``device_data`` has
    the batched version that runs on the training device.
    """

    def __init__(self, cfg: TrainConfig, sources: Sources):
        self.cfg = cfg
        self.pairs, self.clean = load_training_images(cfg, sources)

    def _paired_sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        rainy, clean = self.pairs[int(rng.integers(len(self.pairs)))]
        crop = self.cfg.crop
        h, w = rainy.shape[:2]
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        return rainy[y : y + crop, x : x + crop], clean[y : y + crop, x : x + crop]

    def _synth_sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        img = self.clean[int(rng.integers(len(self.clean)))]
        lo, hi = self.cfg.synth_short_side
        factor = rng.uniform(lo, hi) / min(img.shape[:2])
        clean = _resized_crop(img, self.cfg.crop, factor, rng).astype(np.float32) / 255.0
        return add_rain(clean, rng, self.cfg.synth_preset), clean

    def batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rainy, clean = [], []
        for _ in range(self.cfg.batch):
            use_synth = bool(self.clean) and (not self.pairs or rng.random() < self.cfg.synth_fraction)
            a, b = self._synth_sample(rng) if use_synth else self._paired_sample(rng)
            a, b = _augment([a, b], rng, self.cfg.rot90)
            rainy.append(_as_float(a))
            clean.append(_as_float(b))
        return _to_tensor(rainy), _to_tensor(clean)


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    ch, cw = min(h, size), min(w, size)
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y : y + ch, x : x + cw]


def validation_set(cfg: TrainConfig, sources: Sources) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Fixed (name, rainy, clean) uint8 images: held-out pairs and synthetic rain on held-out images."""
    out = []
    for rainy_path, clean_path in sources.val_pairs:
        rainy, clean = load_uint8(rainy_path), load_uint8(clean_path)
        out.append((rainy_path.name, _centre_crop(rainy, cfg.val_size), _centre_crop(clean, cfg.val_size)))
    short = (cfg.synth_short_side[0] + cfg.synth_short_side[1]) // 2
    for i, path in enumerate(sources.val_clean[: cfg.val_synth]):
        clean = _centre_crop(load_uint8(path, max_short_side=short), cfg.val_size)
        rng = np.random.default_rng([cfg.seed, 7919, i])
        rainy = add_rain(clean.astype(np.float32) / 255.0, rng, cfg.synth_preset)
        out.append((f"synth:{path.name}", (rainy * 255 + 0.5).astype(np.uint8), clean))
    return out
