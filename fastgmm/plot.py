"""Plots of fitted mixtures (matplotlib, an optional extra: ``pip install
"fastgmm[plot]"``). Each function draws on ``ax`` (a new figure's axes by default)
and returns the axes.

- ``plot_ellipses``: each component's 1- and 2-standard-deviation ellipses over a
  scatter of the data, on two chosen features or on the data's first two
  principal axes (each covariance type projected as a d x d matrix: P S P^T);
- ``plot_criterion``: a ``GaussianMixtureIC``'s criterion against n_components,
  one line per covariance type, the winner marked;
- ``plot_lower_bound``: ``lower_bounds_`` per iteration.
"""

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _model(estimator):
    """The fitted mixture behind an estimator (a GaussianMixtureIC's winner)."""
    return getattr(estimator, "best_estimator_", estimator)


def component_covariances(estimator):
    """Each component's d x d covariance, whatever the covariance type."""
    m = _model(estimator)
    K, d = m.means_.shape
    cov = np.asarray(m.covariances_, dtype=np.float64)
    ct = m.covariance_type
    if ct == "full":
        return cov
    if ct == "tied":
        return np.broadcast_to(cov, (K, d, d)).copy()
    if ct == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)[None]


def projection(estimator, X=None, features=None):
    """The 2 x d projection of the plot: two unit feature vectors, or the first two
    principal axes of X (of the means where no X is given)."""
    m = _model(estimator)
    d = m.means_.shape[1]
    if features is not None:
        i, j = features
        P = np.zeros((2, d))
        P[0, i] = P[1, j] = 1.0
        return P
    if d == 1:
        raise ValueError("a one-feature model: nothing to project onto two axes")
    data = np.asarray(X if X is not None else m.means_, dtype=np.float64)
    centred = data - data.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if vt.shape[0] < 2:  # fewer points than two directions
        return np.eye(d)[:2]
    return vt[:2]


def ellipse_geometry(cov2, n_std):
    """Width, height (full axes) and angle (degrees) of the n_std ellipse of a 2 x 2
    covariance."""
    vals, vecs = np.linalg.eigh(cov2)
    vals = np.clip(vals, 0.0, None)
    major = vecs[:, 1]
    angle = np.degrees(np.arctan2(major[1], major[0]))
    return 2 * n_std * np.sqrt(vals[1]), 2 * n_std * np.sqrt(vals[0]), angle


def plot_ellipses(estimator, X=None, features=None, ax=None, n_std=(1.0, 2.0),
                  max_points=20_000, random_state=0):
    """The components as ellipses over the data (a sample of ``max_points`` rows)."""
    from matplotlib.patches import Ellipse

    ax = _axes(ax)
    m = _model(estimator)
    P = projection(m, X, features)
    means2 = np.asarray(m.means_, dtype=np.float64) @ P.T
    covs2 = P @ component_covariances(m) @ P.T
    if X is not None:
        Xs = np.asarray(X)
        if Xs.shape[0] > max_points:
            rows = np.sort(np.random.default_rng(random_state).choice(
                Xs.shape[0], max_points, replace=False))
            Xs = Xs[rows]
        Y = np.asarray(Xs, dtype=np.float64) @ P.T
        ax.scatter(Y[:, 0], Y[:, 1], s=2, c="0.6", alpha=0.5, linewidths=0)
    colours = [f"C{k % 10}" for k in range(len(means2))]
    for k, (mu, c) in enumerate(zip(means2, covs2)):
        for s in n_std:
            w, h, angle = ellipse_geometry(c, s)
            ax.add_patch(Ellipse(mu, w, h, angle=angle, fill=False, lw=1.5 if s == 1 else 0.8,
                                 ls="-" if s == 1 else "--", color=colours[k]))
        ax.plot(*mu, "+", color=colours[k], ms=8)
    if features is not None:
        ax.set_xlabel(f"feature {features[0]}")
        ax.set_ylabel(f"feature {features[1]}")
    else:
        ax.set_xlabel("first principal axis")
        ax.set_ylabel("second principal axis")
    ax.set_title(f"{type(m).__name__}: {len(means2)} components, {m.covariance_type}")
    ax.autoscale_view()
    return ax


def plot_criterion(ic, ax=None):
    """A GaussianMixtureIC's criterion against n_components, per covariance type."""
    ax = _axes(ax)
    r, crit = ic.results_, ic.criterion
    for t in dict.fromkeys(r["covariance_type"]):
        sel = r["covariance_type"] == t
        ax.plot(r["n_components"][sel], r[crit][sel], "o-", label=t, ms=4)
    ax.plot([ic.n_components_], [ic.criterion_], "*", color="k", ms=14,
            label=f"best: {ic.n_components_}, {ic.covariance_type_}")
    ax.set_xlabel("n_components")
    ax.set_ylabel(f"{crit.upper()} (lower is better)")
    ax.legend()
    return ax


def plot_lower_bound(estimator, ax=None):
    """The lower bound after each EM iteration of the kept run."""
    ax = _axes(ax)
    m = _model(estimator)
    lb = np.ravel(np.asarray(m.lower_bounds_, dtype=np.float64))
    ax.plot(np.arange(1, lb.size + 1), lb, "o-", ms=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("lower bound")
    ax.set_title(f"{type(m).__name__}: {'converged' if m.converged_ else 'not converged'} "
                 f"after {m.n_iter_} iterations")
    return ax
