"""The plots' geometry (what is drawn, not pixels)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from fastgmm import GaussianMixture, GaussianMixtureIC  # noqa: E402
from fastgmm import plot  # noqa: E402

from conftest import make_data  # noqa: E402


def _model(covariance_type, covariances, means):
    X = make_data(n=400, d=means.shape[1], K=means.shape[0], seed=0)
    gm = GaussianMixture(means.shape[0], covariance_type=covariance_type,
                         random_state=0).fit(X)
    gm.means_, gm.covariances_ = means, covariances
    return gm


def _ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def test_a_known_full_covariance_gives_its_ellipse():
    theta = np.radians(30.0)
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = R @ np.diag([4.0, 1.0]) @ R.T
    gm = _model("full", np.stack([cov, np.eye(2)]), np.array([[1.0, 2.0], [5.0, 5.0]]))
    ax = plot.plot_ellipses(gm, features=(0, 1))
    one, two = _ellipses(ax)[:2]  # component 0: 1 and 2 standard deviations
    assert one.center == pytest.approx((1.0, 2.0))
    assert (one.width, one.height) == pytest.approx((4.0, 2.0))
    assert (two.width, two.height) == pytest.approx((8.0, 4.0))
    assert one.angle % 180 == pytest.approx(30.0)
    plt.close("all")


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_each_covariance_type_is_projected(covariance_type):
    means = np.array([[0.0, 0.0, 0.0], [3.0, 1.0, -2.0]])
    cov = {"tied": np.diag([9.0, 4.0, 1.0]), "diag": np.array([[9.0, 4.0, 1.0]] * 2),
           "spherical": np.array([2.25, 2.25])}[covariance_type]
    gm = _model(covariance_type, cov, means)
    ax = plot.plot_ellipses(gm, features=(0, 2))
    e = _ellipses(ax)[0]
    if covariance_type == "spherical":
        assert (e.width, e.height) == pytest.approx((3.0, 3.0))
    else:  # features 0 and 2: variances 9 and 1, axis-aligned
        assert (e.width, e.height) == pytest.approx((6.0, 2.0))
        assert e.angle % 180 == pytest.approx(0.0, abs=1e-9)
    # on the principal axes: orthonormal directions keep a sphere's radius
    if covariance_type == "spherical":
        X = make_data(n=300, d=3, K=2, seed=3)
        e = _ellipses(plot.plot_ellipses(gm, X))[0]
        assert (e.width, e.height) == pytest.approx((3.0, 3.0))
    plt.close("all")


def test_criterion_and_lower_bound_plots_draw_the_results():
    X = make_data(n=600, d=2, K=3, seed=4)
    ic = GaussianMixtureIC(max_components=4, covariance_type=["full", "diag"],
                           random_state=0).fit(X)
    ax = plot.plot_criterion(ic)
    lines = {line.get_label(): line for line in ax.get_lines()}
    sel = ic.results_["covariance_type"] == "diag"
    np.testing.assert_array_equal(lines["diag"].get_ydata(), ic.results_["bic"][sel])
    best = [v for k, v in lines.items() if k.startswith("best")][0]
    assert best.get_ydata()[0] == ic.criterion_
    ax = plot.plot_lower_bound(ic)
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(),
                                  ic.best_estimator_.lower_bounds_)
    plt.close("all")
