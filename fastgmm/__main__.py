"""The demo: colour segmentation of a photo that scikit-learn ships, fitted by
fastgmm and by scikit-learn side by side.

    python -m fastgmm [--image china.jpg] [--n-components 16] [--covariance-type full]
"""

import argparse
import sys
import time
import warnings

import numpy as np


def _load_pixels(name):
    from sklearn.datasets import load_sample_image

    try:
        image = load_sample_image(name)
    except ImportError:  # scikit-learn needs Pillow to read its photos
        print("Pillow is not installed: falling back to generated data "
              "(pip install 'fastgmm[demo]' for the photo)", file=sys.stderr)
        from sklearn.datasets import make_blobs

        X, _ = make_blobs(n_samples=273_280, n_features=3, centers=16, random_state=0)
        return X, "make_blobs 273280 x 3"
    X = image.reshape(-1, 3).astype(np.float64) / 255.0
    return X, f"{name} pixels, {X.shape[0]} x 3 (RGB in [0, 1])"


def _match_components(means_a, means_b):
    """Permutation of b's components nearest a's (Hungarian on mean distances)."""
    from scipy.optimize import linear_sum_assignment

    cost = ((means_a[:, None, :] - means_b[None, :, :]) ** 2).sum(-1)
    _, perm = linear_sum_assignment(cost)
    return perm


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastgmm", description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="china.jpg", choices=["china.jpg", "flower.jpg"])
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--covariance-type", default="full",
                        choices=["full", "tied", "diag", "spherical"])
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    import fastgmm

    X, what = _load_pixels(args.image)
    X = X.astype(args.dtype)
    kw = dict(n_components=args.n_components, covariance_type=args.covariance_type,
              random_state=args.random_state)
    print(f"fastgmm {fastgmm.__version__}: colour segmentation of {what}")
    print(f"GaussianMixture({', '.join(f'{k}={v!r}' for k, v in kw.items())}), {args.dtype}")

    t = time.perf_counter()
    fastgmm.GaussianMixture(2, covariance_type=args.covariance_type).fit(X[:500])
    warm = time.perf_counter() - t
    print(f"(kernel compile or cache load, once per process: {warm:.2f} s)\n")

    rows = []
    for name, cls in (("fastgmm", fastgmm.GaussianMixture), ("scikit-learn", SkGaussianMixture)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            gm = cls(**kw)
            labels = gm.fit_predict(X)
            rows.append((name, time.perf_counter() - t, gm, labels))

    (_, t_fg, fg, lab_fg), (_, t_sk, sk, lab_sk) = rows
    perm = _match_components(fg.means_, sk.means_)
    print(f"{'':14}{'fit time':>10}{'iterations':>12}{'log-likelihood':>16}")
    for name, t, gm, _ in rows:
        print(f"{name:14}{t:9.2f}s{gm.n_iter_:12d}{gm.lower_bound_:16.6f}")
    print(f"\nspeed-up: {t_sk / t_fg:.1f}x")
    print("agreement:")
    print(f"  same label for        {np.mean(perm[lab_fg] == lab_sk) * 100:.2f} % of pixels"
          f" (adjusted Rand index {adjusted_rand_score(lab_fg, lab_sk):.6f})")
    print(f"  largest |means diff|  {np.abs(fg.means_ - sk.means_[perm]).max():.2e}")
    print(f"  |log-likelihood diff| {abs(fg.lower_bound_ - sk.lower_bound_):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
