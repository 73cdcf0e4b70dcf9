"""step_floor.py - the floor of a dense network's training step (SGD momentum, float32,
softmax cross-entropy; default: the wide row, 1024-1024-1024-10 at batch 256): its products
timed one by one with nncore's GEMM and with PyTorch's (MKL / oneDNN, the fastest CPU GEMM
the peers have), the SGD update timed alone (a stream over the weights, gradients and
momentum buffers), and the whole step as `fit` runs it.

The step cannot beat the sum of its products at the best GEMM's speed plus its update at the
memory's speed; the script prints that floor next to the step and the best peer's step time
(if given), so a target ratio can be checked against what the machine allows.

    python tools/step_floor.py                       # 2 threads and one thread
    python tools/step_floor.py --peer 24774,13110    # best peer's samples/s (2, 1 threads)
    python tools/step_floor.py --sizes 784,256,128,10 --batch 256
"""

import argparse
import itertools
import time

import numpy as np

import nncore as nn
from nncore import _core


def best_time(fn, reps):
    fn()
    t = []
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return min(t)


def products(SIZES, BATCH):
    """(name, m, k, n, trans_a, trans_b) of one step: forward, dW and dX of every layer."""
    out = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        out.append((f"fwd x{i}.W{i}", BATCH, a, b, False, False))
        out.append((f"dW{i} = x{i}.T dz", a, BATCH, b, True, False))
        if i > 0:  # the first layer needs no dX
            out.append((f"dX{i} = dz W{i}.T", BATCH, b, a, False, True))
    return out


def time_products(SIZES, BATCH, threads, reps):
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    t_nn = t_torch = flops = 0.0
    for _name, m, k, n, ta, tb in products(SIZES, BATCH):
        a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
        c1, c2 = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        ta_, tb_ = torch.from_numpy(a), torch.from_numpy(b)
        ta_, tb_ = (ta_.T if ta else ta_), (tb_.T if tb else tb_)
        tc = torch.from_numpy(c2)
        t_nn += best_time(lambda a=a, b=b, c=c1, ta=ta, tb=tb: _core.gemm(
            a, b, c, trans_a=ta, trans_b=tb, n_threads=threads), reps)
        t_torch += best_time(lambda a=ta_, b=tb_, c=tc: torch.mm(a, b, out=c), reps)
        flops += 2.0 * m * n * k
    return t_nn, t_torch, flops


def time_update(SIZES, threads, reps):
    n = sum(a * b + b for a, b in itertools.pairwise(SIZES))
    rng = np.random.default_rng(1)
    p, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    buf = np.zeros(n, np.float32)
    t = best_time(lambda: _core.sgd_update(p, g, buf, lr=1e-6, momentum=0.9,
                                           first_step=False, n_threads=threads), reps)
    return t, n


def time_step(SIZES, BATCH, threads, epochs=5):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((BATCH * 40, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], len(X))
    layers = [nn.Dense(a, b, activation="relu" if i < len(SIZES) - 2 else "identity")
              for i, (a, b) in enumerate(itertools.pairwise(SIZES))]
    model = nn.Sequential(layers, seed=0, dtype="float32")
    model.compile(optimizer=nn.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
    nn.set_num_threads(threads)
    model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
    best = 1e9
    for _ in range(epochs):
        s = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
        best = min(best, time.perf_counter() - s)
    return best / (len(X) // BATCH)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1024,1024,1024,10", help="layer widths")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", default="2,1", help="comma-separated thread counts")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--peer", default="", help="best peer's samples/s per thread count")
    args = ap.parse_args()
    peers = [float(v) for v in args.peer.split(",")] if args.peer else []
    SIZES, BATCH = tuple(int(v) for v in args.sizes.split(",")), args.batch
    default = nn.get_num_threads()
    for i, threads in enumerate(int(v) for v in args.threads.split(",")):
        t_nn, t_torch, flops = time_products(SIZES, BATCH, threads, args.reps)
        t_upd, n = time_update(SIZES, threads, args.reps)
        t_step = time_step(SIZES, BATCH, threads)
        floor = min(t_nn, t_torch) + t_upd
        print(f"{threads} thread(s): products {flops / 1e9:.2f} GFLOP: nncore {t_nn * 1e3:.2f} ms"
              f" ({flops / t_nn / 1e9:.0f} GFLOP/s), PyTorch {t_torch * 1e3:.2f} ms"
              f" ({flops / t_torch / 1e9:.0f} GFLOP/s)")
        print(f"  SGD update of {n:,} parameters: {t_upd * 1e3:.2f} ms"
              f" ({5 * 4 * n / t_upd / 1e9:.1f} GB/s read + written)")
        print(f"  floor {floor * 1e3:.2f} ms = {BATCH / floor:,.0f} samples/s;"
              f" fit's step {t_step * 1e3:.2f} ms = {BATCH / t_step:,.0f} samples/s"
              f" ({floor / t_step:.0%} of the floor's speed)")
        if i < len(peers):
            t_peer = BATCH / peers[i]
            print(f"  best peer {peers[i]:,.0f} samples/s: nncore {t_peer / t_step:.2f}x;"
                  f" the floor would be {t_peer / floor:.2f}x")
    nn.set_num_threads(default)


if __name__ == "__main__":
    main()
