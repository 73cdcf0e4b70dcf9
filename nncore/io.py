"""Model files: ``model.save(path)`` and :func:`load_model`, in the safetensors format.

A file holds
  * tensors ``"<layer index>.<name>"`` (``"0.W"``, ``"0.b"``, ...) in the model's dtype, and
    with the optimizer's state ``"optimizer.<name>"`` (flat arrays);
  * text metadata: ``format = "nncore"``, ``format_version``, ``nncore_version``, ``dtype``
    (the model's policy: float32, float64 or mixed_bfloat16, whose tensors are float32),
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
import stat
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
# the dropout counter is a uint64_t in the C core and grows by one per dropped element: a
# restored counter leaves room for 2**63 more
MAX_DROPOUT_COUNTER = 2 ** 63
_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}


class ModelFileError(ValueError):
    """A model file is missing pieces, corrupt, truncated, or does not match its own
    architecture."""


def atomic_write_bytes(path, data):
    """Write data to path so that readers see the old file or the complete new one.

    The temporary file is locked (flock, where there is one) until it is renamed: a
    temporary file of path that nobody holds was left by a writer that was killed, and is
    removed here."""
    try:
        import fcntl
    except ImportError:  # Windows: an open file cannot be removed, nothing to clean
        fcntl = None
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "."
    for name in os.listdir(directory) if fcntl is not None else ():
        # mkstemp's names: the prefix, 8 random characters, the suffix
        if name.startswith(prefix) and name.endswith(".tmp") and \
                len(name) == len(prefix) + 12:
            stale = os.path.join(directory, name)
            try:
                sfd = os.open(stale, os.O_RDWR)
            except OSError:
                continue
            try:  # fails while its writer holds it; the same file still under that name
                fcntl.flock(sfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.path.samestat(os.fstat(sfd), os.stat(stale)):
                    os.unlink(stale)
            except OSError:
                pass
            finally:
                os.close(sfd)
    while True:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        if fcntl is None:
            break
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # another writer's clean-up may have taken it before the lock
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            if fcntl is not None:
                os.replace(tmp, path)  # still locked: renamed before anyone may remove it
        if fcntl is None:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_model(model, path, *, include_optimizer=True, metadata=None, allow_nonfinite=False):
    """Write ``model`` to ``path`` (see :meth:`nncore.Sequential.save`).

    A model whose weights (or saved optimizer state) hold NaN or infinity is refused with
    ValueError, as :func:`load_model` refuses the file, unless ``allow_nonfinite=True``;
    nothing is written then.
    """
    from safetensors.numpy import save

    from ._validation import first_nonfinite

    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must be a dict of str to str")
    if not isinstance(allow_nonfinite, bool):
        raise TypeError(f"allow_nonfinite must be True or False, got {allow_nonfinite!r}")
    tensors = model.state_dict()
    sd = model.optimizer.state_dict() if model.loss is not None and include_optimizer \
        else None
    if sd is not None:
        try:  # the rules load_model applies (lr, counters and arrays can be assigned)
            model.optimizer._checked_state(sd, allow_nonfinite=True)
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot save the optimizer's state: {e}; fix it, or save "
                             f"without it: model.save(path, include_optimizer=False)") \
                from None
    if not allow_nonfinite:
        checked = list(tensors.items())
        if sd is not None:
            checked += [(f"optimizer state {k!r}", v) for k, v in sd["state"].items()]
        for k, v in checked:
            bad = first_nonfinite(v)
            if bad is not None:
                what = k if k.startswith("optimizer") else f"parameter {k!r}"
                where = bad[0] if len(bad[0]) > 1 else bad[0][0]
                raise ValueError(
                    f"the model's {what} holds {bad[1].item()!r} at index {where} and "
                    f"load_model refuses such a file, so nothing was written. If training "
                    f"diverged, fit again with a lower learning rate (or with on_nan='raise' "
                    f"to stop at the first non-finite loss); to save it anyway, pass "
                    f"allow_nonfinite=True (and read it with load_model(path, "
                    f"allow_nonfinite=True))")
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "nncore_version": __version__,
        "dtype": model.policy, "architecture": json.dumps(model.get_config()),
    }
    if model.loss is not None:
        meta["compile"] = json.dumps({
            "loss": model.loss.get_config(), "metrics": [m.name for m in model.metrics],
            "optimizer": model.optimizer.get_config()})
        if sd is not None:
            for k, v in sd["state"].items():
                tensors[_OPT_PREFIX + k] = v
            meta["optimizer_state"] = json.dumps(
                {"lr": sd["lr"], "steps": sd["steps"], "epochs": sd["epochs"],
                 "arrays": sorted(sd["state"])})
    meta["rng_state"] = json.dumps(model._rng_state())
    if metadata:
        meta["user_metadata"] = json.dumps(metadata)
    atomic_write_bytes(path, save(tensors, metadata=meta))


def _bad_file(p, why):
    return ModelFileError(f"{p!r} is not a valid safetensors model file: {why}; it may be "
                          f"truncated or corrupt: save the model again with model.save(path)")


def _header_length(first8, size, p):
    """The header length the first 8 bytes of a size-byte file promise, once it fits."""
    if size < 8:
        raise _bad_file(p, f"it has {size} bytes, fewer than the 8-byte header length")
    (n,) = struct.unpack("<Q", first8)
    if n > MAX_HEADER_BYTES:
        raise _bad_file(p, f"its header claims {n} bytes (the limit is {MAX_HEADER_BYTES})")
    if 8 + n > size:
        raise _bad_file(p, f"its header claims {n} bytes but the file has only {size - 8} "
                           f"after the length (truncated?)")
    return n


def _check_header(data, p):
    """The metadata of safetensors bytes after checking the whole layout ourselves: header
    length, JSON, each tensor's dtype, shape and byte range (in bounds, sized to its shape,
    no overlaps or holes). Errors name the problem."""
    n = _header_length(data[:8], len(data), p)
    return _check_layout(data[8:8 + n], len(data) - 8 - n, p)


def _check_layout(header_bytes, body, p):
    """The metadata of a safetensors header (JSON bytes) for a body-byte data section."""
    def bad(why):
        return _bad_file(p, why)

    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"its header is not valid JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise bad("its __metadata__ is not a map of strings to strings")
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
    """(metadata dict, tensors dict) of an nncore model file, or a clear error. The file's
    size comes first: the header's length is checked against it, and the data section is
    read only once the header describes it exactly (a device such as /dev/zero, or a lying
    length, costs nothing)."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise FileNotFoundError(f"no model file at {p!r}")
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p!r} is a directory, not a model file")
    mode = os.stat(p).st_mode
    if not stat.S_ISREG(mode):
        raise ModelFileError(f"{p!r} is not a regular file ({_file_kind(mode)}); a model "
                             f"file is one written by model.save(path)")
    # O_NONBLOCK: opening a FIFO would wait for a writer; it changes nothing for a file
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # what was opened (the path may have changed since)
        if not stat.S_ISREG(st.st_mode):
            raise ModelFileError(f"{p!r} is not a regular file ({_file_kind(st.st_mode)}); "
                                 f"a model file is one written by model.save(path)")
        size = st.st_size
        first8 = f.read(8)
        n = _header_length(first8, size, p)
        header = f.read(n)
        if len(header) != n:
            raise _bad_file(p, f"it ended after {8 + len(header)} bytes, inside its "
                               f"{n}-byte header (truncated while reading?)")
        meta = _check_layout(header, size - 8 - n, p)
        f.seek(0)
        data = f.read(size)  # one buffer for safetensors, no copy to join the parts
    if len(data) != size:
        raise _bad_file(p, f"it ended after {len(data)} of its {size} bytes (truncated "
                           f"while reading?)")
    return _parse(data, p, meta)


def _file_kind(mode):
    for test, name in ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"mode {stat.filemode(mode)}"


def _parse(data, p, meta=None):
    """(metadata, tensors) of the bytes of a model file (meta: its checked header's)."""
    from safetensors.numpy import load

    if meta is None:
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
                raise ModelFileError(f"{p!r}: tensor {k!r} holds {v.reshape(-1)[i].item()!r} "
                                     f"(flat index {i}); the model was saved after its "
                                     f"training diverged. Pass allow_nonfinite=True to load "
                                     f"it anyway")
    arch = _json(meta, "architecture", path)
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64", "mixed_bfloat16"):
        raise ModelFileError(f"{p!r} has dtype {dtype!r} in its metadata; expected float32, "
                             f"float64 or mixed_bfloat16")
    params = {k: v for k, v in tensors.items() if not k.startswith(_OPT_PREFIX)}
    try:
        layers = [_layers.get(c) for c in arch.get("layers", [])]
        # the tensors must match before the model's buffers are allocated: a corrupt
        # architecture could otherwise ask for terabytes
        want = {f"{i}.{name}": tuple(shape) for i, layer in enumerate(layers)
                for name, shape in layer._param_shapes() + layer._buffer_shapes()}
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
        model.load_state_dict(params, strict=True, allow_nonfinite=True)  # checked above
    except ValueError as e:
        raise ModelFileError(f"{p!r}: its tensors do not match its architecture ({e})") \
            from None
    model.metadata = _json(meta, "user_metadata", path, default={})
    if "rng_state" in meta:
        try:
            rng = _checked_rng_state(_json(meta, "rng_state", path))
        except (TypeError, ValueError) as e:
            raise ModelFileError(f"{p!r}: its random-stream state (rng_state) is invalid: "
                                 f"{e}; the file is corrupt or was edited: save the model "
                                 f"again with model.save(path)") from None
        model._set_rng_state(rng)
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
            if not isinstance(st, dict) or set(st) != {"lr", "steps", "epochs", "arrays"}:
                raise ModelFileError(f"{p!r}: its optimizer_state metadata must be a JSON "
                                     f"object with exactly lr, steps, epochs and arrays, got "
                                     f"{_short(st)}; the file is corrupt or was edited")
            listed = st["arrays"]
            if not isinstance(listed, list) or sorted(arrays) != sorted(map(str, listed)):
                raise ModelFileError(f"{p!r}: its optimizer tensors {sorted(arrays)} do not "
                                     f"match the arrays its metadata lists {_short(listed)}")
            try:
                model.optimizer.load_state_dict(
                    {"lr": st["lr"], "steps": st["steps"], "epochs": st["epochs"],
                     "state": arrays}, allow_nonfinite=allow_nonfinite)
            except (TypeError, ValueError) as e:
                raise ModelFileError(f"{p!r}: its optimizer state is invalid: {e}; the file "
                                     f"is corrupt or was edited: save the model again with "
                                     f"model.save(path)") from None
    return model


def _short(value, limit=200):
    """repr(value), cut to limit characters (a crafted file's values can be long)."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit] + "..."


def _checked_rng_state(state):
    """The rng_state of a file (seed, dropout counter, shuffling generator) after the checks
    Sequential(seed=...) and the C core apply; TypeError or ValueError naming the field."""
    from ._validation import check_int

    keys = {"seed_value", "dropout_counter", "shuffle"}
    if not isinstance(state, dict) or set(state) != keys:
        raise TypeError(f"it must be a JSON object with exactly {sorted(keys)}, got "
                        f"{_short(state)}")
    check_int(state["seed_value"], "seed_value", 0)  # Sequential(seed=...)'s rule
    counter = check_int(state["dropout_counter"], "dropout_counter", 0)
    if counter > MAX_DROPOUT_COUNTER:
        raise ValueError(f"dropout_counter must be at most 2**63 (the C core counts dropout "
                         f"draws in 64 bits, with room for more), got {counter}")
    # the shuffling generator is np.random.default_rng's PCG64; numpy would take a state it
    # cannot use (an even increment, a 128-bit overflow in fit) or cast a wrong one silently
    sh = state["shuffle"]
    keys = {"bit_generator", "state", "has_uint32", "uinteger"}
    if not isinstance(sh, dict) or set(sh) != keys or sh["bit_generator"] != "PCG64":
        raise ValueError(f"shuffle must be the state of numpy's PCG64 generator (a JSON "
                         f"object with {sorted(keys)} and bit_generator 'PCG64'), got "
                         f"{_short(sh)}")
    inner = sh["state"]
    if not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise ValueError(f"shuffle.state must be a JSON object with exactly 'state' and "
                         f"'inc', got {_short(inner)}")
    for k in ("state", "inc"):
        v = check_int(inner[k], f"shuffle.state.{k}", 0)
        if v >= 2 ** 128:
            raise ValueError(f"shuffle.state.{k} must be below 2**128 (PCG64 has 128-bit "
                             f"state), got {v}")
    if inner["inc"] % 2 == 0:
        raise ValueError(f"shuffle.state.inc must be odd (PCG64's increment always is), "
                         f"got {inner['inc']}")
    if check_int(sh["has_uint32"], "shuffle.has_uint32", 0) > 1:
        raise ValueError(f"shuffle.has_uint32 must be 0 or 1, got {sh['has_uint32']}")
    if check_int(sh["uinteger"], "shuffle.uinteger", 0) >= 2 ** 32:
        raise ValueError(f"shuffle.uinteger must be below 2**32, got {sh['uinteger']}")
    return state
