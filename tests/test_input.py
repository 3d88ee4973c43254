"""Bad input gets scikit-learn's error class and message; awkward input works untouched."""

import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastgmm import GaussianMixture

from conftest import make_data

X_OK = make_data(n=60, d=2, K=2, seed=0)


def _same_error(make_call):
    """The call raises the same exception class with the same message for both."""
    errors = []
    for cls in (SkGaussianMixture, GaussianMixture):
        with pytest.raises(Exception) as info:
            make_call(cls)
        errors.append(info.value)
    sk, fg = errors
    assert type(fg) is type(sk), (type(fg), type(sk), str(fg))
    assert str(fg) == str(sk)
    return fg


def _nan_X():
    X = X_OK.copy()
    X[3, 1] = np.nan
    return X


def _inf_X():
    X = X_OK.copy()
    X[5, 0] = np.inf
    return X


BAD_FIT = {
    "nan": lambda cls: cls(2).fit(_nan_X()),
    "inf": lambda cls: cls(2).fit(_inf_X()),
    "1d": lambda cls: cls(2).fit(np.arange(10.0)),
    "3d": lambda cls: cls(2).fit(np.zeros((4, 3, 2))),
    "one sample": lambda cls: cls(1).fit(np.zeros((1, 2))),
    "no features": lambda cls: cls(1).fit(np.zeros((5, 0))),
    "complex": lambda cls: cls(1).fit(X_OK + 1j),
    "strings": lambda cls: cls(1).fit([["a", "b"], ["c", "d"]]),
    "n_samples < n_components": lambda cls: cls(5).fit(X_OK[:3]),
    "n_components 0": lambda cls: cls(0).fit(X_OK),
    "covariance_type": lambda cls: cls(2, covariance_type="ful").fit(X_OK),
    "tol": lambda cls: cls(2, tol=-1).fit(X_OK),
    "reg_covar": lambda cls: cls(2, reg_covar=-1).fit(X_OK),
    "max_iter": lambda cls: cls(2, max_iter=-1).fit(X_OK),
    "n_init": lambda cls: cls(2, n_init=0).fit(X_OK),
    "init_params": lambda cls: cls(2, init_params="kmeans2").fit(X_OK),
    "verbose_interval": lambda cls: cls(2, verbose_interval=0).fit(X_OK),
    "weights_init shape": lambda cls: cls(2, weights_init=[1.0]).fit(X_OK),
    "weights_init range": lambda cls: cls(2, weights_init=[1.5, -0.5]).fit(X_OK),
    "weights_init sum": lambda cls: cls(2, weights_init=[0.5, 0.6]).fit(X_OK),
    "means_init shape": lambda cls: cls(2, means_init=np.zeros((3, 2))).fit(X_OK),
    "precisions_init shape full": lambda cls: cls(2, precisions_init=np.ones((2, 2))).fit(X_OK),
    "precisions_init not pd full": lambda cls: cls(
        2, precisions_init=np.stack([np.eye(2), -np.eye(2)])).fit(X_OK),
    "precisions_init not symmetric tied": lambda cls: cls(
        2, covariance_type="tied", precisions_init=np.array([[1.0, 0.5], [0.0, 1.0]])).fit(X_OK),
    "precisions_init diag": lambda cls: cls(
        2, covariance_type="diag", precisions_init=np.array([[1.0, 0.0], [1.0, 1.0]])).fit(X_OK),
    "precisions_init spherical": lambda cls: cls(
        2, covariance_type="spherical", precisions_init=np.array([1.0, -1.0])).fit(X_OK),
    "ill-defined covariance": lambda cls: cls(
        2, reg_covar=0, random_state=0).fit(np.repeat([[0.0, 1.0], [3.0, 3.0]], 5, axis=0)),
    "ill-defined covariance float32": lambda cls: cls(
        2, reg_covar=0, random_state=0).fit(
            np.repeat([[0.0, 1.0], [3.0, 3.0]], 5, axis=0).astype(np.float32)),
    "ill-defined covariance diag": lambda cls: cls(
        2, covariance_type="diag", reg_covar=0, random_state=0).fit(
            np.repeat([[0.0, 1.0], [3.0, 3.0]], 5, axis=0)),
}


@pytest.mark.parametrize("case", list(BAD_FIT))
def test_bad_fit_input_same_error_as_sklearn(case):
    err = _same_error(BAD_FIT[case])
    assert str(err)


def test_float32_sentence_in_ill_defined_error():
    err = _same_error(BAD_FIT["ill-defined covariance float32"])
    assert "passing float64 data instead of float32" in str(err)


def _fitted(cls):
    return cls(2, random_state=0).fit(X_OK)


BAD_PREDICT = {
    "not fitted predict": lambda cls: cls(2).predict(X_OK),
    "not fitted score_samples": lambda cls: cls(2).score_samples(X_OK),
    "not fitted predict_proba": lambda cls: cls(2).predict_proba(X_OK),
    "not fitted sample": lambda cls: cls(2).sample(3),
    "wrong n_features": lambda cls: _fitted(cls).predict(np.zeros((3, 3))),
    "nan predict": lambda cls: _fitted(cls).predict(_nan_X()),
    "inf score_samples": lambda cls: _fitted(cls).score_samples(_inf_X()),
    "1d predict_proba": lambda cls: _fitted(cls).predict_proba(np.zeros(4)),
    "empty predict": lambda cls: _fitted(cls).predict(np.zeros((0, 2))),
}


@pytest.mark.parametrize("case", list(BAD_PREDICT))
def test_bad_predict_input_same_error_as_sklearn(case):
    err = _same_error(BAD_PREDICT[case])
    if case.startswith("not fitted"):
        assert isinstance(err, NotFittedError)


def _awkward_inputs():
    X = make_data(n=400, d=3, K=3, seed=7)
    ro = X.copy()
    ro.flags.writeable = False
    big = np.zeros((2 * X.shape[0], 6))
    big[::2, ::2] = X
    return {
        "c": X,
        "readonly": ro,
        "fortran": np.asfortranarray(X),
        "strided": big[::2, ::2],
        "integer": np.round(X * 10).astype(np.int64),
        "float32": X.astype(np.float32),
        "list": X.tolist(),
    }


@pytest.mark.parametrize("kind", list(_awkward_inputs()))
def test_awkward_input_works_and_is_not_modified(kind):
    X = _awkward_inputs()[kind]
    before = pickle.dumps(X)
    fg = GaussianMixture(3, random_state=0).fit(X)
    sk = SkGaussianMixture(3, random_state=0).fit(X)
    outs = [fg.predict(X), fg.predict_proba(X), fg.score_samples(X), fg.score(X)]
    fg.fit_predict(X, sample_weight=np.ones(len(X)))
    assert pickle.dumps(X) == before
    if isinstance(X, np.ndarray):
        assert X.flags.writeable == (kind != "readonly")
    tol = dict(rtol=2e-3, atol=2e-3) if kind == "float32" else dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fg.means_, sk.means_, **tol)
    np.testing.assert_array_equal(outs[0], sk.predict(X))
    # (scikit-learn 1.9 truncates score_samples of integer input: its 'full' log_prob
    # buffer takes X's integer dtype; compare with its float64 answer)
    Xf = np.asarray(X, dtype=np.float32 if kind == "float32" else np.float64)
    np.testing.assert_allclose(outs[2], sk.score_samples(Xf), **tol)


def test_caller_weights_and_init_arrays_not_modified():
    X = make_data(n=200, d=2, K=2, seed=1)
    sw = np.random.RandomState(0).uniform(size=200)
    w, m, p = np.array([0.5, 0.5]), X[:2].copy(), np.stack([np.eye(2)] * 2)
    copies = [a.copy() for a in (X, sw, w, m, p)]
    gm = GaussianMixture(2, weights_init=w, means_init=m, precisions_init=p)
    gm.fit(X, sample_weight=sw)
    for a, b in zip((X, sw, w, m, p), copies):
        np.testing.assert_array_equal(a, b)
    assert gm.get_params()["means_init"] is m


def test_pandas_feature_names_kept_as_sklearn_keeps_them():
    X = make_data(n=300, d=3, K=2, seed=2)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    fg = GaussianMixture(2, random_state=0).fit(df)
    sk = SkGaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(fg.feature_names_in_, sk.feature_names_in_)
    assert fg.n_features_in_ == 3
    np.testing.assert_array_equal(fg.predict(df), sk.predict(df))
    np.testing.assert_allclose(fg.means_, sk.means_, rtol=1e-7)
    # fitted with names, predicted without: scikit-learn's warning
    with pytest.warns(UserWarning, match="was fitted with feature names"):
        fg.predict(X)
    with pytest.raises(ValueError, match=re.escape("feature names")):
        fg.predict(df.rename(columns={"a": "z"}))
    fg2 = GaussianMixture(2, random_state=0).fit(X)
    assert not hasattr(fg2, "feature_names_in_")


def test_plain_arrays_skip_the_generic_checks_with_sklearns_outcomes():
    """A C-contiguous finite float ndarray skips scikit-learn's generic validation
    (``_base._clean``); what that validation does with it still happens: a refit
    on an array drops the feature names, a wrong width, NaN or inf raise
    scikit-learn's errors, and finite values whose sum overflows are accepted."""
    X = make_data(n=300, d=3, K=2, seed=2)
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    fg = GaussianMixture(2, random_state=0).fit(df).fit(X)
    sk = SkGaussianMixture(2, random_state=0).fit(df).fit(X)
    assert not hasattr(fg, "feature_names_in_") and not hasattr(sk, "feature_names_in_")
    assert fg.n_features_in_ == 3
    bad = {"width": X[:, :2].copy(), "nan": X.copy(), "inf": X.copy()}
    bad["nan"][5, 1] = np.nan
    bad["inf"][7, 2] = -np.inf
    for name, B in bad.items():
        for call in ("predict", "score_samples") + (("fit",) if name != "width" else ()):
            with pytest.raises(ValueError) as ours:
                getattr(fg, call)(B)
            with pytest.raises(ValueError) as theirs:
                getattr(sk, call)(B)
            assert str(ours.value) == str(theirs.value), (name, call)
    huge = np.full((4, 3), 1e308)  # finite, but its sum is inf
    assert np.array_equal(fg._validate_X(huge, reset=False), huge)
