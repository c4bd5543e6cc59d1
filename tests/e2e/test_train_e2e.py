"""End-to-end: synthesise pairs, train a few steps, stop, resume, export, derain with the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


def test_synth_train_resume_export_and_use(derain, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        base = np.linspace(0, 1, 96)[None, :, None] * rng.random(3)[None, None, :]
        Image.fromarray((np.repeat(base, 80, 0) * 255).astype(np.uint8)).save(clean / f"c{i}.png")

    r = derain("synth", clean, "--out", tmp_path / "pairs", "--preset", "heavy", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "pairs" / "input").iterdir()) == ["c0.png", "c1.png", "c2.png"]
    assert sorted(p.name for p in (tmp_path / "pairs" / "target").iterdir()) == ["c0.png", "c1.png", "c2.png"]

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({
        "arch_config": {"channels": 4, "blocks": [1, 1], "max_channels": 8},
        "steps": 6, "batch": 2, "crop": 32, "warmup": 2, "val_every": 3, "ckpt_every": 3, "log_every": 1,
        "threads": 1, "val_fraction": 0.34, "val_synth": 1, "val_size": 64,
    }))
    run = tmp_path / "run"
    r = derain("train", "derainlite", "--data", tmp_path / "pairs", "--synth", clean, "--config", config,
               "--out", run)
    assert r.returncode == 0, r.stderr
    assert (run / "log.csv").exists()
    r = derain("train", "--resume", run)  # a finished run resumes to the same end
    assert r.returncode == 0, r.stderr

    exported = tmp_path / "mine.safetensors"
    r = derain("export", run, "--out", exported)
    assert r.returncode == 0, r.stderr
    photo = tmp_path / "pairs" / "input" / "c1.png"
    r = derain(photo, "-m", exported, "-o", tmp_path / "out.png", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["model"] == "derainlite:mine" and (tmp_path / "out.png").exists()
