#!/usr/bin/env bash
# spt's CUDA sparse attention against FlexAttention and dense causal cuDNN SDPA on the same
# cases (bench_attention_cuda.cpp, attention_peers.py), on the GPU machine.
#   bench/attention_suite.sh [--max-T N]      (BLOCKS=fast: spt's pattern-specific kernels only)
# Builds $BUILD/bench/bench_attention_cuda (BUILD defaults to build) if it is missing (CUDA, Hopper by default), writes
# the raw JSON lines and logs to $OUT (default: a new temporary directory) and prints one
# table: milliseconds of forward and forward + backward, and the peers' times divided by
# spt's (above 1: spt is faster). spt is its pattern-specific kernels ("fast"); lay_fb is
# the better of its block-layout kernels at BS 64 and BS 128, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
max_T=()
if [ "${1:-}" = "--max-T" ]; then max_T=(--max-T "$2"); fi
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"
build="${BUILD:-build}"
bench=$build/bench/bench_attention_cuda
if [ ! -x "$bench" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPT_CUDA=ON -DSPT_CUDA_ARCH=90a > "$out/configure.log" 2>&1
  cmake --build "$build" -j"$(nproc)" --target bench_attention_cuda > "$out/build.log" 2>&1
fi
blocks=()
if [ "${BLOCKS:-}" = fast ]; then blocks=(--block fast); fi
"$bench" "${max_T[@]}" "${blocks[@]}" > "$out/spt.jsonl" 2> "$out/spt.log" || { cat "$out/spt.log" >&2; exit 1; }
python3 bench/attention_peers.py "${max_T[@]}" > "$out/peers.jsonl" 2> "$out/peers.log" ||
  { tail -20 "$out/peers.log" >&2; echo "attention_peers.py failed; spt results in $out/spt.jsonl" >&2; }
python3 - "$out" <<'PY' | tee "$out/table.txt"
import json, sys
out = sys.argv[1]
def rows(name):
    try:
        return [json.loads(l) for l in open(f"{out}/{name}") if l.startswith("{")]
    except FileNotFoundError:
        return []
spt, peers = rows("spt.jsonl"), rows("peers.jsonl")
key = lambda r: (r["T"], r["B"], r["H"], r["D"], r["l"], r["c"])
best, layout = {}, {}
for r in spt:
    k = key(r) + (r["pattern"],)
    if r["path"] == "fast":
        best[k] = r
    elif k not in layout or r["fwdbwd_ms"] < layout[k]["fwdbwd_ms"]:
        layout[k] = r
flex = {key(r) + (r["pattern"],): r for r in peers if r["impl"] == "flex"}
sdpa = {key(r): r for r in peers if r["impl"] == "sdpa"}
fmt = "{:<8} {:>6} {:>2} {:>2} {:>4} {:>4} {:>3} {:>7} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>6} {:>6} {:>6} {:>6} | {:>7}"
print(fmt.format("pattern", "T", "B", "H", "D", "l", "c", "density", "spt_f", "flex_f", "sdpa_f",
                 "spt_fb", "flex_fb", "sdpa_fb", "lay_fb", "flx/f", "sdp/f", "flx/fb", "sdp/fb", "TF/s_fb"))
num = lambda x: "-" if x is None else f"{x:.3f}"
ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"
for k, r in best.items():
    f, s = flex.get(k), sdpa.get(k[:6])
    ff, ffb = (f["fwd_ms"], f["fwdbwd_ms"]) if f else (None, None)
    sf, sfb = (s["fwd_ms"], s["fwdbwd_ms"]) if s else (None, None)
    lay = layout.get(k)
    print(fmt.format(r["pattern"], r["T"], r["B"], r["H"], r["D"], r["l"], r["c"], f"{r['density']:.4f}",
                     num(r["fwd_ms"]), num(ff), num(sf), num(r["fwdbwd_ms"]), num(ffb), num(sfb),
                     num(lay["fwdbwd_ms"] if lay else None),
                     ratio(ff, r["fwd_ms"]), ratio(sf, r["fwd_ms"]), ratio(ffb, r["fwdbwd_ms"]),
                     ratio(sfb, r["fwdbwd_ms"]), f"{r['fwdbwd_tflops']:.1f}"))
backends = sorted({r.get("backend", "?") for r in sdpa.values()})
print(f"sdpa = dense causal scaled_dot_product_attention, backend {', '.join(backends) or 'not run'}; "
      f"logs and JSON lines in {out}")
PY
