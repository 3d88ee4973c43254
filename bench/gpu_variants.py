"""Candidate CUDA kernels, not yet measured on a GPU: each is checked against the
package's kernels here (on Numba's simulator in ``tests/test_cuda.py``) and timed
by ``bench/gpu_kernels.py --variant NAME`` on a GPU machine; a variant that wins
there moves into ``fastgmm/_cuda_kernels.py``.

- ``fused``: ``lp_diag`` and ``finish_rows`` in one launch where one block holds
  every component (K <= BS): the block's log-densities stay in shared memory, so
  the (K, n) array is written once (responsibilities) instead of written, read
  twice and written again. Measured before (H200, 1M x 64, K = 64): ``finish_rows``
  0.79-0.95 ms of a 6.5-8 ms pass. Features are staged BAF at a time (the tile of
  log-densities takes the rest of the 48 KiB); the sums and their order are
  ``lp_diag``'s and ``_finish``'s, so the results are the same bits.
- ``prefetch``: ``sums_diag`` with the next row's 8 shared-memory loads issued
  before the current row's 68 FP64 operations (registers double-buffered). Measured
  before (Nsight Compute, H200, without launch bounds): no warp ready in 64 % of
  cycles, the most common stall a shared-memory load's result; the same sums in the
  same order, so the same bits. Launch bounds as the package's (``--lb`` varies them).
"""

import math

from numba import cuda, float64

from fastgmm import _cuda_kernels as kern
from fastgmm._cuda_kernels import (A_EM, A_RESP, BS, BS1, BT, DTILE, LOG_2PI, M_LABEL, M_LSE,
                                   M_RESP, MT, RS, SIMULATOR, _SUMS_BOUNDS)

BAF = 2 if SIMULATOR else 8  # features staged at a time


@cuda.jit
def lp_finish_diag(X, row0, nrows, w, means, aux, log_det, log_w, mode, LP, lse_out,
                   label_out):
    """``lp_diag`` then ``finish_rows`` for a block of BS rows and all K <= BS
    components, the log-densities kept in shared memory."""
    tx = cuda.threadIdx.x  # rows tx + BT l
    ty = cuda.threadIdx.y  # components ty + BT j
    tid = ty * BT + tx
    i0 = cuda.blockIdx.x * BS
    K, D = means.shape
    xs = cuda.shared.array((BAF, BS1), float64)
    ms = cuda.shared.array((BAF, BS1), float64)
    ps = cuda.shared.array((BAF, BS1), float64)
    lt = cuda.shared.array((BS, BS1), float64)  # [row, component]
    acc = cuda.local.array((MT, MT), float64)
    xr = cuda.local.array(MT, float64)
    for l in range(MT):
        for j in range(MT):
            acc[l, j] = 0.0
    for a0 in range(0, D, BAF):
        na = min(BAF, D - a0)
        cuda.syncthreads()
        for q in range(tid, BS * BAF, BT * BT):
            c = q // BAF
            a = q - c * BAF
            if a < na:
                xs[a, c] = X[row0 + i0 + c, a0 + a] if i0 + c < nrows else 0.0
                if c < K:
                    ms[a, c] = means[c, a0 + a]
                    ps[a, c] = aux[c, a0 + a]
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
        k = ty + BT * j
        if k < K:
            for l in range(MT):
                lt[tx + BT * l, k] = log_w[k] + log_det[k] + const - 0.5 * acc[l, j]
    cuda.syncthreads()
    i = i0 + tid
    if tid >= BS or i >= nrows:
        return
    mx = -math.inf
    best = 0
    for k in range(K):
        lp = lt[tid, k]
        if lp > mx:
            mx = lp
            best = k
    if mode == M_LABEL:
        label_out[i] = best
        return
    s = 0.0
    for k in range(K):
        s += math.exp(lt[tid, k] - mx)
    lse = mx + math.log(s)
    if mode == M_LSE:
        lse_out[i] = lse
    elif mode == M_RESP:
        for k in range(K):
            LP[k, i] = math.exp(lt[tid, k] - lse)
    else:  # M_EM
        wi = 1.0 if w.shape[0] == 0 else w[row0 + i]
        if wi == 0.0:
            for k in range(K):
                LP[k, i] = 0.0
            lse_out[i] = 0.0
        else:
            for k in range(K):
                LP[k, i] = wi * math.exp(lt[tid, k] - lse)
            lse_out[i] = wi * lse


@cuda.jit(**_SUMS_BOUNDS)
def sums_diag_prefetch(X, row0, nrows, w, R, labels, mode, shift, partial, tile0):
    """``sums_diag`` with the next row's operands loaded during the current row."""
    t = cuda.blockIdx.x
    k0 = cuda.blockIdx.y * BS
    a0 = cuda.blockIdx.z * BS
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * BT + tx
    K, D = shift.shape
    rs = cuda.shared.array((RS, BS1), float64)
    xs = cuda.shared.array((RS, BS), float64)
    s1 = cuda.local.array((MT, MT), float64)
    s2 = cuda.local.array((MT, MT), float64)
    sh = cuda.local.array((MT, MT), float64)
    nk = cuda.local.array(MT, float64)
    xv = cuda.local.array(MT, float64)
    vv = cuda.local.array(MT, float64)
    xn = cuda.local.array(MT, float64)
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
            c = q // RS
            rr = q - c * RS
            k = k0 + c
            if rr < nb and k >= K:
                rs[rr, c] = 0.0
            elif rr < nb:
                row = row0 + b0 + rr
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
                xs[rr, a] = X[row0 + b0 + rr, a0 + a] if a0 + a < D else 0.0
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
                partial[tile0 + t, k, 0] = nk[j]
            for l in range(MT):
                a = a0 + tx + BT * l
                if a < D:
                    partial[tile0 + t, k, 1 + a] = s1[j, l]
                    partial[tile0 + t, k, 1 + D + a] = s2[j, l]


def use(name):
    """Switch ``fastgmm._cuda.CUDAEngine`` to variant ``name``; returns an undo."""
    from fastgmm import _cuda

    if name == "prefetch":
        saved = kern.sums_diag
        kern.sums_diag = sums_diag_prefetch

        def undo_prefetch():
            kern.sums_diag = saved
        return undo_prefetch
    if name != "fused":
        raise ValueError(f"no variant {name!r}")
    kern.lp_finish_diag = lp_finish_diag  # where bench/gpu_kernels.py times it
    orig = _cuda.CUDAEngine._estep

    def _estep(self, ct, Xv, m, w, means, pc, aux, log_det, log_w, mode, LP, lse, lab):
        if self._tiled(ct) and means.shape[0] <= BS:
            kern.lp_finish_diag[(-(-m // BS), 1), (BT, BT)](
                Xv, 0, m, w, means, aux, log_det, log_w, mode, LP, lse, lab)
        else:
            orig(self, ct, Xv, m, w, means, pc, aux, log_det, log_w, mode, LP, lse, lab)

    _cuda.CUDAEngine._estep = _estep

    def undo():
        _cuda.CUDAEngine._estep = orig
    return undo
