"""Model files: ``model.save(path)`` and :func:`load_model`, in the safetensors format.

A file holds
  * tensors ``"<layer index>.<name>"`` (``"0.W"``, ``"0.b"``, ...) in the model's dtype, and
    with the optimizer's state ``"optimizer.<name>"`` (flat arrays);
  * text metadata: ``format = "nncore"``, ``format_version``, ``nncore_version``, ``dtype``,
    ``architecture`` (JSON of ``model.get_config()``), ``compile`` (JSON: loss, metrics,
    optimizer settings) and ``optimizer_state`` (JSON counters) when compiled,
    ``rng_state`` (JSON: the seed, the dropout counter and the shuffling generator's state,
    so that training resumes exactly) and ``user_metadata`` (JSON) from
    ``save(..., metadata=...)``.

Nothing is ever pickled: loading a file runs no code from it. Writes are atomic (a temporary
file in the same directory, flushed to disk, then renamed over the target).
"""

import json
import math
import os
import struct
import tempfile

from ._version import __version__

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT = "nncore"
FORMAT_VERSION = "1"
_OPT_PREFIX = "optimizer."
# what rebuilding from a corrupt (but parsable) configuration may raise
_BAD_CONFIG = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
               RecursionError)
# nncore's headers are a few kB (names, shapes, architecture JSON); a larger one is a lie
MAX_HEADER_BYTES = 16 * 1024 * 1024
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


class ModelFileError(ValueError):
    """A model file is missing pieces, corrupt, truncated, or does not match its own
    architecture."""


def atomic_write_bytes(path, data):
    """Write data to path so that readers see the old file or the complete new one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_model(model, path, *, include_optimizer=True, metadata=None):
    """Write ``model`` to ``path`` (see :meth:`nncore.Sequential.save`)."""
    from safetensors.numpy import save

    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must be a dict of str to str")
    tensors = model.state_dict()
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "nncore_version": __version__,
        "dtype": model.dtype.name, "architecture": json.dumps(model.get_config()),
    }
    if model.loss is not None:
        meta["compile"] = json.dumps({
            "loss": model.loss.get_config(), "metrics": [m.name for m in model.metrics],
            "optimizer": model.optimizer.get_config()})
        if include_optimizer:
            sd = model.optimizer.state_dict()
            for k, v in sd["state"].items():
                tensors[_OPT_PREFIX + k] = v
            meta["optimizer_state"] = json.dumps(
                {"lr": sd["lr"], "steps": sd["steps"], "epochs": sd["epochs"],
                 "arrays": sorted(sd["state"])})
    meta["rng_state"] = json.dumps(model._rng_state())
    if metadata:
        meta["user_metadata"] = json.dumps(metadata)
    atomic_write_bytes(path, save(tensors, metadata=meta))


def _check_header(data, p):
    """The metadata of safetensors bytes after checking the whole layout ourselves: header
    length, JSON, each tensor's dtype, shape and byte range (in bounds, sized to its shape,
    no overlaps or holes). Errors name the problem."""
    def bad(why):
        return ModelFileError(f"{p!r} is not a valid safetensors model file: {why}; it may "
                              f"be truncated or corrupt: save the model again with "
                              f"model.save(path)")

    if len(data) < 8:
        raise bad(f"it has {len(data)} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:
        raise bad(f"its header claims {n} bytes (the limit is {MAX_HEADER_BYTES})")
    if 8 + n > len(data):
        raise bad(f"its header claims {n} bytes but the file has only {len(data) - 8} after "
                  f"the length (truncated?)")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"its header is not valid JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise bad("its __metadata__ is not a map of strings to strings")
    body = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r} does not have exactly dtype, shape and data_offsets")
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in _DTYPE_SIZES:
            raise bad(f"tensor {name!r} has unknown dtype {dt!r}")
        if not isinstance(shape, list) or not all(
                type(d) is int and 0 <= d < 2 ** 62 for d in shape):
            raise bad(f"tensor {name!r} has an invalid shape {shape!r}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(
                type(o) is int and 0 <= o for o in offs) or offs[0] > offs[1]:
            raise bad(f"tensor {name!r} has invalid data_offsets {offs!r}")
        nbytes = math.prod(shape) * _DTYPE_SIZES[dt]
        if offs[1] - offs[0] != nbytes:
            raise bad(f"tensor {name!r} of shape {shape} and dtype {dt} needs {nbytes} bytes "
                      f"but its data_offsets {offs} span {offs[1] - offs[0]}")
        if offs[1] > body:
            raise bad(f"tensor {name!r} ends at byte {offs[1]} of a {body}-byte data section "
                      f"(truncated?)")
        spans.append((offs[0], offs[1], name))
    end = 0
    for a, b, name in sorted(spans):
        if a != end:
            raise bad(f"tensor {name!r} starts at byte {a}, expected {end} (overlapping or "
                      f"missing data)")
        end = b
    if end != body:
        raise bad(f"its data section has {body} bytes but the tensors use {end}")
    return meta


def _read(path):
    """(metadata dict, tensors dict) of an nncore model file, or a clear error."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no model file at {p!r}")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p!r} is a directory, not a model file")
    with open(p, "rb") as f:
        data = f.read()
    return _parse(data, p)


def _parse(data, p):
    from safetensors.numpy import load

    meta = _check_header(data, p)
    try:
        tensors = load(data)
    except Exception as e:  # safetensors' own checks (a second line of defence)
        raise ModelFileError(f"{p!r} is not a readable safetensors model file ({e}); it may "
                             f"be truncated or corrupt: save the model again with "
                             f"model.save(path)") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{p!r} is a safetensors file but was not written by nncore "
                             f"(its metadata has no format='nncore'); nncore can only load "
                             f"files written by model.save")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{p!r} has nncore file format version "
                             f"{meta.get('format_version')!r}; this nncore ({__version__}) "
                             f"reads version {FORMAT_VERSION}")
    return meta, tensors


def _json(meta, key, path, default=None):
    if key not in meta:
        if default is not None:
            return default
        raise ModelFileError(f"{os.fspath(path)!r} has no {key!r} in its metadata; the file "
                             f"is incomplete")
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{os.fspath(path)!r}: metadata {key!r} is not valid JSON "
                             f"({e}); the file is corrupt") from None


def read_tensors(path):
    """The parameter tensors of an nncore model file (optimizer state excluded)."""
    _, tensors = _read(path)
    return {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}


def load_model(path, *, compile=True, allow_nonfinite=False):
    """Read a model written by :meth:`nncore.Sequential.save`.

    Parameters
    ----------
    path : str or os.PathLike
    compile : bool, default True
        Restore the loss, metrics and optimizer (with its state, if saved) so that
        ``evaluate`` and further ``fit`` calls work at once.
    allow_nonfinite : bool, default False
        Accept NaN or infinite weights or optimizer state (by default they are an error:
        such a model only predicts NaN).

    Returns
    -------
    Sequential
        With ``model.metadata``: the ``metadata`` dict given to ``save`` (or ``{}``).

    Raises
    ------
    FileNotFoundError
        If there is no file.
    ModelFileError
        (a ValueError) if the file is not a complete nncore model file: corrupt, truncated,
        written by something else, or its tensors do not match its architecture.
    """
    meta, tensors = _read(path)
    return _build(meta, tensors, os.fspath(path), compile, allow_nonfinite)


def _build(meta, tensors, p, compile=True, allow_nonfinite=False):
    """The model described by a parsed file (metadata, tensors); p names it in errors."""
    import numpy as np

    from . import layers as _layers
    from . import losses, optimizers
    from .models import Sequential

    path = p
    if not allow_nonfinite:
        for k, v in tensors.items():
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                i = int(np.flatnonzero(~np.isfinite(v.reshape(-1)))[0])
                raise ModelFileError(f"{p!r}: tensor {k!r} holds {v.reshape(-1)[i]!r} (flat "
                                     f"index {i}); the model was saved after its training "
                                     f"diverged. Pass allow_nonfinite=True to load it anyway")
    arch = _json(meta, "architecture", path)
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{p!r} has dtype {dtype!r} in its metadata; expected float32 "
                             f"or float64")
    params = {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}
    try:
        layers = [_layers.get(c) for c in arch.get("layers", [])]
        # the tensors must match before the model's buffers are allocated: a corrupt
        # architecture could otherwise ask for terabytes
        want = {f"{i}.{name}": tuple(shape) for i, layer in enumerate(layers)
                for name, shape in layer._param_shapes()}
    except _BAD_CONFIG as e:
        raise ModelFileError(f"{p!r}: its architecture cannot be rebuilt ({e})") from None
    got = {k: v.shape for k, v in params.items()}
    if want != got:
        raise ModelFileError(f"{p!r}: its tensors do not match its architecture (the "
                             f"architecture needs {want}, the file has {got})")
    try:
        model = Sequential(layers, dtype=dtype, seed=arch.get("seed"),
                           name=arch.get("name", "sequential"))
    except _BAD_CONFIG as e:
        raise ModelFileError(f"{p!r}: its architecture cannot be rebuilt ({e})") from None
    for k, v in params.items():
        if v.dtype != model.dtype:
            raise ModelFileError(f"{p!r}: tensor {k!r} is {v.dtype} but the model is {dtype}")
    try:
        model.load_state_dict(params, strict=True)
    except ValueError as e:
        raise ModelFileError(f"{p!r}: its tensors do not match its architecture ({e})") \
            from None
    model.metadata = _json(meta, "user_metadata", path, default={})
    if "rng_state" in meta:
        try:
            model._set_rng_state(_json(meta, "rng_state", path))
        except _BAD_CONFIG as e:
            raise ModelFileError(f"{p!r}: its random-stream state is invalid ({e})") from None
    if compile and "compile" in meta:
        cfg = _json(meta, "compile", path)
        try:
            model.compile(optimizers.get(cfg["optimizer"]), losses.get(cfg["loss"]),
                          cfg.get("metrics", []))
        except _BAD_CONFIG as e:
            raise ModelFileError(f"{p!r}: its compile settings are invalid ({e})") from None
        if "optimizer_state" in meta:
            st = _json(meta, "optimizer_state", path)
            arrays = {k[len(_OPT_PREFIX):]: v for k, v in tensors.items()
                      if k.startswith(_OPT_PREFIX)}
            listed = st.get("arrays") if isinstance(st, dict) else None
            if listed is not None and (not isinstance(listed, list)
                                       or sorted(arrays) != sorted(map(str, listed))):
                raise ModelFileError(f"{p!r}: its optimizer tensors {sorted(arrays)} do not "
                                     f"match the arrays its metadata lists {listed}")
            try:
                model.optimizer.load_state_dict(
                    {"lr": st["lr"], "steps": st["steps"], "epochs": st["epochs"],
                     "state": arrays})
            except _BAD_CONFIG as e:
                raise ModelFileError(f"{p!r}: its optimizer state is invalid ({e})") from None
    return model
