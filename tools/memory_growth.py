"""Resident-memory growth over many fit/predict cycles (a leak detector).

    python tools/memory_growth.py [--cycles 1000]

Builds one small model, runs a warm-up cycle (first-call allocations: workspaces, the
compiled plan, per-thread GEMM buffers), then ``--cycles`` cycles of fit (1 epoch) +
predict + evaluate on fresh arrays, plus a new model built, trained and dropped every 10
cycles, and prints the resident set size before and after. Exits 1 if it grew by 5 MB or
more.
"""

import argparse
import gc
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nncore as nn  # noqa: E402

LIMIT_MB = 5.0


def rss_mb():
    with open("/proc/self/statm") as f:  # Linux; resident pages are the second field
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def new_model(seed):
    model = nn.Sequential([nn.Dense(20, 64, activation="relu"), nn.Dropout(0.1),
                           nn.Dense(64, 3)], seed=seed)
    model.compile(nn.Adam(1e-3), "cross_entropy", ["accuracy"])
    return model


def cycle(model, rng, i):
    X = rng.standard_normal((256, 20))
    y = rng.integers(0, 3, 256)
    model.fit(X, y, epochs=1, batch_size=32, verbose=0, validation_split=0.1)
    model.predict(X)
    model.predict(X[:1])
    model.evaluate(X, y)
    if i % 10 == 0:
        other = new_model(i)
        other.fit(X, y, epochs=1, batch_size=64, verbose=0)
        other.predict(X)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=1000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    model = new_model(0)
    for i in range(3):  # warm-up
        cycle(model, rng, 10 * i)
    gc.collect()
    before = rss_mb()
    for i in range(args.cycles):
        cycle(model, rng, i)
    gc.collect()
    after = rss_mb()
    grew = after - before
    print(f"{args.cycles} fit/predict/evaluate cycles: RSS {before:.1f} MB -> {after:.1f} MB "
          f"(growth {grew:+.2f} MB; limit {LIMIT_MB} MB)")
    return 0 if grew < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
