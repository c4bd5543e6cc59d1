#!/usr/bin/env bash
# Reproduce the built-in default model (derainlite:v1) from scratch, in two phases:
#   1. RUN_DIR: 4000 steps, 128x128 crops, batch 8, cosine from 8e-4 to 1e-5;
#   2. RUN_DIR-p2: a copy of phase 1 continued to 7000 steps with 192x192 crops, batch 6 (a warm
#      restart: the cosine is stretched to 7000 steps, so the learning rate jumps to 3.3e-4).
#   scripts/train_default.sh [RUN_DIR]        (default RUN_DIR: runs/derainlite-v1)
# Needs the reference data beside the repository (../shared, or set DERAIN_SHARED) and an
# installed `derain` (pip install -e .). The shipped runs took 45 + 35 minutes on one CPU thread
# (see docs/training.md); re-running after an interruption resumes the phase where it stopped.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="${DERAIN_SHARED:-$REPO/../shared}"
RUN="${1:-$REPO/runs/derainlite-v1}"
RUN2="$RUN-p2"
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

# Phase 1 (a finished run resumes as a no-op).
if [ -f "$RUN/checkpoint.pt" ]; then
  derain train derainlite --resume "$RUN"
else
  derain train derainlite \
    --data "$DATA/paired/did-samples,$DATA/paired/heavyrain-samples" \
    --synth "$DATA/clean/mate-nature,$DATA/paired/did-samples/target,$DATA/paired/heavyrain-samples/target" \
    --config "$CONFIG" --out "$RUN"
fi

# Phase 2: continue a copy of phase 1 with larger crops (long streaks fit) and a longer schedule.
if [ ! -f "$RUN2/checkpoint.pt" ]; then
  rm -rf "$RUN2"
  cp -a "$RUN" "$RUN2"
  python - "$RUN2/config.json" <<'PY'
import sys
from derain_cli.train import TrainConfig
cfg = TrainConfig.from_file(sys.argv[1])
cfg.steps, cfg.crop, cfg.batch, cfg.val_every = 7000, 192, 6, 500
cfg.save(sys.argv[1])
PY
fi
derain train derainlite --resume "$RUN2"

derain export "$RUN2" --out "$OUT"
sha256sum "$OUT"
stat -c '%s bytes' "$OUT"
echo "update sha256 and size of derainlite:v1 in derain_cli/models/derainlite.py"

# Held-out benchmark scores (restormer convention).
python -m derain_cli.train.evaluate "$OUT" \
  "$DATA/paired/rain200h-samples" "$DATA/paired/rain100l-samples" \
  "$DATA/paired/spa-samples" "$DATA/paired/test100-samples"
