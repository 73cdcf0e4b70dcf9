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
import os
import tempfile

from ._version import __version__

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT = "nncore"
FORMAT_VERSION = "1"
_OPT_PREFIX = "optimizer."


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


def _read(path):
    """(metadata dict, tensors dict) of an nncore model file, or a clear error."""
    from safetensors import safe_open

    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no model file at {p!r}")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p!r} is a directory, not a model file")
    try:
        with safe_open(p, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types (header, truncation)
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
    except ValueError as e:
        raise ModelFileError(f"{os.fspath(path)!r}: metadata {key!r} is not valid JSON "
                             f"({e}); the file is corrupt") from None


def read_tensors(path):
    """The parameter tensors of an nncore model file (optimizer state excluded)."""
    _, tensors = _read(path)
    return {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}


def load_model(path, *, compile=True):
    """Read a model written by :meth:`nncore.Sequential.save`.

    Parameters
    ----------
    path : str or os.PathLike
    compile : bool, default True
        Restore the loss, metrics and optimizer (with its state, if saved) so that
        ``evaluate`` and further ``fit`` calls work at once.

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
    from . import losses, optimizers
    from .models import Sequential

    meta, tensors = _read(path)
    p = os.fspath(path)
    arch = _json(meta, "architecture", path)
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise ModelFileError(f"{p!r} has dtype {dtype!r} in its metadata; expected float32 "
                             f"or float64")
    try:
        model = Sequential.from_config(arch, dtype=dtype)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ModelFileError(f"{p!r}: its architecture cannot be rebuilt ({e})") from None
    params = {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}
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
        except (TypeError, ValueError, KeyError) as e:
            raise ModelFileError(f"{p!r}: its random-stream state is invalid ({e})") from None
    if compile and "compile" in meta:
        cfg = _json(meta, "compile", path)
        try:
            model.compile(optimizers.get(cfg["optimizer"]), losses.get(cfg["loss"]),
                          cfg.get("metrics", []))
        except (TypeError, ValueError, KeyError) as e:
            raise ModelFileError(f"{p!r}: its compile settings are invalid ({e})") from None
        if "optimizer_state" in meta:
            st = _json(meta, "optimizer_state", path)
            arrays = {k[len(_OPT_PREFIX):]: v for k, v in tensors.items()
                      if k.startswith(_OPT_PREFIX)}
            try:
                model.optimizer.load_state_dict(
                    {"lr": st["lr"], "steps": st["steps"], "epochs": st["epochs"],
                     "state": arrays})
            except (TypeError, ValueError, KeyError) as e:
                raise ModelFileError(f"{p!r}: its optimizer state is invalid ({e})") from None
    return model
