"""The packed GEMM on every CPU path vs the naive GEMM and NumPy, for both dtypes."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

from conftest import EPS

# (m, n, k): 1s, odd sizes, non-multiples of every micro-tile (4x8, 6x16, 12x32, ...),
# and sizes beyond one k block and one column block (kc 256-384, nc 512-1024; a k of up to
# 1.5 kc is one block, cpu.c and gemm_impl.h).
# Products of at most 64 multiply-adds take plain loops (the first four); (1, 9, 8), (2, 5, 7)
# and other small products the direct (unpacked) path; (37, 45, 513) and (200, 129, 400) the
# packed one (k > 512, or m n k > 2^22). Batch <= 4 with k > 64 streams B in k blocks
# ((2, 50, 1000), (4, 70, 129)) and with trans_b takes the inner-product kernel (k not a
# multiple of any vector width); a narrow B (n <= 16) stays direct at any m ((300, 10, 700));
# (7, 1024, 5) with trans_b makes a transposed copy whose rows would be a page apart.
SHAPES = [
    (1, 1, 1), (1, 7, 3), (5, 1, 9), (2, 3, 1), (1, 9, 8), (2, 5, 7), (13, 17, 19), (33, 65, 31), (12, 32, 8),
    (6, 16, 100), (150, 40, 30), (37, 45, 513), (3, 4200, 5), (200, 129, 400),
    (2, 50, 1000), (4, 70, 129), (1, 37, 203), (3, 6, 17), (300, 10, 700), (7, 1024, 5),
    (1, 10, 1024), (1, 6, 90), (1, 20, 300), (1, 30, 100),  # one row, one or two vectors wide
    (8, 300, 200), (24, 700, 1024),  # with trans_b alone: C^T = B . A^T, then transposed
    (20, 300, 1000),  # direct, B over 1 MiB: its last 8 rows take the full kernel, not the short
    (36, 800, 600),  # packed, all rows one block, two k and two column blocks: A packed once
    (140, 200, 290),  # packed, k in one block of more than kc (f64: 256; f32 (200, 129, 400))
    (260, 64, 130),  # with trans_a packed (x^T.dZ of 256+ rows, 2^21+ multiply-adds), else direct
    (1, 512, 519),  # one row, B over 1 MiB with rows 2 KiB apart: the stream kernel (k % 4 = 3)
]


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def assert_gemm_close(c, a, b, trans_a, trans_b, dtype, c0=None):
    """Higham's bound for a dot product of length k: |fl(AB) - AB| <= ~k eps |A||B|."""
    oa, ob = (a.T if trans_a else a).astype(np.float64), (b.T if trans_b else b).astype(np.float64)
    exact = oa @ ob + (0 if c0 is None else c0.astype(np.float64))
    bound = np.abs(oa) @ np.abs(ob) + (0 if c0 is None else np.abs(c0))
    k = oa.shape[1]
    err = np.abs(c.astype(np.float64) - exact)
    assert np.all(err <= 2 * (k + 1) * EPS[dtype] * bound + 1e-30), float(err.max())


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_gemm_matches_numpy(cpu_path, dtype, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    c = _core.gemm(a, b, trans_a=bool(trans_a), trans_b=bool(trans_b))
    assert c.shape == (m, n) and c.dtype == dtype
    assert_gemm_close(c, a, b, trans_a, trans_b, dtype)
    naive = _core.gemm_naive(a, b, trans_a=bool(trans_a), trans_b=bool(trans_b))
    assert_gemm_close(naive, a, b, trans_a, trans_b, dtype)
    twin = ref.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert_gemm_close(twin, a, b, trans_a, trans_b, dtype)  # the twin itself is right


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (13, 17, 19), (37, 45, 513), (150, 40, 30),
                                   (2, 50, 1000), (1, 37, 203), (300, 10, 700)])
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1)])
def test_gemm_accumulate(cpu_path, dtype, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    c0 = rng.uniform(-1, 1, (m, n)).astype(dtype)
    c = c0.copy()
    out = _core.gemm(a, b, c, trans_a=bool(trans_a), trans_b=bool(trans_b), accumulate=True)
    assert out is c
    assert_gemm_close(c, a, b, trans_a, trans_b, dtype, c0=c0)
    naive = c0.copy()
    _core.gemm_naive(a, b, naive, trans_a=bool(trans_a), trans_b=bool(trans_b), accumulate=True)
    assert_gemm_close(naive, a, b, trans_a, trans_b, dtype, c0=c0)


def test_gemm_writes_into_out_and_overwrites(cpu_path, dtype, rng):
    a, b = operands(rng, 20, 30, 40, 0, 0, dtype)
    out = np.full((20, 30), np.nan, dtype=dtype)
    assert _core.gemm(a, b, out) is out
    assert np.all(np.isfinite(out))
    assert_gemm_close(out, a, b, 0, 0, dtype)


def test_gemm_exact_on_integers(cpu_path, dtype, rng):
    # Small integers: every path must give exactly the integer product.
    a = rng.integers(-4, 5, (67, 45)).astype(dtype)
    b = rng.integers(-4, 5, (45, 71)).astype(dtype)
    np.testing.assert_array_equal(_core.gemm(a, b), (a.astype(np.int64) @ b.astype(np.int64)))


def test_paths_agree(dtype, rng):
    """Every path computes the same product (to rounding) on a shape with all edge cases."""
    a, b = operands(rng, 77, 91, 700, 0, 0, dtype)
    old = _core.get_cpu_path()
    try:
        results = {}
        for p in _core.available_cpu_paths():
            _core.set_cpu_path(p)
            results[p] = _core.gemm(a, b)
    finally:
        _core.set_cpu_path(old)
    for p, c in results.items():
        assert_gemm_close(c, a, b, 0, 0, dtype)


@pytest.mark.parametrize("m,n,k", [(300, 300, 300), (1000, 64, 40), (8, 2000, 64), (513, 17, 700),
                                   (1, 3000, 700), (3, 2000, 600), (400, 12, 3000),
                                   (64, 256, 128), (200, 40, 100), (16, 600, 300),
                                   (200, 1000, 300),  # k < kc: B blocks of 960 + 40 columns
                                   (36, 800, 600),  # A packed once on 1 thread, not on 2
                                   (1, 2048, 300),  # stream kernel: 2 chunks, or 1 a thread
                                   (1, 300, 250)])  # one row: threads from 2^15 multiply-adds
@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1)])
def test_gemm_thread_count_does_not_change_bits(cpu_path, dtype, rng, m, n, k, trans_a, trans_b):
    a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
    kw = dict(trans_a=bool(trans_a), trans_b=bool(trans_b))
    one = _core.gemm(a, b, n_threads=1, **kw)
    assert_gemm_close(one, a, b, trans_a, trans_b, dtype)
    for nt in (2, 3, 4):
        np.testing.assert_array_equal(_core.gemm(a, b, n_threads=nt, **kw), one)


def _at_offset(x, offset):
    """A copy of x whose data starts `offset` elements past a 64-byte boundary."""
    per_line = 64 // x.itemsize
    buf = np.empty(x.size + 2 * per_line, x.dtype)
    start = (-buf.ctypes.data % 64) // x.itemsize + offset
    out = buf[start:start + x.size].reshape(x.shape)
    out[...] = x
    return out


# B read in place (the direct path at batch 1, 2-4 and 33; B^T at batch 1-4 by inner products)
# starts its aligned loads at the first vector boundary of B's rows: the bits must be those
# of any other placement, on every path.
@pytest.mark.parametrize("m,n,k,trans_b", [(1, 784, 40, 0), (1, 48, 256, 0), (3, 130, 100, 0),
                                           (1, 512, 519, 0),
                                           (33, 48, 64, 0), (1, 784, 256, 1), (1, 5, 33, 1),
                                           (4, 30, 100, 1), (2, 9, 64, 1)])
def test_gemm_bits_do_not_depend_on_alignment_or_thread_count(cpu_path, dtype, rng, m, n, k,
                                                              trans_b):
    a, b = operands(rng, m, n, k, 0, trans_b, dtype)
    first = _core.gemm(a, b, trans_b=bool(trans_b))
    assert_gemm_close(first, a, b, 0, trans_b, dtype)
    for offset in range(1, 64 // a.itemsize):
        for nt in (1, 2):
            got = _core.gemm(_at_offset(a, offset // 2), _at_offset(b, offset),
                             trans_b=bool(trans_b), n_threads=nt)
            np.testing.assert_array_equal(got, first)
