"""scikit-learn API conformance: estimator checks, clone, pickle, Pipeline, GridSearchCV."""

import inspect
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgmm import GaussianMixture

from conftest import make_data


def _expected_failed_checks(estimator):
    return {
        # As for scikit-learn's KMeans (the same entry in its own test suite): the
        # k-means start draws its random seeds row by row, so a row repeated twice
        # and a row of weight 2 see different draws. The EM itself is exactly
        # weight-equivariant: tests/test_weights.py checks it from a fixed start.
        "check_sample_weight_equivalence_on_dense_data": (
            "the random k-means start differs between repeated rows and weights"
        ),
    }


@parametrize_with_checks(
    [GaussianMixture(n_components=2, random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_constructor_matches_sklearn():
    ours = inspect.signature(GaussianMixture).parameters
    theirs = inspect.signature(SkGaussianMixture).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name, p in theirs.items():
        assert ours[name].default == p.default and ours[name].kind == p.kind, name
    assert list(ours)[len(theirs):] == ["learning_decay", "learning_offset", "n_jobs", "device"]


def test_clone_and_params_roundtrip():
    gm = GaussianMixture(3, covariance_type="diag", tol=1e-4, n_jobs=1)
    c = clone(gm)
    assert c.get_params() == gm.get_params()
    c.set_params(n_components=5, covariance_type="tied")
    assert c.n_components == 5 and gm.n_components == 3


def test_pickle_roundtrip_keeps_predictions():
    X = make_data(n=300, d=3, K=3, seed=0)
    gm = GaussianMixture(3, random_state=0).fit(X)
    gm2 = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(gm.predict(X), gm2.predict(X))
    np.testing.assert_array_equal(gm.score_samples(X), gm2.score_samples(X))


def test_pipeline_and_grid_search():
    X = make_data(n=300, d=2, K=3, seed=1)
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(pipe, {"gaussianmixture__n_components": [1, 3],
                                 "gaussianmixture__covariance_type": ["full", "diag"]}, cv=3)
    search.fit(X)
    assert search.best_params_["gaussianmixture__n_components"] == 3
    assert search.predict(X).shape == (300,)


@pytest.mark.parametrize("method", ["fit", "fit_predict", "predict", "predict_proba",
                                    "score", "score_samples", "sample", "bic", "aic"])
def test_methods_exist_like_sklearn(method):
    assert callable(getattr(GaussianMixture, method))
    assert callable(getattr(SkGaussianMixture, method))


def test_parameter_names_are_each_classs_own():
    """get_params reads the constructor's names once a class (``_get_param_names``
    is cached): each class, a subclass with a parameter of its own included, still
    gets its own, as scikit-learn's."""
    from sklearn.base import BaseEstimator

    from fastgmm import BayesianGaussianMixture

    class Extended(GaussianMixture):
        def __init__(self, n_components=1, *, extra=3, **kw):
            super().__init__(n_components, **kw)
            self.extra = extra

    for cls in (GaussianMixture, BayesianGaussianMixture, Extended):
        est = cls()
        assert list(est.get_params()) == BaseEstimator._get_param_names.__func__(cls)
    assert "extra" in Extended().get_params()
    assert "extra" not in GaussianMixture().get_params()


def test_parameters_validated_again_whenever_they_change():
    """Parameter values that passed are remembered (a refit skips the check), by
    name, type and value: a value equal to a valid one but of another type (2.0
    for n_components, 1 for a bool-typed parameter), an invalid value set after a
    valid fit, and unhashable values are all still checked, with scikit-learn's
    error."""
    from sklearn.utils._param_validation import InvalidParameterError

    from fastgmm import BayesianGaussianMixture

    X = make_data(200, 2, 2)
    est = GaussianMixture(2, random_state=0).fit(X)
    est.fit(X)  # the remembered values
    for bad in ({"n_components": 2.0}, {"warm_start": 1}, {"tol": -1.0},
                {"covariance_type": "Full"}):
        with pytest.raises(InvalidParameterError):
            clone(est).set_params(**bad).fit(X)
        sk = SkGaussianMixture(2).set_params(**bad)
        with pytest.raises(InvalidParameterError):
            sk.fit(X)
    GaussianMixture(2, weights_init=[0.5, 0.5], random_state=0).fit(X)  # unhashable
    with pytest.raises(InvalidParameterError, match="random_state"):
        GaussianMixture(2, random_state=[0]).fit(X)  # unhashable
    bgm = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    with pytest.raises(InvalidParameterError):
        bgm.set_params(n_components=2.0).fit(X)
