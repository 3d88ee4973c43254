"""Memmaps and other arrays that are not C-contiguous float: no full copy."""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastgmm import GaussianMixture

from conftest import make_data, start_params


def _memmap(tmp_path, X, order="C", dtype=None):
    dtype = X.dtype if dtype is None else dtype
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=dtype, shape=X.shape,
                                   fortran_order=(order == "F"))
    mm[:] = X
    mm.flush()
    return np.load(tmp_path / "X.npy", mmap_mode="r")


@pytest.mark.parametrize("order,dtype", [("C", np.float64), ("F", np.float64),
                                         ("C", np.float32), ("C", np.int32)])
def test_memmap_fit_equals_in_memory(tmp_path, order, dtype):
    X = make_data(n=3000, d=4, K=3, seed=1)
    if np.dtype(dtype).kind == "i":
        X = np.round(X * 100)
    mm = _memmap(tmp_path, X, order, dtype)
    ref_X = np.ascontiguousarray(mm, dtype=np.float32 if dtype == np.float32 else np.float64)
    a = GaussianMixture(3, random_state=0).fit(mm)
    b = GaussianMixture(3, random_state=0).fit(ref_X)
    tol = dict(rtol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), **tol)
        assert getattr(a, attr).dtype == getattr(b, attr).dtype
    np.testing.assert_array_equal(a.predict(mm), b.predict(ref_X))
    np.testing.assert_allclose(a.score_samples(mm), b.score_samples(ref_X), **tol)


def _peak_numpy_memory(mm, kw):
    """Peak traced allocations of fit, then of score_samples."""
    peaks = []
    gm = GaussianMixture(3, max_iter=3, tol=0, **kw)
    for call in (lambda: gm.fit(mm), lambda: gm.score_samples(mm)):
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                call()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return peaks


@pytest.mark.parametrize("start", ["given", "random", "kmeans", "k-means++"])
def test_no_full_copy_of_a_fortran_memmap(tmp_path, start):
    """Traced allocations (NumPy's and the kernels') grow with the rows by far
    less than the data does: a conversion of the whole array would grow as fast.
    The EM and a given or 'random' start need O(block) memory, the k-means starts
    one byte a row (the nearest centre, then the label: no 8-byte distance as for
    in-memory data); score_samples its n-sized output (8 bytes a row, against
    128 for X)."""
    X = make_data(n=200_000, d=16, K=3, seed=2)
    if start == "given":
        w, m, p = start_params(X[:1000], 3, "full", seed=0)
        kw = dict(weights_init=w, means_init=m, precisions_init=p)
    else:
        kw = dict(init_params=start, random_state=0)
    peaks, sizes = [], []
    for n in (2000, 100_000, 200_000):  # the first one compiles (or loads) the kernels
        (tmp_path / str(n)).mkdir()
        mm = _memmap(tmp_path / str(n), X[:n], "F")
        peaks.append(_peak_numpy_memory(mm, kw))
        sizes.append(mm.nbytes)
    peaks, sizes = peaks[1:], sizes[1:]
    (fit0, score0), (fit1, score1) = peaks
    assert fit1 - fit0 < 0.03 * (sizes[1] - sizes[0]), (peaks, sizes)
    assert score1 - score0 < 0.1 * (sizes[1] - sizes[0]), (peaks, sizes)


@pytest.mark.parametrize("start", ["kmeans", "k-means++"])
def test_kmeans_start_on_a_memmap_keeps_one_byte_a_row(tmp_path, start):
    """On a memmap the k-means seeding keeps each row's nearest centre (1 byte),
    not its distance (8 bytes, as for in-memory data): the fit's traced
    allocations grow by far less than 8 bytes a row (16 bytes of data a row)."""
    X = make_data(n=2_000_000, d=2, K=3, seed=5)
    growth = []
    for n in (2000, 1_000_000, 2_000_000):  # the first one compiles (or loads) the kernels
        (tmp_path / str(n)).mkdir()
        mm = _memmap(tmp_path / str(n), X[:n])
        gm = GaussianMixture(3, init_params=start, random_state=0, max_iter=1)
        tracemalloc.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gm.fit(mm)
            growth.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert growth[2] - growth[1] < 3 * 1_000_000, growth


def test_in_memory_default_fit_needs_little_beyond_the_data():
    """An in-memory fit from the default 'kmeans' start: traced allocations grow
    with the rows by about 9 bytes a row (each row's closest k-means++ distance,
    then its one-byte label) against 64 for X (d = 8)."""
    X = make_data(n=200_000, d=8, K=3, seed=4)
    GaussianMixture(3, random_state=0).fit(X[:2000])  # compile first
    peaks = []
    for n in (100_000, 200_000):
        tracemalloc.start()
        try:
            GaussianMixture(3, random_state=0).fit(X[:n])
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] - peaks[0] < 0.2 * (X[:200_000].nbytes - X[:100_000].nbytes), peaks


def test_nan_in_a_memmap_gets_sklearns_error(tmp_path):
    X = make_data(n=300_000 // 100, d=3, K=2, seed=3)
    X[-1, 1] = np.nan
    mm = _memmap(tmp_path, X, "F")
    with pytest.raises(ValueError, match="Input X contains NaN"):
        GaussianMixture(2).fit(mm)
