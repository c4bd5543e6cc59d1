"""Before/after grid of real rainy photographs (no ground truth) for the README.

    python scripts/real_grid.py OUT.jpg [-m MODEL] [--height PX] IMAGE [IMAGE ...]

Each row is one photograph: the rainy input on the left, the model's output on the right, both
scaled to the same height after deraining at full size. MODEL defaults to the built-in model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from derain_cli import Derainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--height", type=int, default=300, help="row height in pixels")
    args = ap.parse_args()

    derainer = Derainer(args.model, device="cpu")
    rows = []
    for path in args.images:
        with Image.open(path) as im:
            before = im.convert("RGB")
        after = derainer.derain(before)
        w = round(before.width * args.height / before.height)
        pair = Image.new("RGB", (2 * w + 6, args.height), "white")
        pair.paste(before.resize((w, args.height), Image.LANCZOS), (0, 0))
        pair.paste(after.resize((w, args.height), Image.LANCZOS), (w + 6, 0))
        rows.append(pair)
        print(f"{path}: {before.width}x{before.height}")
    width = max(r.width for r in rows)
    grid = Image.new("RGB", (width, sum(r.height for r in rows) + 6 * (len(rows) - 1)), "white")
    y = 0
    for r in rows:
        grid.paste(r, ((width - r.width) // 2, y))
        y += r.height + 6
    grid.save(args.out, quality=85, optimize=True)
    print(f"wrote {args.out} ({grid.width}x{grid.height}, model {derainer.name})")


if __name__ == "__main__":
    main()
