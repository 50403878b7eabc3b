#!/usr/bin/python3
"""The layering of src/: a file includes only headers of its own folder or of a lower
layer, so each layer builds and reads without the ones above it.

    /usr/bin/python3 tests/python/test_layers.py --repo .

Exit 0 when every #include "folder/..." of src/ points down (or sideways within its
folder), 1 otherwise, listing each upward include.
"""
import argparse
import os
import re
import sys

# Lowest first; folders on one line are peers and may not include one another.
LAYERS = [
    ["core"],
    ["pattern", "io"],
    ["ops"],
    ["model"],
    ["data", "dist"],
    ["train"],
    ["cli"],
]
LEVEL = {folder: level for level, folders in enumerate(LAYERS) for folder in folders}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)/')
SUFFIXES = (".h", ".cpp", ".cu", ".cuh")


def upward_includes(src):
    """Yields (file, line number, included folder, message) for each include that breaks the order."""
    for root, _, files in os.walk(src):
        folder = os.path.relpath(root, src).split(os.sep)[0]
        for name in sorted(files):
            if not name.endswith(SUFFIXES):
                continue
            path = os.path.join(root, name)
            if folder not in LEVEL:
                yield path, 0, folder, f"folder {folder}/ has no layer: add it to LAYERS"
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    match = INCLUDE.match(line)
                    if not match or match.group(1) == folder:
                        continue
                    target = match.group(1)
                    if target not in LEVEL:
                        yield path, number, target, f"includes {target}/, which has no layer"
                    elif LEVEL[target] >= LEVEL[folder]:
                        yield path, number, target, f"{folder}/ includes {target}/, a layer at or above its own"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--spt", help="ignored (ctest passes it to every Python test)")
    args = parser.parse_args()
    src = os.path.join(args.repo, "src")
    problems = list(upward_includes(src))
    for path, number, _, message in problems:
        print(f"{os.path.relpath(path, args.repo)}:{number}: {message}")
    order = " -> ".join("/".join(folders) for folders in LAYERS)
    print(f"layers {order}: {len(problems)} upward include(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
