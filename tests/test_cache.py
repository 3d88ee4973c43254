"""The first call in a fresh process loads compiled kernels from the on-disk cache."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from fastgmm import GaussianMixture, _kernels
    X = np.random.RandomState(0).normal(size=(1000, 2)).astype(np.{dtype})
    gm = GaussianMixture(3, random_state=0, covariance_type="{ct}").fit(X)
    gm.predict_proba(X)
    misses = sum(len(k.stats.cache_misses) for k in (_kernels.stats_pass, _kernels.log_prob_pass))
    hits = sum(len(k.stats.cache_hits) for k in (_kernels.stats_pass, _kernels.log_prob_pass))
    print(misses, hits)
    """
)


def _run(dtype, ct):
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(dtype=dtype, ct=ct)],
                         capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


def test_second_process_does_not_recompile():
    _run("float32", "diag")  # compiles (or loads) what this needs and fills the cache
    misses, hits = _run("float32", "diag")
    assert misses == 0 and hits >= 2


def test_core_package_does_not_import_dask():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, fastgmm; print(any(m == 'dask' or "
         "m.startswith('dask.') or m == 'distributed' for m in sys.modules))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def test_the_tiled_path_compiles_no_other_variant():
    """Every fit of float64 C-ordered data runs the same stats_pass variants,
    whatever the path: the tiled 'full' path's shift was Fortran-ordered (a copy
    of a broadcast), and its first fit compiled two more variants (18 s).
    In a fresh process, so that no earlier test has added them already."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import numpy as np
        from fastgmm import GaussianMixture, _kernels
        rng = np.random.RandomState(0)
        GaussianMixture(3, random_state=0).fit(rng.randn(600, 3))
        before = len(_kernels.stats_pass.signatures)
        GaussianMixture(3, random_state=0).fit(rng.randn(600, 20))
        GaussianMixture(1, random_state=0).fit(rng.randn(600, 20))
        print(before, len(_kernels.stats_pass.signatures))
    """)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split())
    assert after == before
