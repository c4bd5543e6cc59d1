"""One run that checks derain on a GPU: environment, CLI, every model in every precision, the user
path at 4K, the out-of-memory fallback, folder throughput and the test suite.

It is written for a single, time-limited run on a rented GPU and for a dry run on the CPU
(``--device cpu --quick``, tiny sizes, half precision emulated by CPU autocast). Every section is
timed and guarded: a failure is recorded and the run goes on. Results are written after every
section (and after every model) to ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``, so a run that is
killed still leaves what it measured. Progress goes to stdout, one flushed line per step; the run
ends with one line per model (``arch: bf16 OK 48.1 dB | fp16 NaN -> not half-safe``) and
``GPU_CHECK DONE sections_ok=N failed=M``.

    python benchmarks/gpu_check.py --prepare .gpu                        # copy the data it needs
    python benchmarks/gpu_check.py --device cuda --data .gpu/data --weights .gpu/weights --out $OUT
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gc    # the CPU dry run (~1 min)

The GPU run takes about 150 s without its tests section (``--budget-s``: past it the per-model work
shrinks) plus the test suite (``--tests-timeout``, default 420 s).

Inputs: ``--data DIR`` holds ``rain200h-samples/{input,target}`` and ``real/`` (default: the
paired set and real photos of ../shared/data); ``--weights DIR`` holds peer weights under their
registry file names, or is ../shared/weights itself (its manifest.json maps files to models). They
reach the `derain` command through DERAIN_MIRROR; nothing is downloaded.

Only the public interfaces are used: the `derain` command (as ``python -m derain_cli``),
``Derainer``, ``models`` and the models' Contract. Where a bare forward pass is needed the one
function ``contract_runner`` reaches below them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from derain_cli import settings  # noqa: E402  (imports no torch)

SECTIONS = ("env", "cli", "models", "userpath", "oom", "throughput", "tests")
PRECISIONS = ("fp32", "bf16", "fp16")
HALF = ("bf16", "fp16")
HALF_SAFE_PSNR_DB = 35.0
# The dry run emulates bf16 with CPU autocast; fp16 has no fast CPU kernels (20-50x slower than fp32
# there), so on the CPU its runs are recorded as not run. On a GPU both go the same code path.
CPU_FP16_SKIP = "not run on the CPU (fp16 CPU kernels are 20-50x slower than fp32; the GPU run covers it)"
PEER = "prenet:rain100h"  # the downloaded peer for `derain batch` (681,694 bytes)
# The slowest architectures go last, so that a run short of time loses their extra work first.
SLOW_ARCHS = ("mspfn", "dcsfn", "hct-ffn", "drsformer")
USERPATH_MODELS = ("builtin", "glgfn")  # "builtin": the default model; glgfn with random weights
OOM_ARCHS = ("drsformer", "glgfn")
OOM_CAP_BYTES = 3 * 1024**3
DEFAULT_CPU_REFERENCE = REPO / "benchmarks" / "gpu_check_cpu_reference.json"
SHARED = Path(os.environ.get("DERAIN_SHARED", REPO.parent / "shared"))
DERAIN_ENV = ("DERAIN_HOME", "DERAIN_MIRROR", "DERAIN_OFFLINE")  # what this script sets for derain


class Sizes:
    """Every size and count of the run: the GPU run, or the CPU dry run (``--quick``)."""

    def __init__(self, quick: bool):
        self.model_side = 32 if quick else 1024
        self.min_model_side = 32 if quick else 128  # smallest side tried after out-of-memory
        self.extreme_side = 32 if quick else 256
        self.repeats = 1 if quick else 3
        self.warmup = not quick
        self.frame_4k = (144, 256) if quick else (2160, 3840)  # (h, w)
        self.oom_side = 72 if quick else 2048
        self.oom_tile = 64 if quick else 2048
        self.frame_hd = (108, 192) if quick else (1080, 1920)
        self.bare_batch = 2 if quick else 8
        self.bare_repeats = 1 if quick else 3
        self.stream_frames = 3 if quick else 16
        self.bench_pairs = 1 if quick else 5
        self.real_photos = 2 if quick else 5
        self.real_crop = (120, 160) if quick else None  # (h, w) crop of each real photo
        self.demo_side = 320 if quick else None  # the demo photo scaled to this width
        self.warmup_side = 64 if quick else 256  # the untimed first call of the user path
        self.cli_timeout = 300 if quick else 240
        self.reserve_s = 15 if quick else 45  # time kept for the sections after `models`


# -- the one place below the public API -----------------------------------------------------------


def contract_runner(module, contract, dtype):
    """A callable running ``module`` under its input contract: RGB [0, 1] N x 3 x H x W on the
    module's device -> the same, unclamped (derain_cli.models.LoadedModel)."""
    from derain_cli.models import LoadedModel

    runner = LoadedModel(module, contract, dtype=dtype)
    return _StillClip(runner) if getattr(contract, "is_video", False) else runner


class _StillClip:
    """A video model (``Contract.frames`` set: its forward takes N x 3 x T x H x W) checked like an
    image model: the image goes in as a still clip of three identical frames and the middle output
    frame comes back. Sides here are even, as the video models' size multiple (2) asks."""

    def __init__(self, runner):
        self.runner, self.contract = runner, runner.contract

    def __call__(self, x):
        clip = x.unsqueeze(2).expand(-1, -1, 3, -1, -1).contiguous()
        return self.runner(clip)[:, :, 1]


def derainer_forward(derainer):
    """The bare network call of a loaded ``Derainer`` (device tensors in and out, no tiling)."""
    return derainer.load()


# -- recording ----------------------------------------------------------------------------------


class Run:
    """The results of this run, written out after every change that matters."""

    def __init__(self, out: Path, args: argparse.Namespace):
        self.out = out
        self.start = time.perf_counter()
        self.data: dict = {
            "script": "benchmarks/gpu_check.py",
            "started": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "argv": sys.argv[1:],
            "device": args.device,
            "quick": args.quick,
            "budget_s": args.budget_s,
            "sections": {},
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():7.1f}s] {text}", flush=True)

    def section(self, name: str) -> dict:
        return self.data["sections"].setdefault(name, {"status": "running"})

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.data["elapsed_s"] = round(self.elapsed(), 2)
        _write_atomic(self.out / "gpu_check.json", json.dumps(_json_safe(self.data), indent=2))
        _write_atomic(self.out / "gpu_check.md", markdown(self.data))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # "inf" / "nan": JSON has no such numbers
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _error_text(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:400]


# -- budget ---------------------------------------------------------------------------------------


class Budget:
    """How much per-model work still fits: ``ok`` (all), ``tight`` (one timed run per precision, no
    extreme inputs) or ``over`` (fp32 only). The models section may run until ``budget_s`` minus the
    time kept for the sections after it; ``tight`` lasts a further quarter of the budget."""

    def __init__(self, run: Run, budget_s: float, reserve_s: float):
        self.run = run
        self.deadline = max(0.0, budget_s - reserve_s)
        self.grace = 0.25 * budget_s

    def state(self) -> str:
        if self.run.elapsed() <= self.deadline:
            return "ok"
        return "tight" if self.run.elapsed() <= self.deadline + self.grace else "over"


# -- helpers ----------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def _sync(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device) -> float | None:
    """Peak CUDA memory since the last reset; None on the CPU (a process-wide RSS peak after the
    other sections would say nothing about this step)."""
    torch = _torch()
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 1024**3, 3)
    return None


def _free_cache(device) -> None:
    gc.collect()
    torch = _torch()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _psnr(a, b) -> float | None:
    """PSNR in dB of two tensors of [0, 1] images after clamping (inf when identical)."""
    torch = _torch()
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        return None
    mse = ((a.double().clamp(0, 1) - b.double().clamp(0, 1)) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def _image_like(h: int, w: int, data: Path | None, shift: int = 0):
    """float32 H x W x 3 in [0, 1]: a rain200h input scaled to size (or a smooth pattern without data)."""
    import numpy as np
    from PIL import Image

    source = None
    if data is not None:
        folder = data / "rain200h-samples" / "input"
        found = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if found:
            source = Image.open(found[0]).convert("RGB")
    if source is None:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        rgb = np.stack([0.5 + 0.4 * np.sin(xs / 37 + c) * np.cos(ys / 23 - c) for c in range(3)], axis=2)
    else:
        rgb = np.asarray(source.resize((w, h), Image.BICUBIC), dtype=np.float32) / 255.0
    if shift:
        rgb = np.roll(rgb, shift, axis=1)
    return np.ascontiguousarray(rgb.clip(0, 1), dtype=np.float32)


def _to_tensor(rgb, device, batch: int = 1):
    torch = _torch()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device)
    return x.expand(batch, -1, -1, -1).contiguous() if batch > 1 else x


def _time_call(fn: Callable, device, repeats: int, warmup: bool) -> tuple[list[float], object]:
    """Seconds of ``repeats`` calls (synchronised) after an optional untimed one; and the last result."""
    result = None
    if warmup:
        result = fn()
        _sync(device)
    times = []
    for _ in range(max(1, repeats)):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, result


def _autocast_context(device, dtype):
    """The product's runner autocasts on CUDA and MPS itself; on the CPU the dry run stands in for
    a GPU's half precision with CPU autocast (as the model tests do), so the path is exercised."""
    torch = _torch()
    if device.type == "cpu" and dtype != torch.float32:
        return torch.autocast("cpu", dtype=dtype)
    return contextlib.nullcontext()


def random_weights_file(arch: str, folder: Path) -> Path:
    """A .safetensors file of ``arch`` with seeded random weights, in the format `derain export`
    writes (architecture and configuration in the metadata), so ``Derainer(path)`` loads it."""
    path = folder / f"{arch}-random.safetensors"
    if path.is_file():
        return path
    torch = _torch()
    from safetensors.torch import save_file

    from derain_cli import models

    torch.manual_seed(0)
    net = models.build(arch)
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "derain-train-export/1", "architecture": arch,
                                          "arch_config": "{}", "weights": "random (gpu_check)"})
    return path


# -- inputs ---------------------------------------------------------------------------------------


def _registry_default(arch: str):
    """The default model of ``arch``, or None where it has no weights registered (PLNLIN)."""
    from derain_cli import models
    from derain_cli.errors import DerainError

    try:
        return models.resolve(arch)
    except DerainError:
        return None


def needed_weights() -> list:
    """The models whose weight files the run uses when present: every architecture's default
    variant that is not bundled, and the batch peer."""
    from derain_cli import models

    wanted = []
    for arch in models.REGISTRY.architectures():
        m = _registry_default(arch)
        if m is not None and m.source.kind in ("url", "manual"):
            wanted.append(m)
    peer = models.resolve(PEER)
    if peer.name not in {m.name for m in wanted}:
        wanted.append(peer)
    return wanted


def prepare_mirror(weights: Path | None, work: Path) -> Path | None:
    """A folder to serve as DERAIN_MIRROR: ``weights`` itself, or (for ../shared/weights, which has a
    manifest.json) a folder of links named by registry file name, matched by sha256."""
    if weights is None or not weights.is_dir():
        return None
    manifest = weights / "manifest.json"
    if not manifest.is_file():
        return weights
    by_sha = {item["sha256"]: weights / item["file"] for item in json.loads(manifest.read_text())}
    mirror = work / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    for m in needed_weights():
        src = by_sha.get(m.source.sha256 or "")
        dst = mirror / m.source.filename
        if src is not None and src.is_file() and not dst.exists():
            dst.symlink_to(src.resolve())
    return mirror


def data_dirs(data: Path | None) -> tuple[Path | None, Path | None]:
    """(rain200h-samples folder, real photos folder), each None when absent."""
    if data is not None:
        paired, real = data / "rain200h-samples", data / "real"
    else:
        paired, real = SHARED / "data" / "paired" / "rain200h-samples", SHARED / "data" / "real"
    return (paired if (paired / "input").is_dir() else None), (real if real.is_dir() else None)


def real_photos(real: Path, count: int) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    return sorted(p for p in real.rglob("*") if p.suffix.lower() in exts and p.is_file())[:count]


# -- the derain command ---------------------------------------------------------------------------


class Cli:
    """Runs ``python -m derain_cli`` with this run's cache and mirror, never touching the network."""

    def __init__(self, run: Run, env: dict, timeout: float):
        self.run, self.env, self.timeout = run, env, timeout

    def __call__(self, *args, timeout: float | None = None, extra_env: dict | None = None) -> dict:
        cmd = [sys.executable, "-m", "derain_cli", *map(str, args)]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**self.env, **(extra_env or {})}, cwd=REPO,
                                  stdin=subprocess.DEVNULL, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired as exc:
            return {"cmd": _show(cmd), "rc": None, "error": f"timed out after {exc.timeout} s",
                    "wall_s": round(time.perf_counter() - start, 2)}
        record = {"cmd": _show(cmd), "rc": proc.returncode, "wall_s": round(time.perf_counter() - start, 2)}
        if proc.returncode != 0:
            record["stderr_tail"] = proc.stderr.strip()[-1500:]
        record["stdout"] = proc.stdout
        return record


def _show(cmd: list[str]) -> str:
    return " ".join(cmd[1:]).replace(str(REPO) + "/", "")


def _json_lines(text: str) -> list[dict]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                out.append(json.loads(line))
    return out


# -- sections ---------------------------------------------------------------------------------------


def section_env(ctx: Context, rec: dict) -> None:
    torch = _torch()
    import importlib.util

    r = ctx.cli("doctor", timeout=120)
    rec["doctor_rc"] = r["rc"]
    rec["doctor"] = r.get("stdout", "").strip().splitlines()
    ctx.run.say(f"env: derain doctor rc={r['rc']}")
    for line in rec["doctor"]:
        ctx.run.say(f"  {line}")
    rec["python"] = platform.python_version()
    rec["torch"] = torch.__version__
    rec["torch_cuda"] = torch.version.cuda
    rec["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    rec["cuda_available"] = torch.cuda.is_available()
    rec["cpu_cores"] = os.cpu_count()
    rec["torch_threads"] = torch.get_num_threads()
    # On Ampere and later, "fp32" convolutions run in TF32 unless these are False: it decides how
    # close GPU fp32 comes to CPU fp32.
    rec["tf32"] = {"cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                   "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                   "float32_matmul_precision": torch.get_float32_matmul_precision()}
    # without it (older torch) derain cannot see a per-process memory cap when it picks a tile
    rec["torch_has_get_per_process_memory_fraction"] = hasattr(torch.cuda, "get_per_process_memory_fraction")
    rec["modules"] = {name: importlib.util.find_spec(name) is not None
                      for name in ("platformdirs", "exifread", "pytest", "xdist", "pytest_httpserver")}
    if ctx.device.type == "cuda":
        p = torch.cuda.get_device_properties(ctx.device)
        rec["gpu"] = {"name": p.name, "memory_gb": round(p.total_memory / 1024**3, 1),
                      "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                      "bf16_supported": torch.cuda.is_bf16_supported()}
        free, _total = torch.cuda.mem_get_info(ctx.device)
        rec["gpu"]["free_gb_at_start"] = round(free / 1024**3, 1)
        ctx.run.say(f"env: {p.name}, {rec['gpu']['memory_gb']} GB, compute {p.major}.{p.minor}, "
                    f"torch {torch.__version__} CUDA {torch.version.cuda} cuDNN {rec['cudnn']}")
        smi = shutil.which("nvidia-smi")
        if smi:
            out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
            rec["nvidia_smi"] = out.stdout.strip()
    else:
        ctx.run.say(f"env: {ctx.device}, torch {torch.__version__}, {os.cpu_count()} cores")
    ctx.run.say(f"env: modules {rec['modules']}; tf32 {rec['tf32']}")
    if r["rc"] != 0:
        raise RuntimeError(f"derain doctor failed: {r.get('stderr_tail', '')[-300:]}")


def section_cli(ctx: Context, rec: dict) -> None:
    """The command line end to end: the README demo, `derain bench` (auto and fp32, fp32 against the
    CPU) and `derain batch` with a downloaded peer. Each step is guarded on its own."""
    failures: list[str] = []
    for step in (_cli_demo, _cli_bench, _cli_batch):
        try:
            step(ctx, rec, failures)
        except Exception as exc:  # noqa: BLE001 - the next step still runs
            rec.setdefault("step_errors", {})[step.__name__] = _error_text(exc)
            failures.append(f"{step.__name__} ({_error_text(exc)})")
            ctx.run.say(f"cli: {step.__name__} FAILED {_error_text(exc)}")
    if failures:
        raise RuntimeError("failed: " + ", ".join(failures))


def _cli_demo(ctx: Context, rec: dict, failures: list[str]) -> None:
    dev = str(ctx.device)
    # 1. the README demo: the bundled photo, the built-in model, a side-by-side comparison
    demo = REPO / "examples" / "rainy-garden.jpg"
    if ctx.sizes.demo_side:
        from PIL import Image

        small = Image.open(demo)
        small.thumbnail((ctx.sizes.demo_side, ctx.sizes.demo_side))
        demo = ctx.work / "rainy-garden-small.jpg"
        small.save(demo, quality=95)
    out = ctx.work / "demo"
    r = ctx.cli(demo, "-o", f"{out}/", "--compare", "side", "--json", "--device", dev, "--overwrite")
    records = _json_lines(r.get("stdout", ""))
    rec["demo"] = {k: v for k, v in r.items() if k != "stdout"}
    if records:
        item = records[0]
        rec["demo"].update({k: item.get(k) for k in ("status", "model", "seconds", "tile", "width", "height")})
        rec["demo"]["compare_written"] = bool(item.get("compare")) and Path(item["compare"]).is_file()
    ok = r["rc"] == 0 and rec["demo"].get("compare_written")
    ctx.run.say(f"cli: demo rc={r['rc']} {rec['demo'].get('model')} {rec['demo'].get('seconds')} s "
                f"(wall {r['wall_s']} s) compare={'yes' if rec['demo'].get('compare_written') else 'NO'}")
    if not ok:
        failures.append("demo")



def _cli_bench(ctx: Context, rec: dict, failures: list[str]) -> None:
    dev = str(ctx.device)
    # 2. derain bench on rain200h-samples: auto and fp32 on the device, fp32 on the CPU as reference
    if ctx.paired is None:
        rec["bench"] = {"skipped": "no rain200h-samples in --data"}
        failures.append("bench (no data)")
    else:
        subset = _bench_subset(ctx)
        rec["bench"] = {"pairs": len(list((subset / "input").iterdir()))}
        runs = [("auto", dev), ("fp32", dev)]
        if ctx.device.type != "cpu":
            runs.append(("fp32", "cpu"))
        reports = {}
        for precision, where in runs:
            key = f"{where.split(':')[0]}_{precision}"
            report_file = ctx.work / f"bench_{key}.json"
            r = ctx.cli("bench", subset / "input", "--gt", subset / "target", "--json", report_file, "-q",
                        "--device", where, "--precision", precision)
            entry = {k: v for k, v in r.items() if k != "stdout"}
            if r["rc"] == 0 and report_file.is_file():
                report = json.loads(report_file.read_text())
                reports[key] = report
                model = report["models"][0]
                entry.update({"model": model["model"], "psnr": model["psnr"], "ssim": model["ssim"],
                              "seconds_per_image": model["seconds_per_image"],
                              "megapixels_per_second": model["megapixels_per_second"],
                              "peak_memory_mb": model["peak_memory_mb"],
                              "images": {i["name"]: i["psnr"] for i in model["images"]}})
            else:
                failures.append(f"bench {key}")
            rec["bench"][key] = entry
            ctx.run.say(f"cli: bench {key} rc={r['rc']} PSNR {_f(entry.get('psnr'), 3)} dB, "
                        f"{_f(entry.get('seconds_per_image'), 3)} s/image (wall {r['wall_s']} s)")
        fp32 = reports.get(f"{ctx.device.type}_fp32")
        if fp32 is not None:
            rec["bench"]["fp32_vs_cpu"] = {}
            if "cpu_fp32" in reports and ctx.device.type != "cpu":
                rec["bench"]["fp32_vs_cpu"]["this_run"] = _compare_bench(fp32, reports["cpu_fp32"])
            reference = _read_reference(ctx.cpu_reference)
            if reference is not None:
                rec["bench"]["fp32_vs_cpu"]["reference_file"] = {
                    "file": str(ctx.cpu_reference), **_compare_bench(fp32, reference)}
            if rec["bench"]["fp32_vs_cpu"].get("this_run", {}).get("verdict", "").startswith("DIFFERS"):
                # Is it TF32? cuDNN runs "fp32" convolutions in TF32 on Ampere and later unless told not
                # to; NVIDIA_TF32_OVERRIDE=0 switches that off for the whole process.
                report_file = ctx.work / "bench_cuda_fp32_no_tf32.json"
                r = ctx.cli("bench", subset / "input", "--gt", subset / "target", "--json", report_file, "-q",
                            "--device", dev, "--precision", "fp32", extra_env={"NVIDIA_TF32_OVERRIDE": "0"})
                if r["rc"] == 0 and report_file.is_file():
                    rec["bench"]["fp32_vs_cpu"]["this_run_without_tf32"] = _compare_bench(
                        json.loads(report_file.read_text()), reports["cpu_fp32"])
                else:
                    rec["bench"]["fp32_vs_cpu"]["this_run_without_tf32"] = {
                        "verdict": f"bench failed: {r.get('stderr_tail') or r.get('error')}"}
            for name, cmp in rec["bench"]["fp32_vs_cpu"].items():
                ctx.run.say(f"cli: bench fp32 {ctx.device.type} vs CPU ({name}): {cmp.get('verdict')}")
                if cmp.get("verdict", "").startswith("DIFFERS") and name != "this_run_without_tf32":
                    failures.append(f"bench fp32 vs cpu ({name})")



def _cli_batch(ctx: Context, rec: dict, failures: list[str]) -> None:
    dev = str(ctx.device)
    # 3. derain batch over real photos with a downloaded peer (from the mirror, offline)
    if ctx.real is None:
        rec["batch"] = {"skipped": "no real/ photos in --data"}
        failures.append("batch (no data)")
    else:
        folder = _real_subset(ctx)
        out = ctx.work / "batch_out"
        r = ctx.cli("batch", folder, "--out", out, "-m", PEER, "--json", "--device", dev, "--overwrite")
        records = _json_lines(r.get("stdout", ""))
        entry = {k: v for k, v in r.items() if k != "stdout"}
        entry.update({"model": PEER, "mirror": str(ctx.mirror) if ctx.mirror else None,
                      "files": len(records), "ok": sum(x.get("status") == "ok" for x in records),
                      "model_seconds": round(sum(x.get("seconds") or 0 for x in records), 3),
                      "sizes": [f"{x.get('width')}x{x.get('height')}" for x in records]})
        rec["batch"] = entry
        ctx.run.say(f"cli: batch {PEER} rc={r['rc']} {entry['ok']}/{entry['files']} ok, "
                    f"model time {entry['model_seconds']} s (wall {r['wall_s']} s)")
        if r["rc"] != 0 or entry["ok"] == 0:
            failures.append("batch")


def _bench_subset(ctx: Context) -> Path:
    subset = ctx.work / "bench_pairs"
    names = sorted(p.name for p in (ctx.paired / "input").iterdir())[: ctx.sizes.bench_pairs]
    for sub in ("input", "target"):
        (subset / sub).mkdir(parents=True, exist_ok=True)
        for name in names:
            dst = subset / sub / name
            if not dst.exists():
                shutil.copy(ctx.paired / sub / name, dst)
    return subset


def _real_subset(ctx: Context) -> Path:
    from PIL import Image

    folder = ctx.work / "real_in"
    folder.mkdir(parents=True, exist_ok=True)
    for src in real_photos(ctx.real, ctx.sizes.real_photos):
        name = "_".join(src.relative_to(ctx.real).parts)
        dst = folder / name
        if dst.exists():
            continue
        if ctx.sizes.real_crop is None:
            shutil.copy(src, dst)
        else:
            h, w = ctx.sizes.real_crop
            Image.open(src).convert("RGB").crop((0, 0, w, h)).save(dst.with_suffix(".png"))
    return folder


def _read_reference(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def _compare_bench(report: dict, reference: dict) -> dict:
    """Per-image PSNR of the same model in two `derain bench` reports; equal means within 0.01 dB."""
    ours, theirs = report["models"][0], reference["models"][0]
    if ours["model"] != theirs["model"]:
        return {"verdict": f"not compared: the reference is {theirs['model']}, this run {ours['model']}"}
    ref = {i["name"]: i["psnr"] for i in theirs["images"]}
    diffs = {i["name"]: round(abs(i["psnr"] - ref[i["name"]]), 4) for i in ours["images"] if i["name"] in ref}
    if not diffs:
        return {"verdict": "not compared: no image in common"}
    worst = max(diffs.values())
    verdict = "EQUAL" if worst <= 0.01 else "DIFFERS"
    return {"verdict": f"{verdict} (max |dPSNR| {worst:.4f} dB over {len(diffs)} image(s))",
            "max_abs_diff_db": worst, "per_image_diff_db": diffs}


def section_models(ctx: Context, rec: dict) -> None:
    """Every registered architecture at model_side^2 in fp32, bf16 and fp16, and on extreme inputs."""
    from derain_cli import models

    archs = sorted(models.REGISTRY.architectures())
    archs = [a for a in archs if a not in SLOW_ARCHS] + [a for a in SLOW_ARCHS if a in archs]
    rec["size"] = ctx.sizes.model_side
    rec["archs"] = {}
    failed = []
    for arch in archs:
        entry = rec["archs"][arch] = {"status": "running"}
        try:
            _check_model(ctx, arch, entry)
            entry["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            entry["status"] = "failed"
            entry["error"] = _error_text(exc)
            entry["traceback"] = traceback.format_exc()[-2000:]
            failed.append(arch)
            ctx.run.say(f"models: {arch} FAILED {entry['error']}")
        entry["verdict"] = half_verdict(arch, entry)
        ctx.run.say(f"models: {entry['verdict']['line']}")
        _free_cache(ctx.device)
        ctx.run.save()
    if failed:
        raise RuntimeError(f"{len(failed)} model(s) failed: {', '.join(failed)}")


def _check_model(ctx: Context, arch: str, entry: dict) -> None:
    torch = _torch()
    from derain_cli import models

    architecture = models.REGISTRY.architecture(arch)
    default = _registry_default(arch)
    module = None
    if default is not None and (default.source.kind == "bundled" or _on_mirror(ctx, default)):
        try:
            module = models.load(default.name, device=str(ctx.device))
            entry["weights"] = f"real ({default.name})"
        except Exception as exc:  # noqa: BLE001 - fall back to random weights and say why
            entry["weights_error"] = _error_text(exc)
    if module is None:
        torch.manual_seed(0)
        module = models.build(arch).to(ctx.device).eval()
        entry["weights"] = "random"
    contract = default.contract if default is not None else architecture.contract
    entry["registry_half_precision"] = contract.half_precision
    entry["params"] = sum(p.numel() for p in module.parameters())
    entry["autocast"] = "cpu autocast (dry run)" if ctx.device.type == "cpu" else ctx.device.type
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    side = ctx.sizes.model_side
    while True:
        # A whole-image forward whose cost grows with the image (HCT-FFN's attention blocks of
        # H*W/16 tokens) may not fit at the full side: then every precision is measured at half.
        entry["size"] = side
        ctx.run.say(f"models: {arch} ({entry['weights']}, {entry['params']:,} params) at {side}x{side}")
        x = _to_tensor(_image_like(side, side, ctx.data_root), ctx.device)
        runs, reference = _measure_precisions(ctx, arch, module, contract, dtypes, x, side)
        fp32_error = runs.get("fp32", {}).get("error", "")
        if "out of memory" in fp32_error.lower() and side // 2 >= ctx.sizes.min_model_side:
            entry.setdefault("out_of_memory_at", []).append(side)
            del x, reference, runs
            _free_cache(ctx.device)
            side //= 2
            continue
        break
    entry["runs"] = runs
    extremes = entry["extremes"] = {}
    for precision in HALF:
        if "skipped" in runs.get(precision, {}) or ctx.budget.state() != "ok":
            extremes[precision] = {"skipped": runs.get(precision, {}).get("skipped", "budget")}
            continue
        runner = contract_runner(module, contract, dtypes[precision])
        extremes[precision] = {}
        e_side = ctx.sizes.extreme_side
        for kind, value in (("black", 0.0), ("white", 1.0)):
            xe = torch.full((1, 3, e_side, e_side), value, device=ctx.device)
            try:
                with _autocast_context(ctx.device, dtypes[precision]), torch.inference_mode():
                    ye = runner(xe)
                _sync(ctx.device)
            except Exception as exc:  # noqa: BLE001
                extremes[precision][kind] = {"error": _error_text(exc)}
                continue
            finite = bool(torch.isfinite(ye).all())
            item = {"finite": finite, "out_mean": round(float(ye.float().nan_to_num().mean()), 4),
                    "out_max": round(float(ye.float().nan_to_num().max()), 4)}
            if kind == "white":
                item["black_output"] = finite and float(ye.clamp(0, 1).max()) < 0.02
            extremes[precision][kind] = item
        ctx.run.say(f"models: {arch} extremes {precision}: " + ", ".join(
            f"{k} {'finite' if v.get('finite') else 'NON-FINITE'} mean {v.get('out_mean')}"
            for k, v in extremes[precision].items()))
    del module, x, reference


def _measure_precisions(ctx: Context, arch: str, module, contract, dtypes: dict, x, side: int):
    """fp32, bf16 and fp16 runs of one model on ``x``: {precision: record}, and the fp32 output."""
    torch = _torch()
    runs: dict = {}
    reference = None
    for precision in PRECISIONS:
        state = ctx.budget.state()
        if precision == "fp16" and ctx.device.type == "cpu":
            runs[precision] = {"skipped": CPU_FP16_SKIP}
            continue
        if precision != "fp32" and state == "over":
            runs[precision] = {"skipped": "budget"}
            continue
        runner = contract_runner(module, contract, dtypes[precision])
        repeats = ctx.sizes.repeats if state == "ok" else 1
        warmup = ctx.sizes.warmup and state == "ok"
        _reset_peak(ctx.device)
        try:
            with _autocast_context(ctx.device, dtypes[precision]):
                times, y = _time_call(lambda r=runner, inp=x: r(inp), ctx.device, repeats, warmup)
        except Exception as exc:  # noqa: BLE001 - e.g. an op without a half-precision kernel
            runs[precision] = {"error": _error_text(exc)}
            ctx.run.say(f"models: {arch} {precision} ERROR {runs[precision]['error']}")
            _free_cache(ctx.device)
            continue
        best = min(times)
        finite = bool(torch.isfinite(y).all())
        run = runs[precision] = {
            "seconds": round(best, 5), "all_seconds": [round(t, 5) for t in times],
            "mp_per_s": round(side * side / 1e6 / best, 3) if best > 0 else None,
            "peak_gb": _peak_gb(ctx.device), "finite": finite,
            "out_mean": round(float(y.float().nan_to_num().mean()), 4),
        }
        if state != "ok":
            run["budget"] = state
        run["black_output"] = finite and float(y.clamp(0, 1).mean()) < 0.02 < float(x.mean())
        if precision == "fp32":
            reference = y
        elif reference is not None:
            run["psnr_vs_fp32"] = _psnr(y, reference)
        ctx.run.say(f"models: {arch} {precision} {best:.4f} s ({run['mp_per_s']} MP/s), peak "
                    f"{_gb(run['peak_gb'])}, finite={finite}"
                    + (f", PSNR vs fp32 {_fmt_db(run.get('psnr_vs_fp32'))}" if precision != "fp32" else ""))
        del y
    return runs, reference


def _on_mirror(ctx: Context, model) -> bool:
    return ctx.mirror is not None and (ctx.mirror / model.source.filename).exists()


def _gb(value) -> str:
    return "n/a" if value is None else f"{value} GB"


def _fmt_db(value) -> str:
    if value is None:
        return "-"
    return "identical" if math.isinf(value) else f"{value:.1f} dB"


def half_verdict(arch: str, entry: dict) -> dict:
    """Half-safe: finite output everywhere (image, black, white) and >= 35 dB PSNR against fp32, in
    both bf16 and fp16."""
    texts, safe, unverified = {}, True, False
    for precision in HALF:
        run = entry.get("runs", {}).get(precision)
        extremes = entry.get("extremes", {}).get(precision, {})
        if run is None or "skipped" in run:
            reason = (run or {}).get("skipped", "")
            why = " (CPU)" if reason.startswith("not run on the CPU") else (" (budget)" if reason == "budget" else "")
            texts[precision], unverified = f"not run{why}", True
            continue
        if "error" in run:
            texts[precision], safe = f"ERROR ({run['error'][:60]})", False
            continue
        psnr = run.get("psnr_vs_fp32")
        bad_extremes = [k for k, v in extremes.items() if isinstance(v, dict) and
                        ("error" in v or not v.get("finite", True) or v.get("black_output"))]
        if not run["finite"]:
            texts[precision], safe = "NaN", False
        elif bad_extremes:
            texts[precision], safe = f"bad on {'/'.join(bad_extremes)} input", False
        elif run.get("black_output"):
            texts[precision], safe = "black output", False
        elif psnr is None:
            texts[precision], unverified = "no fp32 reference", True
        elif psnr < HALF_SAFE_PSNR_DB:
            texts[precision], safe = f"LOW {psnr:.1f} dB", False
        else:
            texts[precision] = f"OK {_fmt_db(psnr)}"
            if "skipped" in extremes:
                texts[precision] += " (extremes not run)"
                unverified = True
    if entry.get("status") == "failed" and not texts:
        safe = False
    conclusion = "not half-safe" if not safe else ("unverified" if unverified else "half-safe")
    registry = entry.get("registry_half_precision")
    note = ""
    if registry is not None and conclusion != "unverified" and registry != (conclusion == "half-safe"):
        note = f" (the registry has half_precision={registry}: change it)"
    line = f"{arch}: " + " | ".join(f"{p} {texts.get(p, 'not run')}" for p in HALF) + f" -> {conclusion}{note}"
    return {**texts, "conclusion": conclusion, "line": line}


def section_userpath(ctx: Context, rec: dict) -> None:
    """What a user gets: Derainer(name, tile='auto', precision='auto') on a 4K frame."""
    from derain_cli import Derainer

    h, w = ctx.sizes.frame_4k
    rgb = _image_like(h, w, ctx.data_root)
    rec["frame"] = f"{w}x{h}"
    failures = []
    for which in USERPATH_MODELS:
        entry = rec[which] = {}
        try:
            name = None if which == "builtin" else str(random_weights_file(which, ctx.work / "random"))
            d = Derainer(name, device=str(ctx.device), tile="auto", precision="auto")
            entry["model"] = d.name + ("" if which == "builtin" else " (random weights)")
            entry["precision"] = str(getattr(d, "dtype", "?")).replace("torch.", "")
            d.load()
            warm = ctx.sizes.warmup_side
            d.derain_rgb(rgb[:warm, :warm])  # start-up costs out of the timing
            times = []
            for _ in range(1 if ctx.quick else 2):
                _free_cache(ctx.device)
                _reset_peak(ctx.device)
                start = time.perf_counter()
                out = d.derain_rgb(rgb)
                _sync(ctx.device)
                times.append(time.perf_counter() - start)
            import numpy as np

            entry.update({"seconds": round(min(times), 4), "all_seconds": [round(t, 4) for t in times],
                          "mp_per_s": round(h * w / 1e6 / min(times), 2), "tile": d.last_tile,
                          "peak_gb": _peak_gb(ctx.device), "finite": bool(np.isfinite(out).all()),
                          "out_mean": round(float(out.mean()), 4)})
            target = 0.1 if which == "builtin" else 1.0
            if ctx.device.type == "cuda" and not ctx.quick:
                entry["target_s"] = target
                entry["meets_target"] = entry["seconds"] < target
            ctx.run.say(f"userpath: {entry['model']} {w}x{h} {entry['precision']}: {entry['seconds']} s, "
                        f"tile {entry['tile']}, peak {_gb(entry['peak_gb'])}"
                        + (f", target < {target} s: {'met' if entry.get('meets_target') else 'MISSED'}"
                           if "target_s" in entry else ""))
            del d, out
        except Exception as exc:  # noqa: BLE001
            entry["error"] = _error_text(exc)
            entry["traceback"] = traceback.format_exc()[-2000:]
            failures.append(which)
            ctx.run.say(f"userpath: {which} FAILED {entry['error']}")
        _free_cache(ctx.device)
    if failures:
        raise RuntimeError("failed: " + ", ".join(failures))


def section_oom(ctx: Context, rec: dict) -> None:
    """Cap the process near 3 GB and derain a 2048^2 image with DRSformer and GLGFN (random
    weights) at tile auto and at an explicit 2048 tile: both must finish (derain_cli/tiling.py
    halves the tile on out-of-memory). On the CPU nothing is capped: the path runs small."""
    torch = _torch()
    from derain_cli import Derainer

    side, tile = ctx.sizes.oom_side, ctx.sizes.oom_tile
    rgb = _image_like(side, side, ctx.data_root)
    rec["image"] = f"{side}x{side}"
    capped = ctx.device.type == "cuda"
    if capped:
        _free_cache(ctx.device)
        total = torch.cuda.get_device_properties(ctx.device).total_memory
        fraction = min(1.0, OOM_CAP_BYTES / total)
        torch.cuda.set_per_process_memory_fraction(fraction, ctx.device)
        rec["cap"] = {"fraction": round(fraction, 5), "gb": round(fraction * total / 1024**3, 2)}
        ctx.run.say(f"oom: memory capped at {rec['cap']['gb']} GB (fraction {fraction:.4f})")
    else:
        rec["cap"] = None
    failures = []
    try:
        for arch in OOM_ARCHS:
            path = random_weights_file(arch, ctx.work / "random")
            for tile_setting in ("auto", tile):
                key = f"{arch}_tile_{tile_setting}"
                entry = rec[key] = {}
                tiles: list[int] = []
                try:
                    _free_cache(ctx.device)
                    _reset_peak(ctx.device)
                    d = Derainer(str(path), device=str(ctx.device), tile=tile_setting, precision="auto")
                    start = time.perf_counter()
                    out = d.derain_rgb(rgb, tile_progress=lambda _done, total, seen=tiles: seen.append(total))
                    _sync(ctx.device)
                    import numpy as np

                    entry.update({"finished": True, "seconds": round(time.perf_counter() - start, 3),
                                  # more tiles than first_tile needs: the OOM fallback halved it
                                  "first_tile": d.last_tile, "tiles_run": tiles[-1] if tiles else 1,
                                  "peak_gb": _peak_gb(ctx.device),
                                  "finite": bool(np.isfinite(out).all())})
                    del d, out
                except Exception as exc:  # noqa: BLE001
                    entry.update({"finished": False, "error": _error_text(exc),
                                  "traceback": traceback.format_exc()[-2000:]})
                    failures.append(key)
                if entry.get("finished"):
                    ctx.run.say(f"oom: {arch} tile {tile_setting}: finished in {entry['seconds']} s, first tile "
                                f"{entry['first_tile']}, {entry['tiles_run']} tile(s) run, "
                                f"peak {_gb(entry['peak_gb'])}")
                else:
                    ctx.run.say(f"oom: {arch} tile {tile_setting}: FAILED {entry['error']}")
                ctx.run.save()
    finally:
        if capped:
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            _free_cache(ctx.device)
    if failures:
        raise RuntimeError("did not finish: " + ", ".join(failures))


def section_throughput(ctx: Context, rec: dict) -> None:
    """Frames per second at 1920x1080: the built-in model's bare forward on a batch already on the
    device, against `derain batch` end to end over PNG frames (decode, model, encode)."""
    h, w = ctx.sizes.frame_hd
    rec["frame"] = f"{w}x{h}"
    failures: list[str] = []
    for step in (_throughput_bare, _throughput_batch):
        try:
            step(ctx, rec)
        except Exception as exc:  # noqa: BLE001 - the other half still runs
            failures.append(f"{step.__name__} ({_error_text(exc)})")
            ctx.run.say(f"throughput: {step.__name__} FAILED {_error_text(exc)}")
    if failures:
        raise RuntimeError("failed: " + ", ".join(failures))


def _throughput_bare(ctx: Context, rec: dict) -> None:
    torch = _torch()
    from derain_cli import Derainer

    h, w = ctx.sizes.frame_hd
    d = Derainer(None, device=str(ctx.device), tile=0, precision="auto")
    forward = derainer_forward(d)
    batch = ctx.sizes.bare_batch
    x = _to_tensor(_image_like(h, w, ctx.data_root), ctx.device, batch=batch)
    _reset_peak(ctx.device)
    with torch.inference_mode():
        times, _ = _time_call(lambda f=forward, inp=x: f(inp), ctx.device, ctx.sizes.bare_repeats, warmup=True)
    best = min(times)
    rec["bare"] = {"model": d.name, "precision": str(getattr(d, "dtype", "?")).replace("torch.", ""),
                   "batch": batch, "seconds_per_batch": round(best, 4), "fps": round(batch / best, 2),
                   "peak_gb": _peak_gb(ctx.device)}
    ctx.run.say(f"throughput: bare forward {d.name} batch {batch} of {w}x{h}: {best:.4f} s -> "
                f"{rec['bare']['fps']} frames/s")
    del d, forward, x
    _free_cache(ctx.device)


def _throughput_batch(ctx: Context, rec: dict) -> None:
    from PIL import Image

    h, w = ctx.sizes.frame_hd
    frames = ctx.work / "frames"
    n = ctx.sizes.stream_frames
    frames.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = frames / f"frame{i:04d}.png"
        if not path.exists():
            rgb = _image_like(h, w, ctx.data_root, shift=8 * i)
            Image.fromarray((rgb * 255 + 0.5).astype("uint8")).save(path, compress_level=1)
    one = ctx.work / "frames_one"
    one.mkdir(exist_ok=True)
    shutil.copy(frames / "frame0000.png", one / "frame0000.png")
    dev = str(ctx.device)
    r1 = ctx.cli("batch", one, "--out", ctx.work / "frames_one_out", "--json", "--device", dev, "--overwrite")
    rn = ctx.cli("batch", frames, "--out", ctx.work / "frames_out", "--json", "--device", dev, "--overwrite")
    records = _json_lines(rn.get("stdout", ""))
    ok = sum(x.get("status") == "ok" for x in records)
    model_s = sum(x.get("seconds") or 0 for x in records)
    entry = rec["batch"] = {"frames": n, "ok": ok, "rc": rn["rc"], "wall_s": rn["wall_s"],
                            "wall_one_frame_s": r1["wall_s"], "model_seconds": round(model_s, 3),
                            "fps_wall": round(n / rn["wall_s"], 2),
                            "fps_model_time": round(n / model_s, 2) if model_s > 0 else None}
    if rn["rc"] == 0 and r1["rc"] == 0 and rn["wall_s"] > r1["wall_s"]:
        # start-up (interpreter, torch, CUDA, model) cancels out between the two runs
        entry["fps_steady"] = round((n - 1) / (rn["wall_s"] - r1["wall_s"]), 2)
    for r in (r1, rn):
        if r["rc"] != 0:
            entry.setdefault("errors", []).append(r.get("stderr_tail") or r.get("error"))
    ctx.run.say(f"throughput: derain batch {ok}/{n} frames: wall {rn['wall_s']} s ({entry['fps_wall']} frames/s "
                f"incl. start-up; {entry.get('fps_steady')} frames/s steady; {entry['fps_model_time']} by model time)")
    if rn["rc"] != 0 or ok != n:
        raise RuntimeError(f"derain batch: rc={rn['rc']}, {ok}/{n} frames")


def section_tests(ctx: Context, rec: dict) -> None:
    """The test suite with CUDA visible. Where derain is not installed (a rented machine with the
    repository only), a `derain` shim on PATH runs ``python -m derain_cli`` so that the end-to-end
    tests run instead of skipping; DERAIN_SHARED points the tests at --shared where it exists."""
    import importlib.util

    cmd = [sys.executable, "-m", "pytest", *ctx.args.tests_args.split()]
    if importlib.util.find_spec("xdist") is not None and "-n" not in cmd:
        cmd += ["-n", str(ctx.args.tests_workers)]
    env = dict(ctx.base_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    installed = Path(sys.executable).with_name("derain").exists() or shutil.which("derain", path=env.get("PATH"))
    if not installed:
        shim = ctx.work / "bin" / "derain"
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m derain_cli "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = os.pathsep.join(filter(None, [str(shim.parent), env.get("PATH")]))
        rec["derain_shim"] = str(shim)
    shared = ctx.args.shared
    if shared is not None and shared.is_dir():
        env["DERAIN_SHARED"] = str(shared.resolve())
    rec["shared"] = env.get("DERAIN_SHARED") or (str(SHARED) if SHARED.is_dir() else None)
    rec["cmd"] = " ".join(cmd[1:])
    ctx.run.say(f"tests: {rec['cmd']} (timeout {ctx.args.tests_timeout} s, shared {rec['shared']}, "
                f"derain {'shim' if not installed else 'installed'})")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=ctx.args.tests_timeout)
        output, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc = None
    rec["seconds"] = round(time.perf_counter() - start, 1)
    rec["rc"] = rc
    _write_atomic(ctx.run.out / "gpu_check_tests.log", output)
    lines = output.strip().splitlines()
    summary = next((line for line in reversed(lines) if " in " in line and
                    any(w in line for w in ("passed", "failed", "error", "skipped"))), None)
    rec["summary"] = summary.strip("= ") if summary else None
    rec["failures"] = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:40]
    rec["skip_reasons"] = sorted({line.split(": ", 1)[-1] for line in lines if line.startswith("SKIPPED")})[:40]
    ctx.run.say(f"tests: rc={rc} {rec['summary']} ({rec['seconds']} s)")
    for line in rec["failures"]:
        ctx.run.say(f"  {line}")
    if rc != 0:
        raise RuntimeError(f"pytest rc={rc}: {rec['summary'] or 'timed out'}")


# -- Markdown -------------------------------------------------------------------------------------


def markdown(data: dict) -> str:
    s = data["sections"]
    lines = [f"# gpu_check ({data['device']}{', quick' if data['quick'] else ''}, started {data['started']}, "
             f"{data.get('elapsed_s')} s)", "", "| section | status | seconds | note |", "|---|---|---|---|"]
    for name in SECTIONS:
        sec = s.get(name, {})
        note = sec.get("error") or sec.get("reason") or ""
        lines.append(f"| {name} | {sec.get('status', 'not run')} | {sec.get('seconds', '')} | {note} |")
    env = s.get("env", {})
    if env.get("torch"):
        gpu = env.get("gpu")
        where = f"{gpu['name']} ({gpu['memory_gb']} GB, compute {gpu['capability']})" if gpu else "no GPU"
        lines += ["", f"Environment: {where}, torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, cuDNN "
                      f"{env.get('cudnn')}), {env.get('cpu_cores')} CPU cores, TF32 {env.get('tf32')}"]
    cli = s.get("cli", {})
    if cli.get("bench"):
        lines += ["", "## derain bench (rain200h-samples)", "",
                  "| run | model | PSNR | SSIM | s/image | MP/s | peak MB |", "|---|---|---|---|---|---|---|"]
        for key, b in cli["bench"].items():
            if isinstance(b, dict) and "psnr" in b:
                lines.append(f"| {key} | {b.get('model')} | {_f(b.get('psnr'), 3)} | {_f(b.get('ssim'), 4)} | "
                             f"{_f(b.get('seconds_per_image'), 4)} | {_f(b.get('megapixels_per_second'), 2)} | "
                             f"{b.get('peak_memory_mb')} |")
        for name, cmp in (cli["bench"].get("fp32_vs_cpu") or {}).items():
            lines.append(f"\nfp32 vs CPU ({name}): {cmp.get('verdict')}")
    models = s.get("models", {}).get("archs", {})
    if models:
        lines += ["", "## Models: whole-image forward, best of repeats, side x side pixels", "",
                  "| arch | weights | side | precision | s | MP/s | peak GB | finite | PSNR vs fp32 | black/white in |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for arch, e in models.items():
            for p in PRECISIONS:
                r = (e.get("runs") or {}).get(p)
                if r is None:
                    continue
                ex = (e.get("extremes") or {}).get(p, {})
                ext = "-" if p == "fp32" else ("not run" if "skipped" in ex else " / ".join(
                    ("NaN" if not v.get("finite", False) else ("black" if v.get("black_output") else "ok"))
                    for v in ex.values()))
                head = f"| {arch} | {e.get('weights', '')} | {e.get('size')} | {p} |"
                if "seconds" not in r:
                    why = r.get("error") or ("not run (CPU)" if "CPU" in r.get("skipped", "") else r.get("skipped"))
                    lines.append(f"{head} {why} | | | | | |")
                    continue
                peak = r.get("peak_gb") if r.get("peak_gb") is not None else "-"
                psnr = _fmt_db(r.get("psnr_vs_fp32")) if p != "fp32" else "-"
                lines.append(f"{head} {_f(r['seconds'], 4)} | {r['mp_per_s']} | {peak} | "
                             f"{'yes' if r['finite'] else 'NO'} | {psnr} | {ext} |")
        lines += ["", "Half precision:", ""]
        lines += [f"- {e['verdict']['line']}" for e in models.values() if e.get("verdict")]
    for name, title in (("userpath", "User path (Derainer, tile auto, precision auto)"),
                        ("oom", "OOM fallback"), ("throughput", "Throughput")):
        sec = s.get(name, {})
        rows = {k: v for k, v in sec.items() if isinstance(v, dict) and k not in ("cap",)}
        if rows:
            lines += ["", f"## {title}", ""]
            for key, v in rows.items():
                shown = {k: x for k, x in v.items() if k not in ("traceback", "stderr_tail", "errors")}
                lines.append(f"- {key}: " + ", ".join(f"{k} {x}" for k, x in shown.items()))
    tests = s.get("tests", {})
    if tests.get("summary") or tests.get("failures"):
        lines += ["", "## Tests", "", f"`{tests.get('cmd')}`: {tests.get('summary')}"]
        lines += [f"- {f}" for f in tests.get("failures", [])]
    return "\n".join(lines) + "\n"


def _f(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# -- running ----------------------------------------------------------------------------------------


class Context:
    def __init__(self, args, run: Run, work: Path):
        torch = _torch()
        self.args, self.run, self.work, self.quick = args, run, work, args.quick
        self.sizes = Sizes(args.quick)
        self.device = torch.device(args.device)
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"--device {args.device}: CUDA is not available (torch {torch.__version__})")
            if self.device.index is None:  # some torch.cuda calls want an index
                self.device = torch.device("cuda", torch.cuda.current_device())
        self.paired, self.real = data_dirs(args.data)
        self.data_root = self.paired.parent if self.paired is not None else None
        self.cpu_reference = args.cpu_reference
        self.base_env = dict(os.environ)
        self.mirror = prepare_mirror(args.weights, work)
        home = work / "home"
        home.mkdir(parents=True, exist_ok=True)
        derain_env = {"DERAIN_HOME": str(home), "DERAIN_OFFLINE": "1"}
        if self.mirror is not None:
            derain_env["DERAIN_MIRROR"] = str(self.mirror)
        os.environ.update(derain_env)  # for this process's own models.load (settings reads os.environ)
        if self.mirror is None:
            os.environ.pop("DERAIN_MIRROR", None)
        env = {k: v for k, v in self.base_env.items() if k not in DERAIN_ENV}
        env.update(derain_env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.base_env.get("PYTHONPATH")]))
        self.cli = Cli(run, env, self.sizes.cli_timeout)
        self.budget = Budget(run, args.budget_s, self.sizes.reserve_s)


RUNNERS = {"env": section_env, "cli": section_cli, "models": section_models, "userpath": section_userpath,
           "oom": section_oom, "throughput": section_throughput, "tests": section_tests}


def run_sections(args) -> int:
    out = Path(args.out)
    run = Run(out, args)
    keep = args.work is not None
    work = Path(args.work) if keep else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections else list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        print(f"error: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    run.save()  # the output folder exists, and a run killed at once still leaves a file
    run.say(f"gpu_check: device {args.device}, {'quick' if args.quick else 'full'} sizes, sections "
            f"{','.join(chosen)}, budget {args.budget_s} s, out {out}, work {work}")
    try:
        ctx = Context(args, run, work)
    except Exception as exc:  # noqa: BLE001 - e.g. --device cuda without a GPU: say so in the results
        run.data["error"] = _error_text(exc)
        run.save()
        print(f"error: {run.data['error']}", file=sys.stderr)
        return 2
    run.data["inputs"] = {"rain200h": str(ctx.paired) if ctx.paired else None,
                          "real": str(ctx.real) if ctx.real else None,
                          "mirror": str(ctx.mirror) if ctx.mirror else None,
                          "mirror_files": sorted(p.name for p in ctx.mirror.iterdir()) if ctx.mirror else [],
                          "cpu_reference": str(ctx.cpu_reference) if ctx.cpu_reference else None}
    for name in SECTIONS:
        rec = run.section(name)
        if name not in chosen:
            rec.update(status="skipped", reason="not in --sections")
            continue
        if name == "tests" and args.quick:
            rec.update(status="skipped", reason="--quick")
            run.say("tests: skipped (--quick)")
            run.save()
            continue
        run.say(f"== {name}")
        start = time.perf_counter()
        try:
            RUNNERS[name](ctx, rec)
            rec["status"] = "ok"
        except KeyboardInterrupt:
            rec.update(status="interrupted", seconds=round(time.perf_counter() - start, 2))
            run.save()
            raise
        except Exception as exc:  # noqa: BLE001 - record and go on with the next section
            rec["status"] = "failed"
            rec["error"] = _error_text(exc)
            rec["traceback"] = traceback.format_exc()[-3000:]
            run.say(f"{name}: FAILED {rec['error']}")
            _free_cache(ctx.device)
        rec["seconds"] = round(time.perf_counter() - start, 2)
        run.say(f"== {name}: {rec['status']} in {rec['seconds']} s")
        run.save()
    statuses = [run.data["sections"][n]["status"] for n in chosen if not (n == "tests" and args.quick)]
    ok, failed = statuses.count("ok"), len(statuses) - statuses.count("ok")
    run.data["summary"] = {"sections_ok": ok, "failed": failed,
                           "half_precision": [e["verdict"]["line"] for e in
                                              run.data["sections"].get("models", {}).get("archs", {}).values()
                                              if e.get("verdict")]}
    run.save()
    print(flush=True)
    for line in run.data["summary"]["half_precision"]:
        print(line, flush=True)
    print(f"GPU_CHECK DONE sections_ok={ok} failed={failed} elapsed={run.elapsed():.1f}s "
          f"results={out / 'gpu_check.json'}", flush=True)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if failed == 0 else 1


def prepare(target: Path) -> int:
    """Copy what the GPU run reads (data subset and weight files) into ``target`` for carrying."""
    weights_src = SHARED / "weights"
    manifest = json.loads((weights_src / "manifest.json").read_text())
    by_sha = {item["sha256"]: weights_src / item["file"] for item in manifest}
    (target / "weights").mkdir(parents=True, exist_ok=True)
    total = 0
    for m in needed_weights():
        src = by_sha.get(m.source.sha256 or "")
        if src is None:
            print(f"  {m.name}: {m.source.filename} not in {weights_src} (random weights on the GPU)")
            continue
        dst = target / "weights" / m.source.filename
        shutil.copyfile(src, dst)
        total += dst.stat().st_size
        print(f"  weights/{m.source.filename}  {dst.stat().st_size:,} B  ({m.name})")
    paired, real = data_dirs(None)
    if paired is not None:
        for sub in ("input", "target"):
            shutil.copytree(paired / sub, target / "data" / "rain200h-samples" / sub, dirs_exist_ok=True)
    if real is not None:
        for src in real_photos(real, Sizes(quick=False).real_photos):
            dst = target / "data" / "real" / "_".join(src.relative_to(real).parts)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"{target}: {size / 2**20:.1f} MiB ({total / 2**20:.1f} MiB of weights); run with "
          f"--data {target / 'data'} --weights {target / 'weights'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CPU dry run; no tests section")
    parser.add_argument("--out", default="gpu_check_results", help="folder for gpu_check.json/.md")
    parser.add_argument("--work", help="scratch folder to keep (default: a temporary one, removed at the end)")
    parser.add_argument("--data", type=Path, help="folder with rain200h-samples/{input,target} and real/")
    parser.add_argument("--weights", type=Path, help="weights under registry file names (or ../shared/weights)")
    parser.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--budget-s", type=float,
                        help="seconds for the run without tests; past it, models get fewer repeats, then fp32 "
                             "only (default 150; quick 600)")
    parser.add_argument("--cpu-reference", type=Path, default=DEFAULT_CPU_REFERENCE,
                        help="`derain bench --device cpu --precision fp32 --json` report to compare fp32 with")
    parser.add_argument("--tests-args", default="-q -x -p no:cacheprovider", help="pytest arguments")
    parser.add_argument("--shared", type=Path, help="reference material for the tests (DERAIN_SHARED; "
                                                    "default: the tests' own ../shared)")
    parser.add_argument("--tests-workers", type=int, default=8, help="pytest-xdist workers where installed")
    parser.add_argument("--tests-timeout", type=float, default=420, help="seconds for the tests section")
    parser.add_argument("--prepare", type=Path, metavar="DIR", help="copy the data and weights to carry, then exit")
    args = parser.parse_args(argv)
    settings.prefer_passive_openmp_wait()  # as the derain command does; torch is not imported yet
    if args.prepare:
        return prepare(args.prepare)
    if args.budget_s is None:
        args.budget_s = 600.0 if args.quick else 150.0
    if args.weights is None and (SHARED / "weights").is_dir():
        args.weights = SHARED / "weights"
    return run_sections(args)


if __name__ == "__main__":
    sys.exit(main())
