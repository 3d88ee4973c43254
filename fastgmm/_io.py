"""Safe model files: ``fastgmm.save(estimator, path)`` and ``fastgmm.load(path)``.

No pickle, and nothing executed on load. A model file is a zip archive (stored,
not compressed) holding

- ``fastgmm.json``: the header, ``{"format": "fastgmm-model", "format_version": 1,
  "fastgmm_version": ..., "dtype": the fitted model's float dtype (null if not fitted),
  "model": {...}}``, where a model is ``{"class": one of
  CLASSES, "params": {...}, "attributes": {...}}``;
- ``arrays/<n>.npy``: the arrays, in NumPy's ``.npy`` format, read back with
  ``allow_pickle=False`` (an object array cannot be read).

A value in ``params`` or ``attributes`` is JSON (numbers, strings, booleans,
null, lists) or a tagged reference: ``{"array": n}`` (an ndarray; a string
array comes back as the object array scikit-learn uses for
``feature_names_in_``), ``{"tuple": [...]}``, ``{"float": "nan"|"inf"|"-inf"}``,
``{"scalar": [dtype, value]}`` (a NumPy scalar), ``{"model": {...}}`` (a nested estimator: ``GaussianMixtureIC.best_estimator_``)
and ``{"dict": {...}}``. The class is looked up in ``CLASSES``, never imported by
name; the parameters go through the estimator's own validation; the fitted
parameters through the shape checks every prediction runs. Whatever is wrong
with a file raises ``ValueError`` naming it.
"""

import io
import json
import math
import numbers
import zipfile

import numpy as np

FORMAT = "fastgmm-model"
FORMAT_VERSION = 1
HEADER = "fastgmm.json"
MAX_HEADER = 64 << 20  # bytes
_SCALAR_DTYPES = {np.dtype(t).str for t in (np.float32, np.float64, np.int32, np.int64)}


def _classes():
    """The estimators a file may name (the Dask ones only where Dask is installed)."""
    from . import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC

    classes = {"GaussianMixture": GaussianMixture,
               "BayesianGaussianMixture": BayesianGaussianMixture,
               "GaussianMixtureIC": GaussianMixtureIC}
    try:
        from . import dask as fdask
    except ImportError:
        return classes
    classes["dask.GaussianMixture"] = fdask.GaussianMixture
    classes["dask.BayesianGaussianMixture"] = fdask.BayesianGaussianMixture
    return classes


def _class_name(estimator):
    for name, cls in _classes().items():
        if type(estimator) is cls:
            return name
    raise TypeError(f"fastgmm.save saves fastgmm's estimators; got {type(estimator).__name__}.")


class _Writer:
    def __init__(self):
        self.arrays = []

    def value(self, v):
        if isinstance(v, np.ndarray):
            if v.dtype == object:
                if not all(isinstance(x, str) for x in v.ravel()):
                    raise TypeError("an object array other than strings cannot be saved")
                v = v.astype(str)
            self.arrays.append(v)
            return {"array": len(self.arrays) - 1}
        if isinstance(v, tuple):
            return {"tuple": [self.value(x) for x in v]}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {"dict": {str(k): self.value(x) for k, x in v.items()}}
        if isinstance(v, np.generic) and v.dtype.kind in "iuf":
            return {"scalar": [v.dtype.str, self.value(v.item())]}  # keeps its dtype
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            v = float(v)
            return v if math.isfinite(v) else {"float": repr(v)}
        if v is None or isinstance(v, str):
            return v
        if hasattr(v, "get_params") and hasattr(v, "fit"):
            return {"model": self.model(v)}
        raise TypeError(f"cannot save a value of type {type(v).__name__}")

    def model(self, est):
        params = est.get_params(deep=False)
        if not isinstance(params.get("random_state"), (type(None), numbers.Integral)):
            params["random_state"] = None  # a RandomState instance: not data
        attributes = {k: v for k, v in vars(est).items()
                      if k.endswith("_") and not k.startswith("_")}
        return {"class": _class_name(est),
                "params": {k: self.value(v) for k, v in params.items()},
                "attributes": {k: self.value(v) for k, v in attributes.items()}}


def save(estimator, path):
    """Save a fastgmm estimator (fitted or not) to ``path`` as a model file
    (see the module docstring): no pickle, readable by :func:`load` only."""
    writer = _Writer()
    fitted = getattr(estimator, "best_estimator_", estimator)
    dtype = str(fitted.means_.dtype) if hasattr(fitted, "means_") else None
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "fastgmm_version": _version(), "dtype": dtype,
              "model": writer.model(estimator)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(HEADER, json.dumps(header, indent=1))
        for i, a in enumerate(writer.arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
            z.writestr(f"arrays/{i}.npy", buf.getvalue())


def _version():
    from . import __version__

    return __version__


class _Reader:
    def __init__(self, z, path):
        self.z, self.path = z, path

    def fail(self, why):
        raise ValueError(f"{self.path!s} is not a valid fastgmm model file: {why}.")

    def array(self, i):
        if not isinstance(i, int) or isinstance(i, bool):
            self.fail("an array reference is not an index")
        name = f"arrays/{i}.npy"
        try:
            info = self.z.getinfo(name)
        except KeyError:
            self.fail(f"array {i} is missing")
        if info.compress_type != zipfile.ZIP_STORED:
            self.fail(f"array {i} is compressed (model files store their members)")
        data = self.z.read(name)
        try:
            a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:  # an object array: pickled data, refused
            self.fail(f"array {i} is not a plain array ({e})")
        except Exception as e:  # noqa: BLE001 - any malformed .npy
            self.fail(f"array {i} is malformed ({type(e).__name__}: {e})")
        if a.dtype.kind not in "biufU":
            self.fail(f"array {i} has dtype {a.dtype}")
        if a.dtype.kind == "U":
            a = a.astype(object)  # scikit-learn's feature_names_in_
        return a

    def value(self, v):
        if isinstance(v, dict):
            if len(v) != 1:
                self.fail(f"unknown value {str(v)[:80]}")
            (tag, x), = v.items()
            if tag == "array":
                return self.array(x)
            if tag == "tuple" and isinstance(x, list):
                return tuple(self.value(e) for e in x)
            if tag == "float" and x in ("nan", "inf", "-inf"):
                return float(x)
            if tag == "scalar" and isinstance(x, list) and len(x) == 2 \
                    and isinstance(x[0], str) and x[0] in _SCALAR_DTYPES:
                value = self.value(x[1])
                dtype = np.dtype(x[0])
                if dtype.kind == "f" and isinstance(value, (int, float)) \
                        and not isinstance(value, bool):
                    return dtype.type(value)
                if dtype.kind == "i" and type(value) is int \
                        and np.iinfo(dtype).min <= value <= np.iinfo(dtype).max:
                    return dtype.type(value)
                self.fail(f"a scalar of dtype {x[0]} holds {str(x[1])[:40]}")
            if tag == "dict" and isinstance(x, dict):
                return {k: self.value(e) for k, e in x.items()}
            if tag == "model" and isinstance(x, dict):
                return self.model(x)
            self.fail(f"unknown value tag {tag!r}")
        if isinstance(v, list):
            return [self.value(e) for e in v]
        return v

    def model(self, m):
        if not isinstance(m, dict) or set(m) != {"class", "params", "attributes"}:
            self.fail("the model entry is malformed")
        classes = _classes()
        name = m["class"]
        if not isinstance(name, str) or name not in classes:
            self.fail(f"unknown class {str(name)[:80]!r} (fastgmm's classes: "
                      f"{', '.join(sorted(classes))})")
        cls = classes[name]
        if not isinstance(m["params"], dict) or not isinstance(m["attributes"], dict):
            self.fail("the model entry is malformed")
        params = {k: self.value(v) for k, v in m["params"].items()}
        known = set(cls().get_params(deep=False))
        if set(params) - known:
            self.fail(f"unknown parameters {sorted(set(params) - known)} for {name}")
        est = cls(**params)
        try:
            est._validate_params()
        except ValueError as e:
            self.fail(f"its parameters are invalid ({e})")
        for k, v in m["attributes"].items():
            if not (isinstance(k, str) and k.endswith("_") and not k.startswith("_")
                    and k.isidentifier()):
                self.fail(f"bad attribute name {str(k)[:80]!r}")
            setattr(est, k, self.value(v))
        _check_loaded(est, self)
        return est


def _check_loaded(est, reader):
    """A fitted model is whole and consistent: every fitted parameter present, as
    float32/float64 arrays of finite values with the shapes every prediction checks,
    weights a distribution, the Bayesian posterior's counts positive; a
    GaussianMixtureIC's winner checked in turn. An unfitted model has no fitted
    attribute at all."""
    from . import GaussianMixture, GaussianMixtureIC

    fitted = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    if isinstance(est, GaussianMixtureIC):
        if not fitted:
            return
        best = getattr(est, "best_estimator_", None)
        if type(best) is not GaussianMixture or not hasattr(best, "means_"):
            reader.fail("best_estimator_ is not a fitted GaussianMixture")
        if getattr(est, "n_features_in_", None) != best.n_features_in_:
            reader.fail("n_features_in_ differs from its best_estimator_'s")
        return
    if not fitted:
        return
    required = set(est._parameter_names) | {"weights_", "means_", "covariances_",
                                             "precisions_", "precisions_cholesky_",
                                             "n_features_in_", "converged_", "n_iter_",
                                             "lower_bound_"}
    missing = sorted(required - set(fitted))
    if missing:
        reader.fail(f"a fitted model without {', '.join(missing)}")
    n_features = est.n_features_in_
    if type(n_features) is not int or n_features < 1:
        reader.fail("n_features_in_ is not a positive integer")

    def floats(name, a):
        arrays = a if isinstance(a, tuple) else (a,)
        for x in arrays:
            if not isinstance(x, (np.ndarray, np.floating)) or x.dtype not in (
                    np.float32, np.float64) or not np.all(np.isfinite(x)):
                reader.fail(f"{name} is not float32/float64 data of finite values")

    for name in required - {"n_features_in_", "converged_", "n_iter_", "lower_bound_"}:
        floats(name, getattr(est, name))
    try:
        est._check_fitted_params(n_features)
    except (ValueError, TypeError, AttributeError) as e:
        reader.fail(f"its fitted parameters are inconsistent ({e})")
    K = est.means_.shape[0]
    if est.n_components != K:
        reader.fail(f"n_components={est.n_components} but means_ has {K} rows")
    pc_shape = np.shape(est.precisions_cholesky_)
    for name in ("covariances_", "precisions_"):
        if np.shape(getattr(est, name)) != pc_shape:
            reader.fail(f"{name} has shape {np.shape(getattr(est, name))}, "
                        f"expected {pc_shape}")
    w = est.weights_
    if np.any(w < 0) or abs(float(np.sum(w)) - 1.0) > 1e-3:
        reader.fail("weights_ is not a distribution")
    if hasattr(est, "degrees_of_freedom_"):
        for name in ("mean_precision_", "weight_concentration_"):
            floats(name, getattr(est, name))
        if np.any(np.asarray(est.degrees_of_freedom_) <= n_features - 1) or np.any(
                est.mean_precision_ <= 0) or any(np.any(np.asarray(a) <= 0) for a in (
                est.weight_concentration_ if isinstance(est.weight_concentration_, tuple)
                else (est.weight_concentration_,))):
            reader.fail("the posterior's counts are not positive")


def load(path):
    """Load an estimator saved by :func:`save`. Raises ``ValueError`` for any file
    that is not a valid fastgmm model file (truncated, another program's, an
    unknown format version, crafted); nothing in a file is executed."""
    try:
        z = zipfile.ZipFile(path)
    except Exception as e:  # noqa: BLE001 - whatever a crafted archive provokes
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path!s} is not a valid fastgmm model file: not a model archive "
                         f"({e}).") from None
    with z:
        reader = _Reader(z, path)
        try:
            return _read(z, reader)
        except ValueError as e:
            if "not a valid fastgmm model file" in str(e):
                raise
            reader.fail(f"{type(e).__name__}: {str(e)[:200]}")
        except Exception as e:  # noqa: BLE001 - whatever a crafted file provokes
            reader.fail(f"{type(e).__name__}: {str(e)[:200]}")


def _read(z, reader):
    try:
        info = z.getinfo(HEADER)
    except KeyError:
        reader.fail(f"no {HEADER} header")
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > MAX_HEADER:
        reader.fail("the header is compressed or too large")
    try:
        header = json.loads(z.read(HEADER).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        reader.fail(f"the header cannot be read ({e})")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        reader.fail("the header does not name the fastgmm-model format")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        reader.fail(f"format version {version!r} is not one this fastgmm reads "
                    f"({FORMAT_VERSION})")
    return reader.model(header.get("model"))
