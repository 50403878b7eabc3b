#!/usr/bin/env bash
# The README's main command: build spt, fetch a real data set from Debian's packages,
# train a small CPU model (about 10 minutes on 2 cores), evaluate it and write samples.
#   tools/quickstart.sh [kjv|fashion|audio]
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-kjv}"
bash tools/configure.sh
cmake --build build -j"$(nproc)" --target spt
bash tools/fetch_data.sh "$([ "$which" = audio ] && echo speech || echo "$which")"
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
  audio)
    run=runs/audio-small
    rm -rf "$run"
    build/spt prepare /usr/share/asterisk/sounds/en_US_f_Allison --sample-rate 8000 --out data/speech-8k --force
    build/spt train --preset audio-small --data data/speech-8k --out "$run"
    build/spt eval --checkpoint "$run/checkpoint" --split test --json | tee "$run/test.json"
    build/spt sample --checkpoint "$run/checkpoint" --count 2 --length 1024 --temperature 0.9 --out "$run/sample.wav"
    build/spt sample --checkpoint "$run/checkpoint" --prompt-audio /usr/share/asterisk/sounds/en_US_f_Allison/hello-world.wav \
      --prompt-seconds 0.06 --length 1024 --out "$run/continued.wav"
    # The same test bytes through xz -9e, the whole-file compressor to beat.
    bash tools/compress_split.sh data/speech-8k test
    ;;
esac
echo "run directory: $run (metrics.jsonl, loss.png written by spt train, samples, checkpoint/)"
