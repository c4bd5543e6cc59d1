"""Compare the device (torch) rain synthesis with the numpy one, statistically, and draw a grid.

For each preset, rain is added to the same clean images by both renderers (many draws each) and
three figures of the added rain (mean over RGB of rainy - clean) are printed per image draw:
the mean added intensity and the fractions of pixels brightened by more than 0.05 and 0.3, the
figures docs/training.md gives for Rain200H. Their mean, and 10th-90th percentiles, are printed
side by side, plus the real Rain200H pairs' figures when the reference data is there.

    .venv/bin/python scripts/compare_synth.py [--draws 8] [--presets streaks,light,medium]
        [--size 256] [--grid grid.png] [--device cpu]

``--size`` takes a random square crop of each clean image (0: whole images, as the docs' figures).
``--grid`` writes a PNG: one row per preset, clean / numpy / torch / torch / torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def figures(rainy: np.ndarray, clean: np.ndarray) -> tuple[float, float, float]:
    """(mean added intensity, share brightened > 0.05, share > 0.3) of H x W x 3 float images."""
    rain = (rainy - clean).mean(-1)
    return float(rain.mean()), float((rain > 0.05).mean()), float((rain > 0.3).mean())


def summary(rows: list[tuple[float, float, float]]) -> str:
    a = np.array(rows)
    return "  ".join(f"{a[:, i].mean():.3f} ({np.percentile(a[:, i], 10):.2f}-{np.percentile(a[:, i], 90):.2f})"
                     for i in range(3))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8, help="rain draws per image and renderer")
    parser.add_argument("--presets", default="streaks,light,medium")
    parser.add_argument("--size", type=int, default=0, help="random square crop (0: whole images)")
    parser.add_argument("--clean", default=None, help="folder of clean images (default: rain200h targets)")
    parser.add_argument("--grid", default=None, help="write a comparison grid PNG here")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from derain_cli.train.data import load_uint8, paired_files
    from derain_cli.train.synth import add_rain, image_files
    from derain_cli.train.synth_torch import add_rain_batch

    shared = Path(os.environ.get("DERAIN_SHARED", REPO.parent / "shared"))
    rain200h = shared / "data" / "paired" / "rain200h-samples"
    folder = Path(args.clean) if args.clean else rain200h / "target"
    rng = np.random.default_rng(0)
    images = []
    for path in image_files(folder):
        img = load_uint8(path).astype(np.float32) / 255.0
        if args.size:
            h, w = img.shape[:2]
            y, x = rng.integers(0, h - args.size + 1), rng.integers(0, w - args.size + 1)
            img = img[y : y + args.size, x : x + args.size]
        images.append(img)
    device = torch.device(args.device)
    generator = torch.Generator(device=device)
    print(f"{len(images)} clean images from {folder}, {args.draws} draws each; "
          "figures: mean added intensity, share > 0.05, share > 0.3: mean (10th-90th percentile)")
    if rain200h.is_dir() and not args.clean:
        real = [figures(load_uint8(i).astype(np.float32) / 255, load_uint8(t).astype(np.float32) / 255)
                for i, t in paired_files(rain200h)]
        print(f"{'Rain200H pairs':<22} {summary(real)}")
    grid_rows = []
    for preset in args.presets.split(","):
        numpy_rows, torch_rows = [], []
        row_images = None
        for i, clean in enumerate(images):
            scale = max(1.0, min(clean.shape[:2]) / 400)
            for k in range(args.draws):
                rainy = add_rain(clean, np.random.default_rng([1, i, k]), preset, scale)
                numpy_rows.append(figures(rainy, clean))
                if row_images is None:
                    row_images = [clean, rainy]
            batch = torch.from_numpy(clean).permute(2, 0, 1)[None].repeat(args.draws, 1, 1, 1).to(device)
            out = add_rain_batch(batch, np.random.default_rng([2, i]), preset, scale, generator)
            out = out.permute(0, 2, 3, 1).cpu().numpy()
            torch_rows += [figures(o, clean) for o in out]
            if len(row_images) == 2:
                row_images += list(out[:3])
        print(f"{preset + ' numpy':<22} {summary(numpy_rows)}")
        print(f"{preset + ' torch':<22} {summary(torch_rows)}")
        grid_rows.append(row_images)
    if args.grid:
        rows = [np.concatenate(r, axis=1) for r in grid_rows]
        grid = np.concatenate(rows, axis=0)
        Image.fromarray((np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8)).save(args.grid)
        print(f"wrote {args.grid}: rows {args.presets}; columns clean, numpy, torch x3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
