"""The nncore command line: train (digits by default, CSV/NPZ data), predict, info."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import nncore as nn
from nncore.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_train_on_digits_by_default(capsys, tmp_path):
    path = tmp_path / "digits.safetensors"
    code, out, err = run(capsys, "train", "--out", str(path))
    assert code == 0, err
    acc = float(re.search(r"test accuracy: ([\d.]+)%", out).group(1))
    assert acc >= 95.0
    assert re.search(r"training time: [\d.]+ s", out)
    assert "Epoch 30/30" in out + err and "samples/s" in out + err  # the progress bar
    model = nn.load_model(path)
    X, y = nn.datasets.load_digits()
    # the saved model takes raw pixels (the standardisation is folded into its weights)
    assert np.mean(model.predict(X).argmax(axis=1) == y) > 0.95
    assert model.metadata["nncore.task"] == "classification"


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)


def test_train_and_predict_csv_classification(capsys, tmp_path):
    X, y = nn.datasets.make_moons(300, noise=0.05, seed=0)
    names = np.array(["north", "south"])[y]
    data = tmp_path / "moons.csv"
    write_csv(data, ["a", "kind", "b"], [[x0, k, x1] for (x0, x1), k in zip(X, names)])
    model = tmp_path / "moons.safetensors"
    code, out, err = run(capsys, "train", "--data", str(data), "--target", "kind",
                         "--hidden", "32,16", "--epochs", "60", "--batch-size", "16",
                         "--lr", "0.01", "--out", str(model), "-q")
    assert code == 0, err
    assert float(re.search(r"test accuracy: ([\d.]+)%", out).group(1)) >= 95
    preds = tmp_path / "preds.csv"
    code, out, err = run(capsys, "predict", str(model), str(data), "--out", str(preds),
                         "--proba")
    assert code == 0, err
    rows = list(csv.reader(open(preds)))
    assert rows[0] == ["prediction", "p_north", "p_south"]
    got = np.array([r[0] for r in rows[1:]])
    assert np.mean(got == names) > 0.95
    p = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_train_and_predict_regression_npz_and_headerless_csv(capsys, tmp_path, rng):
    X = rng.uniform(-1, 1, (400, 3)) * [1, 10, 100]
    y = 3 * X[:, 0] - 0.2 * X[:, 1] + 0.01 * X[:, 2] + 50
    np.savez(tmp_path / "reg.npz", X=X, target=y)
    model = tmp_path / "reg.safetensors"
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "reg.npz"), "--target",
                         "target", "--hidden", "", "--epochs", "40", "--lr", "0.05",
                         "--dtype", "float64", "--out", str(model), "-q")
    assert code == 0, err
    mse = float(re.search(r"test MSE: ([\d.e+-]+)", out).group(1))
    assert mse < 1e-3
    write_csv(tmp_path / "new.csv", None, [list(r) + [t] for r, t in zip(X[:5], y[:5])])
    code, out, err = run(capsys, "predict", str(model), str(tmp_path / "new.csv"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "prediction"
    np.testing.assert_allclose([float(v) for v in lines[1:]], y[:5], atol=0.1)


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "missing.csv"], "cannot read missing.csv"),
    (["train", "--hidden", "12,x"], "--hidden"),
    (["predict", "missing.safetensors", "x.csv"], "no model file"),
])
def test_errors_are_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 1 and message in err and "Traceback" not in err


def test_csv_problems_are_explained(capsys, tmp_path):
    data = tmp_path / "bad.csv"
    write_csv(data, ["a", "b", "y"], [[1, "x", 0], [2, 3, 1]])
    code, _, err = run(capsys, "train", "--data", str(data))
    assert code == 1 and "column 'b'" in err and "'x'" in err
    code, _, err = run(capsys, "train", "--data", str(data), "--target", "z")
    assert code == 1 and "--target 'z'" in err


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and "nncore" in out and "CPU path in use" in out


def test_python_dash_m():
    root = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "nncore", "--help"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and "train" in r.stdout and "predict" in r.stdout
