#!/usr/bin/env bash
# The two commands of a short GPU session (issue 18), typed in the repository root of the GPU machine
# with .gpu/ carried (scripts/prepare_gpu_carry.sh):
#   bash scripts/gpu_session.sh smoke   # about 2 min: both trainings at once for SMOKE_MINUTES (0.75),
#                                       # exports, a score: proves the pipeline, measures the rates;
#                                       # last line: SMOKE OK derainlite=<steps/s> plnlin=<steps/s>
#   bash scripts/gpu_session.sh train   # about TRAIN_MINUTES (7) + 1.3 min: both trainings at once,
#                                       # fp16 exports, scores on the four evaluation sample sets
# Each training is scripts/train_gpu.sh with its recipe (derainlite-v4, plnlin-derain), 8 CPU threads
# each, on the one GPU; the CPU cores only decode the images once (rain is made on the GPU).
# Everything that matters comes back in ONE tar under $OUT (gpu_smoke.tar or gpu_train.tar, at most
# 15 MiB): the fp16 .safetensors exports, each run's config.json, log.csv, progress.png and output,
# scores.txt, env.txt and session.log. SPLIT_CHECKPOINTS=derainlite (or plnlin) also brings that run's
# checkpoint.pt back, as $OUT/NAME-checkpoint.tar.partNN files of 15 MiB, to resume it later.
#
# Environment: OUT (required), DL_BATCH / PL_BATCH, DL_EXTRA / PL_EXTRA (JSON merged into a recipe),
# SMOKE_MINUTES, TRAIN_MINUTES, PYTHON (python3), GPU_CARRY (.gpu), GPU_WORK (/tmp/gpu_session).
# GPU_SESSION_DRY=1 rehearses either mode on a CPU: tiny crops, batches and networks, a few seconds
# of training, --device cpu with the device rain synthesis on CPU tensors, the venv's python.
set -uo pipefail

MODE="${1:-}"
case "$MODE" in smoke|train) ;; *) echo "usage: gpu_session.sh smoke|train" >&2; exit 2 ;; esac
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CARRY="${GPU_CARRY:-$REPO/.gpu}"
: "${OUT:?gpu_session.sh: set OUT to the folder that comes back}"
DRY="${GPU_SESSION_DRY:-0}"
if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-$REPO/.venv/bin/python}"
  WORK="${GPU_WORK:-$(mktemp -d)}"
  SITE="$WORK/site"
else
  PY="${PYTHON:-python3}"
  WORK="${GPU_WORK:-/tmp/gpu_session}"
  SITE=/tmp/site
fi
RUNS="$WORK/$MODE/runs"
RESULT="$WORK/$MODE/result"
rm -rf "${WORK:?}/$MODE"
mkdir -p "$RUNS" "$RESULT" "$OUT"
EVAL_SETS=(rain200h-samples rain100l-samples spa-samples test100-samples)
[ "$MODE" = smoke ] && EVAL_SETS=(rain200h-samples)
MODELS=(derainlite plnlin)
declare -A RECIPE=([derainlite]=derainlite-v4 [plnlin]=plnlin-derain)
declare -A EXPORT=([derainlite]=derainlite-v4.safetensors [plnlin]=plnlin-derain.safetensors)

# Per-model settings: the recipe's, unless overridden; in a dry run, tiny.
if [ "$MODE" = smoke ]; then
  MINUTES="${SMOKE_MINUTES:-0.75}"
  COMMON='{"val_every": 100, "log_every": 10, "ckpt_every": 100000}'
else
  MINUTES="${TRAIN_MINUTES:-7}"
  COMMON='{}'
fi
declare -A BATCH=([derainlite]="${DL_BATCH:-}" [plnlin]="${PL_BATCH:-}") CROP=()
declare -A EXTRA=([derainlite]="${DL_EXTRA:-}" [plnlin]="${PL_EXTRA:-}")
DEVICE=auto SYNTH_DEVICE="" THREADS=8 EVAL_DEVICE=cuda
if [ "$DRY" = 1 ]; then
  MINUTES=$([ "$MODE" = smoke ] && echo 0.15 || echo 0.3)
  DEVICE=cpu SYNTH_DEVICE=device THREADS=1 EVAL_DEVICE=cpu
  BATCH=([derainlite]=2 [plnlin]=2)
  CROP=([derainlite]=64 [plnlin]=32)
  EXTRA[derainlite]='{"val_size": 64, "val_synth": 2, "val_every": 5, "log_every": 2, "ckpt_every": 10}'
  EXTRA[plnlin]='{"val_size": 48, "val_synth": 2, "val_every": 3, "log_every": 1, "ckpt_every": 10,
    "arch_config": {"channels": 8, "encoder_depths": [1, 1], "decoder_depths": [1, 1],
                    "fusion_depths": [1, 1], "window": 4, "heads": 2, "mlp_ratio": 1.0}}'
fi

session() {
  echo "== gpu_session.sh $MODE (dry run: $DRY) in $WORK, $(date -u +%FT%TZ)"
  if compgen -G "$CARRY/whl/*.whl" >/dev/null; then
    local target=()  # a dry run checks that the wheels install for the GPU machine's python
    [ "$DRY" = 1 ] && target=(--python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all:)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      "${target[@]}" "$CARRY"/whl/*.whl || echo "warning: installing the wheels of $CARRY/whl failed"
  fi
  export PYTHONPATH="$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS="$THREADS"
  export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHON="$PY"
  { nvidia-smi 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
      "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0)); import derain_cli.cli'
    nproc; free -g 2>/dev/null | head -2; } > "$RESULT/env.txt" 2>&1
  head -c 2000 "$RESULT/env.txt"; echo

  local name pids=() merged
  for name in "${MODELS[@]}"; do
    merged="$("$PY" -c 'import json, sys; print(json.dumps({k: v for a in sys.argv[1:] for k, v in json.loads(a).items()}))' \
      "$COMMON" "${EXTRA[$name]:-"{}"}")"
    ( DATA="$CARRY/data" DEVICE="$DEVICE" THREADS="$THREADS" SYNTH_DEVICE="$SYNTH_DEVICE" \
        BATCH="${BATCH[$name]:-}" CROP="${CROP[$name]:-}" EXTRA="$merged" \
        TRAIN_TIMEOUT="$("$PY" -c "print(int(float('$MINUTES') * 60 + 150))")" \
        bash "$REPO/scripts/train_gpu.sh" "${RECIPE[$name]}" "$RUNS/$name" "$MINUTES"
      echo $? > "$RUNS/$name.status" ) > "$RESULT/$name.out" 2>&1 &
    pids+=($!)
  done
  echo "training ${MODELS[*]} at once for $MINUTES min each (outputs: $RESULT/*.out) ..."
  wait "${pids[@]}"

  for name in "${MODELS[@]}"; do
    echo "== $name: exit status $(cat "$RUNS/$name.status" 2>/dev/null || echo '?') (0 finished, 130 stopped by the budget)"
    tail -n 12 "$RESULT/$name.out"
    mkdir -p "$RESULT/$name"
    cp "$RUNS/$name/config.json" "$RUNS/$name/log.csv" "$RUNS/$name/progress.png" "$RESULT/$name/" 2>/dev/null
    [ -f "$RUNS/$name.safetensors" ] && cp "$RUNS/$name.safetensors" "$RESULT/${EXPORT[$name]}"
  done

  echo "== scores (restormer convention, whole images, float32 on $EVAL_DEVICE)"
  local sets=() s
  for s in "${EVAL_SETS[@]}"; do sets+=("$CARRY/data/paired/$s"); done
  { for name in "${MODELS[@]}"; do
      [ -f "$RESULT/${EXPORT[$name]}" ] || { echo "$name: no export"; continue; }
      echo "${EXPORT[$name]}"
      "$PY" -m derain_cli.train.evaluate --device "$EVAL_DEVICE" "$RESULT/${EXPORT[$name]}" "${sets[@]}" 2>&1
    done
    if [ "$MODE" = train ] && [ -f "$REPO/derain_cli/assets/derainlite.safetensors" ]; then
      echo "derainlite:v3 (the bundled model, for reference)"
      "$PY" -m derain_cli.train.evaluate --device "$EVAL_DEVICE" "$REPO/derain_cli/assets/derainlite.safetensors" \
        "${sets[@]}" 2>&1
    fi; } | tee "$RESULT/scores.txt"

  "$PY" - "$MODE" "$RUNS" "$RESULT" "${MODELS[@]}" <<'PY' | tee "$RESULT/summary.txt"
import csv, json, re, sys
from pathlib import Path

mode, runs, result, names = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
rates, problems = {}, []
for name in names:
    run = runs / name
    status = (runs / f"{name}.status").read_text().strip() if (runs / f"{name}.status").exists() else "?"
    if status not in ("0", "130"):
        problems.append(f"{name} exited {status}")
    if not (result / {"derainlite": "derainlite-v4", "plnlin": "plnlin-derain"}[name]).with_suffix(".safetensors").exists():
        problems.append(f"{name} has no export")
    try:
        rows = list(csv.DictReader(open(run / "log.csv")))
        cfg = json.load(open(run / "config.json"))
    except OSError:
        problems.append(f"{name} has no log")
        continue
    timed = [r for r in rows if r["elapsed_s"]]
    start = next((r for r in timed if int(r["step"]) >= 20), timed[0])
    end = timed[-1]
    dt = float(end["elapsed_s"]) - float(start["elapsed_s"])
    rate = (int(end["step"]) - int(start["step"])) / dt if dt > 0 else float("nan")
    rates[name] = rate
    out = (result / f"{name}.out").read_text(errors="replace")
    peak = re.findall(r"peak GPU memory ([\d.]+) GiB", out)
    fitted = re.findall(r"budget: .*", out)
    val = [r for r in rows if r["val_psnr"]]
    last = f"{float(val[-1]['val_psnr']):.2f} dB at step {val[-1]['step']}" if val else "none"
    print(f"{name}: step {end['step']} of {cfg['steps']}, {rate:.2f} steps/s = {rate * cfg['batch']:.1f} samples/s "
          f"(batch {cfg['batch']}, crop {cfg['crop']}), steps {start['step']}-{end['step']} in {dt:.1f} s; "
          f"peak GPU memory {peak[-1] if peak else '?'} GiB; last validation {last}"
          + (f"; {fitted[-1]}" if fitted else ""))
summary = " ".join(f"{n}={rates.get(n, float('nan')):.2f}" for n in names)
word = "SMOKE" if mode == "smoke" else "TRAIN"
final = f"{word} OK {summary}" if not problems else f"{word} FAILED {'; '.join(problems)} ({summary})"
(result / "final.txt").write_text(final + "\n")
PY
}

pack() {
  local tar="$OUT/gpu_$MODE.tar" limit=$((15 * 1024 * 1024)) name
  (cd "$RESULT" && tar -cf "$tar" --exclude=final.txt .)
  for name in "${MODELS[@]}"; do  # a checkpoint too where it fits
    if [ -f "$RUNS/$name/checkpoint.pt" ] && \
       [ $(( $(stat -c %s "$tar") + $(stat -c %s "$RUNS/$name/checkpoint.pt") + 10240 )) -lt $limit ]; then
      tar -rf "$tar" -C "$RUNS" "$name/checkpoint.pt"
    fi
  done
  if [ "$(stat -c %s "$tar")" -gt $limit ]; then  # drop the largest extras until it fits
    echo "warning: $tar is over 15 MiB; leaving out the progress charts and outputs"
    (cd "$RESULT" && tar -cf "$tar" --exclude=final.txt --exclude='*.png' --exclude='*.out' .)
  fi
  for name in ${SPLIT_CHECKPOINTS:-}; do
    [ -f "$RUNS/$name/checkpoint.pt" ] || continue
    tar -cf - -C "$RUNS" "$name/checkpoint.pt" "$name/config.json" | split -b 15M -d - "$OUT/$name-checkpoint.tar.part"
  done
  ls -l "$OUT"
}

session 2>&1 | tee "$RESULT/session.log"
pack
cat "$RESULT/final.txt" 2>/dev/null || echo "${MODE^^} FAILED: no summary (see session.log)"
