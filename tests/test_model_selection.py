"""fastgmm.GaussianMixtureIC against scikit-learn's documented loop over bic()."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastgmm import GaussianMixture, GaussianMixtureIC

from conftest import make_data


def test_same_criteria_and_winner_as_the_sklearn_loop():
    X = make_data(n=2000, d=3, K=3, seed=0)
    ic = GaussianMixtureIC(min_components=1, max_components=5, covariance_type="all",
                           random_state=0).fit(X)
    res = ic.results_
    assert len(res["bic"]) == 20
    sk_bic, sk_aic = [], []
    for ct, k in zip(res["covariance_type"], res["n_components"]):
        sk = SkGaussianMixture(int(k), covariance_type=ct, random_state=0).fit(X)
        sk_bic.append(sk.bic(X))
        sk_aic.append(sk.aic(X))
    np.testing.assert_allclose(res["bic"], sk_bic, rtol=1e-6)
    np.testing.assert_allclose(res["aic"], sk_aic, rtol=1e-6)
    best = int(np.argmin(sk_bic))
    assert (ic.n_components_, ic.covariance_type_) == (res["n_components"][best],
                                                       res["covariance_type"][best])
    assert ic.criterion_ == pytest.approx(sk_bic[best], rel=1e-6)
    # the winner is the model a plain GaussianMixture with that seed gives
    plain = GaussianMixture(ic.n_components_, covariance_type=ic.covariance_type_,
                            random_state=0).fit(X)
    np.testing.assert_array_equal(ic.best_estimator_.means_, plain.means_)
    np.testing.assert_array_equal(ic.predict(X), plain.predict(X))
    assert ic.score(X) == plain.score(X)
    assert pd.DataFrame(res).shape == (20, 9)


def test_icl_is_bic_plus_twice_the_entropy():
    X = make_data(n=1500, d=2, K=3, seed=1)
    w = np.random.default_rng(0).uniform(0.5, 1.5, X.shape[0])
    ic = GaussianMixtureIC(max_components=4, covariance_type="diag", criterion="icl",
                           random_state=0).fit(X, sample_weight=w)
    for i, k in enumerate(ic.results_["n_components"]):
        gm = GaussianMixture(int(k), covariance_type="diag", random_state=0).fit(
            X, sample_weight=w)
        R = gm.predict_proba(X).astype(np.float64)
        ws = w * (len(w) / w.sum())  # fastgmm's weights: relative, a mean of 1
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.sum(ws[:, None] * np.where(R > 0, R * np.log(R), 0.0))
        bic = -2 * np.average(gm.score_samples(X), weights=w) * len(X) + \
            gm._n_parameters() * np.log(len(X))
        assert ic.results_["bic"][i] == pytest.approx(bic, rel=1e-9)
        assert ic.results_["icl"][i] == pytest.approx(bic + 2 * entropy, rel=1e-9)
    assert ic.criterion_ == np.min(ic.results_["icl"])


def test_k1_and_bad_parameters():
    X = make_data(n=300, d=2, K=2, seed=2)
    ic = GaussianMixtureIC(min_components=1, max_components=1, random_state=0).fit(X)
    assert ic.n_components_ == 1  # scikit-learn's K = 1 loop crashed once (hardening)
    with pytest.raises(ValueError, match="max_components"):
        GaussianMixtureIC(min_components=3, max_components=2).fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixtureIC(covariance_type=["full", "bogus"]).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixtureIC(max_components=400).fit(X)
    with pytest.raises(NotFittedError):
        GaussianMixtureIC().predict(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_failed_sweep_leaves_no_fitted_attribute():
    ic = GaussianMixtureIC(max_components=2, reg_covar=0.0)
    with pytest.raises(ValueError):
        ic.fit(np.ones((10, 3)))
    assert not [k for k in vars(ic) if k.endswith("_")]
    with pytest.raises(NotFittedError):
        ic.predict(np.ones((2, 3)))
