#!/usr/bin/env bash
# Reproduce the built-in default model (derainlite:v1) from scratch:
#   scripts/train_default.sh [RUN_DIR]        (default RUN_DIR: runs/derainlite-v1)
# Needs the reference data beside the repository (../shared, or set DERAIN_SHARED) and an
# installed `derain` (pip install -e .). The shipped run took 45 minutes on one CPU thread (see
# docs/training.md); re-running it after an interruption resumes the run where it stopped.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${DERAIN_SHARED:-$REPO/../shared}"
RUN="${1:-$REPO/runs/derainlite-v1}"
DATA="$SHARED/data"
OUT="$REPO/derain_cli/assets/derainlite.safetensors"

for d in "$DATA/clean/mate-nature" "$DATA/paired/did-samples" "$DATA/paired/heavyrain-samples"; do
  [ -d "$d" ] || { echo "train_default.sh: missing $d (set DERAIN_SHARED)" >&2; exit 1; }
done

# The recipe. Evaluation sets (rain200h, rain100l, spa, test100) are never used for training.
CONFIG="$(mktemp --suffix=.json)"
trap 'rm -f "$CONFIG"' EXIT
cat >"$CONFIG" <<'JSON'
{
  "synth_preset": "mixed",
  "synth_fraction": 0.7,
  "steps": 4000,
  "batch": 8,
  "crop": 128,
  "lr": 0.0008,
  "min_lr": 1e-05,
  "warmup": 200,
  "ema_decay": 0.998,
  "ssim_weight": 0.2,
  "amp": "auto",
  "threads": 1,
  "seed": 0,
  "val_every": 250,
  "ckpt_every": 100,
  "log_every": 25
}
JSON

if [ -f "$RUN/checkpoint.pt" ]; then
  derain train derainlite --resume "$RUN"
else
  derain train derainlite \
    --data "$DATA/paired/did-samples,$DATA/paired/heavyrain-samples" \
    --synth "$DATA/clean/mate-nature,$DATA/paired/did-samples/target,$DATA/paired/heavyrain-samples/target" \
    --config "$CONFIG" --out "$RUN"
fi

derain export "$RUN" --out "$OUT"
sha256sum "$OUT"
stat -c '%s bytes' "$OUT"
echo "update sha256 and size of derainlite:v1 in derain_cli/models/derainlite.py"

# Held-out benchmark scores (restormer convention).
python -m derain_cli.train.evaluate "$OUT" \
  "$DATA/paired/rain200h-samples" "$DATA/paired/rain100l-samples" \
  "$DATA/paired/spa-samples" "$DATA/paired/test100-samples"
