"""Engines: where the data lives and how a pass over it runs.

An engine binds the data and the weights of one call and answers the driver's
questions (``_base``): the statistics of an EM pass at given E-step parameters
(``stats``), the statistics of given responsibilities or labels
(``given_stats``, the start), row-wise log-probability outputs (``log_prob``),
and what a start needs from the rows (``kmeans_labels``, ``kmeans_plusplus``,
``rows``; ``for_start``: the engine the start runs on). The driver never touches
X; nothing about a call is stored on the estimator.

``CPUEngine`` serves in-memory arrays and memmaps: the kernels of ``_estep`` and
``_accumulate``, serial over fixed chunks, on fastgmm's threads (``_pool``).
"""

import functools

import numpy as np

from . import _pool
from ._accumulate import (MODE_EM, MODE_LABELS, MODE_RESP, centred_sums_kept, stats_kernel,
                          whitened_to_shift)
from ._estep import (DIAG, FULL, OUT_LABEL, OUT_LSE, OUT_RESP, SPHERICAL, TIED, block_size,
                     centred_means, log_prob_kernel,
                     quad_params, quad_pays, small_d, tile_params,
                     uses_tiles)
from ._kmeans import kmeans_labels, kmeans_plusplus_indices, label_dtype
from ._kmeans_kernels import column_totals
from ._numba import n_chunks, work_dtype
from ._mstep import EStep
from ._stats import Stats, pooled_moved, pooled_near, s2_shape

OUTPUTS = {"lse": OUT_LSE, "label": OUT_LABEL, "resp": OUT_RESP}
POOLED_MOVE = 16.0  # kept 'tied' sums move this many mean squared distances at most


@functools.lru_cache(maxsize=256)
def _placeholders(K, d, ldt, dt):
    """A pass's placeholder arguments of one shape (R, labels, the tile arguments,
    and E-step parameters for the passes without an E-step), made once: a pass's own
    allocations took a fifth of its Python time. No kernel writes into them (the
    E-step ones are read in EM mode only, where the real ones are given)."""
    return (np.zeros((0, K)), np.zeros(0, dtype=ldt), np.zeros((0, d, d), dtype=dt),
            np.zeros((K, 0)), (np.zeros((K, d)), np.zeros((0, d, d)), np.zeros((0, d)),
                               np.zeros(K), np.zeros(K)))


@functools.lru_cache(maxsize=512)
def _geometry(ct, mode, n_rows, d, K):
    """(tiled, blocks, s2's shape, slots, work for the thread count) of a pass."""
    nb = -(-n_rows // block_size(ct, d))
    s2s = s2_shape(ct, K, d)
    nch = n_chunks(nb, (K * (d + 1) + int(np.prod(s2s)) + 1) * 8)
    work = n_rows * d * (d if ct == FULL else 1) * (1 if mode == MODE_LABELS else K)
    return uses_tiles(ct, d), nb, s2s, nch, work


class CPUEngine:
    """One call's data on this machine's CPUs: X (read-only, any layout; memmaps
    are read block by block), the weights (None: unit weights, no n-sized array),
    and the call's ``n_jobs``."""

    centred_passes = True  # the CPU kernels' centred 'diag' / 'spherical' form (``stats``)

    def __init__(self, X, sample_weight=None, n_jobs=None):
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.sample_weight = sample_weight
        self.w = np.zeros(0) if sample_weight is None else sample_weight
        self.wsum = float(self.n_samples if sample_weight is None else np.sum(sample_weight))
        self.dtype = work_dtype(X)
        self.eps = float(np.finfo(self.dtype).eps)
        self.n_jobs = n_jobs
        # 'tied' passes' pooled sums over all rows (they depend on the data alone):
        # (their centre, s2, the rows' total weight), kept from the last pass that
        # made them (an engine on some rows, ``subset``, holds its parent's, the
        # only ones it has: ``_pooled_only``)
        self._pooled = None
        self._pooled_only = False

    # ------------------------------------------------------------ one pass
    def _pass(self, ct, mode, ep, shift, gshift, R=None, labels=None, rows=None,
              centred=None):
        """Statistics of rows [rows) (all by default) about shift / gshift; a 'diag' /
        'spherical' EM pass on rows centred on gshift where the centred means
        (``centred_means``) are given."""
        X, d = self.X, self.n_features
        K = shift.shape[0]
        row0, row1 = (0, self.n_samples) if rows is None else rows
        tiled, nb, s2s, nch, flops = _geometry(ct, mode, row1 - row0, d, K)
        # 'tied' over all rows: the pooled sums of an earlier pass, moved to this
        # pass's gshift, instead of d^2 / 2 products a row again (a kernel given s2
        # without rows skips them), where the move keeps their digits
        pooled = ct == TIED and rows is None and mode != MODE_RESP
        known = pooled and self._pooled is not None and (
            self._pooled_only or self._pooled_near(gshift))
        if known:
            s2s = (1, 0, d)
        nk, s1 = np.zeros((nch, K)), np.zeros((nch, K, d))
        s2, ll = np.zeros((nch,) + s2s), np.zeros(nch)
        empty = _placeholders(K, d, label_dtype(K), self.dtype)
        R = empty[0] if R is None else R
        labels = empty[1] if labels is None else labels
        if ep is None:  # no E-step: placeholders of the right types
            ep = empty[4]
        ep, quad = self._with_quad(ep, tiled and mode == MODE_EM)
        ucat, muu = self._tile_args(ep, gshift, tiled and mode == MODE_EM and not quad)
        if centred is not None:
            muu = centred
        kernel = stats_kernel(ct, tiled, mode, small_d(ct, d) if mode == MODE_EM else 0)
        T = _pool.threads_for(self.n_jobs, nch, flops)

        def chunks(claim):
            kernel(X, self.w, row0, row1, R, labels, *ep, shift, gshift, ucat, muu, nk, s1,
                   s2, ll, claim)

        with _pool.blas_one_thread(tiled and mode != MODE_LABELS):
            _pool.run_chunks(chunks, T)
            # the slots added in slot order, one compiled call each (NumPy's three sums
            # took some 15 us of each pass; a 10k x 8 Bayesian fit runs seven)
            s1t = column_totals(s1.reshape(nch, -1)).reshape(s1.shape[1:])
            s2t = column_totals(s2.reshape(nch, -1)).reshape(s2.shape[1:])
            st = Stats(ct, column_totals(nk), s1t, s2t, float(ll.sum()), shift, gshift)
            if known:
                centre, s2_known, wsum = self._pooled
                st.s2 = pooled_moved(s2_known, centre, gshift, wsum)
            elif pooled:
                self._pooled = (np.array(gshift, dtype=np.float64), st.s2.copy(), self.wsum)
            if tiled and mode == MODE_EM and not quad:
                # the whitened sums back to x coordinates about the shift
                s1x, s2x = np.zeros_like(st.s1), np.zeros_like(st.s2)
                whitened_to_shift(st.nk, st.s1, st.s2, ep[1], ep[0], shift, s1x, s2x)
                st.s1, st.s2 = s1x, s2x
        return st

    def _pooled_near(self, gshift):
        """Whether the kept pooled sums, about their centre c, can move to ``gshift``
        by algebra and keep their digits. Sums about c of rows whose mean is m away
        hold wsum (v + |m|^2) (v: the rows' mean squared distance from their mean),
        and about g they lose about eps wsum (|m|^2 + |c - g|^2) against the
        wsum v that matters: both distances within POOLED_MOVE v, the loss stays
        below 16 eps (an EM pass's centre and the kept one are near the data's
        mean). Else (a pass about 0 for data 1e8 away lost every digit) the pass
        makes them again; v is computed from the sums themselves, so sums that
        have lost it read a small or negative v and are made again too."""
        centre, s2, wsum = self._pooled
        return pooled_near(s2, centre, float(wsum), np.asarray(gshift, dtype=np.float64),
                           POOLED_MOVE)

    def _with_quad(self, ep, tiled):
        """(ep, True) with the quadratic-feature weights (``_estep.quad_params``) as
        its aux where a tiled float64 pass takes them (enough components, rounding
        within the bound); else (ep, False)."""
        if tiled and self.dtype == np.float64 and quad_pays(*ep.means.shape):
            W = quad_params(ep[1], ep.means, ep.gshift)
            if W is not None:
                return EStep(ep.ct, ep.means, ep[1], W, ep[3], ep[4], ep.gshift), True
        return ep, False

    def _tile_args(self, ep, gshift, needed):
        """``ucat``, ``muu`` for the tiled 'full' kernels; empty arrays of the work
        dtype (which still set the tiles' dtype) where the pass does not use them."""
        d = self.n_features
        if needed:
            return tile_params(ep[1], ep[0], gshift, self.dtype)
        K = ep[0].shape[0]
        return _placeholders(K, d, label_dtype(K), self.dtype)[2:4]

    def _shift(self, ct, means, gshift):
        """The statistics' shift: each component's mean, or for the tiled 'full'
        kernels the common gshift. A writable C-ordered copy (np.array keeps a
        broadcast's zero-stride layout as Fortran order, another compiled variant)."""
        if uses_tiles(ct, self.n_features):
            return np.array(np.broadcast_to(gshift, means.shape), order="C")
        return np.array(means, dtype=np.float64, order="C")

    # ----------------------------------------------------- the driver's API
    def stats(self, ep):
        """One fused E+M pass at the E-step parameters ``ep`` (``_mstep.EStep``).
        'diag' and 'spherical' on rows centred on gshift where the parameters allow
        (``centred_means``) and the sums show their digits kept
        (``centred_sums_kept``); else (components that collapsed in the pass) the
        pass again by the per-component kernels."""
        shift = self._shift(ep.ct, ep.means, ep.gshift)
        if ep.ct in (DIAG, SPHERICAL) and self.centred_passes:
            cm = centred_means(ep.means, ep[2], ep.gshift)
            if cm.shape[1] > 0:
                st = self._pass(ep.ct, MODE_EM, ep, shift, ep.gshift, centred=cm)
                if centred_sums_kept(st.nk, st.s1, st.s2, shift, ep.gshift):
                    return st
        return self._pass(ep.ct, MODE_EM, ep, shift, ep.gshift)

    def given_stats(self, ct, n_components, labels=None, resp_chunks=None, guess=None):
        """Statistics of given responsibilities: hard ``labels`` (K or more: none)
        or ``resp_chunks()`` yielding (first row, (rows, K) float64 block). Shifted
        so that the one-pass covariance cannot cancel: by ``guess`` ((K, d) centres
        near the components' means, and their row counts) in one pass; else a
        first pass for the means, then the scatter about those means."""
        K, d = n_components, self.n_features

        def run(shift, gshift):
            if labels is not None:
                return self._pass(ct, MODE_LABELS, None, shift, gshift, labels=labels)
            total = None
            for start, R in resp_chunks():
                part = self._pass(ct, MODE_RESP, None, shift, gshift, R=R,
                                  rows=(start, start + R.shape[0]))
                total = part if total is None else total + part
            return total

        if guess is None:
            first = run(np.zeros((K, d)), np.zeros(d))
            means = first.s1 / (first.nk + 10 * self.eps)[:, None]
            counts = first.nk
        else:
            means, counts = guess
        gshift = (counts @ means) / max(float(np.sum(counts)), np.finfo(np.float64).tiny)
        shift = self._shift(ct, means, gshift)
        st = run(shift, gshift)
        # a component without weight gets scikit-learn's mean 0 whatever its shift
        # (its sums are 0 whatever the shift)
        st.shift[st.nk == 0] = 0.0
        return st

    def log_prob(self, ep, out):
        """Row-wise outputs at ``ep``: 'lse' (log p(x)), 'label' or 'resp', in the
        work dtype (labels int64)."""
        mode = OUTPUTS[out]
        X, n, d = self.X, self.n_samples, self.n_features
        K = ep.means.shape[0]  # sizes from the parameters the kernel is handed
        out_lse = np.empty(n if mode != OUT_LABEL else 0)
        out_label = np.empty(n if mode == OUT_LABEL else 0, dtype=np.int64)
        out_resp = np.empty((n, K) if mode == OUT_RESP else (0, K))
        tiled = uses_tiles(ep.ct, d)
        ep, quad = self._with_quad(ep, tiled)
        ucat, muu = self._tile_args(ep, ep.gshift, tiled and not quad)
        kernel = log_prob_kernel(ep.ct, tiled, small_d(ep.ct, d))
        nb = -(-n // block_size(ep.ct, d))
        T = _pool.threads_for(self.n_jobs, nb, n * K * d * (d if ep.ct == FULL else 1))

        def task(t, T):
            kernel(X, *ep, ep.gshift, ucat, muu, mode, out_lse, out_label, out_resp, t, T)

        with _pool.blas_one_thread(tiled):
            _pool.run(task, T)
        if mode == OUT_LABEL:
            return out_label
        if mode == OUT_RESP:
            return out_resp.astype(self.dtype, copy=False)
        return out_lse.astype(self.dtype, copy=False)

    def for_start(self, random_state, needs_rows):
        """The engine a start runs on: this one (the Dask engine samples rows)."""
        return self

    def kmeans_labels(self, n_clusters, random_state):
        """scikit-learn's KMeans(n_init=1) labels, centres (float64) and counts."""
        return kmeans_labels(self.X, n_clusters, random_state,
                             sample_weight=self.sample_weight, n_jobs=self.n_jobs)

    def kmeans_plusplus(self, n_clusters, random_state):
        """The rows scikit-learn's kmeans_plusplus picks."""
        return kmeans_plusplus_indices(self.X, n_clusters, random_state,
                                       sample_weight=self.sample_weight, n_jobs=self.n_jobs)

    def rows(self, indices):
        return np.asarray(self.X[indices], dtype=np.float64)

    def subset(self, indices, ct):
        """An engine on the rows ``indices`` alone (sorted, unique) for statistics of
        type ``ct`` where only those rows have a responsibility: a read-only
        C-ordered copy in X's dtype (an X of another layout compiles its C-order
        labels kernel once). 'tied' statistics pool all rows: only once an earlier
        pass has made those sums (which the new engine then holds), else None."""
        if ct == TIED and self._pooled is None:
            return None
        X = np.ascontiguousarray(self.X[indices])
        X.flags.writeable = False
        w = None if self.sample_weight is None else self.sample_weight[indices]
        sub = CPUEngine(X, w, self.n_jobs)
        sub._pooled, sub._pooled_only = self._pooled, True
        return sub
