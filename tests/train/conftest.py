"""Fixtures for the training tests: a tiny paired data set and a tiny DerainLite configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from derain_cli.train import TrainConfig
from derain_cli.train.synth import add_rain, write_rgb

TINY_ARCH = {"channels": 4, "blocks": [1, 1], "max_channels": 8}


def _clean_image(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A smooth random colour image (sums of low-frequency waves)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.zeros((size, size, 3), np.float32)
    for c in range(3):
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.5, 3, size=2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] += np.sin(2 * np.pi * (fy * ys + fx * xs) + ph)
    return 0.2 + 0.5 * (img - img.min()) / (img.max() - img.min())


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> tuple[Path, Path]:
    """(paired folder with 4 pairs, clean folder with 3 images), 48 x 48 pixels."""
    root = tmp_path_factory.mktemp("tiny_data")
    rng = np.random.default_rng(0)
    paired, clean = root / "paired", root / "clean"
    for sub in ("input", "target"):
        (paired / sub).mkdir(parents=True)
    clean.mkdir()
    for i in range(4):
        img = _clean_image(rng)
        write_rgb(paired / "target" / f"p{i}.png", img)
        write_rgb(paired / "input" / f"p{i}.png", add_rain(img, rng, "heavy"))
    for i in range(3):
        write_rgb(clean / f"c{i}.png", _clean_image(rng))
    return paired, clean


@pytest.fixture
def tiny_config(tiny_data) -> TrainConfig:
    paired, clean = tiny_data
    return TrainConfig.from_dict({
        "arch": "derainlite", "arch_config": TINY_ARCH, "data": [str(paired)], "synth": [str(clean)],
        "steps": 6, "batch": 2, "crop": 16, "synth_short_side": [40, 48], "lr": 3e-3, "warmup": 2,
        "val_fraction": 0.25, "val_synth": 1, "val_size": 32, "val_every": 3, "ckpt_every": 100,
        "log_every": 1, "amp": "off", "seed": 3,
    })
