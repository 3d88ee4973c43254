"""fastgmm.GaussianMixture: scikit-learn's GaussianMixture as a model on the EM driver."""

from numbers import Integral, Real

import numpy as np
from sklearn.mixture import GaussianMixture as _SkGaussianMixture
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMixture, InformationCriteriaMixin
from ._estep import COV_CODES
from ._mstep import (
    compute_precision_cholesky,
    compute_precision_cholesky_from_precisions,
    covariance_shape,
    covariances_from_precisions,
    estimate_gaussian_parameters,
    estep_params,
    n_parameters,
    precisions_from_cholesky,
)
from ._validation import check_means, check_precisions, check_weights


class GaussianMixture(InformationCriteriaMixin, BaseMixture):
    """Gaussian mixture fitted by EM on fused Numba kernels.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, attributes, methods, warnings and errors, and the same start for
    the same ``random_state``. Each EM iteration is one pass over the rows that
    produces additive sufficient statistics; no n_samples x n_components array
    is kept.

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, init_params,
    weights_init, means_init, precisions_init, random_state, warm_start, verbose,
    verbose_interval
        As in :class:`sklearn.mixture.GaussianMixture`.
    learning_decay, learning_offset : float, default=0.6 and 2.0
        Step size of :meth:`partial_fit`'s online EM, rho_t = (t + learning_offset)
        ** -learning_decay for the t-th batch; learning_decay in (0.5, 1].
    n_jobs : int, default=None
        Threads for this call: None the process's budget (NUMBA_NUM_THREADS: all
        CPUs, or a joblib worker's share), -1 all CPUs, -2 all but one, and so on.
        Results are bitwise identical whatever the value.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_,
    converged_, n_iter_, lower_bound_, lower_bounds_, n_features_in_,
    feature_names_in_
        As in :class:`sklearn.mixture.GaussianMixture`; float32 input gives
        float32 attributes.
    """

    _parameter_constraints: dict = {
        **_SkGaussianMixture._parameter_constraints,
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
        "n_jobs": [
            None,
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, warm_start=False,
                 verbose=0, verbose_interval=10, learning_decay=0.6, learning_offset=2.0,
                 n_jobs=None, device="cpu"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.n_jobs = n_jobs
        self.device = device

    # --------------------------------------------------------------- hooks
    def _check_parameters(self, X, engine=None):
        n_features = X.shape[1]
        weights_init = means_init = precisions_init = None
        if self.weights_init is not None:
            weights_init = check_weights(self.weights_init, self.n_components)
        if self.means_init is not None:
            means_init = check_means(self.means_init, self.n_components, n_features)
        if self.precisions_init is not None:
            precisions_init = check_precisions(
                self.precisions_init, self.covariance_type, self.n_components, n_features)
        return weights_init, means_init, precisions_init

    def _initialize(self, engine, random_state, inits):
        """scikit-learn's start, drawing from ``random_state`` as it does."""
        weights_init, means_init, precisions_init = inits
        needs_rows = weights_init is None or means_init is None or precisions_init is None
        engine = engine.for_start(random_state, needs_rows)
        dtype = engine.dtype
        weights = means = covariances = None
        if needs_rows:
            stats = self._start_stats(engine, random_state)
            nk, means, covariances = estimate_gaussian_parameters(
                stats, self.reg_covar, engine.eps, engine.wsum)
            weights = nk / engine.wsum
        if weights_init is not None:
            weights = weights_init
        if means_init is not None:
            means = means_init
        weights = np.asarray(weights, dtype=dtype)
        means = np.asarray(means, dtype=dtype)
        if precisions_init is None:
            prec_chol = compute_precision_cholesky(covariances, self.covariance_type,
                                                   dtype=dtype)
            covariances = covariances.astype(dtype)
        else:
            prec_chol = compute_precision_cholesky_from_precisions(
                precisions_init, self.covariance_type).astype(dtype)
            covariances = covariances_from_precisions(
                np.asarray(precisions_init, dtype=dtype), self.covariance_type)
        return weights, means, covariances, prec_chol

    def _estep(self, params, dtype):
        """The E-step kernels' arguments; with ``dtype``, the precision factors as
        the work dtype holds them (the tiled kernels multiply by their float32 cast
        and undo the whitening with these values: a float64 model continued on
        float32 data by warm_start or partial_fit)."""
        weights, means, _, prec_chol = params
        if dtype is not None:
            prec_chol = np.asarray(prec_chol).astype(dtype, copy=False)
        return estep_params(weights, means, prec_chol, COV_CODES[self.covariance_type])

    def _m_step(self, stats, eps, wsum, dtype):
        nk, means, covariances = estimate_gaussian_parameters(stats, self.reg_covar, eps, wsum)
        weights = nk / nk.sum()
        # the precision factor of the float64 covariances, stored in dtype: a float32
        # cast first can move a reg_covar-sized direction by as much as itself
        prec_chol = compute_precision_cholesky(covariances, self.covariance_type, dtype=dtype)
        return weights.astype(dtype), means.astype(dtype), covariances.astype(dtype), prec_chol

    def _lower_bound(self, stats, wsum, ep, params, dtype):
        return dtype.type(stats.ll / wsum)  # the mean log-likelihood

    _parameter_names = ("weights_", "means_", "covariances_", "precisions_cholesky_")

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_) = params
        self.precisions_ = precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type
        ).astype(self.precisions_cholesky_.dtype, copy=False)

    def _expected_shapes(self, n_components, n_features):
        return {"weights_": (n_components,), "precisions_cholesky_": covariance_shape(
            self.covariance_type, n_components, n_features)}

    def _n_parameters(self):
        return n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

