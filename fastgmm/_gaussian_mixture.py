"""fastgmm.GaussianMixture: scikit-learn's GaussianMixture on fused Numba EM kernels."""

import math
import os
import threading
import warnings
from contextlib import contextmanager
from numbers import Integral, Real
from time import time

import numba
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as _SkGaussianMixture
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _kernels as K_
from ._kmeans import (kmeans_labels, kmeans_plusplus_indices, label_dtype, labels_of_rows,
                      rows_from_data)
from ._mstep import (
    Stats,
    _sym_upper,
    compute_precision_cholesky,
    compute_precision_cholesky_from_precisions,
    covariances_from_precisions,
    estimate_gaussian_parameters,
    kernel_params,
    n_parameters,
    precisions_from_cholesky,
)
from ._validation import check_means, check_precisions, check_sample_weight, check_weights

# rows of random responsibilities drawn at a time for init_params='random'
# (a multiple of the kernel block, so chunking never changes a result)
_RANDOM_CHUNK = 64 * K_.BLOCK


def _resolve_n_jobs(n_jobs):
    n_max = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None or n_jobs == -1:
        return n_max
    if n_jobs < 0:
        return max(1, n_max + 1 + n_jobs)
    return min(n_jobs, n_max)


_controller = None
_blas_lock = threading.Lock()
_blas_users = 0  # calls now inside _blas_one_thread
_blas_limiter = None  # their shared limit, restored by the last one out


def _blas_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def _blas_one_thread():
    """BLAS at one thread while any call that needs it runs. The first call in
    saves and sets the limit and the last one out restores it: calls that
    overlap in several Python threads can no longer restore each other's saved
    value (two threads predicting 200 times each left OpenBLAS at one thread)."""
    global _blas_users, _blas_limiter
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _forget_blas_users():
    """In a fork child: the calls that held the limit in the parent are not running
    here, and the lock may have been held by one of their threads."""
    global _blas_lock, _blas_users, _blas_limiter
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_limiter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_blas_users)


@contextmanager
def _threads(n_jobs, blas=True):
    """Set the kernels' thread count for one call (Numba's count is the calling
    thread's own) and, where the kernels call BLAS from inside their threads
    (``blas``: the tiled 'full' path), hold BLAS to one thread: the kernels'
    threads must not fight BLAS's, and a threaded BLAS product inside a kernel
    rounds with BLAS's thread count, so results would depend on the machine's
    BLAS setting (measured: n_jobs=1 and n_jobs=2 gave other bits when only the
    latter limited BLAS). Elsewhere (the M-step's small products) BLAS is left as
    it is. Restore both, even on error."""
    old = numba.get_num_threads()
    numba.set_num_threads(_resolve_n_jobs(n_jobs))
    try:
        if blas:
            with _blas_one_thread():
                yield
        else:
            yield
    finally:
        numba.set_num_threads(old)


def _uses_blas(covariance_type, n_features):
    return K_.uses_tiles(K_.COV_CODES.get(covariance_type, -1), n_features)


_CHECK_CHUNK = 1 << 16  # rows validated at a time on the streaming path


_work_dtype = K_.work_dtype


def _streamable(X):
    """Arrays the kernels read as they are, converting block by block: memmaps
    and any 2-D numeric ndarray that is not C-contiguous float32/float64."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        return False
    if not _native(X.dtype):
        return False  # converted by scikit-learn's check_array, as scikit-learn does
    return isinstance(X, np.memmap) or not (
        X.flags.c_contiguous and X.dtype in (np.float32, np.float64))


def _native(dtype):
    """Dtypes the kernels read as they are: native-endian integers, float32 and
    float64. Anything else (big-endian, long double, float16, bool) is converted to
    float64 by scikit-learn's validation first (big-endian bytes read as native
    ones were silent garbage; long double a Numba typing error)."""
    return dtype.isnative and (dtype.kind in "iu" or dtype in (np.float32, np.float64))


def _tile_args(kp, gshift, ct, dtype, needed):
    """``ucat``, ``muu`` for the tiled 'full' kernels; empty arrays of the work
    dtype (which still set the tiles' dtype) where the pass does not use them."""
    means = kp[0]
    if needed and K_.uses_tiles(ct, means.shape[1]):
        return K_.tile_params(kp[1], means, gshift, dtype)
    d = means.shape[1]
    return np.zeros((0, d, d), dtype=dtype), np.zeros((means.shape[0], 0))


def _readonly(X):
    """A read-only view: one compiled kernel specialisation serves every input."""
    v = X.view()
    v.flags.writeable = False
    return v


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM on fused, parallel Numba kernels.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, attributes, methods, warnings and errors, and the same start for
    the same ``random_state``. Each EM iteration is one parallel pass over the
    rows that produces additive sufficient statistics; no n_samples x
    n_components array is kept.

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
        Threads for the kernels during a call: None or -1 all cores, -2 all but
        one, and so on. Results are bitwise identical whatever the value.

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
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        learning_decay=0.6,
        learning_offset=2.0,
        n_jobs=None,
    ):
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

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None, sample_weight=None):
        """Estimate model parameters with the EM algorithm.

        As :meth:`sklearn.mixture.GaussianMixture.fit`, plus ``sample_weight``
        (non-negative, one per row: a weight of 2 is the same as repeating the
        row, a weight of 0 the same as dropping it).
        """
        self._fit_checked(X, sample_weight, labels=False)  # no use for the labels
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Estimate model parameters using X and predict the labels for X."""
        return self._fit_checked(X, sample_weight, labels=True)

    def _fit_checked(self, X, sample_weight, labels):
        self._validate_params()
        X = self._validate_X(X, reset=True)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, "
                f"n_samples = {X.shape[0]}"
            )
        sw = check_sample_weight(sample_weight, X.shape[0])
        inits = self._check_parameters(X)
        self.__dict__.pop("_online", None)
        if self.warm_start and hasattr(self, "converged_"):
            self._check_fitted_params(X.shape[1])
        with self._call_threads(X.shape[1]):
            return self._fit(X, sw, inits, labels=labels)

    # ---------------------------------------------------------- partial_fit
    def partial_fit(self, X, y=None, sample_weight=None):
        """Online (stepwise) EM on one batch, after Cappe and Moulines (2009).

        Keeps running sufficient statistics per unit weight, blends each batch's
        (computed by the same fused kernel as ``fit``) with step size
        rho_t = (t + learning_offset) ** -learning_decay, and sets the parameters
        from the blend. The first call on an unfitted estimator initialises from
        its batch (``init_params``, or ``weights_init`` / ``means_init`` /
        ``precisions_init``); on an estimator fitted by ``fit`` it starts from the
        fitted parameters. Later calls need the same number of features.
        ``n_iter_`` counts the batches; ``lower_bound_`` is the mean
        log-likelihood of the last batch before its update.
        """
        fitted = hasattr(self, "means_")
        if not hasattr(self, "_online"):
            self._validate_params()
        X = self._validate_X(X, reset=not fitted)
        if not fitted and X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, "
                f"n_samples = {X.shape[0]}"
            )
        sw = check_sample_weight(sample_weight, X.shape[0])
        inits = None if fitted else self._check_parameters(X)
        if fitted:
            self._check_fitted_params(X.shape[1])
        with self._call_threads(X.shape[1]):
            self._partial_fit(X, sw, inits)
        return self

    def _partial_fit(self, X, sw, inits):
        with self._call_state(X, sw):
            if inits is not None:
                params = self._initialize_parameters(
                    X, sw, check_random_state(self.random_state), inits)
            else:
                params = self._get_parameters()
            st, shift, gshift = self._em_stats(X, params)
            online = self.__dict__.get("_online")
            if online is None:
                online = {"t": 0, "origin": gshift.copy(), "stats": None}
            batch = _stats_about(st, shift, gshift, online["origin"], self._wsum, self._ct)
            online["t"] += 1
            if online["stats"] is None:
                online["stats"] = batch
            else:
                rho = (online["t"] + self.learning_offset) ** (-self.learning_decay)
                online["stats"] = _blend(online["stats"], batch, rho)
            origin = online["origin"]
            nk, means, covariances = estimate_gaussian_parameters(
                online["stats"], np.broadcast_to(origin, shift.shape), origin, self._ct,
                self.reg_covar, self._eps, 1.0)
            params = self._finish_params(self._dtype, nk / nk.sum(), means, covariances)
            self._set_parameters(params)
            self._online = online
            lower_bound = self._dtype.type(st.ll / self._wsum)
            self.lower_bounds_ = list(getattr(self, "lower_bounds_", [])) + [lower_bound]
            self.lower_bound_ = lower_bound
            self.n_iter_ = online["t"]
            self.converged_ = False

    def _validate_X(self, X, reset):
        """scikit-learn's validation; a read-only view of X, never a full copy of a
        memmap or a non-C-contiguous / integer array (see ``_streamable``)."""
        if _streamable(X):
            Xv = np.asarray(X)  # a memmap's buffer, as an ndarray: no copy
            # n_features_in_ / feature-name checks, on two rows
            validate_data(self, Xv[:2], reset=reset, dtype=[np.float64, np.float32])
            for start in range(0, Xv.shape[0], _CHECK_CHUNK):
                # NaN / inf / dtype checks, chunk by chunk, with scikit-learn's messages
                check_array(Xv[start:start + _CHECK_CHUNK], dtype=[np.float64, np.float32],
                            input_name="X", estimator=self)
            return _readonly(Xv)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], order="C",
                          ensure_min_samples=2 if reset else 1)
        return _readonly(X)

    def _check_parameters(self, X):
        n_features = X.shape[1]
        weights_init = means_init = precisions_init = None
        if self.weights_init is not None:
            weights_init = check_weights(self.weights_init, self.n_components)
        if self.means_init is not None:
            means_init = check_means(self.means_init, self.n_components, n_features)
        if self.precisions_init is not None:
            precisions_init = check_precisions(
                self.precisions_init, self.covariance_type, self.n_components, n_features
            )
        return weights_init, means_init, precisions_init

    @contextmanager
    def _call_state(self, X, sw):
        """The state the passes read during one call (covariance code, weights, work
        dtype, eps), removed afterwards, also when the call raises."""
        self._ct = K_.COV_CODES[self.covariance_type]
        self._set_weights(X, sw)
        self._dtype = _work_dtype(X)
        self._eps = float(np.finfo(self._dtype).eps)
        try:
            yield
        finally:
            del self._w, self._wsum, self._eps, self._ct, self._dtype

    def _fit(self, X, sw, inits, labels=True):
        with self._call_state(X, sw):
            do_init = not (self.warm_start and hasattr(self, "converged_"))
            n_init = self.n_init if do_init else 1
            max_lower_bound = -np.inf
            best_lower_bounds = []
            self.converged_ = False
            random_state = check_random_state(self.random_state)

            for init in range(n_init):
                self._print_verbose_msg_init_beg(init)
                if do_init:
                    params = self._initialize_parameters(X, sw, random_state, inits)
                else:
                    params = self._get_parameters()
                lower_bound = -np.inf if do_init else self.lower_bound_
                current_lower_bounds = []

                if self.max_iter == 0:
                    best_params = params
                    best_n_iter = 0
                else:
                    converged = False
                    for n_iter in range(1, self.max_iter + 1):
                        prev_lower_bound = lower_bound
                        lower_bound, params = self._em_step(X, params)
                        current_lower_bounds.append(lower_bound)
                        change = lower_bound - prev_lower_bound
                        self._print_verbose_msg_iter_end(n_iter, change)
                        if abs(change) < self.tol:
                            converged = True
                            break
                    self._print_verbose_msg_init_end(lower_bound, converged)
                    if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                        max_lower_bound = lower_bound
                        best_params = params
                        best_n_iter = n_iter
                        best_lower_bounds = current_lower_bounds
                        self.converged_ = converged

            if not self.converged_ and self.max_iter > 0:
                warnings.warn(
                    (
                        "Best performing initialization did not converge. "
                        "Try different init parameters, or increase max_iter, "
                        "tol, or check for degenerate data."
                    ),
                    ConvergenceWarning,
                )

            self._set_parameters(best_params)
            self.n_iter_ = best_n_iter
            self.lower_bound_ = max_lower_bound
            self.lower_bounds_ = best_lower_bounds
        # the final E-step: fit_predict(X) == fit(X).predict(X); fit skips it
        return self._log_prob_pass(X, mode=1) if labels else None

    # --------------------------------------------------------------- passes
    def _stats(self, X, mode, kp, shift, gshift, R=None, labels=None, rows=None):
        """One stats pass over rows [rows) of X: additive float64 statistics."""
        ct = self._ct
        K, n_features = kp[0].shape  # sizes from the parameters the kernel is handed
        st = Stats(K, n_features, ct)
        R = np.zeros((0, K)) if R is None else R
        labels = np.zeros(0, dtype=label_dtype(K)) if labels is None else labels
        row0, row1 = (0, X.shape[0]) if rows is None else rows
        group = K_.group_size(K, n_features, ct)
        ucat, muu = _tile_args(kp, gshift, ct, self._dtype, mode == K_.MODE_EM)
        st.ll = K_.stats_pass(X, row0, row1, self._w, mode, R, labels, *kp, shift, gshift, ct,
                              group, st.nk, st.s1, st.s2, ucat, muu)
        return st

    def _set_weights(self, X, sw):
        # no weights: an empty array, which the kernels read as unit weights (a
        # memmap of many GB then needs no n-sized array for them)
        self._w = np.zeros(0) if sw is None else sw
        self._wsum = float(X.shape[0]) if sw is None else float(np.sum(sw))

    def _shift(self, means, gshift, n_features):
        """The statistics' shift: each component's mean, or for the tiled 'full'
        kernels the common gshift."""
        if K_.uses_tiles(self._ct, n_features):
            # a writable C-ordered copy (the start zeroes weightless components'
            # rows; with one component a broadcast view was already contiguous and
            # read-only). C order: np.array keeps a broadcast's zero-stride layout as
            # Fortran order, and the kernels compiled a second variant for it
            return np.array(np.broadcast_to(gshift, means.shape), order="C")
        return np.array(means, dtype=np.float64, order="C")

    def _em_stats(self, X, params):
        """One fused E+M pass at ``params``: its statistics, and their shifts."""
        weights, means, _, prec_chol = params
        # factors the work dtype holds exactly: the tiled kernels multiply by their
        # float32 cast and undo the whitening with the float64 values (a float64
        # model continued on float32 data by warm_start or partial_fit)
        prec_chol = np.asarray(prec_chol).astype(self._dtype, copy=False)
        kp = kernel_params(weights, means, prec_chol, self._ct)
        gshift = np.asarray(weights, dtype=np.float64) @ kp[0]
        shift = self._shift(kp[0], gshift, X.shape[1])
        return self._stats(X, K_.MODE_EM, kp, shift, gshift), shift, gshift

    def _em_step(self, X, params):
        """One fused E+M pass: lower bound at ``params`` and the updated parameters."""
        st, shift, gshift = self._em_stats(X, params)
        lower_bound = self._dtype.type(st.ll / self._wsum)
        nk, means, covariances = estimate_gaussian_parameters(
            st, shift, gshift, self._ct, self.reg_covar, self._eps, self._wsum
        )
        weights = nk / nk.sum()
        return lower_bound, self._finish_params(self._dtype, weights, means, covariances)

    def _finish_params(self, dtype, weights, means, covariances):
        # the precision factor of the float64 covariances, stored in dtype: a float32
        # cast first can move a reg_covar-sized direction by as much as itself
        prec_chol = compute_precision_cholesky(covariances, self.covariance_type, dtype=dtype)
        return weights.astype(dtype), means.astype(dtype), covariances.astype(dtype), prec_chol

    def _resp_stats(self, X, R_chunks=None, labels=None, guess=None):
        """Statistics of given responsibilities (dense chunks or hard labels),
        shifted so that the one-pass covariance cannot cancel: by ``guess`` (K, d)
        centres near the components' means, with its row counts, in one pass;
        else a first pass for the means, then the scatter about those means."""
        K, d = self.n_components, X.shape[1]
        kp = (np.zeros((K, d)), np.zeros((0, d, d)), np.zeros((0, d)), np.zeros(K), np.zeros(K))

        def run(shift, gshift):
            if labels is not None:
                return self._stats(X, K_.MODE_LABELS, kp, shift, gshift, labels=labels)
            total = None
            for start, R in R_chunks():
                part = self._stats(X, K_.MODE_RESP, kp, shift, gshift, R=R,
                                   rows=(start, start + R.shape[0]))
                total = part if total is None else _add_stats(total, part)
            return total

        if guess is None:
            first = run(np.zeros((K, d)), np.zeros(d))
            means = first.s1 / (first.nk + 10 * self._eps)[:, None]
            counts = first.nk
        else:
            means, counts = guess
        gshift = (counts @ means) / max(float(np.sum(counts)), np.finfo(np.float64).tiny)
        shift = self._shift(means, gshift, d)
        st = run(shift, gshift)
        # a component without weight gets scikit-learn's mean 0 whatever its shift
        # (its sums are 0 whatever the shift)
        shift[st.nk == 0] = 0.0
        return st, shift, gshift

    def _initialize_parameters(self, X, sw, random_state, inits):
        weights_init, means_init, precisions_init = inits
        n_samples = X.shape[0]
        K = self.n_components
        dtype = self._dtype
        weights = means = covariances = None
        if weights_init is None or means_init is None or precisions_init is None:
            labels = R_chunks = guess = None
            if self.init_params == "kmeans":
                labels, centers, counts = kmeans_labels(X, K, random_state, sample_weight=sw)
                guess = (centers, counts.astype(np.float64))
            elif self.init_params == "random":
                state = random_state.get_state()

                def R_chunks():
                    # the same numbers, in the same order, as scikit-learn's
                    # random_state.uniform(size=(n_samples, K)), a chunk at a time
                    random_state.set_state(state)
                    for start in range(0, n_samples, _RANDOM_CHUNK):
                        rows = min(_RANDOM_CHUNK, n_samples - start)
                        R = np.asarray(random_state.uniform(size=(rows, K)), dtype=dtype)
                        R /= np.sum(R, axis=1)[:, np.newaxis]
                        yield start, np.ascontiguousarray(R, dtype=np.float64)
            elif self.init_params == "random_from_data":
                indices = rows_from_data(random_state, n_samples, K)
            else:  # "k-means++"
                indices = kmeans_plusplus_indices(X, K, random_state, sample_weight=sw)
            if self.init_params in ("random_from_data", "k-means++"):
                # one row a component: each row is its component's mean
                labels = labels_of_rows(n_samples, indices)
                guess = (np.asarray(X[indices], dtype=np.float64), np.ones(K))
            st, shift, gshift = self._resp_stats(X, R_chunks=R_chunks, labels=labels,
                                                 guess=guess)
            nk, means, covariances = estimate_gaussian_parameters(
                st, shift, gshift, self._ct, self.reg_covar, self._eps, self._wsum
            )
            weights = nk / self._wsum
        if weights_init is not None:
            weights = weights_init
        if means_init is not None:
            means = means_init
        weights = np.asarray(weights, dtype=dtype)
        means = np.asarray(means, dtype=dtype)
        if precisions_init is None:
            prec_chol = compute_precision_cholesky(covariances, self.covariance_type, dtype=dtype)
            covariances = covariances.astype(dtype)
        else:
            prec_chol = compute_precision_cholesky_from_precisions(
                precisions_init, self.covariance_type
            ).astype(dtype)
            covariances = covariances_from_precisions(
                np.asarray(precisions_init, dtype=dtype), self.covariance_type
            )
        return weights, means, covariances, prec_chol

    def _get_parameters(self):
        return (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_) = params
        self.precisions_ = precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type
        ).astype(self.precisions_cholesky_.dtype, copy=False)

    # -------------------------------------------------------------- predict
    def _log_prob_pass(self, X, mode):
        ct = K_.COV_CODES[self.covariance_type]
        kp = kernel_params(self.weights_, self.means_, self.precisions_cholesky_, ct)
        n = X.shape[0]
        K = kp[0].shape[0]  # sizes from the parameters the kernel is handed
        out_lse = np.empty(n if mode != 1 else 0)
        out_label = np.empty(n if mode == 1 else 0, dtype=np.int64)
        out_resp = np.empty((n, K) if mode == 2 else (0, K))
        gshift = np.asarray(self.weights_, dtype=np.float64) @ kp[0]
        dtype = _work_dtype(X)
        ucat, muu = _tile_args(kp, gshift, ct, dtype, True)
        K_.log_prob_pass(X, *kp, ct, mode, out_lse, out_label, out_resp, gshift, ucat, muu)
        if mode == 1:
            return out_label
        if mode == 2:
            return out_resp.astype(dtype, copy=False)
        return out_lse.astype(dtype, copy=False)

    def _check_fitted_params(self, n_features):
        """The fitted attributes agree with each other and with X's features, before
        any kernel reads them (kernels do not check bounds: a mismatch corrupted the
        heap or read garbage)."""
        means = np.asarray(self.means_)
        if means.ndim != 2 or means.shape[1] != n_features or means.shape[0] < 1:
            raise ValueError(
                f"The fitted attributes are inconsistent: means_ has shape {means.shape}, "
                f"expected (n_components, {n_features}) for X with {n_features} features. "
                "Refit the model.")
        K, d = means.shape
        expected = {
            "weights_": (K,),
            "precisions_cholesky_": {"full": (K, d, d), "tied": (d, d), "diag": (K, d),
                                     "spherical": (K,)}[self.covariance_type],
        }
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(
                    f"The fitted attributes are inconsistent: {name} has shape {got}, "
                    f"expected {shape} for means_ of shape {means.shape} and "
                    f"covariance_type={self.covariance_type!r}. Refit the model.")

    def _validate_predict_input(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        self._check_fitted_params(X.shape[1])
        return X

    def _call_threads(self, n_features):
        """This call's threads: n_jobs, and BLAS held at one where the kernels call it."""
        return _threads(self.n_jobs, _uses_blas(self.covariance_type, n_features))

    def score_samples(self, X):
        """Compute the log-likelihood of each sample."""
        X = self._validate_predict_input(X)
        with self._call_threads(X.shape[1]):
            return self._log_prob_pass(X, mode=0)

    def score(self, X, y=None, sample_weight=None):
        """Per-sample average log-likelihood of X (weighted by ``sample_weight``)."""
        log_prob = self.score_samples(X)
        sw = check_sample_weight(sample_weight, log_prob.shape[0])
        if sw is None:
            return float(np.mean(log_prob))
        return float(np.average(log_prob, weights=sw))

    def predict(self, X):
        """Predict the labels for the data samples in X using the fitted model."""
        X = self._validate_predict_input(X)
        with self._call_threads(X.shape[1]):
            return self._log_prob_pass(X, mode=1)

    def predict_proba(self, X):
        """Posterior probability of each component for each sample."""
        X = self._validate_predict_input(X)
        with self._call_threads(X.shape[1]):
            return self._log_prob_pass(X, mode=2)

    def sample(self, n_samples=1):
        """Generate random samples from the fitted Gaussian mixture (as scikit-learn)."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % (self.n_components)
            )
        _, n_features = self.means_.shape
        rng = check_random_state(self.random_state)
        n_samples_comp = rng.multinomial(n_samples, self.weights_)
        if self.covariance_type == "full":
            X = np.vstack(
                [
                    rng.multivariate_normal(mean, covariance, int(sample))
                    for (mean, covariance, sample) in zip(
                        self.means_, self.covariances_, n_samples_comp
                    )
                ]
            )
        elif self.covariance_type == "tied":
            X = np.vstack(
                [
                    rng.multivariate_normal(mean, self.covariances_, int(sample))
                    for (mean, sample) in zip(self.means_, n_samples_comp)
                ]
            )
        else:
            X = np.vstack(
                [
                    mean + rng.standard_normal(size=(sample, n_features)) * np.sqrt(covariance)
                    for (mean, covariance, sample) in zip(
                        self.means_, self.covariances_, n_samples_comp
                    )
                ]
            )
        y = np.concatenate(
            [np.full(int(n_samples_comp[i]), i, dtype=np.int64) for i in range(len(n_samples_comp))]
        )
        return np.asarray(X, dtype=np.float64), y

    def _n_parameters(self):
        return n_parameters(self.covariance_type, self.n_components, self.means_.shape[1])

    def bic(self, X):
        """Bayesian information criterion for the current model on the input X."""
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * math.log(X.shape[0])

    def aic(self, X):
        """Akaike information criterion for the current model on the input X."""
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()

    # -------------------------------------------------------------- verbose
    def _print_verbose_msg_init_beg(self, n_init):
        if self.verbose == 1:
            print("Initialization %d" % n_init)
        elif self.verbose >= 2:
            print("Initialization %d" % n_init)
            self._init_prev_time = time()
            self._iter_prev_time = self._init_prev_time

    def _print_verbose_msg_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print("  Iteration %d" % n_iter)
            elif self.verbose >= 2:
                cur_time = time()
                print(
                    "  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                    % (n_iter, cur_time - self._iter_prev_time, diff_ll)
                )
                self._iter_prev_time = cur_time

    def _print_verbose_msg_init_end(self, lb, init_has_converged):
        converged_msg = "converged" if init_has_converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {converged_msg}.")
        elif self.verbose >= 2:
            t = time() - self._init_prev_time
            print(
                f"Initialization {converged_msg}. time lapse {t:.5f}s\t lower bound"
                f" {lb:.5f}."
            )


def _stats_about(st, shift, gshift, origin, wsum, ct):
    """Statistics per unit weight, moved from their shifts to a fixed origin
    (exact algebra: the online EM blends statistics of batches with different
    shifts)."""
    out = Stats(st.nk.shape[0], st.s1.shape[1], ct)
    d = st.s1.shape[1]
    delta = shift - origin  # (K, d)
    out.nk = st.nk / wsum
    out.s1 = (st.s1 + st.nk[:, None] * delta) / wsum
    if ct == K_.FULL:
        s2 = _sym_upper(st.s2)
        cross = st.s1[:, :, None] * delta[:, None, :]
        out.s2 = (s2 + cross + np.swapaxes(cross, 1, 2)
                  + st.nk[:, None, None] * delta[:, :, None] * delta[:, None, :]) / wsum
    elif ct == K_.TIED:
        dg = gshift - origin
        s2 = _sym_upper(st.s2[0, :d])
        e = st.s2[0, d]
        out.s2 = np.empty_like(st.s2)
        out.s2[0, :d] = (s2 + np.outer(e, dg) + np.outer(dg, e) + wsum * np.outer(dg, dg)) / wsum
        out.s2[0, d] = (e + wsum * dg) / wsum
    else:
        out.s2 = (st.s2 + (2 * st.s1 * delta + st.nk[:, None] * delta * delta)[:, None, :]) / wsum
    return out


def _blend(running, batch, rho):
    """(1 - rho) running + rho batch, in place on running."""
    for name in ("nk", "s1", "s2"):
        r = getattr(running, name)
        r *= 1 - rho
        r += rho * getattr(batch, name)
    return running


def _add_stats(a, b):
    a.nk += b.nk
    a.s1 += b.s1
    a.s2 += b.s2
    a.ll += b.ll
    return a
