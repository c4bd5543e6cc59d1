#!/usr/bin/env bash
# Time-boxed training of one model on one GPU with a recipe of scripts/gpu_recipes/, then its export.
#   scripts/train_gpu.sh RECIPE RUN_DIR [MINUTES]
#     RECIPE   derainlite-v4 (the built-in model's candidate: DerainLite 32/128, from scratch) or
#              plnlin-derain (PLNLIN with MCDDL, from scratch); see docs/training.md
#     MINUTES  wall-clock budget of the training itself (default 7): the learning-rate schedule is
#              fitted to it once the step rate is known, and the run stops, validated and
#              checkpointed, when the budget ends (resume with `derain train --resume RUN_DIR`)
# Writes RUN_DIR (config.json, checkpoint.pt, log.csv, progress.png) and RUN_DIR.safetensors (the
# EMA weights in float16). Exit status: the training's (0 finished, 130 stopped by the budget).
#
# Data (never the evaluation sets): DATA (default: .gpu/data if present, else ../shared/data) holds
#   paired/did-samples                      the training pairs (15 % held out for validation)
#   paired/heavyrain-samples/target         clean images only (its rainy inputs carry haze)
#   clean/*  and  runs/clean-lomiri, runs/clean-plasma if present (scripts/fetch_clean_photos.sh)
#                                           clean photos to rain on, on the GPU (synth_torch)
# Environment: PYTHON (default python3), DEVICE (auto), THREADS (CPU threads, default 8),
# TRAIN_TIMEOUT (seconds: SIGTERM to the training, which then stops with a checkpoint), and
# overrides of the recipe: BATCH, CROP, LR, SYNTH_DEVICE, EXTRA (a JSON object merged last).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RECIPE="${1:?usage: train_gpu.sh RECIPE RUN_DIR [MINUTES]}"
RUN="${2:?usage: train_gpu.sh RECIPE RUN_DIR [MINUTES]}"
MINUTES="${3:-7}"
PYTHON="${PYTHON:-python3}"
RECIPE_FILE="$REPO/scripts/gpu_recipes/$RECIPE.json"
[ -f "$RECIPE_FILE" ] || { echo "train_gpu.sh: no recipe $RECIPE_FILE" >&2; exit 2; }
if [ -z "${DATA:-}" ]; then
  if [ -d "$REPO/.gpu/data" ]; then DATA="$REPO/.gpu/data"; else DATA="${DERAIN_SHARED:-$REPO/../shared}/data"; fi
fi

CLEAN=()
for d in "$DATA"/clean/*; do
  [ -d "$d" ] && CLEAN+=("$d")
done
for set in lomiri plasma; do  # fetched beside the repository, unless DATA has them already
  [ -d "$DATA/clean/$set" ] || [ ! -d "$REPO/runs/clean-$set" ] || CLEAN+=("$REPO/runs/clean-$set")
done
CLEAN+=("$DATA/paired/did-samples/target" "$DATA/paired/heavyrain-samples/target")
for d in "$DATA/paired/did-samples" "${CLEAN[@]}"; do
  [ -d "$d" ] || { echo "train_gpu.sh: missing $d (set DATA)" >&2; exit 2; }
done
SYNTH="$(IFS=,; echo "${CLEAN[*]}")"

mkdir -p "$(dirname "$RUN")"
CONFIG="$RUN.config.json"
"$PYTHON" - "$RECIPE_FILE" "$CONFIG" <<'PY'
import json, os, sys

cfg = json.load(open(sys.argv[1]))
cfg["device"] = os.environ.get("DEVICE", "auto")
cfg["threads"] = int(os.environ.get("THREADS", "8"))
for key, name, kind in [("batch", "BATCH", int), ("crop", "CROP", int), ("lr", "LR", float),
                        ("synth_device", "SYNTH_DEVICE", str)]:
    if os.environ.get(name):
        cfg[key] = kind(os.environ[name])
cfg.update(json.loads(os.environ.get("EXTRA") or "{}"))
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PY
ARCH="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["arch"])' "$CONFIG")"

LIMIT=()
[ -n "${TRAIN_TIMEOUT:-}" ] && LIMIT=(timeout --signal=TERM --kill-after=60 "$TRAIN_TIMEOUT")
status=0
if [ -f "$RUN/checkpoint.pt" ]; then
  "${LIMIT[@]}" "$PYTHON" -m derain_cli train --resume "$RUN" --minutes "$MINUTES" || status=$?
else
  "${LIMIT[@]}" "$PYTHON" -m derain_cli train "$ARCH" --data "$DATA/paired/did-samples" --synth "$SYNTH" \
    --config "$CONFIG" --out "$RUN" --minutes "$MINUTES" || status=$?
fi
if [ -f "$RUN/checkpoint.pt" ]; then
  "$PYTHON" -c 'import sys; from derain_cli.train.export import main; sys.exit(main(sys.argv[1:]))' \
    "$RUN" "$RUN.safetensors" float16
fi
exit "$status"
