"""Numba kernels of Lloyd's algorithm for the k-means start (``_kmeans.lloyd``):
the assignment pass (float64, or scikit-learn's float32 arithmetic), the in-order
addition of its slots, and the distances the empty-cluster relocation needs. The
row loads and dot products come from ``_kmeans_kernels``."""

import threading

import numpy as np
from llvmlite import ir as llvm_ir
from numba.core import types
from numba.extending import intrinsic

from ._kmeans_kernels import _dots, _load_centred
from ._numba import BLOCK, SOURCE_STAMP, block_range, jit, jit_exact, jit_exact_inner, wide_vectors


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


@jit_exact_inner
def _assign32(XT, B, centers, csq, acc, best, lab):
    """scikit-learn's float32 assignment of a block: |c|^2 - 2 x.c in float32,
    x.c a fused multiply-add chain over the features in order, the first minimum.
    That is OpenBLAS sgemm's order on scikit-learn's 256-row chunks below 8
    features (measured; tests compare the labels for d = 2, 3, 5); from 8
    features on sgemm sums in an order not reproduced here, so near-ties can
    fall the other way."""
    wide_vectors()
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


_LLOYD = {}
_LLOYD_LOCK = threading.Lock()


def lloyd_kernel(f32):
    """``lloyd_blocks`` for float32 (scikit-learn's float32 assignment) or float64
    data: the dtype is a constant of the closure, so a float64 k-means never
    compiles the float32 arithmetic."""
    with _LLOYD_LOCK:
        if bool(f32) not in _LLOYD:
            _LLOYD[bool(f32)] = _build_lloyd(int(bool(f32)))
        return _LLOYD[bool(f32)]


def _build_lloyd(F32):
    STAMP = SOURCE_STAMP  # in the cache key: an edit of a helper's file recompiles

    @jit()
    def lloyd_blocks(X, xmean, sw, centers, csq, labels, first, update, g0, gn, g_sums, g_w, g_cnt,
                     g_changed, g_sq, f32, t, T):
        """Thread t of T in a Lloyd pass, its share of blocks g0 .. g0 + gn - 1:
        assigns each row to the nearest centre (scikit-learn's |c|^2 - 2 x.c, first
        minimum on ties; ``f32``: float32 centres and ``csq``, ``_assign32``) and
        fills block g0 + j's slot j: rows a label (g_cnt), labels changed (all on
        the ``first`` pass), sum of the centred rows' squared norms (g_sq) and, with
        ``update``, the weighted rows' sums and weights a label."""
        wide_vectors()
        n, d = X.shape
        K = centers.shape[0]
        unit = sw.shape[0] == 0
        if STAMP == "":
            return
        lo, hi = block_range(t, gn, T)
        for j in range(lo, hi):
            start = (g0 + j) * BLOCK
            stop = min(n, start + BLOCK)
            B = stop - start
            # the centres' dtype: float32 rows for float32 data (x - mean is float32)
            XT, xsq = np.empty((d, B), dtype=centers.dtype), np.empty(B)
            dot, best, lab = (np.empty(B, dtype=centers.dtype), np.empty(B, dtype=centers.dtype),
                              np.empty(B, dtype=centers.dtype))  # separate arrays (aliasing)
            _load_centred(X, start, stop, xmean, XT, xsq)
            acc = 0.0
            for i in range(B):
                acc += xsq[i]
            g_sq[j] = acc
            if F32 == 1:  # a constant: float64 passes never compile _assign32
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

    return lloyd_blocks


@jit_exact
def add_lloyd_slots(gn, update, g_sums, g_w, g_cnt, g_changed, g_sq, sums, weights, counts, sq):
    """Adds slots 0 .. gn - 1 of ``lloyd_blocks`` in order into ``counts``,
    ``weights``, ``sums`` (with ``update``) and sq[0]; returns the labels changed."""
    wide_vectors()
    K, d = sums.shape
    changed = 0
    for j in range(gn):
        changed += g_changed[j]
        sq[0] += g_sq[j]
        for k in range(K):
            counts[k] += g_cnt[j, k]
            if update:
                weights[k] += g_w[j, k]
                for a in range(d):
                    sums[k, a] += g_sums[j, k, a]
    return changed


@jit()
def sq_dist_blocks(X, xmean, centers, labels, out, t, T):
    """Thread t of T: out[i] = |x_i - xmean - centers[labels[i]]|^2 on its share
    of the blocks."""
    wide_vectors()
    n, d = X.shape
    lo, hi = block_range(t, (n + BLOCK - 1) // BLOCK, T)
    for b in range(lo, hi):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        for i in range(start, stop):
            acc = 0.0
            k = labels[i]
            for a in range(d):
                v = X[i, a] - xmean[a] - centers[k, a]
                acc += v * v
            out[i] = acc
