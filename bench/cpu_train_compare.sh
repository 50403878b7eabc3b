#!/usr/bin/env bash
# CPU training throughput of spt against the same network in PyTorch (Debian's
# python3-torch, explicit masked attention), on the same machine in the same run.
#   bench/cpu_train_compare.sh [THREADS]    (default: nproc)
# Model: 4 layers, width 256, 4 heads, strided l 32, dropout 0, AdamW, clip 1.0.
# Cases: (T 1024, B 4) and (T 4096, B 1). Prints one line per (impl, case) and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
export OMP_NUM_THREADS="$threads"
spt=build/spt
[ -x "$spt" ] || { echo "build spt first: bash tools/test.sh or cmake --build build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 2000000 /dev/urandom > "$work/random.bin"
steps=8
printf "%-8s %-6s %-3s %12s %10s\n" impl T B tokens/s step_ms
for case in "1024 4" "4096 1"; do
  set -- $case
  T=$1 B=$2
  rm -rf "$work/run"
  "$spt" train --data "$work/random.bin" --data-format bytes --out "$work/run" --layers 4 --width 256 --heads 4 \
    --ctx "$T" --pattern strided --stride 32 --dropout 0 --batch "$B" --steps $steps --warmup 1 \
    --eval-every 0 --eval-batches 1 --save-every 0 >/dev/null 2>&1
  # Median over the steps after the first (warm-up).
  tps=$(/usr/bin/python3 -c "
import json,statistics,sys
rows=[json.loads(l) for l in open('$work/run/metrics.jsonl') if '\"tokens_per_s\"' in l]
v=statistics.median(r['tokens_per_s'] for r in rows[1:]); print(f'{v:.0f} {$T*$B/v*1e3:.1f}')")
  printf "%-8s %-6s %-3s %12s %10s\n" spt "$T" "$B" $tps
  torch_line=$(/usr/bin/python3 bench/torch_cpu_train.py --ctx "$T" --batch "$B" --stride 32 --threads "$threads" \
    --steps $steps)
  /usr/bin/python3 -c "
import json; r=json.loads('''$torch_line''')
print(f\"{'pytorch':<8} {$T:<6} {$B:<3} {r['tokens_per_s']:>12.0f} {r['step_ms']:>10.1f}\")"
done
