"""fastgmm.BayesianGaussianMixture against scikit-learn's, and beyond it."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import BayesianGaussianMixture as SkBGM
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgmm import BayesianGaussianMixture
from fastgmm._bayesian_mixture import resp_entropy
from fastgmm._engine import CPUEngine

COV_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
INITS = ["kmeans", "k-means++", "random", "random_from_data"]
FITTED = ["weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
          "mean_precision_", "degrees_of_freedom_", "mean_prior_", "covariance_prior_",
          "weight_concentration_prior_", "mean_precision_prior_",
          "degrees_of_freedom_prior_"]


def _blobs(n=600, d=3, centers=4, seed=0):
    X, _ = make_blobs(n, n_features=d, centers=centers, random_state=seed)
    return X


def _assert_same_model(ours, theirs, rtol=1e-7):
    for name in FITTED:
        np.testing.assert_allclose(np.asarray(getattr(ours, name), dtype=np.float64),
                                   np.asarray(getattr(theirs, name), dtype=np.float64),
                                   rtol=rtol, atol=rtol * 1e-3, err_msg=name)
    for a, b in zip(np.atleast_2d(ours.weight_concentration_),
                    np.atleast_2d(theirs.weight_concentration_)):
        np.testing.assert_allclose(a, b, rtol=rtol, err_msg="weight_concentration_")
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    # scikit-learn's 'tied' lower bound is a (1,)-array; ours a scalar, as documented
    assert ours.lower_bound_ == pytest.approx(float(np.ravel(theirs.lower_bound_)[0]),
                                              rel=rtol)
    np.testing.assert_allclose(ours.lower_bounds_,
                               [float(np.ravel(v)[0]) for v in theirs.lower_bounds_],
                               rtol=rtol)


def _fit_both(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianGaussianMixture(**kw).fit(X), SkBGM(**kw).fit(X)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("init_params", INITS)
def test_same_fit_as_sklearn(prior_type, covariance_type, init_params):
    X = _blobs()
    ours, theirs = _fit_both(X, n_components=5, covariance_type=covariance_type,
                             weight_concentration_prior_type=prior_type,
                             init_params=init_params, random_state=0, max_iter=40)
    _assert_same_model(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-9)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-9)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_tiled_full_and_many_features_as_sklearn(covariance_type):
    """d = 20: the 'full' pass runs on the BLAS-tiled kernels."""
    X = _blobs(n=800, d=20, centers=3, seed=1)
    ours, theirs = _fit_both(X, n_components=4, covariance_type=covariance_type,
                             random_state=1, max_iter=30)
    _assert_same_model(ours, theirs, rtol=1e-6)


def test_n_init_warm_start_and_max_iter_0_as_sklearn():
    X = _blobs(seed=2)
    _assert_same_model(*_fit_both(X, n_components=4, n_init=3, random_state=3, max_iter=20))
    kw = dict(n_components=4, warm_start=True, max_iter=5, random_state=4)
    ours, theirs = BayesianGaussianMixture(**kw), SkBGM(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(X)
            theirs.fit(X)
    _assert_same_model(ours, theirs)
    ours, theirs = _fit_both(X, n_components=3, max_iter=0, random_state=5)
    assert ours.n_iter_ == theirs.n_iter_ == 0
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_given_priors_as_sklearn(covariance_type):
    X = _blobs(seed=6)
    d = X.shape[1]
    cov_prior = {"full": np.eye(d) * 2.0, "tied": np.eye(d) * 0.5,
                 "diag": np.full(d, 3.0), "spherical": 1.5}[covariance_type]
    ours, theirs = _fit_both(
        X, n_components=4, covariance_type=covariance_type, random_state=0, max_iter=30,
        weight_concentration_prior=0.01, mean_precision_prior=0.5,
        mean_prior=np.arange(d, dtype=float), degrees_of_freedom_prior=d + 1.5,
        covariance_prior=cov_prior)
    _assert_same_model(ours, theirs)


@pytest.mark.parametrize("kw", [
    dict(degrees_of_freedom_prior=1.5),
    dict(mean_prior=[0.0, 1.0]),
    dict(covariance_prior=np.ones((3, 3)) * -1.0),
    dict(covariance_prior=np.ones((2, 2))),
    dict(covariance_type="diag", covariance_prior=[1.0, -1.0, 1.0]),
    dict(covariance_type="diag", covariance_prior=[1.0, 1.0]),
    dict(weight_concentration_prior_type="dirichlet"),
    dict(weight_concentration_prior=0.0),
    dict(mean_precision_prior=-1.0),
])
def test_errors_as_sklearn(kw):
    X = _blobs(n=50)
    with pytest.raises(Exception) as theirs:
        SkBGM(n_components=2, **kw).fit(X)
    with pytest.raises(type(theirs.value)) as ours:
        BayesianGaussianMixture(n_components=2, **kw).fit(X)
    assert str(ours.value) == str(theirs.value)


def test_not_fitted_and_constructor_as_sklearn():
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        BayesianGaussianMixture().predict(_blobs(n=10))
    ours = inspect.signature(BayesianGaussianMixture).parameters
    theirs = inspect.signature(SkBGM).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name, p in theirs.items():
        assert ours[name].default == p.default and ours[name].kind == p.kind, name
    assert list(ours)[len(theirs):] == ["learning_decay", "learning_offset",
                                        "total_samples", "n_jobs", "device"]
    assert not hasattr(BayesianGaussianMixture(), "bic")  # as scikit-learn's


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    # scikit-learn checks its own with n_init=2, max_iter=5
    [BayesianGaussianMixture(n_components=2, n_init=2, max_iter=5, random_state=0)],
    expected_failed_checks=lambda est: {
        # the k-means start draws per row (see test_api.py); weights equal repeated
        # rows from the same start: test_weights_are_repeated_rows below
        "check_sample_weight_equivalence_on_dense_data": (
            "the random k-means start differs between repeated rows and weights"),
    },
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------ scikit-learn's own
def test_lower_bound_never_decreases():
    """scikit-learn's test_monotonic_likelihood: every step of variational EM
    raises the lower bound."""
    X = _blobs(n=400, d=2, centers=3, seed=7)
    for ct in COV_TYPES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = BayesianGaussianMixture(n_components=5, covariance_type=ct, tol=0.0,
                                          max_iter=60, random_state=0).fit(X)
        assert np.all(np.diff(est.lower_bounds_) >= -1e-7 * np.abs(est.lower_bound_)), ct


def test_weight_concentration_prior_switches_components_off():
    """A small Dirichlet-process concentration switches the surplus components of
    three well-separated clusters off; a large one keeps more of them."""
    rng = np.random.default_rng(8)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = centres[rng.choice(3, 2000, p=[0.5, 0.3, 0.2])] + rng.normal(size=(2000, 2))

    def active(prior):
        est = BayesianGaussianMixture(n_components=8, weight_concentration_prior=prior,
                                      max_iter=1000, random_state=0).fit(X)
        return int(np.sum(est.weights_ > 0.01))

    assert active(1e-3) == 3
    assert active(1e3) > 3


# ---------------------------------------------------------------- the pass
@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("d", [3, 20])
def test_entropy_from_statistics_equals_sum_r_log_r(covariance_type, d):
    """The lower bound's entropy term, from the pass's statistics, is sum_i w_i
    sum_k r_ik log r_ik of the responsibilities (computed directly)."""
    X = _blobs(n=700, d=d, centers=3, seed=9)
    w = np.random.default_rng(0).uniform(0.2, 2.0, X.shape[0])
    est = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                  max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X)
    ep = est._estep(est._get_parameters(), np.dtype(np.float64))
    engine = CPUEngine(X, w)
    R = engine.log_prob(ep, "resp")
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.sum(w[:, None] * np.where(R > 0, R * np.log(R), 0.0))
    assert resp_entropy(engine.stats(ep), ep, engine.wsum) == pytest.approx(direct, rel=1e-9, abs=1e-8)


# ------------------------------------------------- the compiled arithmetic
def test_digamma_and_gammaln_as_scipy():
    """The compiled special functions of the variational arithmetic against
    scipy.special's over the range the parameters take (x > 0: concentrations
    from 1e-3, degrees of freedom from d - 1, counts to 1e9), the roots and the
    switch to the asymptotic series included."""
    from scipy.special import digamma, gammaln

    from fastgmm._variational import special

    x = np.concatenate([np.geomspace(1e-3, 1e9, 4001), np.linspace(0.5, 12.0, 2301),
                        [1.4616321449683622, 1.0, 2.0, 9.999999999, 10.0, 10.5]])
    ours = np.array([special(v)[0] for v in x])
    np.testing.assert_allclose(ours, digamma(x), rtol=2e-15, atol=2e-15)
    ours = np.array([special(v)[1] for v in x])
    np.testing.assert_allclose(ours, gammaln(x), rtol=2e-15, atol=2e-15)
    assert np.isnan(special(np.nan)[0])


# ------------------------------------------------------ beyond scikit-learn
def _continue_from(start, X, sample_weight=None, **kw):
    """A fit that starts from ``start``'s parameters (warm_start)."""
    est = clone(start).set_params(warm_start=True, **kw)
    for name in ("weight_concentration_", "mean_precision_", "means_",
                 "degrees_of_freedom_", "covariances_", "precisions_cholesky_",
                 "converged_", "lower_bound_", "n_features_in_"):
        setattr(est, name, getattr(start, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_weights_are_repeated_rows(covariance_type):
    """Integer weights equal repeated rows from the same start: the default priors
    too (weighted mean; covariance divided as for the repeated rows)."""
    X = _blobs(n=300, seed=10)
    w = np.random.default_rng(1).integers(0, 4, X.shape[0])
    start = BayesianGaussianMixture(n_components=4, covariance_type=covariance_type,
                                    max_iter=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X, sample_weight=w)
    weighted = _continue_from(start, X, w.astype(float), max_iter=25)
    repeated = _continue_from(start, np.repeat(X, w, axis=0), max_iter=25)
    _assert_same_model(weighted, repeated, rtol=1e-8)


def test_same_bits_whatever_the_thread_count(spy_threads):
    X = _blobs(n=60_000, d=4, centers=5, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits = [BayesianGaussianMixture(n_components=6, max_iter=5, random_state=0,
                                        n_jobs=j).fit(X) for j in (1, 2, 3)]
    assert max(spy_threads) >= 2
    for other in fits[1:]:
        for name in FITTED + ["lower_bound_"]:
            np.testing.assert_array_equal(np.asarray(getattr(other, name)),
                                          np.asarray(getattr(fits[0], name)), err_msg=name)


def test_memmap_equals_in_memory(tmp_path):
    X = _blobs(n=5000, d=3, centers=4, seed=12)
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float64, mode="r", shape=X.shape)
    kw = dict(n_components=4, max_iter=20, random_state=0)
    a = BayesianGaussianMixture(**kw).fit(X)
    b = BayesianGaussianMixture(**kw).fit(mm)
    _assert_same_model(b, a, rtol=1e-12)


def test_float32_stays_float32_and_close_to_float64():
    X = _blobs(n=2000, seed=13)
    kw = dict(n_components=4, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(**kw).fit(X.astype(np.float32))
        b = BayesianGaussianMixture(**kw).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert getattr(a, name).dtype == np.float32, name
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=2e-3, atol=1e-4,
                                   err_msg=name)


def test_partial_fit_stream_switches_surplus_components_off():
    """Stochastic variational inference on a stream from a known mixture of three
    components, fitted with six: the surplus weights go to near zero and the mean
    log-likelihood of held-out rows lands within 1 % of the batch fit's."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])

    def draw(n):
        return centres[rng.choice(3, n, p=[0.5, 0.3, 0.2])] + rng.normal(size=(n, 2))

    test = draw(10_000)
    kw = dict(n_components=6, weight_concentration_prior=1e-3, random_state=0)
    online = BayesianGaussianMixture(**kw, total_samples=1000, learning_decay=0.51)
    for _ in range(2000):
        online.partial_fit(draw(250))
    batch = BayesianGaussianMixture(**kw, max_iter=1000).fit(draw(1000))
    assert np.sort(batch.weights_)[:3].sum() < 0.01  # the batch fit switches them off
    assert np.sort(online.weights_)[:3].sum() < 0.01
    assert online.score(test) == pytest.approx(batch.score(test), rel=0.01)
    assert online.n_iter_ == 2000


def test_warm_start_keeps_the_fitted_components_whatever_n_components_says():
    """As GaussianMixture: a warm start continues the fitted model (its K), and the
    'tied' degrees of freedom count its components (they counted n_components)."""
    X = _blobs(n=400, d=2, centers=2, seed=14)
    kw = dict(covariance_type="tied", warm_start=True, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = BayesianGaussianMixture(n_components=2, **kw).fit(X)
        again = clone(est)
        _copy = {k: v for k, v in vars(est).items() if k.endswith("_")}
        again.__dict__.update(_copy)
        again.fit(X)  # the same continuation with n_components unchanged
        est.set_params(n_components=5).fit(X)
    assert est.means_.shape == (2, 2)
    assert est.degrees_of_freedom_ == pytest.approx(again.degrees_of_freedom_, rel=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
@pytest.mark.parametrize("d", [3, 20])
def test_default_priors_of_offset_sorted_data_as_numpy(covariance_type, d):
    """The default mean and covariance priors come from one pass centred near the
    mean (``data_moments``): on rows 1e6 away from the origin with a spread of
    1e-2, sorted along a feature, they are numpy's mean and two-pass covariance."""
    rng = np.random.RandomState(0)
    X = 1e6 + 1e-2 * rng.normal(size=(3001, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)))
    X = X[np.argsort(X[:, 0])]
    bgm = BayesianGaussianMixture(n_components=2, covariance_type=covariance_type,
                                  max_iter=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(X)
    np.testing.assert_allclose(bgm.mean_prior_, X.mean(axis=0), rtol=1e-14)
    cov = np.cov(X.T)
    expected = {"full": cov, "tied": cov, "diag": np.diag(cov),
                "spherical": np.diag(cov).mean()}[covariance_type]
    np.testing.assert_allclose(bgm.covariance_prior_, expected, rtol=1e-9)


def test_default_priors_with_weights_away_from_the_chosen_rows():
    """With sample weights the chosen rows of the one-pass centre can weigh nothing
    (here they are at 0 with weight 0, the rest 1e8 away): the priors then come from
    a pass for the weighted mean and one about it, numpy's weighted statistics."""
    rng = np.random.RandomState(0)
    X = 1e8 + rng.normal(size=(6400, 2)) @ np.array([[1.0, 0.3], [0.0, 1.0]])
    idx = np.unique(np.linspace(0, len(X) - 1, 64).astype(int))
    X[idx] = 0.0
    w = np.ones(len(X))
    w[idx] = 0.0
    for ct in ("full", "diag"):
        bgm = BayesianGaussianMixture(n_components=2, covariance_type=ct, max_iter=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            bgm.fit(X, sample_weight=w)
        kept = X[w > 0]
        np.testing.assert_allclose(bgm.mean_prior_, kept.mean(axis=0), rtol=1e-14)
        cov = np.cov(kept.T)
        np.testing.assert_allclose(bgm.covariance_prior_, cov if ct == "full" else np.diag(cov),
                                   rtol=1e-9)


@pytest.mark.parametrize("covariance_type,d", [("tied", 2), ("tied", 20), ("full", 20)])
def test_default_priors_with_weights_of_the_pooled_passes(covariance_type, d):
    """As above for the passes that pool all rows' scatter ('tied', and 'full' from
    16 features, whose priors take the 'tied' pass): the mean's pass about 0 makes
    pooled sums 1e8 from the data, which the pass about the mean must not move
    there by algebra (that lost every digit: a prior off by 130 %, or an
    ill-defined covariance) but make again."""
    rng = np.random.RandomState(0)
    X = 1e8 + rng.normal(size=(6400, d)) @ (np.eye(d) + 0.3 * rng.normal(size=(d, d)))
    idx = np.unique(np.linspace(0, len(X) - 1, 64).astype(int))
    X[idx] = 0.0
    w = np.ones(len(X))
    w[idx] = 0.0
    bgm = BayesianGaussianMixture(n_components=2, covariance_type=covariance_type,
                                  max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        bgm.fit(X, sample_weight=w)
    kept = X[w > 0]
    np.testing.assert_allclose(bgm.mean_prior_, kept.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(bgm.covariance_prior_, np.cov(kept.T), rtol=1e-9,
                               atol=1e-12 * np.abs(np.cov(kept.T)).max())


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_default_priors_of_small_data_are_scikit_learns(covariance_type):
    """On small in-memory data the default priors come from the sums of scikit-learn's
    own NumPy calls: for C-ordered float64 data the same bits as scikit-learn's for the
    mean and for the 'diag' / 'spherical' variances (np.var's steps), to rounding for
    np.cov and for Fortran order (which NumPy sums pairwise); one feature is checked to
    rounding too; larger data's pass gives them to rounding (``data_moments``)."""
    from fastgmm import _bayesian_mixture

    X = _blobs(n=3000, d=5, centers=3, seed=21) * 7.0 + 40.0
    kw = dict(n_components=3, covariance_type=covariance_type, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = SkBGM(**kw).fit(X)
        ours = BayesianGaussianMixture(**kw).fit(X)
        small, _bayesian_mixture.SMALL_MOMENTS = _bayesian_mixture.SMALL_MOMENTS, 0
        try:
            passed = BayesianGaussianMixture(**kw).fit(X)
        finally:
            _bayesian_mixture.SMALL_MOMENTS = small
    np.testing.assert_array_equal(ours.mean_prior_, theirs.mean_prior_)
    if covariance_type in ("diag", "spherical"):
        np.testing.assert_array_equal(ours.covariance_prior_, theirs.covariance_prior_)
    else:
        np.testing.assert_allclose(ours.covariance_prior_, theirs.covariance_prior_,
                                   rtol=1e-13)
    np.testing.assert_allclose(passed.mean_prior_, theirs.mean_prior_, rtol=1e-13)
    np.testing.assert_allclose(passed.covariance_prior_, theirs.covariance_prior_, rtol=1e-12)
    for Xo in (np.asfortranarray(X), X[:, :1]):
        kw1 = dict(kw, covariance_type=covariance_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs, ours = SkBGM(**kw1).fit(Xo), BayesianGaussianMixture(**kw1).fit(Xo)
        np.testing.assert_allclose(ours.mean_prior_, theirs.mean_prior_, rtol=1e-14)
        np.testing.assert_allclose(ours.covariance_prior_, theirs.covariance_prior_,
                                   rtol=1e-13)
