#!/usr/bin/python3
"""spt's checkpoints as a stranger reads them: Python's standard library only.

Trains the tiny preset for two steps with `spt train`, then opens
<out>/checkpoint/model.safetensors with struct + json and checks, against the
parameter table of docs/MODEL.md evaluated for the config stored in the file's
__metadata__, every tensor name, the dtype F32 and every shape; that the data offsets
tile the data section exactly and the data ends where the file does; that all values
are finite. It also checks optimizer.safetensors (exp_avg.<name>, exp_avg_sq.<name>)
and the sizes and zlib CRC-32 that state.json records.

    test_safetensors_names.py --spt build/spt --repo .              # train, then check
    test_safetensors_names.py --repo . --checkpoint DIR             # check a checkpoint
    test_safetensors_names.py --repo . --model-file FILE            # check one model file

Exit status 0 when every check passes, 1 with one line per problem otherwise.
"""

import argparse
import array
import ast
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import zlib

VOCAB = 256
# The tiny preset (src/model/presets.cpp): what `--preset tiny` must have produced.
TINY = {"layers": 2, "width": 32, "heads": 2, "ctx": 64, "pattern": "strided", "stride": 8, "pos_sizes": [8, 8]}


class CheckFailed(Exception):
    pass


def fail(text):
    raise CheckFailed(text)


# ----- docs/MODEL.md ---------------------------------------------------------------------

def evaluate(expression, env, where):
    """Integer arithmetic on names of env (and pos_sizes[k]); nothing else is allowed."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in env and isinstance(env[node.id], int):
            return env[node.id]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id in env:
            return env[node.value.id][walk(node.slice)]
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if isinstance(node.op, ast.FloorDiv) or isinstance(node.op, ast.Div):
                if b == 0 or a % b:
                    fail(f"{where}: '{expression}' does not divide evenly")
                return a // b
        fail(f"{where}: cannot evaluate '{expression}' (unknown name or operator)")
    try:
        return walk(ast.parse(expression.strip(), mode="eval"))
    except SyntaxError:
        fail(f"{where}: '{expression}' is not an expression")


def parameter_table(model_md):
    """Rows of the '## Parameters' table: ([names], [shape expressions per name])."""
    try:
        with open(model_md, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail(f"cannot read {model_md}: {e}; pass --repo <repository root>")
    start = next((i for i, line in enumerate(lines) if line.startswith("## Parameters")), None)
    if start is None:
        fail(f"{model_md}: no '## Parameters' section")
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] == "name" or set(cells[0]) <= set("-: "):
            continue
        parts = [p.strip() for p in cells[0].split(",")]
        names = [parts[0]]
        for suffix in parts[1:]:
            if not suffix.startswith("."):
                fail(f"{model_md}: cannot read the name cell '{cells[0]}'")
            names.append(parts[0].rsplit(".", 1)[0] + suffix)
        shapes = re.findall(r"\(([^()]*)\)", cells[1])
        if len(shapes) == 1:
            shapes = shapes * len(names)
        if len(shapes) != len(names):
            fail(f"{model_md}: row '{cells[0]}' lists {len(names)} names but {len(shapes)} shapes")
        rows.append((names, shapes))
    if not rows:
        fail(f"{model_md}: the '## Parameters' section holds no table rows")
    return rows


def expected_tensors(config, model_md):
    """{name: shape} of docs/MODEL.md for a model config (as stored in __metadata__)."""
    try:
        C, H, L = config["width"], config["heads"], config["layers"]
        D = C // H
        env = {"V": VOCAB, "C": C, "H": H, "L": L, "D": D, "Dk": D // 2 if config["half_qk"] else D,
               "F": int(math.floor(config["ff_ratio"] * C + 0.5)), "pos_sizes": list(config["pos_sizes"])}
    except (KeyError, TypeError) as e:
        fail(f"model_config lacks a field the shapes need: {e!r}")
    ranges = {"r": range(L), "k": range(len(env["pos_sizes"]))}
    expected = {}
    for names, shapes in parameter_table(model_md):
        for name, shape in zip(names, shapes):
            # A name part that is an index letter ('blocks.r.', 'pos_emb.k.') stands for every index.
            parts = name.split(".")
            letters = [p for p in parts if p in ranges]
            if len(letters) > 1:
                fail(f"{model_md}: '{name}' has more than one index letter")
            indices = ranges[letters[0]] if letters else [None]
            for index in indices:
                local = dict(env)
                if letters:
                    local[letters[0]] = index
                concrete = ".".join(str(index) if p in ranges else p for p in parts)
                dims = [d for d in shape.split(",") if d.strip()]
                expected[concrete] = [evaluate(d, local, f"{model_md}: {name}") for d in dims]
    return expected


# ----- safetensors -----------------------------------------------------------------------

def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        fail(f"the header names {repeated} more than once")
    return dict(pairs)


def read_safetensors(path):
    """(header dict without __metadata__, metadata dict, data bytes); checks the framing."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    if len(blob) < 8:
        fail(f"{path}: {len(blob)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail(f"{path}: header length {n} runs past the end of the {len(blob)}-byte file")
    if n % 8:
        fail(f"{path}: header length {n} is not a multiple of 8 (spt pads the header so the data is aligned)")
    text = blob[8:8 + n]
    if text[:1] != b"{":
        fail(f"{path}: the header does not start with '{{'")
    if text.rstrip(b" ") != text.rstrip():
        fail(f"{path}: the header is padded with something other than spaces")
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"{path}: the header is not UTF-8 JSON: {e}")
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in metadata.values()):
        fail(f"{path}: __metadata__ values must all be strings, got {metadata}")
    data = blob[8 + n:]
    tensors = []
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            fail(f"{path}: tensor '{name}' has fields {sorted(info)}, expected dtype, shape, data_offsets")
        begin, end = info["data_offsets"]
        tensors.append((begin, end, name))
    tensors.sort()
    covered = 0
    for begin, end, name in tensors:
        if begin != covered:
            what = "overlaps the tensor before it" if begin < covered else f"leaves bytes [{covered}, {begin}) unused"
            fail(f"{path}: tensor '{name}' at [{begin}, {end}) {what}")
        if end < begin:
            fail(f"{path}: tensor '{name}' ends at {end} before it begins at {begin}")
        covered = end
    if covered != len(data):
        fail(f"{path}: the tensors cover {covered} bytes of a {len(data)}-byte data section "
             f"(file {len(blob)} bytes = 8 + header {n} + data)")
    return header, metadata, data


def check_tensors(path, header, data, expected, problems):
    """Appends a line per problem: missing, unexpected, non-F32, wrong shape, non-finite."""
    for name in sorted(set(expected) - set(header)):
        problems.append(f"{path}: missing tensor '{name}' (docs/MODEL.md lists it)")
    for name in sorted(set(header) - set(expected)):
        problems.append(f"{path}: tensor '{name}' is not in docs/MODEL.md's table")
    for name in sorted(set(header) & set(expected)):
        info = header[name]
        if info["dtype"] != "F32":
            problems.append(f"{path}: tensor '{name}' is {info['dtype']}, expected F32")
            continue
        if info["shape"] != expected[name]:
            problems.append(f"{path}: tensor '{name}' has shape {info['shape']}, expected {expected[name]}")
            continue
        begin, end = info["data_offsets"]
        if end - begin != 4 * math.prod(info["shape"]):
            problems.append(f"{path}: tensor '{name}' holds {end - begin} bytes, shape {info['shape']} needs "
                            f"{4 * math.prod(info['shape'])}")
            continue
        values = array.array("f")
        values.frombytes(data[begin:end])
        if sys.byteorder != "little":
            values.byteswap()
        if not all(math.isfinite(v) for v in values):
            problems.append(f"{path}: tensor '{name}' holds NaN or infinity")


def check_model_file(path, model_md, problems, preset=None):
    header, metadata, data = read_safetensors(path)
    if metadata.get("format") != "spt":
        fail(f"{path}: __metadata__ format is {metadata.get('format')!r}, expected 'spt'")
    if "model_config" not in metadata:
        fail(f"{path}: __metadata__ has no model_config")
    try:
        config = json.loads(metadata["model_config"])
    except ValueError as e:
        fail(f"{path}: __metadata__ model_config is not JSON: {e}")
    if preset:
        for key, value in preset.items():
            if config.get(key) != value:
                problems.append(f"{path}: model_config {key} is {config.get(key)!r}, but --preset tiny has {value!r}")
    expected = expected_tensors(config, model_md)
    check_tensors(path, header, data, expected, problems)
    return expected


def check_checkpoint(directory, model_md, problems, preset=None):
    model_path = os.path.join(directory, "model.safetensors")
    expected = check_model_file(model_path, model_md, problems, preset)
    state_path = os.path.join(directory, "state.json")
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {state_path}: {e}")
    if state.get("format") != "spt-checkpoint-1":
        problems.append(f"{state_path}: format is {state.get('format')!r}, expected 'spt-checkpoint-1'")
    for name, record in state.get("files", {}).items():
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError as e:
            problems.append(f"{state_path} lists {name}, which cannot be read: {e}")
            continue
        if len(blob) != record.get("bytes"):
            problems.append(f"{path}: {len(blob)} bytes, state.json records {record.get('bytes')}")
        if zlib.crc32(blob) != record.get("crc32"):
            problems.append(f"{path}: zlib CRC-32 {zlib.crc32(blob)}, state.json records {record.get('crc32')}")
    if "model.safetensors" not in state.get("files", {}):
        problems.append(f"{state_path}: 'files' does not list model.safetensors")
    optimizer_path = os.path.join(directory, "optimizer.safetensors")
    if "optimizer.safetensors" in state.get("files", {}):
        header, metadata, data = read_safetensors(optimizer_path)
        moments = {f"{kind}.{name}": shape for name, shape in expected.items() for kind in ("exp_avg", "exp_avg_sq")}
        check_tensors(optimizer_path, header, data, moments, problems)
        if not metadata.get("step", "").isdigit():
            problems.append(f"{optimizer_path}: __metadata__ step is {metadata.get('step')!r}, expected a count")


# ----- the run ---------------------------------------------------------------------------

def train_tiny(spt, workdir):
    """Runs the documented `spt train` on a small byte file; returns the checkpoint directory."""
    words = ["sparse", "attention", "stride", "block", "token", "layer", "the", "of", "a", "and"]
    rng = random.Random(7)
    text = " ".join(rng.choice(words) for _ in range(8000)).encode()  # about 45 KB: every split holds many windows
    data = os.path.join(workdir, "data.txt")
    with open(data, "wb") as f:
        f.write(text)
    out = os.path.join(workdir, "run")
    command = [spt, "train", "--preset", "tiny", "--data", data, "--steps", "2", "--out", out]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        fail(f"the spt binary '{spt}' does not exist: build it first (cmake --build build)")
    except subprocess.TimeoutExpired:
        fail(f"'{' '.join(command)}' ran longer than 600 s")
    if result.returncode != 0:
        tail = (result.stdout[-1500:] + "\n" + result.stderr[-1500:]).strip()
        status = f"signal {-result.returncode}" if result.returncode < 0 else f"exit status {result.returncode}"
        fail(f"'{' '.join(command)}' failed ({status}):\n{tail}")
    checkpoint = os.path.join(out, "checkpoint")
    if not os.path.isdir(checkpoint):
        fail(f"'{' '.join(command)}' succeeded but wrote no {checkpoint} directory")
    return checkpoint


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spt", help="the spt binary (trains the tiny preset, then checks its checkpoint)")
    parser.add_argument("--repo", required=True, help="repository root (for docs/MODEL.md)")
    parser.add_argument("--checkpoint", help="check this checkpoint directory instead of training")
    parser.add_argument("--model-file", help="check this model.safetensors instead of training")
    args = parser.parse_args()
    model_md = os.path.join(args.repo, "docs", "MODEL.md")
    problems = []
    try:
        if args.model_file:
            check_model_file(args.model_file, model_md, problems)
        elif args.checkpoint:
            check_checkpoint(args.checkpoint, model_md, problems)
        elif args.spt:
            with tempfile.TemporaryDirectory(prefix="spt-names-") as workdir:
                check_checkpoint(train_tiny(args.spt, workdir), model_md, problems, preset=TINY)
        else:
            parser.error("give --spt (train and check), --checkpoint DIR or --model-file FILE")
    except CheckFailed as e:
        problems.append(str(e))
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    if problems:
        return 1
    print("ok: names, dtypes, shapes and data layout match docs/MODEL.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
