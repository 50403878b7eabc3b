#!/usr/bin/env bash
# Puts the example data sets from Debian's packages under data/ (see docs/RESULTS.md).
#   tools/fetch_data.sh kjv       -> data/kjv.txt (King James Bible, 4.3 MB of text)
#   tools/fetch_data.sh fashion   -> data/fashion-mnist/ (Fashion-MNIST IDX, gzip'd)
#   tools/fetch_data.sh speech    -> checks the Asterisk speech recordings (8 kHz WAV) are installed
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data
case "${1:-kjv}" in
  kjv)
    if [ ! -s data/kjv.txt ]; then
      command -v bible >/dev/null || { echo "fetch_data: 'bible' not found: apt-get install bible-kjv" >&2; exit 1; }
      COLUMNS=100000 bible -l100000 "gen1:1-rev22:21" > data/kjv.txt.tmp
      mv data/kjv.txt.tmp data/kjv.txt
    fi
    echo "data/kjv.txt: $(stat -c %s data/kjv.txt) bytes"
    ;;
  fashion)
    src=/usr/share/datasets/fashion-mnist
    [ -d "$src" ] || { echo "fetch_data: $src missing: apt-get install dataset-fashion-mnist" >&2; exit 1; }
    mkdir -p data/fashion-mnist
    cp -u "$src"/*-ubyte.gz data/fashion-mnist/
    echo "data/fashion-mnist: $(ls data/fashion-mnist | tr '\n' ' ')"
    ;;
  speech)
    src=/usr/share/asterisk/sounds/en_US_f_Allison
    [ -d "$src" ] || { echo "fetch_data: $src missing: apt-get install asterisk-core-sounds-en-wav" >&2; exit 1; }
    echo "speech recordings: $(find "$src" -name '*.wav' | wc -l) WAV files in $src"
    ;;
  *) echo "fetch_data: unknown data set '$1': use kjv, fashion or speech" >&2; exit 2 ;;
esac
