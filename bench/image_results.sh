#!/usr/bin/env bash
# One-GPU image results (docs/RESULTS.md): trains an image preset (mnist, fashion) for a
# fixed time, scores the whole test split with RUN/best's weight average, its raw weights and
# the last checkpoint, draws 16 unconditional samples and 8 completions of the top half of
# test images (PNG grids beside the originals), and prints one JSON line of results.
# --ablation trains the pattern and EMA variants (strided, dense, fixed c = l/4, strided
# without EMA) for SECONDS each and prints one line per variant: the paper's table 2 at
# small scale, bits and time.
#   bench/image_results.sh PRESET DATA SECONDS [spt train flags...]
#   bench/image_results.sh --ablation PRESET DATA SECONDS [spt train flags...]
# e.g. SPT=build-gpu/spt bench/image_results.sh mnist data/mnist 450
# Environment: see bench/results_common.sh (SPT, DEVICE, PRECISION, RUNS, PROBE_STEPS, EVAL_BATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/results_common.sh
ablation=0
if [ "${1:-}" = --ablation ]; then ablation=1; shift; fi
[ $# -ge 3 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
preset="$1" data="$2" seconds="$3"
shift 3
mkdir -p "$RUNS"
# The training split: the official training images less the last 5,000 (validation).
train_pixels=$((55000 * 784))

if [ $ablation = 1 ]; then
  stride=$("$SPT" train --preset "$preset" "$@" --print-config | python3 -c \
    'import json, sys; t = sys.stdin.read(); print(json.loads(t[:t.index("\n}\n") + 2])["model"]["stride"])')
  for variant in strided dense fixed strided-no-ema; do
    case $variant in
      strided) flags=() ;;
      dense) flags=(--pattern dense) ;;
      fixed) flags=(--pattern fixed --summary $((stride / 4 > 0 ? stride / 4 : 1))) ;;
      strided-no-ema) flags=(--ema 0) ;;
    esac
    run="$RUNS/$preset-ablation-$variant"
    train_fitted "$run" "$preset" "$data" "$seconds" "$@" "${flags[@]}"
    score_run "$run" --best-only
    summarize "$run" "$preset" "variant=$variant" "train_split_tokens=$train_pixels"
  done
  exit 0
fi

run="$RUNS/$preset"
train_fitted "$run" "$preset" "$data" "$seconds" "$@"
score_run "$run"
rows=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["pos_sizes"][0])' "$run/config.json")
"$SPT" sample --checkpoint "$run/best" --count 16 --device "$DEVICE" --out "$run/samples.png" >/dev/null
"$SPT" sample --checkpoint "$run/best" --count 8 --prefix-rows $((rows / 2)) --device "$DEVICE" \
  --out "$run/completions.png" >/dev/null
summarize "$run" "$preset" "data=$data" "eval_seconds=$eval_seconds" "samples=$run/samples.png" \
  "completions=$run/completions.png" "train_split_tokens=$train_pixels" | tee "$run/results.json"
