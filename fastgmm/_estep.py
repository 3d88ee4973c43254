"""E-step kernels: log-probabilities and responsibilities, one covariance type each.

Block workers (``_block_log_prob_*``) compute log pi_k + log N(x_i | k) for a block
of rows into LP (K, B); ``_block_resp`` turns them into responsibilities and the
per-row log-likelihood. ``log_prob_kernel(ct, tiled)`` builds the serial pass that
``predict``, ``predict_proba`` and ``score_samples`` run: the covariance type and
the path are constants of the closure, so a call compiles only its own branch.

Parameter arrays handed to the kernels (``estep_params`` in ``_mstep``), float64:

- ``means``   (K, d)
- ``pc``      (K, d, d) upper-triangular precision Cholesky factors for 'full',
              (1, d, d) for 'tied', an empty (0, d, d) array otherwise
- ``aux``     (K, d): for 'tied' the products means[k] @ U, for 'diag' the
              precision Cholesky vectors, for 'spherical' the scalar factor
              broadcast over the features, unused (0, d) for 'full'
- ``log_det`` (K,) log-determinant of each precision Cholesky factor
- ``log_w``   (K,) log mixture weights

'full' covariances from ``TILE_MIN_D`` features on take the tiled path: the
precision factors side by side (``tile_params``), one BLAS product for several
components on a tile of rows centred on ``gshift``.
"""

import math
import threading

import numpy as np

from ._numba import (BLOCK, SOURCE_STAMP, as_float64, jit, jit_exact_inner, jit_fma_inner,
                     jit_inner, wide_vectors)
from ._small import LP_FULL, lp_full_small

LOG_2PI = math.log(2.0 * math.pi)
FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
COV_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}

TILE_MIN_D = 16  # 'full' from this many features: BLAS products on row tiles
TILE_WIDTH = 256  # columns of one tiled product: kc = TILE_WIDTH // d components
TILE_BLOCK = 512  # rows per block on the tiled path (longer products run faster)
QUAD_ROWS = 128  # rows of one quadratic-feature product (their features: 2.2 MB at d = 64)
QUAD_MAX_ERR = 1e-8  # the float64 quadratic-feature path's rounding bound (``quad_params``)
# and its scale bound: products of rows within 1e50 standard deviations cannot overflow
QUAD_MAX_SCALE = 1e100
OUT_LSE, OUT_LABEL, OUT_RESP = 0, 1, 2


def uses_tiles(ct, n_features):
    """'full' covariances with d >= TILE_MIN_D run on the BLAS-tiled kernels."""
    return ct == FULL and n_features >= TILE_MIN_D


def small_d(ct, n_features):
    """The number of features a 'full' kernel is built for (its log-densities
    unrolled, ``_small``), or 0: the generic loops (other types, the tiled path)."""
    if ct == FULL and 0 < n_features < len(LP_FULL) and not uses_tiles(ct, n_features):
        return n_features
    return 0


def block_size(ct, n_features):
    return TILE_BLOCK if uses_tiles(ct, n_features) else BLOCK


@jit_inner()
def load_block(X, start, stop, XT, gshift):
    """Rows [start, stop) of X (any dtype or layout) minus gshift (zeros: the rows
    as they are, x - 0 being x), transposed into XT (d, B) as float64: the inner
    loops then run over contiguous rows and vectorise. Eight rows at a time, a
    feature at a time: each feature's eight values (read across the eight rows,
    which stay in L1 for all features) go out as one vector store. Measured
    against the earlier loaders (a row at a time below 16 features; from 16 on
    a staging copy moved by 8 x 8 tiles), one core: 10k x 8 65 -> 40 us,
    10k x 1 35 -> 13, 200k x 8 1.7 -> 1.4 ms, 200k x 25 7.7 -> 5.8, 200k x 64
    23.9 -> 17.0."""
    wide_vectors()
    B, d = stop - start, X.shape[1]
    i0 = 0
    while i0 + 8 <= B:
        for a in range(d):
            g = gshift[a]
            for i in range(8):
                XT[a, i0 + i] = X[start + i0 + i, a] - g
        i0 += 8
    for i in range(i0, B):
        for a in range(d):
            XT[a, i] = X[start + i, a] - gshift[a]


@jit_inner()
def block_log_prob_full(XT, B, means, pc, log_det, log_w, LP, D, t, maha):
    wide_vectors()
    K, d = means.shape
    const = -0.5 * d * LOG_2PI
    for k in range(K):
        for i in range(B):
            maha[i] = 0.0
        for a in range(d):
            mu = means[k, a]
            for i in range(B):
                D[a, i] = XT[a, i] - mu
        for j in range(d):
            for i in range(B):
                t[i] = 0.0
            for a in range(j + 1):
                u = pc[k, a, j]
                for i in range(B):
                    t[i] += D[a, i] * u
            for i in range(B):
                maha[i] += t[i] * t[i]
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * maha[i]


@jit_inner()
def block_log_prob_tied(XT, B, pc, aux, log_det, log_w, LP, D, t, maha):
    wide_vectors()
    K, d = aux.shape
    const = -0.5 * d * LOG_2PI
    # y = x U once per row (kept in D), then per component subtract mu_k U. Four
    # features of y a sweep over four of x (U is upper-triangular, its zeros
    # stored): each x and each partial sum loaded once for 16 multiply-adds
    # (one a sweep loaded and stored the partial sum at each: the 'tied' pass of
    # 10k x 8, K = 4 151 -> 122 us on one core, 100k x 32, K = 16 14.3 -> 13.1 ms)
    j0 = 0
    while j0 + 4 <= d:
        for q in range(4):
            for i in range(B):
                D[j0 + q, i] = 0.0
        for a in range(0, j0 + 4, 4):
            u00, u01, u02, u03 = pc[0, a, j0], pc[0, a, j0 + 1], pc[0, a, j0 + 2], pc[0, a, j0 + 3]
            u10, u11, u12, u13 = (pc[0, a + 1, j0], pc[0, a + 1, j0 + 1], pc[0, a + 1, j0 + 2],
                                  pc[0, a + 1, j0 + 3])
            u20, u21, u22, u23 = (pc[0, a + 2, j0], pc[0, a + 2, j0 + 1], pc[0, a + 2, j0 + 2],
                                  pc[0, a + 2, j0 + 3])
            u30, u31, u32, u33 = (pc[0, a + 3, j0], pc[0, a + 3, j0 + 1], pc[0, a + 3, j0 + 2],
                                  pc[0, a + 3, j0 + 3])
            for i in range(B):
                x0, x1, x2, x3 = XT[a, i], XT[a + 1, i], XT[a + 2, i], XT[a + 3, i]
                D[j0, i] += (x0 * u00 + x1 * u10) + (x2 * u20 + x3 * u30)
                D[j0 + 1, i] += (x0 * u01 + x1 * u11) + (x2 * u21 + x3 * u31)
                D[j0 + 2, i] += (x0 * u02 + x1 * u12) + (x2 * u22 + x3 * u32)
                D[j0 + 3, i] += (x0 * u03 + x1 * u13) + (x2 * u23 + x3 * u33)
        j0 += 4
    for j in range(j0, d):  # the last d % 4 features, one a sweep
        for i in range(B):
            t[i] = 0.0
        for a in range(j + 1):
            u = pc[0, a, j]
            for i in range(B):
                t[i] += XT[a, i] * u
        for i in range(B):
            D[j, i] = t[i]
    for k in range(K):
        for i in range(B):
            maha[i] = 0.0
        j = 0
        while j + 4 <= d:
            c0, c1, c2, c3 = aux[k, j], aux[k, j + 1], aux[k, j + 2], aux[k, j + 3]
            for i in range(B):
                v0 = D[j, i] - c0
                v1 = D[j + 1, i] - c1
                v2 = D[j + 2, i] - c2
                v3 = D[j + 3, i] - c3
                maha[i] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
            j += 4
        for jj in range(j, d):
            c = aux[k, jj]
            for i in range(B):
                v = D[jj, i] - c
                maha[i] += v * v
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * maha[i]


@jit_inner()
def _maha_diag_one(XT, B, means, aux, k, LP):
    """LP[k, :B] = sum_j ((x_j - mu_kj) aux_kj)^2, four features a sweep."""
    wide_vectors()
    d = means.shape[1]
    for i in range(B):
        LP[k, i] = 0.0
    j = 0
    while j + 4 <= d:
        a0, a1, a2, a3 = means[k, j], means[k, j + 1], means[k, j + 2], means[k, j + 3]
        p0, p1, p2, p3 = aux[k, j], aux[k, j + 1], aux[k, j + 2], aux[k, j + 3]
        for i in range(B):
            u0 = (XT[j, i] - a0) * p0
            u1 = (XT[j + 1, i] - a1) * p1
            u2 = (XT[j + 2, i] - a2) * p2
            u3 = (XT[j + 3, i] - a3) * p3
            LP[k, i] += (u0 * u0 + u1 * u1) + (u2 * u2 + u3 * u3)
        j += 4
    while j < d:
        a0, p0 = means[k, j], aux[k, j]
        for i in range(B):
            u0 = (XT[j, i] - a0) * p0
            LP[k, i] += u0 * u0
        j += 1


@jit_inner()
def block_log_prob_diag(XT, B, means, aux, log_det, log_w, LP):
    """'diag' (aux: the precision factor per feature; 'spherical' has its own
    kernel below, which uses ``_maha_diag_one`` for its last components). Two
    components and four features a sweep of the rows: each x is loaded once for
    both components and each partial sum in LP once for four features (one
    component and one feature a sweep load and store the partial sum at every
    multiply-add: 3.7 against 3.0 ms for 100k x 32, K = 16, on one core). An odd
    K's last component on its own."""
    wide_vectors()
    K, d = means.shape
    const = -0.5 * d * LOG_2PI
    for k0 in range(0, K - 1, 2):
        k1 = k0 + 1
        for i in range(B):
            LP[k0, i] = 0.0
            LP[k1, i] = 0.0
        j = 0
        while j + 4 <= d:
            a0, a1, a2, a3 = means[k0, j], means[k0, j + 1], means[k0, j + 2], means[k0, j + 3]
            p0, p1, p2, p3 = aux[k0, j], aux[k0, j + 1], aux[k0, j + 2], aux[k0, j + 3]
            b0, b1, b2, b3 = means[k1, j], means[k1, j + 1], means[k1, j + 2], means[k1, j + 3]
            q0, q1, q2, q3 = aux[k1, j], aux[k1, j + 1], aux[k1, j + 2], aux[k1, j + 3]
            for i in range(B):
                x0, x1, x2, x3 = XT[j, i], XT[j + 1, i], XT[j + 2, i], XT[j + 3, i]
                u0 = (x0 - a0) * p0
                u1 = (x1 - a1) * p1
                u2 = (x2 - a2) * p2
                u3 = (x3 - a3) * p3
                v0 = (x0 - b0) * q0
                v1 = (x1 - b1) * q1
                v2 = (x2 - b2) * q2
                v3 = (x3 - b3) * q3
                LP[k0, i] += (u0 * u0 + u1 * u1) + (u2 * u2 + u3 * u3)
                LP[k1, i] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
            j += 4
        while j < d:
            a0, p0, b0, q0 = means[k0, j], aux[k0, j], means[k1, j], aux[k1, j]
            for i in range(B):
                x0 = XT[j, i]
                u0 = (x0 - a0) * p0
                v0 = (x0 - b0) * q0
                LP[k0, i] += u0 * u0
                LP[k1, i] += v0 * v0
            j += 1
    if K % 2 == 1:
        _maha_diag_one(XT, B, means, aux, K - 1, LP)
    for k in range(K):
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * LP[k, i]


@jit_inner()
def block_log_prob_spherical(XT, B, means, aux, log_det, log_w, LP):
    """'spherical': the squared distances |x - mu_k|^2 times the component's one
    precision (aux[k, 0]^2) at the end, so a sweep holds only means: four
    components and four features a sweep of the rows (16 means in registers; each
    x loaded once for four components, each partial sum once for four features;
    the 'diag' kernel's two components with their factors took 1.9 against 1.3 ms
    for 100k x 32, K = 16, on one core). The components beyond a multiple of four
    one at a time, by the 'diag' kernel's (factor included)."""
    wide_vectors()
    K, d = means.shape
    const = -0.5 * d * LOG_2PI
    k0 = 0
    while k0 + 4 <= K:
        k1, k2, k3 = k0 + 1, k0 + 2, k0 + 3
        for i in range(B):
            LP[k0, i] = 0.0
            LP[k1, i] = 0.0
            LP[k2, i] = 0.0
            LP[k3, i] = 0.0
        j = 0
        while j + 4 <= d:
            a0, a1, a2, a3 = means[k0, j], means[k0, j + 1], means[k0, j + 2], means[k0, j + 3]
            b0, b1, b2, b3 = means[k1, j], means[k1, j + 1], means[k1, j + 2], means[k1, j + 3]
            c0, c1, c2, c3 = means[k2, j], means[k2, j + 1], means[k2, j + 2], means[k2, j + 3]
            e0, e1, e2, e3 = means[k3, j], means[k3, j + 1], means[k3, j + 2], means[k3, j + 3]
            for i in range(B):
                x0, x1, x2, x3 = XT[j, i], XT[j + 1, i], XT[j + 2, i], XT[j + 3, i]
                u0, u1, u2, u3 = x0 - a0, x1 - a1, x2 - a2, x3 - a3
                v0, v1, v2, v3 = x0 - b0, x1 - b1, x2 - b2, x3 - b3
                w0, w1, w2, w3 = x0 - c0, x1 - c1, x2 - c2, x3 - c3
                z0, z1, z2, z3 = x0 - e0, x1 - e1, x2 - e2, x3 - e3
                LP[k0, i] += (u0 * u0 + u1 * u1) + (u2 * u2 + u3 * u3)
                LP[k1, i] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
                LP[k2, i] += (w0 * w0 + w1 * w1) + (w2 * w2 + w3 * w3)
                LP[k3, i] += (z0 * z0 + z1 * z1) + (z2 * z2 + z3 * z3)
            j += 4
        while j < d:
            a0, b0, c0, e0 = means[k0, j], means[k1, j], means[k2, j], means[k3, j]
            for i in range(B):
                x0 = XT[j, i]
                u0, v0, w0, z0 = x0 - a0, x0 - b0, x0 - c0, x0 - e0
                LP[k0, i] += u0 * u0
                LP[k1, i] += v0 * v0
                LP[k2, i] += w0 * w0
                LP[k3, i] += z0 * z0
            j += 1
        k0 += 4
    for k in range(k0, K):  # scaled by the factor already
        _maha_diag_one(XT, B, means, aux, k, LP)
    for k in range(K):
        c0 = log_w[k] + log_det[k] + const
        q = -0.5 * (aux[k, 0] * aux[k, 0]) if k < k0 else -0.5
        for i in range(B):
            LP[k, i] = c0 + q * LP[k, i]


# 'diag' and 'spherical' EM passes on rows centred on gshift (``centred_means``): the
# moments (``_accumulate._block_moments_centred``) in two operations and a quarter
# (a square per four components) a (row, component, feature) instead of four, the
# log-densities by the usual kernels with the means centred too. Taken where every
# mean lies within sqrt(EXPANDED_MAX_Q) of its own standard deviations of gshift (the
# pass's parameters); kept where the pass's sums show that its rows' variances are at
# least 1 / CENTRED_KEEP of their mean squared distance from gshift
# (``_accumulate.centred_sums_kept``), else the pass runs again by the per-component
# kernels
EXPANDED_MAX_Q = 2e3
CENTRED_KEEP = 1e4
CENTRED_MIN_SHARE = 1e-3


@jit()
def centred_means(means, aux, gshift):
    """means - gshift (K, d), what the engine hands a 'diag' / 'spherical' EM pass
    as its ``muu`` to take the centred forms; a (K, 0) array where some component's
    mean lies beyond sqrt(EXPANDED_MAX_Q) of its own standard deviations (at the
    pass's parameters, aux the precision factor per feature) of gshift, or where
    any of them is NaN. The variances the pass finds can be smaller than those:
    what keeps the digits is ``_accumulate.centred_sums_kept``, on the sums."""
    wide_vectors()
    K, d = means.shape
    cm = np.empty((K, d))
    ok = True
    for k in range(K):
        for a in range(d):
            c = means[k, a] - gshift[a]
            v = c * aux[k, a]
            cm[k, a] = c
            ok = ok and v * v <= EXPANDED_MAX_Q  # (False for NaN)
    return cm if ok else np.empty((K, 0))


# exp by Cody-Waite reduction and a degree-13 polynomial: written so that the
# loops over rows vectorise (libm's exp does not); within 2.2e-16 relative of
# NumPy's exp from x = -708 to 0 (tested), exactly 0 below x = -708.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1
_LN2_LO = 1.42860682030941723212e-6


@jit_fma_inner
def _exp_reduced(v, nf):
    """v - nf ln 2 in two steps (nf _LN2_HI is exact), two fused multiply-adds:
    without reassociation, which in the fast-math loop folded the two constants
    into one (ln 2 rounded: exp off by up to 2.4e-14 relative at v = -700,
    measured, 2.2e-16 now)."""
    wide_vectors()
    return (v - nf * _LN2_HI) - nf * _LN2_LO


@jit_inner()
def _exp_rows_sum(LP, k, mx, B, sums):
    """LP[k, :B] = exp(LP[k, :B] - mx[:B]) (arguments are <= 0), added into
    sums[:B]: one loop (the power of two made from its bits by ``as_float64``;
    written through an int64 scratch and a float64 view of it, the product and
    the sum took two loops more)."""
    wide_vectors()
    for i in range(B):
        v = LP[k, i] - mx[i]
        ok = v >= -708.0
        v = v if ok else -708.0
        nf = math.floor(v * _LOG2E + 0.5)
        r = _exp_reduced(v, nf)
        p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        e = p * as_float64(((np.int64(nf) + 1023) if ok else 0) << 52)
        LP[k, i] = e
        sums[i] += e


# log by fdlibm's method (x = 2^k (1 + f), sqrt(2)/2 < 1 + f < sqrt(2), s = f / (2 + f),
# log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)); error below 1 ulp), written so that the
# loop over rows vectorises (libm's log does not: 1M logs took 8.8 ms on one core)
_LG1, _LG2 = 6.666666666666735130e-01, 3.999999999940941908e-01
_LG3, _LG4 = 2.857142874366239149e-01, 2.222219843214978396e-01
_LG5, _LG6, _LG7 = 1.818357216161805012e-01, 1.531383769920937332e-01, 1.479819860511658591e-01
_LN2_HI_LOG, _LN2_LO_LOG = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_MANT = (1 << 52) - 1


@jit_exact_inner
def _log_rows(x, B, mb):
    """x[:B] = log(x[:B]); mb (int64, B) is scratch. Positive normal numbers by
    fdlibm's polynomial (no fastmath: its compensated sums keep their order),
    anything else (0, inf, NaN, subnormals) by libm for the whole block."""
    wide_vectors()
    for i in range(B):
        v = x[i]
        if not (v >= 2.2250738585072014e-308 and v < np.inf):
            for j in range(B):
                x[j] = math.log(x[j])
            return
    xb = x.view(np.int64)
    for i in range(B):
        b = xb[i]
        up = ((((b >> 32) & 0xFFFFF) + 0x95F64) & 0x100000) >> 20  # 1 + f >= ~sqrt(2)
        mb[i] = (b & _MANT) | ((0x3FF ^ up) << 52)  # the mantissa in [sqrt(2)/2, sqrt(2))
    m = mb.view(np.float64)
    for i in range(B):
        b = xb[i]
        up = ((((b >> 32) & 0xFFFFF) + 0x95F64) & 0x100000) >> 20
        k = np.float64((b >> 52) - 1023 + up)
        f = m[i] - 1.0
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        hfsq = 0.5 * f * f
        x[i] = k * _LN2_HI_LOG - ((hfsq - (s * (hfsq + (t2 + t1)) + k * _LN2_LO_LOG)) - f)


@jit_inner()
def resp_sums(LP, B, sums, mx, scale):
    """LP (K, B) -> responsibilities in place; mx[i] the row's largest LP (0 where
    that is -inf) and sums[i] = sum_k exp(LP[k, i] - mx[i]) (in [1, K] where mx is
    finite), whose log plus mx is log sum_k exp(LP[k, i]). Loops run over the
    rows innermost (contiguous) so that they vectorise; scale (int64, B) is
    scratch."""
    wide_vectors()
    K = LP.shape[0]
    for i in range(B):
        mx[i] = LP[0, i]
        sums[i] = 0.0
    for k in range(1, K):
        for i in range(B):
            mx[i] = max(mx[i], LP[k, i])
    for i in range(B):
        if not np.isfinite(mx[i]):
            mx[i] = 0.0 if mx[i] == -np.inf else mx[i]
    for k in range(K):
        _exp_rows_sum(LP, k, mx, B, sums)
    inv = scale.view(np.float64)
    for i in range(B):
        inv[i] = 1.0 / sums[i]
    for k in range(K):  # rows innermost: a row at a time strides by B through LP
        for i in range(B):
            LP[k, i] *= inv[i]


@jit_inner()
def block_resp(LP, B, lse, mx, scale):
    """LP (K, B) -> responsibilities in place; lse[i] = log sum_k exp(LP[k, i])."""
    wide_vectors()
    resp_sums(LP, B, lse, mx, scale)
    _log_rows(lse, B, scale)
    for i in range(B):
        lse[i] += mx[i]


LL_GROUP = 16  # rows whose sums (each at most K) one log takes: K^16 < 2^1024 to K = 2^63


@jit_inner()
def block_ll(sums, mx, wb, B, unit, scale):
    """sum_i w_i log sum_k exp(LP[k, i]) of a block from ``resp_sums``' sums and mx
    (sums is overwritten). Unit weights: sum_i mx_i plus the log of the product of
    LL_GROUP rows' sums at a time (one log for 16 rows: each product is 16
    roundings, 2e-15 of the log at most, against about 1 rounding of each row's
    log; a row whose sums are 0, inf or NaN gives -inf, inf or NaN as its own log
    would). Else each row's log, rows of weight 0 left out."""
    wide_vectors()
    acc = 0.0
    if unit:
        for i in range(B):
            acc += mx[i]
        for i0 in range(0, B, LL_GROUP):
            p = 1.0
            for i in range(i0, min(B, i0 + LL_GROUP)):
                p *= sums[i]
            acc += math.log(p)
        return acc
    _log_rows(sums, B, scale)
    for i in range(B):
        if wb[i] != 0.0:
            acc += wb[i] * (sums[i] + mx[i])
    return acc


def tile_params(pc, means, gshift, dtype):
    """For the tiled 'full' kernels: the precision factors side by side in chunks
    ``ucat`` (n_chunks, d, kc * d) of the data's dtype, so that one BLAS product
    serves kc components, and muu[k] = (mu_k - gshift) @ U_k (float64)."""
    K, d = means.shape
    kc = max(1, TILE_WIDTH // d)
    nch = (K + kc - 1) // kc
    ucat = np.zeros((nch, d, kc * d), dtype=dtype)
    for k in range(K):
        ch, kk = divmod(k, kc)
        ucat[ch, :, kk * d:(kk + 1) * d] = pc[k]
    muu = np.ascontiguousarray(np.einsum("ka,kaj->kj", means - gshift, pc))
    return ucat, muu


def quad_pays(n_components, n_features):
    """Whether the quadratic features (``quad_params``) beat the whitened products
    for K components of d features: their fixed cost a row (building and packing
    d(d+1)/2 features) pays from about K = (d - 20) / 4 on. Measured, EM pass on 2
    threads, whitened / quadratic time: d = 16 and 24, 1.3-2.6x from K = 1; d = 32:
    K = 2 1.76x, 3 0.87x, 4 1.04x; d = 40: K = 2 0.89x, 4 1.08x, 8 1.59x; d = 48:
    K = 4 0.88x, 8 1.10x; d = 64: K = 8 0.91x, 12 1.18x, 16 1.32x, 32 1.85x."""
    return 4 * n_components >= n_features - 20


def quad_params(pc, means, gshift):
    """For float64 EM passes on the tiled 'full' path: the log-densities as ONE
    product of the rows' quadratic features with a weight per component. With
    y = x - gshift, m = mu_k - gshift and P = U U^T,

        -1/2 (y - m)^T P (y - m) = phi(y) . W[k],
        phi(y) = [y_a y_b (a <= b, row by row) ..., y_1 .. y_d, 1].

    phi has d(d+1)/2 + d + 1 entries, shared by all K components and by the
    statistics' product (``_accumulate._block_em_quad``): about half the flops of
    the whitened path's two dense d x d products a component, in one well-shaped
    BLAS product. The price is rounding relative to the terms summed rather than
    to the result, the cancellation the whitened path avoids: |phi(y)| . |W[k]|
    is about F_k = s^T |P| s for a row near component k, s_a = |m_a| + sigma_a
    (sigma: the component's standard deviations), and the error of -2 phi . W[k]
    about eps F_k (measured within a factor of 3 of eps times the rows' sums of
    |terms|, on the benchmark data, digits and rank-deficient data). Returns
    W (K, d(d+1)/2 + d + 1), or None (the whitened path) when some eps F_k
    exceeds QUAD_MAX_ERR: the log-densities then stay within about 1e-8 of
    the whitened path's, and the scatter as close in the component's own
    (whitened) units. Also None where some s_a exceeds QUAD_MAX_SCALE: data on
    a scale where y_a y_b can overflow for the rows that count."""
    K, d = means.shape
    m = means - gshift
    P = np.matmul(pc, np.swapaxes(pc, 1, 2))
    with np.errstate(all="ignore"):
        try:
            V = np.linalg.inv(pc)  # cov = V^T V
        except np.linalg.LinAlgError:
            return None
        sd = np.sqrt(np.einsum("kja,kja->ka", V, V))
        s = np.abs(m) + sd
        F = np.einsum("ka,kab,kb->k", s, np.abs(P), s)
    if (not np.all(np.isfinite(F)) or np.finfo(np.float64).eps * F.max() > QUAD_MAX_ERR
            or s.max() > QUAD_MAX_SCALE):
        return None
    ia, ib = np.triu_indices(d)
    Pm = np.einsum("kab,kb->ka", P, m)
    W = np.empty((K, ia.size + d + 1))
    W[:, :ia.size] = -0.5 * np.where(ia == ib, 1.0, 2.0) * P[:, ia, ib]
    W[:, ia.size:ia.size + d] = Pm
    W[:, -1] = -0.5 * np.einsum("ka,ka->k", m, Pm)
    return W


@jit_inner()
def quad_features(Xc, s0, Bs, F):
    """F (d(d+1)/2 + d + 1, Bs): for rows s0 .. s0 + Bs of Xc (B, d), the rows
    y_a y_b (a <= b, row by row), then y_a, then 1 (``quad_params``)."""
    wide_vectors()
    d = Xc.shape[1]
    D2 = F.shape[0] - d - 1
    for i in range(Bs):
        for a in range(d):
            F[D2 + a, i] = Xc[s0 + i, a]
    f = 0
    for a in range(d):
        for b in range(a, d):
            for i in range(Bs):
                F[f, i] = F[D2 + a, i] * F[D2 + b, i]
            f += 1
    for i in range(Bs):
        F[D2 + d, i] = 1.0


@jit_inner()
def quad_log_prob(Xc, s0, Bs, Wq, log_det, log_w, means, pc, gshift, F, LP, over):
    """log w_k + log N(x_i | k) of rows s0 .. s0 + Bs of Xc (centred on gshift)
    into LP (K, Bs), by one product of the quadratic-feature weights Wq with the
    rows' features F (filled here, kept for the statistics' product).

    A row whose features overflow (|y| beyond about 1e154: y_a y_b is inf, and
    inf - inf NaN) gets over[i] = 1, its column of F zeroed (its statistics:
    ``_accumulate._quad_rows``) and its log-densities from the precision factors,
    as the whitened path computes them (``_overflow_rows``: -inf where |z|^2
    overflows). Returns the number of such rows."""
    wide_vectors()
    d = Xc.shape[1]
    const = -0.5 * d * LOG_2PI
    quad_features(Xc, s0, Bs, F)
    np.dot(Wq, F, LP)
    n_over = 0
    for i in range(Bs):
        over[i] = 0
        for k in range(Wq.shape[0]):
            if not np.isfinite(LP[k, i]):
                over[i] = 1
        if over[i] == 1:
            n_over += 1
            for f in range(F.shape[0]):
                F[f, i] = 0.0
    for k in range(Wq.shape[0]):
        c0 = log_w[k] + log_det[k] + const
        for i in range(Bs):
            LP[k, i] += c0
    if n_over > 0:
        _overflow_rows(Xc, s0, Bs, means, pc, gshift, log_det, log_w, over, n_over, LP)
    return n_over


@jit_inner()
def _overflow_rows(Xc, s0, Bs, means, pc, gshift, log_det, log_w, over, n_over, LP):
    """LP[:, i] for the rows flagged in over, by the generic 'full' kernel
    (``block_log_prob_full``) on those rows and the means, both about gshift."""
    wide_vectors()
    K, d = means.shape
    Y = np.empty((d, n_over))
    j = 0
    for i in range(Bs):
        if over[i] == 1:
            for a in range(d):
                Y[a, j] = Xc[s0 + i, a]
            j += 1
    mc = np.empty((K, d))
    for k in range(K):
        for a in range(d):
            mc[k, a] = means[k, a] - gshift[a]
    LPo = np.empty((K, n_over))
    block_log_prob_full(Y, n_over, mc, pc, log_det, log_w, LPo, np.empty((d, n_over)),
                        np.empty(n_over), np.empty(n_over))
    j = 0
    for i in range(Bs):
        if over[i] == 1:
            for k in range(K):
                LP[k, i] = LPo[k, j]
            j += 1


@jit_inner()
def centre_block(X, start, stop, gshift, Xc):
    wide_vectors()
    for i in range(stop - start):
        for a in range(X.shape[1]):
            Xc[i, a] = X[start + i, a] - gshift[a]


@jit_inner()
def whitened_chunk(Xc, ucat, muu, ch, Y, maha):
    """Y = [U_k ...]^T Xc^T for chunk ch of kc components (one BLAS product in the
    data's dtype: float32 data gets float32 products, twice the rate), then in
    place z = Y_k - (mu_k - c) U_k = (x - mu_k) U_k, component kk in rows kk * d of
    Y; with maha (K, B), maha[k, i] = |z_i|^2 from the float64 differences."""
    wide_vectors()
    K, d = muu.shape
    kc = ucat.shape[2] // d
    B = Xc.shape[0]
    np.dot(ucat[ch].T, Xc.T, Y)
    Yk = Y.reshape((kc, d, B))
    for kk in range(kc):
        k = ch * kc + kk
        if k >= K:
            break
        if maha.shape[0] > 0:
            for i in range(B):
                maha[k, i] = 0.0
        for j in range(d):
            c = muu[k, j]
            if maha.shape[0] > 0:
                for i in range(B):
                    y = np.float64(Yk[kk, j, i]) - c
                    Yk[kk, j, i] = y
                    maha[k, i] += y * y
            else:
                for i in range(B):
                    Yk[kk, j, i] = np.float64(Yk[kk, j, i]) - c


@jit_inner()
def block_log_prob_tiles(Xc, B, ucat, muu, log_det, log_w, LP, Z, Ys):
    """'full' log-probabilities of a block Xc (B, d) centred on c = gshift, chunk by
    chunk of components (``whitened_chunk``): log w_k + log det U_k - d/2 log 2 pi
    - |z|^2 / 2 into LP (K, B).

    The whitened rows of the first Z.shape[0] chunks are left in Z (n_keep, kc * d,
    B) for the statistics (``_block_accumulate_whitened``); the other chunks use the
    scratch Ys (kc * d, B)."""
    wide_vectors()
    K, d = muu.shape
    nch = ucat.shape[0]
    const = -0.5 * d * LOG_2PI
    for ch in range(nch):
        Y = Z[ch] if ch < Z.shape[0] else Ys
        whitened_chunk(Xc, ucat, muu, ch, Y, LP)
    for k in range(K):
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * LP[k, i]


_KERNELS = {}
_KERNELS_LOCK = threading.Lock()  # one build of each, whatever the threads


def log_prob_kernel(ct, tiled, dsmall=0):
    """The serial pass of ``predict`` / ``predict_proba`` / ``score_samples`` for
    one covariance type and path (and for small 'full' models their number of
    features, ``small_d``); blocks t, t + T, ... of the rows (``_pool``):

    mode OUT_LSE:   out_lse[i] = log p(x_i)
    mode OUT_LABEL: out_label[i] = argmax_k log pi_k + log N(x_i | k)
    mode OUT_RESP:  out_resp[i, k] = responsibilities, and out_lse
    """
    key = (ct, bool(tiled), int(dsmall))
    with _KERNELS_LOCK:
        if key not in _KERNELS:
            _KERNELS[key] = _build_log_prob_blocks(*key)
        return _KERNELS[key]


def _build_log_prob_blocks(ct, tiled, dsmall):
    CT, TL = ct, int(bool(tiled))  # constants of the closure: untaken branches never compile
    DS = int(dsmall)  # 'full' with DS features: the unrolled kernel (_small)
    STAMP = SOURCE_STAMP  # in the cache key: an edit of a helper's file recompiles

    @jit()
    def log_prob_blocks(X, means, pc, aux, log_det, log_w, gshift, ucat, muu, mode, out_lse,
                        out_label, out_resp, t, T):
        wide_vectors()
        if STAMP == "":
            return
        n, d = X.shape
        K = log_w.shape[0]
        bs = TILE_BLOCK if TL == 1 else BLOCK
        nb = (n + bs - 1) // bs
        LP = np.empty((K, bs))
        lse, mx, scale = np.empty(bs), np.empty(bs), np.empty(bs, dtype=np.int64)
        XT = np.empty((d, bs))
        D = np.empty((d, bs))
        zero_d = np.zeros(d)
        # float64 tiled: by quadratic features where aux holds their weights (quad_params)
        quad = TL == 1 and aux.shape[0] > 0
        F = np.empty((aux.shape[1] if quad else 0, QUAD_ROWS))
        LPq = np.empty((K if quad else 0, QUAD_ROWS))
        over = np.empty(QUAD_ROWS, dtype=np.int8)
        for b in range(t, nb, T):
            start = b * bs
            stop = min(n, start + bs)
            B = stop - start
            if TL == 1 and quad:
                Xq = np.empty((B, d))
                centre_block(X, start, stop, gshift, Xq)
                for s0 in range(0, B, QUAD_ROWS):
                    Bs = min(QUAD_ROWS, B - s0)
                    Fs, LPs = F, LPq
                    if Bs != QUAD_ROWS:  # the data's last rows
                        Fs, LPs = np.empty((F.shape[0], Bs)), np.empty((K, Bs))
                    quad_log_prob(Xq, s0, Bs, aux, log_det, log_w, means, pc, gshift, Fs, LPs,
                                  over)
                    for k in range(K):
                        for i in range(Bs):
                            LP[k, s0 + i] = LPs[k, i]
            elif TL == 1:
                Xc = np.empty((B, d), dtype=ucat.dtype)
                centre_block(X, start, stop, gshift, Xc)
                Z = np.empty((0, ucat.shape[2], B), dtype=ucat.dtype)
                Ys = np.empty((ucat.shape[2], B), dtype=ucat.dtype)
                block_log_prob_tiles(Xc, B, ucat, muu, log_det, log_w, LP, Z, Ys)
            else:
                load_block(X, start, stop, XT, zero_d)
                if CT == FULL and DS > 0:
                    lp_full_small(DS, XT, B, means, pc, log_det, log_w, LP)
                elif CT == FULL:
                    block_log_prob_full(XT, B, means, pc, log_det, log_w, LP, D, lse, mx)
                elif CT == TIED:
                    block_log_prob_tied(XT, B, pc, aux, log_det, log_w, LP, D, lse, mx)
                elif CT == SPHERICAL:
                    block_log_prob_spherical(XT, B, means, aux, log_det, log_w, LP)
                else:
                    block_log_prob_diag(XT, B, means, aux, log_det, log_w, LP)
            if mode == OUT_LABEL:
                for i in range(B):
                    best = 0
                    for k in range(1, K):
                        if LP[k, i] > LP[best, i]:
                            best = k
                    out_label[start + i] = best
            else:
                block_resp(LP, B, lse, mx, scale)
                for i in range(B):
                    out_lse[start + i] = lse[i]
                if mode == OUT_RESP:
                    for i in range(B):
                        for k in range(K):
                            out_resp[start + i, k] = LP[k, i]

    return log_prob_blocks
