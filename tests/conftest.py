"""Shared fixtures: every CPU path this machine has, both dtypes, tolerances per dtype.

NNCORE_EXPECT_INSTALLED=1 (set by tools/build_wheel.sh and cibuildwheel) stops the session
unless nncore was imported from an installed package rather than a source checkout;
tests/test_package.py checks it too."""

import os

import numpy as np
import pytest

import nncore
from nncore import _core

# The folder above tests/: a checkout, an unpacked sdist, or a copy of tests/ (and friends)
# made to test an installed wheel.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NNCORE_DIR = os.path.dirname(os.path.abspath(nncore.__file__))
EXPECT_INSTALLED = os.environ.get("NNCORE_EXPECT_INSTALLED", "") not in ("", "0")


def imported_from_installed_package():
    """(ok, why): nncore comes from site-packages (or another installed location), not from
    a source tree next to these tests."""
    import sysconfig

    site_dirs = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    here = os.path.realpath(NNCORE_DIR)
    if os.path.dirname(here) == os.path.realpath(ROOT):
        return False, f"nncore was imported from the source tree {here}"
    if os.path.dirname(here) not in site_dirs:
        return False, f"nncore was imported from {here}, not from {sorted(site_dirs)}"
    return True, f"nncore was imported from the installed package {here}"


def pytest_report_header(config):
    return f"nncore {nncore.__version__} from {NNCORE_DIR} (CPU path {_core.get_cpu_path()})"


def pytest_sessionstart(session):
    if EXPECT_INSTALLED:
        ok, why = imported_from_installed_package()
        if not ok:
            pytest.exit(f"NNCORE_EXPECT_INSTALLED is set but {why}", returncode=3)

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


@pytest.fixture(params=_core.available_bf16_kernels())
def bf16_kernel(request):
    """Run the test with one bfloat16 kernel (each this machine runs), then restore."""
    old = _core.bf16_kernel()
    _core.set_bf16_kernel(request.param)
    yield request.param
    _core.set_bf16_kernel(old)


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
