"""Files and folders: where outputs go, what is skipped, and scores of exactly the pixels written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from derain_cli.bench import benchmark
from derain_cli.engine import Engine
from derain_cli.errors import UsageError
from derain_cli.metrics import score
from derain_cli.pipeline import derain_file, derain_folder, iter_images, output_path, plan_folder


@pytest.fixture
def engine(testnet):
    return Engine(testnet, device="cpu", threads=1)


@pytest.mark.parametrize(
    ("src", "options", "expected"),
    [
        ("a/photo.jpg", {"suffix": "_derained"}, "a/photo_derained.jpg"),
        ("a/photo.JPG", {"suffix": "_derained", "fmt": "png"}, "a/photo_derained.png"),
        ("photo.png", {"suffix": "", "out_dir": "out", "fmt": "tiff"}, "out/photo.tif"),
        ("a/phone.heic", {"suffix": "_x", "fmt": "same"}, "a/phone_x.jpg"),
        ("a/b.c/shot.webp", {"suffix": "-clean", "out_dir": "x/y"}, "x/y/shot-clean.webp"),
    ],
)
def test_output_path(src, options, expected):
    assert output_path(Path(src), **options) == Path(expected)


def test_output_path_refuses_an_unknown_format():
    with pytest.raises(UsageError, match="unknown image format 'gif'"):
        output_path("photo.jpg", suffix="", fmt="gif")


def test_refuses_to_write_over_the_input(engine, tmp_path):
    src = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8)).save(src)
    with pytest.raises(UsageError, match="refusing to write over the input"):
        derain_file(engine, src, src, overwrite=True)
    with pytest.raises(UsageError, match="refusing to write over the input"):
        derain_file(engine, src, overwrite=True, suffix="")


def test_default_output_is_beside_the_input(engine, tmp_path):
    src = tmp_path / "x.png"
    Image.new("RGB", (16, 12), (90, 100, 110)).save(src)
    result = derain_file(engine, src, format="jpg")
    assert result.status == "ok" and Path(result.output) == tmp_path / "x_derained.jpg"
    with Image.open(result.output) as img:
        assert (img.format, img.size) == ("JPEG", (16, 12))


def test_plan_folder_mirrors_the_tree(tmp_path):
    for rel in ("a.png", "sub/b.jpg", "sub/deeper/c.webp", "out/old.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / rel)
    pairs = plan_folder(tmp_path, tmp_path / "out", format="png", suffix="_d")
    assert [(s.relative_to(tmp_path).as_posix(), d.relative_to(tmp_path).as_posix()) for s, d in pairs] == [
        ("a.png", "out/a_d.png"),
        ("sub/b.jpg", "out/sub/b_d.png"),
        ("sub/deeper/c.webp", "out/sub/deeper/c_d.png"),
    ]  # out/old.png, inside the output folder, is never an input
    with pytest.raises(UsageError, match="output folder is the input folder"):
        plan_folder(tmp_path, tmp_path)


def test_folder_skips_hidden_and_own_outputs_and_resumes(engine, tmp_path):
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    (tmp_path / "readme.txt").write_text("x")
    assert [p.name for p in iter_images(tmp_path)] == ["b.png"]
    report = derain_folder(engine, tmp_path, tmp_path / "out", recursive=True)
    assert report.counts == {"ok": 1, "skipped": 0, "failed": 0}
    again = derain_folder(engine, tmp_path, tmp_path / "out", recursive=True)
    assert again.counts == {"ok": 0, "skipped": 1, "failed": 0}


def _pair(folder: Path, name: str, seed: int) -> tuple[Path, Path]:
    """A clean picture and a rainy version of it (bright streaks), as 8-bit PNG files."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64]
    clean = np.stack([x * 4, y * 5, (x + y) * 2], axis=2).astype(np.float64) + rng.normal(0, 6, (48, 64, 3))
    rainy = clean.copy()
    rainy[:, rng.integers(0, 64, 10)] += 90
    for kind, pixels in (("input", rainy), ("target", clean)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / kind / name)
    return folder / "input" / name, folder / "target" / name


def _read8(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


# float32 values whose x * 255 lies just below a half step in float64 but rounds up to it in
# float32: rounding them in float64 (the metrics' old rule) scores other pixels than the file holds.
EDGE_CASES = np.array([0.6098039, 0.53137255, 0.76666665, 0.73137254, 0.6843137], dtype=np.float32)


def _planted_output(self, rgb, **_options):
    """A stand-in for the model whose output is full of rounding edge cases."""
    out = rgb * np.float32(0.9) + np.float32(0.05)
    out.reshape(-1)[::7] = np.resize(EDGE_CASES, out.reshape(-1)[::7].shape)
    return out


@pytest.mark.parametrize("planted", [False, True], ids=["model", "edge-cases"])
def test_gt_scores_are_those_of_the_written_file(engine, tmp_path, monkeypatch, planted):
    if planted:
        monkeypatch.setattr(Engine, "derain_rgb", _planted_output)
    src, gt = _pair(tmp_path, "p.png", seed=0)
    result = derain_file(engine, src, tmp_path / "out.png", gt=gt)
    assert result.status == "ok"
    psnr, ssim = score(_read8(tmp_path / "out.png"), _read8(gt))
    assert (result.psnr_output, result.ssim_output) == (round(psnr, 4), round(ssim, 4))
    assert (result.psnr_input, result.ssim_input) == tuple(round(v, 4) for v in score(_read8(src), _read8(gt)))


@pytest.mark.parametrize("planted", [False, True], ids=["model", "edge-cases"])
def test_bench_scores_are_those_of_the_saved_outputs(testnet, tmp_path, monkeypatch, planted):
    if planted:
        monkeypatch.setattr(Engine, "derain_rgb", _planted_output)
    for i in range(2):
        _pair(tmp_path / "data", f"p{i}.png", seed=i)
    report = benchmark(tmp_path / "data" / "input", tmp_path / "data" / "target", [testnet], device="cpu",
                       save_dir=tmp_path / "saved")
    (model,) = report["models"]
    for item in model["images"]:
        saved = tmp_path / "saved" / "testnet_random" / item["name"]
        assert (item["psnr"], item["ssim"]) == score(_read8(saved), _read8(tmp_path / "data" / "target" / item["name"]))
    assert model["peak_memory_mb"] > 0
