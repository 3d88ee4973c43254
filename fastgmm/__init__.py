"""fastgmm: a drop-in, JIT-compiled GaussianMixture for scikit-learn users."""

from ._gaussian_mixture import GaussianMixture

__all__ = ["GaussianMixture"]
__version__ = "0.1.0"
