"""Input checks shared by the public API. Every error names the argument, shows the value and
says how to fix it; nothing here modifies its inputs.

Conversions (documented in the user-facing docstrings):
  * features X: any real numeric dtype (bool, integers, float16/32/64) is converted to the
    model's dtype; strings, objects, complex numbers and dates are refused with TypeError.
  * class labels: integer or bool arrays, or floats holding whole numbers (as read from a CSV
    file); anything else is refused.
"""

import math
import numbers

import numpy as np

from . import _core

_NUMERIC_KINDS = "biuf"


def check_int(value, name, minimum=None):
    """value as a Python int (rejecting bools, floats and strings), at least minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_v(value)!r} "
                        f"({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_number(value, name, minimum=None, maximum=None):
    """value as a finite Python float in [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_v(value)!r} "
                        f"({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return value


def to_numeric(value, name, what="numbers"):
    """value as an ndarray of a real numeric dtype, or a TypeError naming the problem."""
    if (isinstance(value, np.ndarray) and type(value) is not np.ndarray
            and isinstance(value, np.ma.MaskedArray)):  # np.ma loads only for subclasses
        raise TypeError(f"{name} is a masked array; nncore does not read masks (numpy would "
                        f"use the values under them): fill them, e.g. {name}.filled(0.0), "
                        f"or drop the masked rows first")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, ...
        raise ValueError(f"{name} could not be converted to an array ({e}); pass a "
                         f"rectangular array of {what}") from None
    kind = arr.dtype.kind
    if kind in _NUMERIC_KINDS:
        return arr
    if kind in "USO":
        raise TypeError(f"{name} has dtype {arr.dtype} (strings or Python objects); nncore "
                        f"needs {what}: encode text and missing values first, then convert "
                        f"with numpy.asarray({name}, dtype=float)")
    if kind == "c":
        raise TypeError(f"{name} has complex dtype {arr.dtype}; nncore needs real {what} "
                        f"(use {name}.real or numpy.abs({name}))")
    raise TypeError(f"{name} has dtype {arr.dtype}; nncore needs real {what}")


def first_nonfinite(arr):
    """(index tuple, value) of the first NaN/inf in a float array, or None."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return None
    if (arr.dtype in (np.float32, np.float64) and arr.dtype.isnative
            and arr.flags.c_contiguous):
        i = _core.first_nonfinite(arr)  # one compiled pass, no temporaries
        if i < 0:
            return None
        idx = tuple(int(j) for j in np.unravel_index(i, arr.shape))
        return idx, arr[idx]
    with np.errstate(invalid="ignore"):
        lo, hi = np.min(arr), np.max(arr)  # NaN propagates; +-inf shows up in max or min
    if np.isfinite(lo) and np.isfinite(hi):
        return None
    idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    return idx, arr[idx]


def _v(x):
    """A NumPy scalar as the plain Python number (so messages show 3, not np.int64(3))."""
    return x.item() if isinstance(x, np.generic) else x


def _where(idx):
    if len(idx) == 2:
        return f"row {idx[0]}, column {idx[1]}"
    return f"index {idx[0]}" if len(idx) == 1 else f"index {idx}"


def check_finite(arr, name, original=None):
    bad = first_nonfinite(arr)
    if bad is not None:
        idx, value = bad
        shown = value if original is None else original[idx]
        extra = ""
        if original is not None and np.isfinite(shown):
            extra = f" (it overflows {arr.dtype})"
        raise ValueError(f"{name} contains {_v(shown)!r} at {_where(idx)}{extra}; nncore "
                         f"needs finite values: remove or impute NaN and infinity first")


def _convert(arr, dtype):
    with np.errstate(over="ignore"):  # overflow to inf is reported by check_finite
        return np.ascontiguousarray(arr, dtype=dtype)


def check_finite_array(arr, name, dtype, allow_nonfinite=False):
    """A numeric array in dtype (C-contiguous), refused when a value overflows dtype or, unless
    allowed, is NaN/inf."""
    out = _convert(arr, dtype)
    if not allow_nonfinite:
        check_finite(out, name, arr if arr.dtype.itemsize > out.dtype.itemsize else None)
    elif arr.dtype.itemsize > out.dtype.itemsize:
        grew = np.isinf(out) & np.isfinite(arr)
        if grew.any():
            idx = tuple(int(i) for i in np.argwhere(grew)[0])
            raise ValueError(f"{name} contains {_v(arr[idx])!r} at {_where(idx)}, which "
                             f"overflows {out.dtype}")
    return out


def check_features(value, name, dtype, n_features=None, caller="fit"):
    """A 2-D, non-empty, finite feature matrix in the model dtype, C-contiguous."""
    arr = to_numeric(value, name)
    if arr.ndim != 2:
        if arr.ndim == 1:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got a 1-D array of shape "
                f"{arr.shape}; use {name}.reshape(1, -1) for a single sample or "
                f"{name}.reshape(-1, 1) for a single feature")
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); {caller} needs at least one "
                         f"sample")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}); pass at least one "
                         f"column")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features (columns) but the model "
                         f"expects {n_features}; pass an array of shape "
                         f"(n_samples, {n_features})")
    out = _convert(arr, dtype)
    check_finite(out, name, arr if arr.dtype.itemsize > out.dtype.itemsize else None)
    return out


def check_labels(value, name, n_classes):
    """Class labels as a C-contiguous int64 vector with values in [0, n_classes)."""
    arr = to_numeric(value, name, "integer class labels")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = (f"; if {name} is one-hot, pass {name}.argmax(axis=1)"
                if arr.ndim == 2 else "")
        raise ValueError(f"{name} must be a 1-D array of class labels (n_samples,) for "
                         f"loss='cross_entropy', got shape {arr.shape}{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass one class label per sample")
    if arr.dtype.kind == "f":
        check_finite(arr, name)
        frac = arr != np.floor(arr)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{name} contains {_v(arr[i])!r} at index {i}, not a class "
                             f"label; cross_entropy needs whole numbers 0..{n_classes - 1} "
                             f"(for real-valued targets use loss='mse')")
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        i = int(np.argmax(arr == bad))
        raise ValueError(f"{name} contains label {_v(bad)!r} at index {i}, outside [0, "
                         f"{n_classes}) for a model with {n_classes} outputs; labels must "
                         f"be 0..{n_classes - 1} (encode them with numpy.unique({name}, "
                         f"return_inverse=True), or give the last Dense layer more outputs)")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_targets(value, name, n_outputs, dtype, loss_name, unit_interval=False,
                  nonnegative=False):
    """Real-valued targets of shape (n, n_outputs) in the model dtype (1-D is accepted for one
    output)."""
    arr = to_numeric(value, name)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        hint = ""
        if arr.ndim == 1:
            hint = (f"; {name} looks like class labels: use loss='cross_entropy', or "
                    f"one-hot encode it")
        raise ValueError(f"{name} must have shape (n_samples, {n_outputs}) to match the "
                         f"model's {n_outputs} outputs for loss={loss_name!r}, got shape "
                         f"{arr.shape}{hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass one target row per sample")
    out = _convert(arr, dtype)
    check_finite(out, name, arr if arr.dtype.itemsize > out.dtype.itemsize else None)
    if unit_interval:
        lo, hi = out.min(), out.max()
        if lo < 0 or hi > 1:
            bad = lo if lo < 0 else hi
            idx = tuple(int(i) for i in np.argwhere(out == bad)[0])
            raise ValueError(f"{name} contains {_v(bad)!r} at {_where(idx)}; "
                             f"loss={loss_name!r} needs targets in [0, 1] (probabilities "
                             f"or 0/1 labels)")
    if nonnegative and out.min() < 0:
        idx = tuple(int(i) for i in np.argwhere(out < 0)[0])
        raise ValueError(f"{name} contains {_v(out[idx])!r} at {_where(idx)}; "
                         f"loss={loss_name!r} needs targets >= 0 (counts or rates)")
    return out


def check_sample_weight(value, name, n, dtype):
    """Per-sample weights: 1-D, length n, finite, >= 0, not all zero, with a finite sum; in
    the model dtype. Subnormal weights become 0: the compiled code flushes them (FTZ/DAZ),
    and every path must see the same weights."""
    arr = to_numeric(value, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with one weight per sample, got shape "
                         f"{arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} weights but there are {n} samples; "
                         f"pass one weight per row of X")
    out = _convert(arr, dtype)
    check_finite(out, name, arr if arr.dtype.itemsize > out.dtype.itemsize else None)
    if (out < 0).any():
        i = int(np.argmax(out < 0))
        raise ValueError(f"{name} contains the negative weight {_v(out[i])!r} at index "
                         f"{i}; weights must be >= 0")
    tiny = np.finfo(out.dtype).tiny
    flushed = (out > 0) & (out < tiny)
    if flushed.any():
        out = np.where(flushed, out.dtype.type(0), out)  # a new array: value is not changed
    check_weight_sum(out, name, flushed.any())
    return out


def check_weight_sum(w, name, flushed=False, part=""):
    """The weights of one part of the data (all of it, or what a split leaves) sum to a
    positive, finite number: the loss is sum(w * l) / sum(w)."""
    with np.errstate(over="ignore"):
        total = float(w.sum(dtype=np.float64))
    if total == 0.0:
        why = (f" (its positive weights are all below {np.finfo(w.dtype).tiny:.3g}, the "
               f"smallest normal {w.dtype}, which the compiled code reads as 0)"
               if flushed else "")
        raise ValueError(f"{name} is all zeros{part}{why}; at least one sample needs a "
                         f"positive weight (only the weights' ratios matter: scale them up)")
    if not math.isfinite(total):
        raise ValueError(f"{name} sums to {total!r}{part} (more than float64 holds); only "
                         f"the weights' ratios matter: divide them by {name}.max()")


def check_same_length(a, b, name_a, name_b):
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} has {a.shape[0]} samples (rows) but {name_b} has "
                         f"{b.shape[0]}; pass arrays with the same number of rows")
