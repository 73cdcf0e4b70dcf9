"""The fused dense layer (GEMM + bias + activation) and its backward pass."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

from conftest import EPS, assert_close

ACTS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax", "silu", "gelu_tanh",
        "exp"]
SHAPES = [(1, 1, 1), (1, 2, 3), (7, 13, 5), (3, 1, 9), (64, 200, 70), (33, 17, 65), (2, 150, 70),
          (1, 70, 150), (100, 40, 10), (1, 300, 10), (1, 100, 20),
          (64, 400, 128)]  # the last: the forward's sums split over k (see below)


def layer(rng, n, n_in, n_out, dtype):
    x = rng.normal(size=(n, n_in)).astype(dtype)
    w = (rng.normal(size=(n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.normal(size=n_out).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,n_in,n_out", SHAPES)
def test_forward_matches_twin(cpu_path, dtype, rng, act, n, n_in, n_out):
    x, w, b = layer(rng, n, n_in, n_out, dtype)
    z = np.empty((n, n_out), dtype)
    y = _core.dense_forward(x, w, b, act, 0.1, z=z)
    y_ref, z_ref = ref.dense_forward(x.astype(np.float64), w.astype(np.float64),
                                     b.astype(np.float64), act, 0.1)
    scale = 1 + np.abs(x).max() * np.abs(w).max() * n_in ** 0.5
    assert_close(z, z_ref, dtype, terms=n_in, scale=scale)
    # exp multiplies z's rounding error by y
    assert_close(y, y_ref, dtype, terms=n_in,
                 scale=scale * np.abs(y_ref).max() if act == "exp" else scale)


@pytest.mark.parametrize("act", ["identity", "relu", "tanh"])
def test_forward_without_bias(cpu_path, dtype, rng, act):
    x, w, _ = layer(rng, 9, 14, 37, dtype)
    y = _core.dense_forward(x, w, None, act)
    y_ref, _ = ref.dense_forward(x.astype(np.float64), w.astype(np.float64), None, act)
    assert_close(y, y_ref, dtype, terms=14, scale=4)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("n,n_in,n_out", SHAPES)
def test_backward_matches_twin(cpu_path, dtype, rng, act, n, n_in, n_out):
    x, w, b = layer(rng, n, n_in, n_out, dtype)
    z = np.empty((n, n_out), dtype)
    y = _core.dense_forward(x, w, b, act, 0.1, z=z)
    dy = rng.normal(size=(n, n_out)).astype(dtype)
    dx, dw, db = _core.dense_backward(dy, x, w, y, z, act, 0.1)
    f = lambda a: a.astype(np.float64)  # noqa: E731
    dx_r, dw_r, db_r = ref.dense_backward(f(dy), f(x), f(w), f(y), f(z), act, 0.1)
    s = 1 + np.abs(dy).max() * max(np.abs(x).max(), np.abs(w).max()) * 4
    assert_close(dw, dw_r, dtype, terms=n, scale=s * n ** 0.5)
    assert_close(db, db_r, dtype, terms=n, scale=s * n ** 0.5)
    assert_close(dx, dx_r, dtype, terms=n_out, scale=s * n_out ** 0.5)


def test_backward_options(cpu_path, dtype, rng):
    x, w, b = layer(rng, 11, 6, 5, dtype)
    y = _core.dense_forward(x, w, b, "relu")
    dy = rng.normal(size=y.shape).astype(dtype)
    dx, dw, db = _core.dense_backward(dy, x, w, y, None, "relu")
    # No dx (first layer), no db (no bias).
    dx2, dw2, db2 = _core.dense_backward(dy, x, w, y, None, "relu", need_dx=False, need_db=False)
    assert dx2 is None and db2 is None
    np.testing.assert_array_equal(dw2, dw)
    # Accumulate adds into dw and db.
    dw3, db3 = np.ones_like(dw), np.ones_like(db)
    _core.dense_backward(dy, x, w, y, None, "relu", dw=dw3, db=db3, accumulate=True)
    np.testing.assert_array_equal(dw3, 1 + dw)
    np.testing.assert_array_equal(db3, 1 + db)
    # dz in place of dy.
    dy2 = dy.copy()
    dx4, dw4, db4 = _core.dense_backward(dy2, x, w, y, None, "relu", dz=dy2)
    np.testing.assert_array_equal(dw4, dw)
    np.testing.assert_array_equal(dx4, dx)
    np.testing.assert_array_equal(dy2, dy * (y > 0))


@pytest.mark.parametrize("act", ACTS)
def test_gradients_by_finite_differences(cpu_path, rng, act):
    """float64: d/dtheta of L = sum(r * dense(x)) by central differences."""
    n, n_in, n_out = 4, 5, 3
    x, w, b = layer(rng, n, n_in, n_out, np.float64)
    r = rng.normal(size=(n, n_out))

    def loss(x_, w_, b_):
        return float(np.sum(r * _core.dense_forward(x_, w_, b_, act, 0.1)))

    z = np.empty((n, n_out))
    y = _core.dense_forward(x, w, b, act, 0.1, z=z)
    dx, dw, db = _core.dense_backward(r.copy(), x, w, y, z, act, 0.1)
    h = 1e-6
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + h
            up = loss(x, w, b)
            arr[i] = old - h
            down = loss(x, w, b)
            arr[i] = old
            num[i] = (up - down) / (2 * h)
        err = np.max(np.abs(num - grad)) / max(1e-8, np.max(np.abs(num)))
        assert err < 1e-6, (act, err)


def test_thread_count_does_not_change_bits(cpu_path, dtype, rng):
    x, w, b = layer(rng, 256, 300, 200, dtype)
    y1 = _core.dense_forward(x, w, b, "gelu", n_threads=1)
    z = np.empty_like(y1)
    _core.dense_forward(x, w, b, "gelu", z=z, n_threads=1)
    dy = rng.normal(size=y1.shape).astype(dtype)
    g1 = _core.dense_backward(dy, x, w, y1, z, "gelu", n_threads=1)
    for nt in (2, 3):
        np.testing.assert_array_equal(_core.dense_forward(x, w, b, "gelu", n_threads=nt), y1)
        for a, c in zip(_core.dense_backward(dy, x, w, y1, z, "gelu", n_threads=nt), g1):
            np.testing.assert_array_equal(a, c)


# A dense forward whose backward updates w in two halves of rows on two threads sums over k in
# the same two parts (gemm_impl.h, forward_k_split), on any thread count. The rule, mirrored:
# (mr, nr) of each path's kernel (cpu.c) and the two-thread split of dW = x^T . dz.
KERNEL_TILE = {("generic", 4): (4, 8), ("generic", 8): (4, 4), ("avx2", 4): (6, 16),
               ("avx2", 8): (6, 8), ("avx512", 4): (12, 32), ("avx512", 8): (12, 16)}


def forward_k_split(path, dtype, m, n, k):
    size = np.dtype(dtype).itemsize
    mr, nr = KERNEL_TILE[path, size]
    if m > 256 or n <= nr or m * n * k < 2 ** 20:
        return 0
    kt, nt = -(-k // mr), -(-n // nr)
    rows, cols = -(-kt // 2) * nt, kt * -(-nt // 2)  # the largest block, split by rows/columns
    pack_rows, pack_cols = -(-kt // 2) * mr + nt * nr, kt * mr + -(-nt // 2) * nr
    return kt // 2 * mr if rows < cols or (rows == cols and pack_rows < pack_cols) else 0


@pytest.mark.parametrize("n,n_in,n_out", [(64, 400, 128), (7, 784, 256), (256, 300, 200),
                                          (64, 200, 300), (200, 130, 100),
                                          (24, 800, 520)])  # w over 1 MiB: split on every path
def test_forward_sums_over_k_in_parts_of_the_update_on_any_thread_count(cpu_path, dtype, rng,
                                                                         n, n_in, n_out):
    x, w, b = layer(rng, n, n_in, n_out, dtype)
    y = _core.dense_forward(x, w, b, "relu", n_threads=1)
    k0 = forward_k_split(cpu_path, dtype, n, n_out, n_in)
    if k0:
        parts = (_core.gemm(np.ascontiguousarray(x[:, :k0]), w[:k0], n_threads=1) +
                 _core.gemm(np.ascontiguousarray(x[:, k0:]), w[k0:], n_threads=1))
    else:
        parts = _core.gemm(x, w, n_threads=1)
    np.testing.assert_array_equal(y, np.maximum(parts + b, 0))
    for nt in (2, 3):
        np.testing.assert_array_equal(_core.dense_forward(x, w, b, "relu", n_threads=nt), y)


def test_some_forward_shapes_are_split_on_every_path():
    """The test above checks the split where the rule says so: it does for these shapes."""
    for path, size in KERNEL_TILE:
        dtype = np.float32 if size == 4 else np.float64
        assert any(forward_k_split(path, dtype, *shape) for shape in
                   [(64, 128, 400), (7, 256, 784), (256, 200, 300)]), (path, dtype)


def test_softmax_rows_sum_to_one(cpu_path, dtype, rng):
    x, w, b = layer(rng, 50, 20, 10, dtype)
    y = _core.dense_forward(x * 30, w, b, "softmax")
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=10 * EPS[dtype] * 10)
