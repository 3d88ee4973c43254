"""The CUDA engine: the driver's passes on an NVIDIA GPU (``numba-cuda``).

``CUDAEngine`` answers the same questions as ``_engine.CPUEngine`` (the driver
cannot tell them apart): the statistics of an EM pass, of given labels or
responsibilities, row-wise outputs, and the k-means / k-means++ starts. Data
given on the device (a CuPy array, a PyTorch CUDA tensor, a Numba device array:
anything with ``__cuda_array_interface__``) is read where it is; host data is
copied to the device once per call. Per pass only the O(K d^2) statistics come
back to the host, where the M-step runs as on the CPU.

Results do not depend on the GPU or the launch (``_cuda_kernels``: fixed tiles,
fixed trees). They agree with the CPU engine's to rounding: both add in float64,
in different orders.

The k-means start draws from ``random_state`` as scikit-learn's ``KMeans`` /
``kmeans_plusplus`` do (the same calls, the same order), with float64 distances
``|x - c|^2`` for float32 data too (the CPU engine follows scikit-learn's float32
arithmetic bit for bit; here a draw that lands within rounding of a boundary
between two rows can pick the other one).

This module imports ``numba.cuda``; only ``_base._engine`` imports it, when a
model's ``device`` is 'cuda' or X lives on a GPU.
"""

import functools
import warnings

import numpy as np
from numba import cuda
from numba.core.errors import NumbaPerformanceWarning

try:  # numba-cuda's own class (0.2x+); Numba's for the simulator and older versions
    from numba.cuda.core.errors import NumbaPerformanceWarning as _CudaPerformanceWarning
except ImportError:
    _CudaPerformanceWarning = NumbaPerformanceWarning
from sklearn.exceptions import ConvergenceWarning

from . import _cuda_kernels as kern
from ._accumulate import MODE_EM, MODE_LABELS, MODE_RESP, whitened_to_shift
from ._engine import OUTPUTS, CPUEngine
from ._estep import DIAG, FULL, OUT_LABEL, OUT_LSE, OUT_RESP, SPHERICAL, TIED
from ._kmeans import LLOYD_MAX_ITER, LLOYD_TOL, first_center
from ._stats import Stats, s2_shape

CHUNK_BYTES = 256 << 20  # the (K, chunk) responsibilities of a launch at most
# From this many features, the 'full' and 'tied' EM passes run as cuBLAS matrix
# products through CuPy (where CuPy is installed): ``gemm_stats``. None: never.
PARTIAL_BYTES = 64 << 20  # a launch's per-tile partial sums at most
# Host data larger than this share of the GPU's free memory is streamed: each pass
# copies its rows to the device STREAM_BYTES at a time (the statistics add up), and
# the k-means start runs on the host (the CPU engine: the same draws). None: by the
# free memory alone; a number of bytes: stream from that size (the tests' switch).
STREAM_SHARE = 0.5
STREAM_MIN_BYTES = None
STREAM_BYTES = 256 << 20
MAX_FEATURES = {FULL: 256, TIED: 256, DIAG: 2047, SPHERICAL: 2047}
GEMM_MIN_D = 16
GEMM_CHUNK_BYTES = 512 << 20  # the largest temporary of a GEMM pass at most
GEMM_SLAB = 4096  # rows of a slab of the sums over rows (``tall_sum``)
RANGE_ROWS = 1 << 16  # host rows a block of ``column_range``
# 'diag' / 'spherical' as matrix products (``diag_products``) where the expanded
# form's cancellation (``diag_product_bound``, Q) is at most this: a log-density off by
# at most about 4 eps Q (absolute), a variance by eps Q (relative); past it (tight
# components far from the data's centre) the kernels. None: always the kernels, until
# measured (as FUSED_FULL); the bound to try is DIAG_PRODUCTS_Q (4 eps Q = 1e-9 of a
# log-density, eps Q = 2e-10 of a variance).
GEMM_DIAG_MAX_Q = None
DIAG_PRODUCTS_Q = 1e6
# 'diag' and 'spherical' passes on the tiled kernels (``lp_diag``, ``sums_diag``);
# False: the per-row / per-component kernels (``estep``, ``accum``) they replace
TILED_DIAG = True
# 'full' matrix-product pass: True: the rows finished by one kernel and the statistics
# from one batched product (``_full_rows``); False: CuPy's element-wise operations.
# Off until measured: written on 2026-11-28 after that day's GPU time was withdrawn,
# tested on the simulator only (through NumPy; its cuBLAS call never ran). The next
# session with a GPU runs bench/gpu_sweep.sh, which tests it on the device and times
# it against the element-wise form (bench/gpu_kernels.py, bench/gpu_bench.py).
FUSED_FULL = False


def _cupy():
    """CuPy, where it is installed and a real GPU runs (not the simulator)."""
    if kern.SIMULATOR:
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy
_ACCUM_MODE = {MODE_EM: kern.A_EM, MODE_RESP: kern.A_RESP, MODE_LABELS: kern.A_LABELS}
_LOG_MODE = {OUT_LSE: kern.M_LSE, OUT_LABEL: kern.M_LABEL, OUT_RESP: kern.M_RESP}


def _quiet(method):
    """Numba's advice on small grids (NumbaPerformanceWarning: 'Grid size N will
    likely result in GPU under-utilization') is not for fastgmm's users: a small
    data set runs a small grid. Silenced inside the engine's calls only."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        with warnings.catch_warnings():
            for cls in (NumbaPerformanceWarning, _CudaPerformanceWarning):
                warnings.filterwarnings("ignore", message=".*Grid size .* under-utilization",
                                        category=cls)
            return method(*args, **kwargs)
    return call


def _numba_device_array(X):
    """A Numba device array (the simulator's has no ``__cuda_array_interface__``)."""
    return type(X).__module__.startswith("numba.cuda") and hasattr(X, "copy_to_host")


def is_device_array(X):
    """Whether X lives on a CUDA device (CuPy, PyTorch, Numba, ...)."""
    return _numba_device_array(X) or hasattr(X, "__cuda_array_interface__")


def available():
    """Whether a CUDA device (or Numba's simulator) can be used."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a driver that cannot be loaded
        return False


def as_device(X):
    """A Numba view of a device array (no copy)."""
    return X if _numba_device_array(X) else cuda.as_cuda_array(X)


def _device_index(X):
    """The GPU a CuPy array (``.device.id``) or a PyTorch tensor (``.device.index``)
    is on; None for Numba's arrays (on its current device) and others."""
    if _numba_device_array(X):
        return None
    device = getattr(X, "device", None)
    index = getattr(device, "id", getattr(device, "index", None))
    return index if isinstance(index, int) else None


def to_host(a):
    """A device array's values on the host (n numbers: sample weights)."""
    return as_device(a).copy_to_host()


def _sklearn_error(X_host, estimator):
    """scikit-learn's error for a tiny host array of the offending kind (NaN,
    infinity, dimensions), so the message is its own, word for word."""
    from sklearn.utils import check_array

    try:
        check_array(X_host, dtype=None, input_name="X", estimator=estimator)
    except ValueError as exc:
        return ValueError(str(exc))
    return None


@_quiet
def check_device_X(X, estimator, n_features=None, ensure_min_samples=1):
    """scikit-learn's checks of ``check_array`` / ``validate_data`` on a device
    array, in its order and with its messages, without a copy to the host: 2-D,
    numeric (integers converted to float64 on the device), finite, enough rows and
    features, the fitted number of features; returns the Numba view."""
    name = type(estimator).__name__
    Xd = as_device(X)
    dev = _device_index(X)
    if dev is not None and dev != cuda.get_current_device().id:
        raise ValueError(
            f"X is on GPU {dev}; fastgmm's CUDA engine runs on Numba's current device "
            f"({cuda.get_current_device().id}). Select it first "
            "(numba.cuda.select_device) or move X.")
    if Xd.ndim != 2:
        if Xd.ndim >= 3:
            raise _sklearn_error(np.zeros((1,) * Xd.ndim), estimator)
        raise ValueError(
            f"Expected 2D array, got {Xd.ndim}D array instead:\narray on a CUDA device."
            "\nReshape your data either "
            "using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample.")
    if Xd.dtype.kind in "iub":
        out = cuda.device_array(Xd.shape, dtype=np.float64)
        kern.cast_f64[(max(1, -(-Xd.shape[0] // 8)), max(1, -(-Xd.shape[1] // 32))),
                      (8, 32)](Xd, out)
        Xd = out
    elif Xd.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"fastgmm's CUDA engine reads float32 or float64 device arrays; X has dtype "
            f"{Xd.dtype}. Convert it on its device first (X.astype('float32')).")
    n, d = Xd.shape
    flags = cuda.to_device(np.zeros(2, dtype=np.int32))
    kern.all_finite[_grid(n), kern.NT](Xd, flags)
    nan, inf = flags.copy_to_host()
    if nan:
        raise _sklearn_error(np.full((1, 1), np.nan, dtype=Xd.dtype), estimator)
    if inf:
        raise _sklearn_error(np.full((1, 1), np.inf, dtype=Xd.dtype), estimator)
    if n < ensure_min_samples:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={Xd.shape}) while a minimum of "
            f"{ensure_min_samples} is required by {name}.")
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={Xd.shape}) while a minimum of 1 is "
            f"required by {name}.")
    if n_features is not None and d != n_features:
        raise ValueError(
            f"X has {d} features, but {name} is expecting {n_features} features as "
            "input.")
    return Xd


def _check_features(ct, d):
    """The kernels keep a row (and for 'full' / 'tied' a share of the d^2 / 2
    moments) per thread and stage rows of d + 1 numbers in 32 KiB of shared memory:
    a clear error past what they serve."""
    limit = MAX_FEATURES[ct]
    if d > limit:
        name = {FULL: "full", TIED: "tied", DIAG: "diag", SPHERICAL: "spherical"}[ct]
        raise ValueError(
            f"fastgmm's CUDA engine serves covariance_type={name!r} up to {limit} "
            f"features; X has {d}. Use device='cpu' for this model.")


def _streams(nbytes):
    """Whether host data of ``nbytes`` is streamed rather than copied whole."""
    if STREAM_MIN_BYTES is not None:
        return nbytes > STREAM_MIN_BYTES
    try:
        free = cuda.current_context().get_memory_info()[0]
    except Exception:  # no memory figure (a driver without it): copy
        return False
    return nbytes > STREAM_SHARE * free


def _grid(n):
    return max(1, -(-n // kern.NT))


def _tiles(n):
    return max(1, -(-n // kern.TILE))


def _entry_tables(ct, D):
    """The accumulation's entry tables: (a, b) pairs whose products w r f_a f_b are
    summed (index D is the constant 1). Table 0 for each component, table 1 for
    the 'tied' pooled block. Returns EA, EB (2, E), counts (2,)."""
    moments = [(D, D)] + [(a, D) for a in range(D)]
    upper = [(a, b) for a in range(D) for b in range(a, D)]
    if ct == FULL:
        t0, t1 = moments + upper, []
    elif ct == TIED:
        t0, t1 = moments, upper + [(a, D) for a in range(D)]
    else:  # diag, spherical: the squares
        t0, t1 = moments + [(a, a) for a in range(D)], []
    E = max(len(t0), len(t1))
    EA = np.full((2, E), D, dtype=np.int64)
    EB = np.full((2, E), D, dtype=np.int64)
    for ti, tab in enumerate((t0, t1)):
        for e, (a, b) in enumerate(tab):
            EA[ti, e], EB[ti, e] = a, b
    return EA, EB, np.array([len(t0), len(t1)], dtype=np.int64)


def tall_sum(xp, A, slab=None):
    """The column sums of tall A (m, p) (or the sum of a vector), slab by slab then
    over the slabs, in a fixed order. CuPy reduces a long column in one block:
    measured on an H200, the sums over 262k-row chunks took 25 of a 32 ms pass."""
    slab = GEMM_SLAB if slab is None else slab
    vec = A.ndim == 1
    A = A.reshape(-1, 1) if vec else A
    m = A.shape[0]
    s = m // slab
    out = None
    if s > 1:
        out = xp.sum(xp.sum(A[:s * slab].reshape(s, slab, A.shape[1]), axis=1), axis=0)
    done = s * slab if s > 1 else 0
    if done < m:
        rest = xp.sum(A[done:], axis=0)
        out = rest if out is None else out + rest
    return out[0] if vec else out


@_quiet
def gemm_stats(xp, X, w, ep, to_host, chunk_bytes=None, slab=None):
    """The EM pass as matrix products in the array namespace ``xp`` (CuPy: cuBLAS;
    NumPy in the tests), float64 whatever X's dtype, chunk by chunk ('full' and
    'tied'; 'diag' and 'spherical' run on the kernels, which sum about each
    component's mean):

    - 'full': Y = (X - g) [U_1 .. U_K] - [(mu_1 - g) U_1 ..] = the rows whitened by
      each component, centred on its mean, one product for all components; the
      statistics summed in those coordinates and moved back to x coordinates about
      the means (``whitened_to_shift``, as the CPU's tiled path): no cancellation
      for tight components far from g. With ``FUSED_FULL`` (``_full_rows``) the
      product writes each component's columns and a spare one, one kernel
      (``_cuda_kernels.whiten_rows``) turns a row's groups into sqrt(r_k) (y_k, 1),
      and one batched product of each group with itself (per GEMM_SLAB-row slab and
      component, then over the slabs) gives nk, the first and the second moments
      at once: two products and one read-and-write of the (rows, K (d + 1)) block a
      chunk. Without it, the element-wise array operations below (several passes
      over a (rows, K d) block: measured as most of a 200k x 64, K = 32 pass);
    - 'tied': Y = (X - g) U, distances |Y - (mu_k - g) U|^2 from the differences;
      the pooled scatter about g as the CPU engine sums it.

    Results are fixed for a given GPU and library versions (cuBLAS picks its
    algorithms per architecture), not across GPUs as the kernels' are."""
    if ep.ct == FULL and FUSED_FULL:
        return _full_rows(xp, X, w, ep, to_host, chunk_bytes, slab)
    cp = xp
    ct = ep.ct
    n, d = X.shape
    means, pc, aux, log_det, log_w = ep
    K = means.shape[0]
    g = np.asarray(ep.gshift, dtype=np.float64)
    mg = means - g
    c0_const = cp.asarray(log_w + log_det - 0.5 * d * kern.LOG_2PI)
    if ct == FULL:
        Ucat = cp.asarray(np.ascontiguousarray(np.concatenate(list(pc), axis=1)))
        bcat = cp.asarray(np.einsum("ka,kab->kb", mg, pc).reshape(-1))
    else:
        U = cp.asarray(pc[0])
        A = cp.asarray(mg @ pc[0])  # (K, d)
    per_row = 3 * K * d + 2 * d + 4 * K
    chunk_bytes = GEMM_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    chunk = int(max(1, min(n, chunk_bytes // (8 * per_row))))
    g_d = cp.asarray(g)
    nk = cp.zeros(K)
    s1 = cp.zeros((K, d))
    s2 = cp.zeros((K, d, d)) if ct == FULL else cp.zeros(s2_shape(ct, K, d))
    ll = 0.0
    for r0 in range(0, n, chunk):
        Xc = cp.asarray(X[r0:r0 + chunk]).astype(cp.float64) - g_d  # host rows: copied
        if w is not None:  # a row of weight zero is not there, whatever its values
            Xc = cp.where(w[r0:r0 + chunk, None] > 0, Xc, 0.0)
        if ct == FULL:
            Y = Xc @ Ucat
            Y -= bcat
            Yk = Y.reshape(-1, K, d)  # (x - mu_k) U_k
        else:
            Yk = (Xc @ U)[:, None, :] - A  # (x - mu_k) U
        maha = cp.sum(Yk * Yk, axis=2)
        if ct != FULL:
            del Yk
        LP = c0_const - 0.5 * maha
        mx = cp.max(LP, axis=1, keepdims=True)
        lse = mx + cp.log(cp.sum(cp.exp(LP - mx), axis=1, keepdims=True))
        R = cp.exp(LP - lse)
        if w is not None:
            wc = w[r0:r0 + chunk, None]
            R *= wc
            ll += float(tall_sum(cp, cp.where(wc > 0, wc * lse, 0.0).ravel(), slab))
        else:
            ll += float(tall_sum(cp, lse.ravel(), slab))
        nk += tall_sum(cp, R, slab)
        if ct == FULL:
            Z = R[:, :, None] * Yk
            s1 += tall_sum(cp, Z.reshape(-1, K * d), slab).reshape(K, d)
            s2 += cp.matmul(Yk.transpose(1, 2, 0), Z.transpose(1, 0, 2))
            del Z, Y, Yk
        else:
            s1 += R.T @ Xc
            Xw = Xc if w is None else Xc * wc
            s2[0, :d] += Xw.T @ Xc
            s2[0, d] += tall_sum(cp, Xw, slab)
    nk, s1, s2 = to_host(nk), to_host(s1), to_host(s2)
    if ct == FULL:
        return _whitened_stats(nk, s1, s2, ll, ep)
    shift = np.array(np.broadcast_to(g, (K, d)))
    return Stats(ct, nk, s1, s2, ll, shift, g.copy())


def _whitened_stats(nk, s1, s2, ll, ep):
    """'full' sums in each component's whitened coordinates about its mean (host
    arrays) moved back to x coordinates about the means (``whitened_to_shift``, as
    the CPU's tiled path)."""
    shift = np.array(ep.means, dtype=np.float64)
    s1x, s2x = np.zeros_like(s1), np.zeros_like(s2)
    whitened_to_shift(nk, np.ascontiguousarray(s1), np.ascontiguousarray(s2),
                      np.ascontiguousarray(ep[1], dtype=np.float64), shift, shift, s1x, s2x)
    return Stats(FULL, nk, s1x, s2x, ll, shift, np.array(ep.gshift, dtype=np.float64))


def column_range(xp, X, rows=None):
    """Each feature's (smallest, largest) value over the rows of X (n, d), float64
    on the host. Host rows (a memmap perhaps) ``rows`` (RANGE_ROWS) at a time, each
    block read once for both; C-ordered device rows by slabs of ``rows``
    (GEMM_SLAB), then over the slabs (CuPy reduces a long column in one block);
    other device layouts in one call."""
    n, d = X.shape
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    if xp is np:
        rows = RANGE_ROWS if rows is None else rows
        for r0 in range(0, n, rows):
            B = np.asarray(X[r0:r0 + rows])
            lo = np.minimum(lo, B.min(axis=0))
            hi = np.maximum(hi, B.max(axis=0))
        return lo, hi
    slab = GEMM_SLAB if rows is None else rows
    s = n // slab if n >= 2 * slab and X.flags.c_contiguous else 0
    parts = ([X[:s * slab].reshape(s, slab, d)] if s else []) + ([X[s * slab:]] if
                                                                 s * slab < n else [])
    for P in parts:  # a slab's values, then the slabs'
        low = P.min(axis=1).min(axis=0) if P.ndim == 3 else P.min(axis=0)
        high = P.max(axis=1).max(axis=0) if P.ndim == 3 else P.max(axis=0)
        lo = np.minimum(lo, xp.asnumpy(low).astype(np.float64))
        hi = np.maximum(hi, xp.asnumpy(high).astype(np.float64))
    return lo, hi


def diag_product_bound(ep, lo, hi):
    """max_k sum_a p_ka f_ka^2, f_ka = max(|lo_a - g_a|, |hi_a - g_a|, |mu_ka - g_a|)
    (p the precisions, g the pass's common shift, lo / hi each feature's range): how
    many squared standard deviations the farthest corner of the data (or a mean
    beyond it, a given start's) lies from g for the narrowest component. The
    expanded form of the 'diag' / 'spherical' products cancels that much (relative
    rounding eps times it in a log-density or a variance). The precisions are the
    pass's: a component that narrows within the pass is seen at the next one."""
    g = np.asarray(ep.gshift, dtype=np.float64)
    far = np.maximum(np.maximum(np.abs(lo - g), np.abs(hi - g))[None, :],
                     np.abs(np.asarray(ep.means, dtype=np.float64) - g))
    if not np.all(np.isfinite(far)):
        return np.inf
    return float(np.max(np.sum(np.asarray(ep[2], dtype=np.float64) ** 2 * far * far,
                               axis=1)))


@_quiet
def diag_products(xp, X, w, ep, to_host, chunk_bytes=None, slab=None):
    """The 'diag' / 'spherical' EM pass as two matrix products a chunk (CuPy:
    cuBLAS; NumPy in the tests), float64 whatever X's dtype: with y = x - g and
    F = (y^2, y, 1) (rows, 2 d + 1),
    log p(x, k) = F (-p_k / 2, p_k m_k, c_k - sum_a p_ka m_ka^2 / 2) (m = mu - g,
    p the precisions, c_k the log weight and determinant), the rows finished by
    ``_cuda_kernels.finish_rows`` into w r, then (w r)^T F = (sum w r y^2,
    sum w r y, nk): the moments about g. The expansion cancels
    ``diag_product_bound`` times the rounding; ``CUDAEngine.stats`` takes this pass
    only where that is at most GEMM_DIAG_MAX_Q, else the kernels (which sum about
    each component's mean). Results fixed for a GPU and library versions."""
    n, d = X.shape
    means, pc, aux, log_det, log_w = ep
    K = means.shape[0]
    g = np.asarray(ep.gshift, dtype=np.float64)
    P = np.asarray(aux, dtype=np.float64) ** 2
    mg = means - g
    W = np.empty((K, 2 * d + 1))
    W[:, :d] = -0.5 * P
    W[:, d:2 * d] = P * mg
    W[:, 2 * d] = (log_w + log_det - 0.5 * d * kern.LOG_2PI
                   - 0.5 * np.sum(P * mg * mg, axis=1))
    W = xp.asarray(W)
    per_row = 2 * d + 1 + 2 * K + 1
    chunk_bytes = GEMM_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    chunk = int(max(1, min(n, chunk_bytes // (8 * per_row))))
    Fbuf, lse_buf = xp.empty((chunk, 2 * d + 1)), xp.empty(chunk)
    g_d = xp.asarray(g)
    no_w = xp.empty(0)
    no_lab = xp.empty(0, dtype=np.int32)
    S = xp.zeros((K, 2 * d + 1))
    ll = 0.0
    for r0 in range(0, n, chunk):
        m = min(chunk, n - r0)
        F, lse = Fbuf[:m], lse_buf[:m]
        y = F[:, d:2 * d]
        y[...] = xp.asarray(X[r0:r0 + m])  # host rows: copied
        y -= g_d
        wc = no_w
        if w is not None:  # a row of weight zero is not there, whatever its values
            wc = w[r0:r0 + m]
            y[wc <= 0] = 0.0
        xp.multiply(y, y, out=F[:, :d])
        F[:, 2 * d] = 1.0
        LP = xp.matmul(W, F.T)  # (K, m): log p(x, k), then w r
        kern.finish_rows[_grid(m), kern.NT](m, wc, kern.M_EM, LP, lse, no_lab)
        ll += float(tall_sum(xp, lse, slab))
        S += xp.matmul(LP, F)
    S = to_host(S)
    nk = np.ascontiguousarray(S[:, 2 * d])
    s1 = np.ascontiguousarray(S[:, d:2 * d])
    s2 = np.ascontiguousarray(S[:, :d]).reshape(K, 1, d)
    shift = np.array(np.broadcast_to(g, (K, d)))
    return Stats(ep.ct, nk, s1, s2, ll, shift, g.copy())


def _gram_groups(xp, Y, slab, K, G):
    """sum_i Y[i, g_k] Y[i, g_k]^T for each group g_k of G columns of Y (rows, K G),
    rows a multiple of ``slab``: a product per (slab, group) (one batched cuBLAS
    call under CuPy, no copy of Y), then the slabs' products added in slab order."""
    ns = Y.shape[0] // slab
    if xp is np:
        V = Y.reshape(ns, slab, K, G)
        P = np.matmul(V.transpose(0, 2, 3, 1), V.transpose(0, 2, 1, 3))
    else:
        from cupy_backends.cuda.libs import cublas
        L = K * G
        P = xp.empty((ns, K, G, G))
        a = (np.arange(ns, dtype=np.uint64)[:, None] * np.uint64(slab * L * 8)
             + np.arange(K, dtype=np.uint64)[None, :] * np.uint64(G * 8)).ravel()
        A = xp.asarray(a + np.uint64(Y.data.ptr))
        C = xp.asarray(np.arange(ns * K, dtype=np.uint64) * np.uint64(G * G * 8)
                       + np.uint64(P.data.ptr))
        one, zero = np.ones(1), np.zeros(1)  # host scalars: host pointer mode
        op_n, op_t, pointer_host = 0, 1, 0  # cuBLAS's CUBLAS_OP_N, _OP_T, _POINTER_MODE_HOST
        handle = xp.cuda.device.get_cublas_handle()
        mode = cublas.getPointerMode(handle)
        cublas.setPointerMode(handle, pointer_host)
        try:
            # column-major: a group of a slab is a G x slab matrix, leading dimension
            # L; C = A A^T (symmetric, so the same in row-major order)
            cublas.dgemmBatched(handle, op_n, op_t, G, G, slab, one.ctypes.data, A.data.ptr,
                                L, A.data.ptr, L, zero.ctypes.data, C.data.ptr, G, ns * K)
        finally:
            cublas.setPointerMode(handle, mode)
    return P.sum(axis=0)


@_quiet
def _full_rows(xp, X, w, ep, to_host, chunk_bytes=None, slab=None):
    """``gemm_stats`` for 'full' with ``FUSED_FULL`` (see there)."""
    n, d = X.shape
    means, pc, aux, log_det, log_w = ep
    K = means.shape[0]
    G = d + 1
    L = K * G
    g = np.asarray(ep.gshift, dtype=np.float64)
    slab = GEMM_SLAB if slab is None else slab
    W = np.zeros((d, K, G))
    W[:, :, :d] = np.asarray(pc, dtype=np.float64).transpose(1, 0, 2)  # W[a, k, b] = U_k[a, b]
    W = xp.asarray(W.reshape(d, L))
    b = xp.asarray(np.einsum("ka,kab->kb", means - g, pc))
    c0 = xp.asarray(log_w + log_det - 0.5 * d * kern.LOG_2PI)
    per_row = L + d + K + 1
    chunk_bytes = GEMM_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    chunk = max(1, chunk_bytes // (8 * per_row) // slab) * slab
    chunk = min(chunk, -(-n // slab) * slab)
    Ybuf, Xbuf = xp.empty((chunk, L)), xp.empty((chunk, d))
    LPs, ll_rows = xp.empty((chunk, K)), xp.empty(chunk)
    g_d = xp.asarray(g)
    no_w = xp.empty(0)
    gram = xp.zeros((K, G, G))
    ll = 0.0
    for r0 in range(0, n, chunk):
        m = min(chunk, n - r0)
        mp = -(-m // slab) * slab
        Xc, Y = Xbuf[:mp], Ybuf[:mp]
        Xc[:m] = xp.asarray(X[r0:r0 + m])  # host rows: copied
        Xc[:m] -= g_d
        Xc[m:] = 0.0  # the last slab's spare rows: zero rows of Y, adding nothing
        wc = no_w
        if w is not None:  # a row of weight zero is not there, whatever its values
            wc = w[r0:r0 + m]
            Xc[:m][wc <= 0] = 0.0
        xp.matmul(Xc, W, out=Y)
        kern.whiten_rows[-(-m // kern.WR), (kern.WL, kern.WR)](Y, m, d, b, c0, wc, LPs,
                                                               ll_rows)
        ll += float(tall_sum(xp, ll_rows[:m], slab))
        gram += _gram_groups(xp, Y, slab, K, G)
    gram = to_host(gram)
    return _whitened_stats(np.ascontiguousarray(gram[:, d, d]), gram[:, :d, d],
                           gram[:, :d, :d], ll, ep)


class CUDAEngine(CPUEngine):
    """One call's data on the GPU: X (a device array, or host rows copied once),
    the weights (None: unit weights). ``n_jobs`` is accepted and unused."""

    centred_passes = False  # its own kernels: no centred form (``CPUEngine.stats``)

    @_quiet
    def __init__(self, X, sample_weight=None, n_jobs=None):
        self.Xh = None  # host rows streamed through the device (too large to copy)
        if is_device_array(X):
            self.Xd = as_device(X)
            dtype = self.Xd.dtype
        else:
            X = np.asarray(X)
            dtype = np.float32 if X.dtype == np.float32 else np.float64
            if _streams(X.shape[0] * X.shape[1] * np.dtype(dtype).itemsize):
                self.Xd, self.Xh = None, X
            else:
                self.Xd = cuda.device_array(X.shape, dtype=dtype)
                step = max(1, (64 << 20) // max(1, X.shape[1] * 8))
                for s in range(0, X.shape[0], step):  # memmaps and odd layouts, in pieces
                    self.Xd[s:s + step].copy_to_device(
                        np.ascontiguousarray(X[s:s + step], dtype=dtype))
        self.X = self.Xd if self.Xh is None else self.Xh
        self.n_samples, self.n_features = self.X.shape
        self.sample_weight = sample_weight
        self.dtype = np.dtype(dtype)
        self.eps = float(np.finfo(self.dtype).eps)
        self.n_jobs = n_jobs
        if sample_weight is None:
            self.wd = cuda.device_array(0, dtype=np.float64)
            self.wsum = float(self.n_samples)
        else:
            w64 = np.ascontiguousarray(sample_weight, dtype=np.float64)
            self.wd = cuda.to_device(w64)
            self.wsum = float(np.sum(sample_weight))
        self._tables = {}
        self._bufs = {}
        self._range = None

    def _chunk(self, K, per_tile=0):
        """Rows of one launch: a multiple of the tile, its (K, chunk) buffer at most
        CHUNK_BYTES, its tiles' partial sums (``per_tile`` numbers each) at most
        PARTIAL_BYTES (the chunking never changes a result)."""
        tiles = max(1, CHUNK_BYTES // (8 * max(K, 1) * kern.TILE))
        if per_tile:
            tiles = max(1, min(tiles, PARTIAL_BYTES // (8 * per_tile)))
        if self.Xh is not None:  # streamed: the rows a launch reads fit the row buffer
            tiles = min(tiles, self._stream_tiles())
        return tiles * kern.TILE

    def _stream_tiles(self):
        return max(1, STREAM_BYTES // (self.n_features * self.dtype.itemsize * kern.TILE))

    def _rows_at(self, r0, m, w, lab):
        """X, weights and labels of rows [r0, r0 + m) as one launch reads them (from
        its index 0): views of the device arrays, or, streamed, the host rows copied
        into a device buffer kept for the call."""
        wv = w[r0:r0 + m] if w.shape[0] else w
        lv = lab[r0:r0 + m] if lab.shape[0] else lab
        if self.Xh is None:
            return self.Xd[r0:r0 + m], wv, lv
        buf = self._buf("rows", (self._stream_tiles() * kern.TILE, self.n_features),
                        self.dtype)
        buf[:m].copy_to_device(np.ascontiguousarray(self.Xh[r0:r0 + m], dtype=self.dtype))
        return buf[:m], wv, lv

    def _table(self, ct):
        D = self.n_features
        if ct not in self._tables:
            EA, EB, ne = _entry_tables(ct, D)
            ept = -(-EA.shape[1] // kern.NT)
            self._tables[ct] = (cuda.to_device(EA), cuda.to_device(EB), cuda.to_device(ne),
                                EA.shape[1], ept)
        return self._tables[ct]

    # ------------------------------------------------------------ one pass
    def _shift(self, ct, means, gshift):
        return np.array(means, dtype=np.float64, order="C")

    def _buf(self, name, shape, dtype=np.float64):
        """A device buffer kept across the passes of this call (no allocation per
        EM iteration)."""
        buf = self._bufs.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != np.dtype(dtype):
            buf = cuda.device_array(shape, dtype=dtype)
            self._bufs[name] = buf
        return buf

    def _pass(self, ct, mode, ep, shift, gshift, R=None, labels=None, rows=None, unit=False):
        """Statistics of rows [rows) (all by default) about shift / gshift; ``R``
        (rows, K) host responsibilities of those rows; ``labels`` n labels (host or
        device; K or more: none); ``unit``: unit weights whatever the call's (the
        k-means start's plain means and row counts). Launches of whole tiles; each launch's tile sums
        are added to the running totals in tile order (``reduce_tiles``), so the
        bits do not depend on how the rows are cut into launches."""
        D = self.n_features
        _check_features(ct, D)
        w = self._buf("no_weights", (0,)) if unit else self.wd
        K = shift.shape[0]
        row0, row1 = (0, self.n_samples) if rows is None else rows
        nrows = row1 - row0
        EA, EB, ne, E, ept = self._table(ct)
        Kc = K + 1 if ct == TIED else K
        pooled_k = K if ct == TIED else -1
        tiled = self._tiled(ct)
        # statistics tiles a launch: TILE rows each, DTILE for the tiled kernels
        tile = kern.DTILE if tiled else kern.TILE  # DTILE divides TILE
        chunk = self._chunk(K, Kc * E * (kern.TILE // tile))
        tiles = min(-(-nrows // tile), chunk // tile)
        partial = self._buf("partial", (tiles, Kc, E))
        out = cuda.to_device(np.zeros((Kc, E)))
        shift_d = cuda.to_device(np.ascontiguousarray(shift, dtype=np.float64))
        gshift_d = cuda.to_device(np.ascontiguousarray(gshift, dtype=np.float64))
        acc = None if tiled else kern.accum(D, ept)
        lab_d = self._buf("no_labels", (0,), np.int32)
        if labels is not None:
            lab_d = labels if _numba_device_array(labels) else cuda.to_device(
                np.ascontiguousarray(labels).astype(np.int32))
        ll_tiles = None
        if mode == MODE_EM:
            ll_tiles = cuda.device_array(_tiles(nrows), dtype=np.float64)
            means, pc, aux, log_det, log_w = (cuda.to_device(np.ascontiguousarray(a))
                                              for a in ep)
            LP = self._buf("LP", (K, min(chunk, nrows)))
            lse = self._buf("lse", (min(chunk, nrows),))
        elif mode == MODE_RESP:
            LP = cuda.to_device(np.ascontiguousarray(np.asarray(R, dtype=np.float64).T))
        else:
            LP = self._buf("no_R", (K, 0))
        for c0 in range(0, nrows, chunk):
            m = min(chunk, nrows - c0)
            nt = _tiles(m)
            R_c = LP
            Xv, wv, lv = self._rows_at(row0 + c0, m, w, lab_d)
            if mode == MODE_EM:
                self._estep(ct, Xv, m, wv, means, pc, aux, log_det, log_w, kern.M_EM,
                            LP, lse, self._buf("no_labels", (0,), np.int32))
                kern.tile_sums[nt, kern.NT](lse, m, ll_tiles, c0 // kern.TILE)
            elif mode == MODE_RESP:
                R_c = LP[:, c0:c0 + m]
            if tiled:
                nt = -(-m // kern.DTILE)
                kern.sums_diag[(nt, -(-K // kern.BS), -(-D // kern.BS)), (kern.BT, kern.BT)](
                    Xv, m, wv, R_c, lv, _ACCUM_MODE[mode], shift_d, partial)
            else:
                acc[(nt, Kc), kern.NT](Xv, m, wv, R_c, lv, _ACCUM_MODE[mode], shift_d,
                                        gshift_d, EA, EB, ne, pooled_k, partial)
            kern.reduce_tiles[_grid(Kc * E), kern.NT](partial, nt, out)
        tot = out.copy_to_host()
        ll = float(np.sum(ll_tiles.copy_to_host())) if ll_tiles is not None else 0.0
        return self._to_stats(ct, tot, ll, shift, gshift, K)

    @staticmethod
    def _tiled(ct):
        return TILED_DIAG and ct in (DIAG, SPHERICAL)

    def _estep(self, ct, Xv, m, w, means, pc, aux, log_det, log_w, mode, LP, lse, lab):
        """log p(x, k) of the m rows Xv (weights w: theirs, or none) into LP (K, m),
        then the rows' ends by ``mode`` (``_cuda_kernels._finish``)."""
        if self._tiled(ct):
            K = means.shape[0]
            kern.lp_diag[(-(-m // kern.BS), -(-K // kern.BS)), (kern.BT, kern.BT)](
                Xv, m, means, aux, log_det, log_w, LP)
            kern.finish_rows[_grid(m), kern.NT](m, w, mode, LP, lse, lab)
        else:
            kern.estep(ct, self.n_features)[_grid(m), kern.NT](
                Xv, m, w, means, pc, aux, log_det, log_w, mode, LP, lse, lab)

    def _to_stats(self, ct, tot, ll, shift, gshift, K):
        D = self.n_features
        nk = tot[:K, 0].copy()
        s1 = np.ascontiguousarray(tot[:K, 1:D + 1])
        s2 = np.zeros(s2_shape(ct, K, D))
        iu = np.triu_indices(D)
        if ct == FULL:
            s2[:, iu[0], iu[1]] = tot[:K, D + 1:]
        elif ct == TIED:
            nu = len(iu[0])
            s2[0, iu[0], iu[1]] = tot[K, :nu]
            s2[0, D] = tot[K, nu:nu + D]
        else:
            s2[:, 0, :] = tot[:K, D + 1:2 * D + 1]
        return Stats(ct, nk, s1, s2, ll, shift, gshift)

    def _use_gemm(self, ep):
        """Whether the pass at ``ep`` runs as matrix products: from GEMM_MIN_D
        features where CuPy is there; 'diag' / 'spherical' only within
        GEMM_DIAG_MAX_Q (each feature's range found once a call)."""
        cp = _cupy()
        if GEMM_MIN_D is None or cp is None or self.n_features < GEMM_MIN_D:
            return False
        if ep.ct in (FULL, TIED):
            return True
        if GEMM_DIAG_MAX_Q is None:
            return False
        if self._range is None:
            X = self.Xh if self.Xh is not None else cp.asarray(self.Xd)
            self._range = column_range(np if self.Xh is not None else cp, X)
        return diag_product_bound(ep, *self._range) <= GEMM_DIAG_MAX_Q

    # ----------------------------------------------------- the driver's API
    given_stats = _quiet(CPUEngine.given_stats)

    @_quiet
    def stats(self, ep):
        """One fused E+M pass at ``ep``: matrix products from GEMM_MIN_D features
        (where CuPy is there; for 'diag' / 'spherical' only within
        GEMM_DIAG_MAX_Q), else the kernels of ``_cuda_kernels``."""
        if self._use_gemm(ep):
            cp = _cupy()
            w = cp.asarray(self.wd) if self.wd.shape[0] else None
            X = self.Xh if self.Xh is not None else cp.asarray(self.Xd)
            if ep.ct in (DIAG, SPHERICAL):
                return diag_products(cp, X, w, ep, cp.asnumpy)
            return gemm_stats(cp, X, w, ep, cp.asnumpy)
        return CPUEngine.stats(self, ep)

    @_quiet
    def log_prob(self, ep, out):
        mode = OUTPUTS[out]
        n, D = self.n_samples, self.n_features
        _check_features(ep.ct, D)
        K = ep.means.shape[0]
        means, pc, aux, log_det, log_w = (cuda.to_device(np.ascontiguousarray(a)) for a in ep)
        chunk = self._chunk(K)
        m0 = min(chunk, n)
        LP = cuda.device_array((K, m0), dtype=np.float64)
        lse = cuda.device_array(m0 if mode == OUT_LSE else 0, dtype=np.float64)
        lab = cuda.device_array(m0 if mode == OUT_LABEL else 0, dtype=np.int32)
        parts = []
        for c0 in range(0, n, chunk):
            m = min(chunk, n - c0)
            Xv, wv, _ = self._rows_at(c0, m, self.wd, lab[:0])
            self._estep(ep.ct, Xv, m, wv, means, pc, aux, log_det, log_w,
                        _LOG_MODE[mode], LP, lse, lab)
            if mode == OUT_LABEL:
                parts.append(lab[:m].copy_to_host().astype(np.int64))
            elif mode == OUT_RESP:
                parts.append(LP[:, :m].copy_to_host().T)
            else:
                parts.append(lse[:m].copy_to_host())
        res = np.concatenate(parts)
        return res if mode == OUT_LABEL else res.astype(self.dtype, copy=False)

    # the CPU engine's start from the chosen rows alone indexes X with an index array,
    # which device arrays do not take: the start runs on the device, as before
    subset = None

    @_quiet
    def rows(self, indices):
        if self.Xh is not None:
            return CPUEngine.rows(self, indices)
        idx = cuda.to_device(np.ascontiguousarray(indices, dtype=np.int64))
        out = cuda.device_array((len(indices), self.n_features), dtype=np.float64)
        kern.gather[(max(1, len(indices)), max(1, -(-self.n_features // 32))), (1, 32)](
            self.Xd, idx, out)
        return out.copy_to_host()

    @_quiet
    def kmeans_labels(self, n_clusters, random_state):
        """scikit-learn's KMeans(n_init=1) on the device: labels (device int32),
        centres (float64, host) and rows a cluster (host); streamed data: on the
        host (the CPU engine's)."""
        if self.Xh is not None:
            return CPUEngine.kmeans_labels(self, n_clusters, random_state)
        return _DeviceKMeans(self).fit(n_clusters, random_state)

    @_quiet
    def kmeans_plusplus(self, n_clusters, random_state):
        if self.Xh is not None:
            return CPUEngine.kmeans_plusplus(self, n_clusters, random_state)
        km = _DeviceKMeans(self)
        idx, _ = km.plusplus(n_clusters, random_state, np.zeros(self.n_features))
        return idx


class _DeviceKMeans:
    """scikit-learn's greedy k-means++ and Lloyd, host control flow (the same draws
    in the same order as ``_kmeans`` and scikit-learn), device passes."""

    def __init__(self, engine):
        self.e = engine
        self.n, self.d = engine.n_samples, engine.n_features
        self.ntiles = _tiles(self.n)

    def _mean(self):
        """X.mean(axis=0) (float64), from the statistics of one 1-component pass."""
        labels = cuda.to_device(np.zeros(self.n, dtype=np.int32))
        # unit weights: KMeans centres the data on its plain mean
        st = self.e._pass(SPHERICAL, MODE_LABELS, None, np.zeros((1, self.d)),
                          np.zeros(self.d), labels=labels, unit=True)
        return st.s1[0] / self.n

    def plusplus(self, K, random_state, xmean):
        e, n, d = self.e, self.n, self.d
        L = 2 + int(np.log(K))
        if L > kern.LMAX:
            raise ValueError(f"n_components={K} is too large for the CUDA k-means start")
        sw = e.sample_weight
        sw_draw = None if sw is None else np.asarray(sw, dtype=e.dtype)
        center_id = first_center(random_state, n, sw_draw, e.dtype)
        indices = np.full(K, -1, dtype=np.int64)
        indices[0] = center_id
        xm = cuda.to_device(np.ascontiguousarray(xmean, dtype=np.float64))
        C = np.zeros((K, d))
        C[0] = e.rows([center_id])[0] - xmean
        closest = cuda.device_array(n, dtype=np.float64)
        kern.km_update[_grid(n), kern.NT](e.Xd, xm, closest, cuda.to_device(C[0]), True)
        tile_pot = cuda.device_array((self.ntiles, kern.LMAX), dtype=np.float64)
        kern.km_cands[self.ntiles, kern.NT](e.Xd, xm, e.wd, closest, cuda.to_device(C[:1]), 1,
                                            True, tile_pot)
        tot = tile_pot.copy_to_host()[:, 0]
        current_pot = tot.sum()
        cand_ids = cuda.device_array(L, dtype=np.int64)
        for c in range(1, K):
            rand_vals = random_state.uniform(size=L) * current_pot
            # the tile where the running sum reaches each value, then the row in it
            cum = np.cumsum(tot)
            tiles = np.minimum(np.searchsorted(cum, rand_vals), self.ntiles - 1)
            bases = np.where(tiles > 0, cum[np.maximum(tiles - 1, 0)], 0.0)
            kern.km_scan[L, kern.NT](closest, e.wd, cuda.to_device(tiles.astype(np.int64)),
                                     cuda.to_device(bases), cuda.to_device(rand_vals), cand_ids)
            candidate_ids = np.minimum(cand_ids.copy_to_host(), n - 1)
            cands = e.rows(candidate_ids) - xmean
            kern.km_cands[self.ntiles, kern.NT](e.Xd, xm, e.wd, closest, cuda.to_device(cands),
                                                L, False, tile_pot)
            per_tile = tile_pot.copy_to_host()[:, :L]
            pots = per_tile.sum(axis=0)
            best = int(np.argmin(pots))
            current_pot = pots[best]
            tot = np.ascontiguousarray(per_tile[:, best])
            indices[c] = candidate_ids[best]
            C[c] = cands[best]
            kern.km_update[_grid(n), kern.NT](e.Xd, xm, closest, cuda.to_device(C[c]), False)
        return indices, C

    def _sums(self, labels, K, xmean, unit=False):
        """Per cluster: the weighted sums of the centred rows and the weights."""
        shift = np.repeat(np.asarray(xmean, dtype=np.float64)[None], K, axis=0)
        st = self.e._pass(SPHERICAL, MODE_LABELS, None, shift, np.zeros(self.d),
                          labels=labels, unit=unit)
        return st.s1, st.nk

    def fit(self, K, random_state):
        e, n, d = self.e, self.n, self.d
        xmean = self._mean()
        _, centers = self.plusplus(K, random_state, xmean)
        xm = cuda.to_device(xmean)
        labels = cuda.device_array(n, dtype=np.int32)
        changed_t = cuda.device_array(self.ntiles, dtype=np.float64)
        sq_t = cuda.device_array(self.ntiles, dtype=np.float64)
        tol = LLOYD_TOL
        strict = False
        for it in range(LLOYD_MAX_ITER):
            kern.km_assign[self.ntiles, kern.NT](e.Xd, xm, cuda.to_device(centers), labels,
                                                 it == 0, changed_t, sq_t)
            changed = float(changed_t.copy_to_host().sum())
            if it == 0:
                tol = tol * float(sq_t.copy_to_host().sum()) / (n * d)
            sums, weights = self._sums(labels, K, xmean)
            self._relocate(centers, sums, weights, labels, xm)
            new = sums.copy()
            nz = weights > 0
            new[nz] /= weights[nz][:, None]
            shift_tot = float(((new - centers) ** 2).sum())
            centers = new
            if changed == 0:
                strict = True
                break
            if shift_tot <= tol:
                break
        if not strict:
            kern.km_assign[self.ntiles, kern.NT](e.Xd, xm, cuda.to_device(centers), labels,
                                                 False, changed_t, sq_t)
        _, counts = self._sums(labels, K, xmean, unit=True)
        counts = np.rint(counts).astype(np.int64)
        distinct = int(np.count_nonzero(counts))
        if distinct < K:
            warnings.warn(
                "Number of distinct clusters ({}) found smaller than "
                "n_clusters ({}). Possibly due to duplicate points "
                "in X.".format(distinct, K),
                ConvergenceWarning,
                stacklevel=2,
            )
        return labels, centers + xmean, counts

    def _relocate(self, centers_old, sums, weights, labels, xm):
        """scikit-learn's ``_relocate_empty_clusters_dense`` (distances on the
        device, the n distances on the host only when a cluster is empty)."""
        empty = np.where(weights == 0)[0]
        if empty.shape[0] == 0:
            return
        e, n = self.e, self.n
        dist = cuda.device_array(n, dtype=np.float64)
        kern.km_dist_own[_grid(n), kern.NT](e.Xd, xm, cuda.to_device(centers_old), labels, dist)
        distances = dist.copy_to_host()
        lab = labels.copy_to_host()
        far = np.argpartition(distances, -empty.shape[0])[: -empty.shape[0] - 1: -1]
        sw = e.sample_weight
        xmean = xm.copy_to_host()
        for idx in range(empty.shape[0]):
            new_id, far_idx = empty[idx], far[idx]
            weight = 1.0 if sw is None else float(sw[far_idx])
            old_id = lab[far_idx]
            x = e.rows([far_idx])[0] - xmean
            sums[old_id] -= x * weight
            sums[new_id] = x * weight
            weights[new_id] = weight
            weights[old_id] -= weight
