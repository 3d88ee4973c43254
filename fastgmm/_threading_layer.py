"""Make Numba's fork-safe TBB threading layer loadable.

Numba picks its threading layer at the first parallel launch, trying TBB, then
OpenMP, then its workqueue. GNU OpenMP is not fork-safe: after a fit in the
parent, a ``fork`` child (``multiprocessing``'s default start method on Linux
before Python 3.14) that fitted was killed ("fork() called from a process
already using GNU OpenMP") and a ``Pool.map`` then hung. The workqueue layer is
fork-safe but aborts when two Python threads launch kernels at once. TBB is both
fork-safe and thread-safe, and fastgmm depends on the ``tbb`` wheel; but pip
puts ``libtbb.so.12`` in ``<prefix>/lib``, where the dynamic loader does not
look, so Numba would fall back to OpenMP. Loading that library by its path
first lets Numba's own choice find it.

Nothing is loaded where the user chose a layer that is not TBB (``omp`` or
``workqueue`` in ``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``;
Numba's ``safe``, ``forksafe`` and ``threadsafe`` try TBB first and get it) or
where Numba already launched its threads.
"""

import ctypes
import os
import sys


def _tbb_library_paths():
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        files = distribution("tbb").files or []
        for f in files:
            if f.name.startswith("libtbb.so.12"):
                yield os.path.realpath(f.locate())
    except (ImportError, PackageNotFoundError):
        pass
    for prefix in (sys.prefix, sys.base_prefix):
        yield os.path.join(prefix, "lib", "libtbb.so.12")


def load_tbb():
    """Load ``libtbb.so.12`` globally where Numba has not chosen a layer yet.
    Returns whether it is loaded (or was never needed)."""
    if not sys.platform.startswith("linux"):
        return False
    import numba
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", False):
        return False  # the layer is chosen for this process
    if str(numba.config.THREADING_LAYER) not in ("default", "safe", "forksafe", "threadsafe",
                                                 "tbb"):
        return False  # the user chose a layer that is not TBB and does not try it first
    for path in _tbb_library_paths():
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                continue
    return False
