"""score_samples / predict_proba / predict against scipy.stats."""

import numpy as np
import pytest
from scipy.special import logsumexp

from fastgmm import GaussianMixture
from naive import weighted_log_prob

from conftest import TOL, make_data, start_params


@pytest.mark.parametrize("d,K", [(1, 2), (3, 4), (9, 3), (20, 3)])  # d >= 16: tiled kernels
def test_density_matches_scipy(covariance_type, dtype, d, K):
    X = make_data(n=900, d=d, K=K, seed=d + K, dtype=dtype)
    gm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(np.asarray(X, dtype=np.float64))
    Xt = make_data(n=600, d=d, K=K, seed=100 + d, dtype=dtype)[:301]  # not a multiple of the block

    ref = weighted_log_prob(Xt.astype(np.float64), gm.weights_, gm.means_, gm.covariances_,
                            covariance_type)
    ref_lse = logsumexp(ref, axis=1)
    ref_resp = np.exp(ref - ref_lse[:, None])

    ss = gm.score_samples(Xt)
    proba = gm.predict_proba(Xt)
    assert ss.dtype == dtype and proba.dtype == dtype
    assert ss.shape == (301,) and proba.shape == (301, K)
    np.testing.assert_allclose(ss, ref_lse, **TOL[dtype])
    np.testing.assert_allclose(proba, ref_resp, **TOL[dtype])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, **TOL[dtype])
    np.testing.assert_array_equal(gm.predict(Xt), np.argmax(ref, axis=1))
    assert gm.score(Xt) == pytest.approx(float(np.mean(ref_lse)), rel=TOL[dtype]["rtol"])


def test_density_far_from_components():
    """A point far from every component still gets a finite log-density and
    responsibilities that sum to 1 (log-space, no underflow to NaN)."""
    X = make_data(n=300, d=2, K=2, seed=3)
    gm = GaussianMixture(2, random_state=0).fit(X)
    far = np.array([[1e3, -1e3]])
    ref = weighted_log_prob(far, gm.weights_, gm.means_, gm.covariances_, "full")
    np.testing.assert_allclose(gm.score_samples(far), logsumexp(ref, axis=1), rtol=1e-9)
    np.testing.assert_allclose(gm.predict_proba(far).sum(), 1.0)


def test_density_with_given_parameters_matches_scipy(covariance_type):
    """Densities straight from user parameters (max_iter=0, all three inits given)."""
    X = make_data(n=500, d=4, K=3, seed=11)
    w, m, p = start_params(X, 3, covariance_type, seed=2)
    gm = GaussianMixture(3, covariance_type=covariance_type, weights_init=w, means_init=m,
                         precisions_init=p, max_iter=0).fit(X)
    cov = np.linalg.inv(p) if covariance_type in ("full", "tied") else 1.0 / p
    ref = logsumexp(weighted_log_prob(X, w, m, cov, covariance_type), axis=1)
    np.testing.assert_allclose(gm.score_samples(X), ref, rtol=1e-9)


def test_generated_small_kernels_are_up_to_date():
    """fastgmm/_small.py is what ``python fastgmm/_small_gen.py`` writes."""
    from fastgmm import _small_gen

    assert _small_gen.path().read_text() == _small_gen.generate()


@pytest.mark.parametrize("d", list(range(1, 17)))
def test_full_density_and_statistics_every_small_d(d):
    """Every unrolled 'full' size (1-15 features) and the first tiled one (16):
    log-densities against scipy, the EM pass's statistics against a direct sum."""
    from scipy.stats import multivariate_normal

    from fastgmm._engine import CPUEngine
    from fastgmm._estep import COV_CODES
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    X = make_data(n=300, d=d, K=2, seed=d)
    w = np.random.RandomState(d).uniform(0.5, 2.0, X.shape[0])
    weights, means, prec = start_params(X, 2, "full", seed=d)
    cov = np.linalg.inv(prec)
    ep = estep_params(weights, means, compute_precision_cholesky(cov, "full"), COV_CODES["full"])
    eng = CPUEngine(X, w)
    lp = np.stack([np.log(weights[k]) + multivariate_normal(means[k], cov[k]).logpdf(X)
                   for k in range(2)], axis=1)
    np.testing.assert_allclose(eng.log_prob(ep, "lse"), logsumexp(lp, axis=1), rtol=1e-10)
    R = np.exp(lp - logsumexp(lp, axis=1, keepdims=True)) * w[:, None]
    st = eng.stats(ep).about(np.zeros(d), 1.0)
    np.testing.assert_allclose(st.nk, R.sum(0), rtol=1e-10)
    np.testing.assert_allclose(st.s1, R.T @ X, rtol=1e-10)
    S = np.einsum("ik,ia,ib->kab", R, X, X)
    np.testing.assert_allclose(st.s2, S, rtol=1e-9, atol=1e-9 * np.abs(S).max())
    assert st.ll == pytest.approx(float(w @ logsumexp(lp, axis=1)), rel=1e-11)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("d,K", [(1, 1), (2, 3), (3, 2), (5, 5), (7, 4), (20, 3)])
def test_diagonal_density_and_statistics_pairs_and_remainders(covariance_type, d, K):
    """The 'diag' / 'spherical' kernels work on two components and four (log-densities)
    or two (moments) features a sweep: odd K, d not a multiple of 4 or 2, and a block
    count and size that are not round, against scipy and a direct weighted sum."""
    from scipy.stats import norm

    from fastgmm._engine import CPUEngine
    from fastgmm._estep import COV_CODES
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    X = make_data(n=601, d=d, K=K, seed=10 * d + K)
    w = np.random.RandomState(d).uniform(0.5, 2.0, X.shape[0])
    rng = np.random.RandomState(K)
    weights = rng.uniform(0.5, 1.5, K)
    weights /= weights.sum()
    means = X[rng.choice(X.shape[0], K, replace=False)] + rng.normal(0, 0.1, (K, d))
    if covariance_type == "diag":
        var = rng.uniform(0.3, 3.0, (K, d))
        cov = var
    else:
        cov = rng.uniform(0.3, 3.0, K)
        var = np.repeat(cov[:, None], d, axis=1)
    ep = estep_params(weights, means, compute_precision_cholesky(cov, covariance_type),
                      COV_CODES[covariance_type])
    eng = CPUEngine(X, w)
    lp = np.stack([np.log(weights[k]) + norm.logpdf(X, means[k], np.sqrt(var[k])).sum(axis=1)
                   for k in range(K)], axis=1)
    np.testing.assert_allclose(eng.log_prob(ep, "lse"), logsumexp(lp, axis=1), rtol=1e-10)
    R = np.exp(lp - logsumexp(lp, axis=1, keepdims=True)) * w[:, None]
    st = eng.stats(ep).about(np.zeros(d), 1.0)
    np.testing.assert_allclose(st.nk, R.sum(0), rtol=1e-10)
    np.testing.assert_allclose(st.s1, R.T @ X, rtol=1e-10, atol=1e-10 * np.abs(R.T @ X).max())
    np.testing.assert_allclose(st.s2[:, 0, :], R.T @ (X * X), rtol=1e-10)
    assert st.ll == pytest.approx(float(w @ logsumexp(lp, axis=1)), rel=1e-11)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_diagonal_density_and_statistics_of_offset_data(covariance_type):
    """On data 1e8 from the origin with a unit spread, the 'diag' / 'spherical'
    log-densities (of the EM pass and of the prediction pass) and statistics stay
    as close to scipy and to direct sums about the shift as near the origin (a
    guard for rewrites of the kernels' arithmetic: x aux - mu aux as one fused
    multiply-add on uncentred rows failed it)."""
    from scipy.stats import norm

    from fastgmm._engine import CPUEngine
    from fastgmm._estep import COV_CODES
    from fastgmm._mstep import compute_precision_cholesky, estep_params

    d, K = 6, 3
    rng = np.random.RandomState(1)
    X = 1e8 + rng.normal(size=(700, d)) + 4 * rng.randint(0, K, size=(700, 1))
    means = 1e8 + 4 * np.arange(K)[:, None] + rng.normal(0, 0.1, (K, d))
    var = rng.uniform(0.5, 2.0, (K, d)) if covariance_type == "diag" else \
        np.repeat(rng.uniform(0.5, 2.0, (K, 1)), d, axis=1)
    cov = var if covariance_type == "diag" else var[:, 0]
    weights = np.full(K, 1.0 / K)
    ep = estep_params(weights, means, compute_precision_cholesky(cov, covariance_type),
                      COV_CODES[covariance_type])
    lp = np.stack([np.log(weights[k]) + norm.logpdf(X - 1e8, means[k] - 1e8,
                                                    np.sqrt(var[k])).sum(axis=1)
                   for k in range(K)], axis=1)
    eng = CPUEngine(X)
    np.testing.assert_allclose(eng.log_prob(ep, "lse"), logsumexp(lp, axis=1), rtol=1e-12)
    st = eng.stats(ep)
    assert st.ll == pytest.approx(float(logsumexp(lp, axis=1).sum()), rel=1e-12)
    R = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
    D = [X - st.shift[k] for k in range(K)]  # exact: the shift is within 16 of X
    np.testing.assert_allclose(st.nk, R.sum(0), rtol=1e-12)
    np.testing.assert_allclose(st.s1, [R[:, k] @ D[k] for k in range(K)], rtol=1e-9,
                               atol=1e-9 * len(X))
    np.testing.assert_allclose(st.s2[:, 0, :], [R[:, k] @ D[k] ** 2 for k in range(K)],
                               rtol=1e-11)


@pytest.mark.parametrize("layout", ["C", "F", "float32", "int32", "strided"])
def test_block_load_every_layout_and_remainder(layout):
    """``load_block`` transposes any block of rows into float64 columns, eight rows
    at a time and the rows beyond a multiple of eight one by one, for C and Fortran
    order, float32, integers and a strided view; the rows as they are, or minus a
    centre (the centred 'diag' / 'spherical' passes)."""
    from numba import njit

    from fastgmm._estep import BLOCK, load_block

    @njit
    def load(X, start, stop, g):
        d = X.shape[1]
        XT = np.full((d, BLOCK), np.nan)
        load_block(X, start, stop, XT, g)
        return XT

    rng = np.random.RandomState(0)
    for d in (3, 15, 16, 17, 25, 40):
        base = rng.normal(size=(1200, 2 * d)) * 100
        X = {"C": np.ascontiguousarray(base[:600, :d]),
             "F": np.asfortranarray(base[:600, :d]),
             "float32": base[:600, :d].astype(np.float32),
             "int32": base[:600, :d].astype(np.int32), "strided": base[::2, ::2]}[layout]
        g = rng.normal(size=d) * 50
        for start, B in ((0, BLOCK), (5, 1), (17, 7), (40, 8), (9, 13), (300, 141)):
            rows = X[start:start + B].astype(np.float64)
            XT = load(X, start, start + B, np.zeros(d))
            np.testing.assert_array_equal(XT[:, :B], rows.T)
            np.testing.assert_array_equal(load(X, start, start + B, g)[:, :B], (rows - g).T)


def test_vectorised_log_and_responsibilities():
    """The rows' log (fdlibm's method, written to vectorise) within 1 ulp of libm's
    over the whole positive range, its edge cases libm's, and the responsibilities
    pass against scipy's logsumexp with -inf entries and an all -inf row."""
    from numba import njit
    from scipy.special import logsumexp

    from fastgmm._estep import _log_rows, block_resp

    @njit
    def log_rows(x):
        _log_rows(x, x.shape[0], np.empty(x.shape[0], dtype=np.int64))

    @njit
    def resp(LP):
        B = LP.shape[1]
        lse = np.empty(B)
        block_resp(LP, B, lse, np.empty(B), np.empty(B, dtype=np.int64))
        return lse

    rng = np.random.RandomState(0)
    s2 = np.sqrt(2.0)
    x = np.concatenate([rng.uniform(1, 64, 20000), np.exp(rng.uniform(-700, 700, 20000)),
                        [1.0, 2.0, s2, np.nextafter(s2, 0), np.nextafter(s2, 3), s2 / 2,
                         1.41418, 1.4142, 2.2250738585072014e-308, 1.7e308]])
    y = x.copy()
    log_rows(y)
    ref = np.log(x)
    assert np.all(np.abs(y - ref) <= np.spacing(np.abs(ref)) + (ref == 0) * 1e-300)
    assert y[40000] == 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = np.array([0.0, np.inf, np.nan, 3.0, 5e-324])
        out = edge.copy()
        log_rows(out)
        np.testing.assert_array_equal(out, np.log(edge))

    LP = rng.uniform(-60, 0, (5, 301))
    LP[2, 7] = -np.inf
    LP[:, 9] = -np.inf
    ref = logsumexp(LP, axis=0)
    R = LP.copy()
    lse = resp(R)
    ok = np.isfinite(ref)
    np.testing.assert_allclose(lse[ok], ref[ok], rtol=1e-14, atol=1e-13)
    assert lse[9] == -np.inf
    np.testing.assert_allclose(R[:, ok], np.exp(LP[:, ok] - ref[ok]), rtol=1e-13, atol=1e-300)


def test_block_log_likelihood_by_products_of_row_sums():
    """A pass's log-likelihood with unit weights takes one log of 16 rows' sums:
    against scipy's logsumexp summed over a block whose length is not a multiple
    of 16, rows up to K = 1000 components; with weights each row's log, and a
    row of weight 0 left out whatever its value; an all -inf row gives -inf."""
    from numba import njit
    from scipy.special import logsumexp

    from fastgmm._estep import block_ll, resp_sums

    @njit
    def ll(LP, w, unit):
        B = LP.shape[1]
        sums, mx, scale = np.empty(B), np.empty(B), np.empty(B, dtype=np.int64)
        resp_sums(LP, B, sums, mx, scale)
        return block_ll(sums, mx, w, B, unit, scale)

    rng = np.random.RandomState(3)
    for K, B in ((1, 256), (4, 250), (1000, 37), (7, 3)):
        LP = rng.uniform(-80, 5, (K, B))
        ref = logsumexp(LP, axis=0)
        assert ll(LP.copy(), np.ones(B), True) == pytest.approx(ref.sum(), rel=1e-14)
        w = rng.uniform(0, 2, B)
        w[0] = 0.0
        LP[:, 0] = -np.inf
        assert ll(LP.copy(), w, False) == pytest.approx(w[1:] @ ref[1:], rel=1e-14)
        assert ll(LP.copy(), np.ones(B), True) == -np.inf


def test_quadratic_feature_outputs_equal_the_whitened_outputs(monkeypatch):
    """float64 'full' from 16 features: score_samples, predict_proba and predict by
    the quadratic features (one product for all components, ``_estep.quad_params``)
    are those of the whitened products, over several blocks and a short last one."""
    from fastgmm import _estep
    from fastgmm._mstep import compute_precision_cholesky

    X = make_data(n=1377, d=24, K=3, seed=4)
    gm = GaussianMixture(3, max_iter=3, random_state=0).fit(X)
    pc = compute_precision_cholesky(gm.covariances_, "full")
    gshift = gm.weights_ @ gm.means_
    assert _estep.quad_pays(3, 24) and _estep.quad_params(pc, gm.means_, gshift) is not None
    quad = gm.score_samples(X), gm.predict_proba(X), gm.predict(X)
    monkeypatch.setattr(_estep, "QUAD_MAX_ERR", -1.0)
    whitened = gm.score_samples(X), gm.predict_proba(X), gm.predict(X)
    # the quadratic features' rounding model (``quad_params``): eps s^T |P| s, s the
    # means' distances from gshift plus the standard deviations (1.6e-10 here; the
    # two paths differed by up to 5.9e-11 once the kernels took 512-bit vectors)
    s = np.abs(gm.means_ - gshift) + np.sqrt(np.einsum("kaa->ka", gm.covariances_))
    bound = np.finfo(np.float64).eps * np.einsum("ka,kab,kb->k", s, np.abs(gm.precisions_),
                                                 s).max()
    assert bound < 1e-9
    np.testing.assert_allclose(quad[0], whitened[0], rtol=0, atol=bound)
    np.testing.assert_allclose(quad[1], whitened[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(quad[2], whitened[2])
    assert not np.array_equal(quad[0], whitened[0])  # two paths did run


def test_quadratic_features_of_huge_rows_as_the_whitened_path(monkeypatch):
    """Rows beyond about 1e154 overflow their quadratic features (y_a y_b = inf,
    inf - inf = NaN): they get the whitened path's log-densities (-inf) and labels."""
    from fastgmm import _estep

    X = make_data(n=1377, d=24, K=3, seed=4)
    gm = GaussianMixture(3, max_iter=3, random_state=0).fit(X)
    Xh = X[:300].copy()
    Xh[[5, 130], :2] = [[1e200, 1e200], [-1e160, 3e170]]
    quad = gm.score_samples(Xh), gm.predict(Xh)
    monkeypatch.setattr(_estep, "QUAD_MAX_ERR", -1.0)
    whitened = gm.score_samples(Xh), gm.predict(Xh)
    assert np.isneginf(quad[0][[5, 130]]).all()
    np.testing.assert_allclose(quad[0], whitened[0], rtol=1e-12)
    np.testing.assert_array_equal(quad[1], whitened[1])


def test_vectorised_exp_is_as_accurate_as_numpys():
    """The responsibilities' exp (``_estep._exp_rows_sum``: Cody-Waite reduction
    and a polynomial, in a fast-math loop) stays within 4e-16 relative of NumPy's
    exp from -708 to 0 (fast-math's reassociation, folding ln 2's two parts into
    one rounded constant, had cost up to 2.4e-14 near -700), is exactly 0 below
    -708, and adds each value into the row sums."""
    from numba import njit

    from fastgmm._estep import _exp_rows_sum

    @njit
    def run(LP, mx, sums):
        for k in range(LP.shape[0]):
            _exp_rows_sum(LP, k, mx, LP.shape[1], sums)

    rng = np.random.default_rng(0)
    v = np.concatenate([-rng.random(100_000) * 708.0, -rng.random(20_000) * 5.0,
                        [0.0, -708.0, -708.5, -745.2, -1e300, -np.inf]])
    LP, sums = np.stack([v, v[::-1]]), np.zeros(v.size)
    mx = np.full(v.size, -1.0)  # exp(LP - mx): arguments shifted by one
    run(LP, mx, sums)
    x = np.stack([v, v[::-1]]) + 1.0
    ok = x >= -708.0
    ref = np.exp(x[ok])
    assert np.max(np.abs(LP[ok] - ref) / ref) < 4e-16
    assert np.all(LP[~ok] == 0.0)
    np.testing.assert_array_equal(sums, LP[0] + LP[1])
