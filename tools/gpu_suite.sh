#!/usr/bin/env bash
# The whole test suite on a GPU machine: configures a Release build with the CUDA
# backend (architecture 90a unless SPT_CUDA_ARCH says otherwise), builds it on every core,
# runs every ctest test (CUDA ones included), then runs a small CUDA case under
# compute-sanitizer's memcheck and racecheck where the tool exists. Logs go to $OUT
# (./out when unset); a short summary is printed last. Exit status: 0 when all passed.
#   usage: tools/gpu_suite.sh            (from anywhere; works in the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./out}"
mkdir -p "$OUT"
BUILD="${BUILD:-build-gpu}"
ARCH="${SPT_CUDA_ARCH:-90a}"
JOBS="$(nproc)"
status=0
summary=()

note() { summary+=("$1"); }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"; } \
  >"$OUT/device.txt"

if ! cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPT_CUDA=ON -DSPT_CUDA_ARCH="$ARCH" \
    -DSPT_CUDA_PTXAS_VERBOSE=ON >"$OUT/configure.log" 2>&1; then
  tail -n 30 "$OUT/configure.log"
  echo "gpu_suite: configure FAILED (log: $OUT/configure.log)"
  exit 1
fi

# Touch the CUDA sources so that the ptxas report is complete even on an incremental build.
touch src/ops/cuda/*.cu
if ! cmake --build "$BUILD" -j"$JOBS" >"$OUT/build.log" 2>&1; then
  grep -E "error|Error" "$OUT/build.log" | head -n 30
  echo "gpu_suite: build FAILED (log: $OUT/build.log)"
  exit 1
fi
grep -E "Compiling entry function|Function properties|Used [0-9]+ registers|spill" "$OUT/build.log" | c++filt >"$OUT/ptxas.txt" || true
kernels=$(grep -c 'Compiling entry function' "$OUT/ptxas.txt")
spilling=$(grep -E 'spill' "$OUT/ptxas.txt" | grep -vc ' 0 bytes spill stores, 0 bytes spill loads')
note "build: ok, $kernels kernel instances, $spilling with spills (ptxas report: $OUT/ptxas.txt)"

ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --output-junit "$(realpath "$OUT")/ctest.xml" \
  >"$OUT/ctest.log" 2>&1
ctest_status=$?
[ $ctest_status -ne 0 ] && status=1
note "ctest: $(grep -E 'tests passed' "$OUT/ctest.log" | tail -n 1) (log: $OUT/ctest.log)"
skipped=$(grep -cE '\*\*\*Skipped|Not Run' "$OUT/ctest.log")
note "ctest: $skipped skipped"
if [ $ctest_status -ne 0 ]; then
  while read -r line; do note "  failed: $line"; done < <(sed -n '/The following tests FAILED/,$p' "$OUT/ctest.log" | tail -n +2 | head -n 20)
fi

# The CUDA tests once more in one process, for a complete gtest log of the CUDA cases.
"$BUILD/tests/spt_tests" --gtest_filter='CudaAttention.*' --gtest_output="xml:$OUT/cuda_attention.xml" \
  >"$OUT/cuda_attention.log" 2>&1
cuda_status=$?
[ $cuda_status -ne 0 ] && status=1
note "cuda attention: $(grep -E '^\[ +(PASSED|FAILED|SKIPPED) +\]' "$OUT/cuda_attention.log" | tr '\n' ' ')"

if command -v compute-sanitizer >/dev/null 2>&1; then
  for tool in memcheck racecheck; do
    timeout 300 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$BUILD/tests/spt_tests" --gtest_filter='CudaAttention.OneHeadPackedLayout:CudaAttention.CallerWorkspaceGivesTheSameBits:CudaAttention.RejectsBadInputs' \
      >"$OUT/sanitizer_$tool.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && status=1
    note "compute-sanitizer $tool: exit $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer_$tool.log" | tail -n 1)"
  done
else
  note "compute-sanitizer: not found, skipped"
fi

echo "---- gpu_suite summary ($(cat "$OUT/device.txt"))"
for line in "${summary[@]}"; do echo "  $line"; done
[ $status -eq 0 ] && echo "gpu_suite: ALL PASSED" || echo "gpu_suite: FAILURES (see logs in $OUT)"
exit $status
