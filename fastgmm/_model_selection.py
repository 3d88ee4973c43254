"""fastgmm.GaussianMixtureIC: how many components, which covariance type, in one call.

In the manner of scikit-learn's ``LassoLarsIC`` (and scikit-learn PR #26735):
fit a ``GaussianMixture`` for each candidate (n_components from
``min_components`` to ``max_components``, each covariance type asked for) and
keep the one with the lowest information criterion.

Candidates share what can be shared without changing any candidate's result:
X is validated and converted once and one engine (the data, the weights, the
threads) serves every fit; each candidate is the model a plain
``GaussianMixture(n_components=k, covariance_type=c, random_state=...)`` fit
gives. After its fit, one more statistics pass at the fitted parameters gives the
candidate's log-likelihood (BIC, AIC) and the entropy of its responsibilities
(ICL), without an n x K array.
"""

import math
import numbers
import time

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._bayesian_mixture import resp_entropy
from ._estep import COV_CODES
from ._base import _host, check_n_samples, information_criteria
from ._gaussian_mixture import GaussianMixture
from ._validation import check_sample_weight

COV_TYPES = tuple(COV_CODES)  # full, tied, diag, spherical


def _cov_types(covariance_type):
    if isinstance(covariance_type, str):
        if covariance_type == "all":
            return list(COV_TYPES)
        if covariance_type in COV_TYPES:
            return [covariance_type]
    else:
        types = list(covariance_type)
        if types and all(isinstance(t, str) and t in COV_TYPES for t in types) \
                and len(set(types)) == len(types):
            return types
    raise ValueError(
        "The 'covariance_type' parameter of GaussianMixtureIC must be one of "
        f"{COV_TYPES}, 'all', or a list of distinct ones; got {covariance_type!r}.")


class GaussianMixtureIC(DensityMixin, BaseEstimator):
    """Gaussian mixture with the number of components and the covariance type
    chosen by an information criterion.

    Parameters
    ----------
    min_components, max_components : int, default=1 and 10
        The candidates' numbers of components, both included.
    covariance_type : str or list of str, default='full'
        One of 'full', 'tied', 'diag', 'spherical', a list of them, or 'all'.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        Lower is better, in scikit-learn's sign convention. 'icl' (Biernacki,
        Celeux and Govaert, 2000) is the BIC plus twice the entropy of the
        responsibilities, -2 sum_i sum_k r_ik log r_ik.
    n_init, init_params, max_iter, tol, reg_covar, random_state
        As in :class:`fastgmm.GaussianMixture`, for every candidate. Every
        candidate gets the same ``random_state`` (an int; a ``RandomState``
        instance is drawn from once for that int), so each is the model a plain
        ``GaussianMixture`` with that seed gives.
    n_jobs : int, default=None
        Threads for the passes over X, as in :class:`fastgmm.GaussianMixture`.
    verbose : int, default=0
        1: a line per candidate.
    device : {'cpu', 'cuda'}, default='cpu'
        As in :class:`fastgmm.GaussianMixture`: 'cuda' (or X on a GPU) fits every
        candidate on the GPU, on one engine.

    Attributes
    ----------
    best_estimator_ : fastgmm.GaussianMixture
        The winning candidate, fitted.
    n_components_, covariance_type_, criterion_
        The winner's number of components, covariance type and criterion value.
    results_ : dict of arrays
        One entry per candidate: n_components, covariance_type, bic, aic, icl,
        lower_bound, n_iter, converged, fit_time (seconds). A candidate whose fit
        failed (an ill-defined covariance) has NaN criteria and is never chosen;
        ``pandas.DataFrame(results_)`` reads it.
    n_features_in_, feature_names_in_
        As scikit-learn's estimators.
    """

    _parameter_constraints: dict = {
        "min_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_components": [Interval(numbers.Integral, 1, None, closed="left")],
        "covariance_type": [str, list, tuple],
        "criterion": [StrOptions({"bic", "aic", "icl"})],
        "n_init": [Interval(numbers.Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "k-means++"})],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(numbers.Real, 0.0, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [None, Interval(numbers.Integral, None, -1, closed="right"),
                   Interval(numbers.Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    def __init__(self, *, min_components=1, max_components=10, covariance_type="full",
                 criterion="bic", n_init=1, init_params="kmeans", max_iter=100, tol=1e-3,
                 reg_covar=1e-6, random_state=None, n_jobs=None, verbose=0, device="cpu"):
        self.min_components = min_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.n_init = n_init
        self.init_params = init_params
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.device = device

    def _candidate(self, k, ct, seed):
        return GaussianMixture(k, covariance_type=ct, n_init=self.n_init,
                               init_params=self.init_params, max_iter=self.max_iter,
                               tol=self.tol, reg_covar=self.reg_covar, random_state=seed,
                               n_jobs=self.n_jobs, device=self.device)

    def fit(self, X, y=None, sample_weight=None):
        """Fit every candidate on X and keep the best by ``criterion``."""
        self._validate_params()
        types = _cov_types(self.covariance_type)
        if self.max_components < self.min_components:
            raise ValueError(
                f"max_components ({self.max_components}) must be >= min_components "
                f"({self.min_components}).")
        seed = self.random_state
        if isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(np.iinfo(np.int32).max))
        # validation and conversion once (the first candidate's own checks)
        probe = self._candidate(self.min_components, types[0], seed)
        Xv = probe._validate_X(X, reset=True)
        n, d = Xv.shape
        check_n_samples(n, self.max_components)
        names = getattr(probe, "feature_names_in_", None)
        sw = check_sample_weight(_host(sample_weight), n)
        engine = probe._engine(Xv, sw)  # the CUDA engine for device='cuda' or GPU arrays

        rows = {key: [] for key in ("n_components", "covariance_type", "bic", "aic", "icl",
                                    "lower_bound", "n_iter", "converged", "fit_time")}
        best, best_value = None, math.inf
        for ct in types:
            for k in range(self.min_components, self.max_components + 1):
                est = self._candidate(k, ct, seed)
                est.n_features_in_ = d
                if names is not None:
                    est.feature_names_in_ = names
                t0 = time.perf_counter()
                values = dict(bic=math.nan, aic=math.nan, icl=math.nan,
                              lower_bound=math.nan, n_iter=0, converged=False)
                try:
                    est._validate_params()
                    est._fit(engine, est._check_parameters(Xv, engine), labels=False)
                    values.update(self._criteria(est, engine, n))
                except ValueError as e:
                    if "ill-defined empirical covariance" not in str(e):
                        raise
                    est = None
                elapsed = time.perf_counter() - t0
                for key, v in values.items():
                    rows[key].append(v)
                rows["n_components"].append(k)
                rows["covariance_type"].append(ct)
                rows["fit_time"].append(elapsed)
                value = values[self.criterion]
                if self.verbose:
                    print(f"GaussianMixtureIC: n_components={k} covariance_type={ct!r} "
                          f"{self.criterion}={value:.6g} ({elapsed:.3f} s)")
                if est is not None and value < best_value:
                    best, best_value = est, value
        if best is None:
            raise ValueError("Every candidate's fit failed with an ill-defined covariance; "
                             "increase reg_covar or scale the input data.")
        self.results_ = {
            "n_components": np.asarray(rows["n_components"], dtype=np.int64),
            "covariance_type": np.asarray(rows["covariance_type"], dtype=object),
            **{key: np.asarray(rows[key], dtype=np.float64)
               for key in ("bic", "aic", "icl", "lower_bound", "fit_time")},
            "n_iter": np.asarray(rows["n_iter"], dtype=np.int64),
            "converged": np.asarray(rows["converged"], dtype=bool),
        }
        # every fitted attribute set together, at the end: a failed fit leaves none
        for attr in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(attr, None)
        self.n_features_in_ = d
        if names is not None:
            self.feature_names_in_ = names
        self.best_estimator_ = best
        self.n_components_ = best.n_components
        self.covariance_type_ = best.covariance_type
        self.criterion_ = float(best_value)
        return self

    @staticmethod
    def _criteria(est, engine, n):
        """BIC, AIC and ICL of a fitted candidate from one statistics pass at its
        parameters: the (weighted) log-likelihood and the responsibilities' entropy.
        BIC and AIC as scikit-learn's ``bic(X)`` / ``aic(X)``: -2 n score(X) + ..."""
        params = est._get_parameters()
        ep = est._estep(params, engine.dtype)
        stats = engine.stats(ep)
        # score(X) is the mean log-likelihood in the work dtype, as scikit-learn's
        score = float(engine.dtype.type(stats.ll / engine.wsum))
        p = est._n_parameters()
        bic, aic = information_criteria(score, n, p)
        entropy = -resp_entropy(stats, ep, engine.wsum) * (n / engine.wsum)
        return dict(bic=bic, aic=aic, icl=bic + 2 * entropy, lower_bound=float(est.lower_bound_),
                    n_iter=est.n_iter_, converged=bool(est.converged_))

    # ---------------------------------------------------------- delegation
    def predict(self, X):
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def score_samples(self, X):
        check_is_fitted(self)
        return self.best_estimator_.score_samples(X)

    def score(self, X, y=None, sample_weight=None):
        check_is_fitted(self)
        return self.best_estimator_.score(X, sample_weight=sample_weight)

    def sample(self, n_samples=1):
        check_is_fitted(self)
        return self.best_estimator_.sample(n_samples)

    def bic(self, X):
        check_is_fitted(self)
        return self.best_estimator_.bic(X)

    def aic(self, X):
        check_is_fitted(self)
        return self.best_estimator_.aic(X)
