"""partial_fit: online (stepwise) EM."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from fastgmm import GaussianMixture

from conftest import start_params


def _mixture_stream(n_batches, batch, seed=0):
    rng = np.random.RandomState(seed)
    means = np.array([[0.0, 0.0], [6.0, 1.0], [1.0, 7.0]])
    covs = [np.array([[1.0, 0.3], [0.3, 0.5]]), np.eye(2) * 0.7, np.array([[0.6, -0.2], [-0.2, 1.2]])]
    weights = np.array([0.5, 0.3, 0.2])
    out = []
    for _ in range(n_batches):
        z = rng.choice(3, size=batch, p=weights)
        X = np.empty((batch, 2))
        for k in range(3):
            X[z == k] = rng.multivariate_normal(means[k], covs[k], size=(z == k).sum())
        out.append(X)
    return out


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_stream_approaches_batch_fit(covariance_type):
    batches = _mixture_stream(80, 1000)
    X = np.concatenate(batches)
    full = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    for b in batches:
        online.partial_fit(b)
    assert online.n_iter_ == 80 and len(online.lower_bounds_) == 80
    cost = ((full.means_[:, None] - online.means_[None]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    # stated tolerances: weights 0.02, means 0.05, covariances 10 %, mean log-lik 1 %
    np.testing.assert_allclose(online.weights_[perm], full.weights_, atol=0.02)
    np.testing.assert_allclose(online.means_[perm], full.means_, atol=0.05)
    cov_online = online.covariances_ if covariance_type == "tied" else online.covariances_[perm]
    np.testing.assert_allclose(cov_online, full.covariances_, rtol=0.1, atol=0.03)
    assert abs(online.score(X) - full.score(X)) <= 0.01 * abs(full.score(X))


def test_first_call_uses_given_start_and_later_calls_check_features():
    b0, b1 = _mixture_stream(2, 500, seed=1)
    w, m, p = start_params(b0, 3, "full", seed=0)
    gm = GaussianMixture(3, weights_init=w, means_init=m, precisions_init=p)
    gm.partial_fit(b0)
    one_step = GaussianMixture(3, weights_init=w, means_init=m, precisions_init=p, max_iter=1)
    with pytest.warns(Warning):
        one_step.fit(b0)
    # the first batch is one EM step from the given start
    np.testing.assert_allclose(gm.means_, one_step.means_, rtol=1e-9)
    np.testing.assert_allclose(gm.covariances_, one_step.covariances_, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting "
                                         "2 features as input"):
        gm.partial_fit(np.zeros((10, 3)))
    gm.partial_fit(b1)
    assert gm.n_iter_ == 2


def test_integer_weights_equal_repeated_rows_online():
    batches = _mixture_stream(5, 300, seed=2)
    rng = np.random.RandomState(0)
    ws = [rng.randint(0, 4, size=len(b)) for b in batches]
    w, m, p = start_params(batches[0], 3, "diag", seed=1)
    kw = dict(covariance_type="diag", weights_init=w, means_init=m, precisions_init=p)
    a, b = GaussianMixture(3, **kw), GaussianMixture(3, **kw)
    for X, sw in zip(batches, ws):
        a.partial_fit(X, sample_weight=sw)
        b.partial_fit(np.repeat(X, sw, axis=0))
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-9)


def test_partial_fit_after_fit_continues_from_fit():
    batches = _mixture_stream(3, 800, seed=3)
    gm = GaussianMixture(3, random_state=0).fit(batches[0])
    before = gm.means_.copy()
    gm.partial_fit(batches[1])
    assert gm.n_iter_ == 1
    assert np.abs(gm.means_ - before).max() < 0.5  # continued, not restarted elsewhere


def test_partial_fit_bad_step_parameters():
    from sklearn.utils._param_validation import InvalidParameterError

    for kw in ({"learning_decay": 0.5}, {"learning_decay": 1.5}, {"learning_offset": -1}):
        with pytest.raises(InvalidParameterError):
            GaussianMixture(2, **kw).partial_fit(np.random.rand(20, 2))
