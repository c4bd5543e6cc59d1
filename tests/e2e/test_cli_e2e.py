"""End-to-end: the installed `derain` executable in a subprocess, for what only a real process shows.

The README's commands, a batch stopped by a real signal, and start-up without torch. Everything
else about the command line runs in process (tests/cli), which is much faster. The model is the
tests-only `testnet:random` (a tiny conv net with fixed random weights), made available to the
subprocess through DERAIN_PLUGINS, except for the README demo, which uses the built-in model.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from derain_cli import __version__
from tests.conftest import shared_path

pytestmark = pytest.mark.e2e

M = ("-m", "testnet")


def real_photo() -> Path:
    return shared_path("data", "real", "drn", "14.jpg")


def out_lines_are_json(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


# ---------------------------------------------------------------------------------------------
def test_version_help_and_exit_codes(derain, tmp_path):
    r = derain("--version")
    assert (r.returncode, r.stdout) == (0, f"derain {__version__}\n")
    r = derain("--help")
    assert r.returncode == 0 and "Environment variables:" in r.stdout
    r = derain("bacth", tmp_path, "--out", tmp_path / "x")
    assert r.returncode == 2 and "No such command 'bacth'. Did you mean 'batch'" in r.stderr
    r = derain(tmp_path, *M)
    assert r.returncode == 2
    assert r.stderr == f"error: {tmp_path}: is a folder; use `derain batch {tmp_path} --out OUT_DIR`\n"


def test_single_real_photo_default_output_name(derain, tmp_path):
    """README: `derain photo.jpg` -> photo_derained.jpg beside it, the input untouched."""
    src = tmp_path / "street.jpg"
    shutil.copy(real_photo(), src)
    before = src.read_bytes()
    r = derain(src, *M)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "street_derained.jpg"
    assert r.stdout.startswith(f"{src} -> {out} (")
    assert Image.open(out).size == Image.open(src).size
    assert src.read_bytes() == before


def make_tree(root: Path, n: int, size=(64, 48)) -> list[Path]:
    rng = np.random.default_rng(3)
    paths = []
    for i in range(n):
        sub = root / ("cam1" if i % 2 else "cam2" / Path("night"))
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_interrupted_batch_resumes(derain, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    make_tree(src, 12, size=(1400, 1100))
    proc = derain.popen("batch", src, "--out", dst, "-r", *M)
    deadline = time.time() + 120
    while time.time() < deadline and not list(dst.rglob("*.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done_first = list(dst.rglob("*.png"))
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "error: interrupted; run the same command again to resume"
    assert 1 <= len(done_first) < 12
    assert not [p for p in dst.rglob("*") if p.is_file() and p.suffix != ".png"], "temporary files left behind"
    stamps = {p: p.stat().st_mtime_ns for p in done_first}
    r = derain("batch", src, "--out", dst, "-r", *M, "--json")
    assert r.returncode == 0, r.stderr
    recs = out_lines_are_json(r.stdout)
    assert sum(rec["status"] == "skipped" for rec in recs) == len(done_first)
    assert len(list(dst.rglob("*.png"))) == 12
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_readme_batch_and_models_commands(derain, tmp_path):
    """README: several files into a folder, a folder tree mirrored and resumed, the model list."""
    src = tmp_path / "rainy"
    make_tree(src, 3)
    a, b = sorted(src.rglob("*.png"))[:2]
    r = derain(a, b, *M, "-o", f"{tmp_path / 'clean'}/")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == sorted([a.name, b.name])
    r = derain("batch", src, "--out", tmp_path / "tree", "-r", *M)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "tree").rglob("*.png"))) == 3
    r = derain("batch", src, "--out", tmp_path / "tree", "-r", *M, "--json")  # rerun: all skipped
    assert [rec["status"] for rec in out_lines_are_json(r.stdout)] == ["skipped"] * 3
    r = derain("models", "list", "--json")
    assert r.returncode == 0 and "derainlite:v3" in {m["name"] for m in json.loads(r.stdout)}


def test_readme_demo_with_the_built_in_model(derain, tmp_path):
    """The README's first command: the bundled photo, the built-in model, a side-by-side comparison."""
    from tests.conftest import REPO

    out = tmp_path / "demo-output"
    r = derain(REPO / "examples" / "rainy-garden.jpg", "-o", f"{out}/", "--compare", "side", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    assert record["model"] == "derainlite:v3"
    assert (out / "rainy-garden.jpg").exists() and Path(record["compare"]).exists()
    assert Image.open(out / "rainy-garden.jpg").size == (1280, 800)
