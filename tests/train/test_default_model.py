"""The packaged default model: present in the package, loads offline, and removes rain."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from PIL import Image

from derain_cli import models
from derain_cli.metrics import psnr, to_uint8
from derain_cli.train import read_metadata
from derain_cli.weights import cached_path

from ..conftest import shared_path


def _bundled():
    model = models.resolve(None)
    path = cached_path(model)
    return model, path


def test_default_model_ships_inside_the_package():
    model, path = _bundled()
    assert model.name == "derainlite:v3" and model.source.kind == "bundled"
    assert path is not None and path.is_file(), "derain_cli/assets/derainlite.safetensors is missing"
    data = path.read_bytes()
    assert len(data) <= 8 * 1024 * 1024
    assert len(data) == model.source.size
    assert hashlib.sha256(data).hexdigest() == model.source.sha256, "registry sha256 is stale: update derainlite.py"
    meta = read_metadata(path)
    assert meta["architecture"] == "derainlite" and meta["weights"] == "ema"
    assert json.loads(meta["arch_config"]) == {}  # trained in the registered configuration


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _run_default(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB through the packaged default model, as uint8 RGB."""
    x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y = models.load_model(None)(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    return to_uint8(y)


def test_default_model_loads_offline_and_removes_rain(monkeypatch):
    pair = shared_path("data", "paired", "rain100l-samples")
    monkeypatch.setenv("DERAIN_OFFLINE", "1")
    monkeypatch.setattr("requests.Session.request", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    rainy = _read(pair / "input" / "norain-1.png")
    clean = _read(pair / "target" / "norain-1.png")
    out = _run_default(rainy)
    assert out.shape == rainy.shape
    assert psnr(out, clean) > psnr(rainy, clean) + 1.0


def test_default_model_leaves_a_rain_free_photo_nearly_unchanged():
    # A bright, low-contrast scene (snow and a white bear) with no rain at all: the model must not
    # darken it as if removing a veil (derainlite:v2 did: 28.7 dB, 5.7 grey levels darker).
    clean = _read(shared_path("data", "paired", "rain200h-samples") / "target" / "norain-1.png")
    out = _run_default(clean)
    assert psnr(out, clean) > 32.0
    assert abs(out.astype(np.float64).mean() - clean.astype(np.float64).mean()) < 3.0
