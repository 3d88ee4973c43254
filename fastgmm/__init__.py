"""fastgmm: drop-in, JIT-compiled GaussianMixture and BayesianGaussianMixture for scikit-learn users."""

from ._bayesian_mixture import BayesianGaussianMixture
from ._gaussian_mixture import GaussianMixture
from ._io import load, save
from ._model_selection import GaussianMixtureIC

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "GaussianMixtureIC", "load", "save"]
__version__ = "0.1.0"
