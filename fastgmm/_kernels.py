"""Numba kernels: the fused E+M pass and the row-wise log-probability kernels.

Three levels, as in the guide: the Python estimator calls a ``parallel=True``
driver, which runs a serial worker over one fixed block of rows.

Determinism: rows are cut into blocks of ``BLOCK`` rows (a constant), blocks
are processed ``group`` at a time (a number that depends only on the problem
shape), block ``j`` of a group writes only slot ``j`` of the group buffers, and
the slots are added in a fixed order. No result depends on how many threads run
or how the blocks are shared among them.

Covariance type codes: 0 full, 1 tied, 2 diag, 3 spherical.

Parameter arrays handed to the kernels are float64 whatever the data dtype:

- ``means``   (K, d)
- ``pc``      (K, d, d) upper-triangular precision Cholesky factors for 'full',
              (1, d, d) for 'tied', an empty (0, d, d) array otherwise
- ``aux``     (K, d): for 'tied' the products means[k] @ U, for 'diag' the
              precision Cholesky vectors, for 'spherical' the scalar factor
              broadcast over the features, unused (0, d) for 'full'
- ``log_det`` (K,) log-determinant of each precision Cholesky factor
- ``log_w``   (K,) log mixture weights
"""

import math

import numpy as np
from numba import njit, prange

# One place for the Numba options. No 'nnan'/'ninf': log-space code relies on
# -inf and NaN being honoured.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

BLOCK = 256  # rows per block: fixed, so results never depend on the thread count
LOG_2PI = math.log(2.0 * math.pi)

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
COV_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}

# statistic modes of stats_pass
MODE_EM, MODE_RESP, MODE_LABELS = 0, 1, 2


def jit(**kwargs):
    return njit(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True, **kwargs)


def group_size(n_components, n_features, covariance_type_code):
    """Blocks per group: a function of the shape only (never of the thread count).

    Caps the per-group accumulator (group x K x d x d float64) at about 64 MB.
    """
    if covariance_type_code == FULL:
        per_slot = n_components * n_features * n_features
    elif covariance_type_code == TIED:
        per_slot = n_features * n_features + n_components * n_features
    else:
        per_slot = 2 * n_components * n_features
    per_slot = (per_slot + n_components * (n_features + 1) + 1) * 8
    return int(max(1, min(64, (64 << 20) // per_slot)))


@jit()
def _row_log_prob(X, i, means, pc, aux, log_det, log_w, ct, lp, y):
    """Weighted log-probability log(pi_k) + log N(x_i | k) of row i for every k, into lp."""
    K, d = means.shape
    const = -0.5 * d * LOG_2PI
    if ct == FULL:
        for k in range(K):
            for j in range(d):
                y[j] = 0.0
            for a in range(d):
                da = X[i, a] - means[k, a]
                for j in range(a, d):
                    y[j] += da * pc[k, a, j]
            m = 0.0
            for j in range(d):
                m += y[j] * y[j]
            lp[k] = log_w[k] + log_det[k] + const - 0.5 * m
    elif ct == TIED:
        for j in range(d):
            y[j] = 0.0
        for a in range(d):
            xa = X[i, a]
            for j in range(a, d):
                y[j] += xa * pc[0, a, j]
        for k in range(K):
            m = 0.0
            for j in range(d):
                t = y[j] - aux[k, j]
                m += t * t
            lp[k] = log_w[k] + log_det[k] + const - 0.5 * m
    else:
        for k in range(K):
            m = 0.0
            for j in range(d):
                t = (X[i, j] - means[k, j]) * aux[k, j]
                m += t * t
            lp[k] = log_w[k] + log_det[k] + const - 0.5 * m


@jit()
def _logsumexp(lp):
    mx = -np.inf
    for k in range(lp.shape[0]):
        if lp[k] > mx:
            mx = lp[k]
    if not np.isfinite(mx):
        return mx
    s = 0.0
    for k in range(lp.shape[0]):
        s += math.exp(lp[k] - mx)
    return mx + math.log(s)


@jit()
def _accumulate_row(X, i, wi, r, shift, gshift, ct, nk, s1, s2):
    """Add row i, weight wi, responsibilities r (K,) to the statistics.

    nk[k] += wi r_k;  s1[k] += wi r_k (x - shift_k);
    full: s2[k] (upper triangle) += wi r_k (x - shift_k)(x - shift_k)^T
    tied: s2[0, :d] (upper triangle) += wi (x - gshift)(x - gshift)^T over *all* rows,
          s2[0, d] += wi (x - gshift)  (scikit-learn's tied estimate uses X^T X)
    diag/spherical: s2[k, 0] += wi r_k (x - shift_k)**2
    """
    K, d = shift.shape
    for k in range(K):
        rk = wi * r[k]
        if rk == 0.0:
            continue
        nk[k] += rk
        if ct == FULL:
            for a in range(d):
                da = X[i, a] - shift[k, a]
                s1[k, a] += rk * da
                rda = rk * da
                for b in range(a, d):
                    s2[k, a, b] += rda * (X[i, b] - shift[k, b])
        elif ct == TIED:
            for a in range(d):
                s1[k, a] += rk * (X[i, a] - shift[k, a])
        else:
            for a in range(d):
                da = X[i, a] - shift[k, a]
                s1[k, a] += rk * da
                s2[k, 0, a] += rk * da * da
    if ct == TIED and wi != 0.0:
        for a in range(d):
            wda = wi * (X[i, a] - gshift[a])
            s2[0, d, a] += wda
            for b in range(a, d):
                s2[0, a, b] += wda * (X[i, b] - gshift[b])


@jit()
def _stats_block(X, w, start, stop, mode, R, labels, means, pc, aux, log_det, log_w,
                 shift, gshift, ct, nk, s1, s2, ll):
    """Serial worker: statistics of rows [start, stop) into one slot."""
    K, d = means.shape
    lp = np.empty(K)
    r = np.empty(K)
    y = np.empty(d)
    nk[:] = 0.0
    s1[:] = 0.0
    s2[:] = 0.0
    acc = 0.0
    for i in range(start, stop):
        wi = w[i]
        if mode == MODE_EM:
            _row_log_prob(X, i, means, pc, aux, log_det, log_w, ct, lp, y)
            lse = _logsumexp(lp)
            if wi == 0.0:
                continue
            acc += wi * lse
            for k in range(K):
                r[k] = math.exp(lp[k] - lse)
        elif mode == MODE_RESP:
            for k in range(K):
                r[k] = R[i, k]
        else:
            for k in range(K):
                r[k] = 0.0
            lab = labels[i]
            if lab >= 0:
                r[lab] = 1.0
        _accumulate_row(X, i, wi, r, shift, gshift, ct, nk, s1, s2)
    ll[0] = acc


@jit(parallel=True)
def stats_pass(X, w, mode, R, labels, means, pc, aux, log_det, log_w, shift, gshift,
               ct, group, nk, s1, s2):
    """One parallel pass over the rows producing additive sufficient statistics.

    mode MODE_EM: responsibilities from the current parameters (the fused E+M
    pass); MODE_RESP: responsibilities given in R (n, K); MODE_LABELS: hard
    labels (n,), -1 meaning no component. Statistics are *added* to nk, s1, s2
    (float64); the weighted log-likelihood sum (MODE_EM) is returned.
    """
    n = X.shape[0]
    K, d = means.shape
    nblocks = (n + BLOCK - 1) // BLOCK
    g_nk = np.empty((group, K))
    g_s1 = np.empty((group, K, d))
    g_s2 = np.empty((group, s2.shape[0], s2.shape[1], s2.shape[2]))
    g_ll = np.empty((group, 1))
    total = 0.0
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        for j in prange(gn):
            b = g0 + j
            start = b * BLOCK
            stop = min(n, start + BLOCK)
            _stats_block(X, w, start, stop, mode, R, labels, means, pc, aux, log_det,
                         log_w, shift, gshift, ct, g_nk[j], g_s1[j], g_s2[j], g_ll[j])
        for j in range(gn):
            total += g_ll[j, 0]
            for k in range(K):
                nk[k] += g_nk[j, k]
                for a in range(d):
                    s1[k, a] += g_s1[j, k, a]
            for k in range(s2.shape[0]):
                for a in range(s2.shape[1]):
                    for b in range(s2.shape[2]):
                        s2[k, a, b] += g_s2[j, k, a, b]
    return total


@jit(parallel=True)
def log_prob_pass(X, means, pc, aux, log_det, log_w, ct, mode, out_lse, out_label, out_resp):
    """Row-wise outputs from the current parameters, in parallel over row blocks.

    mode 0: out_lse[i] = log p(x_i)                       (score_samples)
    mode 1: out_label[i] = argmax_k weighted log-prob     (predict)
    mode 2: out_resp[i, k] = responsibilities, out_lse too (predict_proba)
    """
    n = X.shape[0]
    K, d = means.shape
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        lp = np.empty(K)
        y = np.empty(d)
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        for i in range(start, stop):
            _row_log_prob(X, i, means, pc, aux, log_det, log_w, ct, lp, y)
            if mode == 1:
                best = 0
                for k in range(1, K):
                    if lp[k] > lp[best]:
                        best = k
                out_label[i] = best
            else:
                lse = _logsumexp(lp)
                out_lse[i] = lse
                if mode == 2:
                    for k in range(K):
                        out_resp[i, k] = math.exp(lp[k] - lse)
