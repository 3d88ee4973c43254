"""GPU benchmark: fastgmm's CUDA engine against scikit-learn on the same GPU (its
Array API path, on PyTorch and CuPy arrays) and fastgmm's CPU engine on the same
machine's cores, in one run.

    NUMBA_ENABLE_CUDASIM=0 SCIPY_ARRAY_API=1 python bench/gpu_bench.py OUT_DIR [--quick]

Each workload is timed per EM iteration: (fit with 1 + ITERS iterations - fit with
1 iteration) / ITERS, with init_params='random_from_data' (the start scikit-learn's
Array API path supports), tol=0, after a warm-up fit of the same shape (compilation
and library handles stay out). The data are generated on the GPU and given to each
fitter on the device (fastgmm: a CuPy array, read in place); the CPU engine gets a
host copy. Also measured: the GPU's float64 / float32 matrix-product rate (8192^3,
torch.matmul, TF32 off), against which the 'full' passes' 2 n K d^2 flops an
iteration are counted, and the first use (compilation) of the CUDA kernels.

cuVS's GMM is not in the table: its wheels (libcuvs-cu13 26.10 alone: 241 MB) do
not fit this workplace's 64 MiB transfer to the GPU machine.
"""

import json
import os
import sys
import time
import traceback
import warnings

import numpy as np

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "0")
os.environ.setdefault("SCIPY_ARRAY_API", "1")

ITERS = 10
WORKLOADS = [  # (n, d, K, covariance_type)
    (1_000_000, 8, 16, "full"),
    (200_000, 64, 32, "full"),
    (1_000_000, 64, 64, "diag"),
    (10_000_000, 8, 16, "full"),
]
BUDGET_S = float(os.environ.get("GPU_BENCH_BUDGET_S", "360"))
T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def sync():
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


def timed(fn):
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def make_data(n, d, K, dtype, seed=0):
    import cupy as cp

    rs = cp.random.RandomState(seed)
    centers = rs.uniform(-6, 6, (K, d))
    scales = rs.uniform(0.5, 1.5, (K, 1))
    lab = rs.randint(0, K, n)
    X = centers[lab] + rs.standard_normal((n, d)) * scales[lab]
    return cp.ascontiguousarray(X.astype(dtype))


def gemm_rate(dtype):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    for _ in range(2):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    return 2 * 8192**3 / float(np.median(times)) / 1e12


def per_iter(fit):
    """(seconds an EM iteration, seconds of the longer fit)."""
    fit(1)  # warm-up: compilation, handles, caches
    t1 = timed(lambda: fit(1))
    tn = timed(lambda: fit(1 + ITERS))
    return max(tn - t1, 0.0) / ITERS, tn


def fastgmm_fit(X, K, ct, device="cuda"):
    from fastgmm import GaussianMixture

    def fit(max_iter):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GaussianMixture(K, covariance_type=ct, init_params="random_from_data",
                                   max_iter=max_iter, tol=0.0, random_state=0,
                                   device=device).fit(X)
    return fit


def patched(fit, name, value):
    """``fit`` with ``fastgmm._cuda.<name>`` set to ``value`` during each call."""
    from fastgmm import _cuda

    def run(max_iter):
        saved = getattr(_cuda, name)
        setattr(_cuda, name, value)
        try:
            return fit(max_iter)
        finally:
            setattr(_cuda, name, saved)
    return run


def sklearn_fit(X, K, ct):
    import sklearn
    from sklearn.mixture import GaussianMixture

    def fit(max_iter):
        with warnings.catch_warnings(), sklearn.config_context(array_api_dispatch=True):
            warnings.simplefilter("ignore")
            return GaussianMixture(K, covariance_type=ct, init_params="random_from_data",
                                   max_iter=max_iter, tol=0.0, random_state=0).fit(X)
    return fit


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    # GPU_BENCH_D / GPU_BENCH_SKIP (comma-separated competitor names): a partial rerun
    quick = "--quick" in sys.argv
    import cupy as cp
    import numba
    import sklearn
    import threadpoolctl
    import torch

    from fastgmm import _cuda

    info = {"gpu": torch.cuda.get_device_name(0), "numba": numba.__version__,
            "sklearn": sklearn.__version__, "cupy": cp.__version__, "torch": torch.__version__,
            "cpus": os.cpu_count(), "blas": threadpoolctl.threadpool_info()}
    try:
        import numba_cuda

        info["numba_cuda"] = numba_cuda.__version__
    except Exception:
        pass
    log("device", info["gpu"], "numba", info["numba"], "sklearn", info["sklearn"])
    rows = []
    results = {"info": info, "rows": rows, "iters": ITERS}
    try:
        results["gemm_tflops"] = {"float64": gemm_rate(torch.float64),
                                  "float32": gemm_rate(torch.float32)}
        log("GEMM TFLOP/s", results["gemm_tflops"])
    except Exception:
        traceback.print_exc()
        results["gemm_tflops"] = {}

    # first use: the CUDA kernels' compilation (a fresh process has compiled nothing)
    try:
        Xs = make_data(20000, 8, 4, np.float64)
        fit = fastgmm_fit(Xs, 4, "full")
        t_first = timed(lambda: fit(3))
        t_second = timed(lambda: fit(3))
        results["first_use_s"] = {"first": t_first, "second": t_second}
        log(f"first CUDA fit {t_first:.2f} s, second {t_second:.3f} s")
    except Exception:
        traceback.print_exc()

    workloads = WORKLOADS[:1] if quick else WORKLOADS
    only = os.environ.get("GPU_BENCH_D")  # e.g. "64": the workloads of that many features
    if only:
        workloads = [w for w in workloads if str(w[1]) == only]
    skip = set(filter(None, os.environ.get("GPU_BENCH_SKIP", "").split(",")))
    for dtype in (np.float32, np.float64):
        for n, d, K, ct in workloads:
            name = f"{n // 1000}k x {d} K{K} {ct} {np.dtype(dtype).name}"
            X = make_data(n, d, K, dtype)
            row = {"workload": name, "n": n, "d": d, "K": K, "ct": ct,
                   "dtype": np.dtype(dtype).name}
            competitors = [("fastgmm_cuda", lambda: fastgmm_fit(X, K, ct))]
            if d >= _cuda.GEMM_MIN_D:  # the kernels in place of the cuBLAS products
                competitors.append(("fastgmm_cuda_kernels", lambda: patched(
                    fastgmm_fit(X, K, ct), "GEMM_MIN_D", None)))
            if ct == "full" and d >= _cuda.GEMM_MIN_D:  # candidate: the fused product pass
                competitors.append(("fastgmm_cuda_fused", lambda: patched(
                    fastgmm_fit(X, K, ct), "FUSED_FULL", True)))
            if ct in ("diag", "spherical") and d >= _cuda.GEMM_MIN_D:  # candidate: products
                competitors.append(("fastgmm_cuda_products", lambda: patched(
                    fastgmm_fit(X, K, ct), "GEMM_DIAG_MAX_Q", _cuda.DIAG_PRODUCTS_Q)))
            if ct in ("diag", "spherical"):  # the kernels the tiled ones replace
                competitors.append(("fastgmm_cuda_untiled", lambda: patched(
                    fastgmm_fit(X, K, ct), "TILED_DIAG", False)))
            competitors += [
                ("sklearn_torch", lambda: sklearn_fit(torch.from_dlpack(X), K, ct)),
                ("sklearn_cupy", lambda: sklearn_fit(X, K, ct)),
                ("fastgmm_cpu", lambda: fastgmm_fit(cp.asnumpy(X), K, ct, device="cpu")),
            ]
            for label, make in competitors:
                if label in skip:
                    continue
                if time.time() - T0 > BUDGET_S:
                    row[label] = None
                    log(name, label, "skipped: time budget")
                    continue
                try:
                    t_it, t_all = per_iter(make())
                    row[label] = t_it
                    log(f"{name:32s} {label:22s} {t_it * 1e3:9.2f} ms/iter "
                        f"(fit of {1 + ITERS}: {t_all:.2f} s)")
                except Exception as exc:
                    row[label] = None
                    log(name, label, "failed:", type(exc).__name__, str(exc)[:300])
            if ct == "full" and row.get("fastgmm_cuda"):
                row["tflops_2nKd2"] = 2 * n * K * d * d / row["fastgmm_cuda"] / 1e12
            rows.append(row)
            X = None  # the next workload's data in its place
            cp.get_default_memory_pool().free_all_blocks()
            with open(os.path.join(out_dir, "gpu_bench.json"), "w") as f:
                json.dump(results, f, indent=1, default=str)

    # the table
    cols = ["fastgmm_cuda", "fastgmm_cuda_fused", "fastgmm_cuda_products", "fastgmm_cuda_kernels",
            "fastgmm_cuda_untiled", "sklearn_torch",
            "sklearn_cupy", "fastgmm_cpu"]
    print("\n| workload | " + " | ".join(cols) + " | vs sklearn-torch | vs sklearn-cupy "
          "| vs fastgmm-cpu | TFLOP/s (2nKd^2) |")
    for r in rows:
        f = r.get("fastgmm_cuda")

        def ms(v):
            return "-" if v is None else f"{v * 1e3:.2f}"

        def ratio(v):
            return "-" if (v is None or not f) else f"{v / f:.1f}x"

        tf = r.get("tflops_2nKd2")
        print(f"| {r['workload']} | " + " | ".join(ms(r.get(c)) for c in cols)
              + f" | {ratio(r.get('sklearn_torch'))} | {ratio(r.get('sklearn_cupy'))} "
              f"| {ratio(r.get('fastgmm_cpu'))} | {'-' if tf is None else f'{tf:.1f}'} |")
    print("GEMM TFLOP/s", results.get("gemm_tflops"), "first use", results.get("first_use_s"))


if __name__ == "__main__":
    main()
