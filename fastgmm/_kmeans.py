"""Numba k-means for the 'kmeans' and 'k-means++' starts.

Draws from ``random_state`` exactly as scikit-learn's ``kmeans_plusplus`` and
``KMeans(n_init=1)`` do, and follows their arithmetic (squared distances as
``|x|^2 - 2 x.c + |c|^2``, data centred on its mean for ``KMeans``, Lloyd's
stopping rule, empty-cluster relocation), so that the same seed picks the same
rows and Lloyd's algorithm reaches the same labels. Every pass is parallel over
fixed row blocks with per-block slots added in a fixed order: results do not
depend on the thread count.
"""

import warnings

import numpy as np
from numba import prange
from sklearn.exceptions import ConvergenceWarning

from ._kernels import BLOCK, group_size, jit

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4


@jit()
def _load_centred(X, start, stop, xmean, XT):
    for i in range(stop - start):
        for a in range(X.shape[1]):
            XT[a, i] = X[start + i, a] - xmean[a]


@jit(parallel=True)
def column_mean_var(X, group):
    """Per-feature mean and (population) variance, two passes, block-ordered sums."""
    n, d = X.shape
    nblocks = (n + BLOCK - 1) // BLOCK
    mean = np.zeros(d)
    var = np.zeros(d)
    buf = np.empty((group, d))
    for step in range(2):
        for g0 in range(0, nblocks, group):
            gn = min(group, nblocks - g0)
            for j in prange(gn):
                start = (g0 + j) * BLOCK
                stop = min(n, start + BLOCK)
                for a in range(d):
                    acc = 0.0
                    if step == 0:
                        for i in range(start, stop):
                            acc += X[i, a]
                    else:
                        m = mean[a]
                        for i in range(start, stop):
                            v = X[i, a] - m
                            acc += v * v
                    buf[j, a] = acc
            for j in range(gn):
                for a in range(d):
                    if step == 0:
                        var[a] += buf[j, a]  # the sum, for now
                    else:
                        var[a] += buf[j, a]
        if step == 0:
            for a in range(d):
                mean[a] = var[a] / n
                var[a] = 0.0
    for a in range(d):
        var[a] /= n
    return mean, var


def row_sq_norms(X, xmean, out):
    """out[i] = |x_i - xmean|^2 (the distance to a single zero centre)."""
    sq_dist_to_assigned(X, xmean, np.zeros((1, X.shape[1])), np.zeros(0, dtype=np.int64), out)


@jit(parallel=True)
def seeding_pass(X, xmean, xsq, closest, sw, cands, out_min, block_tot):
    """One pass for a round of greedy k-means++: for each candidate centre t,
    out_min[t, i] = min(closest_i, |x_i - c_t|^2), its per-block weighted sums
    block_tot[b, t], and the potentials sum_i sw_i out_min[t, i] (returned).

    The squared distance is scikit-learn's ``(-2 x.c + |c|^2) + |x|^2``, clipped
    at 0, with x centred on ``xmean``. The chosen candidate's row of out_min
    becomes the next ``closest`` and its block sums drive the next draw, so each
    round reads X once.
    """
    n, d = X.shape
    T = cands.shape[0]
    csq = np.zeros(T)
    for t in range(T):
        for a in range(d):
            csq[t] += cands[t, a] * cands[t, a]
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        acc = np.zeros(T)
        x = np.empty(d)
        for i in range(start, stop):
            for a in range(d):
                x[a] = X[i, a] - xmean[a]
            c_i = closest[i]
            w = sw[i]
            for t in range(T):
                dot = 0.0
                for a in range(d):
                    dot += x[a] * cands[t, a]
                m = min(c_i, max(-2.0 * dot + csq[t] + xsq[i], 0.0))
                out_min[t, i] = m
                acc[t] += w * m
        for t in range(T):
            block_tot[b, t] = acc[t]
    pots = np.zeros(T)
    for b in range(nblocks):
        for t in range(T):
            pots[t] += block_tot[b, t]
    return pots


@jit()
def weighted_search(block_tot, t, sw, closest, rand_vals, out):
    """out[j] = first i with cumsum(sw * closest)[i] >= rand_vals[j] (numpy's
    searchsorted, side 'left'), found from the block sums and one block's scan;
    n - 1 where rounding leaves the value past the end (scikit-learn clips)."""
    n = closest.shape[0]
    nblocks = block_tot.shape[0]
    for j in range(rand_vals.shape[0]):
        r = rand_vals[j]
        cum = 0.0
        res = n - 1
        for b in range(nblocks):
            if cum + block_tot[b, t] >= r:
                start = b * BLOCK
                stop = min(n, start + BLOCK)
                found = False
                for i in range(start, stop):
                    cum += sw[i] * closest[i]
                    if cum >= r:
                        res = i
                        found = True
                        break
                if found:
                    break
            else:
                cum += block_tot[b, t]
        out[j] = res


def _rows(X, ids, xmean):
    return np.ascontiguousarray(np.asarray(X[np.asarray(ids)], dtype=np.float64) - xmean)


def kmeans_plusplus_indices(X, n_clusters, random_state, sample_weight, xmean, xsq,
                            n_local_trials=None):
    """Rows chosen by greedy k-means++, drawing as scikit-learn's ``_kmeans_plusplus``."""
    n_samples, d = X.shape
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    center_id = random_state.choice(n_samples, p=sample_weight / sample_weight.sum())
    sw = np.ascontiguousarray(sample_weight, dtype=np.float64)
    indices = np.full(n_clusters, -1, dtype=np.int64)
    indices[0] = center_id
    nblocks = (n_samples + BLOCK - 1) // BLOCK
    out_min = np.empty((n_local_trials, n_samples))
    block_tot = np.empty((nblocks, n_local_trials))
    closest = np.full(n_samples, np.inf)
    pots = seeding_pass(X, xmean, xsq, closest, sw, _rows(X, [center_id], xmean),
                        out_min[:1], block_tot[:, :1])
    best = 0
    current_pot = pots[0]
    candidate_ids = np.empty(n_local_trials, dtype=np.int64)
    for c in range(1, n_clusters):
        closest[:] = out_min[best]
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        weighted_search(np.ascontiguousarray(block_tot[:, best:best + 1]), 0, sw, closest,
                        rand_vals, candidate_ids)
        pots = seeding_pass(X, xmean, xsq, closest, sw, _rows(X, candidate_ids, xmean),
                            out_min, block_tot)
        best = int(np.argmin(pots))
        current_pot = pots[best]
        indices[c] = candidate_ids[best]
    return indices


@jit(parallel=True)
def lloyd_pass(X, xmean, sw, centers, labels, update, group, sums, weights):
    """Assign each row to the nearest centre (scikit-learn's |c|^2 - 2 x.c, first
    minimum on ties) and, with ``update``, add the weighted rows into ``sums`` and
    ``weights`` (zeroed here). Returns how many labels changed."""
    n, d = X.shape
    K = centers.shape[0]
    csq = np.zeros(K)
    for k in range(K):
        for a in range(d):
            csq[k] += centers[k, a] * centers[k, a]
    nblocks = (n + BLOCK - 1) // BLOCK
    sums[:] = 0.0
    weights[:] = 0.0
    g_sums = np.empty((group, K, d))
    g_w = np.empty((group, K))
    g_changed = np.zeros(group, dtype=np.int64)
    changed = 0
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        for j in prange(gn):
            start = (g0 + j) * BLOCK
            stop = min(n, start + BLOCK)
            B = stop - start
            XT = np.empty((d, B))
            dot = np.empty(B)
            best = np.empty(B)
            lab = np.empty(B, dtype=np.int64)
            _load_centred(X, start, stop, xmean, XT)
            for i in range(B):
                best[i] = np.inf
                lab[i] = 0
            for k in range(K):
                for i in range(B):
                    dot[i] = 0.0
                for a in range(d):
                    c = centers[k, a]
                    for i in range(B):
                        dot[i] += XT[a, i] * c
                for i in range(B):
                    dist = csq[k] - 2.0 * dot[i]
                    if dist < best[i]:
                        best[i] = dist
                        lab[i] = k
            nchg = 0
            for i in range(B):
                if labels[start + i] != lab[i]:
                    nchg += 1
                labels[start + i] = lab[i]
            g_changed[j] = nchg
            if update:
                g_sums[j] = 0.0
                g_w[j] = 0.0
                for i in range(B):
                    k = lab[i]
                    w = sw[start + i]
                    g_w[j, k] += w
                    for a in range(d):
                        g_sums[j, k, a] += XT[a, i] * w
        for j in range(gn):
            changed += g_changed[j]
            if update:
                for k in range(K):
                    weights[k] += g_w[j, k]
                    for a in range(d):
                        sums[k, a] += g_sums[j, k, a]
    return changed


@jit(parallel=True)
def sq_dist_to_assigned(X, xmean, centers, labels, out):
    """out[i] = |x_i - xmean - centers[labels[i]]|^2; empty labels: centre 0."""
    n, d = X.shape
    one = labels.shape[0] == 0
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in prange(nblocks):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        for i in range(start, stop):
            acc = 0.0
            k = 0 if one else labels[i]
            for a in range(d):
                v = X[i, a] - xmean[a] - centers[k, a]
                acc += v * v
            out[i] = acc


def _relocate_empty_clusters(X, xmean, sw, centers_old, sums, weights, labels):
    """scikit-learn's ``_relocate_empty_clusters_dense``, on the weighted sums."""
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
        weight = sw[far_idx]
        old_cluster_id = labels[far_idx]
        x = np.asarray(X[far_idx], dtype=np.float64) - xmean
        sums[old_cluster_id] -= x * weight
        sums[new_cluster_id] = x * weight
        weights[new_cluster_id] = weight
        weights[old_cluster_id] -= weight


def lloyd(X, xmean, sw, centers, tol, group, max_iter=LLOYD_MAX_ITER):
    """Lloyd's algorithm as scikit-learn's ``_kmeans_single_lloyd`` runs it: stop when
    no label changes, or when the squared centre shift is <= tol, then (in the
    latter case) a last assignment. ``centers`` are in coordinates centred on xmean.
    Returns (labels, centers)."""
    n, d = X.shape
    K = centers.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    sums = np.zeros((K, d))
    weights = np.zeros(K)
    strict_convergence = False
    for _ in range(max_iter):
        changed = lloyd_pass(X, xmean, sw, centers, labels, True, group, sums, weights)
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
        lloyd_pass(X, xmean, sw, centers, labels, False, group, sums, weights)
    return labels, centers


def kmeans_labels(X, n_clusters, random_state, sample_weight=None):
    """Labels of ``KMeans(n_clusters, n_init=1, random_state=random_state).fit(X,
    sample_weight=sample_weight).labels_``, computed by the kernels above."""
    n, d = X.shape
    dtype = np.float32 if X.dtype == np.float32 else np.float64  # scikit-learn's X dtype
    sw_draw = (np.ones(n, dtype=dtype) if sample_weight is None
               else np.asarray(sample_weight, dtype=dtype))
    sw = np.asarray(sw_draw, dtype=np.float64)
    group = group_size(n_clusters, d, 0)
    xmean, var = column_mean_var(X, group)
    tol = float(np.mean(var) * LLOYD_TOL)
    xsq = np.empty(n)
    row_sq_norms(X, xmean, xsq)
    idx = kmeans_plusplus_indices(X, n_clusters, random_state, sw_draw, xmean, xsq)
    centers = np.ascontiguousarray(np.asarray(X[idx], dtype=np.float64) - xmean)

    labels, _ = lloyd(X, xmean, sw, centers, tol, group)
    distinct_clusters = len(np.unique(labels))
    if distinct_clusters < n_clusters:
        warnings.warn(
            "Number of distinct clusters ({}) found smaller than "
            "n_clusters ({}). Possibly due to duplicate points "
            "in X.".format(distinct_clusters, n_clusters),
            ConvergenceWarning,
            stacklevel=2,
        )
    return labels


def kmeans_plusplus_labels(X, n_clusters, random_state, sample_weight=None):
    """The rows ``sklearn.cluster.kmeans_plusplus(X, n_clusters, random_state=...)``
    picks (uncentred data, as GaussianMixture calls it), as -1/k labels."""
    n, d = X.shape
    dtype = np.float32 if X.dtype == np.float32 else np.float64  # scikit-learn's X dtype
    sw_draw = (np.ones(n, dtype=dtype) if sample_weight is None
               else np.asarray(sample_weight, dtype=dtype))
    xmean = np.zeros(d)
    xsq = np.empty(n)
    row_sq_norms(X, xmean, xsq)
    idx = kmeans_plusplus_indices(X, n_clusters, random_state, sw_draw, xmean, xsq)
    labels = np.full(n, -1, dtype=np.int64)
    labels[idx] = np.arange(n_clusters)
    return labels
