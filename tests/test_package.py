"""The package: public names, no heavy imports, shipped data."""

import os
import subprocess
import sys

import nncore as nn

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
