"""End-to-end: `derain IMAGE -m NAME` downloads real weights from a mirror on 127.0.0.1, caches
them, and a second run works without the network."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.conftest import shared_path

pytest.importorskip("pytest_httpserver")

pytestmark = pytest.mark.e2e

MODEL = "prn_r:rain100h"  # 86 KB, the smallest real checkpoint


def _serve_registry_file(httpserver, name: str):
    from derain_cli import models

    manifest = json.loads(shared_path("weights", "manifest.json").read_text())
    model = models.resolve(name)
    by_sha = {item["sha256"]: item["file"] for item in manifest}
    assert model.source.sha256 in by_sha, f"{name} is not one of the files in shared/weights"
    data = shared_path("weights", by_sha[model.source.sha256]).read_bytes()
    httpserver.expect_request(f"/mirror/{model.source.filename}").respond_with_data(
        data, content_type="application/octet-stream")
    return httpserver.url_for("/mirror")


def test_mirror_download_then_offline(derain, httpserver, tmp_path):
    mirror = _serve_registry_file(httpserver, MODEL)
    photo = tmp_path / "rain.png"
    Image.open(shared_path("data", "paired", "rain100l-samples", "input", "norain-1.png")).crop(
        (0, 0, 160, 120)).save(photo)

    derain.env["DERAIN_MIRROR"] = mirror
    r = derain(photo, "-m", MODEL, "-o", tmp_path / "one.png")
    assert r.returncode == 0, r.stderr
    assert len(httpserver.log) == 1
    r = derain("models", "list", "--json")
    record = next(m for m in json.loads(r.stdout) if m["name"] == MODEL)
    assert record["installed"] is True

    # second run: the cache answers, the server is not asked again
    r = derain(photo, "-m", MODEL, "-o", tmp_path / "two.png")
    assert r.returncode == 0, r.stderr
    assert len(httpserver.log) == 1
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()

    # and with the network forbidden outright
    del derain.env["DERAIN_MIRROR"]
    derain.env["DERAIN_OFFLINE"] = "1"
    r = derain(photo, "-m", MODEL, "-o", tmp_path / "three.png")
    assert r.returncode == 0, r.stderr
    assert len(httpserver.log) == 1


def test_offline_missing_weights_is_a_clear_error(derain, tmp_path):
    photo = tmp_path / "x.png"
    Image.new("RGB", (32, 32), (120, 120, 120)).save(photo)
    derain.env["DERAIN_OFFLINE"] = "1"
    r = derain(photo, "-m", MODEL)
    assert r.returncode == 1
    assert "offline" in r.stderr.lower() and MODEL in r.stderr
    assert not (tmp_path / "x_derained.png").exists()


def test_manual_source_prints_instructions(derain):
    r = derain("models", "download", "dcsfn:rain100h")
    assert r.returncode == 1
    assert "pan.baidu.com" in r.stderr and "derain models import dcsfn:rain100h" in r.stderr
