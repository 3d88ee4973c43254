"""One place for the Numba options and the geometry of a pass.

Every kernel is a serial ``nogil`` function over a fixed range of row blocks;
fastgmm's own threads (``_pool``) run several at once. No kernel uses
``parallel=True``: serial kernels compile in a fraction of the time, leave
Numba's threading layer untouched (nothing to be fork-unsafe, no process-wide
thread count), and let several Python threads fit at once.

Determinism: rows are cut into blocks of a constant size, blocks into ``chunks``
(a number that depends only on the problem's shape), each chunk adds its blocks
in order into its own slot, and the slots are added in order. No result depends
on how many threads run or which thread ran which chunk.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# No 'nnan'/'ninf': log-space code relies on -inf and NaN being honoured.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

BLOCK = 256  # rows per block
MAX_CHUNKS = 64  # slots of a pass at most (the threads' shares are made of them)
SLOT_BYTES = 64 << 20  # all slots of a pass together at most about this

def _source_stamp():
    """A digest of the kernels' source files. Numba's on-disk cache checks only the
    file of the function it loads, not the files of the functions that one calls:
    after an edit of ``_estep.py`` a cached pass of ``_accumulate.py`` still ran the
    old helpers (measured: a 3.5x slower transpose). The pass builders put this
    digest into their closures, whose contents are part of the cache key."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("_numba.py", "_estep.py", "_accumulate.py", "_kmeans_kernels.py",
                 "_lloyd_kernels.py", "_small.py", "_mstep.py", "_variational.py"):
        try:
            digest.update((here / name).read_bytes())
        except OSError:  # a zipped or frozen install: no stamp, as Numba alone
            pass
    return digest.hexdigest()[:16]


SOURCE_STAMP = _source_stamp()


_OPTIONS = dict(cache=True, error_model="numpy", nogil=True)
# helpers that only kernels call: no Python or C wrapper to generate (less to compile
# on first use); such a helper cannot be called from Python
_INNER = dict(no_cpython_wrapper=True, no_cfunc_wrapper=True)


def jit(**kwargs):
    """The package's kernels: cached, NumPy's error model, the fastmath set above."""
    return njit(fastmath=FASTMATH, **_OPTIONS, **kwargs)


def jit_inner(**kwargs):
    """``jit`` for helpers only kernels call (see ``_INNER``)."""
    return jit(**_INNER, **kwargs)


def jit_exact(func):
    """No fastmath, for sums whose order is part of the result (scikit-learn's
    float32 order). ``fastmath=False`` is spelt out: a kernel that leaves it unset
    inherits its caller's fastmath, whose 'reassoc' lets LLVM reorder the sum."""
    return njit(fastmath=False, **_OPTIONS)(func)


def jit_exact_inner(func):
    """``jit_exact`` for helpers only kernels call (see ``_INNER``)."""
    return njit(fastmath=False, **_OPTIONS, **_INNER)(func)


def jit_fma_inner(func):
    """A helper whose products and sums may fuse into multiply-adds (LLVM's
    'contract') but are never reordered ('reassoc' off): for sums whose written
    order is their accuracy, inlined into fast-math loops with its own flags."""
    return njit(fastmath={"contract"}, **_OPTIONS, **_INNER)(func)


def n_chunks(n_blocks, slot_bytes):
    """Slots of a pass: a function of the shape only (never of the thread count),
    their memory capped at SLOT_BYTES."""
    return int(max(1, min(n_blocks, MAX_CHUNKS, SLOT_BYTES // max(1, slot_bytes))))


def _item_pointer(context, builder, sig, args):
    """In an intrinsic's codegen: the address of arr[idx] (the first two arguments)."""
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])


@intrinsic
def wide_vectors(typingctx):
    """The first statement of every CPU kernel and helper: lets LLVM vectorise the
    calling function's loops with 512-bit vectors where the CPU has them (the
    function attribute ``"prefer-vector-width"="512"``). LLVM's tuning for Intel's
    AVX-512 CPUs otherwise keeps its loop vectoriser to 256-bit vectors (against
    the wide units' lower clock), and Numba offers no switch but the process-wide
    ``NUMBA_CPU_FEATURES``. Per function, because a helper's loops are vectorised
    in its own module before it is inlined: its caller's attribute comes too late.
    Harmless on CPUs without AVX-512 (the widest vectors are what they are) and on
    other architectures (the attribute is x86's). Measured on this project's 2-core
    AVX-512 VM, one thread, 200k x 64, K = 32 'diag' pass pieces: log-densities 69
    -> 47 ms, responsibilities 20 -> 12, moments 81 -> 61."""
    def codegen(context, builder, sig, args):
        # llvmlite's attribute set only admits attributes without values; the
        # string attribute is written into the IR as it is
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def as_float64(typingctx, bits):
    """The float64 whose bits are the int64 ``bits`` (a register move; in a loop
    over arrays it vectorises, where writing the integers and reading them back
    through a float64 view of the array takes a loop of its own)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


@intrinsic
def _load_acquire(typingctx, arr, idx):
    """arr[idx] (int64), an atomic load with acquire order."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _store_release(typingctx, arr, idx, val):
    """arr[idx] = val (int64), an atomic store with release order."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _item_pointer(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@intrinsic
def _fetch_add(typingctx, arr, idx):
    """arr[idx] += 1 as one atomic step (int64 arr); returns the value before."""
    def codegen(context, builder, sig, args):
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", _item_pointer(context, builder, sig, args), one,
                                  "monotonic")

    return types.int64(arr, idx), codegen


@njit(nogil=True, cache=True)
def _signal_and_spin(state, store_at, value, watch, target, spins, linger):
    """Without the GIL: state[store_at] = value (where store_at >= 0), then spin
    until state[watch] >= target (True) or ``spins`` looks have failed (False);
    once seen, ``linger`` looks more. The pool's spin (``_pool``); here, in one
    file with the intrinsics it inlines, because Numba's cache checks a cached
    function against its own file only."""
    if store_at >= 0:
        _store_release(state, store_at, value)
    seen = False
    for _ in range(spins):
        if _load_acquire(state, watch) >= target:
            seen = True
            break
    if not seen:
        return _load_acquire(state, watch) >= target
    last = 0
    for _ in range(linger):
        last += _load_acquire(state, watch)
    return last >= 0


@jit_inner()
def next_chunk(claim, c):
    """The chunk a kernel's thread works on after chunk c (-1: its first). An
    empty ``claim``: every chunk in order, c + 1 (one thread). Else (int64, 1)
    shared by the pass's threads: the next chunk no thread has taken yet, one
    atomic increment, so that a thread that gets no CPU for a while holds up at
    most the chunk it is in, and the others take the rest. Which thread ran a
    chunk never changes a result: each chunk has its own slot."""
    wide_vectors()
    if claim.shape[0] == 0:
        return c + 1
    return _fetch_add(claim, 0)


@jit()
def block_range(c, n_blocks, n_chunk):
    """Chunk c covers blocks [c * n_blocks // n_chunk, (c + 1) * n_blocks // n_chunk)."""
    wide_vectors()
    return c * n_blocks // n_chunk, (c + 1) * n_blocks // n_chunk

def work_dtype(X):
    """float32 data is worked on in float32 (scikit-learn's rule), anything else
    (float64, integers) in float64."""

    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
