#!/usr/bin/env bash
# GPU memory of training against depth, with and without recomputation: width 512,
# 8 heads, T 12,288, fixed l 128 c 32, B 1, bf16. Each run trains one step and prints
# spt's device memory plan (every buffer is allocated up front, so the plan is the use).
#   bench/gpu_memory_depth.sh [BUILD_DIR] [LAYERS...]     (default: build-gpu, 8 32 128)
set -uo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-gpu}"
shift || true
layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=(8 32 128)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 1000000 /dev/urandom > "$work/random.bin"
printf "%-7s %-10s %s\n" layers recompute "device memory plan"
for L in "${layers[@]}"; do
  for recompute in true false; do
    rm -rf "$work/run"
    log=$("$build/spt" train --device cuda --precision bf16 --data "$work/random.bin" --data-format bytes \
      --out "$work/run" --layers "$L" --width 512 --heads 8 --ctx 12288 --pattern fixed --stride 128 --summary 32 \
      --batch 1 --steps 1 --eval-every 0 --eval-batches 1 --save-every 0 --recompute "$recompute" 2>&1)
    plan=$(sed -n 's/.*GPU: \(.*\)/\1/p' <<<"$log")
    [ -n "$plan" ] || plan="failed: $(tail -1 <<<"$log")"
    printf "%-7s %-10s %s\n" "$L" "$recompute" "$plan"
  done
done
