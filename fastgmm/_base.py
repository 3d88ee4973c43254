"""The EM driver, written once for every mixture model of the package.

``BaseMixture`` is scikit-learn's ``BaseMixture`` contract (the n_init /
warm_start / max_iter=0 loop, convergence and its warning, verbose output,
``fit_predict``, ``score``, ``predict*``, ``sample``; ``bic`` / ``aic`` in a mixin) plus
``sample_weight`` and ``partial_fit``, on an engine (``_engine``) that runs the
passes. A model supplies the hooks:

- ``_check_parameters(X, engine)`` -> its validated initial values (``inits``);
  priors that depend on the data come from the engine (a pass, never a copy of X)
- ``_initialize(engine, random_state, inits)`` -> params, its start (most models
  take ``_start_stats``: the statistics of scikit-learn's start for ``init_params``)
- ``_estep(params, dtype)`` -> ``_mstep.EStep``, what the kernels need per component
- ``_m_step(stats, eps, wsum, dtype)`` -> params, from additive ``_stats.Stats``
- ``_lower_bound(stats, wsum, ep, params, dtype)`` -> the value EM maximises, from
  the pass's statistics at the E-step ``ep`` and the parameters of its M-step
- ``_online_scale(seen)``: the total weight ``partial_fit``'s per-unit statistics
  stand for in its M-step (1: models whose M-step is scale-free)
- ``_get_parameters()`` / ``_set_parameters(params)``, ``_parameter_names`` (the
  attributes ``_get_parameters`` returns, in order), ``_expected_shapes(K, d)``,
  ``_n_parameters()``

Nothing about a call is stored on the estimator: the engine holds the data,
its weights and the call's threads.
"""

import math
import numbers
import threading
import warnings
import weakref
from time import time

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, validate_data

from ._engine import CPUEngine
from ._estep import COV_CODES
from ._kmeans import labels_of_rows, rows_from_data
from ._numba import BLOCK
from ._validation import check_sample_weight

_CHECK_CHUNK = 1 << 16  # rows validated at a time on the streaming path
# rows of random responsibilities drawn at a time for init_params='random'
# (a multiple of the kernel block, so chunking never changes a result)
_RANDOM_CHUNK = 64 * BLOCK


_SEEDED = threading.local()  # this thread's generator for fits given an int seed


def _fit_random_state(seed):
    """``check_random_state(seed)`` for a fit: for an int seed a RandomState kept
    for this thread and seeded again (``RandomState.seed``: the same legacy seeding
    as ``RandomState(seed)``, the same draws), as building a RandomState costs some
    65 us (a 10k x 8 fit's tenth). A fit draws from it only while it runs and keeps
    no reference to it: the next fit in this thread seeds it again."""
    if isinstance(seed, numbers.Integral):
        rs = getattr(_SEEDED, "rs", None)
        if rs is None:
            rs = _SEEDED.rs = np.random.RandomState(0)
        rs.seed(seed)
        return rs
    return check_random_state(seed)


def _native(dtype):
    """Dtypes the kernels read as they are: native-endian integers, float32 and
    float64. Anything else (big-endian, long double, float16, bool) is converted to
    float64 by scikit-learn's validation first (big-endian bytes read as native
    ones were silent garbage; long double a Numba typing error)."""
    return dtype.isnative and (dtype.kind in "iu" or dtype in (np.float32, np.float64))


def _streamable(X):
    """Arrays the kernels read as they are, converting block by block: memmaps
    and any 2-D numeric ndarray that is not C-contiguous float32/float64."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        return False
    if not _native(X.dtype):
        return False  # converted by scikit-learn's check_array, as scikit-learn does
    return isinstance(X, np.memmap) or not (
        X.flags.c_contiguous and X.dtype in (np.float32, np.float64))


def _clean(X, estimator, reset):
    """Whether scikit-learn's ``validate_data`` would hand X back as it is and
    change nothing but ``n_features_in_`` / ``feature_names_in_``: a plain,
    C-contiguous, native float32/float64 ndarray, finite, with enough rows and
    features, and on a fitted model its number of features and no feature names.
    Such X skips the generic checks (a fifth of a small fit's time); anything
    else, errors included, goes through scikit-learn's."""
    if (type(X) is not np.ndarray or X.ndim != 2 or not X.flags.c_contiguous
            or X.dtype not in (np.float64, np.float32) or not X.dtype.isnative
            or X.shape[0] < (2 if reset else 1) or X.shape[1] < 1):
        return False
    if not reset and ("feature_names_in_" in estimator.__dict__
                      or getattr(estimator, "n_features_in_", None) != X.shape[1]):
        return False
    with np.errstate(all="ignore"):
        return bool(np.isfinite(X.sum()))


def _readonly(X):
    """A read-only view: one compiled kernel specialisation serves every input."""
    v = X.view()
    v.flags.writeable = False
    return v


def _on_device(X):
    """Whether X is a GPU array (``__cuda_array_interface__``: CuPy, PyTorch CUDA
    tensors, Numba device arrays); numba.cuda is imported only then."""
    if hasattr(X, "__cuda_array_interface__"):
        return True
    # Numba's device arrays (the simulator's have no __cuda_array_interface__)
    return type(X).__module__.startswith("numba.cuda") and hasattr(X, "copy_to_host")


def _host(a):
    """Sample weights given on a GPU, copied to the host (n numbers): they are
    validated there, as scikit-learn validates them."""
    if a is not None and _on_device(a):
        from ._cuda import to_host

        return to_host(a)
    return a


def _check_cuda():
    """device='cuda' needs numba-cuda and a GPU: a clear error otherwise."""
    try:
        from ._cuda import available
    except ImportError as exc:
        raise ImportError(
            "device='cuda' needs the numba-cuda package: pip install 'fastgmm[cuda]'"
        ) from exc
    if not available():
        raise RuntimeError(
            "device='cuda' was asked for, but Numba finds no CUDA GPU (numba.cuda."
            "is_available() is False); use device='cpu'.")


def check_n_samples(n_samples, n_components):
    if n_samples < n_components:
        raise ValueError(
            "Expected n_samples >= n_components "
            f"but got n_components = {n_components}, "
            f"n_samples = {n_samples}"
        )


_PARAM_NAMES = weakref.WeakKeyDictionary()  # a class -> its parameter names
_VALIDATED = weakref.WeakKeyDictionary()  # a class -> parameter values that passed


class BaseMixture(DensityMixin, BaseEstimator):
    """The EM driver (see the module docstring); subclasses are the models."""

    @classmethod
    def _get_param_names(cls):
        """scikit-learn's (the constructor's parameter names, sorted), read once a
        class: scikit-learn reads the signature on every ``get_params``, which
        each ``fit`` runs to validate the parameters (0.15 ms of a small fit)."""
        if cls not in _PARAM_NAMES:
            _PARAM_NAMES[cls] = tuple(super()._get_param_names())
        return list(_PARAM_NAMES[cls])

    def _validate_params(self):
        """scikit-learn's parameter validation, remembered per class for values that
        passed where all are hashable: the same (name, type, value) tuples always
        pass (the constraints are a function of the class, types and values), and
        validating is some 40 us of a 1 ms fit. Anything else (an array, a NaN,
        values not seen) is validated by scikit-learn, with its messages."""
        params = self.get_params(deep=False)
        key = tuple((name, type(value), value) for name, value in params.items())
        try:
            hash(key)
        except TypeError:
            key = None
        seen = _VALIDATED.setdefault(type(self), set())
        if key is not None and key in seen:
            return
        validate_parameter_constraints(self._parameter_constraints, params,
                                       caller_name=type(self).__name__)
        if key is not None:
            if len(seen) >= 256:
                seen.clear()
            seen.add(key)

    # ------------------------------------------------------------ engines
    def _engine(self, X, sample_weight):
        """The CPU engine, or the CUDA engine (``_cuda``) where X lives on a GPU or
        the model's ``device`` is 'cuda'."""
        if _on_device(X) or getattr(self, "device", "cpu") == "cuda":
            from ._cuda import CUDAEngine

            return CUDAEngine(X, sample_weight, self.n_jobs)
        return CPUEngine(X, sample_weight, self.n_jobs)

    def _validate_X(self, X, reset):
        """scikit-learn's validation; a read-only view of X, never a full copy of a
        memmap or a non-C-contiguous / integer array (see ``_streamable``)."""
        if _on_device(X):  # checked where it lives: no copy to the host
            from ._cuda import check_device_X

            n_features = None if reset else getattr(self, "n_features_in_", None)
            Xd = check_device_X(X, self, n_features, ensure_min_samples=2 if reset else 1)
            if reset:
                self.n_features_in_ = Xd.shape[1]
                self.__dict__.pop("feature_names_in_", None)
            return Xd
        if getattr(self, "device", "cpu") == "cuda":
            _check_cuda()
        if _clean(X, self, reset):
            if reset:
                self.n_features_in_ = X.shape[1]
                self.__dict__.pop("feature_names_in_", None)
            return _readonly(X)
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

    # ---------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None):
        """Estimate model parameters with the EM algorithm.

        As scikit-learn's ``fit``, plus ``sample_weight`` (non-negative, one per
        row: a weight of 2 is the same as repeating the row, 0 as dropping it).
        """
        self._fit_checked(X, sample_weight, labels=False)  # no use for the labels
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Estimate model parameters using X and predict the labels for X."""
        return self._fit_checked(X, sample_weight, labels=True)

    def _fit_checked(self, X, sample_weight, labels):
        self._validate_params()
        X = self._validate_X(X, reset=True)
        check_n_samples(X.shape[0], self.n_components)
        sw = check_sample_weight(_host(sample_weight), X.shape[0], self._relative_weights)
        engine = self._engine(X, sw)
        inits = self._check_parameters(X, engine)
        self.__dict__.pop("_online", None)
        if self.warm_start and hasattr(self, "converged_"):
            self._check_fitted_params(X.shape[1])
        return self._fit(engine, inits, labels)

    def _fit(self, engine, inits, labels):
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        n_init = self.n_init if do_init else 1
        max_lower_bound = -np.inf
        best_lower_bounds = []
        best_converged = False
        random_state = _fit_random_state(self.random_state)
        dtype = engine.dtype

        for init in range(n_init):
            self._print_verbose_msg_init_beg(init)
            params = (self._initialize(engine, random_state, inits) if do_init
                      else self._get_parameters())
            lower_bound = -np.inf if do_init else self.lower_bound_
            current_lower_bounds = []

            if self.max_iter == 0:
                best_params, best_n_iter = params, 0
                continue
            converged = False
            for n_iter in range(1, self.max_iter + 1):
                prev_lower_bound = lower_bound
                ep = self._estep(params, dtype)
                stats = engine.stats(ep)
                params = self._m_step(stats, engine.eps, engine.wsum, dtype)
                lower_bound = self._lower_bound(stats, engine.wsum, ep, params, dtype)
                current_lower_bounds.append(lower_bound)
                change = lower_bound - prev_lower_bound
                self._print_verbose_msg_iter_end(n_iter, change)
                if abs(change) < self.tol:
                    converged = True
                    break
            self._print_verbose_msg_init_end(lower_bound, converged)
            if lower_bound > max_lower_bound or max_lower_bound == -np.inf:
                max_lower_bound = lower_bound
                best_params, best_n_iter = params, n_iter
                best_lower_bounds = current_lower_bounds
                best_converged = converged

        self.converged_ = best_converged
        if not best_converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_parameters(best_params)
        self.n_iter_ = best_n_iter
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = best_lower_bounds
        # the final E-step: fit_predict(X) == fit(X).predict(X); fit skips it
        return engine.log_prob(self._estep(best_params, None), "label") if labels else None

    # -------------------------------------------------------- partial_fit
    def partial_fit(self, X, y=None, sample_weight=None):
        """Online (stepwise) EM on one batch, after Cappe and Moulines (2009).

        Keeps running sufficient statistics per unit weight, blends each batch's
        (computed by the same fused pass as ``fit``) with step size
        rho_t = (t + learning_offset) ** -learning_decay, and sets the parameters
        from the blend. The first call on an unfitted estimator initialises from
        its batch (``init_params``, or ``weights_init`` / ``means_init`` /
        ``precisions_init``); on an estimator fitted by ``fit`` it starts from the
        fitted parameters. Later calls need the same number of features.
        ``n_iter_`` counts the batches; ``lower_bound_`` is the model's lower
        bound on the last batch (a Gaussian mixture's: the batch's mean
        log-likelihood before its update).
        """
        fitted = hasattr(self, "means_")
        if not hasattr(self, "_online"):
            self._validate_params()
        X = self._validate_X(X, reset=not fitted)
        if not fitted:
            check_n_samples(X.shape[0], self.n_components)
        sw = check_sample_weight(_host(sample_weight), X.shape[0], self._relative_weights)
        engine = self._engine(X, sw)
        inits = None if fitted else self._check_parameters(X, engine)
        if fitted:
            self._check_fitted_params(X.shape[1])
        dtype = engine.dtype
        if not fitted:
            params = self._initialize(engine, _fit_random_state(self.random_state), inits)
        else:
            params = self._get_parameters()
        ep = self._estep(params, dtype)
        stats = engine.stats(ep)
        previous = self.__dict__.get("_online")
        origin = stats.gshift.copy() if previous is None else previous["origin"]
        batch = stats.about(origin, engine.wsum)
        t = 1 if previous is None else previous["t"] + 1
        seen = engine.wsum + (0.0 if previous is None else previous["seen"])
        if previous is None:
            blended = batch
        else:
            rho = (t + self.learning_offset) ** (-self.learning_decay)
            blended = previous["stats"].blend(batch, rho)
        # the M-step may raise (ill-defined covariance): the online state moves on
        # only with the parameters
        scale = self._online_scale(seen)
        new = self._m_step(blended.scaled(scale), engine.eps, scale, dtype)
        lower_bound = self._lower_bound(stats, engine.wsum, ep, new, dtype)
        self._set_parameters(new)
        self._online = {"t": t, "origin": origin, "stats": blended, "seen": seen}
        self.lower_bounds_ = list(getattr(self, "lower_bounds_", [])) + [lower_bound]
        self.lower_bound_ = lower_bound
        self.n_iter_ = t
        self.converged_ = False
        return self

    _relative_weights = True  # sample weights scaled to a mean of 1 (a scale-free model)

    def _online_scale(self, seen):
        return 1.0

    def _start_stats(self, engine, random_state):
        """The statistics of scikit-learn's start for ``init_params`` on ``engine``
        (``kmeans``, ``k-means++``, ``random``, ``random_from_data``), drawing from
        ``random_state`` as scikit-learn does."""
        K, dtype = self.n_components, engine.dtype
        labels = R_chunks = guess = None
        if self.init_params == "kmeans":
            labels, centers, counts = engine.kmeans_labels(K, random_state)
            guess = (centers, counts.astype(np.float64))
        elif self.init_params == "random":
            R_chunks = _random_resp(random_state, engine.n_samples, K, dtype)
        else:
            if self.init_params == "random_from_data":
                indices = rows_from_data(random_state, engine.n_samples, K)
            else:  # "k-means++"
                indices = engine.kmeans_plusplus(K, random_state)
            # one row a component: each row is its component's mean
            labels = labels_of_rows(engine.n_samples, indices)
            guess = (engine.rows(indices), np.ones(K))
            if getattr(engine, "subset", None) is not None:
                # no other row has a responsibility: the chosen rows' statistics
                # alone, the same sums without a pass over X (for 'tied', whose
                # pooled sums need all rows, once a pass has made them)
                chosen = np.unique(indices)
                sub = engine.subset(chosen, COV_CODES[self.covariance_type])
                if sub is not None:
                    engine, labels = sub, labels[chosen]
        return engine.given_stats(COV_CODES[self.covariance_type], K, labels=labels,
                                  resp_chunks=R_chunks, guess=guess)

    # -------------------------------------------------------- predictions
    def _check_fitted_params(self, n_features):
        """The fitted attributes agree with each other and with X's features, before
        any kernel reads them (kernels do not check bounds: a mismatch corrupted the
        heap or read garbage). Returns the parameters it checked: read once, so that
        a refit in another thread cannot change them between the check and the use."""
        params = self._get_parameters()
        named = dict(zip(self._parameter_names, params))
        means = np.asarray(named["means_"])
        if means.ndim != 2 or means.shape[1] != n_features or means.shape[0] < 1:
            raise ValueError(
                f"The fitted attributes are inconsistent: means_ has shape {means.shape}, "
                f"expected (n_components, {n_features}) for X with {n_features} features. "
                "Refit the model.")
        for name, shape in self._expected_shapes(*means.shape).items():
            got = np.shape(named[name])
            if got != shape:
                raise ValueError(
                    f"The fitted attributes are inconsistent: {name} has shape {got}, "
                    f"expected {shape} for means_ of shape {means.shape} and "
                    f"covariance_type={self.covariance_type!r}. Refit the model.")
        return params

    def _log_prob(self, X, out):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        params = self._check_fitted_params(X.shape[1])
        return self._engine(X, None).log_prob(self._estep(params, None), out)

    def score_samples(self, X):
        """Compute the log-likelihood of each sample."""
        return self._log_prob(X, "lse")

    def score(self, X, y=None, sample_weight=None):
        """Per-sample average log-likelihood of X (weighted by ``sample_weight``)."""
        log_prob = self.score_samples(X)
        sw = check_sample_weight(_host(sample_weight), log_prob.shape[0])
        if sw is None:
            return float(np.mean(log_prob))
        # a row of weight zero is not there, even where its log-likelihood is -inf
        return float(np.average(np.where(sw > 0, log_prob, 0.0), weights=sw))

    def predict(self, X):
        """Predict the labels for the data samples in X using the fitted model."""
        return self._log_prob(X, "label")

    def predict_proba(self, X):
        """Posterior probability of each component for each sample."""
        return self._log_prob(X, "resp")

    def sample(self, n_samples=1):
        """Generate random samples from the fitted mixture (as scikit-learn)."""
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                "Invalid value for 'n_samples': %d . The sampling requires at "
                "least one sample." % (self.n_components)
            )
        _, n_features = self.means_.shape
        rng = check_random_state(self.random_state)
        n_samples_comp = rng.multinomial(n_samples, self.weights_)
        comps = zip(self.means_, self.covariances_, n_samples_comp)
        if self.covariance_type == "full":
            X = np.vstack([rng.multivariate_normal(m, c, int(s)) for (m, c, s) in comps])
        elif self.covariance_type == "tied":
            X = np.vstack([rng.multivariate_normal(m, self.covariances_, int(s))
                           for (m, s) in zip(self.means_, n_samples_comp)])
        else:
            X = np.vstack([m + rng.standard_normal(size=(s, n_features)) * np.sqrt(c)
                           for (m, c, s) in comps])
        y = np.concatenate([np.full(int(s), i, dtype=np.int64)
                            for i, s in enumerate(n_samples_comp)])
        return np.asarray(X, dtype=np.float64), y

    # ------------------------------------------------------------ verbose
    # scikit-learn's printers, signatures and timing attributes included (a
    # subclass may override them)
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
                print("  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                      % (n_iter, cur_time - self._iter_prev_time, diff_ll))
                self._iter_prev_time = cur_time

    def _print_verbose_msg_init_end(self, lb, init_has_converged):
        converged_msg = "converged" if init_has_converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {converged_msg}.")
        elif self.verbose >= 2:
            t = time() - self._init_prev_time
            print(f"Initialization {converged_msg}. time lapse {t:.5f}s\t lower bound"
                  f" {lb:.5f}.")


class InformationCriteriaMixin:
    """``bic`` / ``aic`` (scikit-learn's GaussianMixture has them; its Bayesian
    mixture does not)."""

    def bic(self, X):
        """Bayesian information criterion for the current model on the input X."""
        return information_criteria(self.score(X), X.shape[0], self._n_parameters())[0]

    def aic(self, X):
        """Akaike information criterion for the current model on the input X."""
        return information_criteria(self.score(X), X.shape[0], self._n_parameters())[1]


def information_criteria(score, n_samples, n_parameters):
    """scikit-learn's BIC and AIC from the mean log-likelihood ``score``."""
    return (-2 * score * n_samples + n_parameters * math.log(n_samples),
            -2 * score * n_samples + 2 * n_parameters)


def _random_resp(random_state, n_samples, K, dtype):
    """scikit-learn's random responsibilities, ``random_state.uniform(size=(n_samples,
    K))`` normalised per row, a chunk of rows at a time (the same numbers in the same
    order: the generator's state is restored at each replay)."""
    state = random_state.get_state()

    def chunks():
        random_state.set_state(state)
        for start in range(0, n_samples, _RANDOM_CHUNK):
            rows = min(_RANDOM_CHUNK, n_samples - start)
            R = np.asarray(random_state.uniform(size=(rows, K)), dtype=dtype)
            R /= np.sum(R, axis=1)[:, np.newaxis]
            yield start, np.ascontiguousarray(R, dtype=np.float64)

    return chunks
