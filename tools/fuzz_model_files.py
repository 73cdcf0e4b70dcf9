"""Fuzz nncore's model-file loader with mutated model files.

    python tools/fuzz_model_files.py --n 10000 [--seed 0]

Starts from valid files (several architectures, dtypes, optimizers, a schedule), mutates
each case in one of several ways (byte flips, truncation, a lying header length, edits of the
JSON header: tensor dtypes, shapes and offsets, missing or extra tensors, architecture and
compile metadata, NaN weights; targeted edits of the optimizer state: its lr, steps, epochs
and array list, and its tensors' values, signs, dtypes and shapes; and of the random state:
seed, dropout counter, the shuffling generator's state) and loads the result in this process.
A load must either succeed or raise ``nncore.ModelFileError``; a loaded model must then
predict and, if compiled, train (two short epochs): a file that loads and then fails in fit is
a failure like any other exception. A crash kills the run (non-zero exit), and a case running
longer than 10 s is a hang. tests/test_fuzz_model_files.py runs the same mutations for a few
seconds with hypothesis.
"""

import argparse
import collections
import json
import math
import os
import random
import signal
import struct
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nncore as nn  # noqa: E402
from nncore import io as nnio  # noqa: E402


def seed_files():
    """Valid model files (bytes) covering the features a file can have."""
    out = []
    X = np.random.default_rng(0).standard_normal((16, 5))
    specs = [
        ([nn.Dense(5, 8, activation="relu"), nn.Dropout(0.2), nn.Dense(8, 3)], "float32",
         nn.Adam(1e-2), "cross_entropy", ["accuracy"]),
        ([nn.Dense(5, 4, activation="tanh"), nn.Activation("gelu"), nn.Dense(4, 3)],
         "float64", nn.SGD(0.1, momentum=0.9), "cross_entropy", []),
        ([nn.Dense(5, 3)], "float32", None, None, None),
        ([nn.Dense(5, 6, activation="relu"), nn.Dropout(0.5), nn.Dense(6, 1)], "float64",
         nn.AdamW(1e-2, amsgrad=True, schedule=nn.StepLR(1, gamma=0.5)), "bce_with_logits",
         []),
        ([nn.Dense(5, 2)], "float32", nn.SGD(0.05), "mse", ["mae"]),
    ]
    with tempfile.TemporaryDirectory() as d:
        for i, (layers, dtype, opt, loss, metrics) in enumerate(specs):
            model = nn.Sequential(layers, dtype=dtype, seed=i)
            if opt is not None:
                model.compile(opt, loss, metrics)
                model.fit(X, targets(model, len(X)), epochs=2, batch_size=8, verbose=0)
            path = f"{d}/m{i}.safetensors"
            model.save(path, metadata={"note": "seed"} if i == 0 else None)
            with open(path, "rb") as f:
                out.append(canonical(f.read()))
    return out


def canonical(data):
    """Safetensors bytes with the metadata sorted: safetensors writes it in a per-process
    hash order, and a seed must give the same inputs in every run (to replay a failure)."""
    header, body = split(data)
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    return join(header, body)


def targets(model, n):
    """Valid training targets for n rows of a compiled model."""
    if model.loss.name == "cross_entropy":
        return np.arange(n) % model.n_outputs
    return (np.arange(n * model.n_outputs).reshape(n, -1) % 2).astype(float)


def split(data):
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header, body):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


WEIRD = [None, -1, 0, 1, 2 ** 63, 1e308, float("nan"), "x", "", [], {}, [1, 2], True,
         "float16", "Dense", {"class": "Conv2D", "config": {}}, [[[[[[[]]]]]]]]


def _mutate_json(value, r, depth=0):
    """A JSON value with one random change somewhere inside."""
    if isinstance(value, dict) and value and depth < 6 and r.random() < 0.8:
        k = r.choice(sorted(value))
        v = dict(value)
        op = r.random()
        if op < 0.15:
            del v[k]
        elif op < 0.25:
            v[k + "_extra"] = r.choice(WEIRD)
        else:
            v[k] = _mutate_json(value[k], r, depth + 1)
        return v
    if isinstance(value, list) and value and depth < 6 and r.random() < 0.8:
        v = list(value)
        i = r.randrange(len(v))
        op = r.random()
        if op < 0.15:
            del v[i]
        elif op < 0.25:
            v.append(r.choice(WEIRD))
        else:
            v[i] = _mutate_json(v[i], r, depth + 1)
        return v
    if isinstance(value, str) and value[:1] in "{[" and r.random() < 0.7:
        try:  # JSON inside a metadata string
            return json.dumps(_mutate_json(json.loads(value), r, depth + 1))
        except ValueError:
            pass
    if isinstance(value, int) and not isinstance(value, bool) and r.random() < 0.5:
        return value + r.choice([-1, 1, 4, -4, 1 << 20, 1 << 40])
    return r.choice(WEIRD)


_NP = {"F64": np.float64, "F32": np.float32}
NAN, INF = float("nan"), float("inf")
# values for the optimizer state's and the random state's fields: invalid ones, the edges of
# the valid ranges (2**62 steps, a 2**63 dropout counter) and valid ones of the wrong type
COUNTS = [-1, -2 ** 63, 0, 1, 2 ** 62, 2 ** 62 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 63 + 1,
          2 ** 64 - 1, 2 ** 64, 2 ** 70, 1.5, 3.0, "3", True, None, NAN, [1]]
OPT_FIELDS = {
    "lr": [NAN, INF, -INF, -1.0, -1e-300, 0.0, 1e-300, 1.0, 1e308, "0.01", True, None, [0.1]],
    "steps": COUNTS, "epochs": COUNTS,
    "arrays": [[], ["exp_avg"], ["exp_avg", "exp_avg_sq", "exp_avg_sq"], ["momentum_buffer"],
               "exp_avg", None, [1]],
}
BIG = [-1, 0, 1, 2, 3, 2 ** 64 + 1, 2 ** 128 - 1, 2 ** 128, 2 ** 128 + 1, 2 ** 200, 1.5, "1",
       True, None]
RNG_FIELDS = {
    ("seed_value",): [-1, 0, 2 ** 64, 2 ** 128, 2 ** 300, 1.5, "7", True, None],
    ("dropout_counter",): COUNTS,
    ("shuffle", "bit_generator"): ["MT19937", "Philox", "pcg64", "", None, 1],
    ("shuffle", "state", "state"): BIG,
    ("shuffle", "state", "inc"): BIG,
    ("shuffle", "has_uint32"): [-1, 0, 1, 2, True, 1.0, None],
    ("shuffle", "uinteger"): [-1, 0, 2 ** 32 - 1, 2 ** 32, 2 ** 64, 1.5, None],
    ("shuffle",): [None, {}, [], "PCG64",
                   {"bit_generator": "MT19937", "state": {"key": [1] * 624, "pos": 624}},
                   {"bit_generator": "PCG64", "state": {"state": 1, "inc": 1}}],
}


def _edit_path(obj, path, r, values):
    """obj (a JSON dict) with the field at path set to one of values, deleted, or joined by
    an extra key."""
    obj = json.loads(json.dumps(obj))
    parent = obj
    for k in path[:-1]:
        if not isinstance(parent, dict) or not isinstance(parent.get(k), dict):
            return obj
        parent = parent[k]
    op = r.random()
    if op < 0.08:
        parent.pop(path[-1], None)
    elif op < 0.12:
        parent[path[-1] + "_extra"] = 1
    else:
        parent[path[-1]] = r.choice(values)
    return obj


def _state_edit(header, body, r):
    """A targeted edit of the optimizer state (JSON fields or tensors) or the random state."""
    meta = dict(header["__metadata__"])
    opt = [k for k in header if k.startswith("optimizer.")]
    what = r.choice(["optstate", "opttensor", "rng"])
    if what == "optstate" and "optimizer_state" in meta:
        field = r.choice(sorted(OPT_FIELDS))
        meta["optimizer_state"] = json.dumps(_edit_path(
            json.loads(meta["optimizer_state"]), (field,), r, OPT_FIELDS[field]))
    elif what == "opttensor" and opt:
        tensors = {}
        for name, info in header.items():
            if name != "__metadata__":
                a, b = info["data_offsets"]
                tensors[name] = np.frombuffer(body[a:b], _NP[info["dtype"]]).reshape(
                    info["shape"]).copy()
        name = r.choice(opt)
        t = tensors[name]
        op = r.choice(["value", "value", "dtype", "dtype", "shape"])
        if op == "value" and t.size:
            idx = r.sample(range(t.size), r.randint(1, min(3, t.size)))
            t.reshape(-1)[idx] = r.choice([-1.0, -1e-30, -0.0, -INF, INF, NAN, 1e30,
                                           float(np.finfo(t.dtype).max)])
        elif op == "dtype":
            t = t.astype(r.choice([np.int8, np.uint8, np.int32, np.int64, np.float16,
                                   np.float32, np.float64, np.bool_]))
        else:
            t = r.choice([t.reshape(-1, 1), t[:-1], np.concatenate([t, t[:1]])])
        tensors[name] = t
        from safetensors.numpy import save
        return "state", canonical(save(tensors, metadata=meta))
    else:
        path = r.choice(sorted(RNG_FIELDS))
        meta["rng_state"] = json.dumps(_edit_path(json.loads(meta["rng_state"]), path, r,
                                                  RNG_FIELDS[path]))
    header["__metadata__"] = meta
    return "state", join(header, body)


KINDS = ["flip", "truncate", "length", "json", "json", "meta", "meta", "meta", "nan", "splice",
         "state", "state", "state"]


def mutate(data, r, kind=None):
    """(kind, mutated bytes) for valid model-file bytes and a random.Random (kind: one of
    KINDS, or drawn from them)."""
    kind = kind or r.choice(KINDS)
    b = bytearray(data)
    if kind == "flip":
        (n,) = struct.unpack("<Q", data[:8])
        for _ in range(r.randint(1, 8)):
            # mostly in the header, where the structure is
            i = r.randrange(8 + n) if r.random() < 0.7 else r.randrange(len(b))
            b[i] ^= 1 << r.randrange(8)
        return kind, bytes(b)
    if kind == "truncate":
        return kind, bytes(b[:r.randrange(len(b))])
    if kind == "length":
        (n,) = struct.unpack("<Q", data[:8])
        lie = r.choice([0, 1, n - 1, n + 1, n + 8, len(data), len(data) - 8, 2 ** 32,
                        2 ** 63, 2 ** 64 - 1, r.randrange(2 ** 64)])
        return kind, struct.pack("<Q", lie % 2 ** 64) + bytes(b[8:])
    header, body = split(data)
    if kind == "state":
        return _state_edit(header, body, r)
    if kind == "json":
        return kind, join(_mutate_json(header, r), body)
    if kind == "meta":  # one of nncore's metadata entries (architecture, compile, ...)
        meta = dict(header["__metadata__"])
        key = r.choice(sorted(meta))
        meta[key] = _mutate_json(meta[key], r)
        if not isinstance(meta[key], str):
            meta[key] = json.dumps(meta[key])
        header["__metadata__"] = meta
        return kind, join(header, body)
    if kind == "nan":
        name = r.choice([k for k in header if k != "__metadata__"])
        a, _ = header[name]["data_offsets"]
        size = 4 if header[name]["dtype"] == "F32" else 8
        val = np.array([r.choice([np.nan, np.inf, -np.inf])],
                       np.float32 if size == 4 else np.float64).tobytes()
        body = bytearray(body)
        body[a:a + size] = val
        return kind, join(header, bytes(body))
    # splice: a random chunk of the body moved / duplicated
    i, j = sorted(r.randrange(len(body) + 1) for _ in range(2))
    return kind, join(header, body[:i] + body[j:] + body[i:j] * r.randint(0, 2))


def check_loaded(model, tensors):
    """The state a loaded model must be in, which training relies on and a constructor or a
    fit can reach: every tensor of the file in the model's dtype (nothing cast), finite
    weights and optimizer state (load_one does not pass allow_nonfinite), the optimizer's lr
    finite and >= 0, its counters ints within the C core's int64 with room to count on,
    Adam's squared averages >= 0, the dropout counter within uint64 with room, and PCG64's
    increment odd. An AssertionError names what broke."""
    for k, v in tensors.items():
        assert v.dtype == model.dtype, f"tensor {k!r} is {v.dtype} in a {model.dtype} model"
    assert np.isfinite(model.params).all(), "non-finite weights"
    opt = model.optimizer
    if opt is not None:
        assert isinstance(opt.lr, float) and math.isfinite(opt.lr) and opt.lr >= 0, \
            f"lr {opt.lr!r}"
        for k in ("steps", "epochs"):
            v = getattr(opt, k)
            assert type(v) is int and 0 <= v <= 2 ** 62, f"{k} {v!r}"
        for k, a in opt.state.items():
            assert np.isfinite(a).all(), f"non-finite {k}"
            if k.endswith("exp_avg_sq"):
                assert (a >= 0).all(), f"negative {k}"
    c = model._rng_counter
    assert type(c) is int and 0 <= c <= 2 ** 63, f"dropout counter {c!r}"
    assert model._shuffle_rng.bit_generator.state["state"]["inc"] % 2 == 1, "even PCG64 inc"


def load_one(data):
    """'ok' or 'rejected' for one input; raises on anything else. A loaded model predicts
    and, if compiled, trains on: two epochs of two batches, shuffled, through dropout and
    any schedule, so a state that loads but breaks training is caught."""
    try:
        meta, tensors = nnio._parse(data, "<fuzz>")
        model = nnio._build(meta, tensors, "<fuzz>")
    except nn.ModelFileError:
        return "rejected"
    check_loaded(model, tensors)
    if model.n_features is not None:
        X = np.linspace(-1, 1, 6 * model.n_features).reshape(6, -1)
        model.predict(X)
        if model.loss is not None:
            model.fit(X, targets(model, 6), epochs=2, batch_size=4, verbose=0)
    return "ok"


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="number of inputs (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    seeds = seed_files()
    r = random.Random(args.seed)
    counts = collections.Counter()
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    for case in range(args.n):
        kind, data = mutate(r.choice(seeds), r)
        signal.alarm(10)
        try:
            counts[(kind, load_one(data))] += 1
        except Hang:
            failures.append((case, kind, "hang (> 10 s)"))
        except Exception as e:  # noqa: BLE001 - any other error is what we hunt
            failures.append((case, kind, f"{type(e).__name__}: {e}"))
        finally:
            signal.alarm(0)
    dt = time.perf_counter() - t0
    ok = sum(v for (k, res), v in counts.items() if res == "ok")
    print(f"{args.n} mutated model files in {dt:.1f} s (seed {args.seed}): "
          f"{args.n - ok - len(failures)} rejected with ModelFileError, {ok} loaded (and "
          f"predicted; trained if compiled), "
          f"{len(failures)} failures, 0 crashes")
    for kind in sorted({k for k, _ in counts}):
        print(f"  {kind:9s} rejected {counts[(kind, 'rejected')]:6d}  loaded "
              f"{counts[(kind, 'ok')]:6d}")
    for f in failures[:20]:
        print("FAILURE", *f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
