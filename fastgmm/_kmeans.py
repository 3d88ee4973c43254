"""Numba k-means for the 'kmeans' and 'k-means++' starts.

Draws from ``random_state`` exactly as scikit-learn's ``kmeans_plusplus`` and
``KMeans(n_init=1)`` do, and follows their arithmetic (squared distances as
``|x|^2 - 2 x.c + |c|^2``, data centred on its mean for ``KMeans``, Lloyd's
stopping rule, empty-cluster relocation), so that the same seed picks the same
rows and Lloyd's algorithm reaches the same labels. Every pass is parallel over
fixed row blocks with per-block slots added in a fixed order: results do not
depend on the thread count.

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

import mmap
import warnings

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic
from sklearn.exceptions import ConvergenceWarning

from ._kernels import BLOCK, group_size, jit, work_dtype

LLOYD_MAX_ITER = 300
LLOYD_TOL = 1e-4
# blocks a group of the float32 seeding pass (its buffer: SEED_GROUP x BLOCK x 8
# candidates' float32 distances, 2 MiB), whose rows are then added in order
SEED_GROUP = 256


def _seq(func):
    """No fastmath: sums whose order is scikit-learn's (row after row, in float32).
    ``fastmath=False`` is spelt out: a kernel that leaves it unset inherits its
    caller's fastmath, whose 'reassoc' lets LLVM reorder (vectorise) the sum."""
    return njit(cache=True, nogil=True, error_model="numpy", fastmath=False)(func)


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c rounded once (``llvm.fma``), as OpenBLAS's sgemm kernel adds products."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        ty = context.get_value_type(sig.return_type)
        fnty = llvm_ir.FunctionType(ty, [ty, ty, ty])
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [ty], fnty), args)

    return a(a, b, c), codegen


def label_dtype(n_clusters):
    """The smallest unsigned type for labels 0..K-1; its maximum means 'no label'."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n_clusters < np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"n_clusters={n_clusters} is too large")


@_seq
def _sequential_sums(X, m, sq, acc):
    """acc[a] += X[i, a] (``sq``: (X[i, a] - m[a])**2) row after row, in acc's
    dtype: numpy's order for ``X.sum(axis=0)`` and for ``np.var(X, axis=0)``'s sum
    of squares on a C-ordered array of more than one column, and its dtype."""
    n, d = X.shape
    for i in range(n):
        for a in range(d):
            if sq:
                v = X[i, a] - m[a]
                acc[a] += v * v
            else:
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
    _sequential_sums(X, m, sq, acc)
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
def _round32(out, B):
    """Round out[:B] to float32 (scikit-learn stores its float64 distances so)."""
    for i in range(B):
        out[i] = np.float32(out[i])


@jit()
def _dots_gather(XT, B, C, near, start, out):
    """out[i] = x_i . C[near[start + i]], features grouped as in ``_dots`` (the same
    bits as ``_sq_dist`` gives for that centre); rows innermost: a gather from C
    that vectorises."""
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


@jit()
def _block_closest(XT, B, C, csqC, near, cl, start, prev, fold, f32, xsq, out, tmp):
    """out[i]: the squared distance of row i to its nearest chosen centre (rounded
    to float32 with ``f32``), folding in centre ``prev`` if prev >= 0 (and, with
    ``fold``, keeping the result). Two ways to know the nearest centre so far:
    ``cl`` non-empty holds each row's distance to it (no gather); empty ``cl``:
    ``near`` holds its index and the distance is recomputed (a gather from C;
    1 byte a row, for data read from disk)."""
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


@jit()
def _seed_block(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, csq, block_tot, gb, b):
    """Block b of ``seeding_pass``: its candidates' block sums, and with ``f32``
    their float32 terms into gb[t, :B]."""
    n, d = X.shape
    start = b * BLOCK
    stop = min(n, start + BLOCK)
    B = stop - start
    unit = sw.shape[0] == 0
    # separate arrays: views of one would keep LLVM from vectorising (aliasing)
    XT, xsq, closest, tmp = np.empty((d, B)), np.empty(B), np.empty(B), np.empty(B)
    _load_centred(X, start, stop, xmean, XT, xsq)
    _block_closest(XT, B, C, csqC, near, cl, start, prev, True, f32, xsq, closest, tmp)
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


@jit(parallel=True)
def seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, block_tot, prefix):
    """One read of X for a round of greedy k-means++. First folds centre ``prev``
    into each row's nearest centre; then, for each candidate t, block_tot[b, t] =
    sum over block b of sw_i min(closest_i, |x_i - c_t|^2), and returns the
    potentials (block sums added in order). The chosen candidate's column of
    block_tot drives the next draw. Empty ``sw``: unit weights; ``cl``, ``near``,
    ``f32``: as in ``_block_closest``.

    With ``f32`` it also fills prefix[b, t]: the float32 running sum of
    float32(sw_i min(closest_i, |x_i - c_t|^2)) over the rows before block b, as
    ``np.cumsum`` adds them (prefix[nblocks, t]: all rows), for the next draw.
    Those sums are sequential: blocks are computed in parallel a group at a time
    into a group buffer, whose rows one thread then adds in order (one float32
    chain a candidate, eight candidates side by side: about 1.5 ms a million
    rows, the price of numpy's order)."""
    n, d = X.shape
    T = cands.shape[0]
    csq = sq_norms(cands)
    nblocks = (n + BLOCK - 1) // BLOCK
    L = prefix.shape[1]  # candidates' lanes, a multiple of 8
    group = min(SEED_GROUP, nblocks) if f32 else nblocks
    # the group's float32 terms (float64: a placeholder, one float a block)
    gbuf = np.zeros((group, L, BLOCK) if f32 else (group, 1, 1), dtype=np.float32)
    runs = np.zeros(L, dtype=np.float32)
    for g0 in range(0, nblocks, group):
        gn = min(group, nblocks - g0)
        for j in prange(gn):
            _seed_block(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, csq, block_tot,
                        gbuf[j], g0 + j)
        if f32:  # the group's rows in order, one thread
            _prefix_rows(gbuf, g0, gn, n, prefix, runs)
    if f32:
        prefix[nblocks] = runs
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
    past the end (scikit-learn clips). float64 data; float32 data searches its
    float32 running sums (``prefix_search``)."""
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
            _block_closest(XT, B, C, csqC, near, cl, start, prev, False, False, xsq, closest,
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


@_seq
def _running_sums32(v, B, runs):
    """runs[t] += v[t, 0] + ... + v[t, B - 1], added one at a time in float32
    (np.cumsum's order), eight lanes t at a time held in registers."""
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


@_seq
def _prefix_rows(gb, b0, gn, n, prefix, runs):
    """prefix[b0 + j] = runs, then the rows of block b0 + j added to runs, for
    the gn blocks of a group buffer, in order."""
    for j in range(gn):
        start = (b0 + j) * BLOCK
        prefix[b0 + j] = runs
        _running_sums32(gb[j], min(n, start + BLOCK) - start, runs)


@_seq
def _first_reach32(v, B, run, r):
    """The first i whose float32 running sum from ``run`` is >= r, else B - 1."""
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
    block ``seeding_pass`` left in prefix[:, lane]: the first block whose running
    sum reaches the value, then a float32 scan of that block from its prefix,
    its distances recomputed; n - 1 past the end (scikit-learn clips)."""
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
            XT, xsq, closest, tmp, v = XT_[:, :B], xsq_[:B], cl_[:B], tmp_[:B], v_[:B]
            _load_centred(X, start, stop, xmean, XT, xsq)
            _block_closest(XT, B, C, csqC, near, cl, start, prev, False, True, xsq, closest, tmp)
            for i in range(B):
                v[i] = closest[i] if unit else closest[i] * sw[start + i]
            res = start + _first_reach32(v, B, prefix[lo, lane], r)
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
    distance (8 bytes a row, 4 for float32 data); a file-backed one
    (``_file_backed``) keeps the index of its nearest centre instead (1 byte a
    row below 255 clusters) and recomputes the distance.

    float32 data draws as scikit-learn's float32 seeding: distances rounded to
    float32, the draw searched in their float32 running sums (``seeding_pass``
    leaves each candidate's sum before every block), the potentials compared in
    float32.
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
    pots = seeding_pass(X, xmean, sw, C, csqC, near, cl, -1, f32, C[:1], tot, prefix)
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
        pots = seeding_pass(X, xmean, sw, C, csqC, near, cl, prev, f32, cands, block_tot, prefix)
        if f32:
            pots = pots.astype(np.float32)  # scikit-learn's float32 potentials
        best = int(np.argmin(pots))
        current_pot = pots[best]
        tot = np.ascontiguousarray(block_tot[:, best])
        indices[c] = candidate_ids[best]
        C[c] = cands[best]
        csqC[c] = sq_norms(cands[best:best + 1])[0]
    return indices, C, near


@_seq
def _assign32(XT, B, centers, csq, acc, best, lab):
    """scikit-learn's float32 assignment of a block: |c|^2 - 2 x.c in float32,
    x.c a fused multiply-add chain over the features in order, the first minimum.
    That is OpenBLAS sgemm's order on scikit-learn's 256-row chunks below 8
    features (measured; tests compare the labels for d = 2, 3, 5); from 8
    features on sgemm sums in an order not reproduced here, so near-ties can
    fall the other way."""
    d = XT.shape[0]
    r = d % 4
    m2 = np.float32(-2.0)
    for i in range(B):
        best[i] = np.float32(np.inf)
        lab[i] = np.float32(0.0)
    for k in range(centers.shape[0]):
        for i in range(B):
            acc[i] = np.float32(0.0)
        for a in range(0, d - r, 4):  # four features a sweep, still one chain in order
            c0, c1, c2, c3 = centers[k, a], centers[k, a + 1], centers[k, a + 2], centers[k, a + 3]
            for i in range(B):
                acc[i] = _fma(XT[a + 3, i], c3, _fma(XT[a + 2, i], c2,
                              _fma(XT[a + 1, i], c1, _fma(XT[a, i], c0, acc[i]))))
        for a in range(d - r, d):
            ca = centers[k, a]
            for i in range(B):
                acc[i] = _fma(XT[a, i], ca, acc[i])
        ck = csq[k]
        kf = np.float32(k)
        for i in range(B):  # branch-free, so that it vectorises
            dist = ck + m2 * acc[i]
            lt = dist < best[i]
            lab[i] = kf if lt else lab[i]
            best[i] = min(dist, best[i])


@jit(parallel=True)
def lloyd_pass(X, xmean, sw, centers, csq, labels, first, update, group, sums, weights, counts,
               f32):
    """Assign each row to the nearest centre (scikit-learn's |c|^2 - 2 x.c, first
    minimum on ties; ``csq`` the centres' |c|^2), with ``update`` adding the
    weighted rows into ``sums`` and ``weights`` (float64); ``counts`` gets the
    rows a centre. ``f32``: float32 centres and ``csq``, assigned as
    ``_assign32``. Returns how many labels changed (all of them on the ``first``
    pass) and the sum of the rows' squared norms (centred: n times the data's
    total variance, for Lloyd's tolerance)."""
    n, d = X.shape
    K = centers.shape[0]
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
            # the centres' dtype: float32 rows for float32 data (x - mean is float32)
            XT, xsq = np.empty((d, B), dtype=centers.dtype), np.empty(B)
            dot, best, lab = (np.empty(B, dtype=centers.dtype), np.empty(B, dtype=centers.dtype),
                              np.empty(B, dtype=centers.dtype))  # separate arrays, as above
            _load_centred(X, start, stop, xmean, XT, xsq)
            acc = 0.0
            for i in range(B):
                acc += xsq[i]
            g_sq[j] = acc
            if f32:
                _assign32(XT, B, centers, csq, dot, best, lab)
            else:
                for i in range(B):
                    best[i] = np.inf
                    lab[i] = 0.0
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


def lloyd(X, xmean, sw, centers, tol, group, labels=None, max_iter=LLOYD_MAX_ITER):
    """Lloyd's algorithm as scikit-learn's ``_kmeans_single_lloyd`` runs it: stop when
    no label changes, or when the squared centre shift is <= tol times the data's
    mean variance (``KMeans``' ``tol``; the variance comes from the first pass,
    which reads every row anyway; float32 data: ``tolerance32``), then (in the
    latter case) a last assignment. ``centers`` are in coordinates centred on
    xmean; ``sw`` empty means unit weights; ``labels`` a buffer to reuse.
    float32 X keeps float32 centres, updated and compared as scikit-learn's
    float32 Lloyd does (``_assign32``, ``_average32``, ``_center_shift_tot``).
    Returns (labels, centers (float64 or, for float32 X, float32), rows per
    cluster)."""
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
                                 weights, counts, f32)
        if it == 0 and not f32:
            tol = tol * sq / (n * d)  # np.mean(np.var(X, axis=0)) * tol
        _relocate_empty_clusters(X, xmean, sw, centers, sums, weights, labels)
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
                   f32)
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
    # scikit-learn adds the mean back in the data's dtype
    return labels, np.asarray(centers + xmean, dtype=np.float64), counts


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
