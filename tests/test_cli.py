"""The nncore command line: train (digits by default, CSV/NPZ data), predict, info."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
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
    code, out, err = run(capsys, "predict", str(model), str(tmp_path / "new.csv"),
                         "--no-header")
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


# ---- issue 22: headers, byte-order marks, duplicate names, file lines, one-line errors ---------

def small_data(rng, n=60):
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64)


FAST = ["--hidden", "8", "--epochs", "2", "--batch-size", "16"]


def one_line_error(code, err):
    return code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_first_row_is_the_header_as_in_pandas(capsys, tmp_path, rng):
    # pandas writes the header 0,1,2,3 for an unnamed frame: it names columns, it is no sample
    X, y = small_data(rng)
    data = tmp_path / "d.csv"
    pd.DataFrame(np.column_stack([X, y])).to_csv(data, index=False)
    model = tmp_path / "m.safetensors"
    code, out, err = run(capsys, "train", "--data", str(data), *FAST, "--out", str(model))
    assert code == 0, err
    assert "60 samples" in out and "2 classes" in out
    assert "target column: '3' (index 3 of 4 columns; the last column" in out
    assert "note" not in err  # pandas' own numbered header needs no warning
    assert json.loads(nn.load_model(model).metadata["nncore.classes"]) == [0.0, 1.0]
    code, out, err = run(capsys, "predict", str(model), str(data))
    assert code == 0, err
    assert len(out.splitlines()) == 1 + 60


def test_no_header_flag(capsys, tmp_path, rng):
    X, y = small_data(rng)
    data = tmp_path / "d.csv"
    write_csv(data, None, np.column_stack([X, y]).tolist())
    model = tmp_path / "m.safetensors"
    code, out, err = run(capsys, "train", "--data", str(data), "--no-header", *FAST,
                         "--out", str(model))
    assert code == 0, err
    assert "60 samples" in out and "2 classes" in out
    code, out, err = run(capsys, "predict", str(model), str(data), "--no-header")
    assert code == 0, err
    assert len(out.splitlines()) == 1 + 60
    # without --no-header the first row is the header, and a note says how to read it as data
    code, out, err = run(capsys, "train", "--data", str(data), *FAST)
    assert code == 0, err
    assert "59 samples" in out and "note:" in err and "--no-header" in err


@pytest.mark.parametrize("header, target, index, how", [
    (["2000", "2001", "2002", "2003"], "2002", 2, "named by --target"),
    (["a", "b", "1", "y"], "1", 2, "named by --target"),
    (["a", "b", "c", "y"], "1", 1, "--target 1 as a 0-based index: no column is named '1'"),
    (["a", "b", "c", "y"], "-2", 2, "--target -2 as a 0-based index"),
    (["a", "b", "c", "y"], None, 3, "the last column, the default"),
])
def test_target_names_a_header_column_first(capsys, tmp_path, rng, header, target, index, how):
    X, y = small_data(rng)
    data = tmp_path / "d.csv"
    write_csv(data, header, np.column_stack([X, y]).tolist())
    model = tmp_path / "m.safetensors"
    argv = ["train", "--data", str(data), *FAST, "-q", "--out", str(model)]
    code, out, err = run(capsys, *argv, *(["--target", target] if target else []))
    assert code == 0, err
    assert f"target column: {header[index]!r} (index {index} of 4 columns; {how}" in out
    meta = nn.load_model(model).metadata
    assert meta["nncore.target"] == header[index]
    assert json.loads(meta["nncore.features"]) == [h for h in header if h != header[index]]


@pytest.mark.parametrize("header", [True, False])
def test_utf8_byte_order_mark_is_dropped(capsys, tmp_path, rng, header):
    # Excel's "CSV UTF-8" starts with a BOM; the same table with and without it reads the same
    X, y = small_data(rng)
    rows = [",".join(map(str, [int(t)] + [f"{v:.6f}" for v in r])) for r, t in zip(X, y)]
    text = "\n".join((["label,x1,x2,x3"] if header else []) + rows) + "\n"
    files = {"bom": tmp_path / "bom.csv", "plain": tmp_path / "plain.csv"}
    files["bom"].write_bytes(b"\xef\xbb\xbf" + text.encode())
    files["plain"].write_bytes(text.encode())
    opts = ["--target", "label"] if header else ["--target", "0", "--no-header"]
    predictions = []
    for name, path in files.items():
        model = tmp_path / f"{name}.safetensors"
        code, out, err = run(capsys, "train", "--data", str(path), *opts, *FAST,
                             "--out", str(model))
        assert code == 0, err
        assert "60 samples" in out and "2 classes" in out
        meta = nn.load_model(model).metadata
        assert json.loads(meta["nncore.features"]) == (["x1", "x2", "x3"] if header
                                                       else ["1", "2", "3"])
        for other in files.values():  # each model reads both files
            code, out, err = run(capsys, "predict", str(model), str(other),
                                 *([] if header else ["--no-header"]))
            assert code == 0, err
            assert len(out.splitlines()) == 1 + 60
            predictions.append(out)
    assert predictions[0] == predictions[1] and predictions[2] == predictions[3]


def test_duplicate_column_names_are_refused(capsys, tmp_path, rng):
    X, y = small_data(rng)
    data = tmp_path / "dup.csv"
    write_csv(data, ["a", "b", "a", "y"], np.column_stack([X, y]).tolist())
    code, out, err = run(capsys, "train", "--data", str(data), *FAST)
    assert one_line_error(code, err), err
    assert "columns 0, 2 (0-based) all 'a'" in err and "own name" in err
    assert "test accuracy" not in out
    good = tmp_path / "good.csv"
    write_csv(good, ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", "--data", str(good), *FAST, "-q", "--out", str(model))[0] == 0
    code, out, err = run(capsys, "predict", str(model), str(data))
    assert one_line_error(code, err) and "'a'" in err, err


@pytest.mark.parametrize("value, message", [
    ("inf", "column 'b' has inf, not a finite number"),
    ("nan", "column 'b' has nan, not a finite number"),
    ("", "column 'b' is empty (a missing value)"),
    ("abc", "column 'b' has the non-numeric value 'abc'"),
    ("1e39", "column 'b' has 1e+39, beyond the range of the model's dtype"),
    ("1,2", "5 fields, but the lines before it have 4"),
])
def test_errors_give_the_line_of_the_file(capsys, tmp_path, rng, value, message):
    # not the row of the shuffled training split, nor a row count that skips the header or
    # blank lines: header line 1, rows 0-9 on lines 2-11, a blank line 12, row 30 on line 33
    X, y = small_data(rng, 40)
    lines = ["a,b,c,y"] + [f"{a:.6f},{b:.6f},{c:.6f},{t}" for (a, b, c), t in zip(X, y)]
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(lines) + "\n")
    lines.insert(11, "")
    lines[32] = lines[32].split(",")
    lines[32][1] = value
    lines[32] = ",".join(lines[32])
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "train", "--data", str(bad), *FAST, "-q")
    assert one_line_error(code, err), err
    assert f"{bad}, line 33: " in err
    assert message in err
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", "--data", str(clean), *FAST, "-q", "--out", str(model))[0] == 0
    code, out, err = run(capsys, "predict", str(model), str(bad))
    assert one_line_error(code, err), err
    assert "line 33" in err and message in err


def test_values_too_large_to_standardise_are_refused(capsys, tmp_path, rng):
    # in float64, 1e200 squared overflows: the column would become 0 (or NaN) for training
    X, y = small_data(rng)
    data = tmp_path / "big.csv"
    write_csv(data, ["a", "b", "c", "y"], np.column_stack([X * [1, 1e200, 1], y]).tolist())
    code, out, err = run(capsys, "train", "--data", str(data), *FAST, "--dtype", "float64")
    assert one_line_error(code, err), err
    assert "feature column 'b' has values too large to standardise" in err
    write_csv(data, ["a", "b", "c", "y"], np.column_stack([X, 1e200 * X[:, 0]]).tolist())
    code, out, err = run(capsys, "train", "--data", str(data), *FAST, "--dtype", "float64")
    assert one_line_error(code, err), err
    assert "target 'y' has values too large to standardise" in err


def test_predict_without_header_finds_the_target_column(capsys, tmp_path, rng):
    X, y = small_data(rng)
    table = np.column_stack([X[:, 0], y, X[:, 1:]])  # the target is column 1 of 4
    named, bare = tmp_path / "named.csv", tmp_path / "bare.csv"
    write_csv(named, ["x1", "y", "x2", "x3"], table.tolist())
    write_csv(bare, None, table.tolist())
    model = tmp_path / "m.safetensors"
    code, out, err = run(capsys, "train", "--data", str(named), "--target", "y", *FAST, "-q",
                         "--out", str(model))
    assert code == 0, err
    code, expected, err = run(capsys, "predict", str(model), str(named), "--proba")
    assert code == 0, err
    code, out, err = run(capsys, "predict", str(model), str(bare), "--no-header", "--proba")
    assert code == 0 and out == expected, err
    write_csv(bare, None, X.tolist())  # the features alone
    code, out, err = run(capsys, "predict", str(model), str(bare), "--no-header", "--proba")
    assert code == 0 and out == expected, err
    # a file without a header read as if it had one: the model's columns are missing
    code, out, err = run(capsys, "predict", str(model), str(bare))
    assert one_line_error(code, err) and "pass --no-header" in err, err


@pytest.mark.parametrize("where", ["folder", "missing folder"])
@pytest.mark.parametrize("command", ["train", "predict"])
def test_out_that_cannot_be_written_is_refused_first(capsys, tmp_path, rng, command, where):
    X, y = small_data(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    model = tmp_path / "m.safetensors"
    assert run(capsys, "train", "--data", str(tmp_path / "d.npz"), *FAST, "-q",
               "--out", str(model))[0] == 0
    out_path = tmp_path if where == "folder" else tmp_path / "nowhere" / "x"
    argv = (["train", "--data", str(tmp_path / "d.npz"), *FAST, "-q"] if command == "train"
            else ["predict", str(model), str(tmp_path / "d.npz")])
    code, out, err = run(capsys, *argv, "--out", str(out_path))
    assert one_line_error(code, err), err
    assert f"--out {str(out_path)!r}" in err
    assert ("is a folder" if where == "folder" else "does not exist") in err
    assert out == ""  # refused before training or predicting


def test_network_too_large_for_memory_is_one_line(capsys, tmp_path, rng):
    X, y = small_data(rng)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    # 3 x 10**14 float32 weights: beyond any machine's address space, so no test machine
    # can allocate them
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d.npz"), "--hidden",
                         str(10**14), "-q")
    assert one_line_error(code, err), err
    assert f"--hidden sizes (got '{10**14}')" in err


@pytest.mark.parametrize("task", ["auto", "classification"])
def test_npz_with_2d_labels_is_one_line(capsys, tmp_path, rng, task):
    X, y = small_data(rng)
    np.savez(tmp_path / "d.npz", X=X, y=np.eye(2)[y])  # one-hot
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d.npz"), "--task", task,
                         *FAST)
    assert one_line_error(code, err), err
    assert "y has shape (60, 2)" in err and "y.argmax(axis=1)" in err
    np.savez(tmp_path / "d.npz", X=X, y=y[:, None])  # one column: the labels
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d.npz"), "--task", task,
                         *FAST)
    assert code == 0 and "2 classes" in out, err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_big_endian_npz_gives_the_native_results(capsys, tmp_path, rng, dtype, task):
    X, labels = small_data(rng, 80)
    y = labels if task == "classification" else X @ [1.0, -2.0, 0.5] + 3
    X = X.astype(dtype)
    files = {"native": (X, y), "big": (X.astype(X.dtype.newbyteorder(">")),
                                       y.astype(y.dtype.newbyteorder(">")))}
    outputs, models = {}, {}
    for name, (Xf, yf) in files.items():
        assert Xf.dtype.byteorder in ("=", "<") if name == "native" else Xf.dtype.str[0] == ">"
        np.savez(tmp_path / f"{name}.npz", X=Xf, y=yf)
        models[name] = tmp_path / f"{name}.safetensors"
        code, out, err = run(capsys, "train", "--data", str(tmp_path / f"{name}.npz"),
                             "--dtype", dtype, "--task", task, *FAST, "-q",
                             "--out", str(models[name]))
        assert code == 0, err
        outputs[name] = out.splitlines()[0]  # test accuracy / test MSE
    assert outputs["big"] == outputs["native"]
    a, b = nn.load_model(models["native"]), nn.load_model(models["big"])
    assert a.metadata == b.metadata
    for la, lb in zip(a.layers, b.layers):
        if isinstance(la, nn.Dense):
            assert np.array_equal(la.W, lb.W) and np.array_equal(la.b, lb.b)
    predictions = set()
    for name, (Xf, _) in files.items():
        np.savez(tmp_path / f"{name}_new.npz", X=Xf[:20])  # new rows to predict
    for model in models.values():
        for name in files:
            # predict, then predict_proba: the second call took the compiled fast path, which
            # read big-endian bytes as native ones (p_0 = 1, p_1 = 0)
            code, out, err = run(capsys, "predict", str(model),
                                 str(tmp_path / f"{name}_new.npz"), "--proba")
            assert code == 0, err
            predictions.add(out)
    assert len(predictions) == 1


def test_csv_without_pandas_is_a_clear_error(capsys, tmp_path, rng, monkeypatch):
    X, y = small_data(rng)
    write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], np.column_stack([X, y]).tolist())
    np.savez(tmp_path / "d.npz", X=X, y=y)
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d.csv"), *FAST)
    assert one_line_error(code, err), err
    assert "needs pandas" in err and "pip install pandas" in err
    code, out, err = run(capsys, "train", "--data", str(tmp_path / "d.npz"), *FAST, "-q")
    assert code == 0, err  # .npz needs no pandas
