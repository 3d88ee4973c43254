import os

# The CUDA engine's tests (test_cuda.py) run on Numba's CUDA simulator unless told
# otherwise: NUMBA_ENABLE_CUDASIM=0 on a machine with a GPU. Set before Numba loads.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np
import pytest

COV_TYPES = ["full", "tied", "diag", "spherical"]
INIT_PARAMS = ["kmeans", "k-means++", "random", "random_from_data"]
# tolerances by dtype (scikit-learn's own: rtol 1e-7 for float64; 1e-4 / 5e-4 for float32)
TOL = {np.float64: dict(rtol=1e-7, atol=1e-9), np.float32: dict(rtol=1e-4, atol=5e-4)}


def make_data(n=600, d=3, K=3, seed=0, dtype=np.float64, offset=0.0):
    """Well separated blobs with unequal, correlated spreads."""
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-8, 8, size=(K, d)) + offset
    parts = []
    for k in range(K):
        A = rng.normal(size=(d, d)) * 0.5 + np.eye(d) * (0.5 + k * 0.3)
        parts.append(rng.normal(size=(n // K, d)) @ A + centers[k])
    X = np.concatenate(parts)
    rng.shuffle(X)
    return X.astype(dtype)


def start_params(X, K, covariance_type, seed=0):
    """A start that is not a fixed point: means from random rows, broad covariances."""
    rng = np.random.RandomState(seed)
    n, d = X.shape
    means = X[rng.choice(n, K, replace=False)].astype(np.float64)
    weights = rng.dirichlet(np.ones(K) * 5)
    cov = np.cov(X.T.astype(np.float64)).reshape(d, d) + np.eye(d)
    if covariance_type == "full":
        prec = np.stack([np.linalg.inv(cov * (1 + 0.2 * k)) for k in range(K)])
    elif covariance_type == "tied":
        prec = np.linalg.inv(cov)
    elif covariance_type == "diag":
        prec = np.stack([1.0 / (np.diag(cov) * (1 + 0.2 * k)) for k in range(K)])
    else:
        prec = np.array([1.0 / (np.diag(cov).mean() * (1 + 0.2 * k)) for k in range(K)])
    return weights, means, prec


@pytest.fixture(params=COV_TYPES)
def covariance_type(request):
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


@pytest.fixture
def spy_threads(monkeypatch):
    """The thread counts fastgmm's pool runs calls with (a spy on its entry point),
    with the thread budget and CPU count raised to 4 so that n_jobs = 3 is not
    capped on a small machine."""
    from fastgmm import _pool

    monkeypatch.setattr(_pool, "budget", lambda: 4)
    monkeypatch.setattr(_pool, "n_cpus", lambda: 4)
    used = []
    run = _pool.run

    def counting_run(task, n_threads):
        used.append(n_threads)
        return run(task, n_threads)

    monkeypatch.setattr(_pool, "run", counting_run)
    return used
