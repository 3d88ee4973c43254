"""One EM step from given parameters against a written-out reference and scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastgmm import GaussianMixture
from naive import em_step

from conftest import TOL, make_data, start_params


def _one_step(cls, X, covariance_type, w, m, p, sample_weight=None):
    gm = cls(len(w), covariance_type=covariance_type, weights_init=w, means_init=m,
             precisions_init=p, max_iter=1, tol=0, reg_covar=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if sample_weight is None:
            return gm.fit(X)
        return gm.fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_one_step_matches_reference_and_sklearn(covariance_type, dtype, offset):
    X = make_data(n=700, d=3, K=3, seed=5, dtype=np.float64, offset=offset).astype(dtype)
    w, m, p = start_params(X, 3, covariance_type, seed=1)
    fg = _one_step(GaussianMixture, X, covariance_type, w, m, p)
    ll, w1, m1, c1 = em_step(X, w, m, 1 / p if covariance_type in ("diag", "spherical")
                             else np.linalg.inv(p), covariance_type, 1e-4)
    tol = TOL[dtype]
    # the reference: exactly the definition of EM
    np.testing.assert_allclose(fg.lower_bound_, ll, rtol=tol["rtol"])
    np.testing.assert_allclose(fg.weights_, w1, **tol)
    np.testing.assert_allclose(fg.means_, m1, rtol=tol["rtol"], atol=tol["atol"] * (1 + offset))
    np.testing.assert_allclose(fg.covariances_, c1, **tol)
    if offset:
        # scikit-learn's one-pass X^T X - nk m m^T cancels at this offset (its tied
        # and diag estimates lose every digit, or fail); fastgmm's shifted
        # statistics keep the reference's accuracy. Compare with it at offset 0.
        return
    sk = _one_step(SkGaussianMixture, X, covariance_type, w, m, p)
    # scikit-learn (float32 there is computed in float32 throughout: looser)
    sk_tol = tol if dtype == np.float64 else dict(rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(fg.covariances_, sk.covariances_, **sk_tol)
    np.testing.assert_allclose(fg.precisions_cholesky_, sk.precisions_cholesky_, **sk_tol)
    np.testing.assert_allclose(fg.weights_, sk.weights_, **sk_tol)
    np.testing.assert_allclose(fg.means_, sk.means_, **sk_tol)
    np.testing.assert_allclose(fg.lower_bound_, sk.lower_bound_, rtol=sk_tol["rtol"])
    for attr in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(fg, attr).dtype == dtype
        assert getattr(fg, attr).shape == getattr(sk, attr).shape


def test_one_weighted_step_matches_reference(covariance_type):
    X = make_data(n=400, d=3, K=2, seed=8)
    sw = np.random.RandomState(0).uniform(0, 3, size=X.shape[0])
    w, m, p = start_params(X, 2, covariance_type, seed=4)
    fg = _one_step(GaussianMixture, X, covariance_type, w, m, p, sample_weight=sw)
    ll, w1, m1, c1 = em_step(X, w, m, 1 / p if covariance_type in ("diag", "spherical")
                             else np.linalg.inv(p), covariance_type, 1e-4, sample_weight=sw)
    np.testing.assert_allclose(fg.lower_bound_, ll, rtol=1e-9)
    np.testing.assert_allclose(fg.weights_, w1, rtol=1e-9)
    np.testing.assert_allclose(fg.means_, m1, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fg.covariances_, c1, rtol=1e-9, atol=1e-10)


def test_lower_bound_never_decreases(covariance_type):
    X = make_data(n=900, d=4, K=4, seed=21)
    gm = GaussianMixture(4, covariance_type=covariance_type, init_params="random",
                         random_state=3, max_iter=60, tol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    lbs = np.array(gm.lower_bounds_)
    assert len(lbs) > 5
    assert np.all(np.diff(lbs) >= -1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_one_step_tiled_full_kernel_matches_reference(dtype):
    """d >= 16 'full' runs on the BLAS-tiled kernels: same step as the reference."""
    X = make_data(n=1500, d=20, K=3, seed=12, offset=50.0).astype(dtype)
    sw = np.random.RandomState(3).uniform(0, 2, size=X.shape[0])
    w, m, p = start_params(X, 3, "full", seed=6)
    fg = _one_step(GaussianMixture, X, "full", w, m, p, sample_weight=sw)
    ll, w1, m1, c1 = em_step(X, w, m, np.linalg.inv(p), "full", 1e-4, sample_weight=sw)
    tol = TOL[dtype]
    np.testing.assert_allclose(fg.lower_bound_, ll, rtol=tol["rtol"])
    np.testing.assert_allclose(fg.weights_, w1, **tol)
    np.testing.assert_allclose(fg.means_, m1, rtol=tol["rtol"], atol=tol["atol"] * 50)
    np.testing.assert_allclose(fg.covariances_, c1, **tol)


def _em_pass_both_ways(X, sw, weights, means, covs, monkeypatch):
    """One float64 'full' EM pass (d >= 16, the tiled path) by the quadratic
    features where ``quad_params`` takes them, and by the whitened products."""
    from fastgmm import _estep
    from fastgmm._engine import CPUEngine
    from fastgmm._estep import FULL
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    pc = compute_precision_cholesky(covs, "full")
    ep = estep_params(weights, means, pc, FULL)
    eng = CPUEngine(X, sw)
    took_quad = (_estep.quad_pays(*means.shape)
                 and _estep.quad_params(ep.arrays[1], ep.means, ep.gshift) is not None)
    quad = eng.stats(ep)
    monkeypatch.setattr(_estep, "QUAD_MAX_ERR", -1.0)
    assert _estep.quad_params(ep.arrays[1], ep.means, ep.gshift) is None
    whitened = eng.stats(ep)
    monkeypatch.undo()
    return took_quad, quad, whitened


def _assert_same_stats(a, b, rtol):
    for name in ("nk", "s1", "s2"):
        x, y = getattr(a, name), getattr(b, name)
        if name == "s2":
            x, y = np.triu(x), np.triu(y)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max(), err_msg=name)
    assert a.ll == pytest.approx(b.ll, rel=rtol)


@pytest.mark.parametrize("d,K", [(16, 3), (23, 1), (40, 5)])
def test_quadratic_feature_pass_matches_the_whitened_pass(d, K, monkeypatch):
    """float64 'full' from 16 features: the EM pass by quadratic features (one
    product for the log-densities of all components, one for their statistics)
    gives the whitened products' statistics; over several blocks, with a last
    sub-block shorter than QUAD_ROWS, zero and fractional weights."""
    X = make_data(n=1377, d=d, K=K, seed=d, offset=3.0)  # 2 x 512 + 353 rows
    sw = np.random.RandomState(1).uniform(0, 2, size=X.shape[0])
    sw[::7] = 0.0
    rng = np.random.RandomState(2)
    means = X[rng.choice(X.shape[0], K, replace=False)]
    A = rng.normal(size=(K, d, d)) * 0.2 + np.eye(d)
    covs = np.matmul(np.swapaxes(A, 1, 2), A) * np.cov(X.T).diagonal().mean()
    weights = rng.dirichlet(np.ones(K))
    took_quad, quad, whitened = _em_pass_both_ways(X, sw, weights, means, covs, monkeypatch)
    assert took_quad
    _assert_same_stats(quad, whitened, rtol=1e-10)


@pytest.mark.parametrize("noise", [1e-1, 1e-3, 1e-5])
@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_quadratic_features_only_where_their_rounding_is_small(noise, offset, monkeypatch):
    """Rank-2 data in 20 features plus noise: the smaller the noise (the more the
    quadratic features' terms cancel), the larger their rounding. Where
    ``quad_params`` takes them, the pass agrees with the whitened one to 1e-7; the
    well-conditioned case takes them, the most cancelling is left to the whitened
    path (with the bound lifted it would not agree: checked by hand)."""
    rng = np.random.RandomState(0)
    n, d = 3000, 20
    Z = rng.normal(size=(n, 2)) @ rng.normal(size=(2, d)) * 3 + offset
    labels = rng.randint(0, 2, size=n)
    Z += labels[:, None] * 10 + noise * rng.normal(size=(n, d))
    means = np.stack([Z[labels == k].mean(axis=0) for k in range(2)])
    covs = np.stack([np.cov(Z[labels == k].T) for k in range(2)])
    took_quad, quad, whitened = _em_pass_both_ways(Z, None, np.array([0.5, 0.5]), means, covs,
                                                   monkeypatch)
    if noise == 1e-1:
        assert took_quad
    if noise == 1e-5:
        assert not took_quad
    _assert_same_stats(quad, whitened, rtol=1e-7)


def test_tied_passes_reuse_the_pooled_sums():
    """A 'tied' pass's pooled sum_i w_i (x_i - g)(x_i - g)^T depends on the data
    alone: an engine makes it once and moves it to each later pass's g (exact
    algebra); each later pass equals a fresh engine's direct one to rounding."""
    from fastgmm._engine import CPUEngine
    from fastgmm._estep import COV_CODES
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    X = make_data(3000, 5, 3, seed=8) * 3.0 + 11.0
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    K, d = 3, X.shape[1]
    rng = np.random.RandomState(2)
    eng = CPUEngine(X, w)
    for it in range(3):
        means = X[rng.choice(X.shape[0], K, replace=False)] + it
        cov = np.cov(X.T) * (0.5 + it)
        ep = estep_params(rng.dirichlet(np.ones(K)), means,
                          compute_precision_cholesky(cov, "tied"), COV_CODES["tied"])
        got, ref = eng.stats(ep), CPUEngine(X, w).stats(ep)
        if it == 0:
            kept = eng._pooled
        assert eng._pooled is kept  # moved, not made again (their centres are near)
        for name in ("nk", "s1", "ll"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
        scale = np.abs(ref.s2).max()
        np.testing.assert_allclose(np.triu(got.s2[0, :d]), np.triu(ref.s2[0, :d]),
                                   rtol=1e-12, atol=1e-13 * scale)
        np.testing.assert_allclose(got.s2[0, d], ref.s2[0, d], rtol=1e-12,
                                   atol=1e-13 * scale)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_pass_adds_its_slots_in_order(covariance_type):
    """A pass adds its slots of statistics in slot order (``column_totals``, one
    compiled call an array): the same numbers as NumPy's ``sum(axis=0)`` over slots of
    several numbers, bit for bit, on a pass of 40 slots (a fixed order is what makes
    results independent of the thread count; NumPy sums a column of single numbers
    pairwise, so one component's nk is only equal to rounding)."""
    from fastgmm._engine import CPUEngine
    from fastgmm._kmeans_kernels import column_totals
    from fastgmm._estep import COV_CODES
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    rng = np.random.RandomState(3)
    nch, K, d = 40, 5, 7
    nk = rng.uniform(0, 300, (nch, K))
    s1 = rng.normal(size=(nch, K, d)) * 1e3
    s2 = rng.uniform(0, 1e5, (nch, K, 1, d))
    got = [column_totals(a) for a in (nk, s1.reshape(nch, -1), s2.reshape(nch, -1))]
    np.testing.assert_array_equal(got[0], nk.sum(axis=0))
    np.testing.assert_array_equal(got[1], s1.sum(axis=0).ravel())
    np.testing.assert_array_equal(got[2], s2.sum(axis=0).ravel())
    c = np.ascontiguousarray
    one = [column_totals(c(nk[:, :1]))]
    np.testing.assert_allclose(one[0], nk[:, 0].sum(), rtol=1e-15)
    np.testing.assert_array_equal(one[0], np.cumsum(nk[:, 0])[-1:])  # in order
    # and a whole pass: the same statistics on one thread and on two
    X = make_data(10000, d, K, seed=4)
    cov = np.array([np.cov(X.T)] * K) if covariance_type == "full" else X.var(0) * np.ones((K, d))
    ep = estep_params(np.full(K, 1 / K), X[rng.choice(len(X), K, replace=False)],
                      compute_precision_cholesky(cov, covariance_type),
                      COV_CODES[covariance_type])
    one, two = CPUEngine(X, None, 1).stats(ep), CPUEngine(X, None, 2).stats(ep)
    for name in ("nk", "s1", "s2", "ll"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


def _centred_taken(weights, means, prec, covariance_type):
    """Whether a 'diag' / 'spherical' EM pass at these parameters (precisions in
    scikit-learn's shape) is first tried on rows centred on the means' centre: the
    engine's own test (``_estep.centred_means``) on the pass's own arguments."""
    from fastgmm._estep import COV_CODES, centred_means
    from fastgmm._mstep import estep_params

    ep = estep_params(weights, means, np.sqrt(prec), COV_CODES[covariance_type])
    return centred_means(ep.means, ep.arrays[2], ep.gshift).shape[1] > 0


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("d,K", [(3, 5), (17, 7), (40, 9)])
def test_centred_pass_matches_reference(covariance_type, d, K):
    """'diag' and 'spherical' EM passes on rows centred on the means' centre (moments
    about it, moved to each component's mean once a block; log-densities from the
    centred rows and means): one weighted step equals the written-out reference,
    for the row and the tile loads (3; 17 and 40 features, one odd), K beyond a
    multiple of four, data 1e3 from the origin, and rows of weight zero whose values
    (1e300) would overflow any sum they reached."""
    X = make_data(n=1100, d=d, K=K, seed=3, offset=1e3)
    w, m, p = start_params(X, K, covariance_type, seed=2)
    assert _centred_taken(w, m, p, covariance_type)
    sw = np.random.RandomState(1).uniform(0.5, 2.0, size=X.shape[0])
    sw[::7] = 0.0
    Xw = X.copy()
    Xw[::7] = 1e300
    Xw[::14] = -1e300
    fg = _one_step(GaussianMixture, Xw, covariance_type, w, m, p, sample_weight=sw)
    keep = sw > 0
    ll, w1, m1, c1 = em_step(X[keep], w, m, 1 / p, covariance_type, 1e-4,
                             sample_weight=sw[keep])
    np.testing.assert_allclose(fg.lower_bound_, ll, rtol=1e-12)
    np.testing.assert_allclose(fg.weights_, w1, rtol=1e-12)
    np.testing.assert_allclose(fg.means_, m1, rtol=1e-12)
    np.testing.assert_allclose(fg.covariances_, c1, rtol=1e-11)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_centred_pass_only_where_its_rounding_is_small(covariance_type):
    """Tight components far apart (standard deviations 0.1, means some 1e3 apart:
    about 1e4 of their deviations from the means' centre, 1e8 squared, past
    ``EXPANDED_MAX_Q``) keep the per-component pass, and one step equals the
    reference to 1e-11 (moments about the common centre, moved to each mean, would
    lose some eight digits of the variances: checked by lifting the bound by hand)."""
    rng = np.random.RandomState(0)
    K, d = 3, 20
    centers = rng.uniform(-1e3, 1e3, size=(K, d))
    X = np.concatenate([c + 0.1 * rng.normal(size=(400, d)) for c in centers])
    m = centers + 0.01 * rng.normal(size=(K, d))
    p = np.full((K, d), 1e2) if covariance_type == "diag" else np.full(K, 1e2)
    w = np.full(K, 1.0 / K)
    assert not _centred_taken(w, m, p, covariance_type)
    # (the same components taken 100 wide are centred: the bound is what decides)
    assert _centred_taken(w, m, p * 1e-6, covariance_type)
    fg = _one_step(GaussianMixture, X, covariance_type, w, m, p)
    ll, w1, m1, c1 = em_step(X, w, m, 1 / p, covariance_type, 1e-4)
    np.testing.assert_allclose(fg.means_, m1, rtol=1e-13)
    np.testing.assert_allclose(fg.covariances_, c1, rtol=1e-11)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_centred_pass_redone_where_components_collapse(covariance_type):
    """The centred form is chosen at the pass's parameters; a broad start whose
    components collapse onto tight clusters in that pass (standard deviation 2e3
    -> 1e-3 at 1e5 from the origin: 25 of the old deviations from the means'
    centre, 5e7 of the new) would keep about 2 of the variances' 16 digits. The
    chunks' sums show it (``_centred_kept``) and run again by the per-component
    kernels: the step equals the reference to 1e-12, and two points repeated with
    ``reg_covar = 0`` get variances of exactly 0 (the error scikit-learn raises)."""
    rng = np.random.RandomState(0)
    X = np.concatenate([1e5 + 1e-3 * rng.normal(size=(1000, 1)),
                        1e-3 * rng.normal(size=(1000, 1))])
    w, m = np.array([0.5, 0.5]), np.array([[0.0], [1e5]])
    p = np.full((2, 1), 2.5e-7) if covariance_type == "diag" else np.full(2, 2.5e-7)
    assert _centred_taken(w, m, p, covariance_type)
    fg = _one_step(GaussianMixture, X, covariance_type, w, m, p)
    ll, w1, m1, c1 = em_step(X, w, m, 1 / p, covariance_type, 1e-4)
    np.testing.assert_allclose(fg.covariances_ - 1e-4, c1.reshape(fg.covariances_.shape) - 1e-4,
                               rtol=1e-12)
    X = np.repeat([[0.1234567], [1000.3141592]], 50, axis=0)
    m = np.array([[0.1234567], [1000.3141592]])
    p = np.full((2, 1), 1 / 625) if covariance_type == "diag" else np.full(2, 1 / 625)
    assert _centred_taken(w, m, p, covariance_type)
    gm = GaussianMixture(2, covariance_type=covariance_type, weights_init=w, means_init=m,
                         precisions_init=p, max_iter=1, tol=0, reg_covar=0.0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gm.fit(X)


def test_centred_sums_kept_asks_every_component_of_weight():
    """The check on a centred pass's sums: a component of weight whose variance is
    small against its squared distance from the centre (1e-6 against 1: ratio 1e6,
    past ``CENTRED_KEEP``), or 0, or NaN, sends the pass round again; one with
    below ``CENTRED_MIN_SHARE`` of the average weight (a component switched off by
    the Bayesian prior) is not asked."""
    from fastgmm._accumulate import centred_sums_kept
    from fastgmm._estep import CENTRED_KEEP, CENTRED_MIN_SHARE

    shift, gshift = np.array([[0.0, 0.0], [1.0, -1.0]]), np.zeros(2)

    def sums(t, var, mean_off):
        # the second component's sums about its shift, rows var apart, mean_off away
        nk = np.array([1000.0, t])
        s1 = np.array([[0.0, 0.0], [t * mean_off, 0.0]])
        s2 = np.array([[[1000.0, 1000.0]], [[t * (var + mean_off ** 2), t * var]]])
        return nk, s1, s2

    assert centred_sums_kept(*sums(100.0, 1.0, 0.0), shift, gshift)
    assert centred_sums_kept(*sums(100.0, 2.0 / CENTRED_KEEP, 0.0), shift, gshift)
    assert not centred_sums_kept(*sums(100.0, 1e-6, 0.0), shift, gshift)
    assert not centred_sums_kept(*sums(100.0, 0.0, 0.0), shift, gshift)
    assert not centred_sums_kept(*sums(100.0, np.nan, 0.0), shift, gshift)
    # the mean's own offset from its shift counts: about gshift it is 1 + 3 away
    assert centred_sums_kept(*sums(100.0, 16.0 / CENTRED_KEEP * 1.5, 3.0), shift, gshift)
    assert not centred_sums_kept(*sums(100.0, 16.0 / CENTRED_KEEP * 0.5, 3.0), shift, gshift)
    t = 0.5 * CENTRED_MIN_SHARE * 500.0  # half the floor of an average of ~500
    assert centred_sums_kept(*sums(t, 0.0, 0.0), shift, gshift)
    assert not centred_sums_kept(*sums(4 * t, 0.0, 0.0), shift, gshift)
