"""Numba kernels of the k-means start (the Python drivers are in ``_kmeans``).

All serial: the passes over X are ``*_blocks`` kernels that a driver runs on
fastgmm's threads (``_pool``), thread t taking its share ``block_range(t, gn,
T)`` of a group of blocks. Each block writes only its own slots (a row of
``block_tot``, a slot of the group buffers, its rows of ``labels``), and the
driver adds the slots in block order (``column_totals``, ``prefix_rows``, and
``_lloyd_kernels.add_lloyd_slots``): no result depends on the thread count.
Lloyd's own kernels are in ``_lloyd_kernels``.
"""

import numpy as np

from ._numba import BLOCK, block_range, jit, jit_exact, jit_exact_inner, jit_inner, wide_vectors


# --- sequential column sums (the centring mean and the float32 variance) ---


@jit_exact
def sequential_sums(X, m, sq, acc):
    """acc[a] += X[i, a] (``sq``: (X[i, a] - m[a])**2) row after row, in acc's
    dtype: numpy's order for ``X.sum(axis=0)`` and for ``np.var(X, axis=0)``'s sum
    of squares on a C-ordered array of more than one column, and its dtype."""
    wide_vectors()
    n, d = X.shape
    for i in range(n):
        for a in range(d):
            if sq:
                v = X[i, a] - m[a]
                acc[a] += v * v
            else:
                acc[a] += X[i, a]


@jit_exact_inner
def _col0_term(X, m, zero, sq, i):
    wide_vectors()
    v = zero + X[i, 0]
    if sq:
        v = (v - m) * (v - m)
    return v


@jit_exact
def pairwise_col0(X, m, zero, sq, lo, n):
    """numpy's pairwise_sum of X[lo:lo + n, 0] (``sq``: of (x - m)**2) in zero's
    dtype: eight accumulators on blocks of up to 128, halves above. One column
    of a C-ordered array is contiguous, and numpy sums it so, not row by row."""
    wide_vectors()
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
    return pairwise_col0(X, m, zero, sq, lo, n2) + pairwise_col0(X, m, zero, sq, lo + n2, n - n2)


# --- distances of a block of rows ---


@jit()
def sq_norms(A):
    """Squared norm of each row of A: the centres' |c|^2, one loop for every
    caller so that a centre's norm has the same bits as candidate and as centre."""
    wide_vectors()
    out = np.zeros(A.shape[0])
    for k in range(A.shape[0]):
        for a in range(A.shape[1]):
            out[k] += A[k, a] * A[k, a]
    return out


@jit_inner()
def _load_centred(X, start, stop, xmean, XT, xsq):
    """Rows [start, stop) of X minus xmean, transposed into XT (d, B) in XT's
    dtype, and their squared norms: the loops below then run over contiguous rows."""
    wide_vectors()
    d = X.shape[1]
    B = stop - start
    # eight rows at a time, a feature at a time (``_estep.load_block``'s loop,
    # copied: this file's cached kernels are checked against this file alone, so a
    # helper from another file would go stale on its edit): XT's rows are 2 KiB
    # apart, and one column written a row at a time missed the cache on every store
    # (5x slower at d = 64: the k-means on digits ran at a fifth of scikit-learn's
    # speed); eight rows make one vector store a feature
    i0 = 0
    while i0 + 8 <= B:
        for a in range(d):
            m = xmean[a]
            for i in range(8):
                XT[a, i0 + i] = X[start + i0 + i, a] - m
        i0 += 8
    for i in range(i0, B):
        for a in range(d):
            XT[a, i] = X[start + i, a] - xmean[a]
    for i in range(B):
        xsq[i] = 0.0
    for a in range(d):
        for i in range(B):
            xsq[i] += XT[a, i] * XT[a, i]


@jit_inner()
def _dots(XT, B, c, out):
    """out[i] = x_i . c over the block, four features a sweep (fewer loads and
    stores of ``out`` than one feature a sweep)."""
    wide_vectors()
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


@jit_inner()
def _sq_dist(XT, B, c, csq, xsq, out):
    """scikit-learn's squared distance (-2 x.c + |c|^2) + |x|^2, clipped at 0."""
    wide_vectors()
    _dots(XT, B, c, out)
    for i in range(B):
        out[i] = max(-2.0 * out[i] + csq + xsq[i], 0.0)


@jit_inner()
def _round32(out, B):
    """Round out[:B] to float32 (scikit-learn stores its float64 distances so)."""
    wide_vectors()
    for i in range(B):
        out[i] = np.float32(out[i])


@jit_inner()
def _dots_gather(XT, B, C, near, start, out):
    """out[i] = x_i . C[near[start + i]], features grouped as in ``_dots`` (the same
    bits as ``_sq_dist`` gives for that centre); rows innermost: a gather from C
    that vectorises."""
    wide_vectors()
    d = XT.shape[0]
    r = d % 4
    for i in range(B):
        out[i] = 0.0
    for a in range(r):
        for i in range(B):
            out[i] += XT[a, i] * C[near[start + i], a]
    for a in range(r, d, 4):
        for i in range(B):
            k = near[start + i]
            out[i] += ((XT[a, i] * C[k, a] + XT[a + 1, i] * C[k, a + 1])
                       + (XT[a + 2, i] * C[k, a + 2] + XT[a + 3, i] * C[k, a + 3]))


@jit_inner()
def _block_closest(XT, B, C, csqC, near, cl, start, prev, fold, f32, xsq, out, tmp):
    """out[i]: the squared distance of row i to its nearest chosen centre (rounded
    to float32 with ``f32``), folding in centre ``prev`` if prev >= 0 (and, with
    ``fold``, keeping the result). Two ways to know the nearest centre so far:
    ``cl`` non-empty holds each row's distance to it (no gather); empty ``cl``:
    ``near`` holds its index and the distance is recomputed (a gather from C;
    1 byte a row, for data read from disk)."""
    wide_vectors()
    if cl.shape[0] > 0:
        for i in range(B):
            out[i] = cl[start + i]
        if prev >= 0:
            _sq_dist(XT, B, C[prev], csqC[prev], xsq, tmp)
            if f32:
                _round32(tmp, B)
            for i in range(B):  # branch-free: vectorises
                out[i] = min(out[i], tmp[i])
            if fold:
                for i in range(B):
                    cl[start + i] = out[i]
        return
    _dots_gather(XT, B, C, near, start, out)
    for i in range(B):
        out[i] = max(-2.0 * out[i] + csqC[near[start + i]] + xsq[i], 0.0)
    if f32:
        _round32(out, B)
    if prev >= 0:
        _sq_dist(XT, B, C[prev], csqC[prev], xsq, tmp)
        if f32:
            _round32(tmp, B)
        for i in range(B):
            if tmp[i] < out[i]:
                out[i] = tmp[i]
                if fold:
                    near[start + i] = prev


# --- k-means++ ---


@jit_inner()
def _seed_block(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, csq, block_tot, gb, b):
    """Block b of a seeding pass: its candidates' block sums, and with ``f32``
    their float32 terms into gb[t, :B]."""
    wide_vectors()
    n, d = X.shape
    start = b * BLOCK
    stop = min(n, start + BLOCK)
    B = stop - start
    unit = sw.shape[0] == 0
    # separate arrays: views of one would keep LLVM from vectorising (aliasing)
    XT, xsq, closest, tmp = np.empty((d, B)), np.empty(B), np.empty(B), np.empty(B)
    _load_centred(X, start, stop, xmean, XT, xsq)
    # fold = B > 0, True for every block: a run-time boolean (a literal True or
    # False would compile _block_closest once more for each caller)
    _block_closest(XT, B, C, csqC, near, cl, start, prev, B > 0, f32, xsq, closest, tmp)
    for t in range(cands.shape[0]):
        # _sq_dist here and for the fold next round: the chosen candidate's
        # distances have the same bits as its block sums
        _sq_dist(XT, B, cands[t], csq[t], xsq, tmp)
        if f32:
            _round32(tmp, B)
        for i in range(B):
            tmp[i] = min(closest[i], tmp[i])
        if not unit:
            for i in range(B):
                tmp[i] *= sw[start + i]  # exact: float32 weights and distances
        acc = 0.0
        for i in range(B):
            acc += tmp[i]
        block_tot[b, t] = acc
        if f32:
            for i in range(B):
                gb[t, i] = tmp[i]


@jit()
def seed_blocks(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, csq, block_tot, gbuf, g0, gn,
                t, T):
    """Thread t of T in a seeding pass: ``_seed_block`` for its share of blocks
    g0 .. g0 + gn - 1, block g0 + j writing block_tot[g0 + j] and gbuf[j]."""
    wide_vectors()
    lo, hi = block_range(t, gn, T)
    for j in range(lo, hi):
        _seed_block(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, csq, block_tot, gbuf[j],
                    g0 + j)


@jit_exact
def column_totals(A):
    """The column sums of A, its rows added in order (the potentials from the
    block sums)."""
    wide_vectors()
    out = np.zeros(A.shape[1])
    for b in range(A.shape[0]):
        for t in range(A.shape[1]):
            out[t] += A[b, t]
    return out


@jit_exact_inner
def _running_sums32(v, B, runs):
    """runs[t] += v[t, 0] + ... + v[t, B - 1], added one at a time in float32
    (np.cumsum's order), eight lanes t at a time held in registers."""
    wide_vectors()
    for t0 in range(0, runs.shape[0], 8):
        r0, r1, r2, r3 = runs[t0], runs[t0 + 1], runs[t0 + 2], runs[t0 + 3]
        r4, r5, r6, r7 = runs[t0 + 4], runs[t0 + 5], runs[t0 + 6], runs[t0 + 7]
        for i in range(B):
            r0 = np.float32(r0 + v[t0, i])
            r1 = np.float32(r1 + v[t0 + 1, i])
            r2 = np.float32(r2 + v[t0 + 2, i])
            r3 = np.float32(r3 + v[t0 + 3, i])
            r4 = np.float32(r4 + v[t0 + 4, i])
            r5 = np.float32(r5 + v[t0 + 5, i])
            r6 = np.float32(r6 + v[t0 + 6, i])
            r7 = np.float32(r7 + v[t0 + 7, i])
        runs[t0], runs[t0 + 1], runs[t0 + 2], runs[t0 + 3] = r0, r1, r2, r3
        runs[t0 + 4], runs[t0 + 5], runs[t0 + 6], runs[t0 + 7] = r4, r5, r6, r7


@jit_exact
def prefix_rows(gb, b0, gn, n, prefix, runs):
    """prefix[b0 + j] = runs, then the rows of block b0 + j added to runs, for
    the gn blocks of a group buffer, in order."""
    wide_vectors()
    for j in range(gn):
        start = (b0 + j) * BLOCK
        prefix[b0 + j] = runs
        _running_sums32(gb[j], min(n, start + BLOCK) - start, runs)


@jit()
def weighted_search(X, xmean, sw, C, csqC, near, cl, prev, tot, rand_vals, out):
    """out[j] = first i with cumsum(sw * closest)[i] >= rand_vals[j] (numpy's
    searchsorted, side 'left'), found from the block sums ``tot`` and a scan of
    one block, its distances recomputed; n - 1 where rounding leaves the value
    past the end (scikit-learn clips). float64 data; float32 data searches its
    float32 running sums (``prefix_search``)."""
    wide_vectors()
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
            # whole buffers (B is passed): the same argument types as the seeding
            # pass, so the helpers compile once for both
            XT, xsq, closest, tmp = XT_, xsq_, cl_, tmp_
            _load_centred(X, start, stop, xmean, XT, xsq)
            # no fold, float64: run-time False (B < 0), see _seed_block
            _block_closest(XT, B, C, csqC, near, cl, start, prev, B < 0, B < 0, xsq, closest,
                           tmp)
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


@jit_exact_inner
def _first_reach32(v, B, run, r):
    """The first i whose float32 running sum from ``run`` is >= r, else B - 1."""
    wide_vectors()
    for i in range(B):
        run = np.float32(run + v[i])
        if run >= r:
            return i
    return B - 1


@jit()
def prefix_search(X, xmean, sw, C, csqC, near, cl, prev, prefix, lane, rand_vals, out):
    """float32 data: out[j] = first i with cumsum[i] >= rand_vals[j] (numpy's
    searchsorted, side 'left'), cumsum the float32 running sums of the distances
    to the nearest centre (centre ``prev`` folded in), whose value before each
    block the seeding pass left in prefix[:, lane]: the first block whose running
    sum reaches the value, then a float32 scan of that block from its prefix,
    its distances recomputed; n - 1 past the end (scikit-learn clips)."""
    wide_vectors()
    n, d = X.shape
    nblocks = prefix.shape[0] - 1
    unit = sw.shape[0] == 0
    XT_, xsq_, cl_, tmp_ = np.empty((d, BLOCK)), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK)
    v_ = np.empty(BLOCK, dtype=np.float32)
    for j in range(rand_vals.shape[0]):
        r = rand_vals[j]
        res = n - 1
        if prefix[nblocks, lane] >= r:
            lo, hi = 0, nblocks - 1  # the first b with prefix[b + 1] >= r
            while lo < hi:
                mid = (lo + hi) // 2
                if prefix[mid + 1, lane] >= r:
                    hi = mid
                else:
                    lo = mid + 1
            start = lo * BLOCK
            stop = min(n, start + BLOCK)
            B = stop - start
            XT, xsq, closest, tmp, v = XT_, xsq_, cl_, tmp_, v_  # whole buffers, as above
            _load_centred(X, start, stop, xmean, XT, xsq)
            # no fold, float32: run-time booleans, see _seed_block
            _block_closest(XT, B, C, csqC, near, cl, start, prev, B < 0, B > 0, xsq, closest,
                           tmp)
            for i in range(B):
                v[i] = closest[i] if unit else closest[i] * sw[start + i]
            res = start + _first_reach32(v, B, prefix[lo, lane], r)
        out[j] = res


@jit()
def pick_uniform(n, pval, u):
    """numpy's ``choice(n, p)`` for p = pval everywhere, after its draw u: the
    first i with cumsum(p)[i] / cumsum(p)[-1] > u (sequential sums, as numpy's)."""
    wide_vectors()
    last = 0.0
    for i in range(n):
        last += pval
    s = 0.0
    for i in range(n):
        s += pval
        if s / last > u:
            return i
    return n - 1


# --- numpy's legacy shuffle, on the generator's own state ---
# MT19937 (numpy/random/src/mt19937/mt19937.c) and the legacy RandomState.shuffle
# (mtrand.pyx: for i = n - 1 .. 1, j = random_interval(i), swap; random_interval
# draws 32-bit words masked to the smallest all-ones mask >= i until one is <= i)

_MT_N, _MT_M = 624, 397


@jit_inner()
def _mt_generate(key):
    """The next 624 words of MT19937's state (numpy's mt19937_gen), in its three
    runs (no index wraps inside a run, so that each vectorises)."""
    wide_vectors()
    for i in range(_MT_N - _MT_M):
        y = (np.int64(key[i]) & 0x80000000) | (np.int64(key[i + 1]) & 0x7FFFFFFF)
        key[i] = np.uint32(np.int64(key[i + _MT_M]) ^ (y >> 1) ^ ((y & 1) * 0x9908B0DF))
    for i in range(_MT_N - _MT_M, _MT_N - 1):
        y = (np.int64(key[i]) & 0x80000000) | (np.int64(key[i + 1]) & 0x7FFFFFFF)
        key[i] = np.uint32(np.int64(key[i + _MT_M - _MT_N]) ^ (y >> 1)
                           ^ ((y & 1) * 0x9908B0DF))
    y = (np.int64(key[_MT_N - 1]) & 0x80000000) | (np.int64(key[0]) & 0x7FFFFFFF)
    key[_MT_N - 1] = np.uint32(np.int64(key[_MT_M - 1]) ^ (y >> 1) ^ ((y & 1) * 0x9908B0DF))


@jit_inner()
def _mt_temper(key, out):
    """out[i] = MT19937's output for state word key[i] (its tempering)."""
    wide_vectors()
    for i in range(_MT_N):
        y = np.int64(key[i])
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out[i] = y


@jit()
def mt_shuffle(state, idx):
    """numpy's legacy ``RandomState.shuffle(idx)`` for a 1-d array of fewer than
    2**32 + 1 entries, drawing from ``state``: the generator's MT19937 state itself
    (625 words: the key, then the position), advanced as numpy advances it. The
    state's words are tempered 624 at a time (one vectorised loop), then drawn."""
    wide_vectors()
    key = state[:_MT_N]
    pos = np.int64(state[_MT_N])
    words = np.empty(_MT_N, dtype=np.int64)
    _mt_temper(key, words)
    for i in range(idx.shape[0] - 1, 0, -1):
        mask = np.int64(i)
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while True:
            if pos == _MT_N:
                _mt_generate(key)
                _mt_temper(key, words)
                pos = 0
            j = words[pos] & mask
            pos += 1
            if j <= i:
                break
        t = idx[i]
        idx[i] = idx[j]
        idx[j] = t
    state[_MT_N] = np.uint32(pos)
