"""Slow, obviously correct NumPy references (no code shared with fastgmm)."""

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal


def full_covariances(covariances, covariance_type, n_components, n_features):
    """Every component's covariance as a (K, d, d) matrix."""
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return c
    if covariance_type == "tied":
        return np.broadcast_to(c, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in c])
    return np.stack([v * np.eye(n_features) for v in c])


def weighted_log_prob(X, weights, means, covariances, covariance_type):
    """log pi_k + log N(x_i | mu_k, Sigma_k) from scipy.stats, shape (n, K)."""
    K, d = means.shape
    covs = full_covariances(covariances, covariance_type, K, d)
    return np.column_stack(
        [
            np.log(weights[k]) + multivariate_normal(means[k], covs[k]).logpdf(X).reshape(-1)
            for k in range(K)
        ]
    )


def em_step(X, weights, means, covariances, covariance_type, reg_covar, sample_weight=None):
    """One weighted EM step, written out: E-step with scipy, M-step by definition.

    Returns (mean log-likelihood at the given parameters, new weights, new means,
    new covariances in the covariance_type's shape).
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    K = means.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    wlp = weighted_log_prob(X, weights, means, covariances, covariance_type)
    lse = logsumexp(wlp, axis=1)
    resp = np.exp(wlp - lse[:, None]) * w[:, None]
    nk = resp.sum(axis=0)
    new_means = np.array([resp[:, k] @ X / nk[k] for k in range(K)])
    scatter = []
    for k in range(K):
        diff = X - new_means[k]
        scatter.append(sum(resp[i, k] * np.outer(diff[i], diff[i]) for i in range(n)) / nk[k])
    scatter = np.array(scatter)
    if covariance_type == "full":
        cov = scatter + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        cov = np.einsum("k,kij->ij", nk, scatter) / nk.sum() + reg_covar * np.eye(d)
    elif covariance_type == "diag":
        cov = np.array([np.diag(s) for s in scatter]) + reg_covar
    else:
        cov = np.array([np.diag(s).mean() for s in scatter]) + reg_covar
    return (w @ lse) / w.sum(), nk / nk.sum(), new_means, cov


def precisions_from_covariances(covariances, covariance_type):
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / np.asarray(covariances)
