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
# 'full' covariances from this many features on use BLAS products on row tiles
# (np.dot inside the kernels; BLAS itself is held to one thread during a call)
TILE_MIN_D = 16
TILE_WIDTH = 256  # columns of one tiled product: kc = TILE_WIDTH // d components
TILE_BLOCK = 512  # rows per block on the tiled path (longer products run faster)
# the tiled EM pass keeps a block's whitened rows for its statistics up to this many
# bytes a block (K = 32 at d = 64 in float32: 4 MiB), and recomputes the rest
ZKEEP_BYTES = 8 << 20
LOG_2PI = math.log(2.0 * math.pi)

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
COV_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}

# statistic modes of stats_pass
MODE_EM, MODE_RESP, MODE_LABELS = 0, 1, 2


def work_dtype(X):
    """float32 data is worked on in float32 (scikit-learn's rule), anything else
    (float64, integers) in float64."""
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)


def jit(**kwargs):
    return njit(cache=True, error_model="numpy", fastmath=FASTMATH, nogil=True, **kwargs)


def group_size(n_components, n_features, covariance_type_code):
    """Blocks per group: a function of the shape only (never of the thread count).

    Up to 512 blocks a group (fewer parallel-region launches), with the per-group
    accumulator (group x K x d x d float64) capped at about 64 MB.
    """
    if covariance_type_code == FULL:
        per_slot = n_components * n_features * n_features
    elif covariance_type_code == TIED:
        per_slot = n_features * n_features + n_components * n_features
    else:
        per_slot = 2 * n_components * n_features
    per_slot = (per_slot + n_components * (n_features + 1) + 1) * 8
    return int(max(1, min(512, (64 << 20) // per_slot)))


@jit()
def _load_block(X, start, stop, XT):
    """Rows [start, stop) of X, transposed into XT (d, B) as float64: the inner
    loops below then run over contiguous rows and vectorise."""
    for i in range(stop - start):
        for a in range(X.shape[1]):
            XT[a, i] = X[start + i, a]


@jit()
def _block_log_prob(XT, B, means, pc, aux, log_det, log_w, ct, LP, D, t, maha):
    """Weighted log-probabilities log(pi_k) + log N(x_i | k) of a block: LP (K, B)."""
    K, d = means.shape
    const = -0.5 * d * LOG_2PI
    if ct == TIED:
        # y = x U once per row (kept in D), then per component subtract mu_k U
        for j in range(d):
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
        if ct == FULL:
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
        elif ct == TIED:
            for j in range(d):
                c = aux[k, j]
                for i in range(B):
                    v = D[j, i] - c
                    maha[i] += v * v
        else:
            for j in range(d):
                mu = means[k, j]
                p = aux[k, j]
                for i in range(B):
                    v = (XT[j, i] - mu) * p
                    maha[i] += v * v
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * maha[i]


# exp by Cody-Waite reduction and a degree-13 polynomial: written so that the
# loops over rows vectorise (libm's exp does not); relative error below 2e-15
# where exp(x) is a normal number, exactly 0 below x = -708.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93145751953125e-1
_LN2_LO = 1.42860682030941723212e-6


@jit()
def _exp_rows(LP, k, mx, B, scale):
    """LP[k, :B] = exp(LP[k, :B] - mx[:B]) (arguments are <= 0)."""
    for i in range(B):
        v = LP[k, i] - mx[i]
        ok = v >= -708.0
        v = v if ok else -708.0
        nf = math.floor(v * _LOG2E + 0.5)
        r = (v - nf * _LN2_HI) - nf * _LN2_LO
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
        LP[k, i] = p
        scale[i] = ((np.int64(nf) + 1023) if ok else 0) << 52
    s = scale.view(np.float64)
    for i in range(B):
        LP[k, i] *= s[i]


@jit()
def _block_resp(LP, B, lse, mx):
    """LP (K, B) -> responsibilities in place; lse[i] = log sum_k exp(LP[k, i]).

    Loops run over the rows innermost (contiguous) so that they vectorise."""
    K = LP.shape[0]
    scale = np.empty(B, dtype=np.int64)
    for i in range(B):
        mx[i] = LP[0, i]
        lse[i] = 0.0
    for k in range(1, K):
        for i in range(B):
            mx[i] = max(mx[i], LP[k, i])
    for i in range(B):
        if not np.isfinite(mx[i]):
            mx[i] = 0.0 if mx[i] == -np.inf else mx[i]
    for k in range(K):
        _exp_rows(LP, k, mx, B, scale)
        for i in range(B):
            lse[i] += LP[k, i]
    for i in range(B):
        inv = 1.0 / lse[i]
        for k in range(K):
            LP[k, i] *= inv
        lse[i] = mx[i] + math.log(lse[i])


@jit()
def _scatter(XT, B, c, wts, D, s1row, s2mat):
    """D = XT - c; s1row += sum_i wts_i D_i; s2mat (upper triangle) += sum_i
    wts_i D_i D_i^T. The 'full' per-component and the 'tied' pooled scatter."""
    d = XT.shape[0]
    for a in range(d):
        ca = c[a]
        for i in range(B):
            D[a, i] = XT[a, i] - ca
    for a in range(d):
        acc = 0.0
        for i in range(B):
            acc += wts[i] * D[a, i]
        s1row[a] += acc
        for b in range(a, d):
            acc = 0.0
            for i in range(B):
                acc += wts[i] * D[a, i] * D[b, i]
            s2mat[a, b] += acc


@jit()
def _block_accumulate(XT, B, wb, R, shift, gshift, ct, nk, s1, s2, D, wr):
    """Add a block (XT, weights wb, responsibilities R (K, B)) to the statistics.

    nk[k] += sum_i w_i r_ik;  s1[k] += sum_i w_i r_ik (x_i - shift_k);
    full: s2[k] (upper triangle) += sum_i w_i r_ik (x_i - shift_k)(x_i - shift_k)^T
    (the tiled 'full' path, d >= TILE_MIN_D, uses the common shift gshift for all k)
    tied: s2[0, :d] (upper triangle) += sum_i w_i (x_i - gshift)(x_i - gshift)^T over
          *all* rows, s2[0, d] += sum_i w_i (x_i - gshift) (scikit-learn's tied
          estimate uses X^T X)
    diag/spherical: s2[k, 0] += sum_i w_i r_ik (x_i - shift_k)**2
    """
    K, d = shift.shape
    for k in range(K):
        tot = 0.0
        for i in range(B):
            v = wb[i] * R[k, i]
            wr[i] = v
            tot += v
        if tot == 0.0:
            continue
        nk[k] += tot
        if ct == FULL:
            _scatter(XT, B, shift[k], wr, D, s1[k], s2[k])
            continue
        # one sweep: first and second moments together, no D
        for a in range(d):
            c = shift[k, a]
            acc = 0.0
            acc2 = 0.0
            for i in range(B):
                v = XT[a, i] - c
                t = wr[i] * v
                acc += t
                acc2 += t * v
            s1[k, a] += acc
            if ct != TIED:
                s2[k, 0, a] += acc2
    if ct == TIED:
        _scatter(XT, B, gshift, wb, D, s2[0, d], s2[0, :d])


@jit()
def _tiled(ct, n_features):
    """'full' covariances with d >= TILE_MIN_D run on the BLAS-tiled kernels."""
    return ct == FULL and n_features >= TILE_MIN_D


def uses_tiles(ct, n_features):
    return _tiled(ct, n_features)


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


@jit()
def _centre_block(X, start, stop, gshift, Xc):
    for i in range(stop - start):
        for a in range(X.shape[1]):
            Xc[i, a] = X[start + i, a] - gshift[a]


@jit()
def _whitened_chunk(Xc, ucat, muu, ch, Y, maha):
    """Y = [U_k ...]^T Xc^T for chunk ch of kc components (one BLAS product in the
    data's dtype: float32 data gets float32 products, twice the rate), then in
    place z = Y_k - (mu_k - c) U_k = (x - mu_k) U_k, component kk in rows kk * d of
    Y; with maha (K, B), maha[k, i] = |z_i|^2 from the float64 differences."""
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


@jit()
def _block_log_prob_tiles(Xc, B, ucat, muu, log_det, log_w, LP, Z, Ys):
    """'full' log-probabilities of a block Xc (B, d) centred on c = gshift, chunk by
    chunk of components (``_whitened_chunk``): log w_k + log det U_k - d/2 log 2 pi
    - |z|^2 / 2 into LP (K, B).

    The whitened rows of the first Z.shape[0] chunks are left in Z (n_keep, kc * d,
    B) for the statistics (``_block_accumulate_whitened``); the other chunks use the
    scratch Ys (kc * d, B)."""
    K, d = muu.shape
    nch = ucat.shape[0]
    const = -0.5 * d * LOG_2PI
    for ch in range(nch):
        Y = Z[ch] if ch < Z.shape[0] else Ys
        _whitened_chunk(Xc, ucat, muu, ch, Y, LP)
    for k in range(K):
        c0 = log_w[k] + log_det[k] + const
        for i in range(B):
            LP[k, i] = c0 - 0.5 * LP[k, i]


@jit()
def _z_keep(ucat):
    """Chunks of whitened rows a tiled EM block keeps: a function of the shape."""
    per_chunk = ucat.shape[2] * TILE_BLOCK * ucat.itemsize
    return min(ucat.shape[0], max(1, ZKEEP_BYTES // per_chunk))


@jit()
def _scatter_cols(DT, WT, B, wr, wrt, t, k, s1, s2):
    """Rows of a component as the columns of DT (d, B): s1[k] += t = sum_i wr_i D_i
    (float64), s2[k] (upper triangle) += D^T (wr D), one BLAS product in DT's
    dtype; WT is scratch."""
    d = DT.shape[0]
    for a in range(d):
        acc = 0.0
        for i in range(B):
            x = DT[a, i]
            WT[a, i] = x * wrt[i]
            acc += wr[i] * np.float64(x)
        t[a] = acc
    G = np.dot(DT, WT.T)
    for a in range(d):
        s1[k, a] += t[a]
        for b in range(a, d):
            s2[k, a, b] += np.float64(G[a, b])


@jit()
def _component_weights(wb, R, k, B, wr, wrt):
    tot = 0.0
    for i in range(B):
        v = wb[i] * R[k, i]
        wr[i] = v
        wrt[i] = v
        tot += v
    return tot


@jit()
def _block_accumulate_whitened(Xc, B, wb, R, ucat, muu, Z, Ys, nk, s1, s2, WT, wr, wrt, t):
    """'full' statistics of an EM block in each component's whitened coordinates:
    with z = (x - mu_k) U_k, s1[k] += sum_i w_i r_ik z_i, s2[k] += sum_i w_i r_ik
    z_i^T z_i, one BLAS product a component in the data's dtype;
    ``whitened_to_shift`` moves them back. The z are those ``_block_log_prob_tiles``
    left in Z, recomputed (the same arithmetic) for chunks past Z's.

    Why whitened (issue 16): float32 products round relative to the spread of what
    they sum. About a common shift, a component far from it with a variance near
    reg_covar lost that variance in sums of (x - shift)^2; about its own mean it is
    kept, but the rounding is still relative to the component's largest spread, which
    in float32 can reach reg_covar in a direction where a component has (nearly) no
    spread (fewer rows than features, flat features: digits). In the coordinates of
    the current precision factor every direction has a spread near 1: the rounding is
    relative to each direction's own variance, and the moved-back scatter stays
    positive definite."""
    K, d = muu.shape
    nch, _, width = ucat.shape
    kc = width // d
    none = np.empty((0, B))
    for ch in range(nch):
        Y = Ys
        if ch < Z.shape[0]:
            Y = Z[ch]
        else:
            # recomputed only where a component of the chunk has weight here
            todo = False
            for k in range(ch * kc, min(K, ch * kc + kc)):
                for i in range(B):
                    if wb[i] * R[k, i] != 0.0:
                        todo = True
                        break
            if not todo:
                continue
            _whitened_chunk(Xc, ucat, muu, ch, Ys, none)
        Yk = Y.reshape((kc, d, B))
        for kk in range(kc):
            k = ch * kc + kk
            if k >= K:
                break
            tot = _component_weights(wb, R, k, B, wr, wrt)
            if tot == 0.0:
                continue
            nk[k] += tot
            _scatter_cols(Yk[kk], WT, B, wr, wrt, t, k, s1, s2)


@jit()
def _block_accumulate_tiles(Xc, B, wb, R, centre, nk, s1, s2, DT, WT, wr, wrt, t):
    """'full' statistics of given responsibilities (no precision factors yet): each
    component's rows centred on centre[k] (relative to gshift, as Xc) inside the
    products, s1[k] += sum_i w_i r_ik D_i, s2[k] += D^T (w r_k D), D = Xc - centre[k].
    Run in float64 (one pass, at the start)."""
    K, d = nk.shape[0], s1.shape[1]
    for k in range(K):
        tot = _component_weights(wb, R, k, B, wr, wrt)
        if tot == 0.0:
            continue
        nk[k] += tot
        for a in range(d):
            c = centre[k, a]
            for i in range(B):
                DT[a, i] = Xc[i, a] - c
        _scatter_cols(DT, WT, B, wr, wrt, t, k, s1, s2)


@jit()
def _move_stats(n, t, S, e, s1row, s2mat):
    """Statistics about a centre (n, t = sum w D, S = sum w D D^T, full or upper)
    added to those about a shift, the centre minus the shift being e:
    s1 += t + n e, s2 (upper triangle) += S + e t^T + t e^T + n e e^T."""
    d = t.shape[0]
    for a in range(d):
        s1row[a] += t[a] + n * e[a]
        for b in range(a, d):
            s2mat[a, b] += S[a, b] + e[a] * t[b] + t[a] * e[b] + n * e[a] * e[b]


@jit()
def whitened_to_shift(nkw, s1w, s2w, pc, means, shift, s1, s2):
    """Whitened EM statistics (``_block_accumulate_whitened``, upper triangles) back
    to x coordinates about ``shift``, added to s1, s2 (float64, exact algebra): with
    V = U_k^-1, x - mu_k = z V, so t = t_w V and S = V^T S_w V."""
    K, d = s1w.shape
    V = np.empty((d, d))
    Sw = np.empty((d, d))
    e = np.empty(d)
    for k in range(K):
        if nkw[k] == 0.0:
            continue
        U = pc[k]
        # V = U^-1, upper triangular, by back substitution
        for c in range(d):
            for i in range(c + 1, d):
                V[i, c] = 0.0
            V[c, c] = 1.0 / U[c, c]
            for i in range(c - 1, -1, -1):
                acc = 0.0
                for p in range(i + 1, c + 1):
                    acc += U[i, p] * V[p, c]
                V[i, c] = -acc / U[i, i]
        for a in range(d):
            for b in range(a, d):
                Sw[a, b] = s2w[k, a, b]
                Sw[b, a] = s2w[k, a, b]
        t = np.dot(s1w[k], V)
        S = np.dot(V.T, np.dot(Sw, V))
        for a in range(d):
            e[a] = means[k, a] - shift[k, a]
        _move_stats(nkw[k], t, S, e, s1[k], s2[k])


@jit()
def _labels_accumulate(X, w, start, stop, labels, shift, gshift, ct, nk, s1, s2):
    """The statistics of ``_block_accumulate`` for one-hot responsibilities (label
    k, K or more for none): O(d^2) a row instead of O(K d^2)."""
    K, d = shift.shape
    dv = np.empty(d)
    unit = w.shape[0] == 0
    for i in range(start, stop):
        wi = 1.0 if unit else w[i]
        if ct == TIED and wi != 0.0:
            for a in range(d):
                dv[a] = X[i, a] - gshift[a]
            for a in range(d):
                va = wi * dv[a]
                s2[0, d, a] += va
                for b in range(d):  # the whole square, as for 'full' below
                    s2[0, a, b] += va * dv[b]
        k = labels[i]
        if k >= K or wi == 0.0:
            continue
        nk[k] += wi
        for a in range(d):
            dv[a] = X[i, a] - shift[k, a]
            s1[k, a] += wi * dv[a]
        if ct == FULL:
            # the whole square (only the upper triangle is read): full-length
            # inner loops vectorise, the triangle's do not
            for a in range(d):
                va = wi * dv[a]
                for b in range(d):
                    s2[k, a, b] += va * dv[b]
        elif ct != TIED:
            for a in range(d):
                s2[k, 0, a] += wi * dv[a] * dv[a]


@jit()
def _block_data(X, start, stop, gshift, tiles, dtype_of):
    """The block's rows as the path needs them: centred (B, d) tiles in the work
    dtype for the tiled 'full' kernels, else transposed (d, B) float64, plus the
    (d, B) scratch D. Unused arrays are empty."""
    d = X.shape[1]
    B = stop - start
    if tiles:
        Xc = np.empty((B, d), dtype=dtype_of.dtype)
        _centre_block(X, start, stop, gshift, Xc)
        return Xc, np.empty((0, 0)), np.empty((0, 0))
    XT = np.empty((d, B))
    _load_block(X, start, stop, XT)
    return np.empty((0, 0), dtype=dtype_of.dtype), XT, np.empty((d, B))


@jit()
def _block_weighted_log_prob(Xc, XT, D, B, tiles, means, pc, aux, log_det, log_w, ct, ucat,
                             muu, LP, t, u, Z, Ys):
    if tiles:
        _block_log_prob_tiles(Xc, B, ucat, muu, log_det, log_w, LP, Z, Ys)
    else:
        _block_log_prob(XT, B, means, pc, aux, log_det, log_w, ct, LP, D, t, u)


@jit()
def _stats_block(X, w, start, stop, mode, R, r0, labels, means, pc, aux, log_det, log_w,
                 shift, gshift, ct, ucat, muu, nk, s1, s2, ll):
    """Serial worker: statistics of rows [start, stop) into one slot."""
    K, d = means.shape
    B = stop - start
    nk[:] = 0.0
    s1[:] = 0.0
    s2[:] = 0.0
    ll[0] = 0.0
    if mode == MODE_LABELS:
        # hard labels: each row adds to its one component only
        _labels_accumulate(X, w, start, stop, labels, shift, gshift, ct, nk, s1, s2)
        return
    RB = np.empty((K, B))
    t = np.empty(B)
    u = np.empty(B)
    wb = w[start:stop] if w.shape[0] > 0 else np.ones(B)  # empty w: unit weights
    tiles = _tiled(ct, d)
    Xc, XT, D = _block_data(X, start, stop, gshift, tiles, ucat)
    # the tiled E-step's whitened rows (kept for the statistics) and scratch
    tz = tiles and mode == MODE_EM
    Z = np.empty((_z_keep(ucat) if tz else 0, ucat.shape[2], B), dtype=ucat.dtype)
    Ys = np.empty((ucat.shape[2] if tz else 0, B), dtype=ucat.dtype)
    if mode == MODE_EM:
        _block_weighted_log_prob(Xc, XT, D, B, tiles, means, pc, aux, log_det, log_w, ct,
                                 ucat, muu, RB, t, u, Z, Ys)
        _block_resp(RB, B, t, u)
        acc = 0.0
        for i in range(B):
            if wb[i] != 0.0:
                acc += wb[i] * t[i]
        ll[0] = acc
    else:  # MODE_RESP
        for k in range(K):
            for i in range(B):
                RB[k, i] = R[start + i - r0, k]
    if tiles and mode == MODE_EM:
        # whitened statistics (stats_pass moves them back), products in the data's dtype
        _block_accumulate_whitened(Xc, B, wb, RB, ucat, muu, Z, Ys, nk, s1, s2,
                                   np.empty((d, B), dtype=ucat.dtype), np.empty(B),
                                   np.empty(B, dtype=ucat.dtype), np.empty(d))
    elif tiles:
        # given responsibilities: about the statistics' shift, in float64
        centre = np.empty((K, d))
        for k in range(K):
            for a in range(d):
                centre[k, a] = shift[k, a] - gshift[a]
        _block_accumulate_tiles(Xc, B, wb, RB, centre, nk, s1, s2, np.empty((d, B)),
                                np.empty((d, B)), np.empty(B), np.empty(B), np.empty(d))
    else:
        _block_accumulate(XT, B, wb, RB, shift, gshift, ct, nk, s1, s2, D, t)


@jit(parallel=True)
def stats_pass(X, row0, row1, w, mode, R, labels, means, pc, aux, log_det, log_w, shift,
               gshift, ct, group, nk, s1, s2, ucat, muu):
    """One parallel pass over the rows producing additive sufficient statistics.

    mode MODE_EM: responsibilities from the current parameters (the fused E+M
    pass); MODE_RESP: responsibilities given in R (n, K); MODE_LABELS: hard
    labels (n,), unsigned, K or more meaning no component. Statistics are
    *added* to nk, s1, s2 (float64); the weighted log-likelihood sum (MODE_EM)
    is returned.

    Only rows [row0, row1) are read (R holds rows row0.. of that range); X may be
    of any dtype and layout (a memmap, Fortran order, integers): each block is
    converted as it is read, never the whole array. Tile buffers take ucat's
    dtype (float32 for float32 data, float64 otherwise).

    The tiled 'full' EM pass sums its blocks' statistics in whitened coordinates
    (``_block_accumulate_whitened``) and moves the total back at the end.
    """
    n = row1
    K, d = means.shape
    bs = TILE_BLOCK if _tiled(ct, d) else BLOCK
    nblocks = (row1 - row0 + bs - 1) // bs
    g_nk = np.empty((group, K))
    g_s1 = np.empty((group, K, d))
    g_s2 = np.empty((group, s2.shape[0], s2.shape[1], s2.shape[2]))
    g_ll = np.empty((group, 1))
    total = 0.0
    whiten = _tiled(ct, d) and mode == MODE_EM
    if whiten:  # this pass's statistics, whitened
        o_nk = np.zeros(K)
        o_s1 = np.zeros((K, d))
        o_s2 = np.zeros(s2.shape)
    else:
        o_nk, o_s1, o_s2 = nk, s1, s2
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        for j in prange(gn):
            b = g0 + j
            start = row0 + b * bs
            stop = min(n, start + bs)
            _stats_block(X, w, start, stop, mode, R, row0, labels, means, pc, aux, log_det,
                         log_w, shift, gshift, ct, ucat, muu, g_nk[j], g_s1[j], g_s2[j],
                         g_ll[j])
        for j in range(gn):
            total += g_ll[j, 0]
            for k in range(K):
                o_nk[k] += g_nk[j, k]
                for a in range(d):
                    o_s1[k, a] += g_s1[j, k, a]
            for k in range(s2.shape[0]):
                for a in range(s2.shape[1]):
                    for b in range(s2.shape[2]):
                        o_s2[k, a, b] += g_s2[j, k, a, b]
    if whiten:
        for k in range(K):
            nk[k] += o_nk[k]
        whitened_to_shift(o_nk, o_s1, o_s2, pc, means, shift, s1, s2)
    return total


@jit(parallel=True)
def log_prob_pass(X, means, pc, aux, log_det, log_w, ct, mode, out_lse, out_label, out_resp,
                  gshift, ucat, muu):
    """Row-wise outputs from the current parameters, in parallel over row blocks.

    mode 0: out_lse[i] = log p(x_i)                       (score_samples)
    mode 1: out_label[i] = argmax_k weighted log-prob     (predict)
    mode 2: out_resp[i, k] = responsibilities, out_lse too (predict_proba)
    """
    n = X.shape[0]
    K, d = means.shape
    bs = TILE_BLOCK if _tiled(ct, d) else BLOCK
    nblocks = (n + bs - 1) // bs
    for b in prange(nblocks):
        start = b * bs
        stop = min(n, start + bs)
        B = stop - start
        LP = np.empty((K, B))
        t = np.empty(B)
        u = np.empty(B)
        tiles = _tiled(ct, d)
        Xc, XT, D = _block_data(X, start, stop, gshift, tiles, ucat)
        Z = np.empty((0, ucat.shape[2], B), dtype=ucat.dtype)
        Ys = np.empty((ucat.shape[2] if tiles else 0, B), dtype=ucat.dtype)
        _block_weighted_log_prob(Xc, XT, D, B, tiles, means, pc, aux, log_det, log_w, ct,
                                 ucat, muu, LP, t, u, Z, Ys)
        if mode == 1:
            for i in range(B):
                best = 0
                for k in range(1, K):
                    if LP[k, i] > LP[best, i]:
                        best = k
                out_label[start + i] = best
        else:
            _block_resp(LP, B, t, u)
            for i in range(B):
                out_lse[start + i] = t[i]
            if mode == 2:
                for i in range(B):
                    for k in range(K):
                        out_resp[start + i, k] = LP[k, i]


@jit()
def precision_cholesky_batch(cov, out):
    """out[k] = inv(cholesky(cov[k])).T, upper-triangular, for each (d, d) matrix.

    Returns False when a factorisation fails (a pivot <= 0 or NaN), where LAPACK's
    potrf would. Small matrices: plain loops beat a LAPACK call per component.
    """
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
