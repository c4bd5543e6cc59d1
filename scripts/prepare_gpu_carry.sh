#!/usr/bin/env bash
# Build the folder a GPU session carries (scripts/gpu_session.sh reads it), by default REPO/.gpu:
#   whl/                   wheels of the packages derain needs that the GPU machine lacks
#                          (python 3.12, manylinux x86_64; each dependency named, installed --no-deps)
#   data/clean/mate-nature, lomiri, plasma
#                          the clean training photos (scripts/fetch_clean_photos.sh), short side at
#                          most SHORT_SIDE px (default 720, the largest scale training draws from),
#                          JPEG quality 92, with their COPYRIGHT files
#   data/paired/did-samples, heavyrain-samples       training pairs, as they are
#   data/paired/rain200h-, rain100l-, spa-, test100-samples
#                          evaluation sets, for scoring only (never trained on)
#
#   scripts/prepare_gpu_carry.sh [CARRY_DIR]
# Needs ../shared (or DERAIN_SHARED), pip and apt-get (package downloads only) and the venv's python
# (PYTHON, default .venv/bin/python). Add `/.gpu/` to .git/info/exclude so git ignores the folder.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CARRY="${1:-$REPO/.gpu}"
SHARED="${DERAIN_SHARED:-$REPO/../shared}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
SHORT_SIDE="${SHORT_SIDE:-720}"
FETCHED="${FETCHED:-$REPO/runs}"  # where fetch_clean_photos.sh keeps clean-lomiri and clean-plasma
# Missing on the GPU machine (it has numpy, scipy, pillow, typer, rich, tqdm, requests, safetensors,
# filelock, pytest): derain's platformdirs and exifread, the tests' pytest-httpserver and its needs.
WHEELS=(platformdirs==4.14.9 exifread==3.5.1 pytest-httpserver==1.2.1 werkzeug==3.1.9 markupsafe==3.0.4)

mkdir -p "$CARRY/whl" "$CARRY/data/clean" "$CARRY/data/paired"
rm -f "$CARRY"/whl/*.whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d "$CARRY/whl" "${WHEELS[@]}"
for whl in "$CARRY"/whl/*.whl; do  # every requirement must be a wheel here, or not needed there
  echo "$(basename "$whl"): $(unzip -p "$whl" '*/METADATA' | grep '^Requires-Dist' | grep -v 'extra ==' \
    | sed 's/Requires-Dist: //' | paste -sd, - || true)"
done

for set in lomiri plasma; do
  [ -d "$FETCHED/clean-$set" ] || PATH="$(dirname "$PYTHON"):$PATH" "$REPO/scripts/fetch_clean_photos.sh" "$set" "$FETCHED/clean-$set"
done
"$PYTHON" - "$CARRY/data/clean" "$SHORT_SIDE" "$SHARED/data/clean/mate-nature" \
  "$FETCHED/clean-lomiri" "$FETCHED/clean-plasma" <<'PY'
import shutil
import sys
from pathlib import Path
from PIL import Image

out, short = Path(sys.argv[1]), int(sys.argv[2])
for src in map(Path, sys.argv[3:]):
    dst = out / src.name.removeprefix("clean-")
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.name.startswith("COPYRIGHT"):
            shutil.copy(path, dst / path.name)
        elif path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as im:
                im = im.convert("RGB")
                f = short / min(im.size)
                if f < 1:
                    im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
                im.save(dst / f"{path.stem}.jpg", quality=92)
    print(f"{dst}: {len(list(dst.glob('*.jpg')))} photos")
PY
for set in did-samples heavyrain-samples rain200h-samples rain100l-samples spa-samples test100-samples; do
  rm -rf "${CARRY:?}/data/paired/$set"
  cp -r "$SHARED/data/paired/$set" "$CARRY/data/paired/$set"
  chmod -R u+w "$CARRY/data/paired/$set"
done
du -sh "$CARRY"/whl "$CARRY"/data/clean/* "$CARRY"/data/paired/*
du -sh "$CARRY"
