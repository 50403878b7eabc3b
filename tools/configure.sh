#!/usr/bin/env bash
# Configures build/ the one way both README commands use, so that running either one
# after the other reuses the same build: Release, tests and benchmarks on, and the CUDA
# backend only where a GPU can run it (SPT_CUDA=ON|OFF|AUTO in the environment overrides;
# a machine without a GPU cannot run the CUDA tests, and compiling them takes most of the
# build). tools/gpu_suite.sh builds and tests the CUDA backend on a GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda="${SPT_CUDA:-}"
if [ -z "$cuda" ]; then
  cuda=OFF
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then cuda=AUTO; fi
fi
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPT_BUILD_TESTS=ON -DSPT_BUILD_BENCH=ON \
  -DSPT_CUDA="$cuda" "${launcher[@]}" >/dev/null
