"""Threads: results are bitwise identical whatever the thread count; several Python
threads fit at once, each as alone; nothing process-wide changes; the budget of a
joblib worker is honoured; small work runs on one thread."""

import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numba
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info

from fastgmm import GaussianMixture, _pool
from fastgmm._numba import next_chunk

from conftest import COV_TYPES


def _data(d=5, n=20_000):
    rng = np.random.RandomState(0)
    # ragged: the last block is short
    X = np.concatenate([rng.normal(size=(n // 4, d)) * (1 + k) + 5 * k for k in range(4)])
    return X[:-37]


def _fit(X, n_jobs, sw=None, **kw):
    gm = GaussianMixture(4, random_state=0, max_iter=15, tol=0, n_jobs=n_jobs, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X, sample_weight=sw)
    return gm, gm.score_samples(X), gm.predict_proba(X)


def _assert_same(a, b):
    (ga, ssa, ppa), (gb, ssb, ppb) = a, b
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(ga, attr), getattr(gb, attr)), attr
    assert ga.lower_bounds_ == gb.lower_bounds_
    assert np.array_equal(ssa, ssb) and np.array_equal(ppa, ppb)


@pytest.mark.parametrize("covariance_type,d,init",
                         [(ct, 5, "random") for ct in COV_TYPES]
                         + [("full", 5, "kmeans"), ("full", 20, "random"),
                            ("tied", 3, "k-means++")])
def test_bitwise_identical_across_thread_counts(covariance_type, d, init, monkeypatch,
                                                spy_threads):
    """1, 2 and 3 threads (3: uneven shares; the spy raises the budget, and the
    small-work rule is off, so that each count does run). The threads claim the
    statistics' chunks one at a time: which thread ran which chunk differs from
    pass to pass, the results do not."""
    monkeypatch.setattr(_pool, "MIN_WORK", 1)
    X = _data(d)
    sw = np.random.RandomState(1).uniform(0, 2, size=X.shape[0])
    results = []
    for n_jobs in (1, 2, 3, 2, 3):
        spy_threads.clear()
        results.append(_fit(X, n_jobs, sw, covariance_type=covariance_type,
                            init_params=init))
        assert max(spy_threads) == n_jobs
    for res in results[1:]:
        _assert_same(results[0], res)


def test_more_threads_than_blocks():
    X = _data()[:300]  # two blocks
    fits = [GaussianMixture(2, random_state=0, n_jobs=j).fit(X) for j in (1, -1)]
    assert np.array_equal(fits[0].means_, fits[1].means_)


def test_small_work_runs_on_one_thread(spy_threads):
    """A small fit with the default n_jobs: every pass on the calling thread
    (threads would cost more than they save; on a busy machine, far more). 2000
    rows: 8 blocks, so that only the small-work rule keeps it on one thread (an
    iris-sized fit is one block, one chunk: it could not tell)."""
    X = _data(4, n=2000)
    GaussianMixture(3, covariance_type="diag", random_state=0).fit(X).predict(X)
    assert spy_threads and set(spy_threads) == {1}


def _blas_threads():
    return [(i["internal_api"], i["filepath"], i["num_threads"]) for i in threadpool_info()
            if i["user_api"] == "blas"]


def _at_once(work, args):
    """work(*a) for each a in args, each in its own Python thread, all started
    together (a barrier); returns the errors they raised."""
    errors, start = [], threading.Barrier(len(args))

    def guarded(*a):
        try:
            start.wait()
            work(*a)
        except BaseException as e:  # noqa: BLE001 - returned to the test
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("d", [5, 20])
def test_python_threads_fit_at_once_each_as_alone(d, monkeypatch):
    """Four Python threads fit and predict at once with different n_jobs: each
    gets the bits it gets alone, and BLAS's and Numba's thread counts are as they
    were (d = 20: the tiled path, which holds BLAS at one thread while it runs)."""
    monkeypatch.setattr(_pool, "MIN_WORK", 1)  # every pass on its n_jobs threads
    X = _data(d, n=8000)

    def fit(n_jobs):  # converges: no warning filters (not thread-safe) needed
        gm = GaussianMixture(4, random_state=0, tol=1e-2, n_jobs=n_jobs).fit(X)
        return gm, gm.score_samples(X), gm.predict_proba(X)

    alone = {n: fit(n) for n in (1, 2)}
    blas_before, numba_before = _blas_threads(), numba.get_num_threads()
    got = {}

    def work(key, n_jobs):
        got[key] = fit(n_jobs)

    errors = _at_once(work, [(i, 1 + i % 2) for i in range(4)])
    assert not errors, errors
    for i in range(4):
        _assert_same(got[i], alone[1 + i % 2])
    assert _blas_threads() == blas_before
    assert numba.get_num_threads() == numba_before


def test_python_threads_with_int_seeds_draw_each_its_own_start():
    """A fit given an int seed draws from a RandomState kept for its thread and
    seeded again: four Python threads fitting at once with different seeds and
    'random' starts (drawn chunk by chunk between the passes) each get the model
    they get alone, and a fit's draws are RandomState(seed)'s."""
    X = _data(3, n=20000)

    def fit(seed):  # converges: no warning filters (not thread-safe) needed
        return GaussianMixture(3, init_params="random", random_state=seed, tol=1e-2,
                               n_jobs=1).fit(X).means_

    alone = {seed: fit(seed) for seed in range(4)}
    np.testing.assert_array_equal(
        GaussianMixture(3, init_params="random", random_state=np.random.RandomState(2),
                        tol=1e-2, n_jobs=1).fit(X).means_, alone[2])
    got = {}

    def work(seed):
        for rep in range(5):
            got[seed, rep] = fit(seed)

    errors = _at_once(work, [(seed,) for seed in range(4)])
    assert not errors, errors
    for (seed, rep), means in got.items():
        np.testing.assert_array_equal(means, alone[seed])


def test_errors_in_a_pass_leave_nothing_changed():
    blas_before, numba_before = _blas_threads(), numba.get_num_threads()
    X = np.zeros((10, 2))
    X[:5] = 1.0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, reg_covar=0, n_jobs=2, random_state=0).fit(X)
    assert _blas_threads() == blas_before and numba.get_num_threads() == numba_before


def _run(code, env=None):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=900, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_numbas_threads_are_never_started_and_n_jobs_1_uses_no_pool():
    """In a fresh process: fits, predictions and every start leave Numba's
    threading layer unstarted (nothing fork-unsafe, no process-wide count); with
    n_jobs=1 no pool thread exists; with n_jobs=2 on enough work one does."""
    out = _run("""
        import threading
        import numpy as np
        from numba.np.ufunc import parallel
        from fastgmm import GaussianMixture

        X = np.random.RandomState(0).randn(50_000, 3)
        pool = lambda: sum(t.name.startswith("fastgmm") for t in threading.enumerate())
        for init in ("kmeans", "k-means++", "random", "random_from_data"):
            for ct in ("full", "tied", "diag", "spherical"):
                gm = GaussianMixture(3, covariance_type=ct, init_params=init, max_iter=3,
                                     random_state=0, n_jobs=1).fit(X)
                gm.predict_proba(X)
        print(pool())
        GaussianMixture(3, random_state=0, max_iter=3, n_jobs=2).fit(X)
        print(pool() > 0, parallel._is_initialized)
    """)
    assert out.split() == ["0", "True", "False"]


def test_a_joblib_worker_budget_is_honoured():
    """Inside a loky worker of Parallel(n_jobs=2) the default thread count is the
    worker's share (loky sets NUMBA_NUM_THREADS as it sets BLAS's limits)."""
    from joblib import Parallel, delayed

    def worker_budget():
        from fastgmm import _pool as P
        return P.budget(), P.resolve_n_jobs(None)

    got = Parallel(n_jobs=2, backend="loky")(delayed(worker_budget)() for _ in range(2))
    share = max(1, (os.cpu_count() or 1) // 2)
    assert all(b == share and r == share for b, r in got), got


def test_grid_search_in_loky_workers_matches_one_process():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    X = load_digits().data[:600]
    grid = {"n_components": [2, 4], "covariance_type": ["diag", "spherical"]}
    kw = dict(random_state=0, reg_covar=1e-2, max_iter=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = [GridSearchCV(GaussianMixture(**kw), grid, cv=3, n_jobs=j,
                            error_score="raise").fit(X).cv_results_ for j in (1, 2)]
    np.testing.assert_array_equal(res[0]["mean_test_score"], res[1]["mean_test_score"])


@pytest.mark.parametrize("n_jobs", [0, 1.5, "2"])
def test_bad_n_jobs(n_jobs):
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="The 'n_jobs' parameter"):
        GaussianMixture(2, n_jobs=n_jobs).fit(_data(n=400))


def test_the_pool_serves_calls_of_every_size_at_once():
    """Sixteen Python threads run passes of 2 to 16 threads at once, so the pool
    grows while others use it: every task of every call runs, none fails (a
    replaced pool was shut down under a caller about to submit to it)."""
    def caller(i):
        for _ in range(30):
            n = 2 + i % 15
            seen = np.zeros(n, dtype=np.int64)

            def task(t, T):
                seen[t] += T

            _pool.run(task, n)
            assert (seen == n).all()

    errors = _at_once(caller, [(i,) for i in range(16)])
    assert not errors, errors[:3]


def test_a_failing_task_fails_the_call_after_the_others_finish():
    done = []

    def task(t, T):
        if t == 1:
            raise ValueError("task 1")
        done.append(t)

    with pytest.raises(ValueError, match="task 1"):
        _pool.run(task, 3)
    assert sorted(done) == [0, 2]


def _within(seconds, fn):
    """fn() in a thread; fails (instead of hanging) if it takes longer."""
    out, box = threading.Thread(target=lambda: box.append(fn())), []
    out.daemon = True
    out.start()
    out.join(seconds)
    assert not out.is_alive(), "the pass hung"
    return box[0]


def test_sleeping_workers_wake_and_slow_workers_are_waited_for():
    """A worker spins a while after its job, then sleeps; the next call must wake
    it. A caller whose worker runs long stops spinning and sleeps; the worker's end
    must wake it. Both slow paths, with every task's result seen."""
    import time

    def one_pass(slow):
        seen = np.zeros(3, dtype=np.int64)
        ran_on_worker = []
        main = threading.get_ident()  # the caller (_within runs this in a thread)

        def task(t, T):
            if slow:
                if threading.get_ident() == main:
                    time.sleep(0.002)  # let the workers claim the other tasks
                else:
                    ran_on_worker.append(t)
                    time.sleep(0.02)  # far beyond the caller's spin
            seen[t] = 1

        _pool.run(task, 3)
        return seen, ran_on_worker

    assert _within(10, lambda: one_pass(False))[0].all()
    time.sleep(0.05)  # far beyond the workers' spin: they sleep now
    with _pool._lock:
        idle = list(_pool._idle)
    assert len(idle) >= 2 and all(w.sleeping for w in idle)
    assert _within(10, lambda: one_pass(False))[0].all()
    seen, on_worker = _within(10, lambda: one_pass(True))
    assert seen.all() and on_worker  # a worker ran a slow task: the caller slept
    assert _within(10, lambda: one_pass(False))[0].all()


def test_a_worker_without_cpu_leaves_its_task_to_the_caller(monkeypatch):
    """Tasks are claimed, not assigned: a worker that never gets to run (no CPU on a
    busy machine; here a worker whose job is never started) leaves its share to
    the caller, which runs every task itself instead of waiting."""
    ran, caller = [], []

    class Stalled:
        def post(self, job):
            pass  # never runs it

    monkeypatch.setattr(_pool, "_claim", lambda n: [Stalled() for _ in range(n)])

    def task(t, T):
        ran.append((t, threading.get_ident() == caller[0]))

    def call():
        caller.append(threading.get_ident())
        _pool.run(task, 3)

    _within(10, call)
    assert sorted(ran) == [(0, True), (1, True), (2, True)]


@numba.njit(nogil=True)
def _take_chunks(claim, n, seen, order):
    """Chunks as a pass's kernel takes them: seen[c] += 1 for each chunk c this
    thread got, order[j] = c in the order it got them (its own row of order)."""
    j = 0
    c = next_chunk(claim, -1)
    while c < n:
        seen[c] += 1
        order[j] = c
        j += 1
        c = next_chunk(claim, c)
    return j


def test_threads_take_each_chunk_exactly_once():
    """``next_chunk``: three threads take 1M chunks from one counter at once: every
    chunk taken once and n takes in all (an increment that is not atomic, a read
    then a write, hands a chunk to two threads whenever they overlap), each
    thread's chunks rising. A race shows only where the threads do overlap, so the
    trial repeats until three trials in which two threads each took a tenth of
    the chunks or more (at most 30 trials; a machine too busy for any still
    passes). Alone, with no counter, one thread takes every chunk in order."""
    n = 1_000_000
    seen = np.zeros(n, dtype=np.int64)
    order = np.full((3, n), -1, dtype=np.int64)
    _take_chunks(np.zeros(1, dtype=np.int64), 0, seen, order[0])  # compiled first
    overlapped = 0
    for _ in range(30):
        seen[:] = 0
        claim = np.zeros(1, dtype=np.int64)
        taken = [0, 0, 0]

        def one(t):
            taken[t] = _take_chunks(claim, n, seen, order[t])

        assert not _at_once(one, [(0,), (1,), (2,)])
        assert sum(taken) == n and np.all(seen == 1) and claim[0] >= n
        for t in range(3):
            assert np.all(np.diff(order[t, :taken[t]]) > 0)
        overlapped += sorted(taken)[1] >= n // 10
        if overlapped >= 3:
            break
    seen[:] = 0
    assert _take_chunks(np.zeros(0, dtype=np.int64), 1000, seen, order[0]) == 1000
    assert np.array_equal(order[0, :1000], np.arange(1000)) and np.all(seen[:1000] == 1)
