"""Safe model files: round trips in a fresh process, and files that must be refused."""

import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pandas as pd
import pytest

import fastgmm
from fastgmm import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC

from conftest import make_data


def _fitted():
    X = make_data(n=600, d=3, K=3, seed=0)
    return X, [
        GaussianMixture(3, covariance_type="full", random_state=0).fit(X),
        GaussianMixture(2, covariance_type="tied", random_state=0).fit(X.astype(np.float32)),
        BayesianGaussianMixture(n_components=4, covariance_type="diag", random_state=0,
                                max_iter=200).fit(X),
        BayesianGaussianMixture(n_components=3, covariance_type="tied", random_state=0,
                                weight_concentration_prior_type="dirichlet_distribution",
                                max_iter=200).fit(X),
        GaussianMixtureIC(max_components=3, covariance_type=["full", "diag"],
                          random_state=0).fit(X),
    ]


def test_round_trip_predicts_bitwise_in_a_fresh_process(tmp_path):
    X, models = _fitted()
    np.save(tmp_path / "X.npy", X)
    for i, m in enumerate(models):
        fastgmm.save(m, tmp_path / f"m{i}.fgmm")
        with zipfile.ZipFile(tmp_path / f"m{i}.fgmm") as z:
            header = json.loads(z.read("fastgmm.json"))
        assert header["dtype"] == str(getattr(m, "best_estimator_", m).means_.dtype)
        assert header["fastgmm_version"] == fastgmm.__version__
        np.save(tmp_path / f"expected{i}.npy",
                np.column_stack([m.score_samples(X), m.predict(X), m.predict_proba(X)]))
    script = textwrap.dedent(f"""
        import numpy as np, fastgmm
        X = np.load({str(tmp_path / 'X.npy')!r})
        for i in range({len(models)}):
            m = fastgmm.load({str(tmp_path)!r} + f"/m{{i}}.fgmm")
            got = np.column_stack([m.score_samples(X), m.predict(X), m.predict_proba(X)])
            expected = np.load({str(tmp_path)!r} + f"/expected{{i}}.npy")
            assert np.array_equal(got, expected), i
            print(type(m).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [type(m).__name__ for m in models]


def test_round_trip_keeps_parameters_and_attributes(tmp_path):
    X, models = _fitted()
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    models.append(GaussianMixture(2, random_state=0, means_init=X[:2]).fit(df))
    models.append(GaussianMixture(5))  # not fitted
    for m in models:
        fastgmm.save(m, tmp_path / "m.fgmm")
        back = fastgmm.load(tmp_path / "m.fgmm")
        assert type(back) is type(m)
        p, q = m.get_params(), back.get_params()
        assert set(p) == set(q)
        for k in p:
            if isinstance(p[k], np.ndarray):
                np.testing.assert_array_equal(p[k], q[k])
            elif not hasattr(p[k], "fit"):
                assert p[k] == q[k], k
        for k, v in vars(m).items():
            if k.endswith("_") and not k.startswith("_") and k != "best_estimator_":
                w = getattr(back, k)
                if isinstance(v, dict):
                    assert set(v) == set(w)
                    for key in v:
                        np.testing.assert_array_equal(v[key], w[key])
                elif isinstance(v, tuple):
                    for a, b in zip(v, w):
                        np.testing.assert_array_equal(a, b)
                else:
                    np.testing.assert_array_equal(v, w, err_msg=k)
                    assert np.asarray(v).dtype == np.asarray(w).dtype or np.ndim(v) == 0, k
    assert list(back.feature_names_in_) == ["a", "b", "c"] if hasattr(back, "feature_names_in_") \
        else True


def _tamper(src, dst, edit_header=None, replace=None):
    """Copy a model file, editing its header (a function of the dict) or replacing
    members (name -> bytes)."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if edit_header is not None:
        header = json.loads(members["fastgmm.json"])
        edit_header(header)
        members["fastgmm.json"] = json.dumps(header).encode()
    members.update(replace or {})
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)


def _npy(a, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


class Boom:
    def __reduce__(self):
        return (print, ("EXECUTED",))


def _set(path, value):
    def edit(h):
        d = h
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return edit


@pytest.mark.parametrize("case", [
    "truncated", "not a zip", "another program's zip", "no header", "bad json",
    "unknown version", "foreign class", "class path", "pickle inside", "object array tag",
    "inconsistent shapes", "unknown parameter", "invalid parameter", "bad attribute name",
    "nan parameters", "missing array", "unknown tag", "scalar overflow", "scalar dtype list",
    "scalar nan int", "huge integer", "deep json", "compressed member", "version true",
    "missing fitted attribute", "list for an array", "n_components mismatch",
    "negative weights", "long double", "covariances shape",
])
def test_bad_files_are_refused_with_a_value_error(tmp_path, case, capfd):
    X = make_data(n=300, d=3, K=2, seed=1)
    good = tmp_path / "good.fgmm"
    fastgmm.save(GaussianMixture(2, random_state=0).fit(X), good)
    bad = tmp_path / "bad.fgmm"
    with zipfile.ZipFile(good) as z:
        header = json.loads(z.read("fastgmm.json"))
    means_ref = header["model"]["attributes"]["means_"]["array"]
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "not a zip":
        bad.write_bytes(b"\x93NUMPY not a model")
    elif case == "another program's zip":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("fastgmm.json", json.dumps({"format": "something-else"}))
    elif case == "no header":
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("arrays/0.npy", _npy(np.zeros(3)))
    elif case == "bad json":
        _tamper(good, bad, replace={"fastgmm.json": b"{not json"})
    elif case == "unknown version":
        _tamper(good, bad, _set(["format_version"], 99))
    elif case == "foreign class":
        _tamper(good, bad, _set(["model", "class"], "LogisticRegression"))
    elif case == "class path":
        _tamper(good, bad, _set(["model", "class"], "os.system"))
    elif case == "pickle inside":
        _tamper(good, bad, replace={
            f"arrays/{means_ref}.npy": _npy(np.array([Boom()], dtype=object), True)})
    elif case == "object array tag":
        _tamper(good, bad, _set(["model", "attributes", "means_"], {"pickle": "x"}))
    elif case == "inconsistent shapes":
        _tamper(good, bad, replace={f"arrays/{means_ref}.npy": _npy(np.zeros((5, 3)))})
    elif case == "unknown parameter":
        _tamper(good, bad, _set(["model", "params", "exec"], "rm -rf"))
    elif case == "invalid parameter":
        _tamper(good, bad, _set(["model", "params", "covariance_type"], "bogus"))
    elif case == "bad attribute name":
        _tamper(good, bad, _set(["model", "attributes", "__class__"], 1))
    elif case == "nan parameters":
        _tamper(good, bad, replace={f"arrays/{means_ref}.npy": _npy(np.full((2, 3), np.nan))})
    elif case == "missing array":
        _tamper(good, bad, _set(["model", "attributes", "means_"], {"array": 999}))
    elif case == "unknown tag":
        _tamper(good, bad, _set(["model", "attributes", "means_"], {"eval": "1+1"}))
    elif case == "scalar overflow":
        _tamper(good, bad, _set(["model", "attributes", "n_iter_"], {"scalar": ["<i4", 2**40]}))
    elif case == "scalar dtype list":
        _tamper(good, bad, _set(["model", "attributes", "n_iter_"], {"scalar": [[1], 1.0]}))
    elif case == "scalar nan int":
        _tamper(good, bad, _set(["model", "attributes", "n_iter_"],
                                {"scalar": ["<i8", {"float": "nan"}]}))
    elif case == "huge integer":
        _tamper(good, bad, replace={"fastgmm.json": json.dumps(header).replace(
            '"format_version": 1', '"format_version": ' + "9" * 5000).encode()})
    elif case == "deep json":
        _tamper(good, bad, replace={"fastgmm.json": b"[" * 100_000 + b"]" * 100_000})
    elif case == "compressed member":
        with zipfile.ZipFile(good) as z:
            members = {n: z.read(n) for n in z.namelist()}
        with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for n, b in members.items():
                z.writestr(n, b)
    elif case == "version true":
        _tamper(good, bad, _set(["format_version"], True))
    elif case == "missing fitted attribute":
        def drop(h):
            del h["model"]["attributes"]["weights_"]
        _tamper(good, bad, drop)
    elif case == "list for an array":
        _tamper(good, bad, _set(["model", "attributes", "means_"], [[0.0, 0.0, 0.0]] * 2))
    elif case == "n_components mismatch":
        _tamper(good, bad, _set(["model", "params", "n_components"], 1))
    elif case == "negative weights":
        w_ref = header["model"]["attributes"]["weights_"]["array"]
        _tamper(good, bad, replace={f"arrays/{w_ref}.npy": _npy(np.array([-0.5, 1.5]))})
    elif case == "long double":
        _tamper(good, bad, replace={f"arrays/{means_ref}.npy": _npy(
            np.zeros((2, 3), dtype=np.longdouble))})
    elif case == "covariances shape":
        c_ref = header["model"]["attributes"]["covariances_"]["array"]
        _tamper(good, bad, replace={f"arrays/{c_ref}.npy": _npy(np.ones(1))})
    with pytest.raises(ValueError, match="not a valid fastgmm model file"):
        fastgmm.load(bad)
    assert "EXECUTED" not in capfd.readouterr().out


def test_a_pickle_file_is_refused_without_running_it(tmp_path, capfd):
    path = tmp_path / "evil.fgmm"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ValueError, match="not a valid fastgmm model file"):
        fastgmm.load(path)
    assert "EXECUTED" not in capfd.readouterr().out


def test_a_crafted_search_result_is_refused(tmp_path):
    X = make_data(n=300, d=2, K=2, seed=2)
    good, bad = tmp_path / "ic.fgmm", tmp_path / "bad.fgmm"
    fastgmm.save(GaussianMixtureIC(max_components=2, random_state=0).fit(X), good)
    for value in (5, None, [1], {"model": {"class": "GaussianMixture", "params": {},
                                           "attributes": {}}}):
        _tamper(good, bad, _set(["model", "attributes", "best_estimator_"], value))
        with pytest.raises(ValueError, match="not a valid fastgmm model file"):
            fastgmm.load(bad)


def test_missing_file_and_foreign_estimator():
    with pytest.raises(FileNotFoundError):
        fastgmm.load("/nonexistent/model.fgmm")
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    with pytest.raises(TypeError, match="saves fastgmm's estimators"):
        fastgmm.save(SkGaussianMixture(), io.BytesIO())


def test_dask_estimators_round_trip(tmp_path):
    da = pytest.importorskip("dask.array")
    import fastgmm.dask

    X = make_data(n=2000, d=2, K=2, seed=3)
    for cls in (fastgmm.dask.GaussianMixture, fastgmm.dask.BayesianGaussianMixture):
        kw = dict(n_components=2, random_state=0)
        m = cls(**kw).fit(da.from_array(X, chunks=500))
        fastgmm.save(m, tmp_path / "d.fgmm")
        back = fastgmm.load(tmp_path / "d.fgmm")
        assert type(back) is cls and back.init_sample_size == m.init_sample_size
        np.testing.assert_array_equal(back.predict(X), m.predict(X))
