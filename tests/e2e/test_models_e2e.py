"""End-to-end: `derain doctor` and the `derain models` commands on the real executable."""

from __future__ import annotations

import json
import shutil

import torch

from tests.tinynet import WEIGHTS, TinyNet


def test_doctor(derain):
    r = derain("doctor")
    assert r.returncode == 0, r.stderr
    for word in ("torch", "CUDA available", "CPU threads", "weights cache"):
        assert word in r.stdout
    assert derain.env["DERAIN_HOME"] in r.stdout


def test_models_list_json_and_info(derain):
    r = derain("models", "list", "--json")
    assert r.returncode == 0, r.stderr
    records = {m["name"]: m for m in json.loads(r.stdout)}
    assert "testnet:random" in records
    for rec in records.values():
        assert {"name", "architecture", "trained_on", "size", "installed", "source", "sha256", "url"} <= set(rec)
        assert rec["source"] in ("url", "manual", "bundled", "file", "none")
    r = derain("models", "info", "testnet")
    assert r.returncode == 0 and "input contract" in r.stdout and "RGB" in r.stdout
    r = derain("models", "info", "nosuch")
    assert r.returncode == 1 and "nosuch" in r.stderr


def test_import_verify_path_rm(derain, tmp_path):
    """A file imported for a model is cached, verified, found by `path`, and removed by `rm`."""
    # a differently-seeded set of weights of the same architecture: it loads strictly
    torch.manual_seed(99)
    own = tmp_path / "my-testnet.pt"
    torch.save({"net": TinyNet().state_dict(), "epoch": 3}, own)
    r = derain("models", "path", "testnet:manual")
    assert r.returncode == 1 and "not installed" in r.stderr
    r = derain("models", "import", "testnet:manual", own)
    assert r.returncode == 0, r.stderr
    r = derain("models", "path", "testnet:manual")
    assert r.returncode == 0
    cached = r.stdout.strip()
    assert cached.startswith(derain.env["DERAIN_HOME"])
    r = derain("models", "verify")
    assert r.returncode == 0 and "ok" in r.stdout
    # corrupt the cached copy: verify notices
    with open(cached, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    r = derain("models", "verify")
    assert r.returncode == 1 and "FAILED" in r.stdout
    r = derain("models", "rm", "testnet:manual")
    assert r.returncode == 0 and "removed" in r.stdout
    r = derain("models", "verify")
    assert r.returncode == 0 and "no weights" in r.stdout


def test_import_wrong_architecture_is_refused(derain, tmp_path):
    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, bad)
    r = derain("models", "import", "testnet:manual", bad)
    assert r.returncode == 1
    assert "conv.weight" in r.stderr or "head.weight" in r.stderr
    r = derain("models", "import", "testnet:manual", tmp_path / "missing.pt")
    assert r.returncode == 2 and "missing.pt" in r.stderr


def test_manual_model_without_weights_says_how_to_get_them(derain, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    r = derain(tmp_path / "a.png", "-m", "testnet:manual")
    assert r.returncode == 1
    assert "https://example.org/testnet" in r.stderr and "abcd" in r.stderr
    assert "derain models import testnet:manual" in r.stderr
    # once imported, the same command works
    shutil.copy(WEIGHTS, tmp_path / "w.pt")
    assert derain("models", "import", "testnet:manual", tmp_path / "w.pt").returncode == 0
    r = derain(tmp_path / "a.png", "-m", "testnet:manual")
    assert r.returncode == 0, r.stderr
