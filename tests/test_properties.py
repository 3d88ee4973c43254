"""Hypothesis property tests of EM invariants."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from fastgmm import GaussianMixture

from conftest import COV_TYPES, start_params

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    n = draw(st.integers(20, 700))
    d = draw(st.integers(1, 5))
    K = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    ct = draw(st.sampled_from(COV_TYPES))
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.randint(0, 3, (n, 1)) * 4
    return X, K, ct, seed


def _fit(X, K, ct, w, m, p, reg_covar=1e-6, max_iter=8):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(K, covariance_type=ct, weights_init=w, means_init=m,
                               precisions_init=p, max_iter=max_iter, tol=0,
                               reg_covar=reg_covar).fit(X)


@SETTINGS
@given(problems())
def test_responsibilities_sum_to_one_and_bound_increases(problem):
    X, K, ct, seed = problem
    w, m, p = start_params(X, K, ct, seed=seed % 1000)
    gm = _fit(X, K, ct, w, m, p)
    np.testing.assert_allclose(gm.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    lbs = np.asarray(gm.lower_bounds_)
    assert np.all(np.diff(lbs) >= -1e-9 * np.abs(lbs[1:]))


@SETTINGS
@given(problems())
def test_row_permutation_changes_nothing(problem):
    X, K, ct, seed = problem
    w, m, p = start_params(X, K, ct, seed=seed % 1000)
    perm = np.random.RandomState(seed % 7).permutation(X.shape[0])
    a = _fit(X, K, ct, w, m, p)
    b = _fit(X[perm], K, ct, w, m, p)
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a.score_samples(X)[perm], b.score_samples(X[perm]), rtol=1e-8)


@SETTINGS
@given(problems(), st.floats(0.01, 100))
def test_scaling_shifts_loglik_by_log_jacobian(problem, s):
    X, K, ct, seed = problem
    d = X.shape[1]
    w, m, p = start_params(X, K, ct, seed=seed % 1000)
    a = _fit(X, K, ct, w, m, p, reg_covar=1e-6)
    b = _fit(X * s, K, ct, w, m * s, p / s**2, reg_covar=1e-6 * s**2)
    np.testing.assert_allclose(b.lower_bound_, a.lower_bound_ - d * np.log(s), rtol=1e-7,
                               atol=1e-7)
    np.testing.assert_allclose(b.means_, a.means_ * s, rtol=1e-6, atol=1e-8 * s)
