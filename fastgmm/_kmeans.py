"""Numba k-means for the 'kmeans' and 'k-means++' starts.

Draws from ``random_state`` exactly as scikit-learn's ``kmeans_plusplus`` and
``KMeans(n_init=1)`` do, and follows their arithmetic (squared distances as
``|x|^2 - 2 x.c + |c|^2``, data centred on its mean for ``KMeans``, Lloyd's
stopping rule, empty-cluster relocation), so that the same seed picks the same
rows and Lloyd's algorithm reaches the same labels. Every pass over X runs a
serial kernel (``_kmeans_kernels``) on fastgmm's threads (``_pool``, ``n_jobs``
a per-call choice), over fixed row blocks with per-block slots added in a fixed
order: results do not depend on the thread count.

float32 data follows scikit-learn's float32 arithmetic where it decides a row
or a label: k-means++ rounds each row's distance to float32 (scikit-learn
computes it in float64 and stores float32), draws from the float32 cumulative
sum of those distances, added row after row as ``np.cumsum`` adds them, and
compares float32 potentials; Lloyd keeps float32 centres, assigns rows by
``|c|^2 - 2 x.c`` with x.c a float32 fused multiply-add chain over the features
(OpenBLAS sgemm's kernel for scikit-learn's chunks) and |c|^2 as
``np.einsum`` sums it, averages and measures the centre shift as
``_average_centers`` and ``_center_shift`` do, and takes its tolerance from
``np.var`` in float32. Sums over rows stay float64 (scikit-learn's float32 BLAS
and thread buffers add in orders that depend on its machine), rounded once.

Per-row state: the k-means label, one small integer (1 byte a row for fewer
than 255 clusters). While seeding, an in-memory X also keeps each row's
distance to its nearest chosen centre (8 bytes a row, 4 for float32 data);
file-backed data (a memmap) keeps that centre's index in the label buffer
instead and recomputes the distance block by block, so a memmap of many GB needs
no n-sized float array (the empty-cluster relocation, which needs every row's
distance, is the one exception and is rare). Squared row norms are always
recomputed.
"""

import functools
import mmap
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from . import _pool
from ._kmeans_kernels import (column_totals, mt_shuffle, pairwise_col0, pick_uniform,
                              prefix_rows, prefix_search, seed_blocks, sequential_sums,
                              sq_norms, weighted_search)
from ._lloyd_kernels import add_lloyd_slots, lloyd_kernel, sq_dist_blocks
from ._numba import BLOCK, work_dtype

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4
# blocks a group of the float32 seeding pass (its buffer: SEED_GROUP x BLOCK x 8
# candidates' float32 distances, 2 MiB), whose rows are then added in order
SEED_GROUP = 256
# Lloyd's group buffers (group x K x d float64 sums, ...) at most about this
LLOYD_GROUP_BYTES = 64 << 20
LLOYD_MAX_GROUP = 512


@functools.lru_cache(maxsize=64)
def label_dtype(n_clusters):
    """The smallest unsigned type for labels 0..K-1; its maximum means 'no label'."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_clusters < np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"n_clusters={n_clusters} is too large")


def _column_sums(X, m, sq):
    """The column sums numpy's ``X.sum(axis=0)`` gives on scikit-learn's C-ordered
    float copy of X (``sq``: of (X - m)**2, as ``np.var`` sums them), in the
    work dtype and without the copy: row after row, or pairwise for one column."""
    dtype = work_dtype(X)
    n, d = X.shape
    if d == 1:
        total = pairwise_col0(X, dtype.type(m[0]), dtype.type(0), sq, 0, n)
        return np.array([total], dtype=dtype)
    acc = np.zeros(d, dtype=dtype)
    sequential_sums(X, m, sq, acc)
    return acc


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


def seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, block_tot, prefix,
                 n_jobs=None):
    """One read of X for a round of greedy k-means++. First folds centre ``prev``
    into each row's nearest centre; then, for each candidate t, block_tot[b, t] =
    sum over block b of sw_i min(closest_i, |x_i - c_t|^2), and returns the
    potentials (block sums added in order). The chosen candidate's column of
    block_tot drives the next draw. Empty ``sw``: unit weights; ``cl``, ``near``,
    ``f32``: as in ``_kmeans_kernels._block_closest``.

    With ``f32`` it also fills prefix[b, t]: the float32 running sum of
    float32(sw_i min(closest_i, |x_i - c_t|^2)) over the rows before block b, as
    ``np.cumsum`` adds them (prefix[nblocks, t]: all rows), for the next draw.
    Those sums are sequential: the threads compute a group of blocks into a
    group buffer, whose rows this thread then adds in order (one float32 chain a
    candidate, eight candidates side by side: about 1.5 ms a million rows, the
    price of numpy's order)."""
    n, d = X.shape
    csq = sq_norms(cands)
    nblocks = (n + BLOCK - 1) // BLOCK
    L = prefix.shape[1]  # candidates' lanes, a multiple of 8
    group = max(1, min(SEED_GROUP, nblocks) if f32 else nblocks)
    # the group's float32 terms (float64: a placeholder, one float a block)
    gbuf = np.zeros((group, L, BLOCK) if f32 else (group, 1, 1), dtype=np.float32)
    runs = np.zeros(L, dtype=np.float32)
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        n_threads = _pool.threads_for(n_jobs, gn, gn * BLOCK * (cands.shape[0] + 1) * d * 3)
        _pool.run(lambda t, T: seed_blocks(X, xmean, sw, C, csqC, near, cl, prev, f32, cands,
                                           csq, block_tot, gbuf, g0, gn, t, T), n_threads)
        if f32:  # the group's rows in order
            prefix_rows(gbuf, g0, gn, n, prefix, runs)
    if f32:
        prefix[nblocks] = runs
    return column_totals(block_tot)


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
    return pick_uniform(n_samples, pval, u)


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


def kmeans_plusplus(X, n_clusters, random_state, sample_weight, xmean, n_local_trials=None,
                    n_jobs=None):
    """Greedy k-means++ drawing as scikit-learn's ``_kmeans_plusplus``.

    ``sample_weight``: None (unit weights) or an array; ``xmean``: the centring
    (zeros for the plain ``kmeans_plusplus``). Returns the chosen row indices,
    the centres (centred, float64) and a ``label_dtype`` buffer of n labels for
    Lloyd's algorithm to reuse. An in-memory X keeps each row's closest
    distance (8 bytes a row, 4 for float32 data); a file-backed one
    (``_file_backed``) keeps the index of its nearest centre instead (1 byte a
    row below 255 clusters) and recomputes the distance.

    float32 data draws as scikit-learn's float32 seeding: distances rounded to
    float32, the draw searched in their float32 running sums (``seeding_pass``
    leaves each candidate's sum before every block), the potentials compared in
    float32. ``n_jobs``: threads for the passes over X (``_pool.resolve_n_jobs``).
    """
    n_samples, d = X.shape
    dtype = work_dtype(X)
    f32 = dtype == np.float32
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
        cl = np.zeros(0, dtype=dtype)  # near[i] = 0: centre 0 is every row's nearest so far
    else:
        cl = np.full(n_samples, np.inf, dtype=dtype)  # centre 0 is folded in on the first pass
    nblocks = (n_samples + BLOCK - 1) // BLOCK
    # float32: each candidate's running sums before every block (lanes: a multiple of 8)
    prefix = np.zeros((nblocks + 1 if f32 else 0, 8 * ((n_local_trials + 7) // 8)),
                      dtype=np.float32)
    tot = np.empty((nblocks, 1))  # contiguous, as below: one compiled variant
    pots = seeding_pass(X, xmean, sw, C, csqC, near, cl, -1, f32, C[:1], tot, prefix,
                        n_jobs)
    current_pot = np.float32(pots[0]) if f32 else pots[0]
    tot = tot[:, 0]  # block sums of the distances to the nearest centre so far
    best = 0  # the prefix lane of the distances to the nearest centre so far
    block_tot = np.empty((nblocks, n_local_trials))
    candidate_ids = np.empty(n_local_trials, dtype=np.int64)
    for c in range(1, n_clusters):
        # the last centre not yet folded into cl / near
        prev = c - 1 if (c > 1 or cl.shape[0] > 0) else -1
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        if f32:
            prefix_search(X, xmean, sw, C, csqC, near, cl, prev, prefix, best, rand_vals,
                          candidate_ids)
        else:
            weighted_search(X, xmean, sw, C, csqC, near, cl, prev, tot, rand_vals, candidate_ids)
        cands = _centred_rows(X, candidate_ids, xmean)
        pots = seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, block_tot, prefix,
                            n_jobs)
        if f32:
            pots = pots.astype(np.float32)  # scikit-learn's float32 potentials
        best = int(np.argmin(pots))
        current_pot = pots[best]
        tot = np.ascontiguousarray(block_tot[:, best])
        indices[c] = candidate_ids[best]
        C[c] = cands[best]
        csqC[c] = sq_norms(cands[best:best + 1])[0]
    return indices, C, near


def lloyd_group(n_clusters, n_features):
    """Blocks a group of a Lloyd pass: a function of the shape only, up to
    LLOYD_MAX_GROUP, the group buffers capped at about LLOYD_GROUP_BYTES (the
    value the estimator's former ``group_size(K, d, 'full')`` gave)."""
    per_slot = (n_clusters * n_features * n_features + n_clusters * (n_features + 1) + 1) * 8
    return int(max(1, min(LLOYD_MAX_GROUP, LLOYD_GROUP_BYTES // per_slot)))


def lloyd_pass(X, xmean, sw, centers, csq, labels, first, update, group, sums, weights, counts,
               f32, n_jobs=None):
    """Assign each row to the nearest centre (scikit-learn's |c|^2 - 2 x.c, first
    minimum on ties; ``csq`` the centres' |c|^2), with ``update`` adding the
    weighted rows into ``sums`` and ``weights`` (float64); ``counts`` gets the
    rows a centre. ``f32``: float32 centres and ``csq``, assigned as
    ``_lloyd_kernels._assign32``. Returns how many labels changed (all of them
    on the ``first`` pass) and the sum of the rows' squared norms (centred: n
    times the data's total variance, for Lloyd's tolerance). The threads run
    ``group`` blocks at a time (``lloyd_blocks``), each block into its own slot;
    the slots are added in block order."""
    n, d = X.shape
    K = centers.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    sums[:] = 0.0
    weights[:] = 0.0
    counts[:] = 0
    g_sums = np.zeros((group, K, d))
    g_w = np.zeros((group, K))
    g_cnt = np.zeros((group, K), dtype=np.int64)
    g_changed = np.zeros(group, dtype=np.int64)
    g_sq = np.zeros(group)
    sq = np.zeros(1)
    changed = 0
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        n_threads = _pool.threads_for(n_jobs, gn, gn * BLOCK * K * d * 2)
        kernel = lloyd_kernel(f32)
        _pool.run(lambda t, T: kernel(X, xmean, sw, centers, csq, labels, first, update, g0, gn,
                                      g_sums, g_w, g_cnt, g_changed, g_sq, f32, t, T), n_threads)
        changed += add_lloyd_slots(gn, update, g_sums, g_w, g_cnt, g_changed, g_sq, sums,
                                   weights, counts, sq)
    return changed, float(sq[0])


def _relocate_empty_clusters(X, xmean, sw, centers_old, sums, weights, labels, n_jobs=None):
    """scikit-learn's ``_relocate_empty_clusters_dense``, on the weighted sums.
    Needs every row's distance to its centre (an n-sized array, only when a
    cluster went empty)."""
    empty_clusters = np.where(weights == 0)[0]
    n_empty = empty_clusters.shape[0]
    if n_empty == 0:
        return
    n, d = X.shape
    distances = np.empty(n)
    nblocks = (n + BLOCK - 1) // BLOCK
    _pool.run(lambda t, T: sq_dist_blocks(X, xmean, centers_old, labels, distances, t, T),
              _pool.threads_for(n_jobs, nblocks, n * d * 3))
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


def _einsum_sq_norms32(C):
    """``row_norms(C, squared=True)`` for float32 C, i.e. ``np.einsum('ij,ij->i', C,
    C)`` in the order numpy's x86-64 baseline (SSE) kernel adds: four lanes, lane
    l taking features l, l+4, ..., blocks of 16 added last-first, the tail padded
    with zeros, then (l0 + l1) + (l2 + l3)."""
    K, d = C.shape
    C = np.asarray(C, dtype=np.float32)
    lanes = [None] * 4

    def mac(a, acc):
        sq = C[:, a] * C[:, a] if a < d else np.zeros(K, np.float32)
        return sq if acc is None else sq + acc

    i = 0
    while d - i >= 16:
        for lane in range(4):
            for q in (3, 2, 1, 0):
                lanes[lane] = mac(i + 4 * q + lane, lanes[lane])
        i += 16
    while i < d:
        for lane in range(4):
            lanes[lane] = mac(i + lane, lanes[lane])
        i += 4
    lanes = [np.zeros(K, np.float32) if v is None else v for v in lanes]
    return np.float32(0.0) + ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))


def _centre_norms(centers, f32):
    """|c|^2 of the centres as scikit-learn's Lloyd takes them in the data's dtype."""
    return _einsum_sq_norms32(centers) if f32 else sq_norms(centers)


def tolerance32(X, xmean, tol):
    """scikit-learn's ``_tolerance`` for float32 X: ``np.mean(np.var(X, axis=0)) *
    tol`` in float32, from one sequential pass (``xmean``: ``column_mean(X)``)."""
    if tol == 0:
        return np.float32(0.0)
    acc = _column_sums(X, xmean, True)
    var = np.zeros(X.shape[1], dtype=np.float32)
    np.true_divide(acc, np.intp(X.shape[0]), out=var, casting="unsafe")
    return np.mean(var) * tol


def _average32(sums, weights):
    """scikit-learn's ``_average_centers`` on float32 sums: each centre times
    float32(1.0 / weight). ``sums`` and ``weights`` are float64 (fixed-order sums
    of the rows), rounded to float32 once; an empty centre keeps its sums."""
    centers = sums.astype(np.float32)
    w32 = weights.astype(np.float32)
    nz = w32 > 0
    alpha = (1.0 / w32[nz].astype(np.float64)).astype(np.float32)
    centers[nz] *= alpha[:, None]
    return centers


def _center_shift_tot(old, new):
    """``(center_shift ** 2).sum()`` in the centres' dtype, each centre's shift as
    scikit-learn's ``_euclidean_dense_dense`` sums it (four features at a time,
    added left to right) and takes its square root."""
    K, d = new.shape
    diff = new - old
    p = diff * diff
    res = np.zeros(K, dtype=new.dtype)
    q = d - d % 4
    for a in range(0, q, 4):
        res = res + (((p[:, a] + p[:, a + 1]) + p[:, a + 2]) + p[:, a + 3])
    for a in range(q, d):
        res = res + p[:, a]
    return (np.sqrt(res) ** 2).sum()


def lloyd(X, xmean, sw, centers, tol, group, labels=None, max_iter=LLOYD_MAX_ITER,
          n_jobs=None):
    """Lloyd's algorithm as scikit-learn's ``_kmeans_single_lloyd`` runs it: stop when
    no label changes, or when the squared centre shift is <= tol times the data's
    mean variance (``KMeans``' ``tol``; the variance comes from the first pass,
    which reads every row anyway; float32 data: ``tolerance32``), then (in the
    latter case) a last assignment. ``centers`` are in coordinates centred on
    xmean; ``sw`` empty means unit weights; ``labels`` a buffer to reuse.
    float32 X keeps float32 centres, updated and compared as scikit-learn's
    float32 Lloyd does (``_assign32``, ``_average32``, ``_center_shift_tot``).
    ``n_jobs``: threads for the passes. Returns (labels, centers (float64 or,
    for float32 X, float32), rows per cluster)."""
    n, d = X.shape
    K = centers.shape[0]
    f32 = work_dtype(X) == np.float32
    if labels is None:
        labels = np.zeros(n, dtype=label_dtype(K))
    if f32:
        centers = np.ascontiguousarray(centers, dtype=np.float32)
        tol = tolerance32(X, xmean, tol)
    sums = np.zeros((K, d))
    weights = np.zeros(K)
    counts = np.zeros(K, dtype=np.int64)
    strict_convergence = False
    for it in range(max_iter):
        csq = _centre_norms(centers, f32)
        changed, sq = lloyd_pass(X, xmean, sw, centers, csq, labels, it == 0, True, group, sums,
                                 weights, counts, f32, n_jobs)
        if it == 0 and not f32:
            tol = tol * sq / (n * d)  # np.mean(np.var(X, axis=0)) * tol
        _relocate_empty_clusters(X, xmean, sw, centers, sums, weights, labels, n_jobs)
        if f32:
            new_centers = _average32(sums, weights)
            shift_tot = _center_shift_tot(centers, new_centers)
        else:
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
        csq = _centre_norms(centers, f32)
        lloyd_pass(X, xmean, sw, centers, csq, labels, False, False, group, sums, weights, counts,
                   f32, n_jobs)
    return labels, centers, counts


def _weights(X, sample_weight):
    """The float64 weights the passes read (empty: unit) and the draw's weights
    (None: unit), both in the data dtype's precision as scikit-learn's."""
    if sample_weight is None:
        return np.zeros(0), None
    dtype = work_dtype(X)
    sw_draw = np.asarray(sample_weight, dtype=dtype)
    return np.asarray(sw_draw, dtype=np.float64), sw_draw


def kmeans_labels(X, n_clusters, random_state, sample_weight=None, n_jobs=None):
    """``KMeans(n_clusters, n_init=1, random_state=random_state).fit(X,
    sample_weight=sample_weight)``, its passes on ``n_jobs`` threads (the same
    bits for any number). Returns its labels_ (``label_dtype``), its centres
    (float64) and the rows a cluster."""
    n, d = X.shape
    sw, sw_draw = _weights(X, sample_weight)
    group = lloyd_group(n_clusters, d)
    xmean = column_mean(X)
    _, centers, near = kmeans_plusplus(X, n_clusters, random_state, sw_draw, xmean,
                                      n_jobs=n_jobs)
    labels, centers, counts = lloyd(X, xmean, sw, centers, LLOYD_TOL, group, labels=near,
                                    n_jobs=n_jobs)
    distinct_clusters = int(np.count_nonzero(counts))
    if distinct_clusters < n_clusters:
        warnings.warn(
            "Number of distinct clusters ({}) found smaller than "
            "n_clusters ({}). Possibly due to duplicate points "
            "in X.".format(distinct_clusters, n_clusters),
            ConvergenceWarning,
            stacklevel=2,
        )
    # scikit-learn adds the mean back in the data's dtype
    return labels, np.asarray(centers + xmean, dtype=np.float64), counts


def kmeans_plusplus_indices(X, n_clusters, random_state, sample_weight=None, n_jobs=None):
    """The rows ``sklearn.cluster.kmeans_plusplus(X, n_clusters, random_state=...,
    sample_weight=...)`` picks (uncentred data, as GaussianMixture calls it), its
    passes on ``n_jobs`` threads."""
    _, sw_draw = _weights(X, sample_weight)
    xmean = np.zeros(X.shape[1], dtype=work_dtype(X))  # uncentred
    idx, _, _ = kmeans_plusplus(X, n_clusters, random_state, sw_draw, xmean, n_jobs=n_jobs)
    return idx


def rows_from_data(random_state, n_samples, n_components):
    """``random_state.choice(n_samples, n_components, replace=False)``: numpy's legacy
    generator shuffles all n indices and keeps the first ones; the same shuffle of
    4-byte indices draws the same rows with half its memory. On a RandomState over
    numpy's MT19937 the shuffle is compiled (``_kmeans_kernels.mt_shuffle``, on the
    generator's own state, under its lock): 10k rows 123 -> 82 us, 1M rows 10.5 ->
    7.9 ms; with the words tempered 624 at a time, 42 -> 26 us and 7.8 -> 5.7 ms."""
    dt = np.uint32 if n_samples <= np.iinfo(np.uint32).max else np.int64
    idx = np.arange(n_samples, dtype=dt)
    state = _mt19937_words(random_state) if n_samples - 1 <= 0xFFFFFFFF else None
    if state is None:
        random_state.shuffle(idx)
    else:
        with random_state._bit_generator.lock:
            mt_shuffle(state, idx)
    return idx[:n_components].astype(np.int64)


def _mt19937_words(random_state):
    """The 625 words of the MT19937 state under a numpy ``RandomState`` (the key,
    then the position: numpy's ``mt19937_state`` struct) as a uint32 array on that
    memory; None for any other generator. Uses the RandomState's private
    ``_bit_generator`` (numpy 1.17 to 2.x) and the bit generator's public
    ``ctypes.state_address``."""
    import ctypes

    bg = getattr(random_state, "_bit_generator", None)
    if type(random_state) is not np.random.RandomState or type(bg) is not np.random.MT19937:
        return None
    return np.ctypeslib.as_array((ctypes.c_uint32 * 625).from_address(bg.ctypes.state_address))


def labels_of_rows(n_samples, indices):
    """Labels 0..K-1 on the given rows, 'none' (the dtype's maximum) elsewhere."""
    dt = label_dtype(len(indices))
    labels = np.full(n_samples, np.iinfo(dt).max, dtype=dt)
    labels[indices] = np.arange(len(indices))
    return labels
