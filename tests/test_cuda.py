"""The CUDA engine (``device='cuda'``, GPU arrays) against the CPU engine.

Without a GPU these run on Numba's CUDA simulator (conftest sets
NUMBA_ENABLE_CUDASIM=1 unless it is set): the same kernels, each thread a Python
thread, so the shapes are tiny (the simulator's tiles are 64 rows: 150 rows are
three tiles). On a GPU machine, NUMBA_ENABLE_CUDASIM=0 runs them on the device,
plus the CuPy / PyTorch input tests.
"""

import warnings

import numpy as np
import pytest
from conftest import COV_TYPES, INIT_PARAMS, make_data, start_params
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.utils._param_validation import InvalidParameterError

cuda = pytest.importorskip("numba.cuda")
from numba import config  # noqa: E402

from fastgmm import BayesianGaussianMixture, GaussianMixture  # noqa: E402
from fastgmm._engine import CPUEngine  # noqa: E402
from fastgmm._estep import COV_CODES  # noqa: E402
from fastgmm._mstep import compute_precision_cholesky, estep_params  # noqa: E402

SIM = bool(config.ENABLE_CUDASIM)
if not SIM and not cuda.is_available():
    pytest.skip("no CUDA GPU and the simulator is off", allow_module_level=True)

from fastgmm import _cuda  # noqa: E402
from fastgmm._cuda import CUDAEngine  # noqa: E402

ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


def _fit(X, device, cls=GaussianMixture, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cls(device=device, **kw).fit(X)


def _same_model(a, b, rtol=1e-9, attrs=ATTRS):
    for name in attrs:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=rtol,
                                   atol=rtol, err_msg=name)
    assert a.n_iter_ == b.n_iter_
    assert b.lower_bound_ == pytest.approx(a.lower_bound_, rel=rtol, abs=rtol)


def _same_stats(b, a, label=""):
    """Two passes' statistics, both about the origin per unit weight, agree to
    rounding (nk, first and second moments, log-likelihood)."""
    origin = np.zeros(a.s1.shape[1])
    a, b = a.about(origin, 1.0), b.about(origin, 1.0)
    for name in ("nk", "s1", "s2"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-10,
                                   atol=1e-9, err_msg=f"{name} {label}")
    assert b.ll == pytest.approx(a.ll, rel=1e-12), label


def _ep(X, K, ct, seed=0):
    weights, means, prec = start_params(X, K, ct, seed)
    cov = {"full": lambda: np.linalg.inv(prec), "tied": lambda: np.linalg.inv(prec)}.get(
        ct, lambda: 1.0 / prec)()
    pc = compute_precision_cholesky(np.asarray(cov), ct)
    return estep_params(weights, means, pc, COV_CODES[ct])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_pass_statistics_equal_cpu(covariance_type, dtype):
    """One fused pass (weighted, several tiles) gives the CPU engine's statistics."""
    X = make_data(n=150, d=3, K=3, dtype=dtype)
    w = np.random.RandomState(1).uniform(0.2, 2.0, X.shape[0])
    ep = _ep(X.astype(np.float64), 3, covariance_type)
    a = CPUEngine(X, w).stats(ep)
    _same_stats(CUDAEngine(X, w).stats(ep), a)


@pytest.mark.filterwarnings("ignore:Host array used in CUDA kernel")  # NumPy on a GPU
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_zero_weight_rows_with_overflowing_values_add_nothing(covariance_type):
    """A row of weight zero adds nothing, whatever its values (1e200: |x - mu|^2
    overflows): the kernels' pass and the matrix-product pass (run here in NumPy;
    it made 0 * NaN there) give the bits of ordinary values in those rows."""
    X = make_data(n=150, d=3, K=3)
    Xb = X.copy()
    Xb[5], Xb[77] = 1e200, -3e180
    w = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    w[[5, 77]] = 0.0
    ep = _ep(X, 3, covariance_type)
    passes = [lambda Z: CUDAEngine(Z, w).stats(ep)]
    if covariance_type in ("full", "tied"):
        passes.append(lambda Z: _cuda.gemm_stats(np, Z, w, ep, np.asarray, slab=16))
        if covariance_type == "full":  # the fused form too
            passes.append(lambda Z: _cuda._full_rows(np, Z, w, ep, np.asarray, slab=16))
    else:
        passes.append(lambda Z: _cuda.diag_products(np, Z, w, ep, np.asarray, slab=16))
    for run in passes:
        # the overflow in rows weighing 0 is harmless (they get w r = 0 and w log p = 0
        # whatever it is), but the simulator's NumPy scalars and NumPy's products warn
        with warnings.catch_warnings(), np.errstate(over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            a, b = run(X), run(Xb)
        for name in ("nk", "s1", "s2", "ll"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)


@pytest.mark.filterwarnings("ignore:Host array used in CUDA kernel")  # NumPy on a GPU
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "elementwise"])
@pytest.mark.parametrize("covariance_type,d", [("full", 3), ("full", 9), ("tied", 3)])
def test_gemm_pass_equals_cpu(covariance_type, d, fused, monkeypatch):
    """The matrix-product pass (CuPy on a GPU), run here in NumPy: the CPU engine's
    statistics, weighted, in chunks and slabs ('full' d = 9: more features than the
    simulator's threads on a row), 'full' in both forms (FUSED_FULL)."""
    monkeypatch.setattr(_cuda, "FUSED_FULL", fused)
    X = make_data(n=150, d=d, K=3, dtype=np.float32)[:149]  # odd: a block's spare rows
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    ep = _ep(X.astype(np.float64), 3, covariance_type)
    a = CPUEngine(X, w).stats(ep)
    # chunks: 'tied' 40 rows; 'full' d = 3: 80 (69 in the last, padded to 5 slabs of
    # 16), d = 9: 32
    _same_stats(_cuda.gemm_stats(np, X, w, ep, np.asarray, chunk_bytes=40 * 8 * 45,
                                 slab=16), a)


@pytest.mark.skipif(SIM, reason="CuPy's cuBLAS needs a GPU")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_gemm_pass_on_cupy(dtype, monkeypatch):
    """On a GPU with CuPy: the 'full' matrix-product pass (the rows' kernel, the
    batched products per slab and component through cuBLAS, chunks whose last slab
    is padded, a last block with spare rows) gives the CPU engine's statistics (of
    the data in float64), zero weights included, and so does the element-wise form
    (FUSED_FULL off)."""
    cp = pytest.importorskip("cupy")
    X = make_data(n=1000, d=20, K=5, dtype=dtype)[:999]  # odd: a block's spare rows
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    w[::9] = 0.0
    ep = _ep(X.astype(np.float64), 5, "full")
    # the reference in float64 (the CPU engine's tiled products of float32 data are
    # float32; this pass's are float64 for any data)
    a = CPUEngine(X.astype(np.float64), w).stats(ep)
    for fused in (True, False):
        monkeypatch.setattr(_cuda, "FUSED_FULL", fused)
        _same_stats(_cuda.gemm_stats(cp, cp.asarray(X), cp.asarray(w), ep, cp.asnumpy,
                                     chunk_bytes=300 * 8 * 200, slab=64), a, f"fused={fused}")


@pytest.mark.skipif(SIM, reason="CuPy's cuBLAS needs a GPU")
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_diag_products_on_cupy(covariance_type, monkeypatch):
    """On a GPU with CuPy: the 'diag' / 'spherical' product pass (zero weights,
    chunks) and the engine's choice between it and the kernels give the CPU
    engine's statistics; a fit on each path equals the CPU engine's fit."""
    cp = pytest.importorskip("cupy")
    X = make_data(n=1000, d=20, K=5)[:999]
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    w[::9] = 0.0
    ep = _ep(X, 5, covariance_type)
    a = CPUEngine(X, w).stats(ep)
    eng = CUDAEngine(X, w)
    monkeypatch.setattr(_cuda, "GEMM_DIAG_MAX_Q", _cuda.DIAG_PRODUCTS_Q)
    assert eng._use_gemm(ep)
    got = [_cuda.diag_products(cp, cp.asarray(X), cp.asarray(w), ep, cp.asnumpy,
                               chunk_bytes=300 * 8 * 52), eng.stats(ep)]
    monkeypatch.setattr(_cuda, "GEMM_DIAG_MAX_Q", 0.0)  # the kernels
    assert not eng._use_gemm(ep)
    monkeypatch.setattr(_cuda, "GEMM_DIAG_MAX_Q", None)
    assert not eng._use_gemm(ep)
    got.append(eng.stats(ep))
    for b in got:
        _same_stats(b, a)
    Xd = cp.asarray(X)  # the device rows' range by slabs of 64 and the rest
    for got_x, want in zip(_cuda.column_range(cp, Xd, 64), (X.min(axis=0), X.max(axis=0))):
        np.testing.assert_array_equal(got_x, want)
    for q in (_cuda.DIAG_PRODUCTS_Q, None):  # the fit on the products, then the kernels
        monkeypatch.setattr(_cuda, "GEMM_DIAG_MAX_Q", q)
        ref = _fit(X, "cpu", n_components=5, covariance_type=covariance_type, random_state=0)
        _same_model(ref, _fit(X, "cuda", n_components=5, covariance_type=covariance_type,
                              random_state=0))


@pytest.mark.filterwarnings("ignore:Host array used in CUDA kernel")  # NumPy on a GPU
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_diag_products_equal_cpu(covariance_type):
    """The 'diag' / 'spherical' matrix-product pass (CuPy on a GPU), run here in
    NumPy: the CPU engine's statistics, weighted (zeros too), in chunks of 40 rows,
    and the engine's rule for taking it: data within GEMM_DIAG_MAX_Q squared
    standard deviations of the shift (DIAG_PRODUCTS_Q), not two tight components far
    apart."""
    X = make_data(n=150, d=9, K=3, dtype=np.float32)
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    w[::7] = 0.0
    ep = _ep(X.astype(np.float64), 3, covariance_type)
    a = CPUEngine(X, w).stats(ep)
    _same_stats(_cuda.diag_products(np, X, w, ep, np.asarray, chunk_bytes=40 * 8 * 26,
                                    slab=16), a)
    assert _cuda.diag_product_bound(ep, *_cuda.column_range(np, X, rows=16)) < 1e5
    assert _cuda.DIAG_PRODUCTS_Q == 1e6
    rng = np.random.RandomState(0)
    T = np.concatenate([rng.normal(-1e4, 1e-3, (80, 3)), rng.normal(1e4, 1e-3, (70, 3))])
    var = np.array([T[:80].var(0), T[80:].var(0)])
    cov = var if covariance_type == "diag" else var.mean(1)
    ept = estep_params(np.array([80, 70]) / 150, np.array([T[:80].mean(0), T[80:].mean(0)]),
                       compute_precision_cholesky(cov, covariance_type),
                       COV_CODES[covariance_type])
    assert _cuda.diag_product_bound(ept, *_cuda.column_range(np, T)) > 1e12
    # a mean far beyond the data (a given start's) counts too
    cov = 1.0 / ep[2] ** 2 if covariance_type == "diag" else 1.0 / ep[2][:, 0] ** 2
    far = estep_params(np.full(3, 1 / 3), ep.means + np.array([[0.0], [0.0], [1e6]]),
                       compute_precision_cholesky(cov, covariance_type),
                       COV_CODES[covariance_type])
    assert _cuda.diag_product_bound(far, *_cuda.column_range(np, X)) > 1e10


def test_column_range_by_blocks():
    """Each feature's smallest and largest value, block by block and the rest."""
    X = np.random.RandomState(0).standard_normal((150, 4)).astype(np.float32)
    X[15, 0], X[74, 1], X[99, 2], X[149, 3] = 9.0, -9.0, 9.0, -9.0  # blocks' last rows
    for rows in (16, 75, 100, 4096):  # host rows a block at a time
        lo, hi = _cuda.column_range(np, X, rows=rows)
        np.testing.assert_array_equal(lo, X.min(axis=0))
        np.testing.assert_array_equal(hi, X.max(axis=0))


@pytest.mark.filterwarnings("ignore:Host array used in CUDA kernel")  # NumPy on a GPU
def test_gemm_pass_tight_components_far_apart():
    """Two components of spread 1e-3, 2e4 apart: the covariances from the
    matrix-product pass are the CPU engine's (summing about the common shift lost
    5 % here). 'tied' is left out: its pooled scatter is scikit-learn's X^T X form,
    as ill-conditioned here in both engines."""
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(-1e4, 1e-3, (80, 3)), rng.normal(1e4, 1e-3, (70, 3))])
    means = np.array([X[:80].mean(0), X[80:].mean(0)])
    cov = np.stack([np.cov(X[:80].T), np.cov(X[80:].T)])
    pc = compute_precision_cholesky(cov, "full")
    ep = estep_params(np.array([80, 70]) / 150, means, pc, COV_CODES["full"])
    from fastgmm._mstep import estimate_gaussian_parameters

    eps = np.finfo(np.float64).eps
    _, ma, ca = estimate_gaussian_parameters(CPUEngine(X).stats(ep), 0.0, eps, 150.0)
    for form in (_cuda.gemm_stats, _cuda._full_rows):  # FUSED_FULL off and on
        st = form(np, X, None, ep, np.asarray, slab=16)
        _, mb, cb = estimate_gaussian_parameters(st, 0.0, eps, 150.0)
        np.testing.assert_allclose(mb, ma, rtol=1e-13)
        np.testing.assert_allclose(cb, ca, rtol=1e-6)


def test_pass_does_not_depend_on_chunking(monkeypatch):
    """Launches of one tile each add up to the same bits as one launch (the EM
    pass, and the start's passes of labels and of given responsibilities)."""
    X = make_data(n=150, d=3, K=3)
    ep = _ep(X, 3, "full")
    one = CUDAEngine(X).stats(ep)
    labels = np.random.RandomState(0).randint(0, 3, X.shape[0])
    R = np.random.RandomState(1).dirichlet(np.ones(3), X.shape[0])
    given = [CUDAEngine(X).given_stats(0, 3, labels=labels),
             CUDAEngine(X).given_stats(0, 3, resp_chunks=lambda: iter([(0, R)]))]
    monkeypatch.setattr(_cuda, "CHUNK_BYTES", 1)  # one tile a launch
    many = CUDAEngine(X).stats(ep)
    for name in ("nk", "s1", "s2", "ll"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name))
    monkeypatch.setattr(_cuda, "CHUNK_BYTES", 256 << 20)
    monkeypatch.setattr(_cuda, "PARTIAL_BYTES", 1)  # the start's passes too
    again = [CUDAEngine(X).given_stats(0, 3, labels=labels),
             CUDAEngine(X).given_stats(0, 3, resp_chunks=lambda: iter([(0, R)]))]
    for a, b in zip(given, again):
        for name in ("nk", "s1", "s2"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_tiled_kernels_over_several_blocks(covariance_type, monkeypatch):
    """'diag' / 'spherical' run on the tiled kernels (``lp_diag``, ``sums_diag``):
    with more components and features than a block holds, more features than are
    staged at a time, rows not a multiple of a block and several statistics tiles a
    launch, the statistics and the row outputs are the CPU engine's and those of the
    per-row kernels they replace (to rounding; the distances bit for bit: the same
    sums in the same order), and do not depend on how the pass is cut into launches
    (the EM pass and the start's pass of labels, K and more meaning none)."""
    from fastgmm import _cuda_kernels as kern

    K, d = kern.BS + 2, max(kern.BS, kern.BA) + 1
    X = make_data(n=150 if SIM else 3 * kern.DTILE + 100, d=d, K=K, dtype=np.float32)
    rng = np.random.RandomState(1)
    w = rng.uniform(0.0, 2.0, X.shape[0])
    w[::5] = 0.0
    labels = rng.randint(0, K + 2, X.shape[0])
    ct = COV_CODES[covariance_type]
    ep = _ep(X.astype(np.float64), K, covariance_type)
    origin = np.zeros(d)
    a = CPUEngine(X, w).stats(ep).about(origin, 1.0)
    tiled = CUDAEngine(X, w).stats(ep)
    tiled_labels = CUDAEngine(X, w).given_stats(ct, K, labels=labels)
    monkeypatch.setattr(_cuda, "TILED_DIAG", False)
    untiled = CUDAEngine(X, w).stats(ep).about(origin, 1.0)
    outs_untiled = {o: CUDAEngine(X).log_prob(ep, o) for o in ("lse", "label", "resp")}
    monkeypatch.setattr(_cuda, "TILED_DIAG", True)
    for b in (tiled.about(origin, 1.0), untiled):
        for name in ("nk", "s1", "s2"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-10,
                                       atol=1e-9, err_msg=name)
        assert b.ll == pytest.approx(a.ll, rel=1e-12)
    for o in ("lse", "label", "resp"):
        got = CUDAEngine(X).log_prob(ep, o)
        np.testing.assert_array_equal(got, outs_untiled[o])
        want = CPUEngine(X).log_prob(ep, o)
        if o == "label":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=o)
    want = CPUEngine(X, w).given_stats(ct, K, labels=labels).about(origin, 1.0)
    for name in ("nk", "s1", "s2"):
        np.testing.assert_allclose(getattr(tiled_labels.about(origin, 1.0), name),
                                   getattr(want, name), rtol=1e-10, atol=1e-9, err_msg=name)
    monkeypatch.setattr(_cuda, "CHUNK_BYTES", 1)  # one TILE a launch
    monkeypatch.setattr(_cuda, "PARTIAL_BYTES", 1)
    many = CUDAEngine(X, w).stats(ep)
    many_labels = CUDAEngine(X, w).given_stats(ct, K, labels=labels)
    for name in ("nk", "s1", "s2", "ll"):
        np.testing.assert_array_equal(getattr(many, name), getattr(tiled, name))
    for name in ("nk", "s1", "s2"):
        np.testing.assert_array_equal(getattr(many_labels, name), getattr(tiled_labels, name))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_streamed_host_data(covariance_type, monkeypatch):
    """Host data larger than the GPU's room is streamed through a device buffer a
    few tiles at a time: the passes are the bits of the data copied whole (the
    EM pass, the start's label and responsibility passes, the row outputs), and
    fits (the k-means start then on the host) are the CPU engine's."""
    from fastgmm import _cuda_kernels as kern

    X = make_data(n=150, d=3, K=3)
    w = np.random.RandomState(1).uniform(0.0, 2.0, X.shape[0])
    ep = _ep(X, 3, covariance_type)
    labels = np.random.RandomState(2).randint(0, 4, X.shape[0])
    ct = COV_CODES[covariance_type]
    whole = CUDAEngine(X, w)
    assert whole.Xh is None
    want = [whole.stats(ep), whole.given_stats(ct, 3, labels=labels)]
    outs = {o: CUDAEngine(X).log_prob(ep, o) for o in ("lse", "label", "resp")}
    monkeypatch.setattr(_cuda, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(_cuda, "STREAM_BYTES", 2 * kern.TILE * 3 * 8)  # 2 tiles a launch
    streamed = CUDAEngine(X, w)
    assert streamed.Xh is not None and streamed.Xd is None
    got = [streamed.stats(ep), streamed.given_stats(ct, 3, labels=labels)]
    for a, b in zip(want, got):
        for name in ("nk", "s1", "s2", "ll"):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    for o in outs:
        np.testing.assert_array_equal(CUDAEngine(X).log_prob(ep, o), outs[o])
    kw = dict(n_components=3, covariance_type=covariance_type, max_iter=4, random_state=0)
    a = _fit(X, "cpu", **kw)
    b = _fit(X, "cuda", **kw)
    _same_model(a, b)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_given_statistics_equal_cpu(covariance_type):
    """The start's passes: hard labels (K for none) and given responsibilities."""
    X = make_data(n=150, d=2, K=3)
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 4, X.shape[0]).astype(np.uint8)  # 3: no component
    R = rng.dirichlet(np.ones(3), X.shape[0])
    ct = COV_CODES[covariance_type]
    for kw in (dict(labels=labels), dict(resp_chunks=lambda: iter([(0, R[:70]), (70, R[70:])]))):
        a = CPUEngine(X).given_stats(ct, 3, **kw)
        b = CUDAEngine(X).given_stats(ct, 3, **kw)
        np.testing.assert_allclose(b.shift, a.shift, rtol=1e-12)
        a, b = a.about(np.zeros(2), 1.0), b.about(np.zeros(2), 1.0)  # both triangles
        for name in ("nk", "s1", "s2"):
            np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-10,
                                       atol=1e-10, err_msg=name)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_fit_equals_cpu_fit(covariance_type):
    X = make_data(n=150, d=3, K=3)
    a = _fit(X, "cpu", n_components=3, covariance_type=covariance_type, max_iter=4,
             random_state=0)
    b = _fit(X, "cuda", n_components=3, covariance_type=covariance_type, max_iter=4,
             random_state=0)
    _same_model(a, b)
    np.testing.assert_array_equal(b.predict(X), a.predict(X))
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.score_samples(X), a.score_samples(X), rtol=1e-10)


def test_fit_equals_cpu_fit_many_features():
    """d = 20: the kernels' per-row arrays at a larger size (on a GPU with CuPy, the
    matrix-product pass)."""
    X = make_data(n=150 if SIM else 5000, d=20, K=2, seed=4)
    kw = dict(n_components=2, max_iter=3, random_state=0)
    _same_model(_fit(X, "cpu", **kw), _fit(X, "cuda", **kw), rtol=1e-8)


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_same_start_for_the_same_seed(init_params):
    """The start (max_iter=0) draws as the CPU engine, which draws as scikit-learn."""
    X = make_data(n=150, d=2, K=4, seed=3)
    kw = dict(n_components=4, init_params=init_params, max_iter=0, random_state=7)
    _same_model(_fit(X, "cpu", **kw), _fit(X, "cuda", **kw), rtol=1e-10)


def test_weighted_float32_fit():
    X = make_data(n=150, d=3, K=3, dtype=np.float32)
    w = np.random.RandomState(2).uniform(0.0, 3.0, X.shape[0])
    kw = dict(n_components=3, covariance_type="diag", max_iter=5, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GaussianMixture(**kw).fit(X, sample_weight=w)
        b = GaussianMixture(device="cuda", **kw).fit(X, sample_weight=w)
    assert b.means_.dtype == np.float32
    _same_model(a, b, rtol=2e-5)


def test_kmeans_empty_cluster_relocation_and_warning():
    """Two distinct points and three clusters: k-means++ picks a duplicate centre,
    Lloyd empties a cluster and relocates it, and both engines warn. Which duplicate
    row is picked rests on rounding noise (the CPU engine's |x|^2 - 2 x.c + |c|^2 is
    not exactly 0 on a duplicate, the device's |x - c|^2 is): the same partition and
    centres up to the clusters' names."""
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0]]), [70, 50], axis=0)
    X = X[np.random.RandomState(0).permutation(len(X))]
    out = []
    for engine in (CPUEngine(X), CUDAEngine(X)):
        with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(2\) found smaller"):
            labels, centres, counts = engine.kmeans_labels(3, np.random.RandomState(0))
        labels = labels.copy_to_host() if hasattr(labels, "copy_to_host") else labels
        labels = np.asarray(labels, dtype=np.int64)
        used = [k for k in range(3) if counts[k] > 0]
        order = sorted(used, key=lambda k: counts[k])
        out.append((labels, centres[order], counts[order]))
    (la, ca, na), (lb, cb, nb) = out
    assert np.unique(np.stack([la, lb]), axis=1).shape[1] == 2  # the same partition
    np.testing.assert_allclose(cb, ca, atol=1e-12)
    np.testing.assert_array_equal(na, [50, 70])
    np.testing.assert_array_equal(nb, [50, 70])


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_relocation_equals_cpu(weighted):
    """scikit-learn's empty-cluster relocation on the device: a cluster with no row
    takes the rows farthest from their centres, as the CPU engine's does (the
    duplicate-point test above ends with the same partition without it)."""
    from fastgmm._kmeans import _relocate_empty_clusters

    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 2)) * rng.uniform(0.5, 3.0, (90, 1))
    sw = rng.uniform(0.5, 2.0, 90) if weighted else None
    xmean = X.mean(axis=0)
    centers = np.array([[-1.0, 0.0], [1.0, 0.5], [40.0, 40.0], [-40.0, 40.0]])
    labels = np.argmin((((X - xmean)[:, None, :] - centers[None]) ** 2).sum(axis=2), axis=1)
    assert set(labels) == {0, 1}  # clusters 2 and 3 empty
    w = np.ones(90) if sw is None else sw
    sums = np.stack([((X - xmean) * w[:, None])[labels == k].sum(0) for k in range(4)])
    weights = np.array([w[labels == k].sum() for k in range(4)])
    a_sums, a_w = sums.copy(), weights.copy()
    _relocate_empty_clusters(X, xmean, np.zeros(0) if sw is None else sw, centers, a_sums,
                             a_w, labels.astype(np.uint8))
    engine = CUDAEngine(X, sw)
    b_sums, b_w = sums.copy(), weights.copy()
    _cuda._DeviceKMeans(engine)._relocate(centers, b_sums, b_w,
                                          cuda.to_device(labels.astype(np.int32)),
                                          cuda.to_device(xmean))
    assert np.count_nonzero(a_w == 0) == 0  # the CPU engine moved rows into both
    np.testing.assert_allclose(b_sums, a_sums, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b_w, a_w, rtol=1e-12)


def test_device_array_input_stays_on_device():
    """A device array is fitted where it is (whatever ``device`` says), unchanged,
    to the same model as its host copy; predictions take device arrays too."""
    X = make_data(n=150, d=3, K=3)
    Xd = cuda.to_device(X)
    a = _fit(X, "cuda", n_components=3, max_iter=3, random_state=0)
    b = _fit(Xd, "cpu", n_components=3, max_iter=3, random_state=0)
    _same_model(a, b, rtol=0)
    np.testing.assert_array_equal(Xd.copy_to_host(), X)
    assert b.n_features_in_ == 3 and not hasattr(b, "feature_names_in_")
    np.testing.assert_array_equal(b.predict(Xd), a.predict(X))
    assert b.score(Xd) == pytest.approx(a.score(X), rel=1e-12)


def test_device_array_errors_as_sklearn():
    X = make_data(n=60, d=3, K=3)
    gm = _fit(X, "cuda", n_components=2, max_iter=2, random_state=0)
    bad = X.copy()
    bad[5, 1] = np.nan
    for value in (np.nan, np.inf, -np.inf):
        bad[5, 1] = value
        with pytest.raises(ValueError) as theirs:
            SkGaussianMixture(2).fit(bad)
        with pytest.raises(ValueError) as ours:
            GaussianMixture(2).fit(cuda.to_device(bad))
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as theirs:
        SkGaussianMixture(2).fit(np.zeros((4, 3, 2)))
    with pytest.raises(ValueError) as ours:
        GaussianMixture(2).fit(cuda.to_device(np.zeros((4, 3, 2))))
    assert str(ours.value) == str(theirs.value)
    # NaN is found before the wrong number of features, as scikit-learn does
    with pytest.raises(ValueError, match="Input X contains NaN"):
        gm.predict(cuda.to_device(np.full((3, 2), np.nan)))
    with pytest.raises(ValueError, match="X has 2 features, but GaussianMixture is expecting 3"):
        gm.predict(cuda.to_device(X[:, :2].copy()))
    with pytest.raises(ValueError, match="a minimum of 2 is required by GaussianMixture"):
        GaussianMixture(1).fit(cuda.to_device(X[:1].copy()))
    with pytest.raises(ValueError, match="float32 or float64"):
        GaussianMixture(2).fit(cuda.to_device(X.astype(np.float16)))
    with pytest.raises(ValueError, match="Expected 2D array"):
        GaussianMixture(2).fit(cuda.to_device(X[:, 0].copy()))
    with pytest.raises(InvalidParameterError, match="'device' parameter"):
        GaussianMixture(2, device="gpu").fit(X)
    with pytest.raises(ValueError, match="up to 256 features; X has 257. Use device='cpu'"):
        GaussianMixture(2, init_params="random", device="cuda").fit(np.ones((4, 257)))


def test_device_integers_and_weights():
    """Integer device arrays are converted (as scikit-learn converts host ones);
    device sample weights are read; neither array is changed."""
    X = np.rint(make_data(n=150, d=2, K=3) * 10).astype(np.int32)
    w = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    Xd, wd = cuda.to_device(X), cuda.to_device(w)
    kw = dict(n_components=3, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GaussianMixture(**kw).fit(X.astype(np.float64), sample_weight=w)
        b = GaussianMixture(**kw).fit(Xd, sample_weight=wd)
    _same_model(a, b)
    assert b.means_.dtype == np.float64
    np.testing.assert_array_equal(Xd.copy_to_host(), X)
    np.testing.assert_array_equal(wd.copy_to_host(), w)
    assert b.score(Xd, sample_weight=wd) == pytest.approx(a.score(X, sample_weight=w))


def test_bayesian_mixture_on_cuda():
    X = make_data(n=150, d=2, K=3)
    kw = dict(n_components=4, max_iter=5, random_state=0)
    a = _fit(X, "cpu", cls=BayesianGaussianMixture, **kw)
    b = _fit(X, "cuda", cls=BayesianGaussianMixture, **kw)
    _same_model(a, b, attrs=ATTRS + ["weight_concentration_", "mean_precision_",
                                     "degrees_of_freedom_"])


def test_model_search_on_cuda():
    """GaussianMixtureIC(device='cuda'): every candidate on the CUDA engine, the same
    table and choice as on the CPU."""
    from fastgmm import GaussianMixtureIC

    X = make_data(n=120, d=2, K=2)
    kw = dict(min_components=1, max_components=2, covariance_type="diag", max_iter=3,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = GaussianMixtureIC(**kw).fit(X)
        b = GaussianMixtureIC(device="cuda", **kw).fit(cuda.to_device(X))
    for key in ("bic", "aic", "icl", "lower_bound"):
        np.testing.assert_allclose(b.results_[key], a.results_[key], rtol=1e-9, err_msg=key)
    assert b.n_components_ == a.n_components_
    assert b.best_estimator_.device == "cuda"


def _gpu_arrays():
    """CuPy and PyTorch CUDA arrays, where a GPU and the library are there."""
    if SIM:
        return []
    makers = []
    try:
        import cupy

        makers.append(pytest.param(cupy.asarray, id="cupy"))
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            makers.append(pytest.param(lambda a: torch.as_tensor(a, device="cuda"), id="torch"))
    except ImportError:
        pass
    return makers


@pytest.mark.parametrize("to_gpu", _gpu_arrays())
def test_cupy_and_torch_inputs(to_gpu):
    X = make_data(n=3000, d=4, K=3)
    a = _fit(X, "cuda", n_components=3, max_iter=10, random_state=0)
    b = _fit(to_gpu(X), "cpu", n_components=3, max_iter=10, random_state=0)
    _same_model(a, b, rtol=0)
    np.testing.assert_array_equal(b.predict(to_gpu(X)), a.predict(X))


def test_starts_from_chosen_rows_stay_on_the_device():
    """The CPU engine takes 'random_from_data' / 'k-means++' start statistics from
    the chosen rows alone (``CPUEngine.subset``: X indexed by an index array).
    Device arrays take no index arrays (the simulator's do, so the tests could not
    see it): the CUDA engine has no ``subset`` and starts from its labels pass."""
    assert CUDAEngine.subset is None
    X = make_data(n=150, d=3, K=2, seed=9)
    for init in ("random_from_data", "k-means++"):
        a = _fit(X, "cpu", n_components=2, init_params=init, random_state=0, max_iter=2)
        b = _fit(X, "cuda", n_components=2, init_params=init, random_state=0, max_iter=2)
        _same_model(a, b)
