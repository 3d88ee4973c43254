"""The Numba k-means start against scikit-learn's KMeans and kmeans_plusplus."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastgmm import GaussianMixture
from fastgmm._kmeans import (_pairwise_sum_of_ones, column_mean, first_center, kmeans_labels,
                             kmeans_plusplus_indices, label_dtype, lloyd, rows_from_data)

from conftest import INIT_PARAMS


def _datasets(seed):
    """Blobs, anisotropic blobs and heavy-tailed clusters, d from 1 to 64."""
    rng = np.random.RandomState(seed)
    for d in (1, 2, 5, 16, 64):
        K = rng.randint(2, 12)
        n = rng.randint(200, 2000)
        centers = rng.uniform(-5, 5, (K, d))
        lab = rng.randint(0, K, n)
        yield "blobs", K, rng.normal(size=(n, d)) + centers[lab]
        yield "aniso", K, (rng.normal(size=(n, d)) + centers[lab]) @ rng.normal(size=(d, d))
        yield "heavy", K, rng.standard_t(2, size=(n, d)) + centers[lab]


def _cases(n_seeds, dtypes=(np.float64, np.float32)):
    for seed in range(n_seeds):
        for name, K, X in _datasets(seed):
            for dtype in dtypes:
                yield seed, name, K, X.astype(dtype)


def test_kmeans_plusplus_picks_sklearns_rows():
    same = total = 0
    for seed, _, K, X in _cases(5):
        _, idx = kmeans_plusplus(X, K, random_state=np.random.RandomState(seed))
        same += np.array_equal(kmeans_plusplus_indices(X, K, np.random.RandomState(seed)), idx)
        total += 1
    assert total == 150 and same / total >= 0.95, same


def test_in_memory_and_memmap_seeding_agree(tmp_path):
    """An in-memory X keeps each row's distance to its nearest centre (8 bytes a
    row), a memmap the centre's index (1 byte, the distance recomputed): the
    same rows and the same k-means labels either way."""
    for i, (seed, _, K, X) in enumerate(_cases(2)):
        path = tmp_path / f"{i}.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
        mm[:] = X
        mm.flush()
        mm = np.load(path, mmap_mode="r")
        assert isinstance(mm, np.memmap) and not isinstance(X, np.memmap)
        np.testing.assert_array_equal(kmeans_plusplus_indices(mm, K, np.random.RandomState(seed)),
                                      kmeans_plusplus_indices(X, K, np.random.RandomState(seed)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lab_mm, c_mm, _ = kmeans_labels(mm, K, np.random.RandomState(seed))
            lab_x, c_x, _ = kmeans_labels(X, K, np.random.RandomState(seed))
        np.testing.assert_array_equal(lab_mm, lab_x)
        np.testing.assert_array_equal(c_mm, c_x)


def test_kmeans_reaches_sklearns_labels():
    same = total = 0
    for seed, _, K, X in _cases(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk = KMeans(K, n_init=1, random_state=np.random.RandomState(seed)).fit(X).labels_
            fg, _, _ = kmeans_labels(X, K, np.random.RandomState(seed))
        same += np.array_equal(sk, fg)
        total += 1
    assert total == 150 and same / total >= 0.90, same


def test_weighted_kmeans_matches_sklearn():
    same = total = 0
    for seed, _, K, X in _cases(3, dtypes=(np.float64,)):
        sw = np.random.RandomState(seed).randint(1, 5, size=X.shape[0]).astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk = KMeans(K, n_init=1, random_state=seed).fit(X, sample_weight=sw).labels_
            fg, _, _ = kmeans_labels(X, K, np.random.RandomState(seed), sample_weight=sw)
        same += np.array_equal(sk, fg)
        total += 1
    assert same / total >= 0.90, same


def test_weighted_lloyd_equals_repeated_rows():
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(size=(150, 3)) + 4 * k for k in range(3)])
    sw = rng.randint(0, 4, size=X.shape[0])
    centers = X[[0, 200, 400]].copy()
    Xr = np.repeat(X, sw, axis=0)
    xmean = np.zeros(3)
    lab_w, c_w, cnt_w = lloyd(X, xmean, sw.astype(float), centers, 0.0, 8)
    lab_r, c_r, cnt_r = lloyd(Xr, xmean, np.zeros(0), centers, 0.0, 8)  # unit weights
    np.testing.assert_allclose(c_w, c_r, rtol=1e-12)
    np.testing.assert_array_equal(np.repeat(lab_w, sw), lab_r)
    np.testing.assert_array_equal(cnt_r, np.bincount(lab_r, minlength=3))


def _thread_counts():
    import numba

    n_max = numba.config.NUMBA_NUM_THREADS
    counts = sorted({c for c in (1, 2, n_max) if c <= n_max})
    if len(counts) < 2:
        pytest.skip("one thread only: nothing to compare")
    return counts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_bitwise_identical_across_thread_counts(dtype):
    """The k-means kernels under 1 and more threads (numba.set_num_threads, as
    n_jobs sets it; restored after): the same rows, labels and centres, bit for
    bit, weighted or not. 40k rows: 157 blocks, dozens a thread, and (float32)
    k-means++ running sums across blocks. Under OpenMP's static schedule a
    reduction that follows the threads (one accumulator a thread instead of one
    a block) fails this; TBB may run loops this short on one thread, and then
    nothing can tell."""
    import numba

    rng = np.random.RandomState(1)
    X = np.concatenate([rng.normal(size=(8000, 4)) * (1 + k) + 3 * k for k in range(5)])
    X = X.astype(dtype)
    sw = rng.uniform(0.5, 2, size=X.shape[0])
    before = numba.get_num_threads()
    out = []
    try:
        for n in _thread_counts():
            numba.set_num_threads(n)
            rows = kmeans_plusplus_indices(X, 7, np.random.RandomState(0))
            lab, cen, cnt = kmeans_labels(X, 7, np.random.RandomState(0))
            lab_w, cen_w, _ = kmeans_labels(X, 7, np.random.RandomState(0), sample_weight=sw)
            out.append((rows, lab, cen, cnt, lab_w, cen_w))
    finally:
        numba.set_num_threads(before)
    for res in out[1:]:
        for a, b in zip(out[0], res):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_kmeans_start_bitwise_identical_across_n_jobs(init_params):
    """The estimator's k-means starts with explicit n_jobs (n_jobs=None would
    reset the thread count to the maximum for every fit)."""
    rng = np.random.RandomState(1)
    X = np.concatenate([rng.normal(size=(8000, 4)) + 3 * k for k in range(5)])
    fits = [GaussianMixture(5, init_params=init_params, random_state=0, max_iter=0,
                            n_jobs=n).fit(X) for n in _thread_counts()]
    for gm in fits[1:]:
        assert np.array_equal(gm.means_, fits[0].means_)
        assert np.array_equal(gm.covariances_, fits[0].covariances_)


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_gmm_start_matches_sklearn_over_seeds_and_n_init(init_params):
    """max_iter=0 exposes the start; n_init=3 shares one generator across runs."""
    same = total = 0
    for seed, _, K, X in _cases(2, dtypes=(np.float64,)):
        kw = dict(n_components=K, init_params=init_params, random_state=seed, max_iter=0,
                  n_init=3, covariance_type="diag")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fg = GaussianMixture(**kw).fit(X)
            sk = SkGaussianMixture(**kw).fit(X)
        same += np.allclose(fg.means_, sk.means_, rtol=1e-7, atol=1e-9)
        total += 1
    # the goals: exact for the random starts, 95 % for k-means++, 90 % for kmeans
    threshold = {"kmeans": 0.9, "k-means++": 0.95}.get(init_params, 1.0)
    assert same / total >= threshold, (same, total)


def test_fewer_distinct_rows_than_components_warns_like_sklearn():
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 20, axis=0)
    messages = []
    for cls in (SkGaussianMixture, GaussianMixture):
        with pytest.warns(ConvergenceWarning) as record:
            cls(3, random_state=0).fit(X)
        messages.append(sorted(str(w.message) for w in record))
    assert messages[0] == messages[1]
    assert any("Number of distinct clusters (2) found smaller than n_clusters (3)" in m
               for m in messages[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_first_centre_draws_as_numpys_choice(dtype):
    """Unit weights: the first k-means++ row without numpy's n-sized p and cdf,
    the same row and the same generator state after."""
    for n in (1, 2, 7, 1001, 100_000):
        for seed in range(50):
            ref, ours = np.random.RandomState(seed), np.random.RandomState(seed)
            sw = np.ones(n, dtype)
            expected = ref.choice(n, p=sw / sw.sum())
            assert first_center(ours, n, None, np.dtype(dtype)) == expected
            assert ours.random_sample() == ref.random_sample()


@pytest.mark.parametrize("n", [1, 8, 129, 2**24 + 3, 30_000_005])
def test_sum_of_ones_is_numpys(n):
    """float32 ones do not sum to n beyond 2**24 rows; numpy's pairwise order is kept."""
    for dtype in (np.float32, np.float64):
        ours = _pairwise_sum_of_ones(n, np.dtype(dtype))
        theirs = np.ones(n, dtype).sum()
        assert ours == theirs and ours.dtype == theirs.dtype
    assert int(_pairwise_sum_of_ones(2**24 + 3, np.dtype(np.float32))) != 2**24 + 3


def test_labels_take_one_byte_below_255_clusters_and_two_above():
    assert label_dtype(2) == np.uint8 and label_dtype(254) == np.uint8
    assert label_dtype(255) == np.uint16 and label_dtype(300) == np.uint16
    X, K = np.random.RandomState(0).normal(size=(3000, 2)), 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = KMeans(K, n_init=1, random_state=0).fit(X).labels_
        fg, centers, counts = kmeans_labels(X, K, np.random.RandomState(0))
    assert fg.dtype == np.uint16 and fg.max() == K - 1
    np.testing.assert_array_equal(fg, sk)
    np.testing.assert_array_equal(counts, np.bincount(sk, minlength=K))


@pytest.mark.parametrize("d", [1, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_centring_mean_is_numpys_bit_for_bit(dtype, d):
    """scikit-learn's KMeans centres its C-ordered float copy on X.mean(axis=0);
    fastgmm reads X as it is (here Fortran order too) and gets the same bits.
    One column is contiguous and numpy sums it pairwise, not row by row."""
    rng = np.random.RandomState(0)
    X = (rng.standard_t(2, size=(100_003, d)) * 100 + 7).astype(dtype)
    expected = X.astype(np.float32 if dtype == np.float32 else np.float64).mean(axis=0)
    for data in (X, np.asfortranarray(X)):
        got = column_mean(data)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_rows_from_data_draw_as_numpys_choice_without_replacement():
    """'random_from_data' shuffles 4-byte indices: the same rows as scikit-learn's
    choice(n, K, replace=False) (an 8-byte permutation), the same generator state after."""
    for n in (3, 1000, 70_001):
        for K in (1, 3):
            for seed in range(20):
                ref, ours = np.random.RandomState(seed), np.random.RandomState(seed)
                expected = ref.choice(n, size=K, replace=False)
                np.testing.assert_array_equal(rows_from_data(ours, n, K), expected)
                assert ours.random_sample() == ref.random_sample()
