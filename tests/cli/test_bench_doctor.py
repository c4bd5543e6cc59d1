"""`derain bench` and `derain doctor` in process."""

from __future__ import annotations

import csv
import json
import re

import pytest

from tests.cli.conftest import M, write_png
from tests.conftest import shared_path


def test_bench_json_and_csv_report(derain, tmp_path):
    pair = shared_path("data", "paired", "rain200h-samples")
    out = tmp_path / "bench.json"
    r = derain("bench", pair / "input", "--gt", pair / "target", *M, "--json", out, "--csv", tmp_path / "b.csv")
    assert r.code == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["metric"] == "restormer"
    assert len(report["input"]["images"]) == 5
    assert abs(report["input"]["psnr"] - 13.85) < 0.05  # the issue quotes 13.85 dB for these inputs
    (model,) = report["models"]
    assert model["model"] == "testnet:random"
    for key in ("psnr", "ssim", "seconds_per_image", "megapixels_per_second", "peak_memory_mb"):
        assert model[key] is not None and model[key] > 0
    assert {i["name"] for i in model["images"]} == {i["name"] for i in report["input"]["images"]}
    rows = list(csv.DictReader((tmp_path / "b.csv").open()))
    assert len(rows) == 10  # 5 images x (input + one model)
    table_rows = [line for line in r.out_lines if line.startswith("│")]  # the header row is drawn with ┃
    assert [row.split("│")[1].strip() for row in table_rows] == ["input (rainy)", "testnet:random"]
    assert table_rows[0].split("│")[2].strip() == f"{report['input']['psnr']:.2f}"


def test_bench_input_only_and_sorted_pairing(derain, tmp_path):
    pair = shared_path("data", "paired", "heavyrain-samples")
    r = derain("bench", pair / "input", "--gt", pair / "target", "-m", "none", "--json", tmp_path / "r.json")
    assert r.code == 2 and r.err_lines[-1].endswith("(try --pair sorted)")  # names differ: nothing pairs by name
    assert not (tmp_path / "r.json").exists()
    r = derain("bench", pair / "input", "--gt", pair / "target", "-m", "none", "--pair", "sorted",
               "--json", tmp_path / "r.json")
    assert r.code == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["models"] == [] and len(report["input"]["images"]) == 4


@pytest.fixture
def pairs(tmp_path):
    for name in ("a.png", "b.png"):
        write_png(tmp_path / "in" / name)
        write_png(tmp_path / "gt" / name, seed=1)
    return tmp_path / "in", tmp_path / "gt"


def test_bench_usage_errors(derain, tmp_path, pairs):
    src, gt = pairs
    r = derain("bench", src, "--gt", gt, "-m", "nosuch")
    assert (r.code, r.err_lines) == (2, ["error: unknown model 'nosuch'; run `derain models list` to see all models"])
    r = derain("bench", src, "--gt", tmp_path / "nogt", *M)
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'nogt'}: not a folder (--gt)"])
    r = derain("bench", tmp_path / "noin", "--gt", gt, *M)
    assert (r.code, r.err_lines) == (2, [f"error: {tmp_path / 'noin'}: not a folder (IN_DIR)"])
    r = derain("bench", src, "--gt", gt, *M, "--pair", "random")
    assert r.code == 2 and r.err_lines[-1] == "Error: Invalid value for --pair: 'random' is not one of name, sorted"


def test_bench_unmatched_names_are_warned_about(derain, tmp_path, pairs):
    src, gt = pairs
    write_png(src / "only-input.png")
    r = derain("bench", src, "--gt", gt, *M, "-q")
    assert r.code == 0, r.stderr
    assert r.stdout == ""
    assert r.err_lines == []  # -q: warnings hidden too
    r = derain("bench", src, "--gt", gt, *M)
    warnings = [line for line in r.err_lines if line.startswith("warning: ")]
    assert warnings == [f"warning: {src / 'only-input.png'}: no ground truth with a matching name (not scored)"]


def test_bench_shows_progress_per_model_and_image(derain, pairs):
    """Not a terminal: one line per model and per image on stderr (a terminal gets a progress bar)."""
    src, gt = pairs
    r = derain("bench", src, "--gt", gt, "-m", "testnet", "-m", "testnet:random")  # one model, twice
    assert r.code == 0, r.stderr
    progress = [re.sub(r"\d+\.\d\d s", "T s", line) for line in r.err_lines]
    assert progress == [
        "bench: testnet:random: loading",
        "bench: testnet:random: 1/2 a.png (T s)",
        "bench: testnet:random: 2/2 b.png (T s)",
        "bench: testnet:random: loading",
        "bench: testnet:random: 1/2 a.png (T s)",
        "bench: testnet:random: 2/2 b.png (T s)",
    ]
    assert r.stdout.count("testnet:") == 2  # the table is unchanged, on stdout
    assert derain("bench", src, "--gt", gt, *M, "-q").stderr == ""


def doctor_lines(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.splitlines():
        key, _, value = line.partition("  ")
        rows[key.strip()] = value.strip()
    return rows


def test_doctor_reports_the_thread_count_it_sets_and_the_cache(derain, tmp_path, _isolated_cache):
    derain.env["DERAIN_THREADS"] = "2"
    r = derain("doctor")
    assert r.code == 0, r.stderr
    rows = doctor_lines(r.stdout)
    assert rows["CPU threads"] == "2 (set DERAIN_THREADS to change)" and r.torch_threads == 2
    assert rows["weights cache"] == str(_isolated_cache)
    assert rows["auto device"] in ("cpu", "cuda", "mps")
    assert rows["device cpu"].endswith(" cores")
