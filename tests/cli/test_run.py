"""`derain FILE...` (the `run` command) in process: outputs, --json, bad inputs, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from derain_cli import imaging
from derain_cli.device import choose_device
from tests.cli.conftest import M, write_png
from tests.conftest import shared_path

UNKNOWN_MODEL = "error: unknown model 'nosuch'; run `derain models list` to see all models"
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>derain-test</dc:creator>'
       b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# -- --json ----------------------------------------------------------------------------------------
def test_json_is_one_record_per_file_and_nothing_else(derain, tmp_path):
    a = write_png(tmp_path / "p0.png", (24, 20))
    b = write_png(tmp_path / "p1.png", (25, 20), seed=1)
    r = derain(a, b, *M, "--json")
    assert r.code == 0, r.stderr
    assert r.stderr == ""
    first, second = r.records()
    assert set(first) == {"input", "output", "status", "model", "width", "height", "seconds", "device"}
    auto = str(choose_device("auto"))  # what `--device auto` finds here: cpu, or cuda on a GPU machine
    assert first == {**first, "input": str(a), "output": str(tmp_path / "p0_derained.png"), "status": "ok",
                     "model": "testnet:random", "width": 24, "height": 20, "device": auto}
    assert second["width"] == 25 and second["output"] == str(tmp_path / "p1_derained.png")
    assert first["seconds"] >= 0
    assert Image.open(second["output"]).size == (25, 20)


def test_json_record_of_a_failed_file(derain, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    r = derain(bad, *M, "--json")
    assert r.code == 1
    (record,) = r.records()
    assert record["status"] == "failed" and record["error"].startswith(f"{bad}: ")
    assert r.err_lines == [f"error: {record['error']}"]


def test_json_with_gt_scores(derain, tmp_path):
    pair = shared_path("data", "paired", "rain100l-samples")
    r = derain(pair / "input" / "norain-1.png", *M, "--gt", pair / "target" / "norain-1.png",
               "-o", tmp_path / "o.png", "--json")
    assert r.code == 0, r.stderr
    (rec,) = r.records()
    assert 10 < rec["psnr_input"] < 50 and 0 < rec["ssim_input"] <= 1
    assert rec["psnr_output"] is not None and 0 < rec["ssim_output"] <= 1


def test_gt_scores_line(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--gt", src)
    assert r.code == 0, r.stderr
    assert r.out_lines[1].startswith("  PSNR inf -> ") and " dB, SSIM 1.0000 -> " in r.out_lines[1]


# -- usage errors (exit 2): nothing is written -------------------------------------------------------
def test_unknown_model_is_a_usage_error(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    for args in ((src, "-m", "nosuch"), ("-m", "nosuch", src)):
        r = derain(*args)
        assert (r.code, r.err_lines, r.stdout) == (2, [UNKNOWN_MODEL], "")
    r = derain(src, "-m", "testnet:nosuchvariant")
    assert r.code == 2 and r.err_lines == ["error: unknown variant 'nosuchvariant' of testnet; "
                                           "known variants: manual, random"]
    assert files_in(tmp_path) == ["a.png"]


def test_a_folder_given_as_file_points_to_batch(derain, tmp_path):
    folder = tmp_path / "rainy"
    write_png(folder / "a.png")
    good = write_png(tmp_path / "good.png")
    r = derain(good, folder, *M)
    assert r.code == 2
    assert r.err_lines == [f"error: {folder}: is a folder; use `derain batch {folder} --out OUT_DIR`"]
    assert not (tmp_path / "good_derained.png").exists()  # checked before anything runs


def test_bad_device_names_the_accepted_values(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    for device in ("gpu", "cuda:x", "tpu"):
        r = derain(src, *M, "--device", device)
        assert (r.code, r.err_lines) == (2, [f"error: bad device '{device}': expected auto|cpu|cuda|cuda:N|mps"])
    assert files_in(tmp_path) == ["a.png"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_cuda_device_is_an_error_not_a_fallback(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--device", "cuda:7")
    assert r.code == 2 and len(r.err_lines) == 1
    assert r.err_lines[0].startswith("error: device 'cuda:7' requested but CUDA is not available")
    assert not (tmp_path / "a_derained.png").exists()


@pytest.mark.parametrize("args,message", [
    (("--format", "gif"), "Invalid value for --format: 'gif' is not one of same, jpg, jpeg, png, webp, tiff, tif"),
    (("--compare", "both"), "Invalid value for --compare: 'both' is not one of none, side, split"),
    (("--metric", "matlab"), "Invalid value for --metric: 'matlab' is not one of restormer, rcdnet"),
    # Typer words these itself (the wording differs between its versions)
    (("--quality", "0"), "Invalid value for '--quality': "),
    (("--threads", "0"), "Invalid value for '--threads': "),
    (("--tile-overlap", "many"), "Invalid value for '--tile-overlap': "),
])
def test_bad_option_values(derain, tmp_path, args, message):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, *args)
    assert r.code == 2
    assert r.err_lines[0] == "Usage: derain run [OPTIONS] FILE..."
    assert r.err_lines[-1].startswith(f"Error: {message}")
    assert files_in(tmp_path) == ["a.png"]


@pytest.mark.parametrize("args,message", [
    (("--tile", "12"), "error: invalid tile size '12': use 'auto', 0 (whole image) or a whole number of pixels >= 64"),
    (("--tile-overlap", "-1"), "error: --tile-overlap must be >= 0"),
    (("--precision", "fp16"), "error: precision fp16 needs a GPU; on the CPU derain runs in fp32"),
])
def test_bad_values_checked_by_the_library(derain, tmp_path, args, message):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--device", "cpu", *args)
    assert (r.code, r.err_lines) == (2, [message])
    assert files_in(tmp_path) == ["a.png"]


def test_gt_needs_a_single_input(derain, tmp_path):
    a, b = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")
    r = derain(a, b, *M, "--gt", a)
    assert r.code == 2
    assert r.err_lines[-1] == "Error: Invalid value for --gt: --gt takes one ground-truth file, so give one input"


def test_output_file_with_several_inputs(derain, tmp_path):
    a, b = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")
    r = derain(a, b, *M, "-o", a)
    assert r.code == 2 and r.err_lines[-1].endswith(f"{a} is a file; with several inputs -o must be a folder")


def test_refuses_to_overwrite_the_input(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    before = src.read_bytes()
    r = derain(src, *M, "-o", src, "--overwrite")
    assert (r.code, r.err_lines) == (2, [f"error: {src}: refusing to write over the input file"])
    assert src.read_bytes() == before


# -- where outputs go ------------------------------------------------------------------------------
def test_existing_output_is_skipped_then_overwritten(derain, tmp_path):
    src = write_png(tmp_path / "a.png", (40, 30))
    dst = tmp_path / "b.png"
    dst.write_bytes(b"keep me")
    r = derain(src, *M, "-o", dst)
    assert r.code == 0
    assert r.err_lines == [f"{src}: skipped, {dst} exists (use --overwrite to replace it)"]
    assert dst.read_bytes() == b"keep me"
    r = derain(src, *M, "-o", dst, "--overwrite")
    assert r.code == 0 and Image.open(dst).size == (40, 30)


def test_output_folder_for_several_inputs(derain, tmp_path):
    a, b = write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png", seed=2)
    r = derain(a, b, *M, "-o", tmp_path / "clean", "--format", "jpg")
    assert r.code == 0, r.stderr
    assert files_in(tmp_path / "clean") == ["a.jpg", "b.jpg"]
    assert Image.open(tmp_path / "clean" / "a.jpg").format == "JPEG"


def test_compare_images(derain, tmp_path):
    src = write_png(tmp_path / "c.png", (60, 40))
    r = derain(src, *M, "--compare", "side", "--compare-dir", tmp_path / "cmp")
    assert r.code == 0, r.stderr
    assert r.out_lines[1] == f"  comparison: {tmp_path / 'cmp' / 'c_compare_side.jpg'}"
    assert Image.open(tmp_path / "cmp" / "c_compare_side.jpg").size[0] > 100


# -- bad inputs (exit 1): one line each, the rest goes on ----------------------------------------------
def test_bad_inputs_one_line_errors_and_the_rest_goes_on(derain, tmp_path):
    good = write_png(tmp_path / "good.png")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    missing = tmp_path / "missing.png"
    r = derain(empty, text, good, truncated, missing, *M)
    assert r.code == 1
    assert (tmp_path / "good_derained.png").exists()
    errors = [line for line in r.err_lines if line.startswith("error: ")]
    assert [line.split(": ")[1] for line in errors[:-1]] == [str(p) for p in (empty, text, truncated, missing)]
    assert errors[-1] == "error: 4 of 5 file(s) failed"
    assert f"error: {missing}: no such file" in errors
    assert len(r.err_lines) == 5 and "Traceback" not in r.stderr
    assert files_in(tmp_path) == sorted(["cut.jpg", "empty.jpg", "good.png", "good_derained.png", "notes.jpg"])


def test_verbose_shows_the_traceback(derain, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    r = derain(bad, *M)
    assert r.code == 1 and len(r.err_lines) == 1 and r.err_lines[0].startswith(f"error: {bad}: ")
    r = derain(bad, *M, "-v")
    assert r.code == 1 and r.err_lines[0].startswith(f"error: {bad}: ") and "Traceback" in r.stderr


def test_quiet_prints_only_errors(derain, tmp_path):
    good, bad = write_png(tmp_path / "good.png"), tmp_path / "bad.png"
    bad.write_bytes(b"")
    r = derain(good, bad, *M, "-q")
    assert r.code == 1 and r.stdout == ""
    assert r.err_lines == [f"error: {bad}: file is empty", "error: 1 of 2 file(s) failed"]


def test_interrupt_stops_with_130(derain, tmp_path, monkeypatch):
    from derain_cli.api import Derainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Derainer, "derain_file", interrupted)
    r = derain(write_png(tmp_path / "a.png"), *M)
    assert (r.code, r.err_lines) == (130, ["error: interrupted"])


# -- threads -----------------------------------------------------------------------------------------
def test_threads_option_and_environment_set_torchs_threads(derain, tmp_path):
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--device", "cpu", "--threads", "2", "-o", tmp_path / "o1.png")
    assert r.code == 0 and r.torch_threads == 2
    derain.env["DERAIN_THREADS"] = "3"
    r = derain(src, *M, "--device", "cpu", "-o", tmp_path / "o2.png")
    assert r.code == 0 and r.torch_threads == 3
    r = derain(src, *M, "--device", "cpu", "--threads", "1", "-o", tmp_path / "o3.png")  # the option wins
    assert r.code == 0 and r.torch_threads == 1


# -- what the output keeps -------------------------------------------------------------------------------
def photo_with_metadata(path: Path, orientation: int = 1, size=(96, 64)) -> bytes:
    """A JPEG with camera EXIF, GPS, an ICC profile, XMP and an orientation; returns the ICC bytes."""
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[..., 0] = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :]
    arr[:16, :16] = (255, 255, 0)  # marked top-left corner
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x010F] = "RainCam"  # Make
    exif[0x0110] = "Model 7"  # Model
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    gps[3], gps[4] = "E", (2.0, 21.0, 3.0)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(path, "JPEG", quality=95, exif=exif, icc_profile=icc, xmp=XMP)
    return icc


@pytest.mark.parametrize("orientation", [6, 8])
def test_metadata_round_trip_and_orientation(derain, tmp_path, orientation):
    src = tmp_path / "cam.jpg"
    icc = photo_with_metadata(src, orientation=orientation)
    r = derain(src, *M)
    assert r.code == 0, r.stderr
    out = Image.open(tmp_path / "cam_derained.jpg")
    assert out.size == (64, 96)  # turned upright
    exif = out.getexif()
    assert exif[0x010F] == "RainCam" and exif[0x0110] == "Model 7"
    assert exif.get(0x0112, 1) == 1
    assert exif[0x0131].startswith("derain ") and "(testnet:random)" in exif[0x0131]  # Software
    assert exif.get_ifd(0x8769)[0x9003] == "2024:05:06 07:08:09"
    gps = exif.get_ifd(0x8825)
    assert gps[1] == "N" and tuple(float(v) for v in gps[2]) == (48.0, 51.0, 24.0)
    assert out.info.get("icc_profile") == icc
    assert b"derain-test" in (imaging.read_image(tmp_path / "cam_derained.jpg").metadata.xmp or b"")
    # the yellow marked corner ends where the rotation puts it
    arr = np.asarray(out.convert("RGB")).astype(int)
    corner = arr[:8, -8:] if orientation == 6 else arr[-8:, :8]
    assert corner[..., 0].mean() > 150 and corner[..., 1].mean() > 150 and corner[..., 2].mean() < 100


def _png_bit_depth(path: Path) -> int:
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return data[24]


def test_sixteen_bit_png_stays_sixteen_bit(derain, tmp_path):
    rgb = np.random.default_rng(0).random((48, 40, 3)).astype(np.float32)
    like = imaging.DecodedImage(path=None, rgb=rgb, alpha=None, bit_depth=16, grey=False,
                                metadata=imaging.Metadata(exif=None, icc=None, xmp=None, format="PNG", dpi=None),
                                warnings=[])
    src = tmp_path / "deep.png"
    imaging.write_image(src, rgb, like=like)
    assert _png_bit_depth(src) == 16
    r = derain(src, *M)
    assert r.code == 0, r.stderr
    out = tmp_path / "deep_derained.png"
    assert _png_bit_depth(out) == 16
    decoded = imaging.read_image(out)
    assert decoded.bit_depth == 16 and decoded.rgb.shape == (48, 40, 3)


def test_alpha_and_greyscale_are_carried(derain, tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (30, 50, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(rgba[..., 0], "L").save(tmp_path / "grey.png")
    r = derain(tmp_path / "alpha.png", tmp_path / "grey.png", *M)
    assert r.code == 0, r.stderr
    a = Image.open(tmp_path / "alpha_derained.png")
    assert a.mode == "RGBA"
    assert np.array_equal(np.asarray(a)[..., 3], rgba[..., 3])
    g = Image.open(tmp_path / "grey_derained.png")
    assert g.mode == "L" and g.size == (50, 30)


def test_exported_json_is_valid_for_identical_images(derain, tmp_path):
    """Infinite PSNR (output scored against itself) is written as null, so the record stays JSON."""
    src = write_png(tmp_path / "a.png")
    r = derain(src, *M, "--gt", src, "--json")
    (rec,) = r.records()
    assert rec["psnr_input"] is None and "Infinity" not in r.stdout
    json.loads(r.stdout)
