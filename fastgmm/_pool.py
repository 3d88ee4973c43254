"""fastgmm's threads: a small pool that runs serial ``nogil`` kernels side by side.

``n_jobs`` is a per-call choice: a call hands its chunks to ``threads_for``
threads (itself and pool threads) and nothing process-wide changes: no Numba
thread count, no threading layer. Several Python threads may fit at once; their
tasks share the pool, and none of its tasks ever waits on another, so they
cannot deadlock. The default budget is ``NUMBA_NUM_THREADS`` (the CPUs this
process may use; joblib's loky workers set it to their share of the machine, as
they do for BLAS), and work too small to gain from threads runs on one.

Where a kernel calls BLAS from inside (the tiled 'full' products), BLAS is held
at one thread while any such call runs (``blas_one_thread``): the kernels'
threads must not fight BLAS's, and a threaded BLAS product can round with its
thread count. The first call in sets the limit, the last one out restores it.
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba

DYNAMIC_BLOCKS = 8  # blocks a chunk from which threads claim chunks one at a time
MIN_WORK = 1 << 16  # a thread's share of a pass at least this much work (about 50 us)

_lock = threading.Lock()
_pool = None
_pool_size = 0
_n_cpus = None


def budget():
    """Threads a call may use by default: NUMBA_NUM_THREADS, read without starting
    Numba's threading layer (``numba.get_num_threads`` would start it)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def n_cpus():
    """The CPUs this process may use (joblib's count: affinity and cgroup quotas)."""
    global _n_cpus
    if _n_cpus is None:
        from joblib import cpu_count

        _n_cpus = max(1, int(cpu_count()))
    return _n_cpus


def resolve_n_jobs(n_jobs):
    """scikit-learn's n_jobs: None the budget, -1 all CPUs, -2 all but one, ...,
    a positive count at most the CPUs."""
    n_cpu = n_cpus()
    if n_jobs is None:
        return budget()
    if n_jobs < 0:
        return max(1, n_cpu + 1 + n_jobs)
    return min(n_jobs, n_cpu)


def threads_for(n_jobs, n_chunk, work):
    """This call's threads: n_jobs, no more than its chunks, one where the work is
    too small to gain from more."""
    return int(max(1, min(resolve_n_jobs(n_jobs), n_chunk, work // MIN_WORK)))


def _get_pool(size):
    """A pool of at least ``size`` threads. A bigger one replaces a smaller one for
    later calls; the smaller is never shut down (a call in another thread may be
    about to submit to it), its idle threads just wait."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < size:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="fastgmm")
            _pool_size = size
        return _pool


def run(task, n_threads):
    """task(t, n_threads) for t in range(n_threads): t = 0 in the calling thread,
    the others in the pool. Waits for all that started, then raises the first
    error (the tasks write into the caller's buffers: none may outlive the call)."""
    if n_threads <= 1:
        task(0, 1)
        return
    pool = _get_pool(n_threads - 1)
    futures, error = [], None
    try:
        for t in range(1, n_threads):
            futures.append(pool.submit(task, t, n_threads))
        task(0, n_threads)
    except BaseException as e:  # noqa: BLE001 - re-raised once the others are done
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error


def run_chunks(kernel_call, n_chunk, n_blocks, n_threads):
    """kernel_call(first, step) runs chunks first, first + step, ... of a pass.
    Several threads claim chunks one at a time where chunks are large (at least
    DYNAMIC_BLOCKS blocks each: a claim costs a kernel call, some 10 us), so that a
    thread slowed by a neighbour on the machine takes fewer; else each thread takes
    every T-th chunk in one call. Which thread ran a chunk never changes a result:
    each chunk has its own slot."""
    if n_threads <= 1:
        kernel_call(0, 1)
    elif n_blocks >= DYNAMIC_BLOCKS * n_chunk:
        claims = itertools.count()  # next() on it is atomic under the GIL

        def task(t, T):
            for c in iter(claims.__next__, None):
                if c >= n_chunk:
                    break
                kernel_call(c, n_chunk)  # chunk c alone

        run(task, n_threads)
    else:
        run(kernel_call, n_threads)


_controller = None
_blas_lock = threading.Lock()
_blas_users = 0  # calls now inside blas_one_thread
_blas_limiter = None  # their shared limit, restored by the last one out


def _blas_controller():
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextmanager
def blas_one_thread(needed=True):
    """BLAS at one thread while any call that needs it runs (see the module doc);
    calls that overlap in several Python threads cannot restore each other's saved
    value."""
    global _blas_users, _blas_limiter
    if not needed:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _after_fork_in_child():
    """The parent's pool threads and the calls that held the BLAS limit do not run
    in a fork child; the locks may have been held by one of them."""
    global _lock, _pool, _pool_size, _blas_lock, _blas_users, _blas_limiter
    _lock = threading.Lock()
    _pool = None
    _pool_size = 0
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_limiter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
