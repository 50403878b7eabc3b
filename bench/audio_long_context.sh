#!/usr/bin/env bash
# The paper's raw-audio models at their full contexts on one GPU: for each preset given,
# train on a prepared audio set for a fixed time (bf16, B 1, recomputation), then score the
# whole test split. Prints the memory plan, step time, tokens/s and test bits per sample;
# logs under $OUT (./out when unset).
#   bench/audio_long_context.sh BUILD DATA SECONDS PRESET[:LR] ...
#   e.g. bench/audio_long_context.sh build-gpu data/wesnoth-12k 120 audio-65k:3e-4 audio-1m:1e-3
set -uo pipefail
cd "$(dirname "$0")/.."
build="$1" data="$2" seconds="$3"
shift 3
OUT="${OUT:-./out}"
mkdir -p "$OUT"
for spec in "$@"; do
  preset="${spec%%:*}"
  lr="${spec#*:}"
  [ "$lr" = "$spec" ] && lr=3.5e-4
  run="$OUT/run-$preset"
  rm -rf "$run"
  "$build/spt" train --preset "$preset" --data "$data" --device "${DEVICE:-cuda}" --precision "${PRECISION:-bf16}" --out "$run" \
    --steps 1000000 --warmup "${WARMUP:-50}" --lr "$lr" --eval-every 0 --eval-batch 1 --save-every 0 --log-every 20 \
    --time-limit "$seconds" >"$OUT/train-$preset.log" 2>&1 || { echo "$preset: training FAILED"; tail -5 "$OUT/train-$preset.log"; }
  "$build/spt" eval --checkpoint "$run/checkpoint" --split test --device "${DEVICE:-cuda}" --batch 1 --max-windows "${EVAL_WINDOWS:-0}" --json \
    >"$OUT/eval-$preset.json" 2>"$OUT/eval-$preset.err" || { echo "$preset: eval FAILED"; tail -3 "$OUT/eval-$preset.err"; }
  python3 - "$run/metrics.jsonl" "$OUT/train-$preset.log" "$OUT/eval-$preset.json" "$preset" "$seconds" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tokens_per_s"' in l]
log = open(sys.argv[2]).read()
try:
    ev = json.load(open(sys.argv[3]))
except Exception:
    ev = {}
tps = statistics.median(r["tokens_per_s"] for r in rows[5:] or rows) if rows else None
mem = re.search(r"memory: (.*)", log)
kernels = re.search(r"attention kernels: (\S+)", log)
params = re.search(r"model: (\d+) parameters", log)
shape = re.search(r"(\d+) x (\d+) windows of (\d+) tokens per step", log)
step_tokens = int(shape.group(1)) * int(shape.group(2)) * int(shape.group(3)) if shape else None
print(json.dumps({"preset": sys.argv[4], "params": int(params.group(1)) if params else None,
                  "train_seconds": float(sys.argv[5]), "steps": len(rows),
                  "tokens_per_s": tps, "step_ms": 1e3 * step_tokens / tps if tps and step_tokens else None,
                  "last_train_bits": rows[-1]["bits"] if rows else None,
                  "test_bits_per_sample": ev.get("bits_per_dim"), "test_tokens": ev.get("tokens"),
                  "test_skipped_tokens": ev.get("skipped_tokens"),
                  "attention": kernels.group(1) if kernels else None, "memory": mem.group(1) if mem else None}))
PY
done
