"""fastgmm at two revisions, side by side in one run: no speed regression.

    python bench/before_after.py OLD_TREE [NEW_TREE] [--rounds 2] [-k EXPR]

OLD_TREE / NEW_TREE are checkouts (``git worktree add /tmp/old <rev>``; NEW_TREE
defaults to this one). The fastgmm half of ``bench/test_bench.py`` (this tree's
copy) runs against each tree's package in turn, ``--rounds`` times interleaved,
each run in its own process with a kernel cache of its own per tree (the first
round compiles; take two rounds or more); every case keeps its minimum. Prints
one markdown row per benchmark group: the old and new minimum and new / old.
Run it with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset, as on a user's
machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(tree, select, out, cache):
    # a kernel cache of its own per tree, kept across rounds: nothing stale from an
    # earlier edit, and the rounds after the first run warm
    env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve()), NUMBA_CACHE_DIR=cache)
    cmd = [sys.executable, "-m", "pytest", str(HERE / "test_bench.py"), "-q",
           "-p", "no:cacheprovider", "-k", select, f"--benchmark-json={out}",
           "--benchmark-disable-gc"]
    subprocess.run(cmd, check=True, env=env, cwd=tempfile.gettempdir(),
                   stdout=subprocess.DEVNULL)
    benches = json.loads(Path(out).read_text())["benchmarks"]
    groups = [b["group"] for b in benches]
    # a group with several fastgmm cases (the grid search's n_jobs) names each
    return {b["fullname"]: (b["group"] + (f" {b['param']}" if groups.count(b["group"]) > 1
                                          else ""), b["stats"]["min"]) for b in benches}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("old")
    p.add_argument("new", nargs="?", default=str(HERE.parent))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("-k", dest="select", default="fastgmm")
    a = p.parse_args(argv)
    best = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for side in ("old", "new"):
                res = run(getattr(a, side), a.select, f"{tmp}/{side}{r}.json",
                          f"{tmp}/cache-{side}")
                for name, (group, t) in res.items():
                    g, m = best[side].get(name, (group, float("inf")))
                    best[side][name] = (group, min(m, t))
                print(f"round {r + 1}: {side} done", file=sys.stderr, flush=True)
    print("| group | before | after | after / before |")
    print("|---|---:|---:|---:|")
    for name in sorted(best["new"], key=lambda n: best["new"][n][0]):
        group, t_new = best["new"][name]
        t_old = best["old"].get(name, (group, float("nan")))[1]
        print(f"| {group} | {t_old * 1e3:.1f} ms | {t_new * 1e3:.1f} ms | {t_new / t_old:.2f} |")


if __name__ == "__main__":
    main()
