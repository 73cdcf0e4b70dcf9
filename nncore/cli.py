"""The ``nncore`` command (also ``python -m nncore``).

``nncore train``
    Train an MLP (on the shipped digits data by default) with a progress bar; print the test
    accuracy (or error) and the time; optionally save the model (``--out``).
``nncore predict MODEL DATA``
    Write the predictions of a saved model for the rows of DATA as CSV.
``nncore info``
    Print the build configuration (compiler, flags, OpenMP, CPU paths, threads).

Data files: CSV with a header row (or without one: then columns are named 0, 1, ...; the
target is the last column unless ``--target`` names one, by name or index), or ``.npz``
with arrays ``X`` and ``y`` (``--target`` names y's key). Features are standardised with
the training rows' mean and standard deviation, and regression targets likewise; both
transformations are folded into the first and last Dense layers before saving, so a saved
model takes raw features and gives raw predictions.
"""

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

__all__ = ["main"]


class CLIError(Exception):
    """An error to report as one line, without a traceback."""


# ---- data files -------------------------------------------------------------------------------

def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_table(path):
    """(column names, list of column value lists as str) of a CSV file."""
    try:
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise CLIError(f"{path} is not a readable CSV text file ({e})") from None
    if not rows:
        raise CLIError(f"{path} has no rows")
    if all(_is_number(c) for c in rows[0]):
        names = [str(i) for i in range(len(rows[0]))]
    else:
        names = [c.strip() for c in rows[0]]
        rows = rows[1:]
    if not rows:
        raise CLIError(f"{path} has a header but no data rows")
    for i, r in enumerate(rows):
        if len(r) != len(names):
            raise CLIError(f"{path}: data row {i + 1} has {len(r)} fields but the file has "
                           f"{len(names)} columns")
    return names, [list(c) for c in zip(*rows)]


def _column_index(names, target, path):
    if target is None:
        return len(names) - 1
    if target in names:
        return names.index(target)
    try:
        i = int(target)
    except ValueError:
        raise CLIError(f"--target {target!r} is not a column of {path}; its columns are "
                       f"{names}") from None
    if not -len(names) <= i < len(names):
        raise CLIError(f"--target {i} is out of range for {path}'s {len(names)} columns")
    return i % len(names)


def _numeric_columns(names, columns, path):
    out = np.empty((len(columns[0]), len(columns)), dtype=np.float64)
    for j, (name, col) in enumerate(zip(names, columns)):
        try:
            out[:, j] = [float(v) for v in col]
        except ValueError:
            i = next(k for k, v in enumerate(col) if not _is_number(v))
            raise CLIError(f"{path}: feature column {name!r} has the non-numeric value "
                           f"{col[i]!r} in data row {i + 1}; encode it as numbers "
                           f"first") from None
    return out


def load_training_data(path, target):
    """(X float64, raw target array, feature names, target name) from CSV or NPZ."""
    if path.lower().endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as d:
                key = target or "y"
                if "X" not in d or key not in d:
                    raise CLIError(f"{path} must hold arrays 'X' and {key!r}; it has "
                                   f"{sorted(d.files)}")
                X, y = np.asarray(d["X"]), np.asarray(d[key])
        except (OSError, ValueError) as e:
            raise CLIError(f"cannot read {path} as .npz ({e})") from None
        if X.ndim != 2:
            raise CLIError(f"{path}: X must be 2-D, got shape {X.shape}")
        return X, y, [str(i) for i in range(X.shape[1])], key
    names, columns = read_table(path)
    if len(names) < 2:
        raise CLIError(f"{path} has one column; it needs features and a target")
    t = _column_index(names, target, path)
    feat_names = [n for i, n in enumerate(names) if i != t]
    X = _numeric_columns(feat_names, [c for i, c in enumerate(columns) if i != t], path)
    raw = columns[t]
    y = (np.array([float(v) for v in raw]) if all(_is_number(v) for v in raw)
         else np.array([v.strip() for v in raw]))
    return X, y, feat_names, names[t]


def load_features(path, feature_names, n_features):
    """X for prediction. From a CSV with a header, the columns named in the model's metadata
    (when it has them); otherwise all columns, except a last one too many (the target)."""
    if path.lower().endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as d:
                if "X" not in d:
                    raise CLIError(f"{path} must hold an array 'X'; it has {sorted(d.files)}")
                return np.asarray(d["X"])
        except (OSError, ValueError) as e:
            raise CLIError(f"cannot read {path} as .npz ({e})") from None
    names, columns = read_table(path)
    has_header = not all(n.isdigit() for n in names)
    named = feature_names and not all(n.isdigit() for n in feature_names)
    if has_header and named:
        missing = [n for n in feature_names if n not in names]
        if missing:
            raise CLIError(f"{path} lacks the feature columns {missing} the model was "
                           f"trained on")
        idx = [names.index(n) for n in feature_names]
    elif len(names) == n_features + 1:
        idx = list(range(n_features))  # the file still has its target as the last column
    else:
        idx = list(range(len(names)))
    return _numeric_columns([names[i] for i in idx], [columns[i] for i in idx], path)


# ---- train ------------------------------------------------------------------------------------

def _classification(y, task):
    if task != "auto":
        return task == "classification"
    if y.dtype.kind not in "iuf":
        return True
    return bool(np.all(y == np.round(y))) and np.unique(y).size <= 20


def _fold_scaling(model, mu, sd, y_mu=None, y_sd=None):
    """Make the model take raw features (and give raw targets): fold x' = (x - mu) / sd into
    the first Dense layer and y = y' * y_sd + y_mu into the last."""
    from .layers import Dense
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    first, last = dense[0], dense[-1]
    W = first.W.astype(np.float64) / sd[:, None]
    if first.bias:
        first.b = first.b - (mu / sd) @ first.W.astype(np.float64)
    first.W = W
    if y_mu is not None:
        last.W = last.W * y_sd
        if last.bias:
            last.b = last.b * y_sd + y_mu


def cmd_train(args):
    import nncore as nn

    hidden = []
    if args.hidden.strip():
        try:
            hidden = [int(h) for h in args.hidden.split(",")]
        except ValueError:
            raise CLIError(f"--hidden must be comma-separated layer sizes like 128,64, got "
                           f"{args.hidden!r}") from None
        if any(h < 1 for h in hidden):
            raise CLIError(f"--hidden sizes must be positive, got {args.hidden!r}")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:  # before any work is done or printed
            raise CLIError(f"{flag} must be at least 1, got {value}")
    if args.threads is not None and args.threads < 1:
        raise CLIError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        nn.set_num_threads(args.threads)
    if args.data is None:
        X, y = nn.datasets.load_digits()
        features, target_name, source = [str(i) for i in range(64)], "digit", "digits (shipped)"
    else:
        X, y, features, target_name = load_training_data(args.data, args.target)
        source = args.data
    classify = _classification(y, args.task)
    classes = None
    if classify:
        classes, y = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise CLIError(f"the target {target_name!r} has a single class {classes[0]!r}")
    else:
        if y.dtype.kind not in "iuf":
            raise CLIError(f"--task regression needs a numeric target; {target_name!r} has "
                           f"text values")
        y = y.astype(np.float64)
    X_tr, X_te, y_tr, y_te = nn.datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed, stratify=y if classify else None)
    mu, sd = X_tr.mean(axis=0), X_tr.std(axis=0)
    sd[sd == 0] = 1.0
    y_mu = y_sd = None
    if not classify:
        y_tr = y_tr.reshape(len(y_tr), -1)
        y_mu, y_sd = y_tr.mean(axis=0), y_tr.std(axis=0)
        y_sd[y_sd == 0] = 1.0
    n_out = classes.size if classify else y_tr.shape[1]
    sizes = [X.shape[1]] + hidden
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Dense(a, b, activation=args.activation))
        if args.dropout:
            layers.append(nn.Dropout(args.dropout))
    layers.append(nn.Dense(sizes[-1], n_out))
    model = nn.Sequential(layers, dtype=args.dtype, seed=args.seed)
    opt = (nn.Adam(lr=args.lr) if args.optimizer == "adam"
           else nn.SGD(lr=args.lr, momentum=0.9) if args.optimizer == "sgd"
           else nn.AdamW(lr=args.lr))
    model.compile(opt, "cross_entropy" if classify else "mse",
                  ["accuracy"] if classify else ["mae"])
    if not args.quiet:
        print(f"nncore {nn.__version__}: {source}, {X.shape[0]} samples, {X.shape[1]} "
              f"features -> " + (f"{n_out} classes" if classify else f"{n_out} target(s)"))
        model.summary()
    Xs = (X_tr - mu) / sd
    ys = y_tr if classify else (y_tr - y_mu) / y_sd
    t0 = time.perf_counter()
    model.fit(Xs, ys, epochs=args.epochs, batch_size=args.batch_size,
              verbose=0 if args.quiet else 1)
    seconds = time.perf_counter() - t0
    _fold_scaling(model, mu, sd, y_mu, y_sd)
    out = model.predict(X_te)
    if classify:
        acc = float(np.mean(out.argmax(axis=1) == y_te))
        print(f"test accuracy: {acc:.2%} ({len(y_te)} samples)")
    else:
        err = out - y_te.reshape(len(y_te), -1)
        print(f"test MSE: {np.mean(err ** 2):.6g}, MAE: {np.mean(np.abs(err)):.6g} "
              f"({len(y_te)} samples)")
    print(f"training time: {seconds:.2f} s ({args.epochs} epochs, "
          f"{args.epochs * len(X_tr) / seconds:,.0f} samples/s)")
    if args.out:
        meta = {"nncore.task": "classification" if classify else "regression",
                "nncore.target": str(target_name), "nncore.features": json.dumps(features)}
        if classify:
            meta["nncore.classes"] = json.dumps([_plain(c) for c in classes])
        model.save(args.out, metadata=meta)
        print(f"saved the model to {args.out}")
    return 0


def _plain(v):
    return v.item() if hasattr(v, "item") else v


# ---- predict ----------------------------------------------------------------------------------

def cmd_predict(args):
    import nncore as nn

    model = nn.load_model(args.model)
    meta = getattr(model, "metadata", {}) or {}
    features = json.loads(meta["nncore.features"]) if "nncore.features" in meta else None
    X = load_features(args.data, features, model.n_features)
    out = model.predict(X)
    loss = model.loss.name if model.loss is not None else None
    classes = json.loads(meta["nncore.classes"]) if "nncore.classes" in meta else None
    header, rows = [], []
    if loss == "cross_entropy":
        proba = model.predict_proba(X)
        labels = out.argmax(axis=1)
        names = classes if classes is not None else list(range(out.shape[1]))
        header = ["prediction"] + ([f"p_{c}" for c in names] if args.proba else [])
        for i in range(len(X)):
            row = [names[labels[i]]]
            if args.proba:
                row += [f"{p:.6g}" for p in proba[i]]
            rows.append(row)
    elif loss == "bce_with_logits":
        proba = model.predict_proba(X)
        k = out.shape[1]
        header = [f"prediction_{j}" for j in range(k)] if k > 1 else ["prediction"]
        if args.proba:
            header += [f"p_{j}" for j in range(k)] if k > 1 else ["p"]
        for i in range(len(X)):
            row = [int(v) for v in (out[i] > 0)]
            if args.proba:
                row += [f"{p:.6g}" for p in proba[i]]
            rows.append(row)
    else:
        k = out.shape[1]
        header = [f"prediction_{j}" for j in range(k)] if k > 1 else ["prediction"]
        rows = [[f"{v:.8g}" for v in r] for r in out]
    f = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    finally:
        if args.out:
            f.close()
    if args.out:
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    return 0


# ---- info -------------------------------------------------------------------------------------

def cmd_info(args):
    import nncore as nn
    nn.show_config()
    try:
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p.get("user_api") == "openmp"]
        for p in pools:
            print(f"  OpenMP library:   {p.get('filepath')} ({p.get('num_threads')} threads, "
                  f"seen by threadpoolctl)")
    except ImportError:
        pass
    return 0


# ---- entry point ------------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(prog="nncore", description="nncore: dense neural networks "
                                "on the CPU. Train an MLP, predict with it, show the build.")
    sub = p.add_subparsers(dest="command", metavar="{train,predict,info}")
    t = sub.add_parser("train", help="train an MLP (on the shipped digits data by default)",
                       description="Train an MLP and print its test accuracy (or error). "
                       "Without --data it trains on the shipped 8x8 digits.")
    t.add_argument("--data", help="training data: FILE.csv (header row) or FILE.npz (X, y)")
    t.add_argument("--target", help="target column name or index (CSV; default the last "
                   "column) or array name (NPZ; default 'y')")
    t.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="default: classification for text or few (<= 20) integer targets")
    t.add_argument("--hidden", default="128", help="hidden layer sizes, e.g. 128,64 "
                   "(default 128; '' for none)")
    t.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden "
                   "layer (default 0.1)")
    t.add_argument("--epochs", type=int, default=30, help="default 30")
    t.add_argument("--batch-size", type=int, default=32, help="default 32")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam",
                   help="default adam (sgd uses momentum 0.9)")
    t.add_argument("--test-size", type=float, default=0.2, help="held-out fraction "
                   "(default 0.2)")
    t.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    t.add_argument("--seed", type=int, default=0, help="default 0")
    t.add_argument("--threads", type=int, help="threads for the kernels (default: all)")
    t.add_argument("--out", help="save the trained model here (.safetensors)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    t.set_defaults(func=cmd_train)
    pr = sub.add_parser("predict", help="write a saved model's predictions as CSV",
                        description="Predict with a model saved by 'nncore train --out' or "
                        "model.save(), writing CSV to stdout or --out.")
    pr.add_argument("model", help="model file (.safetensors)")
    pr.add_argument("data", help="FILE.csv or FILE.npz (array X) with the feature columns")
    pr.add_argument("--out", help="write the CSV here instead of stdout")
    pr.add_argument("--proba", action="store_true", help="also write class probabilities")
    pr.set_defaults(func=cmd_predict)
    i = sub.add_parser("info", help="print the build configuration")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    """Run the ``nncore`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .io import ModelFileError
    try:
        return args.func(args)
    except (CLIError, ModelFileError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"nncore {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `nncore predict ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
