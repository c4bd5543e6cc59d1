"""Benchmark tiled inference: time, peak memory and agreement with a whole-image run.

Runs a small convolutional network (fixed seed) through LoadedModel + run_tiled over a synthetic
image at several tile sizes. Each setting runs in a fresh subprocess so that its peak resident
memory (ru_maxrss) is its own. Tile 0 means the whole image in one pass; the other settings are
compared with it by PSNR on the float outputs clamped to [0, 1].

    .venv/bin/python benchmarks/tiling.py [--size 3840x2160] [--tiles 256,512,1024,0] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
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
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return w, h


def _parse_tiles(text: str) -> list[int]:
    try:
        tiles = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"tiles {text!r} is not a comma-separated list of sizes") from None
    if not tiles or any(t < 0 for t in tiles):
        raise argparse.ArgumentTypeError(f"tiles {text!r}: sizes must be >= 0 (0 = whole image)")
    return tiles


# -- worker: one setting in its own process ----------------------------------------------------------


def _network():
    import torch
    from torch import nn

    class BenchNet(nn.Module):
        """3x3 convolutions at 32 channels with a residual: receptive field radius 4."""

        def __init__(self, channels: int = 32):
            super().__init__()
            self.head = nn.Conv2d(3, channels, 3, padding=1)
            self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2))
            self.tail = nn.Conv2d(channels, 3, 3, padding=1)

        def forward(self, x):
            return x - 0.1 * torch.tanh(self.tail(self.body(self.head(x))))

    torch.manual_seed(0)
    return BenchNet().eval()


def _image(width: int, height: int):
    """A smooth synthetic photo-like image with some fine texture (fixed seed).

    Built one channel at a time so that making it does not raise the process's peak memory much
    above the image itself.
    """
    import torch

    g = torch.Generator().manual_seed(1)
    yy = torch.linspace(0, 1, height)[:, None]
    xx = torch.linspace(0, 1, width)[None, :]
    x = torch.empty(1, 3, height, width)
    x[0, 0] = torch.sin(6 * xx + 3 * yy).mul_(0.4).add_(0.5)
    x[0, 1] = (yy * xx).mul_(0.5).add_(0.3)
    x[0, 2] = (0.6 - 0.3 * yy).expand(height, width)
    for c in range(3):
        x[0, c].add_(torch.rand(height, width, generator=g), alpha=0.05)
    return x.clamp_(0, 1)


def worker(args) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))
    from derain_cli._memory import process_peak_rss_mb
    from derain_cli.models import Contract, LoadedModel
    from derain_cli.tiling import run_tiled

    torch.set_num_threads(args.threads)
    width, height = args.size
    runner = LoadedModel(_network(), Contract(size_multiple=4, pad_mode="reflect"))
    x = _image(width, height)
    base = process_peak_rss_mb()
    counts = []
    start = time.perf_counter()
    y = run_tiled(runner, x, tile=args.tile or None, overlap=args.overlap,
                  progress=lambda done, total: counts.append(total))
    seconds = time.perf_counter() - start
    peak = process_peak_rss_mb()
    np.save(args.out, y[0].clamp_(0, 1).numpy())
    print(json.dumps({"tile": args.tile, "tiles": counts[-1] if counts else 1, "seconds": seconds,
                      "base_mib": base, "peak_mib": peak}))


# -- driver ------------------------------------------------------------------------------------------


def _psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=_parse_size, default=(3840, 2160), help="WIDTHxHEIGHT (3840x2160)")
    parser.add_argument("--tiles", type=_parse_tiles, default=[256, 512, 1024, 0],
                        help="comma-separated tile sizes; 0 = whole image (256,512,1024,0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (32)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    import numpy as np

    width, height = args.size
    print(f"image {width}x{height}, overlap {args.overlap}, {args.threads} thread(s), "
          f"a fresh process per setting", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="derain-bench-") as tmp:
        for tile in args.tiles:
            out = Path(tmp) / f"tile{tile}.npy"
            cmd = [sys.executable, __file__, "--worker", "--size", f"{width}x{height}", "--tile", str(tile),
                   "--threads", str(args.threads), "--overlap", str(args.overlap), "--out", str(out)]
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = (proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()
                rows.append({"tile": tile, "error": lines[-1] if lines else f"exit status {proc.returncode}"})
            else:
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]) | {"out": out})
            print(f"  ran tile {tile or 'whole'}", flush=True)
        whole = next((r for r in rows if r["tile"] == 0 and "out" in r), None)
        reference = np.load(whole["out"]) if whole else None
        header = ("tile", "tiles", "seconds", "base RSS", "peak RSS", "PSNR vs whole")
        print("{:>6} {:>5} {:>8} {:>9} {:>9} {:>14}".format(*header))
        for r in rows:
            name = "whole" if r["tile"] == 0 else str(r["tile"])
            if "error" in r:
                print(f"{name:>6} failed: {r['error']}")
                continue
            if reference is None:
                quality = "n/a"
            elif r is whole:
                quality = "(reference)"
            else:
                quality = f"{_psnr(np.load(r['out']), reference):.2f} dB"
            print(f"{name:>6} {r['tiles']:>5} {r['seconds']:>8.1f} {r['base_mib']:>6.0f} MiB "
                  f"{r['peak_mib']:>5.0f} MiB {quality:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
