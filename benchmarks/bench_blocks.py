"""Benchmark the building blocks of a modern MLP (issue 24): batch norm and residual blocks
with layer norm, trained by nncore, PyTorch (eager and torch.compile) and JAX (one
jit-compiled lax.scan epoch).

Usage
-----
From the repository root::

    python benchmarks/bench_blocks.py --quick    # smoke run (CI): small data, no compile
    python benchmarks/bench_blocks.py            # full run: a few minutes

What is measured
----------------
Two networks, float32, SGD (lr 0.01, momentum 0.9), softmax cross-entropy, batches of 64
and 256 rows in a fixed order, on seeded standard-normal features (784 of them) with labels
from a random linear teacher; samples/s of a whole epoch on data staged before the clock,
best of ``--reps`` epochs, default threads:

* ``bn``:  784-256-BN-256-BN-10: Dense, BatchNorm, ReLU twice, then Dense (PyTorch:
  Linear, BatchNorm1d, ReLU);
* ``res``: Dense 784-256, two residual blocks ``x + Dense(ReLU(Dense(LayerNorm(x))))`` of
  width 256, LayerNorm, ReLU, Dense 256-10 (the ResNet baseline of "Revisiting Deep
  Learning Models for Tabular Data" without dropout, so that every peer computes the same).

Peers: PyTorch as users run it (eager, one optimizer step per batch), the same module under
``torch.compile`` (full runs; its compile time is excluded), and JAX with the epoch as one
``lax.scan`` (batch statistics and running statistics in the scan's carry). Missing peers
are skipped. The table gives each peer's samples/s and nncore over the best peer.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(ROOT, "nncore")):
    import glob
    if glob.glob(os.path.join(ROOT, "nncore", "_core*.so")):
        sys.path.insert(0, ROOT)

LR, MOMENTUM, WIDTH, N_IN, N_OUT = 0.01, 0.9, 256, 784, 10
TARGET = 1.3


def make_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN), dtype=np.float32)
    teacher = rng.standard_normal((N_IN, N_OUT)).astype(np.float32)
    return X, (X @ teacher).argmax(axis=1).astype(np.int64)


def best_epoch(train, reps):
    train(1)  # warm-up: buffers, plans, caches
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        train(1)
        best = min(best, time.perf_counter() - t0)
    return best


# ---- nncore -------------------------------------------------------------------------------

def nncore_trainer(kind, X, y, batch):
    import nncore as nn
    if kind == "bn":
        layers = [nn.Dense(N_IN, WIDTH), nn.BatchNorm(WIDTH), nn.Activation("relu"),
                  nn.Dense(WIDTH, WIDTH), nn.BatchNorm(WIDTH), nn.Activation("relu"),
                  nn.Dense(WIDTH, N_OUT)]
    else:
        block = lambda: nn.Residual([nn.LayerNorm(WIDTH),  # noqa: E731
                                     nn.Dense(WIDTH, WIDTH, activation="relu"),
                                     nn.Dense(WIDTH, WIDTH)])
        layers = [nn.Dense(N_IN, WIDTH), block(), block(), nn.LayerNorm(WIDTH),
                  nn.Activation("relu"), nn.Dense(WIDTH, N_OUT)]
    model = nn.Sequential(layers, dtype="float32", seed=0)
    model.compile(nn.SGD(lr=LR, momentum=MOMENTUM), "cross_entropy")

    def train(epochs):
        model.fit(X, y, epochs=epochs, batch_size=batch, shuffle=False, verbose=0)
    return train


# ---- PyTorch ------------------------------------------------------------------------------

def torch_module(kind):
    import torch
    T = torch.nn  # noqa: N806
    if kind == "bn":
        return T.Sequential(T.Linear(N_IN, WIDTH), T.BatchNorm1d(WIDTH), T.ReLU(),
                            T.Linear(WIDTH, WIDTH), T.BatchNorm1d(WIDTH), T.ReLU(),
                            T.Linear(WIDTH, N_OUT))

    class Block(T.Module):
        def __init__(self):
            super().__init__()
            self.f = T.Sequential(T.LayerNorm(WIDTH), T.Linear(WIDTH, WIDTH), T.ReLU(),
                                  T.Linear(WIDTH, WIDTH))

        def forward(self, x):
            return x + self.f(x)

    return T.Sequential(T.Linear(N_IN, WIDTH), Block(), Block(), T.LayerNorm(WIDTH),
                        T.ReLU(), T.Linear(WIDTH, N_OUT))


def torch_trainer(kind, X, y, batch, compiled):
    import torch
    torch.manual_seed(0)
    model = torch_module(kind)
    if compiled:
        model = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    staged = list(zip(torch.from_numpy(X).split(batch), torch.from_numpy(y).split(batch)))

    def train(epochs):
        for _ in range(epochs):
            for xb, yb in staged:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
    return train


# ---- JAX ----------------------------------------------------------------------------------

def jax_trainer(kind, X, y, batch):
    import jax
    import jax.numpy as jnp
    from jax import lax

    def dense(key, a, b):
        bound = 1 / math.sqrt(a)
        k1, k2 = jax.random.split(key)
        return (jax.random.uniform(k1, (a, b), jnp.float32, -bound, bound),
                jax.random.uniform(k2, (b,), jnp.float32, -bound, bound))

    keys = iter(jax.random.split(jax.random.PRNGKey(0), 8))
    def pair(a, b):  # separate buffers: the epoch donates them
        return (jnp.full(WIDTH, a, jnp.float32), jnp.full(WIDTH, b, jnp.float32))

    if kind == "bn":
        params = {"d": [dense(next(keys), N_IN, WIDTH), dense(next(keys), WIDTH, WIDTH),
                        dense(next(keys), WIDTH, N_OUT)], "n": [pair(1, 0) for _ in range(2)]}
        stats = [pair(0, 1) for _ in range(2)]
    else:
        params = {"d": [dense(next(keys), N_IN, WIDTH)] +
                  [dense(next(keys), WIDTH, WIDTH) for _ in range(4)] +
                  [dense(next(keys), WIDTH, N_OUT)], "n": [pair(1, 0) for _ in range(3)]}
        stats = []

    def bn(x, gb, st):
        mu, var = x.mean(0), x.var(0)
        n = x.shape[0]
        st = ((1 - 0.1) * st[0] + 0.1 * mu, (1 - 0.1) * st[1] + 0.1 * var * n / (n - 1))
        return (x - mu) / jnp.sqrt(var + 1e-5) * gb[0] + gb[1], st

    def ln(x, gb):
        mu, var = x.mean(1, keepdims=True), x.var(1, keepdims=True)
        return (x - mu) / jnp.sqrt(var + 1e-5) * gb[0] + gb[1]

    def forward(p, st, x):
        d, nrm = p["d"], p["n"]
        lin = lambda h, k: h @ d[k][0] + d[k][1]  # noqa: E731
        if kind == "bn":
            h, s0 = bn(lin(x, 0), nrm[0], st[0])
            h, s1 = bn(lin(jax.nn.relu(h), 1), nrm[1], st[1])
            return lin(jax.nn.relu(h), 2), [s0, s1]
        h = lin(x, 0)
        for b in range(2):
            h = h + lin(jax.nn.relu(lin(ln(h, nrm[b]), 1 + 2 * b)), 2 + 2 * b)
        return lin(jax.nn.relu(ln(h, nrm[2])), 5), st

    def loss_fn(p, st, x, yb):
        z, st = forward(p, st, x)
        picked = jnp.take_along_axis(z, yb[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked), st

    def body(carry, xy):
        p, buf, st = carry
        (_, st), g = jax.value_and_grad(loss_fn, has_aux=True)(p, st, *xy)
        tm = jax.tree_util.tree_map
        buf = tm(lambda b, gi: MOMENTUM * b + gi, buf, g)
        return (tm(lambda w, b: w - LR * b, p, buf), buf, st), None

    def epoch(carry, Xs, ys):
        return lax.scan(body, carry, (Xs, ys))[0]

    nb = X.shape[0] // batch
    Xs = jnp.asarray(X[:nb * batch]).reshape(nb, batch, N_IN)
    ys = jnp.asarray(y[:nb * batch]).reshape(nb, batch)
    carry = (params, jax.tree_util.tree_map(jnp.zeros_like, params), stats)
    run = jax.jit(epoch, donate_argnums=(0,)).lower(carry, Xs, ys).compile()
    box = [carry]

    def train(epochs):
        c = box[0]
        for _ in range(epochs):
            c = run(c, Xs, ys)
        box[0] = jax.block_until_ready(c)
    return train, nb * batch


# ---- the run ------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small data, no torch.compile (CI)")
    ap.add_argument("--reps", type=int, default=None, help="timed epochs (best kept)")
    ap.add_argument("--json", default="bench_blocks.json", help="results file ('' for none)")
    args = ap.parse_args(argv)
    n = 2048 if args.quick else 20480
    reps = args.reps or (1 if args.quick else 5)
    X, y = make_data(n)
    peers = {"nncore": lambda k, b: (nncore_trainer(k, X, y, b), n)}
    try:
        import torch  # noqa: F401
        peers["PyTorch"] = lambda k, b: (torch_trainer(k, X, y, b, False), n)
        if not args.quick:
            peers["torch.compile"] = lambda k, b: (torch_trainer(k, X, y, b, True), n)
    except ImportError:
        print("PyTorch is not installed: skipped")
    try:
        import jax  # noqa: F401
        peers["JAX scan"] = lambda k, b: jax_trainer(k, X, y, b)
    except ImportError:
        print("JAX is not installed: skipped")
    rows = []
    for kind in ("bn", "res"):
        for batch in (64, 256):
            row = {"network": kind, "batch": batch}
            for name, make in peers.items():
                train, rows_per_epoch = make(kind, batch)
                row[name] = rows_per_epoch / best_epoch(train, reps)
                print(f"  {name:14s} {kind}/{batch}: {row[name]:12,.0f} samples/s",
                      flush=True)
            rows.append(row)
    names = list(peers)
    from bench_training import machine_info  # (this directory is on sys.path)
    machine = machine_info()
    print(f"\n{machine['cpu']}, {os.cpu_count()} CPUs; "
          f"{n} samples, SGD momentum, float32, default threads; samples/s\n")
    print("| network / batch | " + " | ".join(names) + " | nncore / best peer | target |")
    print("|---|" + "---:|" * (len(names) + 2))
    for r in rows:
        others = [(r[k], k) for k in names[1:] if k in r]
        best = max(others) if others else None
        ratio = f"{r['nncore'] / best[0]:.2f}x ({best[1]})" if best else "-"
        label = ("784-256-BN-256-BN-10" if r["network"] == "bn" else
                 "784-256-2xRes(LN)-10")
        print(f"| {label} / {r['batch']} | " +
              " | ".join(f"{r[k]:,.0f}" for k in names) + f" | {ratio} | >= {TARGET}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "n": n, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
