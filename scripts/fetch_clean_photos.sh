#!/usr/bin/env bash
# Fetch extra clean photographs for scripts/train_default.sh to rain on, from Debian packages:
#   lomiri  (phase 4): 14 photos from lomiri-wallpapers-16.04 and -20.04 (Ubuntu community wallpaper
#           contest; CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0);
#   plasma  (phase 5): 11 photos from plasma-workspace-wallpapers (KDE; LGPL-3 or CC-BY-SA-4.0).
# The packages' copyright files are copied beside the photos; graphics, renders and gradients in
# those packages are left out. Photos are scaled to a short side of 1080 px and saved as PNG.
#   scripts/fetch_clean_photos.sh [lomiri|plasma] [OUT_DIR]   (default: lomiri, runs/clean-SET)
# Needs apt-get (Debian/Ubuntu) to download the packages (nothing is installed) and a python with
# Pillow on PATH (the environment where derain is installed).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SET="${1:-lomiri}"
OUT="${2:-$REPO/runs/clean-$SET}"
# Each entry: path inside the unpacked packages (without .jpg) [= output name].
case "$SET" in
  lomiri)
    PACKAGES=(lomiri-wallpapers-16.04 lomiri-wallpapers-20.04)
    PHOTOS=()
    for name in Bridge_by_Sander_Klootwijk Dragonfly_by_Bolly Picture_0B_by_freespace Picture_1A_by_freespace \
        Wine_by_Jakkub_Mede aitzgorri_by_Aitzol_Berasategi free_by_Peter_Nerlich friends_by_Aitzol_Berasategi \
        greentock_by_Peter_Nerlich life_by_Aitzol_Berasategi picosdeeuropa_by_Aitzol_Berasategi \
        seeding_by_Clements_Engelhardt sunset_by_Aitzol_Berasategi Kleiber_by_Lukas_Baubkus; do
      PHOTOS+=("usr/share/backgrounds/$name=$name")
    done
    ;;
  plasma)
    PACKAGES=(plasma-workspace-wallpapers)
    PHOTOS=()
    for name in BytheWater ColdRipple DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am; do
      PHOTOS+=("usr/share/wallpapers/$name/contents/images/2560x1600=$name")
    done
    PHOTOS+=("usr/share/wallpapers/Volna/contents/images/5120x2880=Volna")
    ;;
  *) echo "fetch_clean_photos.sh: unknown set '$SET' (lomiri or plasma)" >&2; exit 2 ;;
esac

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && apt-get download "${PACKAGES[@]}" >/dev/null 2>&1) || {
  echo "fetch_clean_photos.sh: apt-get download ${PACKAGES[*]} failed" >&2; exit 1; }
mkdir -p "$OUT"
for deb in "$TMP"/*.deb; do
  dpkg-deb -x "$deb" "$TMP/root"
  pkg="$(basename "$deb")"; pkg="${pkg%%_*}"
  cp "$TMP/root/usr/share/doc/$pkg/copyright" "$OUT/COPYRIGHT-$pkg"
done
python - "$TMP/root" "$OUT" "${PHOTOS[@]}" <<'PY'
import sys
from pathlib import Path
from PIL import Image

root, out, entries = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
for entry in entries:
    src, _, name = entry.partition("=")
    with Image.open(root / f"{src}.jpg") as im:
        im = im.convert("RGB")
        f = 1080 / min(im.size)
        if f < 1:
            im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
        im.save(out / f"{name}.png")
print(f"{len(entries)} photos in {out}")
PY
