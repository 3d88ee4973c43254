"""Per-kernel times of one CUDA EM pass (CUDA events around each launch, the
median of REPS), so that a slow pass can be pinned on a kernel:

    NUMBA_ENABLE_CUDASIM=0 python bench/gpu_kernels.py [--tiles BT,MT,BA,RS,DTILE] [--lb L,S] [--tiled-only] [n,d,K,ct,dtype ...]

(default: 10M x 8 K16 'full' in float32 and float64, 1M x 64 K64 'diag' float32).
Prints, per case, the whole pass (``CUDAEngine.stats``) and each of its launches.
``--tiles`` sets the tiled 'diag' kernels' constants (``_cuda_kernels``: threads
a side, outputs a thread a side, features staged, rows staged, rows a statistics
tile) before they compile: one configuration a process (``sums_diag`` keeps its
launch bounds of two blocks an SM, for the new block size). ``--lb L,S`` compiles
``lp_diag`` / ``sums_diag`` with launch bounds of L / S blocks an SM (0: none; the
code's own: none for ``lp_diag``, two for ``sums_diag``). Unless ``--tiled-only``,
a 'full' case of ``_cuda.GEMM_MIN_D`` features or more runs the matrix-product pass
both ways (``_cuda.FUSED_FULL``: the rows' kernel ``whiten_rows`` and one batched
product, or CuPy's element-wise operations), and a 'diag' / 'spherical' case the
tiled kernels, the per-row ones, and, from GEMM_MIN_D features, the product pass
(``_cuda.GEMM_DIAG_MAX_Q`` = ``DIAG_PRODUCTS_Q``); GPU_KERNELS_WAYS="fused,tiled"
runs only the ways named (elementwise, fused, tiled, untiled, products).
"""

import os
import sys
import time

import numpy as np

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "0")
sys.path.insert(0, os.path.dirname(__file__))

from numba import cuda  # noqa: E402

from fastgmm import _cuda  # noqa: E402
from fastgmm import _cuda_kernels as kern  # noqa: E402
from fastgmm._engine import CPUEngine  # noqa: E402
from fastgmm._estep import COV_CODES  # noqa: E402
from fastgmm._mstep import compute_precision_cholesky, estep_params  # noqa: E402

REPS = int(os.environ.get("GPU_KERNELS_REPS", "5"))
CASES = [(10_000_000, 8, 16, "full", "float32"), (10_000_000, 8, 16, "full", "float64"),
         (1_000_000, 64, 64, "diag", "float32")]


class Timed:
    """Wraps a kernel's launch configuration: each launch timed by CUDA events."""

    def __init__(self, name, times):
        self.name, self.times = name, times

    def wrap(self, configured):
        def launch(*args):
            s, e = cuda.event(), cuda.event()
            s.record()
            configured(*args)
            e.record()
            e.synchronize()
            self.times.setdefault(self.name, []).append(s.elapsed_time(e))
        return launch


def instrument(times):
    """Replace the kernels in ``_cuda_kernels`` by timed ones (returns an undo)."""
    saved = {}
    for name in ("lp_diag", "finish_rows", "sums_diag", "reduce_tiles", "tile_sums",
                 "whiten_rows"):
        if not hasattr(kern, name):
            continue
        k = getattr(kern, name)
        saved[name] = k

        class Proxy:
            def __init__(self, k, name):
                self.k, self.name = k, name

            def __getitem__(self, conf):
                return Timed(self.name, times).wrap(self.k[conf])
        setattr(kern, name, Proxy(k, name))
    for name in ("estep", "accum"):
        f = getattr(kern, name)
        saved[name] = f

        def make(f, name):
            def build(*a):
                k = f(*a)

                class Proxy:
                    def __getitem__(self, conf):
                        return Timed(name, times).wrap(k[conf])
                return Proxy()
            return build
        setattr(kern, name, make(f, name))

    def undo():
        for name, v in saved.items():
            setattr(kern, name, v)
    return undo


def params(X, K, ct):
    rng = np.random.RandomState(0)
    n, d = X.shape
    means = X[rng.choice(n, K, replace=False)].astype(np.float64)
    var = np.var(X[:10000].astype(np.float64), axis=0) + 1e-3
    cov = {"full": np.array([np.diag(var)] * K), "tied": np.diag(var),
           "diag": np.array([var] * K), "spherical": np.full(K, var.mean())}[ct]
    pc = compute_precision_cholesky(cov, ct)
    return estep_params(np.full(K, 1.0 / K), means, pc, COV_CODES[ct])


def rejit(name, blocks):
    """Kernel ``name`` compiled afresh, with launch bounds of ``blocks`` blocks an SM
    of BT x BT threads (0: none; the simulator takes none)."""
    bounds = {} if kern.SIMULATOR or not blocks else {
        "launch_bounds": (kern.BT * kern.BT, blocks)}
    setattr(kern, name, cuda.jit(**bounds)(getattr(kern, name).py_func))


def set_tiles(spec):
    """The tiled kernels' constants, set before their first (lazy) compilation."""
    bt, mt, ba, rs, dtile = (int(v) for v in spec.split(","))
    assert kern.TILE % dtile == 0
    kern.BT, kern.MT, kern.BA, kern.RS, kern.DTILE = bt, mt, ba, rs, dtile
    kern.BS = bt * mt
    kern.BS1 = kern.BS + 1
    rejit("sums_diag", 2)  # its bounds for the new block size


def set_launch_bounds(spec):
    for name, blocks in zip(("lp_diag", "sums_diag"), (int(v) for v in spec.split(","))):
        rejit(name, blocks)


def main():
    args = sys.argv[1:]
    tiled_only = "--tiled-only" in args
    args = [a for a in args if a != "--tiled-only"]
    opts = {}
    while args[:1] and args[0] in ("--tiles", "--lb"):
        opts[args[0]] = args[1]
        args = args[2:]
    # in this order: the constants, then the launch bounds
    if "--tiles" in opts:
        set_tiles(opts["--tiles"])
        print("tiles BT,MT,BA,RS,DTILE =", opts["--tiles"])
    if "--lb" in opts:
        set_launch_bounds(opts["--lb"])
        print("launch bounds (blocks an SM) lp_diag,sums_diag =", opts["--lb"])
    cases = CASES
    if args:
        cases = [(int(n), int(d), int(K), ct, dt) for n, d, K, ct, dt in
                 (a.split(",") for a in args)]
    for n, d, K, ct, dtype in cases:
        rng = np.random.RandomState(0)
        X = rng.standard_normal((n, d)).astype(dtype)
        eng = _cuda.CUDAEngine(X)
        ep = params(X, K, ct)
        eng.stats(ep)  # compilation
        ways = [("", {})]
        if not tiled_only and ct in ("diag", "spherical"):
            ways = [(" tiled", {}), (" untiled", {"TILED_DIAG": False})]
            if d >= _cuda.GEMM_MIN_D:
                ways.append((" products", {"GEMM_DIAG_MAX_Q": _cuda.DIAG_PRODUCTS_Q}))
        elif not tiled_only and ct == "full" and d >= _cuda.GEMM_MIN_D:
            ways = [(" elementwise", {"FUSED_FULL": False}), (" fused", {"FUSED_FULL": True})]
        only = os.environ.get("GPU_KERNELS_WAYS")  # e.g. "fused,tiled": those ways only
        if only:
            ways = [wp for wp in ways if wp[0].strip() in only.split(",")] or ways[:0]
        saved = {k: getattr(_cuda, k) for k in ("TILED_DIAG", "FUSED_FULL", "GEMM_DIAG_MAX_Q")}
        for way, patch in ways:
            for k, v in saved.items():
                setattr(_cuda, k, patch.get(k, v))
            eng.stats(ep)
            walls, times = [], {}
            for _ in range(REPS):
                cuda.synchronize()
                t = time.perf_counter()
                eng.stats(ep)
                cuda.synchronize()
                walls.append(time.perf_counter() - t)
            undo = instrument(times)
            try:
                for _ in range(REPS):
                    eng.stats(ep)
            finally:
                undo()
            label = f"{n} x {d} K{K} {ct} {dtype}{way}"
            origin = np.zeros(d)
            got, want = eng.stats(ep).about(origin, 1.0), CPUEngine(X).stats(ep).about(origin, 1.0)
            err = max(float(np.max(np.abs(getattr(got, f) - getattr(want, f))
                                   / (np.abs(getattr(want, f)) + 1e-300)))
                      for f in ("nk", "s1", "s2"))
            print(f"== {label}: pass {np.median(walls) * 1e3:.2f} ms (median of {REPS}); "
                  f"largest relative difference from the CPU engine {err:.1e}")
            for name, ts in times.items():
                per = len(ts) // REPS
                tot = np.median(np.add.reduceat(ts, np.arange(0, len(ts), per)))
                print(f"   {name:14s} {per:3d} launches a pass, {tot:8.3f} ms a pass")
        for k, v in saved.items():
            setattr(_cuda, k, v)


if __name__ == "__main__":
    main()
