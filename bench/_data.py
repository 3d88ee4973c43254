"""Benchmark data and starts shared by the benchmarks and the report."""

import numpy as np

# (n, d, K): the grid of issue 'Performance'
SHAPES = [
    (10_000, 8, 4),
    (200_000, 2, 8),
    (200_000, 25, 8),
    (100_000, 32, 16),
    (1_000_000, 8, 16),
    (200_000, 64, 32),
]


def shape_id(n, d, K):
    n_txt = f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"
    return f"{n_txt}x{d}xK{K}"


def make_data(n, d, K, dtype=np.float64, seed=0):
    """K Gaussian blobs with random correlated covariances."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(K, d))
    labels = rng.integers(0, K, size=n)
    X = rng.standard_normal((n, d))
    for k in range(K):
        A = rng.standard_normal((d, d)) * 0.3 + np.eye(d)
        idx = labels == k
        X[idx] = X[idx] @ A + centers[k]
    return X.astype(dtype)


def start(X, K, covariance_type, seed=0):
    """A common start (weights, means, precisions) for fixed-iteration fits."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    means = X[rng.choice(n, K, replace=False)].astype(np.float64)
    weights = np.full(K, 1.0 / K)
    var = X[: min(n, 20000)].astype(np.float64).var(axis=0) + 1e-3
    if covariance_type == "full":
        prec = np.broadcast_to(np.diag(1 / var), (K, d, d)).copy()
    elif covariance_type == "tied":
        prec = np.diag(1 / var)
    elif covariance_type == "diag":
        prec = np.broadcast_to(1 / var, (K, d)).copy()
    else:
        prec = np.full(K, 1 / var.mean())
    return weights, means, prec
