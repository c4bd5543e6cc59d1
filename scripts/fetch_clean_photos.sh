#!/usr/bin/env bash
# Fetch the extra clean photographs that phase 4 of scripts/train_default.sh rains on: 14 photos
# from Debian's lomiri-wallpapers-16.04 and -20.04 packages (Ubuntu community wallpaper contest;
# CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0, see the packages' copyright files, copied beside the photos),
# scaled to a short side of 1080 px. Graphics and gradients in those packages are left out.
#   scripts/fetch_clean_photos.sh [OUT_DIR]     (default: runs/clean-lomiri)
# Needs apt-get (Debian/Ubuntu) to download the two packages (nothing is installed) and a python
# with Pillow on PATH (the environment where derain is installed).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$REPO/runs/clean-lomiri}"
PHOTOS=(
  Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace Picture_1A_by_freespace
  Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi free_by_Peter_Nerlich friends_by_Aitzol_Berasategi
  greentock_by_Peter_Nerlich life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi
  seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi Kleiber_by_Lukas_Baubkus
)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null)
for deb in "$TMP"/*.deb; do dpkg-deb -x "$deb" "$TMP/root"; done
mkdir -p "$OUT"
cp "$TMP"/root/usr/share/doc/lomiri-wallpapers-16.04/copyright "$OUT/COPYRIGHT-16.04"
cp "$TMP"/root/usr/share/doc/lomiri-wallpapers-20.04/copyright "$OUT/COPYRIGHT-20.04"
python - "$TMP/root/usr/share/backgrounds" "$OUT" "${PHOTOS[@]}" <<'PY'
import sys
from pathlib import Path
from PIL import Image

src, out, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
for name in names:
    with Image.open(src / f"{name}.jpg") as im:
        im = im.convert("RGB")
        f = 1080 / min(im.size)
        if f < 1:
            im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
        im.save(out / f"{name}.png")
print(f"{len(names)} photos in {out}")
PY
