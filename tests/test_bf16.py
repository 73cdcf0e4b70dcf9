"""bfloat16 products (nn_gemm_bf16): the rounding against the NumPy twin's integer operations,
bitwise; the products against the twin within the bound of float32 summation, on every CPU
path, with VDPBF16PS and emulated; the same bits on 1 and 2 threads."""

import numpy as np
import pytest

from nncore import _core
from nncore import _reference as ref

KERNELS = _core.available_bf16_kernels()

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3.4e38,
                    np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1.00390625,
                    1.01171875, 1.0 + 2 ** -8 + 2 ** -9, 1.0 + 2 ** -8 - 2 ** -20],
                   dtype=np.float32)


def test_round_is_the_twins_bitwise(rng):
    x = np.concatenate([SPECIAL, rng.standard_normal(50_000).astype(np.float32),
                        rng.integers(0, 2 ** 32, 50_000, dtype=np.uint64).astype(np.uint32)
                        .view(np.float32)])
    got, want = _core.bf16_round(x), ref.bf16_round(x)
    nan = np.isnan(x)
    np.testing.assert_array_equal(got[~nan], want[~nan])
    assert np.isnan(ref.bf16_value(got[nan])).all()


def test_round_ties_to_even():
    # 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and rounds to 1 (the even one); 1 + 3 * 2^-8,
    # halfway between 1 + 2^-7 and 1 + 2^-6, rounds up to 1 + 2^-6; the largest float rounds
    # to infinity.
    x = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, np.finfo(np.float32).max], dtype=np.float32)
    np.testing.assert_array_equal(ref.bf16_value(_core.bf16_round(x)),
                                  np.array([1.0, 1 + 2 ** -6, np.inf], dtype=np.float32))


SHAPES = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (7, 13, 5), (12, 32, 2), (13, 33, 511),
          (37, 45, 1029), (100, 70, 64), (64, 300, 784)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
def test_products_within_the_float32_bound(cpu_path, bf16_kernel, rng, m, n, k, trans):
    ta, tb = trans
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c = _core.gemm_bf16(a, b, trans_a=ta, trans_b=tb)
    want = ref.gemm_bf16(a, b, trans_a=ta, trans_b=tb)
    bound = ref.gemm_bf16_bound(a, b, trans_a=ta, trans_b=tb)
    assert c.dtype == np.float32 and c.shape == (m, n)
    assert (np.abs(c - want) <= bound).all()


def test_accumulate_adds_into_out(cpu_path, bf16_kernel, rng):
    a = rng.standard_normal((19, 40)).astype(np.float32)
    b = rng.standard_normal((40, 23)).astype(np.float32)
    out = rng.standard_normal((19, 23)).astype(np.float32)
    want = ref.gemm_bf16(a, b, out.astype(np.float64), accumulate=True)
    got = _core.gemm_bf16(a, b, out.copy(), accumulate=True)
    assert (np.abs(got - want) <= ref.gemm_bf16_bound(a, b) + 2 ** -24 * np.abs(want)).all()


def test_operands_exact_in_bf16_give_exact_sums(cpu_path, bf16_kernel, rng):
    # Small integers are exact in bfloat16 and their sums exact in float32: every path and
    # kernel must then give the exact product.
    a = rng.integers(-8, 9, (33, 70)).astype(np.float32)
    b = rng.integers(-8, 9, (70, 45)).astype(np.float32)
    np.testing.assert_array_equal(_core.gemm_bf16(a, b), a.astype(np.float64) @ b)


@pytest.mark.parametrize("m,n,k", [(300, 517, 333), (7, 900, 129), (900, 7, 129)])
def test_same_bits_on_one_and_two_threads(bf16_kernel, rng, m, n, k):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    np.testing.assert_array_equal(_core.gemm_bf16(a, b, n_threads=1),
                                  _core.gemm_bf16(a, b, n_threads=2))


def test_the_kernels_agree(rng):
    if len(KERNELS) < 2 or _core.get_cpu_path() != "avx512":
        pytest.skip("needs AVX512_BF16 or AMX")
    a = rng.standard_normal((45, 300)).astype(np.float32)
    b = rng.standard_normal((300, 70)).astype(np.float32)
    old = _core.bf16_kernel()
    try:
        got = {}
        for name in KERNELS:
            _core.set_bf16_kernel(name)
            got[name] = _core.gemm_bf16(a, b)
    finally:
        _core.set_bf16_kernel(old)
    for name in KERNELS[1:]:
        assert (np.abs(got["emulated"] - got[name]) <= 2 * ref.gemm_bf16_bound(a, b)).all()


def test_bad_input_is_a_clear_error():
    a = np.ones((3, 4))
    with pytest.raises(TypeError, match="float32"):
        _core.gemm_bf16(a, a.T)
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.gemm_bf16(np.ones((3, 4), np.float32), np.ones((5, 2), np.float32))
    with pytest.raises(ValueError, match="bf16 kernel"):
        _core.set_bf16_kernel("amx_fp16")


def test_show_config_names_the_bf16_kernel(capsys):
    import nncore
    nncore.show_config()
    assert "bfloat16:" in capsys.readouterr().out


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_a_few_rows_sum_as_the_packed_kernels(cpu_path, rng, m):
    # Up to 4 rows read B in place; their sums are the emulated (and VDPBF16PS) kernels'
    # bits, k blocks included (k = 1100 spans three).
    a = rng.standard_normal((16, 1100)).astype(np.float32)
    b = rng.standard_normal((1100, 700)).astype(np.float32)
    old = _core.bf16_kernel()
    try:
        for name in [k for k in KERNELS if k != "amx"]:
            _core.set_bf16_kernel(name)
            np.testing.assert_array_equal(_core.gemm_bf16(a[:m], b), _core.gemm_bf16(a, b)[:m])
            np.testing.assert_array_equal(_core.gemm_bf16(a[:m], b, n_threads=1),
                                          _core.gemm_bf16(a[:m], b, n_threads=2))
    finally:
        _core.set_bf16_kernel(old)
