"""Benchmark configuration: shapes shrink 100x in quick mode (--benchmark-disable,
or FASTGMM_BENCH_QUICK=1 to time the shrunk shapes)."""

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "large: shapes of a million rows or d = 64")


@pytest.fixture(scope="session")
def quick(request):
    return bool(request.config.getoption("benchmark_disable", default=False)
                or os.environ.get("FASTGMM_BENCH_QUICK"))
