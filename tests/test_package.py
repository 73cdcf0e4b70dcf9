"""The package: public names, no heavy imports, shipped data, where it was imported from,
its version."""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

import nncore as nn
from conftest import EXPECT_INSTALLED, ROOT, imported_from_installed_package

CODE = """
import sys, numpy as np, nncore as nn, tempfile, os
X, y = nn.datasets.load_digits()
m = nn.Sequential([nn.Dense(64, 10)], seed=0)
m.compile(nn.Adam(), "cross_entropy", ["accuracy"])
m.fit(X[:100], y[:100], epochs=1, verbose=1, callbacks=[nn.EarlyStopping("loss")])
with tempfile.TemporaryDirectory() as d:
    m.save(os.path.join(d, "m.safetensors")); nn.load_model(os.path.join(d, "m.safetensors"))
nn.check_gradients(m, X[:3], y[:3], max_params=3)
heavy = [k for k in ("sklearn", "torch", "matplotlib", "pandas") if k in sys.modules]
print("HEAVY", heavy)
"""


def test_no_heavy_imports():
    root = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout


def test_public_api():
    for name in nn.__all__:
        assert hasattr(nn, name), name
    for name in ["Sequential", "Dense", "Dropout", "SGD", "Adam", "AdamW", "EarlyStopping",
                 "TerminateOnNaN", "ModelCheckpoint", "LearningRateScheduler", "load_model",
                 "check_gradients", "set_num_threads", "get_num_threads", "datasets"]:
        assert name in nn.__all__


def test_public_docstrings():
    objs = [getattr(nn, n) for n in nn.__all__ if not n.startswith("__")]
    missing = [o for o in objs if callable(o) and not (o.__doc__ or "").strip()]
    assert not missing, missing
    for cls in (nn.Sequential, nn.Dense):
        for attr in dir(cls):
            if not attr.startswith("_") and callable(getattr(cls, attr)):
                assert (getattr(cls, attr).__doc__ or "").strip(), f"{cls.__name__}.{attr}"


def test_data_attribution_shipped():
    here = os.path.join(os.path.dirname(nn.__file__), "data")
    text = open(os.path.join(here, "README.md")).read()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "Kaynak" in text
    assert os.path.exists(os.path.join(here, "digits.csv.gz"))


@pytest.mark.skipif(not EXPECT_INSTALLED, reason="NNCORE_EXPECT_INSTALLED not set (testing a "
                    "checkout); tools/build_wheel.sh sets it")
def test_tests_import_the_installed_package():
    ok, why = imported_from_installed_package()
    assert ok, why
    # the compiled module too, and the repaired wheel's OpenMP runtime when it has one
    assert os.path.dirname(os.path.abspath(nn._core.__file__)) == os.path.dirname(
        os.path.abspath(nn.__file__))
    assert not os.path.exists(os.path.join(ROOT, "nncore", "__init__.py")), \
        "a copy of the source package is next to the tests; test from a folder without it"


def test_version_comes_from_one_place():
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?(a|b|rc|dev|post)\d*)*", nn.__version__)
    from nncore._version import __version__
    assert nn.__version__ == __version__ == nn.config()["version"]
    try:
        meta = importlib.metadata.version("nncore")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("nncore is not installed (no distribution metadata to compare)")
    assert meta == nn.__version__
    pyproject = os.path.join(ROOT, "pyproject.toml")
    if os.path.exists(pyproject):  # the version is read from nncore/_version.py, not written
        text = open(pyproject).read()
        assert 'dynamic = ["version"]' in text
        assert 'version = {attr = "nncore._version.__version__"}' in text
