#!/usr/bin/env bash
# One-GPU text results (docs/RESULTS.md): trains a byte preset (kjv, gcide) for a fixed
# time, scores the whole test split (the last 5% of the file) with RUN/best's weight
# average, its raw weights and the last checkpoint, continues the first 256 test bytes
# twice (temperature 0.8), and prints one JSON line of results with xz -9e and zpaq -m5 on
# the same test bytes (data/compressors.json from tools/prepare_results_data.sh).
#   bench/text_results.sh PRESET DATA_FILE SECONDS [spt train flags...]
# e.g. SPT=build-gpu/spt bench/text_results.sh kjv data/kjv.txt 450
# Environment: see bench/results_common.sh (SPT, DEVICE, PRECISION, RUNS, PROBE_STEPS, EVAL_BATCH).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/results_common.sh
[ $# -ge 3 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
preset="$1" data="$2" seconds="$3"
shift 3
mkdir -p "$RUNS"
run="$RUNS/$preset"
train_fitted "$run" "$preset" "$data" "$seconds" "$@"
score_run "$run"
# The prompt: the first 256 bytes of the test split (spt's split: floor(0.95 n)).
python3 - "$data" "$run/prompt.txt" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
n = len(data)
start = n // 20 * 19 + n % 20 * 19 // 20
open(sys.argv[2], "wb").write(data[start:start + 256])
PY
"$SPT" sample --checkpoint "$run/best" --count 2 --length 768 --temperature 0.8 --prompt-file "$run/prompt.txt" \
  --device "$DEVICE" --out "$run/samples.txt" >/dev/null
size=$(stat -c %s "$data")
summarize "$run" "$preset" "data=$data" "eval_seconds=$eval_seconds" "samples=$run/samples.txt" \
  "train_split_tokens=$((size / 10 * 9 + size % 10 * 9 / 10))" | tee "$run/results.json"
