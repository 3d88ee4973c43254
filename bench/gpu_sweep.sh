#!/usr/bin/env bash
# One device call: the tiled 'diag' kernels' constants swept (per-kernel times of a
# 1M x 64 K64 pass, bench/gpu_kernels.py), an Nsight Compute read of the pass's
# kernels, and the pytest GPU group in quick mode. Usage on the GPU machine, with
# numba-cuda, CuPy and PyTorch importable: bash bench/gpu_sweep.sh OUT_DIR
set -o pipefail
OUT=${1:-.}
export NUMBA_ENABLE_CUDASIM=0 SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1 GPU_KERNELS_REPS=${GPU_KERNELS_REPS:-3}
CASE=${CASE:-1000000,64,64,diag,float32}
for cfg in ${SWEEP:-16,4,16,32,1024 16,4,16,32,512 16,4,16,32,2048 16,4,8,16,1024 8,4,16,32,1024 16,2,16,32,1024 16,4,16,16,1024}; do
  timeout 60 python3 bench/gpu_kernels.py --tiles "$cfg" --tiled-only $CASE 2>&1 | tee -a "$OUT/sweep.log"
done
if command -v ncu >/dev/null; then
  GPU_KERNELS_REPS=1 timeout 120 ncu --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section LaunchStats --kernel-name-base mangled -k regex:"accum|lp_diag|finish_rows|sums_diag" -c 4 \
    python3 bench/gpu_kernels.py --tiled-only 2000000,8,16,full,float32 $CASE > "$OUT/ncu.log" 2>&1
  echo "ncu rc $?"; grep -E "cudapy|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Theoretical Occupancy|Issue Slots Busy|No Eligible|Warp Cycles Per Issued" "$OUT/ncu.log" | head -60
fi
timeout 120 python3 -m pytest bench/test_gpu.py -q -p no:cacheprovider --benchmark-disable 2>&1 | tee "$OUT/test_gpu.log" | tail -4
grep -E "^tiles|^==|lp_diag|sums_diag|finish_rows" "$OUT/sweep.log"
