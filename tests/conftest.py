"""Shared fixtures: every CPU path this machine has, both dtypes, tolerances per dtype."""

import numpy as np
import pytest

from nncore import _core

CPU_PATHS = _core.available_cpu_paths()
DTYPES = [np.float32, np.float64]

# Relative tolerance per dtype for one rounding-sized difference; scaled by the length of the
# sums being compared (see assert_close).
EPS = {np.float32: 1.2e-7, np.float64: 2.3e-16}


@pytest.fixture(params=CPU_PATHS)
def cpu_path(request):
    """Run the test on one CPU path (each path this machine supports), then restore."""
    old = _core.get_cpu_path()
    _core.set_cpu_path(request.param)
    yield request.param
    _core.set_cpu_path(old)


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


def assert_close(actual, expected, dtype, terms=1, scale=None):
    """|actual - expected| <= 16 * eps * sqrt(terms) * scale, element-wise, where terms is the
    length of the sums behind each element and scale the typical magnitude (default:
    max |expected|, at least 1)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    tol = 16 * EPS[dtype] * max(1.0, np.sqrt(terms)) * scale
    err = np.max(np.abs(actual - expected)) if actual.size else 0.0
    assert err <= tol, f"max error {err:.3g} > tolerance {tol:.3g}"
