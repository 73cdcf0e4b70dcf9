"""Pure-NumPy twins of every compiled kernel: readable, slow, and the ground truth the tests
compare against. Each function mirrors one wrapper of nncore._core (same arguments, same
results up to rounding) and documents the math.
"""

import math

import numpy as np

# ---- GEMM -----------------------------------------------------------------------------------


def gemm(a, b, out=None, *, trans_a=False, trans_b=False, accumulate=False):
    """out = op(a) @ op(b) (+ out), op(x) = x.T when trans_x."""
    c = (a.T if trans_a else a) @ (b.T if trans_b else b)
    if accumulate:
        c = out + c
    return c


# ---- activations ----------------------------------------------------------------------------

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function, element-wise (math.erf; NumPy has none)."""
    return _erf(x).astype(x.dtype)


def activation_forward(x, activation, alpha=0.01):
    """y = act(x); softmax is taken along the last axis."""
    if activation in ("identity", "linear", None):
        return x.copy()
    if activation == "relu":
        return np.where(x < 0, 0, x).astype(x.dtype)
    if activation == "leaky_relu":
        return np.where(x > 0, x, alpha * x).astype(x.dtype)
    if activation == "sigmoid":  # never exp of a large positive number
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
    if activation == "tanh":
        return np.tanh(x)
    if activation == "gelu":  # exact: x * Phi(x)
        return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(x.dtype)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unknown activation {activation!r}")


def activation_backward(dy, y, z=None, activation="identity", alpha=0.01):
    """dz = dy * act'(z), written with the forward output y where that suffices."""
    if activation in ("identity", "linear", None):
        return dy.copy()
    if activation == "relu":
        return np.where(y > 0, dy, 0).astype(dy.dtype)
    if activation == "leaky_relu":
        pos = (z > 0) if alpha < 0 else (y > 0)
        return np.where(pos, dy, alpha * dy).astype(dy.dtype)
    if activation == "sigmoid":
        return dy * y * (1 - y)
    if activation == "tanh":
        return dy * (1 - y * y)
    if activation == "gelu":  # Phi(z) + z phi(z)
        cdf = 0.5 * (1 + erf(z / np.sqrt(2)))
        pdf = np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
        return (dy * (cdf + z * pdf)).astype(dy.dtype)
    if activation == "softmax":  # y * (dy - <dy, y>) per row
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {activation!r}")


# ---- dense layer ----------------------------------------------------------------------------


def dense_forward(x, w, b=None, activation="identity", alpha=0.01):
    """y = act(x @ w + b), w of shape (in, out). Returns (y, z) with z the pre-activation."""
    z = x @ w
    if b is not None:
        z = z + b
    return activation_forward(z, activation, alpha), z


def dense_backward(dy, x, w, y, z=None, activation="identity", alpha=0.01):
    """Returns (dx, dw, db): dz = dy * act', dw = x.T @ dz, db = sum of dz over rows,
    dx = dz @ w.T."""
    dz = activation_backward(dy, y, z, activation, alpha)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


# ---- losses, optimizers, random numbers, dropout --------------------------------------------
