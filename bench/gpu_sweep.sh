#!/usr/bin/env bash
# One device call: tests/test_cuda.py on the device, then variants of the tiled
# 'diag' kernels timed kernel by kernel on a
# 1M x 64 K64 pass (bench/gpu_kernels.py: --tiles sets their constants, --lb launch
# bounds), an Nsight Compute read of the two kernels, and the pytest GPU group in
# quick mode. On the GPU machine, with numba-cuda, CuPy and PyTorch importable:
#     bash bench/gpu_sweep.sh OUT_DIR
# SWEEP: the variants' arguments, ';'-separated (an empty one: the code as it is;
# --lb 0,0: both kernels without launch bounds; --variant: bench/gpu_variants.py's).
set -o pipefail
OUT=${1:-.}
export NUMBA_ENABLE_CUDASIM=0 SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1 GPU_KERNELS_REPS=${GPU_KERNELS_REPS:-5}
CASES=${CASES:-1000000,64,64,diag,float32 1000000,64,64,diag,float64}
# first the CUDA tests on the device (what ran only on the simulator since the last call)
timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -3
IFS=';' read -ra VARIANTS <<< "${SWEEP:-;--lb 0,0;--variant fused;--variant prefetch;--variant prefetch --lb 0,0}"
for v in "${VARIANTS[@]}"; do
  echo "## variant: ${v:-default}" | tee -a "$OUT/sweep.log"
  timeout 90 python3 bench/gpu_kernels.py $v --tiled-only $CASES 2>&1 | tee -a "$OUT/sweep.log"
done
if command -v ncu >/dev/null; then
  GPU_KERNELS_REPS=1 timeout 120 ncu --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section LaunchStats --section SchedulerStats --kernel-name-base mangled \
    -k regex:"${NCU_KERNELS:-lp_diag|sums_diag}" -c 2 \
    python3 bench/gpu_kernels.py --tiled-only ${CASES%% *} > "$OUT/ncu.log" 2>&1
  echo "ncu rc $?"; grep -E "Profiling|Duration|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Issue Slots Busy|Warp Cycles Per Issued|highest-utilized" "$OUT/ncu.log" | cut -c1-150
fi
timeout 150 python3 -m pytest bench/test_gpu.py -q -p no:cacheprovider --benchmark-disable 2>&1 | tee "$OUT/test_gpu.log" | tail -4
grep -E "^## |^== |lp_diag  |sums_diag  |finish_rows  " "$OUT/sweep.log"
