#!/usr/bin/python3
"""spt's attention masks (`spt pattern --dump-mask`) against the reference's pattern_mask,
which is built from the set definitions alone (tools/reference/model.py).

    /usr/bin/python3 tests/python/test_pattern_mask.py --spt build/spt --repo .

Exit 0 when every (config, layer, head, query) agrees, 1 otherwise, 77 without torch.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import torch
except ImportError:
    print("torch is not importable: skipping")
    sys.exit(77)

# (pattern, T, stride, summary, summary_blocks, heads, mode); T not always a multiple
# of l so the ragged last block is covered, and heads > 2 so h mod 2 and h mod v differ.
CASES = [
    ("dense", 20, 4, 1, 1, 2, "merged"),
    ("local", 37, 5, 1, 1, 2, "merged"),
    ("local", 16, 1, 1, 1, 1, "merged"),
    ("strided", 50, 7, 1, 1, 2, "merged"),
    ("strided", 48, 8, 1, 1, 3, "interleaved"),
    ("strided", 48, 8, 1, 1, 4, "heads"),
    ("strided", 33, 1, 1, 1, 2, "merged"),
    ("fixed", 50, 8, 2, 1, 2, "merged"),
    ("fixed", 50, 8, 2, 1, 2, "interleaved"),
    ("fixed", 50, 8, 2, 1, 4, "heads"),
    ("fixed", 64, 16, 3, 2, 4, "merged"),
    ("fixed", 64, 16, 3, 2, 4, "interleaved"),
    ("fixed", 64, 16, 3, 2, 6, "heads"),
    ("fixed", 45, 12, 4, 3, 6, "merged"),
    ("fixed", 40, 8, 8, 1, 2, "heads"),
]


def read_dump(path, H, T):
    """Parses `h i j1 j2 ...` lines into a bool tensor (H, T, T)."""
    mask = torch.zeros(H, T, T, dtype=torch.bool)
    seen = torch.zeros(H, T, dtype=torch.bool)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            values = [int(x) for x in fields]
            h, i, keys = values[0], values[1], values[2:]
            if not (0 <= h < H and 0 <= i < T):
                raise ValueError(f"line {number}: head {h} or query {i} out of range (H {H}, T {T})")
            if seen[h, i]:
                raise ValueError(f"line {number}: second line for head {h} query {i}")
            if keys != sorted(set(keys)) or any(not 0 <= j < T for j in keys):
                raise ValueError(f"line {number}: keys of head {h} query {i} not ascending and in [0, {T}): {keys}")
            seen[h, i] = True
            mask[h, i, keys] = True
    missing = (~seen).nonzero().tolist()
    if missing:
        raise ValueError(f"no line for (head, query) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spt", required=True)
    ap.add_argument("--repo", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.repo, "tools", "reference"))
    from model import pattern_mask

    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for pattern, T, l, c, v, H, mode in CASES:
            cfg = dict(pattern=pattern, ctx=T, stride=l, summary=c, summary_blocks=v, heads=H, width=H * 2,
                       mode=mode, pos_sizes=[T])
            for layer in (0, 1):
                name = f"{pattern} T={T} l={l} c={c} v={v} H={H} {mode} layer {layer}"
                path = os.path.join(tmp, "mask.txt")
                command = [args.spt, "pattern", "--dump-mask", path, "--ctx", str(T), "--pattern", pattern,
                           "--stride", str(l), "--summary", str(c), "--summary-blocks", str(v), "--heads", str(H),
                           "--mode", mode, "--layer", str(layer)]
                run = subprocess.run(command, capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"FAIL {name}: `{' '.join(command)}` exited {run.returncode}: {run.stderr.strip()}")
                    failures += 1
                    continue
                try:
                    got = read_dump(path, H, T)
                except ValueError as e:
                    print(f"FAIL {name}: bad dump: {e}")
                    failures += 1
                    continue
                want = pattern_mask(cfg, layer, T)
                diff = (got != want).nonzero().tolist()
                if diff:
                    h, i, j = diff[0]
                    print(f"FAIL {name}: {len(diff)} entries differ; first head {h} query {i} key {j}: "
                          f"spt {bool(got[h, i, j])}, reference {bool(want[h, i, j])}")
                    failures += 1
                else:
                    print(f"ok   {name}: {int(want.sum())} allowed pairs")
    print(f"{2 * len(CASES) - failures} of {2 * len(CASES)} masks agree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
