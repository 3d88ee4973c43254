"""The variational mixture's small O(K d^2) arithmetic, compiled: the posterior of
the M-step, and what depends on the posterior alone (the E-step's expected log
weights and constants, the weights, and the lower bound's parameter terms).

In NumPy each of these is some twenty calls on arrays of K or d numbers, 30-80 us
an iteration, which at 10k rows is as long as the data pass. Here each is one
call. Formulas and order follow ``sklearn/mixture/_bayesian_mixture.py``
(``_estimate_weights``, ``_estimate_means``, ``_estimate_precisions``,
``_estimate_log_weights``, ``_estimate_log_prob``, ``_compute_lower_bound``);
the results agree with scikit-learn's to rounding.

Arrays travel in one layout for the four covariance types (one compiled
specialisation serves them all): the covariances, the scatter ``sk`` and the
precision factors as (Kc, r, d) with Kc = K, r = d ('full'), Kc = 1, r = d
('tied'), r = 1 ('diag', d values; 'spherical', d = 1 value); the covariance prior
as (r, d) likewise; the weight concentration as (2, K) (the Dirichlet process's
two rows) or (1, K).

``digamma`` and ``gammaln`` are scalar functions for positive arguments (all the
variational parameters are): ``digamma`` by the recurrence psi(x) = psi(x + 1) -
1/x up to x >= 10 and the asymptotic series there (Abramowitz and Stegun 6.3.18,
Bernoulli terms to x^-14: truncation below 1e-17); ``gammaln`` is C's ``lgamma``.
Both agree with ``scipy.special`` to about 1e-15 (tests/test_bayesian.py).
"""

import math

import numpy as np

from ._estep import DIAG, FULL, TIED
from ._numba import jit, jit_inner

LOG_2 = math.log(2.0)


@jit_inner()
def digamma(x):
    """psi(x) for x > 0 (NaN for NaN)."""
    r = 0.0
    while x < 10.0:
        r -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    # -sum_n B_2n / (2n x^2n), n = 1..7, in Horner form
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (
        1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))))
    return r + (math.log(x) - 0.5 / x + t)


@jit_inner()
def gammaln(x):
    return math.lgamma(x)


@jit()
def scalar_digamma(x):
    """``digamma`` callable from Python (for the tests)."""
    return digamma(x)


@jit()
def scalar_gammaln(x):
    return gammaln(x)


@jit()
def vb_posterior(ct, dp, nk, xk, sk, wcp, mpp, mean_prior, dofp, cp,
                 wc, mean_precision, means, dof, cov):
    """scikit-learn's _estimate_weights / _estimate_means / _estimate_precisions
    (up to the precision factors: ``_mstep.compute_precision_cholesky``) from the
    M-step's nk (K,), means xk (K, d) and covariances sk, into the outputs (the
    layouts of the module docstring; dof (K,), all K equal for 'tied')."""
    K, d = xk.shape
    if dp:
        tail = 0.0  # the weight of the components after k, summed from the last
        for k in range(K - 1, -1, -1):
            wc[0, k] = 1.0 + nk[k]
            wc[1, k] = wcp + tail
            tail += nk[k]
    else:
        for k in range(K):
            wc[0, k] = wcp + nk[k]
    for k in range(K):
        mean_precision[k] = mpp + nk[k]
        for a in range(d):
            means[k, a] = (mpp * mean_prior[a] + nk[k] * xk[k, a]) / mean_precision[k]
    if ct == TIED:
        ntot = 0.0
        for k in range(K):
            ntot += nk[k]
        dt = dofp + ntot / K
        for k in range(K):
            dof[k] = dt
        for a in range(d):
            for b in range(d):
                cov[0, a, b] = 0.0
        for k in range(K):
            f = nk[k] / mean_precision[k]
            for a in range(d):
                fa = f * (xk[k, a] - mean_prior[a])
                for b in range(d):
                    cov[0, a, b] += fa * (xk[k, b] - mean_prior[b])
        for a in range(d):
            for b in range(d):
                cov[0, a, b] = (cp[a, b] + sk[0, a, b] * ntot / K
                                + mpp / K * cov[0, a, b]) / dt
        return
    for k in range(K):
        dof[k] = dofp + nk[k]
        g = mpp / mean_precision[k]
        if ct == FULL:
            f = nk[k] * g
            for a in range(d):
                fa = f * (xk[k, a] - mean_prior[a])
                for b in range(d):
                    cov[k, a, b] = (cp[a, b] + nk[k] * sk[k, a, b]
                                    + fa * (xk[k, b] - mean_prior[b])) / dof[k]
        elif ct == DIAG:
            for a in range(d):
                diff = xk[k, a] - mean_prior[a]
                cov[k, 0, a] = (cp[0, a] + nk[k] * (sk[k, 0, a] + g * diff * diff)) / dof[k]
        else:
            msq = 0.0
            for a in range(d):
                diff = xk[k, a] - mean_prior[a]
                msq += diff * diff
            cov[k, 0, 0] = (cp[0, 0] + nk[k] * (sk[k, 0, 0] + g * (msq / d))) / dof[k]


@jit()
def vb_expectations(ct, dp, wc, mean_precision, dof, pc, d, log_w, offset, weights):
    """What the posterior alone gives: E[log pi_k] (``log_w``), the E-step's
    constants added to each log det (``offset``: scikit-learn's
    -d/2 log dof + 1/2 (log lambda - d / mean_precision)), the weights_, all (K,);
    returns the lower bound's parameter terms, -log Wishart norm - log weight norm
    - d/2 sum log mean_precision (scikit-learn's _compute_lower_bound less its
    responsibility terms). ``pc``: the precision factors in the work dtype's
    values (float64), layout of the module docstring."""
    K = mean_precision.shape[0]
    # the weights
    if dp:
        norm = 0.0
        run = 1.0  # prod_{j<k} b_j / (a_j + b_j)
        for k in range(K):
            s = wc[0, k] + wc[1, k]
            weights[k] = wc[0, k] / s * run
            run *= wc[1, k] / s
            norm += weights[k]
    else:
        norm = 0.0
        for k in range(K):
            norm += wc[0, k]
        for k in range(K):
            weights[k] = wc[0, k]
    for k in range(K):
        weights[k] /= norm
    # E[log pi_k] and the log weight normalisation
    if dp:
        tail = 0.0  # sum_{j<k} (psi(b_j) - psi(a_j + b_j))
        log_norm_weight = 0.0
        for k in range(K):
            a, b = wc[0, k], wc[1, k]
            dsum = digamma(a + b)
            log_w[k] = digamma(a) - dsum + tail
            tail += digamma(b) - dsum
            log_norm_weight -= gammaln(a) + gammaln(b) - gammaln(a + b)  # -betaln
    else:
        tot = 0.0
        lg = 0.0
        for k in range(K):
            tot += wc[0, k]
            lg += gammaln(wc[0, k])
        dtot = digamma(tot)
        for k in range(K):
            log_w[k] = digamma(wc[0, k]) - dtot
        log_norm_weight = gammaln(tot) - lg
    # the degrees-of-freedom terms, the Wishart normalisation, the mean precision
    log_wishart = 0.0
    sum_log_mp = 0.0
    for k in range(K):
        nu = dof[k]
        ldet = 0.0  # log det of the precision factor
        if ct == FULL or ct == TIED:
            kk = k if ct == FULL else 0
            for a in range(d):
                ldet += math.log(pc[kk, a, a])
        elif ct == DIAG:
            for a in range(d):
                ldet += math.log(pc[k, 0, a])
        else:
            ldet = d * math.log(pc[k, 0, 0])
        log_lambda = d * LOG_2
        lg = 0.0
        for i in range(d):
            log_lambda += digamma(0.5 * (nu - i))
            lg += gammaln(0.5 * (nu - i))
        offset[k] = -0.5 * d * math.log(nu) + 0.5 * (log_lambda - d / mean_precision[k])
        ldpc = ldet - 0.5 * d * math.log(nu)
        log_wishart -= nu * ldpc + nu * d * 0.5 * LOG_2 + lg
        sum_log_mp += math.log(mean_precision[k])
    return -log_wishart - log_norm_weight - 0.5 * d * sum_log_mp
