"""Input checks, with scikit-learn's error classes and messages."""

import numbers

import numpy as np
from sklearn.utils import check_array


def _check_shape(param, param_shape, name):
    if param.shape != param_shape:
        raise ValueError(
            "The parameter '%s' should have the shape of %s, but got %s"
            % (name, param_shape, param.shape)
        )


def check_weights(weights, n_components):
    weights = check_array(weights, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(weights, (n_components,), "weights")
    if any(np.less(weights, 0.0)) or any(np.greater(weights, 1.0)):
        raise ValueError(
            "The parameter 'weights' should be in the range "
            "[0, 1], but got max value %.5f, min value %.5f"
            % (np.min(weights), np.max(weights))
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(float(np.abs(1.0 - np.sum(weights))), 0.0, atol=atol):
        raise ValueError(
            "The parameter 'weights' should be normalized, but got sum(weights) = %.5f"
            % np.sum(weights)
        )
    return weights


def check_means(means, n_components, n_features):
    means = check_array(means, dtype=[np.float64, np.float32], ensure_2d=False)
    _check_shape(means, (n_components, n_features), "means")
    return means


def _check_precision_positivity(precision, covariance_type):
    if np.any(np.less_equal(precision, 0.0)):
        raise ValueError("'%s precision' should be positive" % covariance_type)


def _check_precision_matrix(precision, covariance_type):
    if not (
        np.all(np.isclose(precision, precision.T))
        and np.all(np.linalg.eigvalsh(precision) > 0.0)
    ):
        raise ValueError(
            "'%s precision' should be symmetric, positive-definite" % covariance_type
        )


def check_precisions(precisions, covariance_type, n_components, n_features):
    precisions = check_array(
        precisions,
        dtype=[np.float64, np.float32],
        ensure_2d=False,
        allow_nd=covariance_type == "full",
    )
    shapes = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }
    _check_shape(precisions, shapes[covariance_type], "%s precision" % covariance_type)
    if covariance_type == "full":
        for k in range(precisions.shape[0]):
            _check_precision_matrix(precisions[k], covariance_type)
    elif covariance_type == "tied":
        _check_precision_matrix(precisions, covariance_type)
    else:
        _check_precision_positivity(precisions, covariance_type)
    return precisions


def check_sample_weight(sample_weight, n_samples, relative=True):
    """Non-negative float64 weights, one per row, not all zero, scaled to a mean
    of 1 (``_relative``) where ``relative`` (models whose fit only the weights'
    ratios change; a Bayesian mixture's prior weighs against their sum); None
    stays None.

    Messages as scikit-learn's ``_check_sample_weight`` gives them.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    else:
        sample_weight = check_array(
            sample_weight,
            accept_sparse=False,
            ensure_2d=False,
            dtype=np.float64,
            order="C",
            input_name="sample_weight",
        )
        if sample_weight.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got "
                f"{sample_weight.ndim}D array. Expected either a scalar value "
                f"or a 1D array of length {n_samples}."
            )
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                "sample_weight.shape == {}, expected {}!".format(
                    sample_weight.shape, (n_samples,)
                )
            )
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if np.all(sample_weight == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    return _relative(sample_weight) if relative else sample_weight


def _relative(sample_weight):
    """The weights scaled to a mean of 1 (a new array). Weights are relative (2 is
    a repeated row), so the scale must change nothing; without this, weights that
    sum to about 1e-12 met the ``10 * eps`` that nk carries, and weights near the
    largest float overflowed their sum. Dividing by the maximum first cannot
    overflow."""
    w = sample_weight / np.max(sample_weight)
    return w * (w.shape[0] / np.sum(w))
