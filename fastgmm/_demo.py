"""The demo: colour segmentation of a photo that scikit-learn ships, fitted by
fastgmm and by scikit-learn side by side.

    fastgmm demo [--image china.jpg] [--n-components 16] [--covariance-type full]
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


def add_arguments(parser):
    parser.add_argument("--image", default="china.jpg", choices=["china.jpg", "flower.jpg"],
                        help="the photo (default: %(default)s)")
    parser.add_argument("--n-components", type=int, default=16,
                        help="components (default: %(default)s)")
    parser.add_argument("--covariance-type", default="full",
                        choices=["full", "tied", "diag", "spherical"],
                        help="covariance type (default: %(default)s)")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                        help="the pixels' dtype (default: %(default)s)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of both fits (default: %(default)s)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastgmm demo", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args):
    from sklearn.metrics import adjusted_rand_score
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    import fastgmm

    X, what = _load_pixels(args.image)
    X = X.astype(args.dtype)
    kw = dict(n_components=args.n_components, covariance_type=args.covariance_type,
              random_state=args.random_state)
    print(f"fastgmm {fastgmm.__version__}: colour segmentation of {what}")
    print(f"GaussianMixture({', '.join(f'{k}={v!r}' for k, v in kw.items())}), {args.dtype}")

    # warm every kernel the timed call runs (the fit's passes and fit_predict's
    # labelling pass), on a slice of the same dtype, layout and width
    print("(compiling fastgmm's kernels, once per installation: about 10 s on 2 cores; "
          "later runs load them from the cache in well under a second)", flush=True)
    t = time.perf_counter()
    fastgmm.GaussianMixture(2, covariance_type=args.covariance_type,
                            random_state=0).fit_predict(X[:2000])
    warm = time.perf_counter() - t
    print(f"(kernels ready in {warm:.2f} s: compiled or loaded once per process, not timed)\n")

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
    print(_kmeans_start_line(X, args.n_components, args.random_state))
    return 0


def _kmeans_start_line(X, n_components, seed):
    """One line on the 'kmeans' start itself: how many pixels fastgmm's k-means
    labels otherwise than scikit-learn's KMeans with the same seed (as
    GaussianMixture draws it), and whether the k-means++ rows were the same.
    float32 is where the rows can part: scikit-learn's float32 k-means++ compares
    potentials that BLAS sums in an order fastgmm does not reproduce, so a draw
    can land on a neighbouring row."""
    from sklearn.cluster import KMeans, kmeans_plusplus

    from fastgmm._kmeans import column_mean, kmeans_labels, kmeans_plusplus as fg_plusplus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = KMeans(n_components, n_init=1, random_state=np.random.RandomState(seed)).fit(X)
        fg, _, _ = kmeans_labels(X, n_components, np.random.RandomState(seed))
        # the seeding alone, on the data centred as KMeans centres it
        _, sk_rows = kmeans_plusplus(X - X.mean(axis=0), n_components,
                                     random_state=np.random.RandomState(seed))
        fg_rows, _, _ = fg_plusplus(X, n_components, np.random.RandomState(seed), None,
                                    column_mean(X))
    differ = int(np.count_nonzero(sk.labels_ != fg))
    same_rows = np.array_equal(sk_rows, fg_rows)
    if differ == 0:
        return "  k-means start         the same labels as scikit-learn's KMeans for every pixel"
    if same_rows:
        why = "same k-means++ rows; ties in Lloyd's steps broken by rounding"
    else:
        why = (f"k-means++ picked another row from centre {int(np.argmax(sk_rows != fg_rows))} on"
               + (", scikit-learn's float32 BLAS sums of the potentials being in another order"
                  if X.dtype == np.float32 else ""))
    return (f"  k-means start         labels differ from scikit-learn's KMeans for {differ} pixels"
            f" ({differ / X.shape[0] * 100:.3f} %): {why}")

