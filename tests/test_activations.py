"""Activations forward and backward vs the NumPy twin; gradients by finite differences."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

from conftest import EPS, assert_close

ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "silu", "gelu_tanh",
        "exp"]
SHAPES = [(1, 1), (1, 7), (5, 3), (17, 33), (3, 40_000)]  # the last spans several chunks


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_backward_match_twin(cpu_path, dtype, rng, act, shape):
    x = (rng.normal(size=shape) * 3).astype(dtype)
    y = _core.activation_forward(x, act, 0.2)
    f = lambda a: a.astype(np.float64)  # noqa: E731
    assert_close(y, ref.activation_forward(f(x), act, 0.2), dtype, terms=shape[1] if act == "softmax" else 4)
    dy = rng.normal(size=shape).astype(dtype)
    dz = _core.activation_backward(dy, y, x, act, 0.2)
    expect = ref.activation_backward(f(dy), f(y), f(x), act, 0.2)
    assert_close(dz, expect, dtype, terms=shape[1] if act == "softmax" else 8,
                 scale=None if act == "exp" else 4)  # exp's gradient grows with it


@pytest.mark.parametrize("act", ACTS)
def test_in_place(cpu_path, dtype, rng, act):
    x = rng.normal(size=(6, 9)).astype(dtype)
    y = _core.activation_forward(x, act)
    x2 = x.copy()
    assert _core.activation_forward(x2, act, out=x2) is x2
    np.testing.assert_array_equal(x2, y)
    dy = rng.normal(size=x.shape).astype(dtype)
    dz = _core.activation_backward(dy, y, x, act)
    dy2 = dy.copy()
    assert _core.activation_backward(dy2, y, x, act, out=dy2) is dy2
    np.testing.assert_array_equal(dy2, dz)


def test_one_dimensional_and_three_dimensional(rng):
    x = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(_core.activation_forward(x, "softmax"),
                               ref.activation_forward(x, "softmax"), rtol=1e-14)
    v = rng.normal(size=5)
    np.testing.assert_allclose(_core.activation_forward(v, "tanh"), np.tanh(v), rtol=1e-15)


@pytest.mark.parametrize("ndim", [8, 9, 12, 32])
def test_many_dimensions(rng, ndim):
    """The outputs of element-wise kernels are made for any number of dimensions (an output
    of more than 8 once overran a fixed array of sizes and crashed)."""
    x = rng.normal(size=(2,) + (1,) * (ndim - 2) + (3,))
    y = _core.activation_forward(x, "relu")
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dz = _core.activation_backward(np.ones_like(x), y, activation="relu")
    np.testing.assert_array_equal(dz, (x > 0).astype(x.dtype))


@pytest.mark.parametrize("act", ACTS)
def test_gradients_by_finite_differences(rng, act):
    x = rng.normal(size=(3, 5)) * 2
    x[0, 0] = 0.3  # keep away from the kinks of relu/leaky at 0
    r = rng.normal(size=x.shape)
    y = _core.activation_forward(x, act, 0.1)
    dz = _core.activation_backward(r, y, x, act, 0.1)
    h, num = 1e-6, np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        num[i] = (np.sum(r * _core.activation_forward(xp, act, 0.1)) -
                  np.sum(r * _core.activation_forward(xm, act, 0.1))) / (2 * h)
    assert np.max(np.abs(num - dz)) < 1e-7 * max(1, np.abs(num).max())


@pytest.mark.parametrize("act", ["silu", "gelu_tanh", "gelu", "sigmoid", "tanh"])
def test_match_torch(dtype, rng, act):
    """The forward and backward of torch.nn.functional, float32 and float64."""
    torch = pytest.importorskip("torch")
    fn = {"silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu,
          "gelu_tanh": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
          "sigmoid": torch.sigmoid, "tanh": torch.tanh}[act]
    x = (rng.normal(size=(7, 33)) * 4).astype(dtype)
    dy = rng.normal(size=x.shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    ty = fn(tx)
    ty.backward(torch.tensor(dy))
    y = _core.activation_forward(x, act)
    dz = _core.activation_backward(dy, y, x, act)
    assert_close(y, ty.detach().numpy().astype(np.float64), dtype, terms=4)
    assert_close(dz, tx.grad.numpy().astype(np.float64), dtype, terms=8, scale=4)


def test_silu_and_gelu_tanh_objects():
    import nncore as nn
    assert nn.activations.get("swish") == nn.SiLU() and nn.SiLU().name == "silu"
    assert nn.activations.get("gelu_tanh") == nn.GELUTanh() != nn.GELU()
    assert nn.SiLU().needs_z and nn.GELUTanh().needs_z


def test_leaky_relu_negative_alpha_needs_z(rng):
    assert _core.activation_needs_z("gelu")
    assert _core.activation_needs_z("leaky_relu", -0.5)
    assert not _core.activation_needs_z("leaky_relu", 0.1)
    assert not _core.activation_needs_z("relu")
    x = rng.normal(size=(4, 4))
    y = _core.activation_forward(x, "leaky_relu", -0.5)
    with pytest.raises(ValueError, match="needs z"):
        _core.activation_backward(np.ones_like(x), y, None, "leaky_relu", -0.5)
    dz = _core.activation_backward(np.ones_like(x), y, x, "leaky_relu", -0.5)
    np.testing.assert_array_equal(dz, np.where(x > 0, 1.0, -0.5))


def test_stability_extremes(dtype):
    big = 1e4 if dtype == np.float64 else 80.0
    x = np.array([[-big, 0, big], [big, big, big], [-big, -big, -big]], dtype=dtype)
    for act in ACTS:
        if act == "exp":  # overflows as exp does
            continue
        y = _core.activation_forward(x, act)
        assert np.all(np.isfinite(y)), act
    s = _core.activation_forward(x, "softmax")
    np.testing.assert_allclose(s.sum(axis=1), 1, rtol=1e-6)
    sig = _core.activation_forward(x, "sigmoid")
    assert sig[0, 0] == 0 or sig[0, 0] < EPS[dtype]
    assert sig[0, 2] == 1


def test_relu_propagates_nan():
    x = np.array([[np.nan, -1.0, 2.0]])
    y = _core.activation_forward(x, "relu")
    assert np.isnan(y[0, 0]) and y[0, 1] == 0 and y[0, 2] == 2


def test_thread_count_does_not_change_bits(dtype, rng):
    x = rng.normal(size=(300, 1000)).astype(dtype)
    for act in ACTS:
        y1 = _core.activation_forward(x, act, n_threads=1)
        np.testing.assert_array_equal(_core.activation_forward(x, act, n_threads=2), y1)
        d1 = _core.activation_backward(x, y1, x, act, n_threads=1)
        np.testing.assert_array_equal(_core.activation_backward(x, y1, x, act, n_threads=2), d1)
