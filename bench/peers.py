"""Seconds per EM iteration: fastgmm, scikit-learn and the CPU peers (gmmx on JAX,
pomegranate on PyTorch), each library in a process of its own.

    python bench/peers.py            # the workloads below -> bench/results/peers.{json,md}
    python bench/peers.py --quick    # shapes shrunk 100x, to check the script itself

Per iteration = (T(1 + n) - T(1)) / n: the same data, the same start (weights,
means, covariances: ``_data.start``), tolerance off, the best of ``--repeat``
timings of each fit after one untimed fit of each length (JAX compiles a loop per
``max_iter``). Each library runs in a fresh interpreter: JAX and PyTorch in one
process slowed PyTorch down about 50x on this machine kind. A library that is not
installed is reported as such ("pip install -e '.[peers]'"); one that raises (a
failed Cholesky, out of memory) or runs past ``--timeout`` is reported with the
reason. Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as on a user's
machine.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# the workloads of issue 14's table: (label, n, d, K, covariance type, n): n in
# T(1 + n) - T(1), more where an iteration is short (with n = 3 the difference of two
# fits of 30 ms moved 4.5 -> 7.6 ms between two runs on this VM)
WORKLOADS = [
    ("A", 100_000, 2, 5, "full", 20),
    ("B", 1_000_000, 8, 16, "full", 6),
    ("C", 100_000, 32, 16, "diag", 20),
    ("C", 100_000, 32, 16, "full", 6),
    ("D", 200_000, 64, 32, "full", 2),
    ("Dd", 200_000, 64, 32, "diag", 6),
]
# (column, library, dtype)
COLUMNS = [("sklearn-f64", "sklearn", "float64"), ("gmmx-f32", "gmmx", "float32"),
           ("pomegranate-f32", "pomegranate", "float32"), ("fastgmm-f64", "fastgmm", "float64"),
           ("fastgmm-f32", "fastgmm", "float32")]
REG_COVAR = 1e-3


# ------------------------------------------------------------------ the worker
def _fitter(lib, X, K, ct, w, m, p):
    """A function fit(n_iter) running n_iter EM iterations from the start."""
    if lib in ("sklearn", "fastgmm"):
        if lib == "sklearn":
            from sklearn.mixture import GaussianMixture
        else:
            from fastgmm import GaussianMixture
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        def fit(n_iter):
            est = GaussianMixture(K, covariance_type=ct, weights_init=w, means_init=m,
                                  precisions_init=p, max_iter=n_iter, tol=0,
                                  reg_covar=REG_COVAR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X)
            if not np.all(np.isfinite(est.means_)):
                raise FloatingPointError("non-finite means")
        return fit

    cov = np.linalg.inv(p) if ct == "full" else 1.0 / p
    if lib == "gmmx":
        import jax.numpy as jnp
        from gmmx import EMFitter, GaussianMixtureModelJax

        x = jnp.asarray(X)
        gmm = GaussianMixtureModelJax.from_squeezed(
            means=jnp.asarray(m, dtype=X.dtype), covariances=jnp.asarray(cov, dtype=X.dtype),
            weights=jnp.asarray(w, dtype=X.dtype), covariance_type=ct)

        def fit(n_iter):
            res = EMFitter(max_iter=n_iter, tol=0.0, reg_covar=REG_COVAR).fit(x, gmm)
            if int(res.n_iter) != n_iter or not bool(jnp.all(jnp.isfinite(res.gmm.means))):
                raise FloatingPointError(f"{int(res.n_iter)} iterations, means finite: "
                                         f"{bool(jnp.all(jnp.isfinite(res.gmm.means)))}")
        return fit

    if lib == "pomegranate":
        import torch
        from pomegranate.distributions import Normal
        from pomegranate.gmm import GeneralMixtureModel

        torch.set_num_threads(os.cpu_count())
        x = torch.from_numpy(X)

        def fit(n_iter):
            dists = [Normal(means=torch.tensor(m[k], dtype=x.dtype),
                            covs=torch.tensor(cov[k], dtype=x.dtype), covariance_type=ct,
                            min_cov=REG_COVAR) for k in range(K)]
            model = GeneralMixtureModel(dists, priors=torch.tensor(w, dtype=x.dtype),
                                        max_iter=n_iter, tol=-np.inf)
            model.fit(x)
            if not bool(torch.all(torch.isfinite(model.distributions[0].means))):
                raise FloatingPointError("non-finite means")
        return fit
    raise ValueError(lib)


def worker(lib, n, d, K, ct, dtype, n_more, repeat):
    sys.path.insert(0, str(HERE))
    from _data import make_data, start

    X = make_data(n, d, K, np.dtype(dtype))
    w, m, p = start(X, K, ct)
    fit = _fitter(lib, X, K, ct, w, m, p)
    best = {}
    for n_iter in (1, 1 + n_more):
        fit(n_iter)  # untimed: compilation (JAX, Numba's cache load), first touch
        ts = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fit(n_iter)
            ts.append(time.perf_counter() - t0)
        best[n_iter] = min(ts)
    return {"per_iter": (best[1 + n_more] - best[1]) / n_more, "t1": best[1],
            "t_more": best[1 + n_more]}


# ------------------------------------------------------------------ the driver
def installed(lib):
    import importlib.util

    return all(importlib.util.find_spec(mod) is not None
               for mod in {"gmmx": ("gmmx", "jax"), "pomegranate": ("pomegranate", "torch"),
                           "sklearn": ("sklearn",), "fastgmm": ("fastgmm",)}[lib])


def measure(lib, n, d, K, ct, dtype, n_more, repeat, timeout):
    if not installed(lib):
        return {"error": "not installed"}
    cmd = [sys.executable, __file__, "--worker",
           json.dumps([lib, n, d, K, ct, dtype, n_more, repeat])]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1]
        return {"error": last[:100]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(t):
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def report(rows):
    head = [c for c, _, _ in COLUMNS]
    lines = ["| workload | " + " | ".join(head) + " | fastgmm f64 vs sklearn | "
             "fastgmm f64 vs fastest peer |", "|---|" + "---:|" * (len(head) + 2)]
    for r in rows:
        cells, res = [], r["results"]
        for c in head:
            v = res[c]
            cells.append(_fmt(v["per_iter"]) if "per_iter" in v else f"fails: {v['error']}")
        f64 = res["fastgmm-f64"].get("per_iter")
        sk = res["sklearn-f64"].get("per_iter")
        peers = [res[c]["per_iter"] for c in ("gmmx-f32", "pomegranate-f32")
                 if "per_iter" in res[c]]
        vs_sk = f"{sk / f64:.1f}x" if f64 and sk else "-"
        vs_peer = f"{min(peers) / f64:.1f}x" if f64 and peers else "-"
        lines.append(f"| {r['label']} {r['shape']} {r['ct']} | " + " | ".join(cells)
                     + f" | {vs_sk} | {vs_peer} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shapes shrunk 100x")
    ap.add_argument("--more", type=int, default=0,
                    help="n in T(1 + n) - T(1) for every workload (default: each its own)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per library run")
    ap.add_argument("--only", default="", help="comma-separated libraries to run")
    ap.add_argument("--out", default=str(RESULTS / "peers"), help="path stem of the results")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(*json.loads(a.worker))))
        return
    from threadpoolctl import threadpool_info

    only = set(filter(None, a.only.split(",")))
    rows = []
    for label, n, d, K, ct, more in WORKLOADS:
        more = a.more or more
        if a.quick:
            n = max(n // 100, 4 * K * d)
        row = {"label": label, "shape": f"{n}x{d} K{K}", "ct": ct, "more": more,
               "results": {}}
        for col, lib, dtype in COLUMNS:
            if only and lib not in only:
                res = {"error": "not run"}
            else:
                res = measure(lib, n, d, K, ct, dtype, more, a.repeat, a.timeout)
            row["results"][col] = res
            print(label, row["shape"], ct, col, res, flush=True)
        rows.append(row)
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    blas = [(i.get("internal_api"), i.get("architecture")) for i in threadpool_info()
            if i.get("user_api") == "blas"]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "env": env, "blas": blas,
            "cpus": os.cpu_count(), "more": a.more, "repeat": a.repeat, "quick": a.quick}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = (f"Seconds per EM iteration, (T(1 + n) - T(1)) / n (n by workload: "
            f"{', '.join(str(r['more']) for r in rows)}), best of "
            f"{a.repeat}; each library in its own process; {meta['date']}, {os.cpu_count()} "
            f"cores, BLAS {blas}, OPENBLAS variables {env}.\n\n" + report(rows) + "\n")
    Path(a.out + ".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
