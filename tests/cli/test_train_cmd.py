"""`derain synth`, `derain train` and `derain export` in process: arguments and exit codes.

The training itself is tested in tests/train; one full synth -> train -> export -> derain run of
the installed executable is in tests/e2e/test_train_e2e.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from tests.cli.conftest import write_png


@pytest.fixture
def clean(tmp_path):
    for i in range(2):
        write_png(tmp_path / "clean" / f"c{i}.png", (48, 40), seed=i)
    return tmp_path / "clean"


def test_synth_writes_pairs_with_the_same_names(derain, tmp_path, clean):
    out = tmp_path / "pairs"
    r = derain("synth", clean, "--out", out, "--preset", "heavy", "--seed", "3", "-q")
    assert (r.code, r.stderr) == (0, "")
    assert r.stdout == ""  # -q
    r = derain("synth", clean, "--out", tmp_path / "again", "--preset", "heavy", "--seed", "3")
    assert r.stdout == f"wrote 2 pair(s) to {tmp_path / 'again'}/input and {tmp_path / 'again'}/target\n"
    for sub in ("input", "target"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["c0.png", "c1.png"]
    # the same seed gives the same rain
    assert (out / "input" / "c0.png").read_bytes() == (tmp_path / "again" / "input" / "c0.png").read_bytes()
    assert Image.open(out / "input" / "c1.png").size == (48, 40)


@pytest.mark.parametrize("args,message", [
    (("nowhere", "--out", "o"), "error: nowhere: not a folder"),
    (("CLEAN", "--out", "o", "--per-image", "0"), "error: --per-image must be at least 1, got 0"),
])
def test_synth_usage_errors(derain, tmp_path, clean, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = derain("synth", *[str(clean) if a == "CLEAN" else a for a in args])
    assert (r.code, r.err_lines) == (2, [message])
    assert not (tmp_path / "o").exists()


def test_train_needs_an_architecture_or_resume(derain, tmp_path):
    r = derain("train", "--out", tmp_path / "run")
    assert r.code == 2
    assert r.err_lines[-1] == "Error: Invalid value for ARCH: give ARCH for a new run, or --resume RUN_DIR"


def test_train_unknown_architecture_is_a_usage_error(derain, tmp_path):
    r = derain("train", "nosuch", "--out", tmp_path / "run")
    assert r.code == 2 and len(r.err_lines) == 1
    assert r.err_lines[0].startswith("error: unknown architecture 'nosuch'; known: ")
    assert not (tmp_path / "run").exists()


def test_interrupted_training_says_how_to_resume(derain, tmp_path, monkeypatch):
    import derain_cli.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(derain_cli.train, "train", interrupted)
    run = tmp_path / "run"
    r = derain("train", "derainlite", "--out", run)
    assert (r.code, r.err_lines) == (130, [f"error: interrupted; continue with `derain train --resume {run}`"])


def test_training_stopped_early_exits_130_with_its_state(derain, tmp_path, monkeypatch):
    import derain_cli.train

    result = SimpleNamespace(run_dir=tmp_path / "run", finished=False, step=40, val_psnr=21.5, val_ssim=0.61234)
    monkeypatch.setattr(derain_cli.train, "train", lambda *a, **k: result)
    r = derain("train", "derainlite", "--out", tmp_path / "run")
    assert r.code == 130
    assert r.stdout == (f"{tmp_path / 'run'}: stopped (resumable) at step 40, "
                        "validation PSNR 21.50 dB SSIM 0.6123\n")


def test_export_usage_errors(derain, tmp_path):
    r = derain("export", tmp_path, "--out", tmp_path / "model.pt")
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'model.pt'}: the exported file must end in .safetensors"])
    r = derain("export", tmp_path)
    assert r.code == 2 and r.err_lines[-1] == "Error: Missing option '--out'."
