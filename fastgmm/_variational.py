"""The variational mixture's small O(K d^2) arithmetic, compiled: an M-step from
the pass's statistics to the posterior and what depends on the posterior alone
(the E-step's expected log weights and constants, the weights, the lower bound's
parameter terms), and the lower bound's entropy term, one call each.

In NumPy these are some sixty calls on arrays of K or d numbers, 80-150 us an
iteration, which at 10k rows is as long as the data pass. Formulas and order
follow ``sklearn/mixture/_bayesian_mixture.py`` (``_estimate_weights``,
``_estimate_means``, ``_estimate_precisions``, ``_estimate_log_weights``,
``_estimate_log_prob``, ``_compute_lower_bound``); the results agree with
scikit-learn's to rounding.

Arrays travel in ``_mstep.cov_layout``'s one layout for the four covariance types
(one compiled specialisation serves them all): covariances, precision factors and
the M-step's scatter as (Kc, r, c); the covariance prior as (r, c) likewise; the
weight concentration as (2, K) (the Dirichlet process's two rows) or (1, K).

``digamma`` and ``gammaln`` are scalar functions for positive arguments (all the
variational parameters are): ``digamma`` by the recurrence psi(x) = psi(x + 1) -
1/x up to x >= 10 and the asymptotic series there (Abramowitz and Stegun 6.3.18,
Bernoulli terms to x^-14: truncation below 1e-17); ``gammaln`` is C's ``lgamma``.
Both agree with ``scipy.special`` to 2e-15 (tests/test_bayesian.py).
"""

import math

import numpy as np

from ._estep import DIAG, FULL, LOG_2PI, TIED
from ._mstep import factor_log_det, gaussian_parameters, precision_factors, scatter_into
from ._numba import SOURCE_STAMP, jit, jit_inner, wide_vectors

LOG_2 = math.log(2.0)


@jit_inner()
def digamma(x):
    """psi(x) for x > 0 (NaN for NaN)."""
    wide_vectors()
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
    wide_vectors()
    return math.lgamma(x)


@jit_inner()
def _posterior(ct, dp, nk, xk, sk, wcp, mpp, mean_prior, dofp, cp,
                 wc, mean_precision, means, dof, cov):
    """scikit-learn's _estimate_weights / _estimate_means / _estimate_precisions
    (up to the precision factors: ``_mstep.compute_precision_cholesky``) from the
    M-step's nk (K,), means xk (K, d) and covariances sk, into the outputs (the
    layouts of the module docstring; dof (K,), all K equal for 'tied')."""
    wide_vectors()
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


@jit_inner()
def _expectations(ct, dp, wc, mean_precision, dof, pc, d, log_w, offset, weights):
    """What the posterior alone gives: E[log pi_k] (``log_w``), the E-step's
    constants added to each log det (``offset``: scikit-learn's
    -d/2 log dof + 1/2 (log lambda - d / mean_precision)), the weights_, all (K,);
    returns the lower bound's parameter terms, -log Wishart norm - log weight norm
    - d/2 sum log mean_precision (scikit-learn's _compute_lower_bound less its
    responsibility terms). ``pc``: the precision factors (their values in the work
    dtype) in ``_mstep.cov_layout``."""
    wide_vectors()
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
        log_lambda = d * LOG_2
        lg = 0.0
        for i in range(d):
            log_lambda += digamma(0.5 * (nu - i))
            lg += gammaln(0.5 * (nu - i))
        offset[k] = -0.5 * d * math.log(nu) + 0.5 * (log_lambda - d / mean_precision[k])
        ldpc = factor_log_det(ct, pc, k, d) - 0.5 * d * math.log(nu)
        log_wishart -= nu * ldpc + nu * d * 0.5 * LOG_2 + lg
        sum_log_mp += math.log(mean_precision[k])
    return -log_wishart - log_norm_weight - 0.5 * d * sum_log_mp


@jit_inner()
def _entropy(ct, rsum, ll, pc, aux, log_det, log_w, S):
    """``vb_entropy`` from the scatter S about the E-step's means."""
    wide_vectors()
    K = log_w.shape[0]
    d = S.shape[2]
    first = 0.0
    for k in range(K):
        if rsum[k] > 0.0:  # an empty component adds nothing
            first += rsum[k] * (log_w[k] + log_det[k] - 0.5 * d * LOG_2PI)
    quad = 0.0
    if ct == FULL or ct == TIED:
        W = np.empty(d)
        for k in range(K if ct == FULL else 1):  # tr(U^T S U), P = U U^T
            for a in range(d):  # sum_j U_aj (S U)_aj, row a of S U at a time
                for j in range(d):
                    W[j] = 0.0
                for b in range(d):
                    sab = S[k, a, b]
                    for j in range(d):
                        W[j] += sab * pc[k, b, j]
                for j in range(d):
                    quad += pc[k, a, j] * W[j]
    else:  # aux: the precision factor per feature
        for k in range(K):
            for a in range(d):
                quad += aux[k, a] * aux[k, a] * S[k, 0, a]
    return first - 0.5 * quad - ll


def _build():
    STAMP = SOURCE_STAMP  # in the cache key: an edit of _mstep.py recompiles

    @jit()
    def vb_mstep(ct, dp, f32, rsum, s1, s2, shift, gshift, wsum, reg_covar, eps, wcp, mpp,
                 mean_prior, dofp, cp, wc, mean_precision, means, dof, cov, pc, derived):
        """The M-step from the statistics (``_mstep.gaussian_parameters``, then the
        posterior and its precision factors) and what the posterior alone gives:
        derived[0] = E[log pi_k], derived[1] the E-step's offsets, derived[2] the
        weights; returns (False, 0) where a covariance is not positive definite,
        else (True, the lower bound's parameter terms). With ``f32`` the
        parameters are rounded to float32 first (the values the model stores)."""
        wide_vectors()
        if STAMP == "":
            return False, 0.0
        K, d = s1.shape
        nk, xk = np.empty(K), np.empty((K, d))
        sk = np.empty(cov.shape)
        gaussian_parameters(ct, rsum, s1, s2, shift, gshift, wsum, reg_covar, eps, nk, xk, sk)
        _posterior(ct, dp, nk, xk, sk, wcp, mpp, mean_prior, dofp, cp, wc, mean_precision,
                   means, dof, cov)
        if not precision_factors(ct, cov, pc):
            return False, 0.0
        if f32:
            for a in (wc.reshape(-1), mean_precision, means.reshape(-1), dof, cov.reshape(-1),
                      pc.reshape(-1)):
                for i in range(a.shape[0]):
                    a[i] = np.float32(a[i])
        return True, _expectations(ct, dp, wc, mean_precision, dof, pc, d, derived[0],
                                   derived[1], derived[2])

    @jit()
    def vb_expectations(ct, dp, wc, mean_precision, dof, pc, d, derived):
        """``vb_mstep``'s derived terms and bound of given parameters."""
        wide_vectors()
        if STAMP == "":
            return 0.0
        return _expectations(ct, dp, wc, mean_precision, dof, pc, d, derived[0], derived[1],
                             derived[2])

    @jit()
    def vb_entropy(ct, rsum, s1, s2, shift, gshift, wsum, ll, means, pc, aux, log_det, log_w):
        """sum_i w_i sum_k r_ik log r_ik of the pass that made the statistics at the
        E-step (means, pc, aux, log_det, log_w; ``_mstep.EStep``).

        log r_ik = log p(x_i, k) - log p(x_i), and the kernels' log p(x_i, k) is
        c_k - 1/2 (x_i - m_k)^T P_k (x_i - m_k): so the sum is
        sum_k [r_k c_k - 1/2 tr(P_k S_k)] - ll, with the scatter S_k about m_k
        from the statistics and ll = sum_i w_i log p(x_i) their log-likelihood."""
        wide_vectors()
        if STAMP == "":
            return 0.0
        K, d = means.shape
        dm = np.empty((K, d))
        for k in range(K):
            for a in range(d):
                dm[k, a] = means[k, a] - shift[k, a]
        S = np.empty((K if ct != TIED else 1, d if ct == FULL or ct == TIED else 1, d))
        scatter_into(ct, rsum, s1, s2, shift, gshift, dm, wsum, S)
        return _entropy(ct, rsum, ll, pc, aux, log_det, log_w, S)

    @jit()
    def special(x):
        """(digamma(x), gammaln(x)), for the tests."""
        wide_vectors()
        if STAMP == "":
            return 0.0, 0.0
        return digamma(x), gammaln(x)

    return vb_mstep, vb_expectations, vb_entropy, special


vb_mstep, vb_expectations, vb_entropy, special = _build()
