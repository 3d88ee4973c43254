"""Where a CUDA fit's time goes: cProfile of fastgmm fits on the GPU with
CUDA_LAUNCH_BLOCKING=1 (each launch synchronous, so its time lands on the call
that launched it). Usage: CUDA_LAUNCH_BLOCKING=1 python bench/gpu_profile.py [n,d,K,ct,dtype ...]
(default: 1M x 64 K64 'diag' and 200k x 64 K32 'full', float32)"""
import cProfile
import os
import pstats
import sys
import warnings

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "0")
sys.path.insert(0, os.path.dirname(__file__))
import numpy as np  # noqa: E402
from gpu_bench import make_data  # noqa: E402

from fastgmm import GaussianMixture  # noqa: E402

warnings.simplefilter("ignore")
CASES = [(1_000_000, 64, 64, "diag", "float32"), (200_000, 64, 32, "full", "float32")]
if len(sys.argv) > 1:
    CASES = [(int(n), int(d), int(K), ct, dt) for n, d, K, ct, dt in
             (a.split(",") for a in sys.argv[1:])]
for n, d, K, ct, dtype in CASES:
    X = make_data(n, d, K, np.dtype(dtype))

    def fit(m):
        return GaussianMixture(K, covariance_type=ct, init_params="random_from_data",
                               max_iter=m, tol=0, random_state=0, device="cuda").fit(X)

    fit(2)
    pr = cProfile.Profile()
    pr.enable()
    fit(6)
    pr.disable()
    print(f"===== {n} x {d} K{K} {ct} {dtype}: fit of 6 iterations")
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)
