"""Results are bitwise identical whatever the thread count; n_jobs is restored."""

import numba
import numpy as np
import pytest

from fastgmm import GaussianMixture

from conftest import COV_TYPES

N_MAX = numba.config.NUMBA_NUM_THREADS


def _data(d=5):
    rng = np.random.RandomState(0)
    # 5000 rows: 20 blocks, several per thread and a ragged last block
    return np.concatenate([rng.normal(size=(1250, d)) * (1 + k) + 5 * k for k in range(4)])


@pytest.mark.parametrize("covariance_type,d", [(ct, 5) for ct in COV_TYPES] + [("full", 20)])
def test_bitwise_identical_across_thread_counts(covariance_type, d):
    X = _data(d)
    sw = np.random.RandomState(1).uniform(0, 2, size=X.shape[0])
    results = []
    for n_jobs in sorted({1, 2, N_MAX}):
        gm = GaussianMixture(4, covariance_type=covariance_type, random_state=0,
                             init_params="random", max_iter=15, tol=0, n_jobs=n_jobs)
        with pytest.warns(Warning):
            gm.fit(X, sample_weight=sw)
        results.append((gm, gm.score_samples(X), gm.predict_proba(X)))
    a, ss, pp = results[0]
    for b, ss_b, pp_b in results[1:]:
        for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
        assert a.lower_bounds_ == b.lower_bounds_
        assert np.array_equal(ss, ss_b) and np.array_equal(pp, pp_b)


def test_more_threads_than_blocks_and_fewer():
    X = _data()[:300]  # two blocks
    fits = [GaussianMixture(2, random_state=0, n_jobs=j).fit(X) for j in (1, N_MAX)]
    assert np.array_equal(fits[0].means_, fits[1].means_)


def test_n_jobs_sets_and_restores_thread_count():
    X = _data()
    before = numba.get_num_threads()
    seen = []

    class Spy(GaussianMixture):
        def _em_step(self, X, params):
            seen.append(numba.get_num_threads())
            return super()._em_step(X, params)

    with pytest.warns(Warning):
        Spy(2, n_jobs=1, max_iter=2, tol=0, random_state=0).fit(X)
    assert seen and set(seen) == {1}
    assert numba.get_num_threads() == before


def test_thread_count_restored_when_fit_raises():
    before = numba.get_num_threads()
    X = np.zeros((10, 2))
    X[:5] = 1.0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, reg_covar=0, n_jobs=1, random_state=0).fit(X)
    assert numba.get_num_threads() == before


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2"])
def test_bad_n_jobs(n_jobs):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="The 'n_jobs' parameter"):
        GaussianMixture(2, n_jobs=n_jobs).fit(_data())
