"""Code generation: every CPU kernel asks LLVM for the CPU's widest vectors
(``_numba.wide_vectors``), and the request reaches the machine code."""

import ast
import re
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from numba import njit

import fastgmm
from fastgmm._numba import wide_vectors

PACKAGE = Path(fastgmm.__file__).resolve().parent
DECORATORS = {"jit", "jit_inner", "jit_exact", "jit_exact_inner", "jit_fma_inner"}


def _decorator_name(node):
    if isinstance(node, ast.Call):
        node = node.func
    return node.id if isinstance(node, ast.Name) else None


def _kernels():
    """(file, function, its first statement after the docstring) of every function
    the package compiles for the CPU (the CUDA kernels are cuda.jit: not these)."""
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                    _decorator_name(d) in DECORATORS for d in node.decorator_list):
                body = node.body
                if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    body = body[1:]
                yield path.name, node.name, body[0]


def test_every_cpu_kernel_asks_for_wide_vectors():
    kernels = list(_kernels())
    assert len(kernels) > 100  # the scan finds the package's kernels (about 115)
    missing = [f"{f}:{name}" for f, name, first in kernels
               if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Call)
                       and _decorator_name(first.value) == "wide_vectors")]
    assert missing == []


@njit(fastmath=True)
def _wide_dot(a, b):
    wide_vectors()
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(fastmath=True)
def _plain_dot(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


def test_wide_vectors_reach_the_machine_code():
    x = np.arange(1000.0)
    assert _wide_dot(x, x) == _plain_dot(x, x) == float(np.dot(x, x))
    ir = _wide_dot.inspect_llvm(_wide_dot.signatures[0])
    assert '"prefer-vector-width"="512"' in ir
    assert '"prefer-vector-width"' not in _plain_dot.inspect_llvm(_plain_dot.signatures[0])
    features = llvm.get_host_cpu_features()
    if not features.get("avx512f"):
        pytest.skip("no AVX-512 on this CPU: 256-bit vectors are its widest")
    asm = _wide_dot.inspect_asm(_wide_dot.signatures[0])
    assert re.search(r"\bzmm\d+", asm)
