#!/usr/bin/env bash
# The README's main command: build spt, fetch a real data set from Debian's packages,
# train a small CPU model (about 10 minutes on 2 cores), evaluate it and write samples.
#   tools/quickstart.sh [kjv|fashion]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-kjv}"
bash tools/configure.sh
cmake --build build -j"$(nproc)" --target spt
bash tools/fetch_data.sh "$which"
case "$which" in
  kjv)
    run=runs/kjv-small
    rm -rf "$run"
    build/spt train --preset kjv-small --data data/kjv.txt --out "$run"
    build/spt eval --checkpoint "$run/checkpoint" --split valid
    build/spt sample --checkpoint "$run/checkpoint" --count 2 --length 256 --temperature 0.8 --prompt "And God said" \
      --out "$run/samples.txt"
    cat "$run/samples.txt"
    ;;
  fashion)
    run=runs/fashion-small
    rm -rf "$run"
    build/spt train --preset fashion-small --data data/fashion-mnist --out "$run"
    build/spt eval --checkpoint "$run/checkpoint" --split test
    build/spt sample --checkpoint "$run/checkpoint" --count 16 --out "$run/samples.png"
    ;;
esac
echo "run directory: $run (metrics.jsonl, loss.png written by spt train, samples, checkpoint/)"
