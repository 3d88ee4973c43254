"""Whole fits against scikit-learn for the same random_state."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastgmm import GaussianMixture

from conftest import INIT_PARAMS, TOL, make_data

ATTRS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def _fit_both(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fg = GaussianMixture(**kw)
        labels = fg.fit_predict(X)
        sk = SkGaussianMixture(**kw)
        sk_labels = sk.fit_predict(X)
    return fg, labels, sk, sk_labels


def _assert_same_model(fg, sk, tol):
    assert fg.n_iter_ == sk.n_iter_
    assert fg.converged_ == sk.converged_
    for attr in ATTRS:
        a, b = getattr(fg, attr), getattr(sk, attr)
        assert a.shape == b.shape and a.dtype == b.dtype, attr
        np.testing.assert_allclose(a, b, err_msg=attr, **tol)
    np.testing.assert_allclose(fg.lower_bound_, sk.lower_bound_, rtol=tol["rtol"])
    np.testing.assert_allclose(fg.lower_bounds_, sk.lower_bounds_, rtol=tol["rtol"])


@pytest.mark.parametrize("init_params", INIT_PARAMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fit_matches_sklearn(covariance_type, init_params, seed):
    X = make_data(n=600, d=3, K=3, seed=seed)
    kw = dict(n_components=3, covariance_type=covariance_type, init_params=init_params,
              random_state=seed, tol=1e-6, max_iter=200)
    fg, labels, sk, sk_labels = _fit_both(X, **kw)
    _assert_same_model(fg, sk, dict(rtol=1e-6, atol=1e-8))
    np.testing.assert_array_equal(labels, sk_labels)
    np.testing.assert_array_equal(labels, fg.predict(X))


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_fit_matches_sklearn_float32(covariance_type, init_params):
    X = make_data(n=600, d=3, K=3, seed=4, dtype=np.float32)
    # 'random_from_data' and 'k-means++' start from single rows, whose covariance
    # is reg_covar alone: the first E-step then works with log-densities of order
    # 1e8, where float32 has no digits left, and scikit-learn's float32 arithmetic
    # and fastgmm's float64 accumulation may assign rows differently. For those
    # two, float32 parity is checked on the start itself, and there only on the
    # weights, means and covariances: scikit-learn's float32 scatter of a single
    # row is rounding noise of about 1e-5, which the 1e6 precision magnifies.
    singleton_start = init_params in ("random_from_data", "k-means++")
    kw = dict(n_components=3, covariance_type=covariance_type, init_params=init_params,
              random_state=7, max_iter=0 if singleton_start else 10, tol=0)
    fg, labels, sk, sk_labels = _fit_both(X, **kw)
    for attr in ATTRS[:3] if singleton_start else ATTRS:
        a, b = getattr(fg, attr), getattr(sk, attr)
        assert a.dtype == np.float32 == b.dtype, attr
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3, err_msg=attr)
    assert fg.score_samples(X).dtype == np.float32
    assert fg.predict_proba(X).dtype == np.float32
    if not singleton_start:
        assert np.mean(labels == sk_labels) > 0.99


@pytest.mark.parametrize("n_init", [1, 3])
def test_n_init_best_of(n_init):
    X = make_data(n=500, d=2, K=4, seed=9)
    kw = dict(n_components=4, n_init=n_init, init_params="random", random_state=0,
              max_iter=30, tol=1e-5)
    fg, labels, sk, sk_labels = _fit_both(X, **kw)
    _assert_same_model(fg, sk, dict(rtol=1e-6, atol=1e-8))
    np.testing.assert_array_equal(labels, sk_labels)


def test_max_iter_zero_gives_sklearn_start(covariance_type):
    X = make_data(n=400, d=3, K=3, seed=2)
    for init in INIT_PARAMS:
        kw = dict(n_components=3, covariance_type=covariance_type, init_params=init,
                  random_state=5, max_iter=0)
        fg, labels, sk, sk_labels = _fit_both(X, **kw)
        for attr in ATTRS:
            # precisions: scikit-learn's diag scatter of a single row (avg x^2 - m^2)
            # keeps ~1e-13 of rounding that a reg_covar-sized variance magnifies
            rtol = 1e-6 if attr.startswith("precisions") else 1e-7
            np.testing.assert_allclose(getattr(fg, attr), getattr(sk, attr), rtol=rtol,
                                       atol=1e-9, err_msg=f"{init} {attr}")
        assert fg.n_iter_ == 0 and fg.lower_bound_ == -np.inf and fg.lower_bounds_ == []
        np.testing.assert_array_equal(labels, sk_labels)


def test_warm_start_matches_sklearn():
    X = make_data(n=500, d=2, K=3, seed=3)
    kw = dict(n_components=3, warm_start=True, max_iter=2, random_state=1, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fg, sk = GaussianMixture(**kw), SkGaussianMixture(**kw)
        for _ in range(3):
            fg.fit(X)
            sk.fit(X)
            _assert_same_model(fg, sk, dict(rtol=1e-7, atol=1e-9))


def test_convergence_warning_and_verbose_output(capsys):
    X = make_data(n=300, d=2, K=2, seed=1)
    for cls in (GaussianMixture, SkGaussianMixture):
        with pytest.warns(ConvergenceWarning, match="did not converge"):
            cls(2, max_iter=2, tol=0, verbose=1, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out.split("\n")
    half = len(out) // 2
    assert out[:half] == out[half:-1] or out[: half + 1] == out[half:]
    assert "Initialization 0" in out[0] and "Iteration 2" in "\n".join(out)


def test_verbose_2_prints_lower_bound(capsys):
    X = make_data(n=300, d=2, K=2, seed=1)
    GaussianMixture(2, verbose=2, verbose_interval=1, random_state=0).fit(X)
    out = capsys.readouterr().out
    assert "ll change" in out and "lower bound" in out and "converged" in out


def test_sample_bic_aic_match_sklearn(covariance_type):
    X = make_data(n=400, d=3, K=2, seed=6)
    kw = dict(n_components=2, covariance_type=covariance_type, random_state=3)
    fg, _, sk, _ = _fit_both(X, **kw)
    Xs, ys = fg.sample(50)
    Xs_sk, ys_sk = sk.sample(50)
    np.testing.assert_allclose(Xs, Xs_sk, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(ys, ys_sk)
    assert fg.bic(X) == pytest.approx(sk.bic(X), rel=1e-8)
    assert fg.aic(X) == pytest.approx(sk.aic(X), rel=1e-8)
    assert fg.score(X) == pytest.approx(sk.score(X), rel=1e-8)
    with pytest.raises(ValueError, match="The sampling requires at least one sample"):
        fg.sample(0)


def test_larger_problem_matches_sklearn():
    """Many blocks and groups, d = 16: the parallel reduction agrees with scikit-learn."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(size=(6000, 16)) + 4 * k for k in range(4)])
    kw = dict(n_components=4, random_state=0, max_iter=5, tol=0)
    fg, labels, sk, sk_labels = _fit_both(X, **kw)
    _assert_same_model(fg, sk, dict(rtol=1e-7, atol=1e-9))
    np.testing.assert_array_equal(labels, sk_labels)
