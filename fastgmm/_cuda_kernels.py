"""The CUDA engine's kernels (Numba's CUDA target, the ``numba-cuda`` package).

Imported only by ``_cuda``; the core package never imports ``numba.cuda``.
Everything is float64 arithmetic on float32 or float64 rows, as on the CPU.

Determinism: rows are cut into tiles of ``TILE`` rows (relative to the start of
the rows a launch covers); each block of a statistics launch adds one tile's rows
in row order into per-thread sums (every statistic has its own thread), or into
``NT`` per-thread sums reduced in a fixed tree; the tiles' partial sums are then
added in tile order. ``TILE`` and ``NT`` are constants of the code, not of the
device, so no result depends on the GPU, its occupancy or the chunking of a pass.

Kernels (each built once per covariance type / number of features, ``D`` being a
compile-time constant so that a row fits a local array):

- ``estep(ct, D)``: per row, log p(x, k) for every component into LP (K, chunk),
  then by ``mode``: EM (LP becomes w r, lse_out w log p(x)), LSE (log p(x)),
  LABEL (the first arg max) or RESP (LP becomes r).
- ``accum(D, EPT)``: per (tile, component) block, the sums w r f_a f_b of the
  entry pairs (a, b) of a table (index D stands for the constant 1: (D, D) is nk,
  (a, D) the first moments, (a, b) the second), about the component's shift, or
  for the 'tied' pooled block about gshift with the row weights.
- ``reduce_tiles``: the partial sums added in tile order.
- ``tile_sums``: per-tile sums of a row vector (a fixed tree of NT lanes).
- k-means: ``km_cands`` (per-tile potentials of candidate centres), ``km_update``
  (each row's distance to its nearest centre), ``km_scan`` (the row where a
  running sum crosses a target), ``km_assign`` (Lloyd's assignment),
  ``km_dist_own`` (distance to the own centre), ``all_finite``, ``gather``.
"""

import math
import threading

from numba import config, cuda, float64, int64

LOG_2PI = math.log(2.0 * math.pi)
FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
M_EM, M_LSE, M_LABEL, M_RESP = 0, 1, 2, 3
A_EM, A_RESP, A_LABELS = 0, 1, 2  # accumulation modes: where r comes from

# Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, the tests without a GPU) runs each
# thread as a Python thread: there, smaller tiles and blocks keep a test of several
# tiles quick (the same code; sums in another fixed order)
SIMULATOR = bool(config.ENABLE_CUDASIM)
TILE = 64 if SIMULATOR else 4096  # rows of a statistics tile
NT = 32 if SIMULATOR else 128  # threads of a block
LMAX = 16  # k-means++ candidates at most a round (2 + log K: K < e**14)

_CACHE = {}
_LOCK = threading.Lock()


def _memo(key, build):
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


@cuda.jit(device=True)
def _finish(i, K, mx, best, w, mode, LP, lse_out, label_out):
    """Row i's end of the E-step from its log p(x, k) in LP[:, i] (largest mx,
    first at ``best``): by ``mode`` the label, log p(x), r, or w r and w log p(x)."""
    if mode == M_LABEL:
        label_out[i] = best
        return
    s = 0.0
    for k in range(K):
        s += math.exp(LP[k, i] - mx)
    lse = mx + math.log(s)
    if mode == M_LSE:
        lse_out[i] = lse
    elif mode == M_RESP:
        for k in range(K):
            LP[k, i] = math.exp(LP[k, i] - lse)
    else:  # M_EM: weighted responsibilities and log-likelihood
        wi = 1.0 if w.shape[0] == 0 else w[i]
        if wi == 0.0:
            for k in range(K):
                LP[k, i] = 0.0
            lse_out[i] = 0.0
        else:
            for k in range(K):
                LP[k, i] = wi * math.exp(LP[k, i] - lse)
            lse_out[i] = wi * lse


def estep(ct, D):
    return _memo(("estep", ct, D), lambda: _build_estep(ct, D))


def _build_estep(CT, D):
    const = -0.5 * D * LOG_2PI

    @cuda.jit
    def kernel(X, nrows, w, means, pc, aux, log_det, log_w, mode, LP, lse_out, label_out):
        i = cuda.grid(1)
        if i >= nrows:
            return
        K = means.shape[0]
        x = cuda.local.array(D, float64)
        y = cuda.local.array(D, float64)
        for a in range(D):
            x[a] = X[i, a]
        if CT == TIED:  # y = x U once per row
            for j in range(D):
                s = 0.0
                for a in range(j + 1):
                    s += x[a] * pc[0, a, j]
                y[j] = s
        mx = -math.inf
        best = 0
        for k in range(K):
            maha = 0.0
            if CT == FULL:
                for a in range(D):
                    y[a] = x[a] - means[k, a]
                for j in range(D):
                    s = 0.0
                    for a in range(j + 1):
                        s += y[a] * pc[k, a, j]
                    maha += s * s
            elif CT == TIED:
                for j in range(D):
                    v = y[j] - aux[k, j]
                    maha += v * v
            else:
                for a in range(D):
                    v = (x[a] - means[k, a]) * aux[k, a]
                    maha += v * v
            lp = log_w[k] + log_det[k] + const - 0.5 * maha
            LP[k, i] = lp
            if lp > mx:
                mx = lp
                best = k
        _finish(i, K, mx, best, w, mode, LP, lse_out, label_out)

    return kernel


def rows_per_batch(D):
    """Rows a statistics block stages in shared memory at a time (about 32 KiB)."""
    return max(1, min(256, 4096 // (D + 1)))


def accum(D, EPT):
    return _memo(("accum", D, EPT), lambda: _build_accum(D, EPT))


def _build_accum(D, EPT):
    RB = rows_per_batch(D)
    D1 = D + 1

    @cuda.jit
    def kernel(X, nrows, w, R, labels, mode, shift, gshift, EA, EB, n_ent, pooled_k,
               partial):
        t = cuda.blockIdx.x
        kk = cuda.blockIdx.y
        tid = cuda.threadIdx.x
        xs = cuda.shared.array((RB, D1), float64)
        ws = cuda.shared.array(RB, float64)
        pooled = kk == pooled_k
        table = 1 if pooled else 0
        ne = n_ent[table]
        acc = cuda.local.array(EPT, float64)
        ea = cuda.local.array(EPT, int64)
        eb = cuda.local.array(EPT, int64)
        for j in range(EPT):
            acc[j] = 0.0
            e = tid + j * NT
            if e < ne:
                ea[j] = EA[table, e]
                eb[j] = EB[table, e]
            else:
                ea[j] = D
                eb[j] = D
        unit = w.shape[0] == 0
        start = t * TILE
        stop = min(start + TILE, nrows)
        for b0 in range(start, stop, RB):
            nb = min(RB, stop - b0)
            for q in range(tid, nb * D, NT):
                rr = q // D
                a = q - rr * D
                c = gshift[a] if pooled else shift[kk, a]
                xs[rr, a] = X[b0 + rr, a] - c
            for rr in range(tid, nb, NT):
                xs[rr, D] = 1.0
                row = b0 + rr
                wi = 1.0 if unit else w[row]
                if pooled:
                    v = wi
                elif mode == A_EM:
                    v = R[kk, b0 + rr]
                elif mode == A_RESP:
                    v = R[kk, b0 + rr] * wi
                else:
                    v = wi if labels[row] == kk else 0.0
                ws[rr] = v
            cuda.syncthreads()
            for j in range(EPT):
                if tid + j * NT < ne:
                    a = ea[j]
                    b = eb[j]
                    s = acc[j]
                    for rr in range(nb):
                        s += ws[rr] * xs[rr, a] * xs[rr, b]
                    acc[j] = s
            cuda.syncthreads()
        for j in range(EPT):
            e = tid + j * NT
            if e < ne:
                partial[t, kk, e] = acc[j]

    return kernel


# ------------------------------------------- 'diag' / 'spherical', tiled
# Both passes are shaped as matrix products, each thread keeping MT x MT outputs in
# registers (BT x BT threads a block, BS = BT MT outputs along each side), the
# operands staged in shared memory: the E-step's (rows x components) block reads
# each staged number MT times, and the statistics' (components x features) block
# reads a tile of rows once for all its components (``accum`` reads it once a
# component). Each output is still summed in a fixed order (features in order for
# a distance; a tile's rows in order for a statistic), so results depend on the
# code's constants only.
BT = 4 if SIMULATOR else 16  # threads along each side of a block
MT = 2 if SIMULATOR else 4  # a thread's outputs along each side
BS = BT * MT
BS1 = BS + 1  # a padded row of shared memory (a constant: Numba types BS + 1 as a variable)
BA = 4 if SIMULATOR else 16  # features staged at a time (E-step)
RS = 8 if SIMULATOR else 32  # rows staged at a time (statistics)
# rows of a 'diag' / 'spherical' statistics tile: a divisor of TILE (a launch covers
# whole TILEs, so whole DTILEs); a quarter of TILE on the simulator too, so that the
# tests there cover several of them a launch
DTILE = TILE // 4 if SIMULATOR else 1024
assert TILE % DTILE == 0


@cuda.jit
def lp_diag(X, nrows, means, aux, log_det, log_w, LP):
    """LP[k, i] = log p(x_i, k) for 'diag' / 'spherical' (aux: the precision
    factor per feature): a block of BS rows x BS components; the sum over features
    in order, as ``estep``'s."""
    tx = cuda.threadIdx.x  # rows tx + BT l
    ty = cuda.threadIdx.y  # components ty + BT j
    tid = ty * BT + tx
    i0 = cuda.blockIdx.x * BS
    k0 = cuda.blockIdx.y * BS
    K, D = means.shape
    xs = cuda.shared.array((BA, BS1), float64)
    ms = cuda.shared.array((BA, BS1), float64)
    ps = cuda.shared.array((BA, BS1), float64)
    acc = cuda.local.array((MT, MT), float64)  # [row l, component j]
    xr = cuda.local.array(MT, float64)
    for l in range(MT):
        for j in range(MT):
            acc[l, j] = 0.0
    for a0 in range(0, D, BA):
        na = min(BA, D - a0)
        cuda.syncthreads()
        for q in range(tid, BS * BA, BT * BT):
            c = q // BA
            a = q - c * BA
            if a < na:
                xs[a, c] = X[i0 + c, a0 + a] if i0 + c < nrows else 0.0
                if k0 + c < K:
                    ms[a, c] = means[k0 + c, a0 + a]
                    ps[a, c] = aux[k0 + c, a0 + a]
                else:
                    ms[a, c] = 0.0
                    ps[a, c] = 0.0
        cuda.syncthreads()
        for a in range(na):
            for l in range(MT):
                xr[l] = xs[a, tx + BT * l]
            for j in range(MT):
                m = ms[a, ty + BT * j]
                p = ps[a, ty + BT * j]
                for l in range(MT):
                    v = (xr[l] - m) * p
                    acc[l, j] += v * v
    const = -0.5 * D * LOG_2PI
    for j in range(MT):
        k = k0 + ty + BT * j
        if k < K:
            for l in range(MT):
                i = i0 + tx + BT * l
                if i < nrows:
                    LP[k, i] = log_w[k] + log_det[k] + const - 0.5 * acc[l, j]


@cuda.jit
def finish_rows(nrows, w, mode, LP, lse_out, label_out):
    """The E-step's end (``_finish``) for rows whose LP a tiled kernel wrote."""
    i = cuda.grid(1)
    if i >= nrows:
        return
    K = LP.shape[0]
    mx = -math.inf
    best = 0
    for k in range(K):
        lp = LP[k, i]
        if lp > mx:
            mx = lp
            best = k
    _finish(i, K, mx, best, w, mode, LP, lse_out, label_out)


# ------------------------------------------- 'full', the matrix-product pass's rows
WL = 4 if SIMULATOR else 32  # threads on one row (a power of two)
WR = 2 if SIMULATOR else 8  # rows a block


@cuda.jit
def whiten_rows(Y, nrows, D, b, c0, w, LPs, ll_rows):
    """The rows of the 'full' matrix-product pass (``_cuda.gemm_stats``). Y (rows,
    K (D + 1)) holds, in each component's group of D + 1 columns, (x - g) U_k then
    a 0; for each row i < nrows, with y = that - b_k (the row whitened by component
    k, centred on its mean): log p(x, k) = c0_k - |y|^2 / 2 (into LPs[i, k]), the
    responsibilities r = w exp(LP - log p(x)), and the group becomes sqrt(r) (y, 1),
    so that its Gram matrix over the rows holds (sum r y y^T, sum r y, sum r);
    ll_rows[i] = w log p(x) (0 where w = 0). WL threads a row (WR rows a block), each
    distance summed by the threads in column order, then over them in a fixed tree:
    the bits depend on the code's constants only. One read of the row to the
    distances, one read and write to the end (recomputing y)."""
    lane = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    i = cuda.blockIdx.x * WR + ty
    part = cuda.shared.array((WR, WL), float64)
    K = c0.shape[0]
    G = D + 1
    live = i < nrows
    mx = -math.inf
    for k in range(K):
        acc = 0.0
        if live:
            j = lane
            while j < D:
                v = Y[i, k * G + j] - b[k, j]
                acc += v * v
                j += WL
        part[ty, lane] = acc
        cuda.syncthreads()
        h = WL // 2
        while h > 0:
            if lane < h:
                part[ty, lane] += part[ty, lane + h]
            cuda.syncthreads()
            h //= 2
        lp = c0[k] - 0.5 * part[ty, 0]
        cuda.syncthreads()  # every lane has read part[ty, 0] before it is written again
        mx = max(mx, lp)
        if live and lane == 0:
            LPs[i, k] = lp
    cuda.syncthreads()  # LPs[i, :] written by lane 0, read by every lane below
    if not live:
        return
    s = 0.0
    for k in range(K):
        s += math.exp(LPs[i, k] - mx)
    lse = mx + math.log(s)
    wi = 1.0 if w.shape[0] == 0 else w[i]
    if lane == 0:
        ll_rows[i] = 0.0 if wi == 0.0 else wi * lse
    for k in range(K):
        r = 0.0 if wi == 0.0 else wi * math.exp(LPs[i, k] - lse)
        sr = math.sqrt(r)
        j = lane
        while j < D:
            Y[i, k * G + j] = (Y[i, k * G + j] - b[k, j]) * sr
            j += WL
        if lane == 0:
            Y[i, k * G + D] = sr


# sums_diag keeps 48 sums and shifts a thread: 236 registers unbounded, so one block
# an SM. Bounded to two blocks an SM (128 registers, a few spilled) it ran a 1M x 64,
# K = 64 pass's sums in 2.78 instead of 3.78 ms on an H200 (bench/gpu_sweep.sh, the
# variant --lb 0,0 against the code as it is).
# The simulator takes no launch bounds.
_SUMS_BOUNDS = {} if SIMULATOR else {"launch_bounds": (BT * BT, 2)}


@cuda.jit(**_SUMS_BOUNDS)
def sums_diag(X, nrows, w, R, labels, mode, shift, partial):
    """Per (DTILE-row tile t, BS components, BS features) block, with v the row's
    weight for component k (by ``mode``, as ``accum``'s) and y = x_a - shift[k, a]:
    partial[t, k] = (sum v, sum v y_a (a < D), sum v y_a^2 (a < D)), the
    rows in order; the layout of ``accum``'s 'diag' table. The next row's operands
    are loaded from shared memory while the current row's are added (on an H200,
    1M x 64, K = 64: 2.72-2.79 against 3.04 ms a pass without that, the same bits)."""
    t = cuda.blockIdx.x
    k0 = cuda.blockIdx.y * BS
    a0 = cuda.blockIdx.z * BS
    tx = cuda.threadIdx.x  # features a0 + tx + BT l
    ty = cuda.threadIdx.y  # components k0 + ty + BT j
    tid = ty * BT + tx
    K, D = shift.shape
    rs = cuda.shared.array((RS, BS1), float64)
    xs = cuda.shared.array((RS, BS), float64)
    s1 = cuda.local.array((MT, MT), float64)  # [component j, feature l]
    s2 = cuda.local.array((MT, MT), float64)
    sh = cuda.local.array((MT, MT), float64)
    nk = cuda.local.array(MT, float64)
    xv = cuda.local.array(MT, float64)
    vv = cuda.local.array(MT, float64)
    xn = cuda.local.array(MT, float64)  # the next row's operands, loaded during this row
    vn = cuda.local.array(MT, float64)
    for j in range(MT):
        nk[j] = 0.0
        k = k0 + ty + BT * j
        for l in range(MT):
            s1[j, l] = 0.0
            s2[j, l] = 0.0
            a = a0 + tx + BT * l
            sh[j, l] = shift[k, a] if k < K and a < D else 0.0
    unit = w.shape[0] == 0
    start = t * DTILE
    stop = min(start + DTILE, nrows)
    for b0 in range(start, stop, RS):
        nb = min(RS, stop - b0)
        cuda.syncthreads()
        for q in range(tid, BS * RS, BT * BT):
            c = q // RS  # component k0 + c, row b0 + rr
            rr = q - c * RS
            k = k0 + c
            if rr < nb and k >= K:
                rs[rr, c] = 0.0  # no component: zeros, not stale numbers, in its lanes
            elif rr < nb:
                row = b0 + rr
                if mode == A_EM:
                    v = R[k, b0 + rr]
                else:
                    wi = 1.0 if unit else w[row]
                    if mode == A_RESP:
                        v = R[k, b0 + rr] * wi
                    else:
                        v = wi if labels[row] == k else 0.0
                rs[rr, c] = v
        for q in range(tid, BS * RS, BT * BT):
            rr = q // BS
            a = q - rr * BS
            if rr < nb:
                xs[rr, a] = X[b0 + rr, a0 + a] if a0 + a < D else 0.0
        cuda.syncthreads()
        for l in range(MT):
            xn[l] = xs[0, tx + BT * l]
        for j in range(MT):
            vn[j] = rs[0, ty + BT * j]
        for rr in range(nb):
            for l in range(MT):
                xv[l] = xn[l]
            for j in range(MT):
                vv[j] = vn[j]
            if rr + 1 < nb:
                for l in range(MT):
                    xn[l] = xs[rr + 1, tx + BT * l]
                for j in range(MT):
                    vn[j] = rs[rr + 1, ty + BT * j]
            for j in range(MT):
                v = vv[j]
                nk[j] += v
                for l in range(MT):
                    y = xv[l] - sh[j, l]
                    p = v * y
                    s1[j, l] += p
                    s2[j, l] += p * y
    for j in range(MT):
        k = k0 + ty + BT * j
        if k < K:
            if a0 == 0 and tx == 0:
                partial[t, k, 0] = nk[j]
            for l in range(MT):
                a = a0 + tx + BT * l
                if a < D:
                    partial[t, k, 1 + a] = s1[j, l]
                    partial[t, k, 1 + D + a] = s2[j, l]


@cuda.jit
def reduce_tiles(partial, ntiles, out):
    """out[k, e] += partial[t, k, e] for the tiles t < ntiles, one after the other
    (the running total of a pass's launches: the same sequence of additions however
    the tiles are cut into launches)."""
    q = cuda.grid(1)
    K, E = out.shape
    if q >= K * E:
        return
    k = q // E
    e = q - k * E
    s = out[k, e]
    for t in range(ntiles):
        s += partial[t, k, e]
    out[k, e] = s


@cuda.jit(device=True)
def _tree(tmp, tid):
    """Sum tmp[0..NT) into tmp[0] in a fixed tree (all NT threads call it)."""
    step = NT // 2
    while step > 0:
        cuda.syncthreads()
        if tid < step:
            tmp[tid] += tmp[tid + step]
        step //= 2
    cuda.syncthreads()


@cuda.jit
def tile_sums(v, nrows, out, tile0):
    """out[tile0 + t] = sum of v[t TILE .. (t + 1) TILE) (a fixed tree of NT lanes)."""
    t = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    tmp = cuda.shared.array(NT, float64)
    s = 0.0
    for i in range(t * TILE + tid, min((t + 1) * TILE, nrows), NT):
        s += v[i]
    tmp[tid] = s
    _tree(tmp, tid)
    if tid == 0:
        out[tile0 + t] = tmp[0]


# ---------------------------------------------------------------- k-means
@cuda.jit
def km_cands(X, xmean, w, closest, C, L, first, out):
    """out[t, c] = sum over tile t of w_i min(closest_i, |x_i - xmean - C_c|^2)
    (``first``: without the min) for the L candidate centres C (centred)."""
    t = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n, d = X.shape
    tmp = cuda.shared.array((LMAX, NT), float64)
    acc = cuda.local.array(LMAX, float64)
    for c in range(LMAX):
        acc[c] = 0.0
    unit = w.shape[0] == 0
    for i in range(t * TILE + tid, min((t + 1) * TILE, n), NT):
        wi = 1.0 if unit else w[i]
        for c in range(L):
            s = 0.0
            for a in range(d):
                v = (X[i, a] - xmean[a]) - C[c, a]
                s += v * v
            if not first and closest[i] < s:
                s = closest[i]
            acc[c] += wi * s
    for c in range(LMAX):
        tmp[c, tid] = acc[c]
    step = NT // 2
    while step > 0:
        cuda.syncthreads()
        if tid < step:
            for c in range(LMAX):
                tmp[c, tid] += tmp[c, tid + step]
        step //= 2
    cuda.syncthreads()
    if tid < L:
        out[t, tid] = tmp[tid, 0]


@cuda.jit
def km_update(X, xmean, closest, c, first):
    """closest_i = min(closest_i, |x_i - xmean - c|^2) (``first``: the distance)."""
    i = cuda.grid(1)
    n, d = X.shape
    if i >= n:
        return
    s = 0.0
    for a in range(d):
        v = (X[i, a] - xmean[a]) - c[a]
        s += v * v
    if first or s < closest[i]:
        closest[i] = s


@cuda.jit
def km_scan(closest, w, tiles, bases, targets, out):
    """For target c: the first row i of tile tiles[c] where bases[c] plus the running
    sum of w * closest over the tile reaches targets[c] (the tile's last row with a
    positive term if rounding keeps it short: never a row that cannot be drawn).
    One block a target; thread 0 scans shared memory."""
    c = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buf = cuda.shared.array(TILE, float64)
    n = closest.shape[0]
    start = tiles[c] * TILE
    stop = min(start + TILE, n)
    unit = w.shape[0] == 0
    for i in range(start + tid, stop, NT):
        buf[i - start] = closest[i] * (1.0 if unit else w[i])
    cuda.syncthreads()
    if tid == 0:
        s = bases[c]
        found = -1
        last = stop - 1  # rounding short of the target: the last row that weighs
        for i in range(start, stop):
            v = buf[i - start]
            s += v
            if v > 0.0:
                last = i
            if s >= targets[c]:
                found = i
                break
        out[c] = last if found < 0 else found


@cuda.jit
def km_assign(X, xmean, C, labels, first, out_changed, out_sq):
    """Lloyd's assignment: labels_i = the nearest centre (first on ties); per tile
    the labels that changed (all on the ``first`` pass) and sum |x_i - xmean|^2."""
    t = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n, d = X.shape
    K = C.shape[0]
    tmp = cuda.shared.array(NT, float64)
    tmp2 = cuda.shared.array(NT, float64)
    ch = 0.0
    sq = 0.0
    for i in range(t * TILE + tid, min((t + 1) * TILE, n), NT):
        best = 0
        bd = math.inf
        for k in range(K):
            s = 0.0
            for a in range(d):
                v = (X[i, a] - xmean[a]) - C[k, a]
                s += v * v
            if s < bd:
                bd = s
                best = k
        if first:
            ch += 1.0
            for a in range(d):
                v = X[i, a] - xmean[a]
                sq += v * v
        elif labels[i] != best:
            ch += 1.0
        labels[i] = best
    tmp[tid] = ch
    tmp2[tid] = sq
    step = NT // 2
    while step > 0:
        cuda.syncthreads()
        if tid < step:
            tmp[tid] += tmp[tid + step]
            tmp2[tid] += tmp2[tid + step]
        step //= 2
    cuda.syncthreads()
    if tid == 0:
        out_changed[t] = tmp[0]
        out_sq[t] = tmp2[0]


@cuda.jit
def km_dist_own(X, xmean, C, labels, out):
    i = cuda.grid(1)
    n, d = X.shape
    if i >= n:
        return
    k = labels[i]
    s = 0.0
    for a in range(d):
        v = (X[i, a] - xmean[a]) - C[k, a]
        s += v * v
    out[i] = s


@cuda.jit
def all_finite(X, flags):
    """flags[0] = 1 where some entry is NaN, flags[1] = 1 where some is +-inf."""
    i = cuda.grid(1)
    n, d = X.shape
    if i >= n:
        return
    for a in range(d):
        v = X[i, a]
        if v != v:
            flags[0] = 1
        elif v == math.inf or v == -math.inf:
            flags[1] = 1


@cuda.jit
def cast_f64(X, out):
    """out = X as float64 (integer device arrays, as scikit-learn converts them)."""
    i, a = cuda.grid(2)
    if i < X.shape[0] and a < X.shape[1]:
        out[i, a] = X[i, a]


@cuda.jit
def gather(X, idx, out):
    """out[j] = X[idx[j]] as float64."""
    j, a = cuda.grid(2)
    if j < idx.shape[0] and a < X.shape[1]:
        out[j, a] = X[idx[j], a]
