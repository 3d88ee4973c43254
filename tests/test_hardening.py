"""Defects a hostile-input and concurrency sweep found (issue 10), one test each.

Every test here failed before its fix. Cases that could kill or hang the test
process (heap corruption, fork) run in a subprocess with a time limit.
"""

import contextlib
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGM
from threadpoolctl import threadpool_info

from fastgmm import GaussianMixture
from fastgmm._mstep import ILL_DEFINED

from conftest import COV_TYPES, INIT_PARAMS, make_data


def _run(code, timeout=240):
    """Run ``code`` in a fresh interpreter; return its stdout (asserting exit 0)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


def _X():
    return np.random.RandomState(0).randn(300, 3)


# ---------------------------------------------------------------- defect 1
def test_changed_n_components_after_fit_uses_the_fitted_components():
    """set_params(n_components=...) on a fitted model: every method keeps working
    with the fitted number of components, as scikit-learn's (it corrupted the heap:
    buffers sized from n_components, kernels looping over means_.shape[0])."""
    out = _run("""
        import warnings
        import numpy as np
        from sklearn.mixture import GaussianMixture as S
        from fastgmm import GaussianMixture as G
        warnings.simplefilter("ignore")
        X = np.random.RandomState(0).randn(300, 3)
        for k_new in (1, 20):
            gm = G(16, max_iter=2, random_state=0).fit(X)
            before = gm.predict_proba(X), gm.score_samples(X), gm.predict(X)
            gm.set_params(n_components=k_new)
            after = gm.predict_proba(X), gm.score_samples(X), gm.predict(X)
            for a, b in zip(before, after):
                assert a.shape == b.shape and np.array_equal(a, b), k_new
            gm.partial_fit(X)
            assert gm.means_.shape == (16, 3) and np.isfinite(gm.means_).all()
            assert gm.predict_proba(X).shape == (300, 16)
            # warm-started fit continues with the fitted components, as scikit-learn's
            gm = G(16, max_iter=2, random_state=0, warm_start=True).fit(X)
            sk = S(16, max_iter=2, random_state=0, warm_start=True).fit(X)
            gm.set_params(n_components=k_new)
            sk.set_params(n_components=k_new)
            if k_new <= 16:
                gm.fit(X)
                sk.fit(X)
                assert gm.means_.shape == sk.means_.shape == (16, 3)
                np.testing.assert_allclose(gm.means_, sk.means_, rtol=1e-6, atol=1e-8)
        print("ok")
    """)
    assert out.strip().endswith("ok")


# ---------------------------------------------------------------- defect 12
@pytest.mark.parametrize("attr, value", [
    ("means_", lambda gm: gm.means_[:, :2]),
    ("means_", lambda gm: np.zeros((3, 2000))),
    ("means_", lambda gm: gm.means_[:2]),
    ("weights_", lambda gm: gm.weights_[:2]),
    ("precisions_cholesky_", lambda gm: gm.precisions_cholesky_[:2]),
    ("precisions_cholesky_", lambda gm: gm.precisions_cholesky_[:, :2, :2]),
])
def test_inconsistent_fitted_attributes_raise_value_error(attr, value):
    X = _X()
    gm = GaussianMixture(3, random_state=0).fit(X)
    setattr(gm, attr, value(gm))
    for method in (gm.predict, gm.predict_proba, gm.score_samples, gm.score):
        with pytest.raises(ValueError, match="fitted"):
            method(X)


# ---------------------------------------------------------------- defect 2
@pytest.mark.parametrize("d", [15, 16, 17, 64])
@pytest.mark.parametrize("K", [1, 2])
def test_every_init_and_covariance_type_at_d_around_16(d, K):
    """K = 1 with d >= 16 failed for every init ('assignment destination is
    read-only'). Each fit agrees with scikit-learn's from the same seed."""
    X = make_data(n=240, d=d, K=2, seed=d)
    for ct in COV_TYPES:
        for init in INIT_PARAMS:
            gm = GaussianMixture(K, covariance_type=ct, init_params=init, random_state=0)
            sk = SkGM(K, covariance_type=ct, init_params=init, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                gm.fit(X)
                sk.fit(X)
            np.testing.assert_allclose(gm.lower_bound_, sk.lower_bound_, rtol=1e-6,
                                       err_msg=f"{ct} {init}")
    gm = GaussianMixture(K, random_state=0).partial_fit(X)
    assert np.isfinite(gm.score(X))


# ------------------------------------------------------------- defects 3, 4
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4", np.longdouble, ">u2"])
def test_non_native_dtypes_are_converted_as_scikit_learn_converts_them(dtype):
    """Big-endian data was read as native bytes (silent garbage), long double and
    big-endian integers raised a Numba TypingError. scikit-learn converts them
    to native float64: the same model as from that conversion."""
    X = np.abs(_X() * 10) if dtype == ">u2" else _X() * 10
    Xd = X.astype(dtype)
    Xn = Xd.astype(np.float64)  # native, what scikit-learn works on
    ref = GaussianMixture(3, random_state=0).fit(Xn)
    gm = GaussianMixture(3, random_state=0).fit(Xd)
    assert gm.means_.dtype == np.float64
    np.testing.assert_array_equal(gm.means_, ref.means_)
    np.testing.assert_array_equal(gm.score_samples(Xd), ref.score_samples(Xn))
    np.testing.assert_array_equal(gm.predict_proba(Xd), ref.predict_proba(Xn))
    np.testing.assert_array_equal(gm.predict(Xd), ref.predict(Xn))
    # fortran order and a strided view: the streaming path
    Xf = np.asfortranarray(Xd)
    np.testing.assert_array_equal(gm.score_samples(Xf), ref.score_samples(Xn))
    np.testing.assert_array_equal(gm.score_samples(Xd[::2]), ref.score_samples(Xn[::2]))


def test_big_endian_memmap(tmp_path):
    X = _X()
    mm = np.memmap(tmp_path / "x.dat", dtype=">f8", mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    mm = np.memmap(tmp_path / "x.dat", dtype=">f8", mode="r", shape=X.shape)
    ref = GaussianMixture(3, random_state=0).fit(X)
    gm = GaussianMixture(3, random_state=0).fit(mm)
    np.testing.assert_array_equal(gm.means_, ref.means_)
    np.testing.assert_array_equal(gm.score_samples(mm), ref.score_samples(X))
    np.testing.assert_array_equal(gm.predict(mm), ref.predict(X))


# ------------------------------------------------------------- defects 5, 6
@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_scaling_all_weights_changes_nothing(covariance_type):
    """Weights are relative (2 = a repeated row): multiplying them all by a
    constant from 1e-300 to 1e300 gives the same model. Tiny weights used to
    leave every covariance at reg_covar (the 10 * eps in nk dominated); huge
    ones leaked NumPy's 'probabilities do not sum to 1' or overflowed."""
    X = make_data(n=300, d=3, K=3)
    w = np.random.RandomState(1).uniform(0.2, 2.0, size=X.shape[0])
    for init in ("kmeans", "k-means++", "random"):
        ref = GaussianMixture(3, covariance_type=covariance_type, init_params=init,
                              random_state=0).fit(X, sample_weight=w)
        for scale in (1e-300, 1e-100, 1e-20, 1e-8, 3.0, 1e20, 1e100, 1e300):
            gm = GaussianMixture(3, covariance_type=covariance_type, init_params=init,
                                 random_state=0).fit(X, sample_weight=w * scale)
            msg = f"{init} x{scale}"
            np.testing.assert_allclose(gm.lower_bound_, ref.lower_bound_, rtol=1e-9,
                                       err_msg=msg)
            np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-7, atol=1e-9,
                                       err_msg=msg)
            np.testing.assert_allclose(gm.covariances_, ref.covariances_, rtol=1e-7,
                                       atol=1e-9, err_msg=msg)
            np.testing.assert_allclose(gm.score(X, sample_weight=w * scale),
                                       ref.score(X, sample_weight=w), rtol=1e-12)


@pytest.mark.parametrize("value", [1e-20, 1e-300, 1e306, 1e308])
def test_constant_weights_equal_no_weights(value):
    X = _X()
    ref = GaussianMixture(3, random_state=0).fit(X)
    gm = GaussianMixture(3, random_state=0).fit(X, sample_weight=np.full(300, value))
    np.testing.assert_allclose(gm.lower_bound_, ref.lower_bound_, rtol=1e-9)
    np.testing.assert_allclose(gm.covariances_, ref.covariances_, rtol=1e-7)
    assert gm.score(X, sample_weight=np.full(300, value)) == pytest.approx(ref.score(X),
                                                                          rel=1e-12)


# ---------------------------------------------------------------- defect 7
def _blas_threads():
    return [(i["internal_api"], i["filepath"], i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]


class _Gate:
    """A sys.stdout for verbose fits: each named thread's first write (made inside
    its fit's call) waits until the test lets it go, so that two calls overlap in
    a chosen order."""

    def __init__(self, names):
        self.inside = {n: threading.Event() for n in names}
        self.go = {n: threading.Event() for n in names}

    def write(self, text):
        name = threading.current_thread().name
        if name in self.inside and not self.inside[name].is_set():
            self.inside[name].set()
            self.go[name].wait(120)
        return len(text)

    def flush(self):
        pass


@pytest.mark.parametrize("d", [3, 20])  # the plain and the BLAS-tiled 'full' kernels
def test_overlapping_calls_leave_blas_threads_as_they_were(d):
    """Call B starts inside call A and ends after it: B used to save A's
    one-thread limit and restore it last, leaving BLAS at one thread for the rest
    of the process (two threads predicting 200 times each did the same)."""
    X = make_data(n=600, d=d, K=3)
    GaussianMixture(3, random_state=0).fit(X)  # compiled before the clock matters
    before = _blas_threads()
    if not any(n >= 2 for _, _, n in before):
        pytest.skip("BLAS runs one thread here: a one-thread limit would change nothing")
    gate = _Gate(["A", "B"])
    errors = []

    def fit():
        try:
            GaussianMixture(3, random_state=0, verbose=1, max_iter=3).fit(X)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    a = threading.Thread(target=fit, name="A")
    b = threading.Thread(target=fit, name="B")
    with warnings.catch_warnings(), contextlib.redirect_stdout(gate):
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.start()
        assert gate.inside["A"].wait(120)
        b.start()
        assert gate.inside["B"].wait(120)
        inside = _blas_threads()
        gate.go["A"].set()
        a.join()
        b_alone = _blas_threads()
        gate.go["B"].set()
        b.join()
    assert not errors
    assert _blas_threads() == before
    if d < 16:  # no BLAS inside the kernels: left alone while the calls run
        assert inside == b_alone == before


def test_the_tiled_path_holds_blas_at_one_thread_while_it_runs():
    """The counted limit does limit (the test above checks what is left after)."""
    from fastgmm._pool import blas_one_thread

    before = _blas_threads()
    with blas_one_thread():
        assert all(n == 1 for _, _, n in _blas_threads())
        with blas_one_thread():  # nested: still one, and the outer one restores
            assert all(n == 1 for _, _, n in _blas_threads())
        assert all(n == 1 for _, _, n in _blas_threads())
    assert _blas_threads() == before
    with blas_one_thread(needed=False):
        assert _blas_threads() == before


# ---------------------------------------------------------------- defect 8
@pytest.mark.parametrize("offset", [1e4, 1e6, 1e8])
@pytest.mark.parametrize("K", [2, 3])
def test_tied_few_distinct_points_far_from_the_origin(offset, K):
    """One point (or two) repeated far from the origin: the tied covariance is
    reg_covar and the lower bound the true maximum (it was below reg_covar with
    a lower bound above the maximum at 1e4, and raised at 1e6)."""
    for pts in ([offset], [offset, offset + 1]):
        X = np.repeat(np.array(pts)[:, None], 50 // len(pts), axis=0)
        gm = GaussianMixture(K, covariance_type="tied", random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(X)
        np.testing.assert_allclose(gm.covariances_, [[1e-6]], rtol=1e-6)
        # every row is at its component's mean: log N(0 | 0, 1e-6) + sum of the
        # weights' entropy-free term; the maximum the EM can reach
        best = -0.5 * np.log(2 * np.pi * 1e-6) + np.log(1.0 / len(pts))
        assert gm.lower_bound_ <= best + 1e-9
        np.testing.assert_allclose(gm.lower_bound_, best, rtol=1e-6)


# ---------------------------------------------------------------- defect 9
def test_fit_in_forked_children_after_a_fit_in_the_parent():
    """multiprocessing's fork start method after a fit in the parent: the
    children fitted (they hung: GNU OpenMP is not fork-safe)."""
    out = _run("""
        import multiprocessing as mp
        import numpy as np
        from fastgmm import GaussianMixture

        def fit(seed):
            X = np.random.RandomState(seed).randn(2000, 3)
            return GaussianMixture(3, random_state=0).fit(X).lower_bound_

        if __name__ == "__main__":
            parent = [fit(s) for s in range(3)]
            with mp.get_context("fork").Pool(2) as pool:
                children = pool.map_async(fit, range(3)).get(timeout=150)
            assert children == parent, (children, parent)
            print("ok")
    """, timeout=200)
    assert out.strip().endswith("ok")


# ------------------------------------------------- scikit-learn issue #18216
def test_collapsed_spherical_component_with_reg_covar_0_raises():
    """scikit-learn's non-regression test for its issue #18216 expects this fit
    not to raise: its covariance formula leaves a rounding residue (about 1e-12)
    for two components that collapsed onto single rows. fastgmm's shifted
    statistics give the exact 0, and a zero variance is the ill-defined
    covariance scikit-learn's own error describes: fastgmm raises it (README,
    'Where results differ')."""
    rnd = np.random.RandomState(0)
    X = rnd.uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array([999999.999604483, 999999.9990869573, 553.7603944542167,
                                204.78596008931834, 15.867423501783637, 85.4595728389735])
    weights_init = [0.03333333333333341, 0.03333333333333341, 0.06666666666666674,
                    0.06666666666666674, 0.7000000000000001, 0.10000000000000007]
    kw = dict(covariance_type="spherical", reg_covar=0, means_init=means_init,
              weights_init=weights_init, n_components=6, precisions_init=precisions_init,
              max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGM(random_state=0, **kw).fit(X)
    assert sk.covariances_.min() < 1e-10  # scikit-learn: a rounding residue
    with pytest.raises(ValueError, match="ill-defined empirical covariance") as exc:
        GaussianMixture(random_state=0, **kw).fit(X)
    assert str(exc.value) == ILL_DEFINED
