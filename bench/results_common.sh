# Shared by bench/image_results.sh and bench/text_results.sh (sourced, not run): training
# a preset for a fixed time with a schedule that ends inside it, and scoring whole splits.
# Environment: SPT (binary, default build-gpu/spt), DEVICE (cuda | cpu, default cuda),
# PRECISION (default bf16 on cuda, fp32 on cpu), RUNS (run directories, default runs/results),
# PROBE_STEPS (steps timed before the run, default 30), EVAL_BATCH (windows per forward, 64),
# TEST_WINDOWS (test windows scored, default 0: the whole split; a CPU smoke run may bound it,
# and the results line says how many tokens were scored).
SPT="${SPT:-build-gpu/spt}"
DEVICE="${DEVICE:-cuda}"
PRECISION="${PRECISION:-$([ "$DEVICE" = cpu ] && echo fp32 || echo bf16)}"
RUNS="${RUNS:-runs/results}"
PROBE_STEPS="${PROBE_STEPS:-30}"
EVAL_BATCH="${EVAL_BATCH:-64}"
TEST_WINDOWS="${TEST_WINDOWS:-0}"

device_name() {
  if [ "$DEVICE" = cpu ]; then echo "cpu ($(nproc) cores)"; else
    nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 || echo "$DEVICE"; fi
}

# Times PROBE_STEPS steps of the configuration in a throwaway run and prints "STEPS WARMUP
# SECONDS_PER_STEP": the steps that fill the budget at the median step time of the probe's
# later two thirds (the first steps include cuBLAS and allocator warm-up), the preset's
# warmup cut to a tenth of them. A preset's --steps is an estimate from other shapes; this
# makes the cosine decay end inside the time on whatever card runs it.
#   fit_steps RUN PRESET DATA SECONDS [spt train flags...]
fit_steps() {
  local run="$1.probe" preset="$2" data="$3" seconds="$4"
  shift 4
  rm -rf "$run"
  "$SPT" train --preset "$preset" --data "$data" --out "$run" --device "$DEVICE" --precision "$PRECISION" \
    --stop-at "$PROBE_STEPS" --time-limit "$seconds" --log-every 10 "$@" >"$run.log" 2>&1 ||
    { tail -n 20 "$run.log" >&2; return 1; }
  /usr/bin/python3 - "$run" "$seconds" <<'PY'
import json, statistics, sys
run, budget = sys.argv[1], float(sys.argv[2])
config = json.load(open(f"{run}/config.json"))
train = config["train"]
tokens = train["batch"] * config["model"]["ctx"] * train.get("accumulate", 1)
rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
seconds = [tokens / r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
per_step = statistics.median(seconds[len(seconds) // 3:] or seconds)
steps = max(10, int(0.95 * budget / per_step))
print(steps, max(1, min(train["warmup"], steps // 10)), f"{per_step:.5f}")
PY
  rm -rf "$run"
}

# Trains RUN for about SECONDS of steps (validation not counted), ten validation passes of
# the preset's split, RUN/best kept; --time-limit stops it should the probe have misjudged.
#   train_fitted RUN PRESET DATA SECONDS [spt train flags...]
train_fitted() {
  local run="$1" preset="$2" data="$3" seconds="$4" fit steps warmup per_step
  shift 4
  fit=$(fit_steps "$run" "$preset" "$data" "$seconds" "$@") || return 1
  read -r steps warmup per_step <<<"$fit"
  echo "$preset: $per_step s a step in the probe: $steps steps, warmup $warmup, in ${seconds} s" >&2
  rm -rf "$run"
  "$SPT" train --preset "$preset" --data "$data" --out "$run" --device "$DEVICE" --precision "$PRECISION" \
    --steps "$steps" --warmup "$warmup" --eval-every $(((steps + 9) / 10)) --save-every "$steps" \
    --eval-batch "$EVAL_BATCH" --time-limit "$seconds" --log-every 100 "$@" >"$run.log" 2>&1 ||
    { tail -n 20 "$run.log" >&2; return 1; }
}

# One JSON line: `spt eval --json` of CHECKPOINT on the whole test split.
#   test_json CHECKPOINT [--raw-weights]
test_json() {
  "$SPT" eval --checkpoint "$1" --split test --json --device "$DEVICE" --precision "$PRECISION" \
    --batch "$EVAL_BATCH" --max-windows "$TEST_WINDOWS" "${@:2}"
}

# The whole test split scored with RUN/best's weight average and, when the run averages,
# its raw weights, then (unless --best-only) the last checkpoint, into RUN/test_*.json;
# sets eval_seconds.
#   score_run RUN [--best-only]
score_run() {
  local run="$1" start
  start=$(date +%s)
  test_json "$run/best" >"$run/test_best.json"
  if [ -f "$run/best/model_ema.safetensors" ]; then test_json "$run/best" --raw-weights >"$run/test_best_raw.json"; fi
  if [ "${2:-}" != --best-only ]; then test_json "$run/checkpoint" >"$run/test_last.json"; fi
  eval_seconds=$(($(date +%s) - start))
}

# The results line of RUN: training from metrics.jsonl, the test scores in RUN/test_*.json,
# the compressors' bits for the same test tokens (data/compressors.json, when there), and
# KEY=VALUE pairs given after RUN.
#   summarize RUN PRESET [KEY=VALUE...]
summarize() {
  /usr/bin/python3 - "$@" "device=$(device_name)" <<'PY'
import glob, json, os, statistics, sys
run, preset = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
config = json.load(open(f"{run}/config.json"))
steps = [r for r in rows if "tokens_per_s" in r]
valid = [r for r in rows if "valid_bits" in r]
tokens = config["train"]["batch"] * config["model"]["ctx"] * config["train"].get("accumulate", 1)
out = {"preset": preset, "run": run, "steps": steps[-1]["step"] if steps else 0,
       "planned_steps": config["train"]["steps"],
       "train_seconds": round(sum(tokens / r["tokens_per_s"] for r in steps), 1),
       "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in steps)) if steps else 0,
       "epochs": None}
if valid:
    best = min(valid, key=lambda r: r["valid_bits"])
    out.update(best_step=best["step"], best_valid_bits=round(best["valid_bits"], 4),
               last_valid_bits=round(valid[-1]["valid_bits"], 4))
for path in sorted(glob.glob(f"{run}/test_*.json")):
    result = json.load(open(path))
    out[os.path.basename(path)[:-5]] = round(result["bits_per_dim"], 4)
    out["test_tokens"] = result["tokens"]
if os.path.exists("data/compressors.json"):
    compressors = json.load(open("data/compressors.json")).get(preset)
    if compressors:
        out.update(test_xz_9e=compressors["test_xz_9e"], test_zpaq_m5=compressors["test_zpaq_m5"])
for pair in sys.argv[3:]:
    key, value = pair.split("=", 1)
    try:
        out[key] = float(value) if "." in value else int(value)
    except ValueError:
        out[key] = value
if "train_split_tokens" in out and steps:
    out["epochs"] = round(steps[-1]["step"] * tokens / float(out.pop("train_split_tokens")), 2)
print(json.dumps(out))
PY
}
