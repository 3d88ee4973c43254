"""The additive sufficient statistics of a pass, as one value.

``Stats`` holds, for each component k, nk, s1 = sum w r (x - shift_k), the
second moments s2 (layout by covariance type, see ``_accumulate``) and the
weighted log-likelihood ll, together with the shifts they are taken about:
``shift`` (K, d) and the common ``gshift`` (d,) of the 'tied' pooled scatter.
Statistics about the same shifts add (chunks of one pass, a Dask tree
reduction); ``about`` moves them to another origin (exact algebra) and
``blend`` mixes two about the same origin (the online EM of ``partial_fit``).
"""

import functools

import numpy as np

from ._estep import FULL, SPHERICAL, TIED
from ._mstep import cov_layout, scatter_into, stats_arrays
from ._numba import jit_exact, wide_vectors


@functools.lru_cache(maxsize=64)
def _upper_mask(d):
    mask = np.triu(np.ones((d, d), dtype=bool))
    mask.flags.writeable = False
    return mask


def sym_upper(a):
    """Fill the lower triangle of each (.., d, d) matrix from its upper triangle
    (a selection: one np.where on a cached mask, no arithmetic)."""
    return np.where(_upper_mask(a.shape[-1]), a, np.swapaxes(a, -1, -2))


def pooled_moved(s2, g_from, g_to, wsum):
    """A 'tied' pass's pooled sums s2 (1, d + 1, d) (rows :d: sum_i w_i (x_i - g)
    (x_i - g)^T, upper triangle; row d: sum_i w_i (x_i - g)) about g = g_from,
    moved to g_to by exact algebra (x - g_to = (x - g_from) + dg): a new array,
    the square filled (``_pooled_move``, compiled: in NumPy the move took some
    20 us, 6 of them a 10k x 8 'tied' Bayesian fit, a tenth of its time)."""
    out = np.empty(s2.shape)
    _pooled_move(s2, np.asarray(g_from, dtype=np.float64),
                 np.asarray(g_to, dtype=np.float64), float(wsum), out)
    return out


@jit_exact
def _pooled_move(s2, g_from, g_to, wsum, out):
    """``pooled_moved`` into out: S + e dg^T + dg e^T + wsum dg dg^T and e + wsum dg
    (S the square of the upper triangle, e the first moments, dg = g_from - g_to),
    added in that order, without fused multiply-adds (NumPy's own roundings)."""
    wide_vectors()
    d = s2.shape[2]
    for a in range(d):
        dga = g_from[a] - g_to[a]
        ea = s2[0, d, a]
        for b in range(d):
            dgb = g_from[b] - g_to[b]
            S = s2[0, a, b] if a <= b else s2[0, b, a]
            out[0, a, b] = ((S + ea * dgb) + dga * s2[0, d, b]) + wsum * (dga * dgb)
        out[0, d, a] = ea + wsum * dga


@jit_exact
def pooled_near(s2, centre, wsum, gshift, limit):
    """Whether pooled sums s2 about ``centre`` (see ``pooled_moved``) keep their
    digits moved to ``gshift``: |m|^2 + |centre - gshift|^2 <= limit v, m the rows'
    mean less the centre and v their mean squared distance from their mean, both
    from the sums (``_engine.CPUEngine._pooled_near``)."""
    wide_vectors()
    if wsum <= 0.0:
        return False
    d = centre.shape[0]
    mm = tr = gg = 0.0
    for a in range(d):
        m = s2[0, d, a] / wsum
        mm += m * m
        tr += s2[0, a, a]
        g = centre[a] - gshift[a]
        gg += g * g
    return mm + gg <= limit * (tr / wsum - mm)


def s2_shape(ct, n_components, n_features):
    K, d = n_components, n_features
    if ct == FULL:
        return (K, d, d)
    if ct == TIED:
        return (1, d + 1, d)
    return (K, 1, d)


class Stats:
    """Additive float64 statistics about ``shift`` / ``gshift`` (see the module)."""

    __slots__ = ("ct", "nk", "s1", "s2", "ll", "shift", "gshift")

    def __init__(self, ct, nk, s1, s2, ll, shift, gshift):
        self.ct, self.nk, self.s1, self.s2, self.ll = ct, nk, s1, s2, float(ll)
        self.shift, self.gshift = shift, gshift

    def __add__(self, other):
        """The statistics of both passes (the same shifts: chunks of one pass)."""
        return Stats(self.ct, self.nk + other.nk, self.s1 + other.s1, self.s2 + other.s2,
                     self.ll + other.ll, self.shift, self.gshift)

    def about(self, origin, wsum):
        """Per unit weight (divided by ``wsum``) and about ``origin`` (d,) for every
        component: exact algebra, so that statistics of passes with different
        shifts can be blended."""
        delta = self.shift - origin  # (K, d)
        nk, s1 = self.nk, self.s1
        if self.ct == FULL:
            s2 = sym_upper(self.s2)
            cross = s1[:, :, None] * delta[:, None, :]
            s2 = (s2 + cross + np.swapaxes(cross, 1, 2)
                  + nk[:, None, None] * delta[:, :, None] * delta[:, None, :])
        elif self.ct == TIED:
            s2 = pooled_moved(self.s2, self.gshift, origin, wsum)
        else:
            s2 = self.s2 + (2 * s1 * delta + nk[:, None] * delta * delta)[:, None, :]
        origin = np.asarray(origin, dtype=np.float64)
        return Stats(self.ct, nk / wsum, (s1 + nk[:, None] * delta) / wsum, s2 / wsum,
                     self.ll / wsum, np.array(np.broadcast_to(origin, self.shift.shape)),
                     origin.copy())

    def scatter(self, dm, wsum):
        """sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T about the centres c = shift + dm,
        by exact algebra from the shifted sums (``_mstep.scatter_into``): (K, d, d)
        for 'full', the diagonals (K, d) for 'diag' / 'spherical', and for 'tied'
        the (d, d) sum over the components in scikit-learn's form,
        X^T X - sum_k r_k c_k c_k^T."""
        K, d = self.s1.shape
        S = np.empty(cov_layout(self.ct, K, d) if self.ct != SPHERICAL else (K, 1, d))
        scatter_into(self.ct, *stats_arrays(self), np.ascontiguousarray(dm, dtype=np.float64),
                     float(wsum), S)
        if self.ct == FULL:
            return S
        return S[0] if self.ct == TIED else S[:, 0, :]

    def blend(self, other, rho):
        """(1 - rho) self + rho other, both about the same origin."""
        mix = lambda a, b: (1 - rho) * a + rho * b  # noqa: E731
        return Stats(self.ct, mix(self.nk, other.nk), mix(self.s1, other.s1),
                     mix(self.s2, other.s2), mix(self.ll, other.ll), self.shift, self.gshift)

    def scaled(self, factor):
        """The statistics of ``factor`` times the weight (the sums times factor)."""
        if factor == 1.0:
            return self
        return Stats(self.ct, self.nk * factor, self.s1 * factor, self.s2 * factor,
                     self.ll * factor, self.shift, self.gshift)
