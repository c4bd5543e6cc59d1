"""Benchmark `derain batch --engine ray` against the local batch on this machine.

Three measurements, all on synthetic JPEGs written to a temporary folder:

1. Throughput: a folder through the local batch (all cores in one process) and through Ray
   pools of 1, 2, ... workers (the cores shared among them), with a real model. Each setting runs
   on N/4 and on N images (a fresh output folder each time, Ray already started), and the two wall
   times split into a fixed cost per run F (model load; for Ray also starting the worker pool) and
   a cost per image c: wall = F + n c. Records reach the driver in bursts (a Ray block at a time),
   so arrival times would mislead; two whole runs do not. "net ms" is the network's own time per
   image as the files report it (FileResult.seconds), without decoding, encoding or Ray.
2. The per-image overhead of the Ray path: the same split for many tiny images through the tests'
   9x9 network (almost no model time), local with 1 thread against 1 Ray worker with 1 thread;
   the difference of the costs per image is what the Ray path adds to each file.
3. The CPU side of one large photo: decode and encode times of a 12-megapixel JPEG, which a Ray
   worker spends on its CPU while its GPU waits (the figure that sizes a GPU cluster's CPUs).

    .venv/bin/python benchmarks/ray_batch.py [--images 24] [--size 384x256] [--workers 1,2]
        [--model NAME] [--overhead-images 160] [--large 4000x3000]

Needs the Ray extra (pip install -e '.[ray]'). Run it from the repository root (the overhead
run loads tests/tinynet.py as a plug-in).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT") from None
    return w, h


def _photos(folder: Path, count: int, size: tuple[int, int], fmt: str = "jpg") -> None:
    """Reproducible photo-like images: smooth gradients, texture and bright streaks."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    xx = np.mgrid[0:h, 0:w][1].astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        base = 0.5 + 0.3 * np.sin(xx / (20 + i) + i)[..., None] * np.array([1.0, 0.8, 0.6], dtype=np.float32)
        noise = rng.normal(0, 0.05, (h, w, 3)).astype(np.float32)
        streaks = (rng.random((h, w)) > 0.995).astype(np.float32)[..., None] * 0.4
        rgb = np.clip(base + noise + streaks, 0, 1)
        sub = folder / f"cam{i % 3}"
        sub.mkdir(exist_ok=True)
        Image.fromarray((rgb * 255).astype(np.uint8)).save(sub / f"img{i:04d}.{fmt}", quality=92)


_MODEL_SECONDS: list[float] = []  # FileResult.seconds of the latest run: network time alone, per file


def _check(result) -> None:
    if result.status != "ok":
        raise SystemExit(f"benchmark input failed: {result.error}")
    _MODEL_SECONDS.append(result.seconds)


def _timed(run, src: Path, dst: Path) -> tuple[float, float]:
    """Wall seconds of one run, and the mean network seconds per file inside it."""
    _MODEL_SECONDS.clear()
    start = time.perf_counter()
    run(src, dst)
    wall = time.perf_counter() - start
    return wall, sum(_MODEL_SECONDS) / len(_MODEL_SECONDS)


def _local(model: str | None, threads: int, tile):
    from derain_cli import Derainer

    def run(src: Path, dst: Path) -> None:  # a new Derainer loads the model, as a fresh `derain batch` does
        Derainer(model, device="cpu", threads=threads, tile=tile).derain_folder(src, dst, on_result=_check)

    return run


def _ray(model: str | None, workers: int, threads: int, tile):
    from derain_cli.distributed import RayBatch

    batch = RayBatch(model, device="cpu", workers=workers, threads=threads, tile=tile)
    return lambda src, dst: batch.derain_folder(src, dst, on_result=_check)


def _split(run, small: Path, large: Path, n_small: int, n_large: int, out: Path, repeat: int) -> dict:
    """Fixed cost per run and cost per image from runs over n_small and n_large images.

    Each wall time is the best of `repeat` runs: on a shared machine the minimum is the least
    disturbed measurement.
    """
    t_small = min(_timed(run, small, out / f"small{i}")[0] for i in range(repeat))
    t_large, model = min(_timed(run, large, out / f"large{i}") for i in range(repeat))
    per_image = (t_large - t_small) / (n_large - n_small)
    return {"images": n_large, "wall": t_large, "ips": n_large / t_large, "fixed": t_large - n_large * per_image,
            "per_image": per_image, "model": model}


def _row(name: str, r: dict) -> str:
    return (f"{name:<28}{r['images']:>7}{r['wall']:>9.1f}{r['ips']:>9.2f}{r['fixed']:>10.1f}"
            f"{1000 * r['per_image']:>9.0f}{1000 * r['model']:>10.0f}")


def _large_image_costs(size: tuple[int, int], work: Path) -> tuple[float, float]:
    """Seconds to decode and to encode one large JPEG with derain's own reader and writer (best of 2)."""
    from derain_cli import imaging

    _photos(work / "large", 1, size)
    path = next((work / "large").rglob("*.jpg"))
    decode = encode = float("inf")
    for i in range(2):
        t = time.perf_counter()
        decoded = imaging.read_image(path, max_pixels=None)
        decode = min(decode, time.perf_counter() - t)
        t = time.perf_counter()
        imaging.write_image(work / f"large_out{i}.jpg", decoded.rgb, like=decoded)
        encode = min(encode, time.perf_counter() - t)
    return decode, encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24, help="images in the throughput runs")
    parser.add_argument("--size", type=_parse_size, default=(384, 256), help="their size, WIDTHxHEIGHT")
    parser.add_argument("--workers", default="1,2", help="Ray pool sizes to run, comma-separated")
    parser.add_argument("--model", default=None, help="model of the throughput runs (default: the built-in one)")
    parser.add_argument("--overhead-images", type=int, default=160, help="tiny images in the overhead runs")
    parser.add_argument("--large", type=_parse_size, default=(4000, 3000), help="size for the decode/encode costs")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each setting; the best wall time counts")
    parser.add_argument("--parts", default="1,2,3", help="which measurements to run (1, 2, 3; comma-separated)")
    args = parser.parse_args()

    from derain_cli import settings

    settings.prefer_passive_openmp_wait()  # as the CLI does, before torch is imported; workers inherit it
    os.environ["DERAIN_PLUGINS"] = ",".join(filter(None, [os.environ.get("DERAIN_PLUGINS"), "tests.tinynet"]))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # as derain does when it starts Ray
    import ray
    import torch

    cores = os.cpu_count() or 1
    pools = [int(v) for v in args.workers.split(",") if v.strip()]
    parts = {p.strip() for p in args.parts.split(",")}
    print(f"torch {torch.__version__}, ray {ray.__version__}, {cores} CPU cores, load average "
          f"{os.getloadavg()[0]:.1f} at start; each wall time is the best of {args.repeat}")
    header = f"{'run':<28}{'images':>7}{'wall s':>9}{'img/s':>9}{'fixed s':>10}{'ms/img':>9}{'net ms':>10}"
    rule = "-" * len(header)
    with tempfile.TemporaryDirectory(prefix="derain-ray-bench-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        init_s = time.perf_counter() - t
        print(f"ray.init (a local instance) took {init_s:.1f} s; not counted below")

        if "1" in parts:
            n = args.images
            _photos(work / "in_small", n // 4, args.size)
            _photos(work / "in", n, args.size)
            print(f"\n1. throughput: {n} JPEGs of {args.size[0]}x{args.size[1]} (and {n // 4} for the split), "
                  f"model {args.model or 'built-in'}, CPU, tile auto")
            print(f"{header}\n{rule}")
            split = (work / "in_small", work / "in", n // 4, n)
            r = _split(_local(args.model, cores, "auto"), *split, work / "local", args.repeat)
            print(_row(f"local, {cores} threads", r), flush=True)
            for w in pools:
                threads = max(1, cores // w)
                r = _split(_ray(args.model, w, threads, "auto"), *split, work / f"ray{w}", args.repeat)
                print(_row(f"ray, {w} worker(s) x {threads} thr", r), flush=True)

        if "2" in parts:
            n = args.overhead_images
            _photos(work / "tiny_small", n // 4, (64, 64), fmt="png")
            _photos(work / "tiny", n, (64, 64), fmt="png")
            print(f"\n2. per-image overhead: {n} PNGs of 64x64 (and {n // 4}), tests' 9x9 network, 1 thread")
            print(f"{header}\n{rule}")
            split = (work / "tiny_small", work / "tiny", n // 4, n)
            local = _split(_local("testnet:random", 1, 0), *split, work / "tiny_local", args.repeat)
            print(_row("local, 1 thread", local), flush=True)
            remote = _split(_ray("testnet:random", 1, 1, 0), *split, work / "tiny_ray", args.repeat)
            print(_row("ray, 1 worker x 1 thr", remote), flush=True)
            print(f"Ray path: {1000 * (remote['per_image'] - local['per_image']):+.1f} ms per image, "
                  f"{remote['fixed'] - local['fixed']:+.1f} s per run (worker pool start)")
        ray.shutdown()

        if "3" in parts:
            decode, encode = _large_image_costs(args.large, work)
            mp = args.large[0] * args.large[1] / 1e6
            print(f"\n3. CPU side of one {args.large[0]}x{args.large[1]} ({mp:.0f} MP) JPEG, "
                  f"{torch.get_num_threads()} torch threads: decode + metadata {decode:.2f} s, "
                  f"encode + metadata {encode:.2f} s")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
