"""Fuzz nncore's model-file loader with mutated model files.

    python tools/fuzz_model_files.py --n 10000 [--seed 0]

Starts from valid files (several architectures, dtypes, optimizers), mutates each case in
one of several ways (byte flips, truncation, a lying header length, edits of the JSON header:
tensor dtypes, shapes and offsets, missing or extra tensors, architecture and compile
metadata, NaN weights) and loads the result in this process. A load must either succeed (the
model then predicts) or raise ``nncore.ModelFileError``; any other exception is a failure, a
crash kills the run (non-zero exit), and a case running longer than 10 s is a hang.
tests/test_fuzz_model_files.py runs the same mutations for a few seconds with hypothesis.
"""

import argparse
import collections
import json
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
    y = np.arange(16) % 3
    specs = [
        ([nn.Dense(5, 8, activation="relu"), nn.Dropout(0.2), nn.Dense(8, 3)], "float32",
         nn.Adam(1e-2), "cross_entropy", ["accuracy"]),
        ([nn.Dense(5, 4, activation="tanh"), nn.Activation("gelu"), nn.Dense(4, 3)],
         "float64", nn.SGD(0.1, momentum=0.9), "cross_entropy", []),
        ([nn.Dense(5, 3)], "float32", None, None, None),
    ]
    with tempfile.TemporaryDirectory() as d:
        for i, (layers, dtype, opt, loss, metrics) in enumerate(specs):
            model = nn.Sequential(layers, dtype=dtype, seed=i)
            if opt is not None:
                model.compile(opt, loss, metrics)
                model.fit(X, y, epochs=1, batch_size=8, verbose=0)
            path = f"{d}/m{i}.safetensors"
            model.save(path, metadata={"note": "seed"} if i == 0 else None)
            with open(path, "rb") as f:
                out.append(f.read())
    return out


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


def mutate(data, r):
    """(kind, mutated bytes) for valid model-file bytes and a random.Random."""
    kind = r.choice(["flip", "truncate", "length", "json", "json", "meta", "meta", "meta",
                     "nan", "splice"])
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


def load_one(data):
    """'ok' or 'rejected' for one input; raises on anything else."""
    try:
        meta, tensors = nnio._parse(data, "<fuzz>")
        model = nnio._build(meta, tensors, "<fuzz>")
    except nn.ModelFileError:
        return "rejected"
    if model.n_features is not None:
        model.predict(np.zeros((2, model.n_features)))
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
          f"{args.n - ok - len(failures)} rejected with ModelFileError, {ok} loaded, "
          f"{len(failures)} failures, 0 crashes")
    for kind in sorted({k for k, _ in counts}):
        print(f"  {kind:9s} rejected {counts[(kind, 'rejected')]:6d}  loaded "
              f"{counts[(kind, 'ok')]:6d}")
    for f in failures[:20]:
        print("FAILURE", *f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
