"""sample_weight: integer weights are repeated rows, zero weights are dropped rows."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastgmm import GaussianMixture

from conftest import make_data, start_params

ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def _fit(X, sw, covariance_type, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(covariance_type=covariance_type, **kw).fit(X, sample_weight=sw)


def _same(a, b, rtol=1e-9):
    for attr in ATTRS:
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=rtol, atol=1e-10,
                                   err_msg=attr)
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)
    assert a.n_iter_ == b.n_iter_


def test_integer_weights_equal_repeated_rows(covariance_type):
    X = make_data(n=300, d=3, K=3, seed=1)
    sw = np.random.RandomState(0).randint(0, 4, size=X.shape[0])
    w, m, p = start_params(X, 3, covariance_type, seed=3)
    kw = dict(n_components=3, weights_init=w, means_init=m, precisions_init=p, max_iter=20,
              tol=1e-8)
    weighted = _fit(X, sw, covariance_type, **kw)
    repeated = _fit(np.repeat(X, sw, axis=0), None, covariance_type, **kw)
    _same(weighted, repeated)


def test_zero_weights_equal_dropped_rows(covariance_type):
    X = make_data(n=300, d=3, K=3, seed=2)
    keep = np.random.RandomState(1).rand(X.shape[0]) > 0.3
    w, m, p = start_params(X, 3, covariance_type, seed=5)
    kw = dict(n_components=3, weights_init=w, means_init=m, precisions_init=p, max_iter=20,
              tol=1e-8)
    weighted = _fit(X, keep.astype(float), covariance_type, **kw)
    dropped = _fit(X[keep], None, covariance_type, **kw)
    _same(weighted, dropped)


@pytest.mark.parametrize("d", [3, 20])
@pytest.mark.parametrize("bayesian,init_params", [
    (False, "random"), (False, "random_from_data"), (False, None), (True, "random"),
    (True, "random_from_data")], ids=["gmm-random", "gmm-rows", "gmm-given", "bgm-random",
                                      "bgm-rows"])
def test_zero_weight_rows_with_overflowing_values_add_nothing(covariance_type, d, bayesian,
                                                              init_params):
    """A row of weight zero is not there, whatever its values: rows so large that
    |x - mu|^2 overflows (1e200) used to make 0 * inf = NaN of their nothing in
    the EM passes (a failed fit, or wrong 'diag' / 'spherical' means). The fits
    are the same bits as with ordinary values in those rows. (None: the start
    given, weights_init / means_init / precisions_init; the k-means start reads
    every row as scikit-learn's KMeans does, and its result on such rows is
    scikit-learn's garbage.)"""
    from fastgmm import BayesianGaussianMixture

    X = make_data(n=600, d=d, K=2, seed=4)
    Xb = X.copy()
    Xb[5], Xb[377] = 1e200, -3e180
    sw = np.ones(X.shape[0])
    sw[[5, 377]] = 0.0
    kw = dict(n_components=2, covariance_type=covariance_type, max_iter=5, random_state=0)
    if init_params is None:
        w, m, p = start_params(X, 2, covariance_type, seed=5)
        kw.update(weights_init=w, means_init=m, precisions_init=p)
    else:
        kw.update(init_params=init_params)
    cls = BayesianGaussianMixture if bayesian else GaussianMixture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = cls(**kw).fit(X, sample_weight=sw)
        b = cls(**kw).fit(Xb, sample_weight=sw)
    for attr in ATTRS:
        np.testing.assert_array_equal(getattr(b, attr), getattr(a, attr), err_msg=attr)
    assert b.lower_bound_ == a.lower_bound_
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0 * inf = NaN warning either
        assert b.score(Xb, sample_weight=sw) == a.score(X, sample_weight=sw)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random"])
def test_unit_weights_change_nothing(init_params):
    X = make_data(n=400, d=2, K=3, seed=3)
    kw = dict(n_components=3, init_params=init_params, random_state=0)
    a = _fit(X, None, "full", **kw)
    b = _fit(X, np.ones(X.shape[0]), "full", **kw)
    _same(a, b, rtol=1e-12)


def test_weighted_kmeans_init_uses_weights():
    """With weights, the k-means start is scikit-learn's weighted KMeans."""
    X = make_data(n=400, d=2, K=3, seed=4)
    sw = np.random.RandomState(2).randint(1, 4, size=X.shape[0]).astype(float)
    a = _fit(X, sw, "full", n_components=3, random_state=0, max_iter=0)
    b = _fit(X, None, "full", n_components=3, random_state=0, max_iter=0)
    assert not np.allclose(a.weights_, b.weights_)
    np.testing.assert_allclose(a.weights_.sum(), 1.0)


def test_weighted_score():
    X = make_data(n=300, d=2, K=2, seed=5)
    gm = GaussianMixture(2, random_state=0).fit(X)
    sw = np.random.RandomState(0).randint(0, 3, size=X.shape[0])
    assert gm.score(X, sample_weight=sw) == pytest.approx(
        gm.score(np.repeat(X, sw, axis=0)), rel=1e-10)


@pytest.mark.parametrize(
    "sw,match",
    [
        (-np.ones(20), "Negative values in data passed to `sample_weight`"),
        (np.r_[np.nan, np.ones(19)], "Input sample_weight contains NaN"),
        (np.r_[np.inf, np.ones(19)], "Input sample_weight contains infinity"),
        (np.ones(19), r"sample_weight.shape == \(19,\), expected \(20,\)!"),
        (np.ones((20, 2)), "Sample weights must be 1D array or scalar"),
        (np.zeros(20), "Sample weights must contain at least one non-zero number"),
        ("abc", "could not convert|Unable to convert"),
    ],
)
def test_bad_weights(sw, match):
    X = make_data(n=20, d=2, K=2, seed=0)
    sw_before = sw.copy() if isinstance(sw, np.ndarray) else sw
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2).fit(X, sample_weight=sw)
    if isinstance(sw, np.ndarray):
        np.testing.assert_array_equal(sw, sw_before)


def test_scalar_weight_is_uniform():
    X = make_data(n=200, d=2, K=2, seed=1)
    a = _fit(X, 3.0, "full", n_components=2, random_state=0, init_params="random")
    b = _fit(X, None, "full", n_components=2, random_state=0, init_params="random")
    _same(a, b, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("d", [3, 20])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_start_from_the_chosen_rows_equals_the_pass_over_all(covariance_type, d, dtype):
    """'random_from_data' (and 'k-means++'): only the chosen rows have a
    responsibility, so the start's statistics come from them alone (an engine on
    those rows); they are bitwise those of the pass over all rows, weights (one
    chosen row weightless) and the tiled path (d = 20) included."""
    from fastgmm._base import COV_CODES
    from fastgmm._engine import CPUEngine
    from fastgmm._kmeans import labels_of_rows, rows_from_data

    X = make_data(n=2000, d=d, K=3, seed=5).astype(dtype)
    K = 5
    idx = rows_from_data(np.random.RandomState(3), X.shape[0], K)
    sw = np.random.RandomState(4).uniform(0.5, 2.0, size=X.shape[0])
    sw[idx[1]] = 0.0
    eng = CPUEngine(X, sw)
    gm = GaussianMixture(K, covariance_type=covariance_type, init_params="random_from_data")
    st = gm._start_stats(eng, np.random.RandomState(3))
    full = eng.given_stats(COV_CODES[covariance_type], K, labels=labels_of_rows(X.shape[0], idx),
                           guess=(eng.rows(idx), np.ones(K)))
    for name in ("nk", "s1", "s2", "shift", "gshift"):
        assert np.array_equal(getattr(st, name), getattr(full, name)), name
    assert st.ll == full.ll


@pytest.mark.parametrize("d", [3, 20])
def test_tied_start_from_the_chosen_rows_and_the_known_pooled_sums(d):
    """'tied' pools X^T X over all rows: once a pass has made those sums (here a
    one-component pass, as the Bayesian mixture's prior makes), a
    'random_from_data' start takes the chosen rows alone plus those sums moved to
    its centre (exact algebra), equal to the pass over all rows to rounding; with
    no such pass yet it runs that pass (bitwise the same)."""
    from fastgmm._base import COV_CODES
    from fastgmm._engine import CPUEngine
    from fastgmm._kmeans import labels_of_rows, rows_from_data
    from fastgmm._mstep import estep_params

    X = make_data(n=2000, d=d, K=3, seed=5) + 7.0
    K, tied = 5, COV_CODES["tied"]
    idx = rows_from_data(np.random.RandomState(3), X.shape[0], K)
    sw = np.random.RandomState(4).uniform(0.5, 2.0, size=X.shape[0])
    sw[idx[1]] = 0.0
    gm = GaussianMixture(K, covariance_type="tied", init_params="random_from_data")

    def full_pass():
        eng = CPUEngine(X, sw)
        return eng.given_stats(tied, K, labels=labels_of_rows(X.shape[0], idx),
                               guess=(eng.rows(idx), np.ones(K)))

    first = CPUEngine(X, sw)
    st = gm._start_stats(first, np.random.RandomState(3))  # no pooled sums yet
    ref = full_pass()
    for name in ("nk", "s1", "s2", "shift", "gshift"):
        assert np.array_equal(getattr(st, name), getattr(ref, name)), name
    known = CPUEngine(X, sw)
    known.stats(estep_params(np.ones(1), X[:1] - 3.0, np.eye(d), tied))  # makes them
    st = gm._start_stats(known, np.random.RandomState(3))
    for name in ("nk", "s1", "shift", "gshift"):
        assert np.array_equal(getattr(st, name), getattr(ref, name)), name
    scale = np.abs(ref.s2).max()
    np.testing.assert_allclose(np.triu(st.s2[0, :d]), np.triu(ref.s2[0, :d]), rtol=1e-12,
                               atol=1e-13 * scale)
    np.testing.assert_allclose(st.s2[0, d], ref.s2[0, d], rtol=1e-12, atol=1e-13 * scale)
