#!/usr/bin/env bash
# GPU training throughput of spt's enwik8 preset (B 2, T 12,288) against the same model
# in PyTorch (bench/torch_reference.py: FlexAttention with the fixed mask, and dense
# cuDNN attention), in one run on one GPU. Logs under $OUT (./out when unset).
#   bench/gpu_train_compare.sh [BUILD_DIR] [STEPS]      (PEERS=0: spt only, no PyTorch runs)
set -uo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-gpu}"
steps="${2:-12}"
OUT="${OUT:-./out}"
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 3000000 /dev/urandom > "$work/random.bin"
# spt with the preset's fixed pattern, then strided (l 128) and dense: the paper's table 2.
for pattern in fixed strided dense; do
  flags=()
  case $pattern in
    strided) flags=(--pattern strided --stride 128) ;;
    dense) flags=(--pattern dense) ;;
  esac
  "$build/spt" train --preset enwik8 --device cuda --precision bf16 "${flags[@]}" --data "$work/random.bin" \
    --data-format bytes --batch 2 --steps "$steps" --warmup 1 --eval-every 0 --eval-batches 1 --save-every 0 \
    --out "$work/run-$pattern" >"$OUT/spt_train_$pattern.log" 2>&1 || { tail -5 "$OUT/spt_train_$pattern.log"; }
  python3 - "$work/run-$pattern/metrics.jsonl" "$pattern" "$OUT/spt_train_$pattern.log" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
tps = statistics.median(r["tokens_per_s"] for r in rows[3:] or rows)
log = open(sys.argv[3]).read()
mem = re.search(r"GPU: (.*)", log)
kernels = re.search(r"attention kernels: (\S+)", log)
print(json.dumps({"impl": "spt-bf16-" + sys.argv[2], "tokens_per_s": tps, "step_ms": 2 * 12288 / tps * 1e3,
                  "attention": kernels.group(1) if kernels else None, "memory": mem.group(1) if mem else None}))
PY
done
[ "${PEERS:-1}" = 0 ] && exit 0
for attention in flex dense; do
  python3 bench/torch_reference.py --attention "$attention" --steps "$steps" 2>"$OUT/torch_$attention.err" | tail -1
done
