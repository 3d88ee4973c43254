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
import time
from contextlib import contextmanager

import numba
import numpy as np

from ._numba import _signal_and_spin

MIN_WORK = 1 << 16  # a thread's share of a pass at least this much work (about 50 us)

_lock = threading.Lock()
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


# --------------------------------------------------------------- the workers
# A pass's tasks are claimed one at a time by the caller and the workers it woke,
# so a worker that gets no CPU (a busy machine) leaves its share to the others
# instead of holding the pass up. Waking a sleeping thread costs some 25-50 us on
# a virtual machine (the futex wake of a halted vCPU), the whole time of a small
# pass, so a worker spins (without the GIL, in ``_signal_and_spin``) for a while
# after each job before it sleeps, as OpenMP's and TBB's workers do, and the
# caller spins while it waits for the tasks workers claimed. Two threads that
# both want the GIL within a few microseconds make one of them sleep, so the
# caller lingers a few microseconds after its worker started (the worker's way
# from Python into its kernel).

POST, STARTED, IDLE = 0, 8, 16  # a worker's state words, a cache line apart
SPIN_US, START_US, LINGER_US = 400.0, 10.0, 6.0


_looks_per_us = None


def _looks(us):
    """Spin looks that take about ``us`` microseconds on this machine: the fastest
    of several probes. One probe taken while the CPU was shared (another process,
    BLAS's threads spinning after a product) read half the rate, and the spins
    half as long made the workers sleep between the passes of a small fit and
    wake at each (10k x 8, K = 4 Bayesian fits: 2.0 against 1.4 ms); a spin longer
    than meant costs only its CPU time."""
    global _looks_per_us
    if _looks_per_us is None:
        probe = np.zeros(1, dtype=np.int64)
        _signal_and_spin(probe, -1, 0, 0, 1, 10, 0)  # compiled (or loaded) first
        n, best = 50_000, 1e-3
        for _ in range(8):
            t0 = time.perf_counter()
            _signal_and_spin(probe, -1, 0, 0, 1, n, 0)
            best = max(best, n / max((time.perf_counter() - t0) * 1e6, 1e-3))
        _looks_per_us = best
    return int(us * _looks_per_us)


class _Worker:
    """One pool thread: its state words (read and written without the GIL), its
    job, and a condition for its sleep. It puts itself back among the idle
    workers when its job returns."""

    def __init__(self):
        self.state = np.zeros(IDLE + 1, dtype=np.int64)
        self.cond = threading.Condition(threading.Lock())
        self.job = None
        self.posted = 0  # jobs handed to it
        self.sleeping = False  # the worker sleeps on cond
        threading.Thread(target=self._loop, name="fastgmm", daemon=True).start()

    def _loop(self):
        st, spins, seq = self.state, _looks(SPIN_US), 0
        while True:
            seq += 1
            # "idle after job seq - 1" said from outside the GIL, then wait for job seq
            if not _signal_and_spin(st, IDLE, seq - 1, POST, seq, spins, 0):
                with self.cond:
                    self.sleeping = True
                    while st[POST] < seq:
                        self.cond.wait()
                    self.sleeping = False
            job, self.job = self.job, None
            job(st, seq)  # never raises: a call's part records its tasks' errors
            del job
            with _lock:
                _idle.append(self)

    def post(self, job):
        self.job = job
        self.posted += 1
        seq = self.posted
        if self.sleeping:
            with self.cond:
                self.state[POST] = seq
                self.cond.notify_all()
        elif not _signal_and_spin(self.state, POST, seq, STARTED, seq, _looks(START_US),
                                  _looks(LINGER_US)):
            with self.cond:  # it fell asleep meanwhile, or has no CPU yet
                self.cond.notify_all()


_idle = []  # workers no call holds (under _lock)


def _claim(n):
    """Up to n idle workers for one call, new ones where fewer are idle (several
    Python threads may run passes at once; a worker a call no longer needs may
    still be on its way back)."""
    with _lock:
        got = _idle[len(_idle) - n:] if n <= len(_idle) else list(_idle)
        del _idle[len(_idle) - len(got):]
    while len(got) < n:
        got.append(_Worker())
    return got


def run(task, n_threads):
    """task(t, n_threads) for t in range(n_threads), each exactly once, by the
    calling thread and n_threads - 1 pool workers, each of which claims the next
    task left until none is (so a worker that gets no CPU on a busy machine leaves
    its task to the others: at worst the caller runs them all). Returns once every
    task has finished, then raises the error of the first task that failed (the
    tasks write into the caller's buffers: none may outlive the call)."""
    if n_threads <= 1:
        task(0, 1)
        return
    claims = itertools.count()  # next() on it is atomic under the GIL
    finished = np.zeros(1, dtype=np.int64)  # tasks done, read without the GIL
    count_lock = threading.Lock()
    done = threading.Condition(threading.Lock())
    caller_sleeping = [False]
    errors = []

    def part(state=None, seq=0):
        for t in iter(claims.__next__, None):
            if state is not None:  # a worker: "started" once it holds a task (or none)
                state[STARTED] = seq
                state = None
            if t >= n_threads:
                return
            try:
                task(t, n_threads)
            except BaseException as e:  # noqa: BLE001 - raised by the caller
                errors.append((t, e))
            with count_lock:
                finished[0] += 1
            if caller_sleeping[0]:
                with done:
                    done.notify_all()

    for worker in _claim(n_threads - 1):
        worker.post(part)
    part()  # the caller's own claims
    if not _signal_and_spin(finished, -1, 0, 0, n_threads, _looks(SPIN_US), 0):
        with done:
            caller_sleeping[0] = True
            while finished[0] < n_threads:
                done.wait()
            caller_sleeping[0] = False
    if errors:
        raise min(errors, key=lambda te: te[0])[1]


def run_chunks(kernel_call, n_threads):
    """kernel_call(claim) on n_threads threads: the kernel takes a pass's chunks one
    at a time from the shared counter ``claim`` (``_numba.next_chunk``, an atomic
    increment inside the kernel), so that a thread slowed by a neighbour on the
    machine takes fewer, at no cost a chunk (a claim in Python cost a kernel call,
    some 10 us). One thread: an empty claim, every chunk in order. Which thread
    ran a chunk never changes a result: each chunk has its own slot."""
    if n_threads <= 1:
        kernel_call(_NO_CLAIM)
        return
    claim = np.zeros(1, dtype=np.int64)
    run(lambda t, T: kernel_call(claim), n_threads)


_NO_CLAIM = np.zeros(0, dtype=np.int64)  # never written: one thread takes every chunk


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
    global _lock, _idle, _blas_lock, _blas_users, _blas_limiter
    _lock = threading.Lock()
    _idle = []
    _blas_lock = threading.Lock()
    _blas_users = 0
    _blas_limiter = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
