"""Compilation: kernels load from the on-disk cache in a second process, and a call
compiles only what it runs (one covariance type, one mode, one path)."""

import subprocess
import sys
import textwrap

KERNELS = """
    import numba
    from fastgmm import (_accumulate, _estep, _kmeans_kernels, _lloyd_kernels, _mstep, _numba,
                         _variational)

    def kernels():
        out = (list(_estep._KERNELS.values()) + list(_accumulate._KERNELS.values())
               + list(_lloyd_kernels._LLOYD.values()))
        for mod in (_estep, _accumulate, _kmeans_kernels, _lloyd_kernels, _mstep, _numba,
                    _variational):
            out += [v for v in vars(mod).values()
                    if isinstance(v, numba.core.registry.CPUDispatcher)]
        return out
"""


def _run(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(KERNELS)
                          + textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


FIT = """
    import numpy as np
    from fastgmm import GaussianMixture
    X = np.random.RandomState(0).normal(size=(1000, 2)).astype(np.{dtype})
    gm = GaussianMixture(3, random_state=0, covariance_type="{ct}").fit(X)
    gm.predict_proba(X)
    misses = sum(len(k.stats.cache_misses) for k in kernels())
    hits = sum(len(k.stats.cache_hits) for k in kernels())
    print(misses, hits)
"""


def test_second_process_does_not_recompile():
    _run(FIT.format(dtype="float32", ct="diag"))  # compiles what this needs, fills the cache
    misses, hits = map(int, _run(FIT.format(dtype="float32", ct="diag")))
    assert misses == 0 and hits >= 4


def test_second_process_does_not_recompile_the_bayesian_mixture():
    """The variational arithmetic (``_variational``: compiled in a builder, calling
    ``_mstep``) loads from the cache too: a helper built in that builder without
    its own cache once made every process compile it again (1.5 s)."""
    code = """
        import numpy as np
        from fastgmm import BayesianGaussianMixture
        X = np.random.RandomState(0).normal(size=(1000, 2))
        BayesianGaussianMixture(n_components=3, random_state=0, max_iter=3).fit(X).predict(X)
        misses = sum(len(k.stats.cache_misses) for k in kernels())
        hits = len(_variational.vb_mstep.stats.cache_hits)
        print(misses, hits)
    """
    _run(code)
    misses, hits = map(int, _run(code))
    assert misses == 0 and hits >= 1


def test_a_fit_compiles_only_its_covariance_type_and_path():
    """A 'full' fit at d = 2 and its predictions: nothing of 'tied', 'diag', the
    tiled path or the given-responsibilities mode is compiled (or loaded)."""
    out = _run("""
        import numpy as np
        from fastgmm import GaussianMixture
        X = np.random.RandomState(0).normal(size=(1000, 2))
        gm = GaussianMixture(3, random_state=0).fit(X)
        gm.predict(X), gm.predict_proba(X), gm.score_samples(X)
        unused = [_estep.block_log_prob_tied, _estep.block_log_prob_diag,
                  _estep.block_log_prob_tiles, _estep.whitened_chunk,
                  _accumulate._block_accumulate_diag, _accumulate._labels_tied,
                  _accumulate._block_accumulate_whitened, _accumulate.whitened_to_shift,
                  _accumulate._block_accumulate_tiles]
        used = [_estep.block_log_prob_full, _accumulate._block_accumulate_full,
                _accumulate._labels_rows]
        print(sum(len(k.stats.cache_hits) + len(k.stats.cache_misses) for k in unused))
        print(len(_accumulate._KERNELS), len(_estep._KERNELS))
    """)
    assert out == ["0", "2", "1"]  # EM and labels statistics; one log-prob pass


def test_core_package_does_not_import_dask():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, fastgmm; print(any(m == 'dask' or "
         "m.startswith('dask.') or m == 'distributed' for m in sys.modules))"],
        capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_tiled_path_compiles_no_other_variant():
    """Every tiled fit of float64 C-ordered data runs one variant of each pass,
    whatever K: the tiled shift was once Fortran-ordered (a copy of a broadcast),
    and a first fit compiled more variants (18 s)."""
    out = _run("""
        import numpy as np
        from fastgmm import GaussianMixture
        rng = np.random.RandomState(0)
        GaussianMixture(3, random_state=0).fit(rng.randn(600, 20))
        GaussianMixture(1, random_state=0).fit(rng.randn(600, 20))
        print(*sorted(len(k.signatures) for k in _accumulate._KERNELS.values()))
    """)
    assert out == ["1", "1"]


def test_an_edit_of_a_helpers_file_recompiles_the_passes_that_call_it(tmp_path):
    """Numba's cache checks only the file of the function it loads: after an edit
    of _estep.py (the helpers) a cached statistics pass of _accumulate.py still ran
    the old helpers. The passes carry a digest of the kernel files in their
    closures: in a copy of the package, a comment added to _estep.py makes the next
    process compile the statistics pass again instead of loading it."""
    import shutil
    from pathlib import Path

    import fastgmm

    pkg = tmp_path / "fastgmm"
    shutil.copytree(Path(fastgmm.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        import numpy as np
        import fastgmm
        assert fastgmm.__file__.startswith(%r)
        from fastgmm import _accumulate
        X = np.random.RandomState(0).normal(size=(600, 2))
        fastgmm.GaussianMixture(2, covariance_type="diag", init_params="random",
                                random_state=0, max_iter=2).fit(X)
        k = _accumulate._KERNELS[(2, False, 0, 0)]
        print(len(k.stats.cache_misses), len(k.stats.cache_hits))
    """ % (str(tmp_path), str(tmp_path)))

    def run():
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", code],
                             capture_output=True, text=True, timeout=600,
                             env={**__import__("os").environ, "NUMBA_CACHE_DIR": ""})
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout.split()

    assert run() == ["1", "0"]  # compiled, cached
    assert run() == ["0", "1"]  # loaded
    estep = pkg / "_estep.py"
    estep.write_text(estep.read_text() + "\n# an edit\n")
    assert run() == ["1", "0"]  # compiled again
