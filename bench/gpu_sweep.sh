#!/usr/bin/env bash
# One device call, for the next session with a GPU (about 4-6 minutes on an H200):
#  1. tests/test_cuda.py on the device (with CuPy: the product passes' cuBLAS calls,
#     the candidates FUSED_FULL and GEMM_DIAG_MAX_Q switched on by their tests);
#  2. bench/gpu_kernels.py: one pass of each d = 64 workload, each way it can run
#     ('full': CuPy's element-wise form / the fused rows' kernel and batched product;
#     'diag': tiled kernels / per-row kernels / products), kernel by kernel;
#  3. bench/gpu_bench.py on the d = 64 workloads (ms an EM iteration against
#     scikit-learn on PyTorch and CuPy and the CPU engine; the candidates as columns
#     fastgmm_cuda_fused / fastgmm_cuda_products);
#  4. with NCU=1, an Nsight Compute read of NCU_KERNELS (default whiten_rows|sums_diag).
# On the GPU machine, with numba-cuda, CuPy and PyTorch importable:
#     bash bench/gpu_sweep.sh OUT_DIR
# KERNEL_CASES / GPU_BENCH_D / GPU_BENCH_SKIP override the cases; NO_BENCH=1 skips 3.
set -o pipefail
OUT=${1:-.}
export NUMBA_ENABLE_CUDASIM=0 SCIPY_ARRAY_API=1 PYTHONUNBUFFERED=1 GPU_KERNELS_REPS=${GPU_KERNELS_REPS:-5}
CASES=${KERNEL_CASES:-200000,64,32,full,float64 200000,64,32,full,float32 1000000,64,64,diag,float64 1000000,64,64,diag,float32}
timeout 240 python3 -m pytest tests/test_cuda.py -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -6
timeout 150 python3 bench/gpu_kernels.py $CASES 2>&1 | tee "$OUT/kernels.log"
[ -n "$NO_BENCH" ] || GPU_BENCH_D=${GPU_BENCH_D:-64} GPU_BENCH_SKIP=${GPU_BENCH_SKIP:-fastgmm_cuda_untiled} \
  GPU_BENCH_BUDGET_S=200 timeout 260 python3 bench/gpu_bench.py "$OUT" 2>&1 | tee "$OUT/bench.log" | tail -14
if [ -n "$NCU" ] && command -v ncu >/dev/null; then
  GPU_KERNELS_REPS=1 GPU_KERNELS_WAYS=fused,tiled timeout 120 ncu --section SpeedOfLight \
    --section Occupancy --section WarpStateStats --section LaunchStats \
    --kernel-name-base mangled -k regex:"${NCU_KERNELS:-whiten_rows|sums_diag}" -c 4 \
    python3 bench/gpu_kernels.py 200000,64,32,full,float64 1000000,64,64,diag,float64 \
    > "$OUT/ncu.log" 2>&1
  echo "ncu rc $?"; grep -E "Profiling|Duration|Registers Per|Achieved Occupancy|Issue Slots Busy" "$OUT/ncu.log" | cut -c1-150
fi
grep -E "^== " "$OUT/kernels.log"
