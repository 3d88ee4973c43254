"""fastgmm.BayesianGaussianMixture: scikit-learn's variational Gaussian mixture as
a model on the EM driver.

Variational EM has the Gaussian mixture's data pass: the E-step is the Gaussian
log-density at the normalised precision factors plus per-component constants
(the expected log weights, and the degrees-of-freedom and mean-precision terms),
which the kernels take as their ``log_w`` and ``log_det``; the M-step turns the
same additive statistics into the posterior's parameters. No kernel of its own:
the entropy of the responsibilities that the lower bound needs comes from the
same statistics (``resp_entropy``). Formulas and names follow scikit-learn's
``sklearn/mixture/_bayesian_mixture.py``.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.mixture import BayesianGaussianMixture as _SkBayesianGaussianMixture
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import BaseMixture
from ._engine import CPUEngine
from ._kmeans import _column_sums, column_mean
from ._numba import jit, wide_vectors
from ._estep import load_block
from ._estep import COV_CODES, DIAG, FULL, SPHERICAL, TIED, uses_tiles
from ._mstep import (
    cov_layout,
    covariance_shape,
    estep_params,
    ill_defined,
    in_layout,
    precisions_from_cholesky,
    stats_arrays,
)
from ._validation import _check_precision_matrix, _check_precision_positivity, _check_shape
from ._variational import vb_entropy, vb_expectations, vb_mstep


class _Posterior(tuple):
    """An M-step's parameters, and (``derived``) what they alone give."""


SHIFT_ROWS = 64  # rows whose mean centres the one-pass scatter of ``data_moments``
SMALL_MOMENTS = 1 << 18  # in-memory X of at most this many values: compiled NumPy sums
SMALL_FULL_D = 32  # and for 'full' / 'tied' at most this many features (its scatter has no BLAS)


SCATTER_ROWS = 256  # rows of one block of ``_small_scatter``


@jit()
def _small_scatter(X, mean, S):
    """S += sum_i (x_i - mean)(x_i - mean)^T over X's rows, in float64 (np.cov's
    sum up to the order of its product): the small-data priors' 'full' / 'tied'
    scatter, one read of X, no copy. SCATTER_ROWS rows at a time, transposed and
    centred (D), then the upper triangle's d (d + 1) / 2 sums over the block's
    rows, which vectorise (a row's d x d update at a time did not: 0.5 ms at
    10k x 8), mirrored at the end."""
    wide_vectors()
    n, d = X.shape
    D = np.empty((d, SCATTER_ROWS))
    U = np.zeros((d, d))
    for i0 in range(0, n, SCATTER_ROWS):
        B = min(SCATTER_ROWS, n - i0)
        load_block(X, i0, i0 + B, D, mean)
        for a in range(d):
            for b in range(a, d):
                acc = 0.0
                for i in range(B):
                    acc += D[a, i] * D[b, i]
                U[a, b] += acc
    for a in range(d):
        for b in range(a, d):
            S[a, b] += U[a, b]
            if b > a:
                S[b, a] += U[a, b]


def data_moments(engine, need_scatter, ct):
    """The weighted mean of the rows and, where ``need_scatter``, their scatter
    about it (a (d, d) matrix for 'full' / 'tied', its diagonal otherwise), from
    one-component passes of the engine (no copy of X; memmaps and Dask alike).
    Without sample weights the scatter's pass is centred on the mean c of
    SHIFT_ROWS evenly spaced rows and moved to the mean by exact algebra: one pass
    for both. The shifted sums lose about eps |c - mean|^2 / var of each variance,
    and as c averages rows of the data, |c - mean|^2 <= n / SHIFT_ROWS * var (all
    the spread in the chosen rows): at most about eps * n / 64, typically far
    less. With weights (which can put the chosen rows anywhere, or at 0) and on an
    engine without ``rows`` (Dask): a pass for the mean, then one about it. With
    one component every responsibility is 1; the passes run the kernels of the
    model's own covariance type (nothing more to compile), but for 'full' from
    TILE_MIN_D features on: the 'tied' kernels' pooled scatter of one component is
    the same sum (measured, 2 threads: 100k x 32 15.0 -> 5.2 ms, 200k x 64 55.9 ->
    10.7; the tiled 'full' pass whitens every row for its log-density first).
    An unweighted in-memory X worked on in float64 of at most SMALL_MOMENTS values
    ('full' / 'tied': and at most SMALL_FULL_D features) gets scikit-learn's NumPy
    sums instead, from the k-means start's compiled ones (``_kmeans.column_mean``,
    ``_column_sums``: X.mean(axis=0) and np.var's sum of squares, bit for bit on a
    C-ordered X) and ``_small_scatter``: there a pass and its Python cost more than
    two reads of the rows (NumPy's own calls took 0.6 ms at 10k x 8: its axis-0
    sums over 8 columns run a short inner loop for every row)."""
    d, n = engine.n_features, engine.n_samples
    X = getattr(engine, "X", None)
    if (isinstance(engine, CPUEngine) and type(X) is np.ndarray and X.size <= SMALL_MOMENTS
            and engine.sample_weight is None and engine.dtype == np.float64
            and (ct in (DIAG, SPHERICAL) or d <= SMALL_FULL_D)):
        mean = column_mean(X)
        if not need_scatter:
            return mean, None
        if ct in (DIAG, SPHERICAL):
            return mean, _column_sums(X, mean, True)
        S = np.zeros((d, d))
        _small_scatter(X, mean, S)
        return mean, S
    if ct == FULL and uses_tiles(FULL, d):
        return data_moments(engine, need_scatter, TIED)
    pc = {FULL: np.eye(d)[None], TIED: np.eye(d), DIAG: np.ones((1, d)),
          SPHERICAL: np.ones(1)}[ct]

    def moments(centre):
        return engine.stats(estep_params(np.ones(1), centre[None, :], pc, ct))

    if need_scatter and hasattr(engine, "rows") and engine.sample_weight is None:
        idx = np.unique(np.linspace(0, n - 1, min(n, SHIFT_ROWS)).astype(np.intp))
        st = moments(engine.rows(idx).mean(axis=0))
    else:
        st = moments(np.zeros(d))
        mean = st.shift[0] + st.s1[0] / st.nk[0]
        if not need_scatter:
            return mean, None
        st = moments(mean)
    dm = st.s1 / st.nk[0]  # the mean less the pass's centre
    scatter = st.scatter(dm, engine.wsum)  # about the mean (one component)
    return st.shift[0] + dm[0], scatter if ct == TIED else scatter[0]


def resp_entropy(stats, ep, wsum):
    """sum_i w_i sum_k r_ik log r_ik of the pass that made ``stats`` at ``ep``
    (``_variational.vb_entropy``: from the statistics, no pass of its own)."""
    return float(vb_entropy(ep.ct, *stats_arrays(stats), float(wsum), stats.ll, *ep))


class BayesianGaussianMixture(BaseMixture):
    """Variational Bayesian Gaussian mixture fitted on fused Numba kernels.

    A drop-in replacement for :class:`sklearn.mixture.BayesianGaussianMixture`:
    the same parameters, attributes, methods, warnings and errors, and the same
    start and fitted model for the same ``random_state``. Beyond scikit-learn:
    ``sample_weight`` (absolute: a weight of 2 is a repeated row, against the
    priors as well), float32 kept as float32 (scikit-learn returns float64
    attributes for float32 input), memmaps, ``fastgmm.dask``, bitwise identical
    results whatever ``n_jobs``, and :meth:`partial_fit`.

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, init_params,
    weight_concentration_prior_type, weight_concentration_prior,
    mean_precision_prior, mean_prior, degrees_of_freedom_prior, covariance_prior,
    random_state, warm_start, verbose, verbose_interval
        As in :class:`sklearn.mixture.BayesianGaussianMixture`. The default priors
        that depend on the data (``mean_prior``, ``covariance_prior``) are those of
        the rows repeated by their ``sample_weight``.
    learning_decay, learning_offset : float, default=0.6 and 2.0
        Step size of :meth:`partial_fit`, rho_t = (t + learning_offset) **
        -learning_decay for the t-th batch; learning_decay in (0.5, 1].
    total_samples : float, default=None
        The size of the data set :meth:`partial_fit`'s batches come from (its
        statistics are scaled to it against the priors); None: the total weight
        of the batches seen so far.
    n_jobs : int, default=None
        Threads for this call, as in :class:`fastgmm.GaussianMixture`.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_,
    converged_, n_iter_, lower_bound_, lower_bounds_, weight_concentration_prior_,
    weight_concentration_, mean_precision_prior_, mean_precision_, mean_prior_,
    degrees_of_freedom_prior_, degrees_of_freedom_, covariance_prior_,
    n_features_in_, feature_names_in_
        As in :class:`sklearn.mixture.BayesianGaussianMixture`.
    """

    _parameter_constraints: dict = {
        **_SkBayesianGaussianMixture._parameter_constraints,
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
        "total_samples": [None, Interval(Real, 0.0, None, closed="neither")],
        "n_jobs": [
            None,
            Interval(Integral, None, -1, closed="right"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "device": [StrOptions({"cpu", "cuda"})],
    }

    _relative_weights = False  # the priors weigh against the weights' sum

    def __init__(self, *, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans",
                 weight_concentration_prior_type="dirichlet_process",
                 weight_concentration_prior=None, mean_precision_prior=None, mean_prior=None,
                 degrees_of_freedom_prior=None, covariance_prior=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, learning_decay=0.6,
                 learning_offset=2.0, total_samples=None, n_jobs=None, device="cpu"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.total_samples = total_samples
        self.n_jobs = n_jobs
        self.device = device

    # --------------------------------------------------------------- priors
    def _check_parameters(self, X, engine=None):
        """scikit-learn's prior checks and messages, then the data's defaults."""
        n_features = X.shape[1]
        ct = self.covariance_type
        self.weight_concentration_prior_ = (
            1.0 / self.n_components if self.weight_concentration_prior is None
            else self.weight_concentration_prior)
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else self.mean_precision_prior)
        mean_prior = covariance_prior = None
        if self.mean_prior is not None:
            mean_prior = check_array(self.mean_prior, dtype=[np.float64, np.float32],
                                     ensure_2d=False)
            _check_shape(mean_prior, (n_features,), "means")
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = n_features
        elif self.degrees_of_freedom_prior > n_features - 1.0:
            self.degrees_of_freedom_prior_ = self.degrees_of_freedom_prior
        else:
            raise ValueError(
                "The parameter 'degrees_of_freedom_prior' "
                "should be greater than %d, but got %.3f."
                % (n_features - 1, self.degrees_of_freedom_prior)
            )
        if self.covariance_prior is not None:
            if ct in ("full", "tied"):
                covariance_prior = check_array(self.covariance_prior,
                                               dtype=[np.float64, np.float32], ensure_2d=False)
                _check_shape(covariance_prior, (n_features, n_features),
                             "%s covariance_prior" % ct)
                _check_precision_matrix(covariance_prior, ct)
            elif ct == "diag":
                covariance_prior = check_array(self.covariance_prior,
                                               dtype=[np.float64, np.float32], ensure_2d=False)
                _check_shape(covariance_prior, (n_features,), "%s covariance_prior" % ct)
                _check_precision_positivity(covariance_prior, ct)
            else:
                covariance_prior = self.covariance_prior
        if engine is not None and (mean_prior is None or covariance_prior is None):
            mean, scatter = data_moments(engine, covariance_prior is None, COV_CODES[ct])
            if mean_prior is None:
                mean_prior = mean.astype(engine.dtype)
            if covariance_prior is None:
                # as np.cov / np.var(ddof=1) of the rows repeated by their weights
                cov = scatter / (engine.wsum - 1.0)
                if ct in ("full", "tied"):
                    covariance_prior = np.atleast_2d(cov)
                elif ct == "diag":
                    covariance_prior = cov.astype(engine.dtype)
                else:
                    covariance_prior = engine.dtype.type(cov.mean())
        self.mean_prior_ = mean_prior
        self.covariance_prior_ = covariance_prior
        return None

    # ---------------------------------------------------------------- hooks
    def _initialize(self, engine, random_state, inits):
        """scikit-learn's start: the responsibilities of ``init_params``, then the
        posterior they give. A Dask engine starts on a sample, whose statistics
        are scaled to the whole data's weight."""
        start = engine.for_start(random_state, True)
        stats = self._start_stats(start, random_state)
        if start is not engine:
            stats = stats.scaled(engine.wsum / start.wsum)
        return self._m_step(stats, start.eps, engine.wsum, engine.dtype)

    def _m_step(self, stats, eps, wsum, dtype):
        """scikit-learn's _estimate_gaussian_parameters, then _estimate_weights,
        _estimate_means and _estimate_precisions, in float64 (one compiled call,
        ``_variational.vb_mstep``, which also gives what the posterior alone
        gives: ``_derived``), stored in the work dtype."""
        # K from the statistics: a warm start keeps the fitted model's components
        # (as GaussianMixture does) whatever n_components says now
        (K, d), ct = stats.s1.shape, self.covariance_type
        dp = self.weight_concentration_prior_type == "dirichlet_process"
        wc = np.empty((2 if dp else 1, K))
        mean_precision, means, dof = np.empty(K), np.empty((K, d)), np.empty(K)
        cov = np.empty(cov_layout(COV_CODES[ct], K, d))
        pc = np.empty_like(cov)
        derived = np.empty((3, K))
        cp = in_layout(self.covariance_prior_, COV_CODES[ct], 1, d)[0]  # (r, c)
        ok, bound = vb_mstep(
            COV_CODES[ct], dp, dtype == np.float32, *stats_arrays(stats), float(wsum),
            float(self.reg_covar), float(eps), float(self.weight_concentration_prior_),
            float(self.mean_precision_prior_), np.asarray(self.mean_prior_, dtype=np.float64),
            float(self.degrees_of_freedom_prior_), cp, wc, mean_precision, means, dof, cov, pc,
            derived)
        if not ok:
            raise ValueError(ill_defined(dtype))
        shape = covariance_shape(ct, K, d)
        cast = lambda a: np.asarray(a, dtype=dtype)[()]  # noqa: E731 - 0-d: a scalar
        params = _Posterior((
            (cast(wc[0]), cast(wc[1])) if dp else cast(wc[0]), cast(mean_precision),
            cast(means), cast(dof[0] if ct == "tied" else dof), cast(cov.reshape(shape)),
            cast(pc.reshape(shape))))
        params.derived = (derived[0], derived[1], derived[2], bound)
        return params

    def _derived(self, params):
        """(log_w, offset, weights, bound): what the parameters alone give
        (``_variational.vb_expectations``): the E-step's expected log weights and
        the constants added to its log det, the weights, and the lower bound's
        parameter terms. An M-step's parameters carry them."""
        derived = getattr(params, "derived", None)
        if derived is None:
            wc, mean_precision, means, dof, _, prec_chol = params
            K, d = np.shape(means)
            ct = self.covariance_type
            out = np.empty((3, K))
            bound = vb_expectations(
                COV_CODES[ct], self.weight_concentration_prior_type == "dirichlet_process",
                np.array(wc, dtype=np.float64, ndmin=2),
                np.asarray(mean_precision, dtype=np.float64),
                np.array(np.broadcast_to(np.asarray(dof, dtype=np.float64), (K,))),
                in_layout(prec_chol, COV_CODES[ct], K, d), d, out)
            derived = (out[0], out[1], out[2], bound)
        return derived

    def _estep(self, params, dtype):
        """scikit-learn's _estimate_log_weights and _estimate_log_prob's constants."""
        log_w, offset, weights, _ = self._derived(params)
        prec_chol = params[5]
        if dtype is not None:
            prec_chol = np.asarray(prec_chol).astype(dtype, copy=False)
        return estep_params(weights, params[2], prec_chol, COV_CODES[self.covariance_type],
                            log_w=log_w, log_det_offset=offset)

    def _lower_bound(self, stats, wsum, ep, params, dtype):
        """scikit-learn's _compute_lower_bound: the entropy term from the pass at
        ``ep``, the rest from the parameters of its M-step."""
        return np.float64(self._derived(params)[3] - resp_entropy(stats, ep, wsum))

    def _online_scale(self, seen):
        return float(self.total_samples) if self.total_samples is not None else seen

    _parameter_names = ("weight_concentration_", "mean_precision_", "means_",
                        "degrees_of_freedom_", "covariances_", "precisions_cholesky_")

    def _get_parameters(self):
        return (self.weight_concentration_, self.mean_precision_, self.means_,
                self.degrees_of_freedom_, self.covariances_, self.precisions_cholesky_)

    def _set_parameters(self, params):
        (self.weight_concentration_, self.mean_precision_, self.means_,
         self.degrees_of_freedom_, self.covariances_, self.precisions_cholesky_) = params
        dtype = self.precisions_cholesky_.dtype
        self.weights_ = self._derived(params)[2].astype(dtype)
        self.precisions_ = precisions_from_cholesky(
            self.precisions_cholesky_, self.covariance_type).astype(dtype, copy=False)

    def _expected_shapes(self, n_components, n_features):
        K, ct = n_components, self.covariance_type
        pc = covariance_shape(ct, K, n_features)
        wc = (2, K) if self.weight_concentration_prior_type == "dirichlet_process" else (K,)
        return {"weight_concentration_": wc, "mean_precision_": (K,),
                "degrees_of_freedom_": () if ct == "tied" else (K,),
                "covariances_": pc, "precisions_cholesky_": pc}
