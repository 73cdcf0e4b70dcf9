"""threadpoolctl sees nncore's OpenMP pool and limits it; nn.get_num_threads follows."""

import os
import subprocess
import sys

import pytest

import nncore as nn

threadpoolctl = pytest.importorskip("threadpoolctl")
pytestmark = pytest.mark.skipif(not nn.config()["openmp"], reason="built without OpenMP")

PROBE = """
import threadpoolctl
def omp():
    return sorted(p["filepath"] for p in threadpoolctl.threadpool_info()
                  if p["user_api"] == "openmp")
before = omp()
import nncore
print(before)
print(omp())
"""


def test_threadpool_info_lists_the_openmp_library_nncore_loaded():
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stderr
    before, after = (eval(line) for line in r.stdout.splitlines()[-2:])
    assert set(after) - set(before), (before, after)  # importing nncore brought it in


def test_threadpool_limits_limits_nncore():
    nn.set_num_threads(None)  # no explicit setting in force
    default = nn.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert nn.get_num_threads() == 1
        nn.set_num_threads(2)  # an explicit setting wins over the pool limit
        try:
            assert nn.get_num_threads() == 2
        finally:
            nn.set_num_threads(None)
        assert nn.get_num_threads() == 1
    assert nn.get_num_threads() == default


def test_threadpool_info_reports_the_limit():
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        pools = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "openmp"]
        assert pools and all(p["num_threads"] == 1 for p in pools)
