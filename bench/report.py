"""Run the benchmarks and write the report: bench/results/REPORT.md and speedup.png.

    python bench/report.py            # everything (about 20 minutes on 2 cores)
    python bench/report.py --quick    # shapes shrunk 100x, to check the script itself
    python bench/report.py --peers-python /path/to/venv/bin/python   # peers in another venv

The report holds, from one run on one machine: the pytest-benchmark groups as a
table of times and speed-ups (scikit-learn / fastgmm), the peak memory of each
side's fit beyond the input, the machine's matrix-product rate and the GFLOP/s of
the large-d 'full' EM pass, the cold start (first compile and cache load), thread
scaling, and seconds per EM iteration against the CPU peers (``peers.py``: gmmx and
pomegranate, each library in a process of its own).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import sklearn

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, "
            f"numba {numba.__version__}, scikit-learn {sklearn.__version__}")


def run_benchmarks(quick, json_path, select):
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
           f"--benchmark-json={json_path}", "--benchmark-disable-gc"]
    env = dict(os.environ)
    if quick:
        env["FASTGMM_BENCH_QUICK"] = "1"
    if select:
        cmd += ["-k", select]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def table(json_path):
    data = json.loads(Path(json_path).read_text())
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        impl = b["params"]["impl"]
        groups[b["group"]][impl] = b["stats"]["min"]
    rows = []
    for g, t in groups.items():
        if "sklearn" in t and "fastgmm" in t:
            kind, shape, ct, dtype = g.split("|")
            rows.append((kind, shape, ct, dtype, t["sklearn"], t["fastgmm"],
                         t["sklearn"] / t["fastgmm"]))
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    lines = ["| benchmark | n x d, K | covariance | dtype | scikit-learn | fastgmm | speed-up |",
             "|---|---|---|---|---:|---:|---:|"]
    for kind, shape, ct, dtype, ts, tf, r in rows:
        lines.append(f"| {kind} | {shape} | {ct} | {dtype} | {_fmt(ts)} | {_fmt(tf)} | "
                     f"**{r:.1f}x** |")
    return rows, "\n".join(lines)


def _fmt(t):
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


MEMORY_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, warnings
    import numpy as np, psutil
    sys.path.insert(0, {bench!r})
    from _data import make_data
    impl, n, d, K = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    name = sys.argv[5]  # GaussianMixture or BayesianGaussianMixture
    if impl == "fastgmm":
        import fastgmm as lib
    else:
        import sklearn.mixture as lib
    Model = getattr(lib, name)
    GaussianMixture = lambda K, **kw: Model(n_components=K, **kw)
    warnings.simplefilter("ignore")
    X = make_data(n, d, K)
    GaussianMixture(2, max_iter=2).fit(X[:2000])  # compile / import everything first
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()
    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)
    th = threading.Thread(target=watch); th.start()
    GaussianMixture(K, random_state=0, max_iter=5, tol=0).fit(X)
    done.set(); th.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    print((peak[0] - base) / 2**20, X.nbytes / 2**20)
    """
)


def peak_memory(impl, n, d, K, model="GaussianMixture"):
    script = MEMORY_SCRIPT.format(bench=str(HERE))
    out = subprocess.run([sys.executable, "-c", script, impl, str(n), str(d), str(K), model],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    extra, data = (float(v) for v in out.stdout.split())
    return extra, data


def matmul_rate(dtype, size=4000):
    A = np.random.rand(size, size).astype(dtype)
    B = np.random.rand(size, size).astype(dtype)
    A @ B
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


def em_pass_time(n, d, K, dtype, n_jobs=None):
    """Seconds per EM pass: (fit with 6 iterations - fit with 1) / 5, same start."""
    import warnings

    sys.path.insert(0, str(HERE))
    from _data import make_data, start

    import fastgmm

    X = make_data(n, d, K, dtype)
    w, m, p = start(X, K, "full")
    times = {}
    for iters in (1, 6):
        gm = fastgmm.GaussianMixture(K, weights_init=w, means_init=m, precisions_init=p,
                                     max_iter=iters, tol=0, reg_covar=1e-3, n_jobs=n_jobs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(X[:2000])
            best = np.inf
            for _ in range(2):
                t = time.perf_counter()
                gm.fit(X)
                best = min(best, time.perf_counter() - t)
        times[iters] = best
    return (times[6] - times[1]) / 5


MEMMAP_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, warnings
    import numpy as np
    from fastgmm import GaussianMixture
    path, K, init = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    warnings.simplefilter("ignore")
    X = np.load(path, mmap_mode="r")
    GaussianMixture(2, max_iter=2).fit(np.asarray(X[:2000]))  # compile / load kernels first
    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    base = anon(); peak = [base]; done = threading.Event()
    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], anon()); time.sleep(0.005)
    th = threading.Thread(target=watch); th.start()
    t = time.perf_counter()
    GaussianMixture(K, covariance_type="diag", max_iter=3, tol=0, random_state=0,
                    init_params=init).fit(X)
    dt = time.perf_counter() - t
    done.set(); th.join()
    print(base / 2**20, peak[0] / 2**20, X.nbytes / 2**30, dt)
    """
)


def memmap_memory(n, d, K, inits=("random", "kmeans")):
    """Fit a memmap on disk (3 iterations) from each start: anonymous memory."""
    sys.path.insert(0, str(HERE))
    from _data import make_data

    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "results") as tmp:
        path = Path(tmp) / "X.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, d))
        step = 1_000_000
        for start in range(0, n, step):
            stop = min(n, start + step)
            mm[start:stop] = make_data(stop - start, d, K, seed=start)
        mm.flush()
        del mm
        res = {}
        for init in inits:
            out = subprocess.run([sys.executable, "-c", MEMMAP_SCRIPT, str(path), str(K), init],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            res[init] = tuple(float(v) for v in out.stdout.split())
    return res


DASK_SCRIPT = textwrap.dedent(
    """
    import sys, time, warnings
    import numpy as np
    sys.path.insert(0, {bench!r})
    from _data import make_data, start
    import dask.array as da, distributed
    import fastgmm, fastgmm.dask
    warnings.simplefilter("ignore")
    n, d, K, chunk = (int(v) for v in sys.argv[1:5])
    X = make_data(n, d, K)
    w, m, p = start(X, K, "full")
    def fit(cls, data, iters):
        gm = cls(K, weights_init=w, means_init=m, precisions_init=p, max_iter=iters, tol=0)
        t = time.perf_counter(); gm.fit(data); return time.perf_counter() - t
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        Xd = da.from_array(X, chunks=(chunk, d)).persist()
        fit(fastgmm.dask.GaussianMixture, Xd, 1); fit(fastgmm.GaussianMixture, X, 1)
        per = {{}}
        for name, cls, data in (("memory", fastgmm.GaussianMixture, X),
                                ("dask", fastgmm.dask.GaussianMixture, Xd)):
            per[name] = (min(fit(cls, data, 6) for _ in range(2))
                         - min(fit(cls, data, 1) for _ in range(2))) / 5
    print(per["memory"], per["dask"], len(Xd.chunks[0]))
    """
)


def dask_overhead(n, d, K, chunk):
    out = subprocess.run([sys.executable, "-c", DASK_SCRIPT.format(bench=str(HERE)), str(n),
                          str(d), str(K), str(chunk)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    mem, dist, nchunks = out.stdout.split()
    return float(mem), float(dist), int(nchunks)


COLD_SCRIPT = ("import time; t = time.perf_counter(); import numpy as np; import fastgmm; "
               "X = np.random.RandomState(0).normal(size=(1000, 2)); "
               "fastgmm.GaussianMixture(3, random_state=0).fit(X); "
               "print(time.perf_counter() - t)")


def cold_start():
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        first = float(subprocess.run([sys.executable, "-c", COLD_SCRIPT], env=env, text=True,
                                     capture_output=True, check=True).stdout)
        warm = min(float(subprocess.run([sys.executable, "-c", COLD_SCRIPT], env=env,
                                        text=True, capture_output=True, check=True).stdout)
                   for _ in range(3))
    return first, warm


def chart(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = [r for r in rows if r[0].startswith("fit") and not r[0].startswith("fit-default")]
    shapes = sorted({r[1] for r in fits}, key=lambda s: [int("".join(c for c in p if c.isdigit()) or 0) for p in s.split("x")])
    series = sorted({(r[2], r[3]) for r in fits})
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(1, len(series))
    for j, (ct, dtype) in enumerate(series):
        vals = [next((r[6] for r in fits if r[1] == s and r[2] == ct and r[3] == dtype), 0)
                for s in shapes]
        ax.bar(np.arange(len(shapes)) + j * width, vals, width, label=f"{ct} {dtype}")
    ax.set_xticks(np.arange(len(shapes)) + 0.4 - width / 2)
    ax.set_xticklabels(shapes)
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_ylabel("speed-up over scikit-learn (x, log scale)")
    ax.set_title("fastgmm fit, fixed iterations from the same start")
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-k", dest="select", default="")
    parser.add_argument("--skip-pytest", action="store_true",
                        help="reuse bench/results/benchmarks.json")
    parser.add_argument("--peers-python", default=sys.executable,
                        help="the interpreter that has the 'peers' extra (gmmx, pomegranate) "
                             "and fastgmm installed; bench/peers.py runs under it")
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    json_path = RESULTS / "benchmarks.json"
    if not args.skip_pytest:
        run_benchmarks(args.quick, json_path, args.select)
    rows, md = table(json_path)
    scale = 100 if args.quick else 1

    out = [f"# fastgmm benchmark report\n\nMachine: {machine()}\n",
           "Times are the best of the rounds run (scikit-learn's slowest cases run once);"
           " speed-up = scikit-learn / fastgmm, both measured in the same run.\n", md, ""]

    n_mem = 1_000_000 // scale
    mem = {impl: peak_memory(impl, n_mem, 8, 16) for impl in ("sklearn", "fastgmm")}
    data_mb = mem["fastgmm"][1]
    out += [f"## Peak memory of `fit` beyond the input ({n_mem} x 8, K = 16, data "
            f"{data_mb:.0f} MiB, 5 iterations)\n",
            "| | extra resident memory |", "|---|---:|"]
    for impl in ("sklearn", "fastgmm"):
        out.append(f"| {impl} | {mem[impl][0]:.0f} MiB |")
    out.append(f"\nfastgmm uses {mem['fastgmm'][0] / max(mem['sklearn'][0], 1e-9):.3f} of"
               " scikit-learn's extra memory.\n")
    bmem = {impl: peak_memory(impl, n_mem, 8, 16, "BayesianGaussianMixture")
            for impl in ("sklearn", "fastgmm")}
    out += [f"## Peak memory of BayesianGaussianMixture `fit` beyond the input ({n_mem} x 8,"
            " K = 16, 5 iterations)\n", "| | extra resident memory |", "|---|---:|"]
    for impl in ("sklearn", "fastgmm"):
        out.append(f"| {impl} | {bmem[impl][0]:.0f} MiB |")
    out.append(f"\nfastgmm uses {bmem['fastgmm'][0] / max(bmem['sklearn'][0], 1e-9):.3f} of"
               " scikit-learn's extra memory.\n")

    r64, r32 = matmul_rate(np.float64), matmul_rate(np.float32)
    n_big = 200_000 // scale
    flops = 2 * n_big * 32 * 64**2
    t64 = em_pass_time(n_big, 64, 32, np.float64)
    t32 = em_pass_time(n_big, 64, 32, np.float32)
    out += ["## Large-d 'full' EM pass against the machine's matrix-product rate\n",
            f"Matrix product (4000 x 4000, all cores): {r64:.0f} GFLOP/s float64, "
            f"{r32:.0f} GFLOP/s float32.\n",
            f"| {n_big} x 64, K = 32, one EM pass | seconds | GFLOP/s (2 n K d^2 flops) |"
            " % of matrix-product rate |", "|---|---:|---:|---:|",
            f"| float64 | {t64:.3f} | {flops / t64 / 1e9:.1f} | {100 * flops / t64 / 1e9 / r64:.0f} % |",
            f"| float32 | {t32:.3f} | {flops / t32 / 1e9:.1f} | {100 * flops / t32 / 1e9 / r32:.0f} % |",
            f"\nfloat32 pass is {t64 / t32:.2f}x faster than float64.\n"]

    scaling = []
    for n, d, K in ((1_000_000 // scale, 8, 16), (n_big, 64, 32)):
        t1 = em_pass_time(n, d, K, np.float64, n_jobs=1)
        tall = em_pass_time(n, d, K, np.float64, n_jobs=None)
        scaling.append(f"| {n} x {d}, K = {K} | {t1:.3f} s | {tall:.3f} s | {t1 / tall:.2f}x |")
    out += ["## Thread scaling (one EM pass, full, float64)\n",
            f"| shape | 1 thread | {os.cpu_count()} threads | speed-up |", "|---|---:|---:|---:|",
            *scaling, ""]

    n_mm = 50_000_000 // scale
    mm = memmap_memory(n_mm, 8, 8)
    gib = next(iter(mm.values()))[2]
    out += [f"## Out-of-core: a {gib:.1f} GiB np.memmap ({n_mm} x 8 float64, K = 8, diag,"
            " 3 EM iterations)\n",
            "Anonymous memory (RssAnon: the mapped file aside), before the fit and at its peak:\n",
            "| start | before | peak | the fit's own | time |", "|---|---:|---:|---:|---:|"]
    for init, (base, peak, _, dt) in mm.items():
        out.append(f"| init_params='{init}' | {base:.0f} MiB | {peak:.0f} MiB | "
                   f"{peak - base:.0f} MiB | {dt:.1f} s |")
    out.append("")

    n_dk = 1_000_000 // scale
    mem_it, dask_it, nchunks = dask_overhead(n_dk, 8, 16, max(n_dk // 10, 1000))
    out += [f"## Dask: per-iteration cost of a 2-worker LocalCluster ({n_dk} x 8, K = 16, "
            f"full, {nchunks} chunks)\n",
            f"| | seconds per EM iteration |", "|---|---:|",
            f"| in memory (2 threads) | {mem_it:.3f} |",
            f"| LocalCluster, 2 workers x 1 thread | {dask_it:.3f} |",
            f"\nOverhead: {dask_it - mem_it:+.3f} s per iteration "
            f"({dask_it / mem_it:.2f}x).\n"]

    first, warm = cold_start()
    out += ["## Cold start\n",
            "A fresh process importing fastgmm and fitting 1000 x 2 with 3 components:\n",
            f"- empty kernel cache (the very first compile): {first:.1f} s",
            f"- warm on-disk cache: {warm:.2f} s\n"]

    cmd = [args.peers_python, str(HERE / "peers.py"), "--out", str(RESULTS / "peers")]
    subprocess.run(cmd + (["--quick"] if args.quick else []), check=True, cwd=ROOT)
    peers_md = (RESULTS / "peers.md").read_text()
    out += ["## Against the CPU peers (seconds per EM iteration, `bench/peers.py`)\n",
            peers_md]

    chart(rows, RESULTS / "speedup.png")
    out.append("![speed-up by shape](speedup.png)\n")
    (RESULTS / "REPORT.md").write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
