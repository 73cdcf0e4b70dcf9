"""The ``nncore`` command (also ``python -m nncore``).

``nncore train``
    Train an MLP (on the shipped digits data by default) with a progress bar; print the test
    accuracy (or error) and the time; optionally save the model (``--out``).
``nncore predict MODEL DATA``
    Write the predictions of a saved model for the rows of DATA as CSV.
``nncore info``
    Print the build configuration (compiler, flags, OpenMP, CPU paths, threads).

Data files: CSV, read with pandas (UTF-8, with or without a byte-order mark), or ``.npz``
with arrays ``X`` and ``y`` (``--target`` names y's key; any byte order). As in pandas, the
first row of a CSV file is its header (column names, each used once) unless ``--no-header``
says it is data (then the columns are numbered 0, 1, ...). The target is the last column
unless ``--target`` names one: a header name first, else a 0-based index; ``train`` prints
which column it used. Errors in a CSV file give the file's line. Features are standardised
with the training rows' mean and standard deviation, and regression targets likewise; both
transformations are folded into the first and last Dense layers before saving, so a saved
model takes raw features and gives raw predictions.
"""

import argparse
import csv
import json
import os
import re
import sys
import time
import zipfile

import numpy as np

__all__ = ["main"]


class CLIError(Exception):
    """An error to report as one line, without a traceback."""


# ---- data files -------------------------------------------------------------------------------

def _pandas():
    """pandas, imported only when a CSV file is read (``import nncore`` stays light)."""
    try:
        import pandas
    except ImportError:
        raise CLIError("reading CSV files needs pandas, which is not installed: run pip install "
                       "pandas (or pip install 'nncore[cli]'), or pass the data as .npz "
                       "(arrays X and y)") from None
    return pandas


def _blank_lines(path, start):
    """How many whitespace-only lines follow the first ``start`` lines of the file."""
    n = 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        for i, line in enumerate(f):
            if i < start:
                continue
            if line.strip():
                break
            n += 1
    return n


class Table:
    """A CSV file as pandas reads it: column names, one array per column (float64 for a
    numeric column, stripped str objects for text) and the file's line of every row."""

    def __init__(self, path, names, columns, lines, header):
        self.path, self.names, self.columns, self.lines = path, names, columns, lines
        self.header = header
        self.n_rows = len(lines)
        # a header of numbers other than pandas' own 0, 1, ... may be a first row of data
        self.numeric_header = (header and all(_is_number(c) for c in names) and
                               names != [str(j) for j in range(len(names))])

    def note_header(self):
        if self.numeric_header:
            names = self.names
            print(f"nncore: note: the first row of {self.path} ({', '.join(names[:4])}"
                  f"{', ...' if len(names) > 4 else ''}) is read as the header (column "
                  f"names); if it is data, pass --no-header", file=sys.stderr)

    def where(self, i):
        return f"{self.path}, line {self.lines[i]}"

    def numbers(self, j):
        """Column j as float64: NaN where a cell is empty or not a number."""
        col = self.columns[j]
        if col.dtype == object:
            pd = _pandas()
            return pd.to_numeric(pd.Series(col, dtype=object), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan)
        return col

    def cell_error(self, i, j, limit, fix):
        """The error for the cell (i, j) that is empty, not a number, not finite or beyond
        limit (the model dtype's range)."""
        col = self.columns[j]
        where = f"{self.where(i)}: column {self.names[j]!r}"
        if col.dtype == object:  # text as written
            shown, value = col[i], self.numbers(j)[i]
            if shown != "" and np.isnan(value) and not _is_nan(shown):
                hint = ("; if this line is a header, leave out --no-header"
                        if not self.header and i == 0 else "")
                return CLIError(f"{where} has the non-numeric value {shown!r}; encode it as "
                                f"numbers first{hint}")
        else:  # a number as pandas read it; NaN only where the cell is empty
            value = float(col[i])
            shown = "" if np.isnan(value) else repr(value)
        if shown == "":
            return CLIError(f"{where} is empty (a missing value); fill it in or drop the row")
        if not np.isfinite(value):
            return CLIError(f"{where} has {shown}, not a finite number; remove or impute NaN "
                            f"and infinity first")
        return CLIError(f"{where} has {shown}, beyond the range of the model's dtype "
                        f"(+-{limit:.4g}); {fix}")


def read_table(path, header=True):
    """A CSV file as a Table, read by pandas (UTF-8, a byte-order mark dropped). The first
    row holds the column names unless header is False (then they are 0, 1, ...); blank
    lines are skipped."""
    pd = _pandas()
    opts = dict(encoding="utf-8-sig", skip_blank_lines=False)
    names, header_lines, lead, after = None, 0, 0, 0
    try:
        lead = _blank_lines(path, 0)
        if header:
            try:
                raw = pd.read_csv(path, header=None, nrows=1, skiprows=lead, dtype=str,
                                  na_filter=False, **opts)
            except pd.errors.EmptyDataError:
                raise CLIError(f"{path} has no rows") from None
            cells = [str(c) for c in raw.iloc[0]]
            header_lines = 1 + sum(c.count("\n") for c in cells)
            names = [c.strip() or f"Unnamed: {j}" for j, c in enumerate(cells)]
            _check_names(path, names, lead + 1)
        after = _blank_lines(path, lead + header_lines) if header else 0
        try:
            # every value as pandas infers it, but only empty cells are missing: 'NA' or
            # 'nan' in a feature column is reported, not read as NaN
            frame = pd.read_csv(path, header=None, skiprows=lead + bool(header) + after,
                                keep_default_na=False, na_values=[""], **opts)
        except pd.errors.EmptyDataError:
            raise CLIError(f"{path} has a header but no data rows" if header else
                           f"{path} has no rows") from None
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise CLIError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it "
                       f"as CSV UTF-8") from None
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if not m:
            raise CLIError(f"{path}: {str(e).strip()}") from None
        # pandas takes the number of fields from the first data line
        if names is not None and int(m[1]) != len(names):
            raise _fields_error(path, lead + header_lines + after + 1, int(m[1]),
                                f"the header (line {lead + 1}) names {len(names)} "
                                f"columns") from None
        raise _fields_error(path, m[2], m[3], f"the lines before it have {m[1]}") from None
    first = lead + header_lines + after + 1  # the file's line of the first data row
    if names is None:
        names = [str(j) for j in range(frame.shape[1])]
    elif frame.shape[1] != len(names):
        raise _fields_error(path, first, frame.shape[1],
                            f"the header (line {lead + 1}) names {len(names)} columns")
    n = len(frame)
    blank = np.ones(n, dtype=bool)
    newlines = np.zeros(n, dtype=np.int64)
    columns = []
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            blank &= np.isnan(values)
        else:  # text (and True/False as pandas reads them), stripped; "" where empty
            values = np.array(["" if v is None or v is pd.NA or (isinstance(v, float) and
                                                                   np.isnan(v)) else str(v)
                               for v in col.to_numpy(dtype=object)], dtype=object)
            newlines += [v.count("\n") for v in values]
            values = np.array([v.strip() for v in values], dtype=object)
            blank &= values == ""
        columns.append(values)
    lines = first + np.arange(n) + np.cumsum(newlines) - newlines  # quoted line breaks
    keep = ~blank
    if not keep.any():
        raise CLIError(f"{path} has a header but no data rows" if header else
                       f"{path} has no rows")
    if not keep.all():
        columns = [c[keep] for c in columns]
        lines = lines[keep]
    return Table(path, names, columns, lines, header)


def _fields_error(path, line, n, expected):
    return CLIError(f"{path}, line {line}: {n} fields, but {expected}; every line needs one "
                    f"field per column")


def _check_names(path, names, line):
    seen = {}
    for j, name in enumerate(names):
        seen.setdefault(name, []).append(j)
    dups = {name: js for name, js in seen.items() if len(js) > 1}
    if dups:
        name, js = next(iter(dups.items()))
        more = f" ({len(dups) - 1} more names repeat)" if len(dups) > 1 else ""
        raise CLIError(f"{path}: the header (line {line}) names columns "
                       f"{', '.join(map(str, js))} (0-based) all {name!r}{more}; give every "
                       f"column its own name")


def _is_nan(s):
    """Whether s spells NaN (which pandas' numbers leave as text: it is no label)."""
    return s.lower().lstrip("+-") == "nan"


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _column_index(names, target, path, header):
    """(index, how it was chosen) of the target column."""
    if target is None:
        return len(names) - 1, "the last column, the default; --target chooses another"
    if header and target.strip() in names:
        return names.index(target.strip()), "named by --target"
    try:
        i = int(target)
    except ValueError:
        if not header:
            raise CLIError(f"--target {target!r} is not a column number; with --no-header the "
                           f"columns of {path} are numbered 0 to {len(names) - 1}") from None
        raise CLIError(f"--target {target!r} is not a column of {path}; its columns are "
                       f"{names}") from None
    if not -len(names) <= i < len(names):
        raise CLIError(f"--target {i} is out of range for {path}'s {len(names)} columns "
                       f"(0 to {len(names) - 1}, or -1 for the last)" +
                       (f"; no column is named {target!r}" if header else ""))
    how = (f"--target {target} as a 0-based index: no column is named {target!r}" if header
           else f"--target {target} as a 0-based index")
    return i % len(names), how


def _feature_matrix(table, idx, dtype, fix):
    """The columns idx of table as a float64 matrix of finite values within dtype's range."""
    limit = float(np.finfo(dtype).max)
    X = np.column_stack([table.numbers(j) for j in idx])
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(X) <= limit)  # NaN (empty, not a number), inf, too large
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))  # the first line with a bad cell
        raise table.cell_error(i, idx[int(np.argmax(bad[i]))], limit, fix)
    return X


def _npz_array(a, key, path, limit=None, fix=""):
    """An array from a .npz in native byte order (numbers as float64 when limit is given),
    with finite values within +-limit."""
    if a.dtype.kind == "S":
        a = a.astype(str)
    if a.dtype.kind not in ("biuf" if limit is not None else "biufU"):
        raise CLIError(f"{path}: {key} has dtype {a.dtype}; it must hold numbers"
                       + (" or text labels" if limit is None else ""))
    a = a.astype(a.dtype.newbyteorder("="), copy=False)  # e.g. '>f4' from another machine
    if limit is not None:
        a = a.astype(np.float64, copy=False)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if limit is not None:
            with np.errstate(invalid="ignore"):
                bad |= np.abs(a) > limit
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            v = float(a[idx])
            msg = (f"not a finite number; remove or impute NaN and infinity first"
                   if not np.isfinite(v) else
                   f"beyond the range of the model's dtype (+-{limit:.4g}); {fix}")
            raise CLIError(f"{path}: {key}[{', '.join(map(str, idx))}] is {v!r}, {msg}")
    return a


def _load_npz(path, keys):
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = [k for k in keys if k not in d]
            if missing:
                raise CLIError(f"{path} must hold the arrays {keys}; it has {sorted(d.files)}")
            return [np.asarray(d[k]) for k in keys]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CLIError(f"cannot read {path} as .npz ({e})") from None


class TrainingData:
    """X, y, the feature names, the target's name and, from a CSV file, whether it had a
    header and the target's column; where(i) says where row i is in the file."""

    def __init__(self, X, y, features, target, where, header=False, target_index=None):
        self.X, self.y, self.features, self.target, self.where = X, y, features, target, where
        self.header, self.target_index = header, target_index


def _array_dtype(dtype):
    """The dtype of a model's arrays for --dtype: mixed_bfloat16's are float32."""
    return np.float32 if dtype == "mixed_bfloat16" else dtype


def load_training_data(path, target, header=True, dtype=np.float32):
    """TrainingData from CSV or NPZ; features are checked against dtype's range."""
    fix = "rescale it, or train in float64 (--dtype float64)"
    limit = float(np.finfo(dtype).max)
    if path.lower().endswith(".npz"):
        key = target or "y"
        X, y = _load_npz(path, ["X", key])
        X = _npz_array(X, "X", path, limit, fix)
        y = _npz_array(y, key, path)
        if X.ndim != 2 or 0 in X.shape:
            raise CLIError(f"{path}: X must be 2-D with at least one row and one column, got "
                           f"shape {X.shape}")
        if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise CLIError(f"{path}: {key} has shape {y.shape}, but X has {X.shape[0]} rows; "
                           f"{key} needs one row (a label or target values) per row of X")
        return TrainingData(X, y, [str(i) for i in range(X.shape[1])], key,
                            lambda i: f"{path}: {key}[{i}]")
    table = read_table(path, header)
    names = table.names
    if len(names) < 2:
        raise CLIError(f"{path} has one column ({names[0]!r}); it needs features and a target "
                       f"(nncore reads comma-separated files: is it separated by ';' or tabs?)")
    table.note_header()
    t, how = _column_index(names, target, path, header)
    feat = [i for i in range(len(names)) if i != t]
    X = _feature_matrix(table, feat, dtype, fix)
    col, y = table.columns[t], table.numbers(t)
    if col.dtype == object and any(v != "" and not _is_nan(v)
                                   for v in col[np.isnan(y)]):
        bad = col == ""  # text labels: each row needs one
        y = col.astype(str)
    else:
        bad = ~np.isfinite(y)
    if bad.any():
        raise table.cell_error(int(np.argmax(bad)), t, limit, fix)
    print(f"target column: {names[t]!r} (index {t} of {len(names)} columns; {how})")
    return TrainingData(X, y, [names[i] for i in feat], names[t], table.where, header, t)


def load_features(path, meta, n_features, header=True, dtype=np.float32):
    """X (float64) for prediction. From a CSV with a header, the columns named in the
    model's metadata when it was trained on a file with a header; otherwise the columns in
    order, without the target's column when the file still has it."""
    fix = "rescale it as it was for training"
    limit = float(np.finfo(dtype).max)
    if path.lower().endswith(".npz"):
        X = _npz_array(_load_npz(path, ["X"])[0], "X", path, limit, fix)
        if X.ndim != 2:
            raise CLIError(f"{path}: X must be 2-D, got shape {X.shape}")
        return X
    features = json.loads(meta["nncore.features"]) if "nncore.features" in meta else None
    if "nncore.header" in meta:
        named = meta["nncore.header"] == "true"
    else:  # a model saved before nncore.header: numbered columns had no header
        named = bool(features) and not all(n.isdigit() for n in features)
    table = read_table(path, header)
    names = table.names
    if header and named:
        missing = [n for n in features if n not in names]
        if missing:
            hint = ("; if the file has no header row, pass --no-header"
                    if table.numeric_header else "")
            raise CLIError(f"{path} lacks the feature columns {missing} the model was trained "
                           f"on (its columns are {names}){hint}")
        idx = [names.index(n) for n in features]
    else:
        table.note_header()
        if len(names) == n_features:
            idx = list(range(n_features))
        elif len(names) == n_features + 1:  # the file still has the target's column
            t = int(meta.get("nncore.target_index", n_features))
            idx = [i for i in range(len(names)) if i != t]
        else:
            raise CLIError(f"{path} has {len(names)} columns, but the model takes "
                           f"{n_features} features (pass the feature columns in the training "
                           f"order, with or without the target's column)")
    return _feature_matrix(table, idx, dtype, fix)


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
    if not 0 <= args.label_smoothing <= 1:
        raise CLIError(f"--label-smoothing must lie in [0, 1], got {args.label_smoothing}")
    if not 0 < args.huber_delta < float("inf"):
        raise CLIError(f"--huber-delta must be positive and finite, got {args.huber_delta}")
    if args.out:
        _check_out(args.out, "model.safetensors")
    if args.threads:
        nn.set_num_threads(args.threads)
    if args.data is None:
        X, y = nn.datasets.load_digits()
        data = TrainingData(X, y, [str(i) for i in range(64)], "digit",
                            lambda i: f"digits row {i}")
        source = "digits (shipped)"
    else:
        data = load_training_data(args.data, args.target, not args.no_header,
                                  _array_dtype(args.dtype))
        source = args.data
    X, y, target_name = data.X, data.y, data.target
    classify = _classification(y, args.task)
    classes = None
    if classify:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise CLIError(f"{args.data}: {target_name} has shape {y.shape}, but classification "
                           f"takes one class label per sample (1-D); if it is one-hot, save "
                           f"{target_name}.argmax(axis=1) instead; for {y.shape[1]} real-valued "
                           f"targets pass --task regression")
        classes, y = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise CLIError(f"the target {target_name!r} has a single class "
                           f"{_plain(classes[0])!r}")
    else:
        if y.dtype.kind not in "iuf":
            raise CLIError(f"--task regression needs a numeric target; {target_name!r} has "
                           f"text values")
        y = y.astype(np.float64)
        big = np.abs(y) > np.finfo(_array_dtype(args.dtype)).max
        if big.any():
            i = int(np.argwhere(big)[0][0])
            raise CLIError(f"{data.where(i)}: the target {target_name!r} is beyond the range of "
                           f"--dtype {args.dtype}; rescale it, or train in float64 "
                           f"(--dtype float64)")
    X_tr, X_te, y_tr, y_te = nn.datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed, stratify=y if classify else None)
    mu, sd = _mean_std(X_tr, data.features, "feature column")
    y_mu = y_sd = None
    poisson = not classify and args.loss == "poisson"
    if poisson and (y < 0).any():
        i = int(np.argwhere(y.reshape(len(y), -1) < 0)[0][0])
        raise CLIError(f"{data.where(i)}: --loss poisson needs counts >= 0, but the target "
                       f"{target_name!r} is negative there")
    if not classify:
        y_tr = y_tr.reshape(len(y_tr), -1)
        if not poisson:  # a log rate is not standardised: exp would no longer give the rate
            y_mu, y_sd = _mean_std(y_tr, [target_name] * y_tr.shape[1], "target")
    n_out = classes.size if classify else y_tr.shape[1]
    sizes = [X.shape[1]] + hidden + [n_out]
    try:
        model = _build(nn, args, sizes, classify)
        if not args.quiet:
            print(f"nncore {nn.__version__}: {source}, {X.shape[0]} samples, {X.shape[1]} "
                  f"features -> " + (f"{n_out} classes" if classify else
                                     f"{n_out} target(s)"))
            model.summary()
        Xs = (X_tr - mu) / sd
        ys = y_tr if classify or poisson else (y_tr - y_mu) / y_sd
        t0 = time.perf_counter()
        model.fit(Xs, ys, epochs=args.epochs, batch_size=args.batch_size,
                  verbose=0 if args.quiet else 1)
        seconds = time.perf_counter() - t0
        _fold_scaling(model, mu, sd, y_mu, y_sd)
        out = model.predict(X_te)
        if poisson:
            out = np.exp(out)
    except MemoryError as e:
        n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
        raise CLIError(f"not enough memory for a {'-'.join(map(str, sizes))} network "
                       f"({n_params:,} parameters; {e}); use smaller --hidden sizes (got "
                       f"{args.hidden!r}) or a smaller --batch-size (got "
                       f"{args.batch_size})") from None
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
                "nncore.target": str(target_name),
                "nncore.features": json.dumps(data.features),
                "nncore.header": "true" if data.header else "false"}
        if data.target_index is not None:
            meta["nncore.target_index"] = str(data.target_index)
        if classify:
            meta["nncore.classes"] = json.dumps([_plain(c) for c in classes])
        try:
            model.save(args.out, metadata=meta)
        except OSError as e:
            raise CLIError(f"cannot write --out {args.out!r}: {e.strerror or e}") from None
        print(f"saved the model to {args.out}")
    return 0


def _build(nn, args, sizes, classify):
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Dense(a, b, activation=args.activation))
        if args.dropout:
            layers.append(nn.Dropout(args.dropout))
    layers.append(nn.Dense(sizes[-2], sizes[-1]))
    model = nn.Sequential(layers, dtype=args.dtype, seed=args.seed)
    opt = (nn.Adam(lr=args.lr) if args.optimizer == "adam"
           else nn.SGD(lr=args.lr, momentum=0.9) if args.optimizer == "sgd"
           else nn.AdamW(lr=args.lr))
    loss = (nn.CrossEntropy(label_smoothing=args.label_smoothing) if classify
            else nn.Huber(delta=args.huber_delta) if args.loss == "huber" else args.loss)
    model.compile(opt, loss, ["accuracy"] if classify else ["mae"])
    return model


def _mean_std(a, names, what):
    """Column means and standard deviations (1 where a column is constant); a column whose
    values are too large to square in float64 is refused, as it would standardise to 0 or
    NaN."""
    with np.errstate(over="ignore", invalid="ignore"):
        mu, sd = a.mean(axis=0), a.std(axis=0)
    bad = ~(np.isfinite(mu) & np.isfinite(sd))
    if bad.any():
        j = int(np.argmax(bad))
        raise CLIError(f"{what} {names[j]!r} has values too large to standardise in float64 "
                       f"(up to {np.abs(a[:, j]).max():.4g}); divide it by a power of ten "
                       f"first")
    sd[sd == 0] = 1.0
    return mu, sd


def _check_out(path, example):
    """Refuse an --out that cannot be written before any work is done."""
    if os.path.isdir(path):
        raise CLIError(f"--out {path!r} is a folder; name a file in it, e.g. --out "
                       f"{os.path.join(path, example)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"--out {path!r}: the folder {parent!r} does not exist; create it or "
                       f"choose another path")


def _plain(v):
    return v.item() if hasattr(v, "item") else v


# ---- predict ----------------------------------------------------------------------------------

def cmd_predict(args):
    import nncore as nn

    if args.out:
        _check_out(args.out, "predictions.csv")
    model = nn.load_model(args.model)
    meta = getattr(model, "metadata", {}) or {}
    X = load_features(args.data, meta, model.n_features, not args.no_header, model.dtype)
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
        if loss == "poisson":  # the model gives the log of the rate
            out = np.exp(out)
        k = out.shape[1]
        header = [f"prediction_{j}" for j in range(k)] if k > 1 else ["prediction"]
        rows = [[f"{v:.8g}" for v in r] for r in out]
    try:
        f = open(args.out, "w", newline="") if args.out else sys.stdout
    except OSError as e:
        raise CLIError(f"cannot write --out {args.out!r}: {e.strerror or e}") from None
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
    t.add_argument("--data", help="training data: FILE.csv (its first row names the "
                   "columns, unless --no-header) or FILE.npz (arrays X, y)")
    t.add_argument("--no-header", action="store_true", help="the CSV file has no header row: "
                   "its first row is data and its columns are numbered 0, 1, ...")
    t.add_argument("--target", help="target column: a header name, or else a 0-based index "
                   "(CSV; default the last column); or array name (NPZ; default 'y')")
    t.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                   help="default: classification for text or few (<= 20) integer targets")
    t.add_argument("--hidden", default="128", help="hidden layer sizes, e.g. 128,64 "
                   "(default 128; '' for none)")
    t.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    t.add_argument("--dropout", type=float, default=0.1, help="dropout after each hidden "
                   "layer (default 0.1)")
    t.add_argument("--loss", choices=["mse", "l1", "huber", "poisson"], default="mse",
                   help="regression loss (default mse); poisson: counts, the model gives the "
                        "log rate and predict its exp")
    t.add_argument("--huber-delta", type=float, default=1.0,
                   help="--loss huber: where it turns from squared to absolute, in standard "
                        "deviations of the target (default 1)")
    t.add_argument("--label-smoothing", type=float, default=0.0,
                   help="classification: label smoothing in [0, 1] (default 0)")
    t.add_argument("--epochs", type=int, default=30, help="default 30")
    t.add_argument("--batch-size", type=int, default=32, help="default 32")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    t.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default="adam",
                   help="default adam (sgd uses momentum 0.9)")
    t.add_argument("--test-size", type=float, default=0.2, help="held-out fraction "
                   "(default 0.2)")
    t.add_argument("--dtype", choices=["float32", "float64", "mixed_bfloat16"],
                   default="float32", help="mixed_bfloat16: float32 weights, the products on "
                   "bfloat16 operands (default float32)")
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
    pr.add_argument("--no-header", action="store_true", help="the CSV file has no header row "
                    "(its columns are taken in the training order)")
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
    except BrokenPipeError:  # e.g. `nncore predict ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (CLIError, ModelFileError, OSError, ValueError, TypeError) as e:
        print(f"nncore {args.command}: error: {e}", file=sys.stderr)
        return 1
    except MemoryError as e:
        print(f"nncore {args.command}: error: out of memory ({e}); use smaller data or a "
              f"smaller network", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
