"""Numba k-means for the 'kmeans' and 'k-means++' starts.

Draws from ``random_state`` exactly as scikit-learn's ``kmeans_plusplus`` and
``KMeans(n_init=1)`` do, and follows their arithmetic (squared distances as
``|x|^2 - 2 x.c + |c|^2``, data centred on its mean for ``KMeans``, Lloyd's
stopping rule, empty-cluster relocation), so that the same seed picks the same
rows and Lloyd's algorithm reaches the same labels. Every pass is parallel over
fixed row blocks with per-block slots added in a fixed order: results do not
depend on the thread count.

Per-row state: the k-means label, one small integer (1 byte a row for fewer
than 255 clusters). While seeding, an in-memory X also keeps each row's
distance to its nearest chosen centre (8 bytes a row); file-backed data (a
memmap) keeps that centre's index in the label buffer instead and recomputes
the distance block by block, so a memmap of many GB needs no n-sized float array
(the empty-cluster relocation, which needs every row's distance, is the one
exception and is rare). Squared row norms are always recomputed.
"""

import mmap
import warnings

import numpy as np
from numba import njit, prange
from sklearn.exceptions import ConvergenceWarning

from ._kernels import BLOCK, group_size, jit, work_dtype

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4


def _seq(func):
    """No fastmath: sums whose order is scikit-learn's (row after row, in float32).
    ``fastmath=False`` is spelt out: a kernel that leaves it unset inherits its
    caller's fastmath, whose 'reassoc' lets LLVM reorder (vectorise) the sum."""
    return njit(cache=True, nogil=True, error_model="numpy", fastmath=False)(func)


def label_dtype(n_clusters):
    """The smallest unsigned type for labels 0..K-1; its maximum means 'no label'."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_clusters < np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"n_clusters={n_clusters} is too large")


@_seq
def _sequential_column_sums(X, acc):
    """acc[a] += X[i, a] row after row, in acc's dtype: numpy's order for
    ``X.mean(axis=0)`` on a C-ordered array of more than one column, and its
    accumulation dtype."""
    n, d = X.shape
    for i in range(n):
        for a in range(d):
            acc[a] += X[i, a]


@_seq
def _col0_term(X, m, zero, sq, i):
    v = zero + X[i, 0]
    if sq:
        v = (v - m) * (v - m)
    return v


@_seq
def _pairwise_col0(X, m, zero, sq, lo, n):
    """numpy's pairwise_sum of X[lo:lo + n, 0] (``sq``: of (x - m)**2) in zero's
    dtype: eight accumulators on blocks of up to 128, halves above. One column
    of a C-ordered array is contiguous, and numpy sums it so, not row by row."""
    if n < 8:
        res = zero
        for i in range(lo, lo + n):
            res += _col0_term(X, m, zero, sq, i)
        return res
    if n <= 128:
        r0, r1 = _col0_term(X, m, zero, sq, lo), _col0_term(X, m, zero, sq, lo + 1)
        r2, r3 = _col0_term(X, m, zero, sq, lo + 2), _col0_term(X, m, zero, sq, lo + 3)
        r4, r5 = _col0_term(X, m, zero, sq, lo + 4), _col0_term(X, m, zero, sq, lo + 5)
        r6, r7 = _col0_term(X, m, zero, sq, lo + 6), _col0_term(X, m, zero, sq, lo + 7)
        i = lo + 8
        end = lo + n - n % 8
        while i < end:
            r0 += _col0_term(X, m, zero, sq, i)
            r1 += _col0_term(X, m, zero, sq, i + 1)
            r2 += _col0_term(X, m, zero, sq, i + 2)
            r3 += _col0_term(X, m, zero, sq, i + 3)
            r4 += _col0_term(X, m, zero, sq, i + 4)
            r5 += _col0_term(X, m, zero, sq, i + 5)
            r6 += _col0_term(X, m, zero, sq, i + 6)
            r7 += _col0_term(X, m, zero, sq, i + 7)
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < lo + n:
            res += _col0_term(X, m, zero, sq, i)
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_col0(X, m, zero, sq, lo, n2) + _pairwise_col0(X, m, zero, sq, lo + n2, n - n2)


def _column_sums(X, m, sq):
    """The column sums numpy's ``X.sum(axis=0)`` gives on scikit-learn's C-ordered
    float copy of X (``sq``: of (X - m)**2, as ``np.var`` sums them), in the
    work dtype and without the copy: row after row, or pairwise for one column."""
    dtype = work_dtype(X)
    n, d = X.shape
    if d == 1:
        total = _pairwise_col0(X, dtype.type(m[0]), dtype.type(0), sq, 0, n)
        return np.array([total], dtype=dtype)
    acc = np.zeros(d, dtype=dtype)
    if sq:
        _sequential_sq_dev_sums(X, m, acc)
    else:
        _sequential_column_sums(X, acc)
    return acc


@_seq
def _sequential_sq_dev_sums(X, xmean, acc):
    """acc[a] += (X[i, a] - xmean[a])**2 row after row, in acc's dtype: numpy's
    order for ``np.var(X, axis=0)``'s sum of squares on a C-ordered array."""
    n, d = X.shape
    for i in range(n):
        for a in range(d):
            v = X[i, a] - xmean[a]
            acc[a] += v * v


def column_mean(X):
    """``X.mean(axis=0)`` as scikit-learn's ``KMeans`` computes it on its C-ordered
    float copy of X, bit for bit and in its dtype (float32 for float32 data),
    without that copy. The kernels subtract it in that dtype too, so the centred
    rows are scikit-learn's and so are most distance ties."""
    dtype = work_dtype(X)
    acc = _column_sums(X, np.zeros(X.shape[1], dtype=dtype), False)
    mean = np.zeros((1, X.shape[1]), dtype=dtype)
    np.true_divide(acc[np.newaxis], np.intp(X.shape[0]), out=mean, casting="unsafe")
    return mean[0]


@jit()
def sq_norms(A):
    """Squared norm of each row of A: the centres' |c|^2, one loop for every
    caller so that a centre's norm has the same bits as candidate and as centre."""
    out = np.zeros(A.shape[0])
    for k in range(A.shape[0]):
        for a in range(A.shape[1]):
            out[k] += A[k, a] * A[k, a]
    return out


@jit()
def _load_centred(X, start, stop, xmean, XT, xsq):
    """Rows [start, stop) of X minus xmean, transposed into XT (d, B) as float64,
    and their squared norms: the loops below then run over contiguous rows."""
    d = X.shape[1]
    B = stop - start
    for i in range(B):
        for a in range(d):
            XT[a, i] = X[start + i, a] - xmean[a]
    for i in range(B):
        xsq[i] = 0.0
    for a in range(d):
        for i in range(B):
            xsq[i] += XT[a, i] * XT[a, i]


@jit()
def _dots(XT, B, c, out):
    """out[i] = x_i . c over the block, four features a sweep (fewer loads and
    stores of ``out`` than one feature a sweep)."""
    d = XT.shape[0]
    r = d % 4
    for i in range(B):
        out[i] = 0.0
    for a in range(r):
        ca = c[a]
        for i in range(B):
            out[i] += XT[a, i] * ca
    for a in range(r, d, 4):
        c0, c1, c2, c3 = c[a], c[a + 1], c[a + 2], c[a + 3]
        for i in range(B):
            out[i] += (XT[a, i] * c0 + XT[a + 1, i] * c1) + (XT[a + 2, i] * c2 + XT[a + 3, i] * c3)


@jit()
def _sq_dist(XT, B, c, csq, xsq, out):
    """scikit-learn's squared distance (-2 x.c + |c|^2) + |x|^2, clipped at 0."""
    _dots(XT, B, c, out)
    for i in range(B):
        out[i] = max(-2.0 * out[i] + csq + xsq[i], 0.0)


@jit()
def _block_closest(XT, B, C, csqC, near, cl, start, prev, fold, xsq, out, tmp):
    """out[i]: the squared distance of row i to its nearest chosen centre, folding
    in centre ``prev`` if prev >= 0 (and, with ``fold``, keeping the result).
    Two ways to know the nearest centre so far: ``cl`` non-empty holds each row's
    distance to it (8 bytes a row, no gather); empty ``cl``: ``near`` holds its
    index and the distance is recomputed (a gather from C; 1 byte a row, for
    data read from disk)."""
    if cl.shape[0] > 0:
        for i in range(B):
            out[i] = cl[start + i]
        if prev >= 0:
            _sq_dist(XT, B, C[prev], csqC[prev], xsq, tmp)
            for i in range(B):  # branch-free: vectorises
                out[i] = min(out[i], tmp[i])
            if fold:
                for i in range(B):
                    cl[start + i] = out[i]
        return
    d = XT.shape[0]
    for i in range(B):
        out[i] = 0.0
    for a in range(d):  # rows innermost: a gather from C that vectorises
        for i in range(B):
            out[i] += XT[a, i] * C[near[start + i], a]
    for i in range(B):
        out[i] = max(-2.0 * out[i] + csqC[near[start + i]] + xsq[i], 0.0)
    if prev >= 0:
        _sq_dist(XT, B, C[prev], csqC[prev], xsq, tmp)
        for i in range(B):
            if tmp[i] < out[i]:
                out[i] = tmp[i]
                if fold:
                    near[start + i] = prev


@jit(parallel=True)
def seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, cands, block_tot):
    """One read of X for a round of greedy k-means++. First folds centre ``prev``
    into each row's nearest centre; then, for each candidate t, block_tot[b, t] =
    sum over block b of sw_i min(closest_i, |x_i - c_t|^2), and returns the
    potentials (block sums added in order). The chosen candidate's column of
    block_tot drives the next draw. Empty ``sw``: unit weights; ``cl``, ``near``:
    as in ``_block_closest``."""
    n, d = X.shape
    T = cands.shape[0]
    csq = sq_norms(cands)
    nblocks = (n + BLOCK - 1) // BLOCK
    unit = sw.shape[0] == 0
    for b in prange(nblocks):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        B = stop - start
        # separate arrays: views of one would keep LLVM from vectorising (aliasing)
        XT, xsq, closest, tmp = np.empty((d, B)), np.empty(B), np.empty(B), np.empty(B)
        _load_centred(X, start, stop, xmean, XT, xsq)
        _block_closest(XT, B, C, csqC, near, cl, start, prev, True, xsq, closest, tmp)
        for t in range(T):
            # _sq_dist here and for the fold next round: the chosen candidate's
            # distances have the same bits as its block sums
            _sq_dist(XT, B, cands[t], csq[t], xsq, tmp)
            acc = 0.0
            if unit:
                for i in range(B):
                    acc += min(closest[i], tmp[i])
            else:
                for i in range(B):
                    acc += sw[start + i] * min(closest[i], tmp[i])
            block_tot[b, t] = acc
    pots = np.zeros(T)
    for b in range(nblocks):
        for t in range(T):
            pots[t] += block_tot[b, t]
    return pots


@jit()
def weighted_search(X, xmean, sw, C, csqC, near, cl, prev, tot, rand_vals, out):
    """out[j] = first i with cumsum(sw * closest)[i] >= rand_vals[j] (numpy's
    searchsorted, side 'left'), found from the block sums ``tot`` and a scan of
    one block, its distances recomputed; n - 1 where rounding leaves the value
    past the end (scikit-learn clips)."""
    n, d = X.shape
    nblocks = tot.shape[0]
    unit = sw.shape[0] == 0
    XT_, xsq_, cl_, tmp_ = np.empty((d, BLOCK)), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    for j in range(rand_vals.shape[0]):
        r = rand_vals[j]
        cum = 0.0
        res = n - 1
        for b in range(nblocks):
            if cum + tot[b] < r:
                cum += tot[b]
                continue
            start = b * BLOCK
            stop = min(n, start + BLOCK)
            B = stop - start
            XT, xsq, closest, tmp = XT_[:, :B], xsq_[:B], cl_[:B], tmp_[:B]
            _load_centred(X, start, stop, xmean, XT, xsq)
            _block_closest(XT, B, C, csqC, near, cl, start, prev, False, xsq, closest, tmp)
            found = False
            for i in range(B):
                cum += closest[i] if unit else sw[start + i] * closest[i]
                if cum >= r:
                    res = start + i
                    found = True
                    break
            if found:
                break
        out[j] = res


@jit()
def _pick_uniform(n, pval, u):
    """numpy's ``choice(n, p)`` for p = pval everywhere, after its draw u: the
    first i with cumsum(p)[i] / cumsum(p)[-1] > u (sequential sums, as numpy's)."""
    last = 0.0
    for i in range(n):
        last += pval
    s = 0.0
    for i in range(n):
        s += pval
        if s / last > u:
            return i
    return n - 1


def _pairwise_sum_of_ones(n, dtype):
    """What ``np.ones(n, dtype).sum()`` returns (numpy's pairwise summation, whose
    float32 total is not n beyond 2**24 rows), without the n-sized array."""
    one = dtype.type(1)
    memo = {}

    def pairwise(m):  # numpy's pairwise_sum over m ones
        if m in memo:
            return memo[m]
        if m < 8:
            res = dtype.type(0)
            for _ in range(m):
                res = dtype.type(res + one)
        elif m <= 128:
            r = [one] * 8
            for _ in range(8, m - m % 8, 8):
                r = [dtype.type(v + one) for v in r]
            res = dtype.type(dtype.type(dtype.type(r[0] + r[1]) + dtype.type(r[2] + r[3]))
                             + dtype.type(dtype.type(r[4] + r[5]) + dtype.type(r[6] + r[7])))
            for _ in range(m % 8):
                res = dtype.type(res + one)
        else:
            m2 = m // 2
            m2 -= m2 % 8
            res = dtype.type(pairwise(m2) + pairwise(m - m2))
        memo[m] = res
        return res

    if n == 0:
        return dtype.type(0)
    return dtype.type(one + pairwise(n - 1))  # the reduction starts from the first item


def first_center(random_state, n_samples, sample_weight, dtype):
    """``random_state.choice(n_samples, p=sample_weight / sample_weight.sum())`` as
    scikit-learn draws it (weights in the data's dtype); for unit weights
    (``sample_weight`` None) without the n-sized p and cumulative sums."""
    if sample_weight is not None:
        return random_state.choice(n_samples, p=sample_weight / sample_weight.sum())
    u = random_state.random_sample()  # the one draw numpy's choice makes
    pval = float(dtype.type(dtype.type(1) / _pairwise_sum_of_ones(n_samples, dtype)))
    return _pick_uniform(n_samples, pval, u)


def _file_backed(X):
    """Whether X's memory is a mapped file (an np.memmap, or a view of one, as the
    estimator's validated read-only view is): such data is read block by block
    and gets no n-sized float state."""
    base = X
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


def _centred_rows(X, ids, xmean):
    # in xmean's dtype, as the kernels subtract it (float32 - float32 stays float32)
    return np.ascontiguousarray(np.asarray(X[np.asarray(ids)]) - xmean, dtype=np.float64)


def kmeans_plusplus(X, n_clusters, random_state, sample_weight, xmean, n_local_trials=None):
    """Greedy k-means++ drawing as scikit-learn's ``_kmeans_plusplus``.

    ``sample_weight``: None (unit weights) or an array; ``xmean``: the centring
    (zeros for the plain ``kmeans_plusplus``). Returns the chosen row indices,
    the centres (centred, float64) and a ``label_dtype`` buffer of n labels for
    Lloyd's algorithm to reuse. An in-memory X keeps each row's closest
    distance (8 bytes a row); a file-backed one (``_file_backed``) keeps the
    index of its nearest centre instead (1 byte a row below 255 clusters) and
    recomputes the distance.
    """
    n_samples, d = X.shape
    dtype = work_dtype(X)
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    sw = np.zeros(0) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    center_id = first_center(random_state, n_samples, sample_weight, dtype)
    indices = np.full(n_clusters, -1, dtype=np.int64)
    indices[0] = center_id
    C = np.zeros((n_clusters, d))
    csqC = np.zeros(n_clusters)
    C[0] = _centred_rows(X, [center_id], xmean)[0]
    csqC[0] = sq_norms(C[:1])[0]
    near = np.zeros(n_samples, dtype=label_dtype(n_clusters))
    if _file_backed(X):
        cl = np.zeros(0)  # near[i] = 0: centre 0 is every row's nearest so far
    else:
        cl = np.full(n_samples, np.inf)  # centre 0 is folded in on the first pass
    nblocks = (n_samples + BLOCK - 1) // BLOCK
    tot = np.empty((nblocks, 1))  # contiguous, as below: one compiled variant
    current_pot = seeding_pass(X, xmean, sw, C, csqC, near, cl, -1, C[:1], tot)[0]
    tot = tot[:, 0]  # block sums of the distances to the nearest centre so far
    block_tot = np.empty((nblocks, n_local_trials))
    candidate_ids = np.empty(n_local_trials, dtype=np.int64)
    for c in range(1, n_clusters):
        # the last centre not yet folded into cl / near
        prev = c - 1 if (c > 1 or cl.shape[0] > 0) else -1
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        weighted_search(X, xmean, sw, C, csqC, near, cl, prev, tot, rand_vals, candidate_ids)
        cands = _centred_rows(X, candidate_ids, xmean)
        pots = seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, cands, block_tot)
        best = int(np.argmin(pots))
        current_pot = pots[best]
        tot = np.ascontiguousarray(block_tot[:, best])
        indices[c] = candidate_ids[best]
        C[c] = cands[best]
        csqC[c] = sq_norms(cands[best:best + 1])[0]
    return indices, C, near


@jit(parallel=True)
def lloyd_pass(X, xmean, sw, centers, labels, first, update, group, sums, weights, counts):
    """Assign each row to the nearest centre (scikit-learn's |c|^2 - 2 x.c, first
    minimum on ties), with ``update`` adding the weighted rows into ``sums`` and
    ``weights``; ``counts`` gets the rows a centre. Returns how many labels
    changed (all of them on the ``first`` pass) and the sum of the rows' squared
    norms (centred: n times the data's total variance, for Lloyd's tolerance)."""
    n, d = X.shape
    K = centers.shape[0]
    csq = sq_norms(centers)
    nblocks = (n + BLOCK - 1) // BLOCK
    unit = sw.shape[0] == 0
    sums[:] = 0.0
    weights[:] = 0.0
    counts[:] = 0
    g_sums = np.zeros((group, K, d))
    g_w = np.zeros((group, K))
    g_cnt = np.zeros((group, K), dtype=np.int64)
    g_changed = np.zeros(group, dtype=np.int64)
    g_sq = np.zeros(group)
    changed = 0
    sq = 0.0
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        for j in prange(gn):
            start = (g0 + j) * BLOCK
            stop = min(n, start + BLOCK)
            B = stop - start
            XT, xsq, dot = np.empty((d, B)), np.empty(B), np.empty(B)
            best, lab = np.empty(B), np.empty(B)  # separate arrays, as above
            _load_centred(X, start, stop, xmean, XT, xsq)
            acc = 0.0
            for i in range(B):
                best[i] = np.inf
                lab[i] = 0.0
                acc += xsq[i]
            g_sq[j] = acc
            for k in range(K):
                _dots(XT, B, centers[k], dot)
                ck = csq[k]
                kf = np.float64(k)
                for i in range(B):  # branch-free, so that it vectorises
                    dist = ck - 2.0 * dot[i]
                    lt = dist < best[i]
                    lab[i] = kf if lt else lab[i]
                    best[i] = min(dist, best[i])
            nchg = 0
            g_cnt[j] = 0
            for i in range(B):
                k = np.int64(lab[i])
                nchg += labels[start + i] != k
                labels[start + i] = k
                g_cnt[j, k] += 1
            g_changed[j] = B if first else nchg
            if update:
                g_sums[j] = 0.0
                g_w[j] = 0.0
                for i in range(B):
                    k = np.int64(lab[i])
                    w = 1.0 if unit else sw[start + i]
                    g_w[j, k] += w
                    for a in range(d):
                        g_sums[j, k, a] += XT[a, i] * w
        for j in range(gn):
            changed += g_changed[j]
            sq += g_sq[j]
            for k in range(K):
                counts[k] += g_cnt[j, k]
                if update:
                    weights[k] += g_w[j, k]
                    for a in range(d):
                        sums[k, a] += g_sums[j, k, a]
    return changed, sq


@jit(parallel=True)
def sq_dist_to_assigned(X, xmean, centers, labels, out):
    """out[i] = |x_i - xmean - centers[labels[i]]|^2."""
    n, d = X.shape
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        for i in range(start, stop):
            acc = 0.0
            k = labels[i]
            for a in range(d):
                v = X[i, a] - xmean[a] - centers[k, a]
                acc += v * v
            out[i] = acc


def _relocate_empty_clusters(X, xmean, sw, centers_old, sums, weights, labels):
    """scikit-learn's ``_relocate_empty_clusters_dense``, on the weighted sums.
    Needs every row's distance to its centre (an n-sized array, only when a
    cluster went empty)."""
    empty_clusters = np.where(weights == 0)[0]
    n_empty = empty_clusters.shape[0]
    if n_empty == 0:
        return
    distances = np.empty(X.shape[0])
    sq_dist_to_assigned(X, xmean, centers_old, labels, distances)
    far_from_centers = np.argpartition(distances, -n_empty)[: -n_empty - 1 : -1]
    for idx in range(n_empty):
        new_cluster_id = empty_clusters[idx]
        far_idx = far_from_centers[idx]
        weight = 1.0 if sw.shape[0] == 0 else sw[far_idx]
        old_cluster_id = labels[far_idx]
        x = _centred_rows(X, [far_idx], xmean)[0]
        sums[old_cluster_id] -= x * weight
        sums[new_cluster_id] = x * weight
        weights[new_cluster_id] = weight
        weights[old_cluster_id] -= weight


def lloyd(X, xmean, sw, centers, tol, group, labels=None, max_iter=LLOYD_MAX_ITER):
    """Lloyd's algorithm as scikit-learn's ``_kmeans_single_lloyd`` runs it: stop when
    no label changes, or when the squared centre shift is <= tol times the data's
    mean variance (``KMeans``' ``tol``; the variance comes from the first pass,
    which reads every row anyway), then (in the latter case) a last assignment.
    ``centers`` are in coordinates centred on xmean; ``sw`` empty means unit
    weights; ``labels`` a buffer to reuse.
    Returns (labels, centers, rows per cluster)."""
    n, d = X.shape
    K = centers.shape[0]
    if labels is None:
        labels = np.zeros(n, dtype=label_dtype(K))
    sums = np.zeros((K, d))
    weights = np.zeros(K)
    counts = np.zeros(K, dtype=np.int64)
    strict_convergence = False
    for it in range(max_iter):
        changed, sq = lloyd_pass(X, xmean, sw, centers, labels, it == 0, True, group, sums,
                                 weights, counts)
        if it == 0:
            tol = tol * sq / (n * d)  # np.mean(np.var(X, axis=0)) * tol
        _relocate_empty_clusters(X, xmean, sw, centers, sums, weights, labels)
        new_centers = sums.copy()
        nz = weights > 0
        new_centers[nz] /= weights[nz][:, None]
        shift_tot = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if changed == 0:
            strict_convergence = True
            break
        if shift_tot <= tol:
            break
    if not strict_convergence:
        lloyd_pass(X, xmean, sw, centers, labels, False, False, group, sums, weights, counts)
    return labels, centers, counts


def _weights(X, sample_weight):
    """The float64 weights the passes read (empty: unit) and the draw's weights
    (None: unit), both in the data dtype's precision as scikit-learn's."""
    if sample_weight is None:
        return np.zeros(0), None
    dtype = work_dtype(X)
    sw_draw = np.asarray(sample_weight, dtype=dtype)
    return np.asarray(sw_draw, dtype=np.float64), sw_draw


def kmeans_labels(X, n_clusters, random_state, sample_weight=None):
    """``KMeans(n_clusters, n_init=1, random_state=random_state).fit(X,
    sample_weight=sample_weight)``, computed by the kernels above. Returns its
    labels_ (``label_dtype``), its centres (float64) and the rows a cluster."""
    n, d = X.shape
    sw, sw_draw = _weights(X, sample_weight)
    group = group_size(n_clusters, d, 0)
    xmean = column_mean(X)
    _, centers, near = kmeans_plusplus(X, n_clusters, random_state, sw_draw, xmean)
    labels, centers, counts = lloyd(X, xmean, sw, centers, LLOYD_TOL, group, labels=near)
    distinct_clusters = int(np.count_nonzero(counts))
    if distinct_clusters < n_clusters:
        warnings.warn(
            "Number of distinct clusters ({}) found smaller than "
            "n_clusters ({}). Possibly due to duplicate points "
            "in X.".format(distinct_clusters, n_clusters),
            ConvergenceWarning,
            stacklevel=2,
        )
    return labels, centers + xmean, counts


def kmeans_plusplus_indices(X, n_clusters, random_state, sample_weight=None):
    """The rows ``sklearn.cluster.kmeans_plusplus(X, n_clusters, random_state=...,
    sample_weight=...)`` picks (uncentred data, as GaussianMixture calls it)."""
    _, sw_draw = _weights(X, sample_weight)
    xmean = np.zeros(X.shape[1], dtype=work_dtype(X))  # uncentred
    idx, _, _ = kmeans_plusplus(X, n_clusters, random_state, sw_draw, xmean)
    return idx


def rows_from_data(random_state, n_samples, n_components):
    """``random_state.choice(n_samples, n_components, replace=False)``: numpy's legacy
    generator shuffles all n indices and keeps the first ones; the same shuffle of
    4-byte indices draws the same rows with half its memory."""
    dt = np.uint32 if n_samples <= np.iinfo(np.uint32).max else np.int64
    idx = np.arange(n_samples, dtype=dt)
    random_state.shuffle(idx)
    return idx[:n_components].astype(np.int64)


def labels_of_rows(n_samples, indices):
    """Labels 0..K-1 on the given rows, 'none' (the dtype's maximum) elsewhere."""
    dt = label_dtype(len(indices))
    labels = np.full(n_samples, np.iinfo(dt).max, dtype=dt)
    labels[indices] = np.arange(len(indices))
    return labels
