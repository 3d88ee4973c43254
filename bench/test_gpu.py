"""The GPU group: fastgmm's CUDA engine beside scikit-learn's Array API path on the
same GPU (PyTorch arrays), each workload's pair in one group. Skips without a CUDA
GPU, CuPy and PyTorch (CI has none). The full measurement with per-iteration
times, CuPy, the CPU engine and the GEMM rate is ``bench/gpu_bench.py``.

Run on a GPU machine:
    NUMBA_ENABLE_CUDASIM=0 SCIPY_ARRAY_API=1 python -m pytest bench/test_gpu.py \
        --benchmark-group-by=group --benchmark-columns=min,mean,rounds
"""

import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("SCIPY_ARRAY_API", "1")  # scikit-learn's Array API needs it set first


def _gpu():
    """(cupy, torch) where a real GPU, CuPy, PyTorch and numba-cuda are there."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    try:
        # numba-cuda 0.30 warns at import under numpy 2.5 (the GPU image's): not ours
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import cupy
            import torch
            from numba import cuda
    except ImportError:
        return None
    try:
        if not (cuda.is_available() and torch.cuda.is_available()):
            return None
    except Exception:
        return None
    return cupy, torch


GPU = _gpu()
pytestmark = pytest.mark.skipif(GPU is None, reason="no CUDA GPU with CuPy and PyTorch")

WORKLOADS = [(1_000_000, 8, 16, "full"), (200_000, 64, 32, "full"),
             (1_000_000, 64, 64, "diag"), (10_000_000, 8, 16, "full")]
ITERS = 10


@pytest.mark.parametrize("impl", ["fastgmm_cuda", "sklearn_torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("workload", WORKLOADS, ids=[f"{n}x{d}-K{K}-{ct}"
                                                     for n, d, K, ct in WORKLOADS])
def test_gpu_fit(benchmark, quick, impl, dtype, workload):
    """`fit` with ITERS EM iterations from 'random_from_data' (tol=0), data on the GPU."""
    import sklearn
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from fastgmm import GaussianMixture
    from gpu_bench import make_data, sync

    cupy, torch = GPU
    n, d, K, ct = workload
    if quick:  # a thousand rows a component: scikit-learn's float32 fits need them
        n = max(n // 100, 1000 * K)
    X = make_data(n, d, K, np.dtype(dtype))
    benchmark.group = f"gpu|{n}x{d}-K{K}-{ct}|{dtype}"
    kw = dict(covariance_type=ct, init_params="random_from_data", max_iter=ITERS, tol=0.0,
              random_state=0)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if impl == "fastgmm_cuda":
                GaussianMixture(K, device="cuda", **kw).fit(X)
            else:
                with sklearn.config_context(array_api_dispatch=True):
                    SkGaussianMixture(K, **kw).fit(torch.from_dlpack(X))
            sync()

    try:
        fit()  # compilation and library handles stay out of the timing
    except (np.linalg.LinAlgError, torch.linalg.LinAlgError, ValueError) as exc:
        # scikit-learn's float32 Cholesky on a starved component (its ValueError says
        # "ill-defined empirical covariance"); anything else is a failure
        if impl == "fastgmm_cuda" or (isinstance(exc, ValueError)
                                      and "ill-defined" not in str(exc)):
            raise
        pytest.skip(f"scikit-learn on PyTorch failed at this shape: {exc}")
    benchmark.pedantic(fit, rounds=1 if quick else 3, iterations=1, warmup_rounds=0)
