"""The M-step's linear algebra: statistics -> parameters, and parameters -> the
E-step kernels' arguments.

The statistics come from ``_accumulate`` (a ``_stats.Stats``: float64, about
shifts near the current means). Everything here is O(K d^2) or O(K d^3) work on
small arrays. The precision-Cholesky helpers follow scikit-learn's
``sklearn/mixture/_gaussian_mixture.py`` (same names, same conventions, same
error message) so that a reader who knows scikit-learn knows where to look.
"""

import math

import numpy as np
from scipy import linalg

from ._estep import COV_CODES, DIAG, FULL, SPHERICAL, TIED
from ._numba import jit, jit_inner, wide_vectors

COV_NAMES = {code: name for name, code in COV_CODES.items()}

ILL_DEFINED = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)
FLOAT32_HINT = (
    " The numerical accuracy can also be improved by passing float64"
    " data instead of float32."
)


def estimate_gaussian_parameters(stats, reg_covar, eps, wsum):
    """nk, means, covariances (float64) from shifted statistics.

    Equal to scikit-learn's ``_estimate_gaussian_parameters`` on the same
    responsibilities: nk carries the same ``10 * eps``, the covariance is the
    responsibility-weighted scatter about the *new* means, plus ``reg_covar``
    on the diagonal (``gaussian_parameters``, compiled).
    """
    ct = stats.ct
    K, d = stats.s1.shape
    nk, means = np.empty(K), np.empty((K, d))
    cov = np.empty(cov_layout(ct, K, d))
    gaussian_parameters(ct, *stats_arrays(stats), wsum, float(reg_covar), float(eps),
                        nk, means, cov)
    return nk, means, cov.reshape(covariance_shape(COV_NAMES[ct], K, d))


def cov_layout(ct, n_components, n_features):
    """The compiled M-step's one layout of covariance-shaped arrays (Kc, r, c):
    (K, d, d) 'full', (1, d, d) 'tied', (K, 1, d) 'diag', (K, 1, 1) 'spherical'."""
    K, d = n_components, n_features
    return {FULL: (K, d, d), TIED: (1, d, d), DIAG: (K, 1, d), SPHERICAL: (K, 1, 1)}[ct]


def in_layout(a, ct, n_components, n_features):
    """A covariance-shaped array (covariances_, precisions_cholesky_; with
    n_components=1, a covariance prior) in ``cov_layout``: float64, C-ordered."""
    a = np.asarray(a, dtype=np.float64).reshape(cov_layout(ct, n_components, n_features))
    return np.ascontiguousarray(a)


def stats_arrays(stats):
    """(nk, s1, s2, shift, gshift) of a ``_stats.Stats``, float64 C-ordered, as the
    compiled functions take them."""
    c = np.ascontiguousarray
    return (c(stats.nk, dtype=np.float64), c(stats.s1, dtype=np.float64),
            c(stats.s2, dtype=np.float64), c(stats.shift, dtype=np.float64),
            c(stats.gshift, dtype=np.float64))


@jit()
def scatter_into(ct, nk, s1, s2, shift, gshift, dm, wsum, S):
    """sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T about the centres c = shift + dm, by
    exact algebra from statistics about ``shift`` (``_stats``' layout), into S in
    the layout of ``cov_layout`` ('diag' and 'spherical' both (K, 1, d): the
    per-feature diagonals).

    'tied': the (d, d) sum over the components in scikit-learn's form,
    X^T X - sum_k r_k c_k c_k^T. In coordinates shifted by g = gshift, with
    S2 = sum_i w_i (x_i - g)(x_i - g)^T, e = sum_i w_i (x_i - g), n = wsum,
    c'_k = c_k - g and each component's first moment e_k = sum_i w_i r_ik (x_i - g):
      S = S2 - sum_k (e_k c'_k^T + c'_k e_k^T - r_k c'_k c'_k^T)
          + g (e - sum_k e_k)^T + (e - sum_k e_k) g^T + (n - sum_k r_k) g g^T.
    Where every row's responsibilities sum to 1 (EM, k-means labels, 'random') the
    first line is the scatter of each row about its component's centre, >= 0
    whatever the centres, and the last three terms vanish; they matter for
    'random_from_data' and 'k-means++' starts, where scikit-learn's formula is
    applied as it is."""
    wide_vectors()
    K, d = s1.shape
    if ct == FULL:
        for k in range(K):
            for a in range(d):
                for b in range(d):
                    m2 = s2[k, a, b] if a <= b else s2[k, b, a]
                    S[k, a, b] = (m2 - s1[k, a] * dm[k, b] - dm[k, a] * s1[k, b]
                                  + nk[k] * dm[k, a] * dm[k, b])
    elif ct == TIED:
        de = np.empty(d)
        rtot = 0.0
        for a in range(d):
            de[a] = s2[0, d, a]
            for b in range(d):
                S[0, a, b] = s2[0, a, b] if a <= b else s2[0, b, a]
        c = np.empty(d)
        e = np.empty(d)
        for k in range(K):
            rtot += nk[k]
            for a in range(d):
                c[a] = shift[k, a] + dm[k, a] - gshift[a]
                e[a] = s1[k, a] + nk[k] * (shift[k, a] - gshift[a])
                de[a] -= e[a]
            for a in range(d):
                for b in range(d):
                    S[0, a, b] += nk[k] * c[a] * c[b] - e[a] * c[b] - c[a] * e[b]
        rest = wsum - rtot
        for a in range(d):
            for b in range(d):
                S[0, a, b] += (gshift[a] * de[b] + de[a] * gshift[b]
                               + rest * gshift[a] * gshift[b])
    else:
        for k in range(K):
            for a in range(d):
                S[k, 0, a] = (s2[k, 0, a] - 2.0 * s1[k, a] * dm[k, a]
                              + nk[k] * dm[k, a] * dm[k, a])


@jit()
def gaussian_parameters(ct, rsum, s1, s2, shift, gshift, wsum, reg_covar, eps, nk, means,
                        cov):
    """``estimate_gaussian_parameters``' arithmetic into nk (K,), means (K, d) and
    cov (``cov_layout``)."""
    wide_vectors()
    K, d = s1.shape
    dm = np.empty((K, d))
    for k in range(K):
        nk[k] = rsum[k] + 10.0 * eps
        for a in range(d):
            dm[k, a] = s1[k, a] / nk[k]
            means[k, a] = shift[k, a] + dm[k, a]
    if ct == SPHERICAL:
        S = np.empty((K, 1, d))
        scatter_into(ct, rsum, s1, s2, shift, gshift, dm, wsum, S)
        for k in range(K):
            acc = 0.0
            for a in range(d):
                acc += S[k, 0, a] / nk[k] + reg_covar
            cov[k, 0, 0] = acc / d
        return
    # about the new means; the 'tied' sum without the 10 * eps of nk: the 10 * eps
    # times (m_k - c)^2 of a weightless component far from c used to be subtracted
    # (a covariance below reg_covar, or negative)
    scatter_into(ct, rsum, s1, s2, shift, gshift, dm, wsum, cov)
    if ct == TIED:
        ntot = 0.0
        for k in range(K):
            ntot += nk[k]
        for a in range(d):
            for b in range(d):
                cov[0, a, b] /= ntot
            cov[0, a, a] += reg_covar
    elif ct == FULL:
        for k in range(K):
            for a in range(d):
                for b in range(d):
                    cov[k, a, b] /= nk[k]
                cov[k, a, a] += reg_covar
    else:
        for k in range(K):
            for a in range(d):
                cov[k, 0, a] = cov[k, 0, a] / nk[k] + reg_covar


def ill_defined(dtype):
    """scikit-learn's error message of a covariance that is not positive definite,
    with its float32 hint where the work dtype is float32."""
    return ILL_DEFINED + (FLOAT32_HINT if np.dtype(dtype) == np.float32 else "")


def compute_precision_cholesky(covariances, covariance_type, dtype=None):
    """scikit-learn's ``_compute_precision_cholesky``: the upper-triangular U with
    precision = U U^T, computed in float64, returned in ``dtype`` (default: the
    covariances' dtype), and its error (the float32 hint where ``dtype`` is float32).

    Pass the float64 covariances of the M-step with dtype=float32 rather than their
    float32 cast: the cast moves every entry by up to 6e-8 of its size, and where a
    component has variances of 1e-1 to 1e1 and a direction at reg_covar = 1e-6 that
    direction's variance moves by as much as itself (measured on a blob pair flat on
    some features: eigenvalues 1.07e-6 became 2.0e-7 and 2.0e-6, log det off by 1.4).
    """
    dtype = np.dtype(covariances.dtype if dtype is None else dtype)
    message = ill_defined(dtype)
    if covariance_type in ("full", "tied"):
        cov = np.asarray(covariances, dtype=np.float64)
        batch = cov if covariance_type == "full" else cov[None]
        out = np.empty_like(batch)
        if not precision_cholesky_batch(np.ascontiguousarray(batch), out):
            raise ValueError(message)
        if covariance_type == "tied":
            out = out[0]
    else:
        if np.any(np.less_equal(covariances, 0.0)):
            raise ValueError(message)
        out = 1.0 / np.sqrt(covariances)
    return out.astype(dtype, copy=False)


@jit()
def precision_factors(ct, cov, out):
    """``compute_precision_cholesky`` of float64 covariances in ``cov_layout``
    into out (the same layout); False where a covariance is not positive
    definite."""
    wide_vectors()
    if ct == FULL or ct == TIED:
        return precision_cholesky_batch(cov, out)
    for k in range(cov.shape[0]):
        for a in range(cov.shape[2]):
            c = cov[k, 0, a]
            if c <= 0.0:  # NaN passes, as in compute_precision_cholesky
                return False
            out[k, 0, a] = 1.0 / math.sqrt(c)
    return True


def _flipudlr(a):
    return np.flip(np.flip(a, axis=-1), axis=-2)


def compute_precision_cholesky_from_precisions(precisions, covariance_type):
    """scikit-learn's ``_compute_precision_cholesky_from_precisions``."""
    if covariance_type == "full":
        return np.stack(
            [_flipudlr(linalg.cholesky(_flipudlr(p), lower=True)) for p in precisions]
        )
    if covariance_type == "tied":
        return _flipudlr(linalg.cholesky(_flipudlr(precisions), lower=True))
    return np.sqrt(precisions)


def precisions_from_cholesky(prec_chol, covariance_type):
    if covariance_type == "full":
        return np.matmul(prec_chol, np.swapaxes(prec_chol, 1, 2))
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


def covariances_from_precisions(precisions, covariance_type):
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(precisions).astype(precisions.dtype, copy=False)
    return (1.0 / precisions).astype(precisions.dtype, copy=False)


class EStep:
    """What the E-step kernels need per component (see ``_estep``), float64: the
    arrays (means, pc, aux, log_det, log_w), unpacked in that order by ``*ep``,
    plus the type code ``ct`` and ``gshift``, the weights' average of the means
    (the tiled path's and the tied scatter's shift)."""

    __slots__ = ("ct", "arrays", "gshift")

    def __init__(self, ct, means, pc, aux, log_det, log_w, gshift):
        self.ct, self.arrays, self.gshift = ct, (means, pc, aux, log_det, log_w), gshift

    def __iter__(self):
        return iter(self.arrays)

    def __getitem__(self, i):
        return self.arrays[i]

    @property
    def means(self):
        return self.arrays[0]

    def __dask_tokenize__(self):  # Dask names tasks by their arguments' tokens
        from dask.base import tokenize

        return ("fastgmm.EStep", self.ct, tokenize(*self.arrays), tokenize(self.gshift))


def estep_params(weights, means, prec_chol, ct, log_w=None, log_det_offset=None):
    """The E-step kernels' arguments at these parameters (``EStep``): per component,
    log p(x, k) = log_w + log_det - d/2 log(2 pi) - 1/2 (x - m)^T P (x - m), with
    log_w = log(weights) and log_det that of the precision factor unless given
    (a variational model's expected log weights, and its constants added to log_det
    through ``log_det_offset``). One compiled call (``estep_fill``)."""
    f64 = np.float64
    means = np.asarray(means, dtype=f64)
    K, d = means.shape
    empty = np.zeros(0)
    out = EStep(ct, np.empty((K, d)), np.empty((K if ct == FULL else int(ct == TIED), d, d)),
                np.empty((0 if ct == FULL else K, d)), np.empty(K), np.empty(K), np.empty(d))
    if log_det_offset is None:
        offset = empty
    elif np.shape(log_det_offset) == (K,):  # (a broadcast took a third of this call)
        offset = np.ascontiguousarray(log_det_offset, dtype=f64)
    else:
        offset = np.ascontiguousarray(np.broadcast_to(log_det_offset, (K,)), dtype=f64)
    estep_fill(ct, np.ascontiguousarray(weights, dtype=f64), np.ascontiguousarray(means),
               in_layout(prec_chol, ct, K, d),
               empty if log_w is None else np.ascontiguousarray(log_w, dtype=f64), offset,
               *out, out.gshift)
    return out


@jit_inner()
def factor_log_det(ct, pc, k, d):
    """log det of component k's precision factor, ``pc`` in ``cov_layout``."""
    wide_vectors()
    ld = 0.0
    if ct == FULL or ct == TIED:
        kk = k if ct == FULL else 0
        for a in range(d):
            ld += math.log(pc[kk, a, a])
    elif ct == DIAG:
        for a in range(d):
            ld += math.log(pc[k, 0, a])
    else:
        ld = d * math.log(pc[k, 0, 0])
    return ld


@jit()
def estep_fill(ct, weights, means, pc, log_w_in, offset, m_out, pc_out, aux, log_det, log_w,
               gshift):
    """``estep_params``' arrays from the precision factors ``pc`` in ``cov_layout``:
    the means; the factors themselves ('full', 'tied'); aux, the means times the
    factor ('tied') or the factor per feature ('diag', 'spherical'); the log det of
    each factor (plus ``offset`` where given); log_w (``log_w_in`` where given, else
    log(weights)); gshift, the weights' average of the means."""
    wide_vectors()
    K, d = means.shape
    for k in range(K):
        for a in range(d):
            m_out[k, a] = means[k, a]
    if ct == FULL or ct == TIED:
        for k in range(pc_out.shape[0]):
            for a in range(d):
                for b in range(d):
                    pc_out[k, a, b] = pc[k, a, b]
    for k in range(K):
        if ct == TIED:
            for j in range(d):
                acc = 0.0
                for a in range(d):
                    acc += means[k, a] * pc[0, a, j]
                aux[k, j] = acc
        elif ct == DIAG:
            for a in range(d):
                aux[k, a] = pc[k, 0, a]
        elif ct == SPHERICAL:
            for a in range(d):
                aux[k, a] = pc[k, 0, 0]
        ld = factor_log_det(ct, pc, k, d)
        log_det[k] = ld + offset[k] if offset.shape[0] > 0 else ld
        log_w[k] = log_w_in[k] if log_w_in.shape[0] > 0 else math.log(weights[k])
    for a in range(d):
        acc = 0.0
        for k in range(K):
            acc += weights[k] * means[k, a]
        gshift[a] = acc


def covariance_shape(covariance_type, n_components, n_features):
    """The shape of covariances_, precisions_ and precisions_cholesky_."""
    K, d = n_components, n_features
    return {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[
        covariance_type]


def n_parameters(covariance_type, n_components, n_features):
    if covariance_type == "full":
        cov_params = n_components * n_features * (n_features + 1) / 2.0
    elif covariance_type == "diag":
        cov_params = n_components * n_features
    elif covariance_type == "tied":
        cov_params = n_features * (n_features + 1) / 2.0
    else:
        cov_params = n_components
    mean_params = n_features * n_components
    return int(cov_params + mean_params + n_components - 1)


@jit()
def precision_cholesky_batch(cov, out):
    """out[k] = inv(cholesky(cov[k])).T, upper-triangular, for each (d, d) matrix.

    Returns False when a factorisation fails (a pivot <= 0 or NaN), where LAPACK's
    potrf would. Small matrices: plain loops beat a LAPACK call per component.
    """
    wide_vectors()
    K, d, _ = cov.shape
    L = np.zeros((d, d))
    Z = np.zeros((d, d))
    for k in range(K):
        for j in range(d):
            s = cov[k, j, j]
            for p in range(j):
                s -= L[j, p] * L[j, p]
            if not s > 0.0:
                return False
            ljj = math.sqrt(s)
            L[j, j] = ljj
            for i in range(j + 1, d):
                t = cov[k, i, j]
                for p in range(j):
                    t -= L[i, p] * L[j, p]
                L[i, j] = t / ljj
        # Z = L^-1 (lower) by forward substitution, column by column
        for c in range(d):
            for i in range(c):
                Z[i, c] = 0.0
            Z[c, c] = 1.0 / L[c, c]
            for i in range(c + 1, d):
                t = 0.0
                for p in range(c, i):
                    t -= L[i, p] * Z[p, c]
                Z[i, c] = t / L[i, i]
        for i in range(d):
            for j in range(d):
                out[k, i, j] = Z[j, i]
    return True
