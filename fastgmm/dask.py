"""Fitting a Gaussian mixture on a Dask cluster.

``fastgmm.dask.GaussianMixture`` and ``fastgmm.dask.BayesianGaussianMixture`` are
``fastgmm.GaussianMixture`` and ``fastgmm.BayesianGaussianMixture`` for
``dask.array`` input. Each EM iteration is one task per chunk of rows that runs
the same fused Numba kernel as the in-memory fit and returns that chunk's
sufficient statistics (O(K d^2) numbers), a tree reduction that adds them in a
fixed order, and the M-step on the client. From the same start the result equals
the in-memory fit up to rounding, whatever the chunking.

The start is a documented *sampled start*: ``init_sample_size`` rows (default
100 000, or all rows if fewer) are drawn uniformly without replacement by a
NumPy Generator seeded from ``random_state`` (O(sample) memory on the client,
where ``RandomState.choice`` would permute all n rows), gathered to the client, and initialised there with the
estimator's ``init_params`` exactly as the in-memory class would initialise that
sample; EM then runs on all the data. (The Bayesian mixture's start scales the
sample's statistics to the whole data's weight, against its priors; its default
priors come from passes over all the data.) With ``weights_init``, ``means_init`` and
``precisions_init`` all given, nothing is sampled.

``predict``, ``predict_proba`` and ``score_samples`` return lazy Dask arrays
(their tasks raise scikit-learn's error for NaN or infinite rows); ``score``
computes. Arrays with unknown chunk sizes (after boolean indexing) are accepted:
``fit`` reads the sizes from the chunks it persists. Install with
``pip install "fastgmm[dask]"``; the core package never imports Dask.
"""

import numbers

import dask
import dask.array as da
import numpy as np
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval

from ._base import check_n_samples
from ._engine import CPUEngine
from ._bayesian_mixture import BayesianGaussianMixture as _InMemoryBayesianGaussianMixture
from ._gaussian_mixture import GaussianMixture as _InMemoryGaussianMixture
from ._numba import work_dtype
from ._validation import _relative, check_sample_weight

__all__ = ["BayesianGaussianMixture", "GaussianMixture"]

_FAN_IN = 8  # statistics added per task of the tree reduction


def _frozen(ep):
    """A copy of the E-step parameters for tasks (a later refit or an edit of the
    fitted attributes changes nothing in a graph built before)."""
    out = type(ep)(ep.ct, *(np.array(a) for a in ep), np.array(ep.gshift))
    return out


def _chunk_stats(X, w, ep, n_jobs):
    """A worker's task: the statistics of one chunk, from the in-memory engine
    (the same shifts in every chunk: they come from ``ep`` alone)."""
    X = np.asarray(X)
    X = X if X.flags.c_contiguous and X.dtype in (np.float32, np.float64) else \
        np.ascontiguousarray(X, dtype=work_dtype(X))
    X.flags.writeable = False
    w = None if w is None else np.ascontiguousarray(w, dtype=np.float64)
    return CPUEngine(X, w, n_jobs).stats(ep)


def _sum_stats(*parts):
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _block_log_prob(X, ep, out, n_jobs, estimator):
    """A worker's task: log-likelihoods, labels or responsibilities of one block,
    from the in-memory engine and frozen parameters."""
    _check_finite(X, "X", estimator)
    X = np.ascontiguousarray(X, dtype=work_dtype(np.asarray(X[:0])))
    X.flags.writeable = False
    return CPUEngine(X, None, n_jobs).log_prob(ep, out)


class DaskEngine:
    """The engine for a Dask array: one task per chunk of rows running the
    in-memory engine, a tree reduction of the statistics in a fixed order, lazy
    outputs; the start is made in memory on a sample (``for_start``)."""

    def __init__(self, X, w, n_jobs, init_sample_size=None, estimator="GaussianMixture"):
        self.X, self.w, self.n_jobs = X, w, n_jobs
        self.estimator = estimator  # the name in the tasks' error messages
        self.n_samples, self.n_features = X.shape
        self.init_sample_size = init_sample_size
        self.dtype = work_dtype(X)
        self.eps = float(np.finfo(self.dtype).eps)
        self.wsum = float(w.sum().compute()) if w is not None else float(self.n_samples)

    def stats(self, ep):
        ep = dask.delayed(_frozen(ep), pure=True)
        wblocks = (self.w.to_delayed().ravel() if self.w is not None
                   else [None] * len(self.X.chunks[0]))
        parts = [dask.delayed(_chunk_stats, pure=True)(xb, wb, ep, self.n_jobs)
                 for xb, wb in zip(self.X.to_delayed().ravel(), wblocks)]
        while len(parts) > 1:
            parts = [dask.delayed(_sum_stats, pure=True)(*parts[i:i + _FAN_IN])
                     for i in range(0, len(parts), _FAN_IN)]
        return parts[0].compute()

    def for_start(self, random_state, needs_rows):
        """An in-memory engine for the start: ``init_sample_size`` rows drawn
        uniformly without replacement by a NumPy Generator seeded from
        ``random_state`` (O(sample) memory on the client, where RandomState's
        choice would permute all n rows), or none where the start needs no rows."""
        if not needs_rows:
            return CPUEngine(np.empty((0, self.n_features), dtype=self.dtype), None,
                             self.n_jobs)
        n = self.n_samples
        m = min(n, self.init_sample_size)
        if m < n:
            rng = np.random.default_rng(random_state.randint(np.iinfo(np.int32).max))
            idx = np.sort(rng.choice(n, size=m, replace=False))
        else:
            idx = np.arange(n)
        w = self.w if self.w is not None else da.ones(n, chunks=(self.X.chunks[0],))
        Xs, ws = dask.compute(self.X[idx], w[idx])
        Xs = np.ascontiguousarray(Xs)
        Xs.flags.writeable = False
        ws = None if np.all(ws == 1.0) else np.ascontiguousarray(ws, dtype=np.float64)
        return CPUEngine(Xs, ws, self.n_jobs)

    def log_prob(self, ep, out):
        X, ep = self.X, _frozen(ep)
        kw = dict(ep=ep, out=out, n_jobs=self.n_jobs, estimator=self.estimator)
        if out == "label":
            return X.map_blocks(_block_log_prob, dtype=np.int64, drop_axis=1, **kw)
        if out == "resp":
            return X.map_blocks(_block_log_prob, dtype=X.dtype,
                                chunks=(X.chunks[0], (ep.means.shape[0],)), **kw)
        return X.map_blocks(_block_log_prob, dtype=X.dtype, drop_axis=1, **kw)


def _with_chunk_sizes(A):
    """``A`` persisted, with its row-chunk sizes known: Dask does not know them
    after boolean indexing (shape (nan, ...)); the persisted blocks give them
    without another pass over the data."""
    A = A.persist()
    if np.isnan(A.shape[0]):
        A.compute_chunk_sizes()
    return A


def _check_finite(A, input_name, estimator_name=None):
    """scikit-learn's NaN / infinity check of one block, with its error class and
    message; Dask re-raises a worker's error as it was raised."""
    check_array(A, dtype=None, ensure_2d=False, ensure_min_samples=0,
                input_name=input_name, estimator=estimator_name)


def _finite_checks(A, input_name, estimator_name=None):
    """``_check_finite`` of each block of ``A``, as delayed tasks."""
    return [dask.delayed(_check_finite, pure=True)(b, input_name, estimator_name)
            for b in A.to_delayed().ravel()]


def _dask_weights(sample_weight, chunks, relative=True):
    """Weights in rows of ``chunks``, persisted, with the checks and messages of
    ``check_sample_weight`` (that is, of the in-memory estimator)."""
    n = sum(chunks)
    if not isinstance(sample_weight, da.Array):
        sample_weight = check_sample_weight(sample_weight, n, relative)
        return da.from_array(sample_weight, chunks=(chunks,)).persist()
    if sample_weight.ndim != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {sample_weight.ndim}D array. "
            f"Expected either a scalar value or a 1D array of length {n}.")
    w = _with_chunk_sizes(sample_weight.astype(np.float64))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
    w = w.rechunk((chunks,)).persist()
    # the finiteness checks raise first, as in memory
    _, w_min, w_all_zero = dask.compute(_finite_checks(w, "sample_weight"), w.min(),
                                        (w == 0).all())
    if w_all_zero:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if w_min < 0:
        raise ValueError("Negative values in data passed to `sample_weight`")
    # as in memory: a mean of 1 for a scale-free model (lazy on Dask arrays)
    return _relative(w).persist() if relative else w


class _DaskMixin:
    """What a Dask estimator adds to its in-memory model: Dask validation, the
    Dask engine, lazy predictions (see the module docstring)."""

    # ------------------------------------------------------------ validation
    def _validate_dask(self, X, reset):
        if not isinstance(X, da.Array):
            raise TypeError(
                f"fastgmm.dask.{type(self).__name__} expects a dask.array.Array; "
                f"got {type(X).__name__}. Use fastgmm.{type(self).__name__} for in-memory "
                "data.")
        if X.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {X.ndim}D array instead. Reshape your data.")
        if X.dtype.kind not in "iuf":
            raise ValueError(f"dtype {X.dtype} is not supported: numeric data only.")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input.")
        dtype = work_dtype(X)
        return X.astype(dtype).rechunk({1: -1}), dtype

    def _engine(self, X, sample_weight):
        if isinstance(X, da.Array):
            return DaskEngine(X, sample_weight, self.n_jobs, self.init_sample_size,
                              type(self).__name__)
        return super()._engine(X, sample_weight)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit on a Dask array; returns the labels as a lazy Dask array."""
        return super().fit_predict(X, y, sample_weight=sample_weight)

    def _fit_checked(self, X, sample_weight, labels):
        self._validate_params()
        X, dtype = self._validate_dask(X, reset=True)
        X = _with_chunk_sizes(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"Found array with {n} sample(s) (shape={X.shape}) while a "
                             f"minimum of 2 is required by {type(self).__name__}.")
        check_n_samples(n, self.n_components)
        dask.compute(_finite_checks(X, "X", type(self).__name__))
        w = (None if sample_weight is None
             else _dask_weights(sample_weight, X.chunks[0], self._relative_weights))
        engine = self._engine(X, w)
        inits = self._check_parameters(np.empty((0, X.shape[1]), dtype=dtype), engine)
        self.__dict__.pop("_online", None)
        if self.warm_start and hasattr(self, "converged_"):
            self._check_fitted_params(X.shape[1])  # before a task reads them
        return self._fit(engine, inits, labels)

    # ------------------------------------------------------------ prediction
    def _validate_X(self, X, reset):
        if isinstance(X, da.Array):
            return self._validate_dask(X, reset)[0]
        return super()._validate_X(X, reset)

    def predict(self, X):
        """Labels; a lazy Dask array for Dask input."""
        return super().predict(X)

    def score(self, X, y=None, sample_weight=None):
        if isinstance(X, da.Array):
            ss = self.score_samples(X)
            if sample_weight is None:
                return float(ss.mean().compute())
            ss = _with_chunk_sizes(ss) if np.isnan(ss.shape[0]) else ss
            w = _dask_weights(sample_weight, ss.chunks[0])  # an average: relative
            # a row of weight zero is not there, even where its log-likelihood is -inf
            return float(((da.where(w > 0, ss, 0.0) * w).sum() / w.sum()).compute())
        return super().score(X, sample_weight=sample_weight)

    def partial_fit(self, X, y=None, sample_weight=None):
        if isinstance(X, da.Array):
            X = X.compute()
        return super().partial_fit(X, y, sample_weight=sample_weight)


class GaussianMixture(_DaskMixin, _InMemoryGaussianMixture):
    """fastgmm's GaussianMixture for Dask arrays (see the module docstring).

    Parameters are those of :class:`fastgmm.GaussianMixture`, plus
    ``init_sample_size`` (int, default 100_000): rows sampled for the start.
    ``n_jobs`` is the thread count of each task on its worker (default 1: one
    task per worker thread).
    """

    _parameter_constraints: dict = {
        **_InMemoryGaussianMixture._parameter_constraints,
        "init_sample_size": [Interval(numbers.Integral, 1, None, closed="left")],
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
        n_jobs=1,
        init_sample_size=100_000,
    ):
        super().__init__(
            n_components, covariance_type=covariance_type, tol=tol, reg_covar=reg_covar,
            max_iter=max_iter, n_init=n_init, init_params=init_params,
            weights_init=weights_init, means_init=means_init,
            precisions_init=precisions_init, random_state=random_state,
            warm_start=warm_start, verbose=verbose, verbose_interval=verbose_interval,
            learning_decay=learning_decay, learning_offset=learning_offset, n_jobs=n_jobs)
        self.init_sample_size = init_sample_size


class BayesianGaussianMixture(_DaskMixin, _InMemoryBayesianGaussianMixture):
    """fastgmm's BayesianGaussianMixture for Dask arrays (see the module docstring).

    Parameters are those of :class:`fastgmm.BayesianGaussianMixture`, plus
    ``init_sample_size`` (int, default 100_000): rows sampled for the start.
    ``n_jobs`` is the thread count of each task on its worker (default 1).
    """

    _parameter_constraints: dict = {
        **_InMemoryBayesianGaussianMixture._parameter_constraints,
        "init_sample_size": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, learning_decay=0.6,
                 learning_offset=2.0, total_samples=None, n_jobs=1, init_sample_size=100_000):
        super().__init__(
            n_components=n_components, covariance_type=covariance_type, tol=tol,
            reg_covar=reg_covar, max_iter=max_iter, n_init=n_init, init_params=init_params,
            weight_concentration_prior_type=weight_concentration_prior_type,
            weight_concentration_prior=weight_concentration_prior,
            mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
            degrees_of_freedom_prior=degrees_of_freedom_prior,
            covariance_prior=covariance_prior, random_state=random_state,
            warm_start=warm_start, verbose=verbose, verbose_interval=verbose_interval,
            learning_decay=learning_decay, learning_offset=learning_offset,
            total_samples=total_samples, n_jobs=n_jobs)
        self.init_sample_size = init_sample_size
