"""bench/peers.py's worker on a tiny shape, for each library that is installed (the
peers, gmmx and pomegranate, come with the optional 'peers' extra; their cases skip
without it): the per-iteration measurement cannot rot. The figures themselves come
from ``python bench/peers.py``, each library in a process of its own."""

import pytest

import peers


@pytest.mark.parametrize("col,lib,dtype", peers.COLUMNS, ids=[c for c, _, _ in peers.COLUMNS])
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_peer_worker_runs(col, lib, dtype, ct):
    if not peers.installed(lib):
        pytest.skip(f"{lib} is not installed (pip install -e '.[peers]')")
    res = peers.measure(lib, 400, 3, 2, ct, dtype, n_more=1, repeat=1, timeout=600)
    assert "error" not in res, res
    assert res["t1"] > 0 and res["t_more"] > 0
