"""Bad input to the compiled kernels' wrappers: a clear error, never a crash."""

import numpy as np
import pytest

from nncore import _core

F = np.float32


def arrays(*shapes, dtype=F):
    return [np.ones(s, dtype=dtype) for s in shapes]


@pytest.mark.parametrize("call,exc,match", [
    (lambda: _core.gemm([[1.0]], np.ones((1, 1))), TypeError, "a must be a numpy.ndarray"),
    (lambda: _core.gemm(np.ones((2, 2), np.int64), np.ones((2, 2))), TypeError, "float32 or float64"),
    (lambda: _core.gemm(*arrays((2, 3), (2, 3))), ValueError, r"inner dimensions differ: op\(a\) is \(2, 3\)"),
    (lambda: _core.gemm(np.ones((2, 2), F), np.ones((2, 2))), TypeError, "b must have dtype float32"),
    (lambda: _core.gemm(np.ones(3, F), np.ones((3, 1), F)), ValueError, "a must be 2-D"),
    (lambda: _core.gemm(*arrays((0, 3), (3, 2))), ValueError, "a is empty"),
    (lambda: _core.gemm(np.ones((4, 4), F)[:, ::2], np.ones((2, 2), F)), ValueError, "C-contiguous"),
    (lambda: _core.gemm(np.asfortranarray(np.ones((3, 4), F)), np.ones((4, 2), F)), ValueError, "C-contiguous"),
    (lambda: _core.gemm(*arrays((2, 3), (3, 4)), np.ones((2, 5), F)), ValueError, r"out must have shape \(2, 4\)"),
    (lambda: _core.gemm(*arrays((2, 3), (3, 4)), np.ones((2, 4))), TypeError, "out must have dtype float32"),
    (lambda: _core.gemm(*arrays((2, 3), (3, 4)), accumulate=True), ValueError, "pass out"),
    (lambda: _core.gemm(*arrays((2, 3), (3, 4)), n_threads=0), ValueError, "n_threads"),
    (lambda: _core.dense_forward(*arrays((2, 3), (4, 5))), ValueError, r"w must have shape \(3, out\)"),
    (lambda: _core.dense_forward(*arrays((2, 3), (3, 5), (4,))), ValueError, r"b must have shape \(5,\)"),
    (lambda: _core.dense_forward(*arrays((2, 3), (3, 5)), activation="mish"), ValueError, "unknown activation 'mish'"),
    (lambda: _core.dense_backward(*arrays((2, 5), (2, 3), (3, 5), (2, 4))), ValueError, r"y must have shape \(2, 5\)"),
    (lambda: _core.dense_backward(*arrays((2, 5), (2, 3), (3, 5), (2, 5)), activation="gelu"), ValueError, "needs z"),
    (lambda: _core.dense_backward(*arrays((2, 5), (2, 3), (3, 5), (2, 5)), accumulate=True), ValueError, "pass them"),
    (lambda: _core.activation_forward(np.ones((2, 2), np.int32), "relu"), TypeError, "float32 or float64"),
    (lambda: _core.activation_backward(*arrays((2, 2), (2, 3)), activation="relu"), ValueError, r"y must have shape \(2, 2\)"),
])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_output():
    a, b = arrays((2, 3), (3, 4))
    out = np.zeros((2, 4), F)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.gemm(a, b, out)


def test_output_overlapping_an_input():
    a = np.ones((4, 4), F)
    with pytest.raises(ValueError, match="overlaps a"):
        _core.gemm(a, a.copy(), a)
    x, w = arrays((3, 4), (4, 4))
    y = np.zeros((3, 4), F)
    with pytest.raises(ValueError, match="z overlaps out"):
        _core.dense_forward(x, w, z=y, out=y)


def test_failed_call_leaves_output_untouched():
    out = np.full((2, 4), 7, F)
    with pytest.raises(TypeError):
        _core.gemm(np.ones((2, 3), F), np.ones((3, 4)), out)
    assert np.all(out == 7)
