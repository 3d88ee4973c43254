"""fastgmm: a drop-in, JIT-compiled GaussianMixture for scikit-learn users."""

from ._threading_layer import load_tbb as _load_tbb

_load_tbb()  # before any kernel runs: Numba then picks its fork-safe TBB layer

from ._gaussian_mixture import GaussianMixture  # noqa: E402

__all__ = ["GaussianMixture"]
__version__ = "0.1.0"
