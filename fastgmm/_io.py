"""Safe model files: ``fastgmm.save(estimator, path)`` and ``fastgmm.load(path)``.

No pickle, and nothing executed on load. A model file is a zip archive (stored,
not compressed) holding

- ``fastgmm.json``: the header, ``{"format": "fastgmm-model", "format_version": 1,
  "fastgmm_version": ..., "model": {...}}``, where a model is ``{"class": one of
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
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "fastgmm_version": _version(), "model": writer.model(estimator)}
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
        try:
            data = self.z.read(f"arrays/{i}.npy")
        except KeyError:
            self.fail(f"array {i} is missing")
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            self.fail(f"array {i} cannot be read ({e})")
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
                    and x[0] in _SCALAR_DTYPES:
                value = self.value(x[1])
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    return np.dtype(x[0]).type(value)
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
    """A fitted model's parameters agree with each other (the checks every
    prediction runs) and are finite floats."""
    if hasattr(est, "best_estimator_"):  # GaussianMixtureIC: its winner is checked
        return
    if not hasattr(est, "means_"):
        return  # not fitted
    n_features = getattr(est, "n_features_in_", None)
    if not isinstance(n_features, int) or n_features < 1:
        reader.fail("n_features_in_ is missing or not a positive integer")
    try:
        params = est._check_fitted_params(n_features)
    except (ValueError, TypeError, AttributeError) as e:
        reader.fail(f"its fitted parameters are inconsistent ({e})")
    for name, p in zip(est._parameter_names, params):
        for a in (p if isinstance(p, tuple) else (p,)):
            a = np.asarray(a)
            if a.dtype.kind != "f" or not np.all(np.isfinite(a)):
                reader.fail(f"{name} is not an array of finite floats")


def load(path):
    """Load an estimator saved by :func:`save`. Raises ``ValueError`` for any file
    that is not a valid fastgmm model file (truncated, another program's, an
    unknown format version, crafted); nothing in a file is executed."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path!s} is not a valid fastgmm model file: not a model archive "
                         f"({e}).") from None
    with z:
        reader = _Reader(z, path)
        try:
            header = json.loads(z.read(HEADER).decode("utf-8"))
        except KeyError:
            reader.fail(f"no {HEADER} header")
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError,
                json.JSONDecodeError) as e:
            reader.fail(f"the header cannot be read ({e})")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            reader.fail("the header does not name the fastgmm-model format")
        if header.get("format_version") != FORMAT_VERSION:
            reader.fail(f"format version {header.get('format_version')!r} is not one this "
                        f"fastgmm reads ({FORMAT_VERSION})")
        return reader.model(header.get("model"))
