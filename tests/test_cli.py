"""The ``fastgmm`` command line, through real subprocesses on real files."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import fastgmm

from conftest import make_data


def run(*args, cwd):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "fastgmm", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X = make_data(n=1500, d=3, K=3, seed=0)
    np.save(d / "x.npy", X)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["w"] = np.random.default_rng(0).integers(1, 3, X.shape[0]).astype(float)
    frame["name"] = "row"
    frame.to_csv(d / "x.csv", index=False)
    frame.drop(columns="name").to_csv(d / "x.tsv", sep="\t", index=False)
    frame.drop(columns="name").to_parquet(d / "x.parquet")
    Xn = X.copy()
    Xn[5, 1] = np.nan
    np.save(d / "nan.npy", Xn)
    np.save(d / "wide.npy", make_data(n=100, d=5, K=2, seed=1))
    (d / "x.json").write_text("{}")
    np.save(d / "complex.npy", X.astype(complex))
    (d / "empty.npy").write_bytes(b"")
    # a byte-order mark and a trailing separator on every line, no header
    (d / "bom.csv").write_text("\ufeff" + "".join(f"{a},{b},{c},\n" for a, b, c in X),
                               encoding="utf-8")
    return d, X, frame


def test_help_explains_every_option(files):
    d = files[0]
    top = run("--help", cwd=d)
    assert top.returncode == 0
    for command in ("fit", "predict", "score", "plot", "demo"):
        assert command in top.stdout
    fit = run("fit", "--help", cwd=d).stdout
    for option in ("-k", "--output", "--covariance-type", "--criterion", "--random-state",
                   "--max-iter", "--n-init", "--dtype", "--columns", "--sample-weight",
                   "--quiet"):
        assert option in fit, option
    assert fit.count("default") >= 8
    assert run("demo", "--help", cwd=d).returncode == 0
    assert run("--version", cwd=d).stdout.strip() == f"fastgmm {fastgmm.__version__}"


def test_fit_a_range_prints_the_table_and_writes_the_winner(files):
    d, X, _ = files
    out = run("fit", "x.npy", "-k", "1-4", "--covariance-type", "full,diag", "-o", "ic.fgmm",
              "--quiet", cwd=d)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(1 for line in lines if line.lstrip("* ").split(" ")[0].isdigit()) == 8
    starred = [line for line in lines if line.startswith("*")]
    ic = fastgmm.GaussianMixtureIC(max_components=4, covariance_type=["full", "diag"],
                                   random_state=0).fit(X)
    assert len(starred) == 1 and starred[0].split()[1:3] == [str(ic.n_components_),
                                                            ic.covariance_type_]
    model = fastgmm.load(d / "ic.fgmm")
    # the command line reads x.npy as a memmap (the streaming path: equal to rounding)
    np.testing.assert_allclose(model.results_["bic"], ic.results_["bic"], rtol=1e-12)


def test_fit_predict_score_round_trip(files):
    d, X, frame = files
    out = run("fit", "x.csv", "-k", "3", "--columns", "a,b,c", "--quiet", cwd=d)
    assert out.returncode == 0, out.stderr
    assert (d / "x.fgmm").exists()  # DATA's name with .fgmm
    gm = fastgmm.GaussianMixture(3, random_state=0).fit(X)
    assert f"{gm.bic(X):.6f}" in out.stdout
    assert run("predict", "x.fgmm", "x.npy", "-o", "labels.csv", cwd=d).returncode == 0
    np.testing.assert_array_equal(np.loadtxt(d / "labels.csv", dtype=int), gm.predict(X))
    assert run("predict", "x.fgmm", "x.npy", "--proba", "-o", "p.npy", cwd=d).returncode == 0
    np.testing.assert_allclose(np.load(d / "p.npy"), gm.predict_proba(X), rtol=1e-9,
                               atol=1e-14)  # another process, a memmap: to rounding
    stdout = run("predict", "x.fgmm", "x.tsv", "--columns", "a,b,c", cwd=d).stdout
    np.testing.assert_array_equal(np.array(stdout.split(), dtype=int), gm.predict(X))
    score = run("score", "x.fgmm", "x.npy", cwd=d).stdout
    assert f"mean log-likelihood {gm.score(X):.6f}" in score
    assert f"AIC {gm.aic(X):.6f}" in score


def test_weights_parquet_and_dtype(files):
    d, X, frame = files
    out = run("fit", "x.parquet", "-k", "2", "--sample-weight", "w", "--dtype", "float32",
              "-o", "w.fgmm", "--quiet", cwd=d)
    assert out.returncode == 0, out.stderr
    gm = fastgmm.GaussianMixture(2, random_state=0).fit(
        X.astype(np.float32), sample_weight=frame["w"].to_numpy())
    back = fastgmm.load(d / "w.fgmm")
    assert back.means_.dtype == np.float32
    np.testing.assert_allclose(back.means_, gm.means_, rtol=1e-5)  # float32


@pytest.mark.parametrize("args,message", [
    (("fit", "missing.csv", "-k", "2"), "no such file"),
    (("fit", "x.json", "-k", "2"), "unknown format"),
    (("fit", "nan.npy", "-k", "2"), "NaN"),
    (("fit", "x.csv", "-k", "2"), "non-numeric column(s) name"),
    (("fit", "x.csv", "-k", "2", "--columns", "a,zz"), "no column 'zz'"),
    (("fit", "x.npy", "-k", "two"), "-k takes a number"),
    (("fit", "x.npy", "-k", "2", "--covariance-type", "round"), "--covariance-type"),
    (("predict", "x.fgmm", "wide.npy"), "5 columns; the model was fitted on 3"),
    (("predict", "x.npy", "x.npy"), "not a valid fastgmm model file"),
    (("score", "nothing.fgmm", "x.npy"), "no such file"),
    (("fit", "x.npy", "-k", "2", "--sample-weight", "7"), "no column '7'"),
    (("fit", "x.parquet", "-k", "2", "--columns", "a,zz"), "no column 'zz'"),
    (("fit", "complex.npy", "-k", "2"), "dtype complex128"),
    (("fit", "empty.npy", "-k", "2"), "not a readable .npy file"),
    (("plot", "x.fgmm", "x.npy", "-o", "p.png", "--features", "0,9"), "--features"),
])
def test_bad_input_is_one_line_and_status_2(files, args, message):
    d = files[0]
    run("fit", "x.csv", "-k", "3", "--columns", "a,b,c", "--quiet", cwd=d)  # x.fgmm
    out = run(*args, cwd=d)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr


def test_awkward_but_valid_files(files):
    d, X, frame = files
    out = run("fit", "bom.csv", "-k", "2", "-o", "bom.fgmm", "--quiet", cwd=d)
    assert out.returncode == 0, out.stderr
    assert f"on {X.shape[0]} x 3" in out.stdout  # no row taken for a header
    # the weights' column by its index, counted from the end; features by index
    out = run("fit", "x.parquet", "-k", "2", "--columns", "0,1,2", "--sample-weight", "-1",
              "-o", "pw.fgmm", "--quiet", cwd=d)
    assert out.returncode == 0, out.stderr
    gm = fastgmm.GaussianMixture(2, random_state=0).fit(X, sample_weight=frame["w"].to_numpy())
    np.testing.assert_allclose(fastgmm.load(d / "pw.fgmm").means_, gm.means_, rtol=1e-12)


def test_plots_are_written(files):
    d = files[0]
    assert run("fit", "x.npy", "-k", "1-3", "-o", "ic.fgmm", "--quiet", cwd=d).returncode == 0
    for args in (("ic.fgmm", "-o", "crit.png"), ("ic.fgmm", "x.npy", "-o", "ell.png"),
                 ("ic.fgmm", "--kind", "lower-bound", "-o", "lb.png"),
                 ("ic.fgmm", "x.npy", "--features", "0,2", "-o", "f.png")):
        out = run("plot", *args, cwd=d)
        assert out.returncode == 0, out.stderr
        assert (d / args[-1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_on_a_terminal_and_quiet_otherwise(files):
    """A range prints each candidate on stderr when stderr is a terminal, nothing
    with --quiet or when it is not one."""
    d = files[0]
    master, slave = os.openpty()
    try:
        out = subprocess.run([sys.executable, "-m", "fastgmm", "fit", "x.npy", "-k", "1-3",
                              "-o", "tty.fgmm"], cwd=d, stdout=subprocess.PIPE,
                             stderr=slave, text=True, timeout=300,
                             env=dict(os.environ, PYTHONWARNINGS="ignore"))
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    terminal = b"".join(chunks).decode()
    assert out.returncode == 0
    assert terminal.count("GaussianMixtureIC: n_components=") == 3
    piped = run("fit", "x.npy", "-k", "1-3", "-o", "pipe.fgmm", cwd=d)
    assert "GaussianMixtureIC: n_components=" not in piped.stderr


def test_first_compilation_is_announced(files, tmp_path):
    d = files[0]
    env = dict(os.environ, PYTHONWARNINGS="ignore", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    run("fit", "x.csv", "-k", "3", "--columns", "a,b,c", "--quiet", cwd=d)  # x.fgmm
    cold = subprocess.run([sys.executable, "-m", "fastgmm", "score", "x.fgmm", "x.npy"],
                          cwd=d, capture_output=True, text=True, env=env, timeout=300)
    assert cold.returncode == 0, cold.stderr
    assert "compiling kernels on first use" in cold.stderr
    warm = subprocess.run([sys.executable, "-m", "fastgmm", "score", "x.fgmm", "x.npy"],
                          cwd=d, capture_output=True, text=True, env=env, timeout=300)
    assert "compiling" not in warm.stderr
    quiet = subprocess.run([sys.executable, "-m", "fastgmm", "score", "x.fgmm", "x.npy",
                            "--quiet"], cwd=d, capture_output=True, text=True,
                           env=dict(env, NUMBA_CACHE_DIR=str(tmp_path / "other")), timeout=300)
    assert quiet.returncode == 0 and "compiling" not in quiet.stderr
