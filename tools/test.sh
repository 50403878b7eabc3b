#!/usr/bin/env bash
# Builds spt (Release; see tools/configure.sh) and runs every test through ctest. Fails when
# a test fails or when no test ran at all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/configure.sh
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure --no-tests=error -j"$(nproc)"
