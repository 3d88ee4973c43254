"""Where a CUDA fit's time goes: cProfile of fastgmm fits on the GPU with
CUDA_LAUNCH_BLOCKING=1 (each launch synchronous, so its time lands on the call
that launched it). Usage: CUDA_LAUNCH_BLOCKING=1 python bench/gpu_profile.py"""
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
for n, d, K, ct in [(1_000_000, 64, 64, "diag"), (200_000, 64, 32, "full")]:
    X = make_data(n, d, K, np.float32)

    def fit(m):
        return GaussianMixture(K, covariance_type=ct, init_params="random_from_data",
                               max_iter=m, tol=0, random_state=0, device="cuda").fit(X)

    fit(2)
    pr = cProfile.Profile()
    pr.enable()
    fit(6)
    pr.disable()
    print(f"===== {n} x {d} K{K} {ct}: fit of 6 iterations")
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)
