"""benchmarks/gpu_check.py: the one-shot GPU check, dry-run on the CPU, and its verdicts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


def _registered_architectures() -> list[str]:
    """What a user's `derain` has registered: asked in a fresh process, so that test plug-ins
    registered in this one (tests.tinynet) do not count."""
    env = {k: v for k, v in os.environ.items() if k != "DERAIN_PLUGINS"}
    code = "import json; from derain_cli import models; print(json.dumps(sorted(models.REGISTRY.architectures())))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
@pytest.mark.e2e
def test_cpu_dry_run_covers_every_section_and_architecture(shared, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DERAIN_PLUGINS"}
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "GPU_CHECK DONE sections_ok=6 failed=0" in proc.stdout
    data = json.loads((out / "gpu_check.json").read_text())
    sections = data["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    assert all(sections[name]["status"] == "ok" for name in gpu_check.SECTIONS if name != "tests"), sections
    assert sections["tests"] == {"status": "skipped", "reason": "--quick"}

    archs = sections["models"]["archs"]
    assert sorted(archs) == _registered_architectures()
    for arch, entry in archs.items():
        fp32, bf16 = entry["runs"]["fp32"], entry["runs"]["bf16"]
        assert fp32["finite"] and fp32["seconds"] > 0, arch
        assert bf16.get("psnr_vs_fp32") is not None, arch  # bf16 emulated by CPU autocast
        assert entry["runs"]["fp16"]["skipped"].startswith("not run on the CPU")
        assert set(entry["extremes"]["bf16"]) == {"black", "white"}
        assert entry["verdict"]["line"].startswith(f"{arch}: bf16 ")
    assert archs["prenet"]["weights"] == "real (prenet:rain100h)"  # served through DERAIN_MIRROR
    assert archs["derainlite"]["weights"].startswith("real (derainlite:")  # bundled

    cli = sections["cli"]
    assert cli["demo"]["compare_written"] and cli["batch"]["ok"] == cli["batch"]["files"] > 0
    assert cli["bench"]["fp32_vs_cpu"]["reference_file"]["verdict"].startswith("EQUAL")
    for key in ("builtin", "glgfn"):
        assert sections["userpath"][key]["finite"]
    assert all(v["finished"] for k, v in sections["oom"].items() if k.endswith(("_tile_auto", "_tile_64")))
    assert sections["throughput"]["bare"]["fps"] > 0 and sections["throughput"]["batch"]["ok"] == 3
    markdown = (out / "gpu_check.md").read_text()
    assert "| models | ok |" in markdown and "Half precision:" in markdown


# -- verdicts, without running anything -----------------------------------------------------------


def _entry(bf16: dict, fp16: dict, extremes: dict | None = None, registry: bool = True) -> dict:
    finite = {"finite": True, "out_mean": 0.5, "out_max": 1.0, "black_output": False}
    return {"status": "ok", "registry_half_precision": registry,
            "runs": {"fp32": {"finite": True}, "bf16": bf16, "fp16": fp16},
            "extremes": extremes or {p: {"black": dict(finite), "white": dict(finite)} for p in ("bf16", "fp16")}}


def _run(psnr, finite=True, black=False) -> dict:
    return {"finite": finite, "psnr_vs_fp32": psnr, "black_output": black, "seconds": 0.1}


def test_half_verdict_line_names_each_precision():
    v = gpu_check.half_verdict("glgfn", _entry(_run(48.1), _run(None, finite=False), registry=False))
    assert v["line"] == "glgfn: bf16 OK 48.1 dB | fp16 NaN -> not half-safe"
    assert v["conclusion"] == "not half-safe"
    v = gpu_check.half_verdict("prenet", _entry(_run(52.0), _run(61.3)))
    assert v["line"] == "prenet: bf16 OK 52.0 dB | fp16 OK 61.3 dB -> half-safe"


def test_half_verdict_needs_35_db_and_sane_extremes():
    assert gpu_check.half_verdict("a", _entry(_run(34.9), _run(50.0)))["bf16"] == "LOW 34.9 dB"
    extremes = {p: {"black": {"finite": True}, "white": {"finite": True, "black_output": True}}
                for p in ("bf16", "fp16")}
    v = gpu_check.half_verdict("a", _entry(_run(50.0), _run(50.0), extremes))
    assert v["fp16"] == "bad on white input" and v["conclusion"] == "not half-safe"
    extremes = {"bf16": {"black": {"finite": False}, "white": {"finite": True}},
                "fp16": {"black": {"finite": True}, "white": {"finite": True}}}
    assert gpu_check.half_verdict("a", _entry(_run(50.0), _run(50.0), extremes))["bf16"] == "bad on black input"


def test_half_verdict_flags_a_registry_that_disagrees_and_unverified_runs():
    v = gpu_check.half_verdict("mspfn", _entry(_run(60.0), _run(60.0), registry=False))
    assert v["line"].endswith("-> half-safe (the registry has half_precision=False: change it)")
    v = gpu_check.half_verdict("glgfn", _entry(_run(48.1), _run(None, finite=False), registry=True))
    assert v["line"].endswith("-> not half-safe (the registry has half_precision=True: change it)")
    v = gpu_check.half_verdict("x", _entry(_run(60.0), {"skipped": "budget"}))
    assert v["conclusion"] == "unverified" and v["fp16"] == "not run (budget)"
    assert "change it" not in v["line"]


def test_fp32_scores_are_compared_image_by_image_to_a_hundredth_of_a_db():
    def report(model, *psnrs):
        return {"models": [{"model": model, "images": [{"name": f"{i}.png", "psnr": p} for i, p in enumerate(psnrs)]}]}

    cmp = gpu_check._compare_bench(report("m:v", 27.004, 20.0), report("m:v", 27.0, 20.009))
    assert cmp["verdict"].startswith("EQUAL") and cmp["max_abs_diff_db"] == pytest.approx(0.009)
    cmp = gpu_check._compare_bench(report("m:v", 27.02, 20.0), report("m:v", 27.0, 20.0))
    assert cmp["verdict"].startswith("DIFFERS")
    assert gpu_check._compare_bench(report("m:v2", 1.0), report("m:v1", 1.0))["verdict"].startswith("not compared")


def test_budget_degrades_from_full_work_to_fp32_only():
    class Clock:
        now = 0.0

        def elapsed(self):
            return self.now

    clock = Clock()
    budget = gpu_check.Budget(clock, budget_s=100, reserve_s=40)  # models until 60 s, tight until 85 s
    assert budget.state() == "ok"
    clock.now = 61
    assert budget.state() == "tight"
    clock.now = 86
    assert budget.state() == "over"
