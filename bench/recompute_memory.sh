#!/usr/bin/env bash
# Memory of CPU training with and without recomputation, against depth: each run trains
# 2 steps (width 256, 4 heads, T 1024, B 4, strided l 32) and reports the activation
# buffers it holds and the process's peak resident memory.
#   bench/recompute_memory.sh [LAYERS...]     (default: 4 16 64)
set -euo pipefail
cd "$(dirname "$0")/.."
spt=build/spt
[ -x "$spt" ] || { echo "build spt first: bash tools/test.sh or cmake --build build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 400000 /dev/urandom > "$work/random.bin"
layers=("$@")
[ ${#layers[@]} -gt 0 ] || layers=(4 16 64)
printf "%-7s %-10s %-16s %-12s %s\n" layers recompute "activations MiB" "peak RSS MiB" "parameters+optimizer MiB"
for L in "${layers[@]}"; do
  for recompute in true false; do
    rm -rf "$work/run"
    log=$("$spt" train --data "$work/random.bin" --data-format bytes --out "$work/run" --layers "$L" --width 256 \
      --heads 4 --ctx 1024 --pattern strided --stride 32 --batch 4 --steps 2 --eval-every 0 --eval-batches 1 \
      --save-every 0 --recompute "$recompute" 2>&1)
    acts=$(sed -n 's/.*memory: activations \([0-9]*\) MiB.*/\1/p' <<<"$log")
    peak=$(sed -n 's/.*peak resident memory \([0-9]*\) MiB.*/\1/p' <<<"$log")
    params=$(sed -n 's/.*(\([0-9.]*\) MiB fp32), optimizer state \([0-9.]*\) MiB.*/\1 \2/p' <<<"$log" | awk '{print $1 + $2}')
    printf "%-7s %-10s %-16s %-12s %s\n" "$L" "$recompute" "$acts" "$peak" "$params"
  done
done
