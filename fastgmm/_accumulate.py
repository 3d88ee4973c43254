"""M-step accumulation kernels: additive sufficient statistics, one covariance type each.

For each component k a pass adds

    nk[k] = sum_i w_i r_ik,   s1[k] = sum_i w_i r_ik (x_i - shift_k),
    s2[k] = sum_i w_i r_ik (x_i - shift_k)(x_i - shift_k)^T   (upper triangle; 'full')
    s2[k, 0] = sum_i w_i r_ik (x_i - shift_k)**2              ('diag', 'spherical')
    s2[0, :d] = sum_i w_i (x_i - gshift)(x_i - gshift)^T over all rows, and
    s2[0, d] = sum_i w_i (x_i - gshift)                       ('tied': scikit-learn's
                                                               tied estimate uses X^T X)

with the responsibilities r of the current parameters (mode EM: the fused E+M
pass, which also returns the weighted log-likelihood), given ones (RESP: the
'random' start) or hard labels (LABELS: the k-means and one-row starts; label K
or more for none). The tiled 'full' path (d >= TILE_MIN_D) uses the common shift
gshift for every k and, in the EM pass, sums in whitened coordinates
(``whitened_to_shift`` moves them back), or for float64 data whose rounding
allows it (``_estep.quad_params``) by quadratic features (``_block_em_quad``):
two products of the rows' features [y_a y_b, y_a, 1] instead of two d x d
products a component. 'diag' and 'spherical' EM passes whose parameters allow it
(``_estep.centred_means``, handed in as ``muu``) sum about gshift, from rows
centred as they are loaded, and move each block's sums to about each shift
(``_block_moments_centred``); the engine keeps such a pass where its sums show the
variances' digits kept (``centred_sums_kept``) and else makes it again about each
shift.

``stats_kernel(ct, tiled, mode)`` builds the serial pass: chunk c (of a number
fixed by the shape, ``_numba.n_chunks``) adds its blocks, in order, into slot c;
the caller adds the slots in order. The covariance type, path and mode are
constants of the closure: a call compiles only what it runs.
"""

import threading

import numpy as np

from ._estep import (CENTRED_KEEP, CENTRED_MIN_SHARE, DIAG, FULL, QUAD_ROWS, SPHERICAL, TIED,
                     TILE_BLOCK, block_log_prob_diag, block_log_prob_full,
                     block_log_prob_spherical, block_log_prob_tiles, block_log_prob_tied,
                     block_ll, centre_block, load_block, quad_log_prob, resp_sums,
                     whitened_chunk)
from ._numba import BLOCK, SOURCE_STAMP, block_range, jit, jit_inner, next_chunk, wide_vectors
from ._small import acc_full_small, lp_full_small

MODE_EM, MODE_RESP, MODE_LABELS = 0, 1, 2
# the tiled EM pass keeps a block's whitened rows for its statistics up to this many
# bytes a block (K = 32 at d = 64 in float32: 4 MiB), and recomputes the rest
ZKEEP_BYTES = 8 << 20


@jit_inner()
def _scatter(XT, B, c, wts, D, s1row, s2mat):
    """D = XT - c; s1row += sum_i wts_i D_i; s2mat (upper triangle) += sum_i
    wts_i D_i D_i^T. The 'full' per-component and the 'tied' pooled scatter."""
    wide_vectors()
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


@jit_inner()
def _weights_of(wb, R, k, B, wr):
    """wr[i] = w_i r_ik over the block; returns their sum (nk's share)."""
    wide_vectors()
    tot = 0.0
    for i in range(B):
        v = wb[i] * R[k, i]
        wr[i] = v
        tot += v
    return tot


@jit_inner()
def _block_accumulate_full(XT, B, wb, R, shift, nk, s1, s2, D, wr):
    wide_vectors()
    K = shift.shape[0]
    for k in range(K):
        tot = _weights_of(wb, R, k, B, wr)
        if tot == 0.0:
            continue
        nk[k] += tot
        _scatter(XT, B, shift[k], wr, D, s1[k], s2[k])


@jit_inner()
def _block_first_moments(XT, B, wb, R, shift, nk, s1, wr):
    """nk and the first moments only ('tied': its scatter is pooled)."""
    wide_vectors()
    K, d = shift.shape
    for k in range(K):
        tot = _weights_of(wb, R, k, B, wr)
        if tot == 0.0:
            continue
        nk[k] += tot
        for a in range(d):
            c = shift[k, a]
            acc = 0.0
            for i in range(B):
                acc += wr[i] * (XT[a, i] - c)
            s1[k, a] += acc


@jit_inner()
def _moments_diag_one(XT, B, w, shift, k, s1, s2):
    """One component's first and second moments ('diag' / 'spherical'), its
    weights w_i r_ik already in w."""
    wide_vectors()
    d = shift.shape[1]
    for a in range(d):
        c = shift[k, a]
        acc = 0.0
        acc2 = 0.0
        for i in range(B):
            v = XT[a, i] - c
            t = w[i] * v
            acc += t
            acc2 += t * v
        s1[k, a] += acc
        s2[k, 0, a] += acc2


@jit_inner()
def _block_accumulate_diag(XT, B, wb, R, shift, nk, s1, s2, W):
    """'diag' and 'spherical': first and second moments of two components and two
    features a sweep of the rows (each x and each weight loaded once for all the
    sums it enters: 2.7 against 2.3 ms for 100k x 32, K = 16, on one core); W (2, B)
    is scratch for the pair's weights. An odd K's last component on its own."""
    wide_vectors()
    K, d = shift.shape
    for k0 in range(0, K - 1, 2):
        k1 = k0 + 1
        t0 = _weights_of(wb, R, k0, B, W[0])
        t1 = _weights_of(wb, R, k1, B, W[1])
        nk[k0] += t0
        nk[k1] += t1
        if t0 == 0.0 and t1 == 0.0:
            continue
        j = 0
        while j + 2 <= d:
            a0, a1, b0, b1 = shift[k0, j], shift[k0, j + 1], shift[k1, j], shift[k1, j + 1]
            s10 = s11 = s20 = s21 = 0.0
            r10 = r11 = r20 = r21 = 0.0
            for i in range(B):
                x0, x1 = XT[j, i], XT[j + 1, i]
                w0, w1 = W[0, i], W[1, i]
                u0 = x0 - a0
                u1 = x1 - a1
                v0 = x0 - b0
                v1 = x1 - b1
                e0 = w0 * u0
                e1 = w0 * u1
                f0 = w1 * v0
                f1 = w1 * v1
                s10 += e0
                s11 += e1
                s20 += e0 * u0
                s21 += e1 * u1
                r10 += f0
                r11 += f1
                r20 += f0 * v0
                r21 += f1 * v1
            s1[k0, j] += s10
            s1[k0, j + 1] += s11
            s2[k0, 0, j] += s20
            s2[k0, 0, j + 1] += s21
            s1[k1, j] += r10
            s1[k1, j + 1] += r11
            s2[k1, 0, j] += r20
            s2[k1, 0, j + 1] += r21
            j += 2
        if j < d:
            a0, b0 = shift[k0, j], shift[k1, j]
            s10 = s20 = r10 = r20 = 0.0
            for i in range(B):
                x0 = XT[j, i]
                u0 = x0 - a0
                v0 = x0 - b0
                e0 = W[0, i] * u0
                f0 = W[1, i] * v0
                s10 += e0
                s20 += e0 * u0
                r10 += f0
                r20 += f0 * v0
            s1[k0, j] += s10
            s2[k0, 0, j] += s20
            s1[k1, j] += r10
            s2[k1, 0, j] += r20
    if K % 2 == 1:
        tot = _weights_of(wb, R, K - 1, B, W[0])
        nk[K - 1] += tot
        if tot != 0.0:
            _moments_diag_one(XT, B, W[0], shift, K - 1, s1, s2)


@jit_inner()
def _z_keep(ucat):
    """Chunks of whitened rows a tiled EM block keeps: a function of the shape."""
    wide_vectors()
    per_chunk = ucat.shape[2] * TILE_BLOCK * ucat.itemsize
    return min(ucat.shape[0], max(1, ZKEEP_BYTES // per_chunk))


@jit_inner()
def _scatter_cols(DT, WT, B, wr, wrt, t, k, s1, s2):
    """Rows of a component as the columns of DT (d, B): s1[k] += t = sum_i wr_i D_i
    (float64), s2[k] (upper triangle) += D^T (wr D), one BLAS product in DT's
    dtype; WT is scratch."""
    wide_vectors()
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


@jit_inner()
def _component_weights(wb, R, k, B, wr, wrt):
    wide_vectors()
    tot = 0.0
    for i in range(B):
        v = wb[i] * R[k, i]
        wr[i] = v
        wrt[i] = v
        tot += v
    return tot


@jit_inner()
def _block_accumulate_whitened(Xc, B, wb, R, ucat, muu, Z, Ys, nk, s1, s2, WT, wr, wrt, t):
    """'full' statistics of an EM block in each component's whitened coordinates:
    with z = (x - mu_k) U_k, s1[k] += sum_i w_i r_ik z_i, s2[k] += sum_i w_i r_ik
    z_i^T z_i, one BLAS product a component in the data's dtype;
    ``whitened_to_shift`` moves them back. The z are those ``block_log_prob_tiles``
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
    wide_vectors()
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
            whitened_chunk(Xc, ucat, muu, ch, Ys, none)
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


@jit_inner()
def _block_accumulate_tiles(Xc, B, wb, R, centre, nk, s1, s2, DT, WT, wr, wrt, t):
    """'full' statistics of given responsibilities (no precision factors yet): each
    component's rows centred on centre[k] (relative to gshift, as Xc) inside the
    products, s1[k] += sum_i w_i r_ik D_i, s2[k] += D^T (w r_k D), D = Xc - centre[k].
    Run in float64 (one pass, at the start)."""
    wide_vectors()
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


@jit_inner()
def _quad_rows(Xc, s0, Bs, WR, over, acc):
    """acc[k] += w r phi(y) for the rows ``quad_log_prob`` found overflowing (their
    features were left out of the product), where w r is not 0: inf where the
    row's moments overflow, as the whitened path's would, and no 0 * inf."""
    wide_vectors()
    K, d = WR.shape[0], Xc.shape[1]
    D2 = acc.shape[1] - d - 1
    for i in range(Bs):
        if over[i] == 0:
            continue
        for k in range(K):
            v = WR[k, i]
            if v == 0.0:
                continue
            f = 0
            for a in range(d):
                ya = Xc[s0 + i, a]
                for b in range(a, d):
                    acc[k, f] += v * (ya * Xc[s0 + i, b])
                    f += 1
                acc[k, D2 + a] += v * ya
            acc[k, D2 + d] += v


@jit_inner()
def _block_em_quad(Xc, B, wb, unit, Wq, log_det, log_w, means, pc, gshift, acc, F, LPq, G,
                   over, lse, mx, scale):
    """The float64 tiled 'full' EM block by quadratic features (``quad_params``),
    QUAD_ROWS rows at a time: LP = Wq F + the constants (one product), the
    responsibilities, then acc (K, len(phi)) += (w r) F^T (one product): the
    sums of w r y_a y_b, w r y_a and w r about gshift. Returns the block's
    weighted log-likelihood. F and LPq are scratch for QUAD_ROWS rows."""
    wide_vectors()
    K = Wq.shape[0]
    ll = 0.0
    for s0 in range(0, B, QUAD_ROWS):
        Bs = min(QUAD_ROWS, B - s0)
        Fs, LP = F, LPq
        if Bs != F.shape[1]:  # the data's last rows
            Fs, LP = np.empty((F.shape[0], Bs)), np.empty((K, Bs))
        n_over = quad_log_prob(Xc, s0, Bs, Wq, log_det, log_w, means, pc, gshift, Fs, LP,
                               over)
        resp_sums(LP, Bs, lse, mx, scale)
        ll += block_ll(lse, mx, wb[s0:], Bs, unit, scale)
        for k in range(K):
            for i in range(Bs):
                LP[k, i] *= wb[s0 + i]
        np.dot(LP, Fs.T, G)
        for k in range(K):
            for f in range(G.shape[1]):
                acc[k, f] += G[k, f]
        if n_over > 0:
            _quad_rows(Xc, s0, Bs, LP, over, acc)
    return ll


@jit_inner()
def _quad_to_stats(acc, nk, s1, s2):
    """A chunk's quadratic-feature sums (``_block_em_quad``) into nk, s1, s2
    (upper triangle) about gshift."""
    wide_vectors()
    K, d = s1.shape
    D2 = acc.shape[1] - d - 1
    for k in range(K):
        nk[k] += acc[k, D2 + d]
        for a in range(d):
            s1[k, a] += acc[k, D2 + a]
        f = 0
        for a in range(d):
            for b in range(a, d):
                s2[k, a, b] += acc[k, f]
                f += 1


@jit_inner()
def _move_stats(n, t, S, e, s1row, s2mat):
    """Statistics about a centre (n, t = sum w D, S = sum w D D^T, full or upper)
    added to those about a shift, the centre minus the shift being e:
    s1 += t + n e, s2 (upper triangle) += S + e t^T + t e^T + n e e^T."""
    wide_vectors()
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
    wide_vectors()
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


@jit_inner()
def _labels_rows(X, w, start, stop, labels, shift, nk, s1, s2, dv, full):
    """The statistics of one-hot responsibilities (label k, K or more for none):
    O(d^2) a row ('full') or O(d) instead of O(K d^2); 'diag' / 'spherical' second
    moments unless ``full`` (for 'tied' the caller adds its pooled scatter)."""
    wide_vectors()
    K, d = shift.shape
    unit = w.shape[0] == 0
    for i in range(start, stop):
        wi = 1.0 if unit else w[i]
        k = labels[i]
        if k >= K or wi == 0.0:
            continue
        nk[k] += wi
        for a in range(d):
            dv[a] = X[i, a] - shift[k, a]
            s1[k, a] += wi * dv[a]
        if full:
            # the whole square (only the upper triangle is read): full-length
            # inner loops vectorise, the triangle's do not
            for a in range(d):
                va = wi * dv[a]
                for b in range(d):
                    s2[k, a, b] += va * dv[b]
        else:
            for a in range(d):
                s2[k, 0, a] += wi * dv[a] * dv[a]


@jit_inner()
def _labels_tied(X, w, start, stop, labels, shift, gshift, nk, s1, s2, dv):
    """'tied' with hard labels: each component's first moments, and (where s2 has
    rows) the pooled scatter about gshift over all rows, BLOCK rows at a time by
    the EM pass's ``_scatter`` (a row's whole d x d square at a time took 0.39
    against 0.10 ms for 10k x 8 on one core)."""
    wide_vectors()
    K, d = shift.shape
    unit = w.shape[0] == 0
    if s2.shape[1] > 0:
        XT, D, zero = np.empty((d, BLOCK)), np.empty((d, BLOCK)), np.zeros(d)
        ones = np.ones(BLOCK)
        for b0 in range(start, stop, BLOCK):
            b1 = min(stop, b0 + BLOCK)
            wb = ones[:b1 - b0] if unit else w[b0:b1]
            load_block(X, b0, b1, XT, zero)
            if not unit:
                _blank_unweighted(wb, b1 - b0, XT, True, gshift)
            _scatter(XT, b1 - b0, gshift, wb, D, s2[0, d], s2[0, :d])
    for i in range(start, stop):
        wi = 1.0 if unit else w[i]
        k = labels[i]
        if k >= K or wi == 0.0:
            continue
        nk[k] += wi
        for a in range(d):
            s1[k, a] += wi * (X[i, a] - shift[k, a])


@jit_inner()
def _blank_unweighted(wb, B, rows, cols, point):
    """Rows of weight zero take the finite ``point`` in place of their values (rows
    as ``rows[i, :]`` when ``cols`` is False, else ``rows[:, i]``): they add nothing
    to any sum either way (w r = 0), but values that overflow |x - mu|^2 would make
    0 * inf = NaN of that nothing. A weight of zero is a row that is not there."""
    wide_vectors()
    for i in range(B):
        if wb[i] == 0.0:
            if cols:
                for a in range(point.shape[0]):
                    rows[a, i] = point[a]
            else:
                for a in range(point.shape[0]):
                    rows[i, a] = point[a]


@jit_inner()
def _add_moved(s1, s2, k, a, S1, S2, c, t):
    """One block's sums of w x' and w x'^2 (rows centred on gshift; t the block's
    sum of w) added to s1, s2 about the centre c = shift - gshift."""
    wide_vectors()
    s1[k, a] += S1 - c * t
    s2[k, 0, a] += S2 - c * (2.0 * S1 - c * t)


@jit()
def centred_sums_kept(nk, s1, s2, shift, gshift):
    """Whether a pass's sums from centred rows (``_block_moments_centred``, moved to
    about each shift: nk, s1, s2) kept their digits. Taken about gshift, a
    component's sums held t (v + u^2) a feature (v its rows' variance, u their
    mean's distance from gshift) and rounded to some eps of that; moved, they keep
    t v to within some eps t (v + u^2): True where v + u^2 <= CENTRED_KEEP v for
    every feature of every component of weight (the variances then hold to about
    1e-11 relative), False for a variance of 0 off gshift (a component on one point,
    which must read exactly 0: ``reg_covar = 0`` then raises as scikit-learn does)
    and for NaN. Components with less than CENTRED_MIN_SHARE of the average
    component's weight are not asked (a component switched off by the Bayesian
    prior holds 1e-6 of a row, its variance of a row or two: the pass would be made
    twice every iteration for a number that the M-step all but ignores)."""
    wide_vectors()
    K, d = shift.shape
    total = 0.0
    for k in range(K):
        total += nk[k]
    for k in range(K):
        t = nk[k]
        if not (t > CENTRED_MIN_SHARE * total / K):
            continue
        for a in range(d):
            m = s1[k, a] / t
            v = s2[k, 0, a] / t - m * m
            u = m + (shift[k, a] - gshift[a])
            if not (v * CENTRED_KEEP >= v + u * u):
                return False
    return True


@jit_inner()
def _block_moments_centred(XT, B, wb, R, centre, nk, s1, s2, W):
    """'diag' and 'spherical' moments from rows centred on gshift (XT,
    ``_estep.load_block`` given gshift): sum w x' and sum w x'^2 a component and
    feature, two fused multiply-adds a (row, component, feature) and a square per
    four components (against four operations about each component's shift: x - c,
    w (x - c) and two sums), moved to about the shift once a block (``_add_moved``;
    the engine checks the pass's sums: ``centred_sums_kept``). Four components and two
    features a sweep of the rows (each x and weight loaded once for all the sums it
    enters; the squares made in the sweep: kept in an array of their own, written
    with the centred rows, the pass was slower below K = 16). W (4, B) is scratch
    for the four components' weights; components beyond a multiple of four one at
    a time."""
    wide_vectors()
    K, d = centre.shape
    k0 = 0
    while k0 + 4 <= K:
        t0 = _weights_of(wb, R, k0, B, W[0])
        t1 = _weights_of(wb, R, k0 + 1, B, W[1])
        t2 = _weights_of(wb, R, k0 + 2, B, W[2])
        t3 = _weights_of(wb, R, k0 + 3, B, W[3])
        nk[k0] += t0
        nk[k0 + 1] += t1
        nk[k0 + 2] += t2
        nk[k0 + 3] += t3
        if t0 == 0.0 and t1 == 0.0 and t2 == 0.0 and t3 == 0.0:
            k0 += 4
            continue
        j = 0
        while j < d:
            j1 = j + 1 if j + 1 < d else j  # an odd d's last feature twice, kept once
            s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = 0.0
            r00 = r01 = r10 = r11 = r20 = r21 = r30 = r31 = 0.0
            for i in range(B):
                x0, x1 = XT[j, i], XT[j1, i]
                y0, y1 = x0 * x0, x1 * x1
                w0, w1, w2, w3 = W[0, i], W[1, i], W[2, i], W[3, i]
                s00 += w0 * x0
                s01 += w0 * x1
                r00 += w0 * y0
                r01 += w0 * y1
                s10 += w1 * x0
                s11 += w1 * x1
                r10 += w1 * y0
                r11 += w1 * y1
                s20 += w2 * x0
                s21 += w2 * x1
                r20 += w2 * y0
                r21 += w2 * y1
                s30 += w3 * x0
                s31 += w3 * x1
                r30 += w3 * y0
                r31 += w3 * y1
            _add_moved(s1, s2, k0, j, s00, r00, centre[k0, j], t0)
            _add_moved(s1, s2, k0 + 1, j, s10, r10, centre[k0 + 1, j], t1)
            _add_moved(s1, s2, k0 + 2, j, s20, r20, centre[k0 + 2, j], t2)
            _add_moved(s1, s2, k0 + 3, j, s30, r30, centre[k0 + 3, j], t3)
            if j1 > j:
                _add_moved(s1, s2, k0, j1, s01, r01, centre[k0, j1], t0)
                _add_moved(s1, s2, k0 + 1, j1, s11, r11, centre[k0 + 1, j1], t1)
                _add_moved(s1, s2, k0 + 2, j1, s21, r21, centre[k0 + 2, j1], t2)
                _add_moved(s1, s2, k0 + 3, j1, s31, r31, centre[k0 + 3, j1], t3)
            j += 2
        k0 += 4
    for k in range(k0, K):
        t = _weights_of(wb, R, k, B, W[0])
        nk[k] += t
        if t == 0.0:
            continue
        for a in range(d):
            sa = ra = 0.0
            for i in range(B):
                sa += W[0, i] * XT[a, i]
                ra += W[0, i] * (XT[a, i] * XT[a, i])
            _add_moved(s1, s2, k, a, sa, ra, centre[k, a], t)


_KERNELS = {}
_KERNELS_LOCK = threading.Lock()  # one build of each, whatever the threads


def stats_kernel(ct, tiled, mode, dsmall=0):
    """The serial statistics pass for one covariance type, path and mode. Called
    as ``kernel(X, w, row0, row1, R, labels, means, pc, aux, log_det, log_w, shift,
    gshift, ucat, muu, nk, s1, s2, ll, claim)``: the chunks of rows [row0, row1)
    (R holds rows row0.. of that range) that ``_numba.next_chunk`` gives it (all,
    for an empty ``claim``), chunk c into nk[c], s1[c], s2[c], ll[c] (zeroed by the
    caller). Empty ``w``: unit weights. X may be of
    any dtype and layout (a memmap, Fortran order, integers): each block is
    converted as it is read."""
    key = (ct, bool(tiled), mode, int(dsmall))
    with _KERNELS_LOCK:
        if key not in _KERNELS:
            _KERNELS[key] = _build_stats_chunks(*key)
        return _KERNELS[key]


def _build_stats_chunks(ct, tiled, mode, dsmall):
    CT, TL, MODE = ct, int(bool(tiled)), mode  # constants: untaken branches never compile
    DS = int(dsmall) if mode == MODE_EM else 0  # 'full' with DS features: unrolled E-step
    STAMP = SOURCE_STAMP  # in the cache key: an edit of a helper's file recompiles

    @jit()
    def stats_chunks(X, w, row0, row1, R, labels, means, pc, aux, log_det, log_w, shift,
                     gshift, ucat, muu, nk, s1, s2, ll, claim):
        wide_vectors()
        if STAMP == "":
            return
        nch, K = nk.shape
        d = X.shape[1]
        bs = TILE_BLOCK if TL == 1 else BLOCK
        nb = (row1 - row0 + bs - 1) // bs
        if MODE == MODE_LABELS:
            dv = np.empty(d)
            c = next_chunk(claim, -1)
            while c < nch:
                b0, b1 = block_range(c, nb, nch)
                r0 = row0 + b0 * bs
                r1 = min(row1, row0 + b1 * bs)
                if CT == TIED:
                    _labels_tied(X, w, r0, r1, labels, shift, gshift, nk[c], s1[c], s2[c], dv)
                else:
                    _labels_rows(X, w, r0, r1, labels, shift, nk[c], s1[c], s2[c], dv,
                                 CT == FULL)
                c = next_chunk(claim, c)
            return
        unit = w.shape[0] == 0
        ones = np.ones(bs)
        RB = np.empty((K, bs))
        lse, mx, wr = np.empty(bs), np.empty(bs), np.empty(bs)
        W2 = np.empty((4, bs))
        scale = np.empty(bs, dtype=np.int64)
        XT = np.empty((d, bs))
        D = np.empty((d, bs))
        centre = np.empty((K, d))
        zero_d = np.zeros(d)
        for k in range(K):
            for a in range(d):
                centre[k, a] = shift[k, a] - gshift[a]
        # 'diag' and 'spherical' EM passes on rows centred on gshift where the engine
        # gives the centred means as muu (``_estep.centred_means``)
        CEN = MODE == MODE_EM and TL == 0 and (CT == DIAG or CT == SPHERICAL)
        centred = False
        if CEN:  # a constant: other passes compile none of it
            centred = d > 0 and muu.shape[1] == d
        # float64 tiled EM by quadratic features: aux holds their weights (quad_params)
        quad = TL == 1 and MODE == MODE_EM and aux.shape[0] > 0
        nq = aux.shape[1] if quad else 0
        F, LPq = np.empty((nq, QUAD_ROWS)), np.empty((K if quad else 0, QUAD_ROWS))
        G, qacc = np.empty((K if quad else 0, nq)), np.zeros((K if quad else 0, nq))
        over = np.empty(QUAD_ROWS, dtype=np.int8)
        c = next_chunk(claim, -1)
        while c < nch:
            b0, b1 = block_range(c, nb, nch)
            acc_ll = 0.0
            for b in range(b0, b1):
                start = row0 + b * bs
                stop = min(row1, start + bs)
                B = stop - start
                wb = ones[:B] if unit else w[start:stop]
                if TL == 1 and quad:
                    Xq = np.empty((B, d))
                    centre_block(X, start, stop, gshift, Xq)
                    if not unit:
                        _blank_unweighted(wb, B, Xq, False, zero_d)
                    acc_ll += _block_em_quad(Xq, B, wb, unit, aux, log_det, log_w, means, pc,
                                             gshift, qacc, F, LPq, G, over, lse, mx, scale)
                    continue
                if TL == 1:
                    Xc = np.empty((B, d), dtype=ucat.dtype)
                    centre_block(X, start, stop, gshift, Xc)
                    if not unit:
                        _blank_unweighted(wb, B, Xc, False, zero_d)
                    if MODE == MODE_EM:
                        # the whitened rows kept for the statistics, and scratch
                        Z = np.empty((_z_keep(ucat), ucat.shape[2], B), dtype=ucat.dtype)
                        Ys = np.empty((ucat.shape[2], B), dtype=ucat.dtype)
                        block_log_prob_tiles(Xc, B, ucat, muu, log_det, log_w, RB, Z, Ys)
                elif CEN and centred:
                    load_block(X, start, stop, XT, gshift)
                    if not unit:
                        _blank_unweighted(wb, B, XT, True, centre[0])
                    if CT == SPHERICAL:
                        block_log_prob_spherical(XT, B, muu, aux, log_det, log_w, RB)
                    else:
                        block_log_prob_diag(XT, B, muu, aux, log_det, log_w, RB)
                else:
                    load_block(X, start, stop, XT, zero_d)
                    if not unit:
                        _blank_unweighted(wb, B, XT, True, shift[0])
                    if MODE == MODE_EM:
                        if CT == FULL and DS > 0:
                            lp_full_small(DS, XT, B, means, pc, log_det, log_w, RB)
                        elif CT == FULL:
                            block_log_prob_full(XT, B, means, pc, log_det, log_w, RB, D, lse,
                                                 mx)
                        elif CT == TIED:
                            block_log_prob_tied(XT, B, pc, aux, log_det, log_w, RB, D, lse, mx)
                        elif CT == SPHERICAL:
                            block_log_prob_spherical(XT, B, means, aux, log_det, log_w, RB)
                        else:
                            block_log_prob_diag(XT, B, means, aux, log_det, log_w, RB)
                if MODE == MODE_EM:
                    resp_sums(RB, B, lse, mx, scale)
                    acc_ll += block_ll(lse, mx, wb, B, unit, scale)
                else:
                    for k in range(K):
                        for i in range(B):
                            RB[k, i] = R[start + i - row0, k]
                if TL == 1:
                    if MODE == MODE_EM:
                        # whitened statistics, products in the data's dtype
                        _block_accumulate_whitened(
                            Xc, B, wb, RB, ucat, muu, Z, Ys, nk[c], s1[c], s2[c],
                            np.empty((d, B), dtype=ucat.dtype), np.empty(B),
                            np.empty(B, dtype=ucat.dtype), np.empty(d))
                    else:
                        # given responsibilities: about the statistics' shift, in float64
                        _block_accumulate_tiles(Xc, B, wb, RB, centre, nk[c], s1[c], s2[c],
                                                np.empty((d, B)), np.empty((d, B)),
                                                np.empty(B), np.empty(B), np.empty(d))
                elif CT == FULL and DS > 0:
                    acc_full_small(DS, XT, B, wb, RB, shift, nk[c], s1[c], s2[c], wr)
                elif CT == FULL:
                    _block_accumulate_full(XT, B, wb, RB, shift, nk[c], s1[c], s2[c], D, wr)
                elif CT == TIED:
                    _block_first_moments(XT, B, wb, RB, shift, nk[c], s1[c], wr)
                    if s2.shape[2] > 0:  # s2 without rows: the pooled sums are known
                        _scatter(XT, B, gshift, wb, D, s2[c, 0, d], s2[c, 0, :d])
                elif CEN and centred:
                    _block_moments_centred(XT, B, wb, RB, centre, nk[c], s1[c], s2[c], W2)
                else:
                    _block_accumulate_diag(XT, B, wb, RB, shift, nk[c], s1[c], s2[c], W2)
            if quad:
                _quad_to_stats(qacc, nk[c], s1[c], s2[c])
                qacc[:] = 0.0
            ll[c] = acc_ll
            c = next_chunk(claim, c)

    return stats_chunks
