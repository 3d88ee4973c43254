"""The ``fastgmm`` command line: fit, predict, score, plot, demo.

Bad input (a missing file, an unreadable format, NaN in the data, the wrong
number of columns for a model) gets one line on stderr and exit status 2,
never a traceback.
"""

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

from ._model_selection import COV_TYPES


class CLIError(Exception):
    """A user error: one line, exit status 2."""


# ----------------------------------------------------------------- data
def _split_columns(text):
    return [c.strip() for c in text.split(",") if c.strip()]


def _resolve(path, names, spec):
    """A column by header name or 0-based index (negative from the end)."""
    if spec in names:
        return names.index(spec)
    try:
        j = int(spec)
    except ValueError:
        raise CLIError(f"{path}: no column {spec!r} (columns: {', '.join(names)})") from None
    if not -len(names) <= j < len(names):
        raise CLIError(f"{path}: no column {spec!r}: it has {len(names)} columns")
    return j % len(names)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_csv_table(path, sep):
    """Header names (or indices) and rows of strings; a header row is detected (a
    row with a field that is not a number), a byte-order mark skipped, and an empty
    last field on every row (trailing separators) dropped."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, delimiter=sep) if r]
    except UnicodeDecodeError:
        raise CLIError(f"{path}: not a text file") from None
    except csv.Error as e:
        raise CLIError(f"{path}: not readable as {'TSV' if sep == chr(9) else 'CSV'} ({e})") \
            from None
    if rows and all(r[-1].strip() == "" for r in rows) and all(len(r) > 1 for r in rows):
        rows = [r[:-1] for r in rows]
    if not rows:
        raise CLIError(f"{path}: no rows")
    header = None
    if not all(_is_number(v) for v in rows[0]):
        header, rows = [h.strip() for h in rows[0]], rows[1:]
    width = len(header) if header is not None else len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise CLIError(f"{path}: data row {i + 1} has {len(r)} fields, expected {width}")
    if not rows:
        raise CLIError(f"{path}: a header and no data")
    return header or [str(i) for i in range(width)], rows


def load_data(path, columns=None, weight_column=None):
    """X (float64, or a .npy's own float dtype) and the weights' column, from .npy,
    .csv, .tsv or .parquet. ``columns`` and ``weight_column`` name header columns or
    0-based indices of the file's columns; by default every column but the
    weights'."""
    path = Path(path)
    if not path.exists():
        raise CLIError(f"{path}: no such file")
    if path.is_dir():
        raise CLIError(f"{path}: a directory, not a data file")
    suffix = path.suffix.lower()
    cols = None if columns is None else _split_columns(columns)
    if suffix == ".npy":
        try:
            A = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file
            raise CLIError(f"{path}: not a readable .npy file ({type(e).__name__}: {e})") \
                from None
        if A.ndim != 2:
            raise CLIError(f"{path}: a {A.ndim}-D array; fastgmm reads 2-D data")
        if A.dtype.kind not in "iuf":
            raise CLIError(f"{path}: dtype {A.dtype}; fastgmm reads real numbers")
        names = [str(i) for i in range(A.shape[1])]
        table = lambda idx: np.asarray(A[:, idx])  # noqa: E731
    elif suffix in (".csv", ".tsv", ".txt"):
        names, rows = _read_csv_table(path, "\t" if suffix == ".tsv" else ",")

        def table(idx):
            bad = [names[j] for j in idx if not all(_is_number(r[j]) for r in rows)]
            if bad:
                raise CLIError(f"{path}: non-numeric column(s) {', '.join(bad)}; choose "
                               "numeric ones with --columns")
            return np.array([[float(r[j]) for j in idx] for r in rows], dtype=np.float64)
    elif suffix == ".parquet":
        try:
            import pandas as pd

            frame = pd.read_parquet(path)
        except ImportError:
            raise CLIError("reading .parquet needs pandas and pyarrow "
                           "(pip install 'fastgmm[cli]')") from None
        except Exception as e:  # noqa: BLE001 - any unreadable file
            raise CLIError(f"{path}: not a readable .parquet file ({type(e).__name__})") \
                from None
        names = [str(c) for c in frame.columns]

        def table(idx):
            bad = [names[j] for j in idx if not np.issubdtype(frame.iloc[:, j].dtype, np.number)]
            if bad:
                raise CLIError(f"{path}: non-numeric column(s) {', '.join(bad)}; choose "
                               "numeric ones with --columns")
            return frame.iloc[:, idx].to_numpy(dtype=np.float64)
    else:
        raise CLIError(f"{path}: unknown format {suffix or '(no suffix)'}; "
                       "fastgmm reads .npy, .csv, .tsv and .parquet")
    wj = None if weight_column is None else _resolve(path, names, weight_column)
    if cols is not None:
        idx = [_resolve(path, names, c) for c in cols]
        if wj is not None and wj in idx:
            raise CLIError(f"{path}: column {names[wj]!r} is both a feature and the weights")
    else:
        idx = [j for j in range(len(names)) if j != wj]
    if not idx:
        raise CLIError(f"{path}: no feature column left")
    X = table(idx)
    weights = None if wj is None else np.asarray(table([wj])[:, 0], dtype=np.float64)
    if X.shape[0] == 0:
        raise CLIError(f"{path}: no data")
    if not np.all(np.isfinite(X)):
        raise CLIError(f"{path}: the data contains NaN or infinity")
    return X, weights


def _write_output(path, array):
    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, array)
    elif path.suffix.lower() in (".csv", ".tsv"):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        fmt = "%d" if array.dtype.kind in "iu" else "%.10g"
        np.savetxt(path, np.atleast_2d(array.T).T, fmt=fmt, delimiter=sep)
    else:
        raise CLIError(f"{path}: write .npy, .csv or .tsv")


# ------------------------------------------------------------- progress
def _notice_first_compile(quiet, kernel="_accumulate._build_stats_chunks"):
    """A line before the first compilation: no cached copy of the command's main
    kernel (the fit's statistics pass, or the prediction pass) next to the package
    or in NUMBA_CACHE_DIR."""
    if quiet:
        return
    cache = os.environ.get("NUMBA_CACHE_DIR")
    where = Path(cache) if cache else Path(__file__).resolve().parent / "__pycache__"
    cached = where.exists() and any(where.rglob(f"{kernel}*.nbi"))
    if not cached:
        print("fastgmm: compiling kernels on first use (about 10 s on 2 cores; cached "
              "afterwards)", file=sys.stderr, flush=True)


def _parse_k(text):
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            lo, hi = int(a), int(b)
        else:
            lo = hi = int(text)
    except ValueError:
        raise CLIError(f"-k takes a number or a range A-B; got {text!r}") from None
    if lo < 1 or hi < lo:
        raise CLIError(f"-k: need 1 <= A <= B; got {text!r}")
    return lo, hi


def _parse_types(text):
    if text == "all":
        return list(COV_TYPES)
    types = _split_columns(text)
    bad = [t for t in types if t not in COV_TYPES]
    if bad or not types:
        raise CLIError(f"--covariance-type: unknown {', '.join(bad) or text!r} "
                       f"(one of {', '.join(COV_TYPES)}, a comma list, or all)")
    return types


# ------------------------------------------------------------- commands
def cmd_fit(args):
    import fastgmm

    lo, hi = _parse_k(args.k)
    types = _parse_types(args.covariance_type)
    X, w = load_data(args.data, args.columns, args.sample_weight)
    X = X.astype(args.dtype, copy=False)
    _notice_first_compile(args.quiet)
    common = dict(random_state=args.random_state, max_iter=args.max_iter, n_init=args.n_init)
    t0 = time.perf_counter()
    progress = not args.quiet and sys.stderr.isatty()
    if lo == hi and len(types) == 1:
        model = fastgmm.GaussianMixture(lo, covariance_type=types[0], **common)
        model.fit(X, sample_weight=w)
        elapsed = time.perf_counter() - t0
        print(f"GaussianMixture(n_components={lo}, covariance_type={types[0]!r}) on "
              f"{X.shape[0]} x {X.shape[1]} ({elapsed:.2f} s)")
        print(f"  converged {model.converged_} after {model.n_iter_} iterations; "
              f"mean log-likelihood {model.score(X, sample_weight=w):.6f}")
        print(f"  BIC {model.bic(X):.6f}   AIC {model.aic(X):.6f}")
        print("  component  weight    mean")
        for k in range(lo):
            mean = " ".join(f"{v:.4g}" for v in model.means_[k][:8])
            print(f"  {k:9d}  {model.weights_[k]:.4f}    {mean}"
                  + (" ..." if X.shape[1] > 8 else ""))
    else:
        model = fastgmm.GaussianMixtureIC(min_components=lo, max_components=hi,
                                          covariance_type=types, criterion=args.criterion,
                                          verbose=1 if progress else 0, **common)
        with contextlib.redirect_stdout(sys.stderr):
            model.fit(X, sample_weight=w)
        elapsed = time.perf_counter() - t0
        r = model.results_
        print(f"GaussianMixtureIC over n_components {lo}-{hi} x {', '.join(types)} on "
              f"{X.shape[0]} x {X.shape[1]} ({elapsed:.2f} s); lowest {args.criterion} "
              f"marked *")
        print(f"  {'n_components':>12} {'covariance':>10} {'bic':>14} {'aic':>14} {'icl':>14}"
              f" {'iterations':>10} {'converged':>9}")
        for i in range(len(r["bic"])):
            win = (r["n_components"][i] == model.n_components_
                   and r["covariance_type"][i] == model.covariance_type_)
            print(f"{'*' if win else ' '} {r['n_components'][i]:>12d} "
                  f"{r['covariance_type'][i]:>10} {r['bic'][i]:>14.4f} {r['aic'][i]:>14.4f} "
                  f"{r['icl'][i]:>14.4f} {r['n_iter'][i]:>10d} {str(r['converged'][i]):>9}")
        print(f"best: n_components={model.n_components_}, "
              f"covariance_type={model.covariance_type_!r}, {args.criterion}="
              f"{model.criterion_:.6f}")
    out = args.output or Path(args.data).with_suffix(".fgmm").name
    fastgmm.save(model, out)
    print(f"model written to {out}")
    return 0


def _load_model(path):
    import fastgmm

    if not Path(path).exists():
        raise CLIError(f"{path}: no such file")
    return fastgmm.load(path)


def _check_width(model, X, data):
    n_features = model.n_features_in_ if hasattr(model, "n_features_in_") else None
    if n_features is None:
        raise CLIError("the model file holds an unfitted model")
    if X.shape[1] != n_features:
        raise CLIError(f"{data}: {X.shape[1]} columns; the model was fitted on {n_features}")


def cmd_predict(args):
    model = _load_model(args.model)
    X, _ = load_data(args.data, args.columns)
    _check_width(model, X, args.data)
    _notice_first_compile(args.quiet, "_estep._build_log_prob_blocks")
    out = model.predict_proba(X) if args.proba else model.predict(X)
    if args.output:
        _write_output(args.output, out)
        print(f"{'probabilities' if args.proba else 'labels'} of {X.shape[0]} rows written to "
              f"{args.output}")
    else:
        np.savetxt(sys.stdout, np.atleast_2d(out.T).T,
                   fmt="%.6g" if args.proba else "%d", delimiter=",")
    return 0


def cmd_score(args):
    model = _load_model(args.model)
    X, w = load_data(args.data, args.columns, args.sample_weight)
    _check_width(model, X, args.data)
    _notice_first_compile(args.quiet, "_estep._build_log_prob_blocks")
    print(f"mean log-likelihood {model.score(X, sample_weight=w):.6f}")
    if hasattr(model, "bic"):
        print(f"BIC {model.bic(X):.6f}")
        print(f"AIC {model.aic(X):.6f}")
    return 0


def cmd_plot(args):
    try:
        from . import plot
    except ImportError:
        raise CLIError("plots need matplotlib (pip install 'fastgmm[plot]')") from None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = _load_model(args.model)
    kind = args.kind
    if kind is None:
        kind = ("ellipses" if args.data else
                "criterion" if hasattr(model, "results_") else "lower-bound")
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    if kind == "ellipses":
        X = None
        if args.data:
            X, _ = load_data(args.data, args.columns)
            _check_width(model, X, args.data)
        features = None
        if args.features is not None:
            try:
                features = [int(f) for f in _split_columns(args.features)]
            except ValueError:
                features = []
            d = model.n_features_in_
            if len(features) != 2 or not all(0 <= f < d for f in features):
                raise CLIError(f"--features takes two indices in 0..{d - 1}; got "
                               f"{args.features!r}")
        plot.plot_ellipses(model, X, features=features, ax=ax)
    elif kind == "criterion":
        if not hasattr(model, "results_"):
            raise CLIError("--kind criterion needs a model fitted with a range of -k")
        plot.plot_criterion(model, ax=ax)
    else:
        plot.plot_lower_bound(model, ax=ax)
    fig.savefig(args.output, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"{kind} plot written to {args.output}")
    return 0


def cmd_demo(args):
    from . import _demo

    return _demo.run(args)


# --------------------------------------------------------------- parser
def build_parser():
    from . import __version__, _demo

    p = argparse.ArgumentParser(
        prog="fastgmm",
        description="Gaussian mixtures from the command line: fit (one model, or the best by "
                    "an information criterion over a range of components), predict, score, "
                    "plot; and the side-by-side photo demo.")
    p.add_argument("--version", action="version", version=f"fastgmm {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def data_options(q, weights=False):
        q.add_argument("--columns", metavar="A,B,...",
                       help="the columns to use: header names or 0-based indices "
                            "(default: all; non-numeric columns are refused)")
        if weights:
            q.add_argument("--sample-weight", metavar="COLUMN",
                           help="a column of non-negative row weights (default: none)")
        q.add_argument("--quiet", action="store_true",
                       help="no progress or compilation notice on stderr")

    f = sub.add_parser("fit", help="fit a model and write it to a model file",
                       description="Fit a Gaussian mixture to DATA (.npy, .csv, .tsv, "
                                   ".parquet) and write the model file. With a range for -k "
                                   "(or several covariance types) every candidate is fitted "
                                   "and the best by --criterion is kept (GaussianMixtureIC); "
                                   "its table is printed.")
    f.add_argument("data", metavar="DATA")
    f.add_argument("-k", required=True, metavar="K|A-B",
                   help="number of components, or a range A-B to choose from")
    f.add_argument("-o", "--output", metavar="MODEL",
                   help="the model file to write (default: DATA's name with .fgmm, here)")
    f.add_argument("--covariance-type", default="full", metavar="TYPE",
                   help="full, tied, diag, spherical, a comma list, or all (default: full)")
    f.add_argument("--criterion", default="bic", choices=["bic", "aic", "icl"],
                   help="the criterion a range is chosen by, lower is better (default: bic)")
    f.add_argument("--random-state", type=int, default=0,
                   help="seed of the start (default: %(default)s)")
    f.add_argument("--max-iter", type=int, default=100,
                   help="EM iterations at most (default: %(default)s)")
    f.add_argument("--n-init", type=int, default=1,
                   help="starts per model, the best kept (default: %(default)s)")
    f.add_argument("--dtype", default="float64", choices=["float64", "float32"],
                   help="the data's dtype in the fit (default: %(default)s)")
    data_options(f, weights=True)
    f.set_defaults(func=cmd_fit)

    q = sub.add_parser("predict", help="labels or probabilities of DATA under MODEL",
                       description="Write the component label of each row of DATA (or, with "
                                   "--proba, the probability of each component) to OUT (.csv, "
                                   ".tsv or .npy by its suffix), or to stdout without -o.")
    q.add_argument("model", metavar="MODEL")
    q.add_argument("data", metavar="DATA")
    q.add_argument("-o", "--output", metavar="OUT", help="the output file (default: stdout)")
    q.add_argument("--proba", action="store_true", help="probabilities instead of labels")
    data_options(q)
    q.set_defaults(func=cmd_predict)

    s = sub.add_parser("score", help="mean log-likelihood, BIC and AIC of DATA under MODEL",
                       description="Print the mean log-likelihood of DATA under MODEL, and its "
                                   "BIC and AIC for a GaussianMixture.")
    s.add_argument("model", metavar="MODEL")
    s.add_argument("data", metavar="DATA")
    data_options(s, weights=True)
    s.set_defaults(func=cmd_score)

    g = sub.add_parser("plot", help="plot a model to an image file",
                       description="ellipses: the components (1 and 2 standard deviations) "
                                   "over DATA, on two --features or the data's first two "
                                   "principal axes; criterion: the criterion against "
                                   "n_components (a model fitted with a range of -k); "
                                   "lower-bound: the lower bound per iteration. Default: "
                                   "ellipses with DATA, else criterion or lower-bound.")
    g.add_argument("model", metavar="MODEL")
    g.add_argument("data", metavar="DATA", nargs="?")
    g.add_argument("-o", "--output", required=True, metavar="FIGURE.png",
                   help="the image to write (its suffix picks the format)")
    g.add_argument("--kind", choices=["ellipses", "criterion", "lower-bound"],
                   help="what to plot (default: see above)")
    g.add_argument("--features", metavar="I,J",
                   help="two 0-based feature indices for the ellipses (default: the first two "
                        "principal axes)")
    data_options(g)
    g.set_defaults(func=cmd_plot)

    d = sub.add_parser("demo", help="the photo demo: fastgmm and scikit-learn side by side",
                       description=_demo.__doc__.split("\n")[0])
    _demo.add_arguments(d)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (| head): not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except CLIError as e:
        print(f"fastgmm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastgmm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        message = str(e).splitlines()[0] if str(e) else ""
        if isinstance(e, (ValueError, OSError)) and message:
            print(f"fastgmm {args.command}: error: {message}", file=sys.stderr)
        else:
            print(f"fastgmm {args.command}: error: {type(e).__name__}: {message}",
                  file=sys.stderr)
        return 2
