"""fastgmm: drop-in, JIT-compiled GaussianMixture and BayesianGaussianMixture for scikit-learn users."""

from ._bayesian_mixture import BayesianGaussianMixture
from ._gaussian_mixture import GaussianMixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture"]
__version__ = "0.1.0"
