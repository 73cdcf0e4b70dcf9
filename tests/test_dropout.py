"""Counter-based random numbers and inverted dropout."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref


def test_rng_matches_twin():
    for seed in (0, 1, 2**63 + 5):
        u = _core.rng_uniform(1000, seed, 17)
        np.testing.assert_array_equal(u, ref.rng_uniform(1000, seed, 17))
        assert _core.rng_hash(seed, 99) == int(ref.rng_hash(seed, 99))
        assert u.min() >= 0 and u.max() < 1


def test_rng_streams_split_and_look_uniform():
    u = _core.rng_uniform(200_000, 7)
    np.testing.assert_array_equal(np.concatenate([_core.rng_uniform(5, 7),
                                                  _core.rng_uniform(199_995, 7, 5)]), u)
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    hist = np.histogram(u, bins=20, range=(0, 1))[0]
    assert hist.min() > 9_000 and hist.max() < 11_000
    assert not np.array_equal(_core.rng_uniform(100, 8), u[:100])


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(1,), (7, 3), (64, 129), (5, 4, 3)])
def test_dropout_matches_twin(dtype, rng, p, shape):
    x = rng.normal(size=shape).astype(dtype)
    y, mask = _core.dropout_forward(x, p, 42, 1000)
    y_r, mask_r = ref.dropout_forward(x, p, 42, 1000)
    np.testing.assert_array_equal(mask, mask_r)
    np.testing.assert_array_equal(y, y_r)
    dy = rng.normal(size=shape).astype(dtype)
    np.testing.assert_array_equal(_core.dropout_backward(dy, mask, p),
                                  ref.dropout_backward(dy, mask, p))


def test_dropout_properties(dtype):
    x = np.ones(100_000, dtype)
    y, mask = _core.dropout_forward(x, 0.3, 1)
    assert abs(mask.mean() - 0.7) < 0.01
    assert set(np.unique(y)) == {0, dtype(1 / 0.7)}
    # p = 0 is the identity
    y0, m0 = _core.dropout_forward(x, 0.0, 1)
    assert np.all(m0 == 1) and np.array_equal(y0, x)
    # a call cut in two at an offset gives the same mask
    _, a = _core.dropout_forward(x[:1000], 0.3, 1, 0)
    _, b = _core.dropout_forward(x[1000:], 0.3, 1, 1000)
    np.testing.assert_array_equal(np.concatenate([a, b]), mask)
    # in place backward
    dy = np.ones_like(x)
    assert _core.dropout_backward(dy, mask, 0.3, out=dy) is dy
    np.testing.assert_array_equal(dy, y)


def test_thread_count_does_not_change_bits(dtype, rng):
    x = rng.normal(size=500_001).astype(dtype)
    y1, m1 = _core.dropout_forward(x, 0.4, 3, n_threads=1)
    y2, m2 = _core.dropout_forward(x, 0.4, 3, n_threads=2)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("call_,exc,match", [
    (lambda: _core.dropout_forward(np.ones(3), 1.0, 0), ValueError, r"\[0, 1\)"),
    (lambda: _core.dropout_forward(np.ones(3), -0.1, 0), ValueError, r"\[0, 1\)"),
    (lambda: _core.dropout_forward(np.ones(3, np.int32), 0.1, 0), TypeError, "float32 or float64"),
    (lambda: _core.dropout_forward(np.ones(0), 0.1, 0), ValueError, "empty"),
    (lambda: _core.dropout_backward(np.ones(3), np.ones(3), 0.1), TypeError, "uint8"),
    (lambda: _core.dropout_backward(np.ones(3), np.ones(4, np.uint8), 0.1), ValueError, r"mask must have shape \(3,\)"),
    (lambda: _core.rng_uniform(-1, 0), ValueError, ">= 0"),
])
def test_bad_input(call_, exc, match):
    with pytest.raises(exc, match=match):
        call_()
