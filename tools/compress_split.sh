#!/usr/bin/env bash
# Bits per token of a general-purpose compressor (xz -9e) on one split of a prepared data set,
# the same bytes `spt eval --split SPLIT` scores; also on the whole token file. Compressors
# adapt over the whole input, so they are floors to beat, not like-for-like models.
#   tools/compress_split.sh DATASET_DIR [SPLIT]
set -euo pipefail
dir="$1" split="${2:-test}"
/usr/bin/python3 - "$dir" "$split" <<'PY'
import json, lzma, sys
directory, split = sys.argv[1], sys.argv[2]
index = json.load(open(f"{directory}/index.json"))
tokens = open(f"{directory}/{index['tokens_file']}", "rb").read()
part = b"".join(tokens[c["offset"]:c["offset"] + c["length"]] for c in index["clips"] if c["split"] == split)
for name, data in ((split + " split", part), ("whole file", tokens)):
    packed = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    print(f"xz -9e on the {name} of {directory}: {8 * len(packed) / len(data):.3f} bits per token ({len(data)} tokens)")
PY
