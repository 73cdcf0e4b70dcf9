"""Subnormal numbers: the compiled plan runs with them flushed to zero (x86-64 FTZ/DAZ), the
kernel-by-kernel loop does the same through _core.flush_subnormals, parallel regions take the
caller's mode, and the caller's mode is put back."""

import platform

import numpy as np
import pytest

import nncore as nn
from nncore import _core

X86 = platform.machine().lower() in ("x86_64", "amd64")
needs_x86 = pytest.mark.skipif(not X86, reason="flushing subnormals is implemented for x86-64")

TINY = {np.float32: np.float32(1e-40), np.float64: np.float64(1e-310)}  # subnormal


def subnormal_product_survives(dtype):
    """numpy's own multiply on this thread: 0 when the thread flushes subnormals."""
    small = dtype(np.finfo(dtype).tiny)
    return (np.array([small], dtype) * dtype(0.5))[0] != 0


@needs_x86
def test_context_flushes_and_restores(dtype):
    assert subnormal_product_survives(dtype)
    with _core.flush_subnormals():
        assert not subnormal_product_survives(dtype)
    assert subnormal_product_survives(dtype)


@needs_x86
@pytest.mark.parametrize("n_threads", [1, 2])
def test_gemm_workers_take_the_callers_mode(cpu_path, dtype, rng, n_threads):
    # Large enough to be split over two threads. A of subnormals only: read as zero in the
    # flush mode (C = 0 on every thread's share), summed to a normal C without it (IEEE).
    a = np.full((128, 64), TINY[dtype], dtype)  # 2^20 multiply-adds: two threads
    b = rng.uniform(0.5, 1, (64, 128)).astype(dtype)
    for first in ("ieee", "flush", "ieee"):  # whichever mode the pool's threads last saw
        if first == "flush":
            with _core.flush_subnormals():
                got = _core.gemm(a, b, n_threads=n_threads)
            assert not got.any()
        else:
            got = _core.gemm(a, b, n_threads=n_threads)
            assert got.all()
            np.testing.assert_array_equal(got, _core.gemm(a, b, n_threads=1))


def _model(dtype):
    m = nn.Sequential([nn.Dense(5, 16, activation="tanh"), nn.Dense(16, 3)], dtype=dtype, seed=1)
    m.compile(optimizer=nn.SGD(lr=0.1, momentum=0.9), loss="cross_entropy")
    return m


@pytest.mark.parametrize("batch_size", [1, 16])
def test_plan_equals_the_python_loop_with_subnormal_inputs(dtype, rng, batch_size):
    X = rng.normal(size=(64, 5)).astype(dtype)
    X[::3, 1] = TINY[dtype]
    y = rng.integers(0, 3, 64)
    results = []
    for use_plan in (True, False):
        m = _model(dtype)
        if not use_plan:
            m._engine.plan = lambda ws, guard=None: None
            m._engine.reset()
        h = m.fit(X, y, epochs=2, batch_size=batch_size, verbose=0)
        results.append((m.params.copy(), h.history["loss"], m.predict(X)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    np.testing.assert_array_equal(results[0][2], results[1][2])


@needs_x86
def test_fit_and_predict_leave_the_callers_mode(dtype, rng):
    m = _model(dtype)
    X = rng.normal(size=(32, 5)).astype(dtype)
    m.fit(X, rng.integers(0, 3, 32), epochs=1, batch_size=8, verbose=0)
    m.predict(X)
    assert subnormal_product_survives(dtype)
