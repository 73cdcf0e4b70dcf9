"""Benchmark nncore's training and prediction against NumPy, PyTorch, JAX and scikit-learn.

Issue 5's benchmark: training throughput (samples/s) of whole networks through each library's
public API, float32, on the same synthetic data, with the default thread count and with one
thread.

Usage
-----
From the repository root, after ``python setup.py build_ext --inplace -q``::

    python benchmarks/bench_training.py --quick     # smoke run (CI): < 1 minute, any peers
    python benchmarks/bench_training.py             # full run: 20-30 minutes (2 rounds)
    python benchmarks/bench_training.py --peers nncore,torch --threads 1
    python benchmarks/bench_training.py --peers nncore,jax --rows seed --kinds sgd
    python benchmarks/bench_training.py --dtype mixed_bfloat16   # issue 25's run

``--peers`` picks among ``nncore,numpy,torch,jax,sklearn`` (default: all; a peer that is not
installed is skipped with a note, so ``--quick`` runs with NumPy and nncore alone).
``--threads default,1`` (the default) runs everything with each library's default threads and
again with one thread. ``--rows seed,digits`` keeps the networks whose "name/batch" contains
one of the words; ``--kinds sgd,adam,predict`` (default: all three) picks the measurements.
``--shuffle`` reshuffles every epoch inside the timed region (below). ``--json PATH``
(default ``bench_training.json``) receives every row and the machine; ``--plot PATH``
(default ``bench_training.png``, ``''`` for none) draws the samples/s when matplotlib is
installed. ``tools/ab_bench.py`` runs this script's nncore rows for two builds of nncore,
alternated round by round. ``--dtype mixed_bfloat16`` measures nncore's mixed_bfloat16 policy
against nncore in float32 and PyTorch under ``torch.autocast("cpu", dtype=torch.bfloat16)``
on the mnist/256 and wide/256 networks, checks issue 25's targets, and trains three small
data sets in both precisions for an accuracy table and the loss curves
(``bench_training_bf16_loss.png``).

What is measured
----------------
Networks / batch sizes (hidden layers relu, output logits)::

    seed    2-3-1 / 1            binary cross-entropy from logits (one output)
    digits  64-128-10 / 32       softmax cross-entropy (integer labels), also below
    mnist   784-256-128-10 / 64 and / 256
    wide    1024-1024-1024-10 / 256

Data: seeded standard-normal features, labels from a fixed random linear teacher (argmax of
``X @ T``; ``X @ t > 0`` for the seed network), the same arrays for every peer; the sample
count is a multiple of the batch size, so every batch is full. A full epoch is 20,000 samples
or more (wide: 4,096, whose epoch lasts a good fraction of a second anyway), so a call per
epoch costs nothing that shows; ``--quick`` uses small epochs (a smoke test, not figures).

Each peer gets the data in its own form before the clock starts: NumPy arrays for nncore,
batches cut in advance for the NumPy MLP and PyTorch (views, a list of (x, y) pairs), device
arrays staged as (steps, batch, features) for JAX. The samples come in a random order already,
so by default every peer takes them in that order each epoch: the clock sees training alone.
``--shuffle`` reshuffles every epoch inside the timed region, each peer its fastest way:
``fit(shuffle=True)``; ``np.random.Generator.permutation`` and a gather; ``torch.randperm``
and a gather; for JAX a NumPy permutation (``jax.random.permutation`` of 20,000 took 22 ms
here, 30 times NumPy's) and one jitted gather into the staged arrays;
``MLPClassifier(shuffle=True)``.

Training (SGD, lr 0.01, momentum 0.9):

* ``nncore``   ``model.fit(X, y, epochs=E, batch_size=B, shuffle=False, verbose=0)``.
* ``numpy``    a plain NumPy MLP: forward with ``@``, loss, backward, in-place momentum update.
* ``torch``    ``nn.Sequential`` of ``Linear``/``ReLU``, ``optim.SGD``, a plain loop over the
  batches: ``zero_grad``, loss, ``backward``, ``step``.
* ``jax_step`` a ``jax.jit`` train step (hand-written SGD/Adam with PyTorch's formulas; params
  and optimizer state donated) called once per batch from Python; it takes the staged arrays
  and the step's index (device scalars made in advance) and indexes inside the jit.
* ``jax_scan`` JAX at its best: the whole epoch is one jitted call, a ``lax.scan`` of the same
  step over the staged (steps, batch, features) arrays; compiled with ``lower().compile()``
  and run once before the clock. Both JAX peers return the parameters and optimizer state
  alone, so XLA drops the loss value (returning the epoch's mean loss cost 15% on the seed
  network; nncore's fit computes it, for its History). ``lax.scan(unroll=2)`` made the seed
  network 10 times slower here.
* ``sklearn``  ``MLPClassifier(solver="sgd", momentum=0.9, nesterovs_momentum=False,
  alpha=0, batch_size=B, shuffle=False)``, one ``partial_fit`` per epoch. It applies to every
  network here (two classes give one logistic output, i.e. the seed network).

Each measurement: one warm-up epoch (JAX compiles before it; the compile time is reported
separately) and one to calibrate, then E epochs timed, E chosen so that they last
``--min-time`` (0.05 s quick, 1 s full), median of ``--reps`` (1 quick, 3 full). The whole
set of peers is measured ``--rounds`` times (1 quick, 2 full), the rounds interleaved, and
each row keeps its best round: on a shared virtual machine the speed drifts by 10% over
minutes, and a row measured in a slow minute would otherwise set a ratio.
samples/s = E * n / seconds. JAX results are blocked on (``block_until_ready``) before the
clock stops.

Also: Adam (lr 1e-3; digits/32, quick; plus mnist/64 and /256, full) for nncore, NumPy,
PyTorch, JAX and scikit-learn (``solver="adam"``); predict latency for one sample (median µs
per call: ``model.predict(x1)``, the NumPy forward, torch under ``inference_mode``, a jitted
JAX forward on a device array) and throughput at batch 256; ``import nncore`` time and
resident memory (fresh interpreters, median); the loss after one epoch from identical initial
weights and batch order, nncore vs PyTorch (digits/32, SGD and Adam).

Threads and isolation
---------------------
Every peer runs in its own subprocess, once per thread setting, which reports JSON back: no
library's thread pool or allocator state leaks into another's timing. One thread means
``nncore.set_num_threads(1)``; ``torch.set_num_threads(1)``; threadpoolctl's
``threadpool_limits(1)`` for NumPy's BLAS and scikit-learn; for JAX, whose thread pools are
fixed when it starts, the subprocess gets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` (no ``taskset``). Those flags alone still let XLA run a large
dot on both cores here (jax 0.10: 1.9-2.0 cores busy on the wide network), so the JAX
subprocess also limits itself to one CPU with ``os.sched_setaffinity`` before importing JAX
(XLA sizes its thread pool from the affinity mask); that also keeps JAX's dispatching Python
thread on the same core as its compute, i.e. JAX gets one core, like the others get one
thread. Each row reports "cores": the process's CPU time over wall time while timed, which
shows whether a setting took effect.

Keep the machine otherwise idle. As in bench_gemm.py, the CPU time used by other programs is
read from /proc/stat during each measurement; above 0.25 CPUs the row is measured again after
waiting (``--patience`` seconds in all), else marked "!".

How to read it
--------------
Samples/s, higher is better. "nncore / torch" and "nncore / best" divide nncore's samples/s by
PyTorch's and by the fastest peer's at the same thread setting (> 1: nncore faster). The
target summary checks issue 5's targets (both thread settings must meet a throughput target)
and prints PASS/FAIL; it reports, it does not assert.
"""

import argparse
import glob
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import namedtuple

import numpy as np

# Prefer the in-place build of this checkout (as bench_gemm.py does); otherwise the installed
# nncore (CI runs the benchmarks from a temporary directory after `pip install .`). A PYTHONPATH
# that holds an nncore package wins: tools/ab_bench.py points it at each build it compares.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if glob.glob(os.path.join(ROOT, "nncore", "_core*.so")) and not any(
        os.path.isfile(os.path.join(d, "nncore", "__init__.py"))
        for d in os.environ.get("PYTHONPATH", "").split(os.pathsep) if d):
    sys.path.insert(0, ROOT)

Net = namedtuple("Net", "name sizes batch n_quick n_full")
NETS = (
    Net("seed 2-3-1", (2, 3, 1), 1, 512, 20000),
    Net("digits 64-128-10", (64, 128, 10), 32, 2048, 32768),
    Net("mnist 784-256-128-10", (784, 256, 128, 10), 64, 2048, 20480),
    Net("mnist 784-256-128-10", (784, 256, 128, 10), 256, 4096, 20480),
    Net("wide 1024-1024-1024-10", (1024, 1024, 1024, 10), 256, 512, 4096),
)
ADAM_QUICK = ("digits 64-128-10/32",)
ADAM_FULL = ("digits 64-128-10/32", "mnist 784-256-128-10/64", "mnist 784-256-128-10/256")
PREDICT_QUICK = ("digits 64-128-10/32",)
TARGETS = {"seed 2-3-1/1": 1.2, "digits 64-128-10/32": 2.0, "mnist 784-256-128-10/64": 1.5,
           "mnist 784-256-128-10/256": 1.3, "wide 1024-1024-1024-10/256": 1.1}
PREDICT_TARGET = 5.0           # best peer's one-sample latency / nncore's
IMPORT_MS, IMPORT_MB = 100.0, 40.0
LOSS_RTOL = 1e-4
SGD_LR, MOMENTUM, ADAM_LR = 0.01, 0.9, 1e-3
PREDICT_BATCH = 256

PEERS = ("nncore", "numpy", "torch", "jax", "sklearn", "nncore_f32")
KINDS = ("sgd", "adam", "predict")
MODULES = {"nncore": "nncore", "numpy": "numpy", "torch": "torch", "jax": "jax",
           "sklearn": "sklearn", "nncore_f32": "nncore"}
COLUMNS = ("nncore", "nncore_f32", "numpy", "torch", "jax_step", "jax_scan",
           "sklearn")  # table order
LABELS = {"nncore": "nncore", "numpy": "NumPy", "torch": "PyTorch", "jax_step": "JAX step",
          "jax_scan": "JAX scan", "sklearn": "sklearn", "nncore_f32": "nncore float32"}
# --dtype mixed_bfloat16: nncore's mixed_bfloat16 policy against nncore float32 and PyTorch
# under torch.autocast("cpu", dtype=torch.bfloat16) (the peers with a bfloat16 mode here),
# on the networks and targets of issue 25.
MIXED = "mixed_bfloat16"
MIXED_PEERS = ("nncore", "nncore_f32", "torch")
MIXED_ROWS = ("mnist 784-256-128-10/256", "wide 1024-1024-1024-10/256")
MIXED_TARGETS = {"nncore_f32": 1.6, "torch": 1.3}  # nncore mixed / peer, both rows, 1 and 2 threads
MIXED_PREDICT = ("wide 1024-1024-1024-10", 1.7)    # one-sample latency, nncore float32 / mixed
DTYPE = "float32"  # the worker's --dtype
JAX_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
BUSY = 0.25  # CPUs used by other programs during a row above which it is measured again
CLK_TCK = os.sysconf("SC_CLK_TCK") if os.path.exists("/proc/stat") else 0


def key(net):
    return f"{net.name}/{net.batch}"


def net_n(net, quick):
    return net.n_quick if quick else net.n_full


def make_data(net, n):
    """Features (n, in) float32 and labels: int64 classes, or float32 0/1 for one output."""
    rng = np.random.default_rng(1234)
    X = rng.standard_normal((n, net.sizes[0]), dtype=np.float32)
    teacher = rng.standard_normal((net.sizes[0], max(net.sizes[-1], 1)), dtype=np.float32)
    # einsum's own loop, not BLAS: a BLAS call leaves OpenBLAS's threads spinning (they
    # took 12% of the CPU in the timed epochs that followed, on 2 cores).
    scores = np.einsum("ij,jk->ik", X, teacher)
    if net.sizes[-1] == 1:
        return X, (scores[:, 0] > 0).astype(np.float32)
    return X, scores.argmax(axis=1).astype(np.int64)


# ---- timing (the same approach as bench_gemm.py) ------------------------------------------

class Others:
    """How many CPUs other programs have used since this object was made (Linux; else 0)."""

    @staticmethod
    def _busy():  # CPU seconds the whole machine has been busy, minus this process's
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK - sum(os.times()[:2])

    def __init__(self):
        self.t, self.busy = time.perf_counter(), self._busy() if CLK_TCK else 0.0

    def cpus(self):
        others = self._busy() - self.busy if CLK_TCK else 0.0
        return max(0.0, others - 0.02) / max(time.perf_counter() - self.t, 1e-3)


def wait_until_idle(args, limit=0.15):
    """Wait until other programs use < `limit` CPUs for 2 s, spending at most what is left of
    ``args.patience`` (one budget for the whole run). True if the machine became idle."""
    t0, said = time.perf_counter(), False
    try:
        while True:
            probe = Others()
            time.sleep(min(2.0, max(args.patience - (time.perf_counter() - t0), 0.5)))
            if probe.cpus() < limit:
                return True
            if time.perf_counter() - t0 >= args.patience:
                return False
            if not said:
                print(f"  other programs are using {probe.cpus():.1f} CPUs: waiting up to "
                      f"{args.patience:.0f} s more for them", file=sys.stderr, flush=True)
                said = True
    finally:
        args.patience = max(0.0, args.patience - (time.perf_counter() - t0))


def settle(timeout=1.0):
    """Wait until this process's other threads sleep (idle OpenBLAS / OpenMP workers spin for
    a while after their last job; on 2 CPUs they would steal one from the next measurement)."""
    me, t0 = str(threading.get_native_id()), time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            running = 0
            for tid in os.listdir("/proc/self/task"):
                if tid != me:
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        running += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:
            time.sleep(0.15)
            return
        if not running:
            return
        time.sleep(0.005)


def cpu_seconds():
    return sum(os.times()[:2])


def time_training(train, n, args):
    """`train(E)` trains E epochs over n samples and returns once the work is done. One
    warm-up epoch, one to calibrate, then E epochs per timed run (E such that a run lasts
    args.min_time), median of args.reps runs; measured again if other programs took CPU."""
    settle()
    t0 = time.perf_counter()
    train(1)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(1)  # the first epoch pays one-time costs: calibrate on the second
    one = time.perf_counter() - t0
    epochs = max(1, min(100_000, math.ceil(args.min_time / max(one, 1e-6))))
    reps = 1 if one > 2 * args.min_time else args.reps  # a slow peer: one run is enough
    for attempt in range(3):
        settle()
        probe, c0, w0 = Others(), cpu_seconds(), time.perf_counter()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            train(epochs)
            times.append(time.perf_counter() - t0)
        cores = (cpu_seconds() - c0) / (time.perf_counter() - w0)
        others = probe.cpus()
        if others < BUSY or attempt == 2 or args.patience <= 0 or not wait_until_idle(args):
            break
    t = statistics.median(times)
    return {"samples_per_s": epochs * n / t, "seconds": t, "epochs": epochs, "n": n,
            "warmup_s": warm, "cores": cores, "others_cpus": others}


def time_per_call(fn, min_time, reps):
    """Median seconds per call over `reps` loops, each lasting at least `min_time`."""
    settle()
    fn(), fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        t = time.perf_counter() - t0
        if t >= min_time:
            break
        number = min(number * 10, max(number * 2, math.ceil(1.2 * number * min_time / t)))
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number)
    return statistics.median(out)


# ---- the peers: each builds a trainer (train(E), eval_loss()) and a predictor --------------

def nncore_peer(threads, dtype=None):
    import nncore
    if threads == 1:
        nncore.set_num_threads(1)
    dtype = dtype or DTYPE

    def build(net, seed=0):
        acts = ["relu"] * (len(net.sizes) - 2) + ["identity"]
        return nncore.Sequential([nncore.Dense(a, b, activation=act) for a, b, act in
                                  zip(net.sizes[:-1], net.sizes[1:], acts)],
                                 dtype=dtype, seed=seed)

    def trainer(net, opt, X, y, shuffle):
        model = build(net)
        optimizer = (nncore.SGD(lr=SGD_LR, momentum=MOMENTUM) if opt == "sgd" else
                     nncore.Adam(lr=ADAM_LR))
        model.compile(optimizer=optimizer,
                      loss="bce_with_logits" if net.sizes[-1] == 1 else "cross_entropy")

        def train(epochs):
            model.fit(X, y, epochs=epochs, batch_size=net.batch, shuffle=shuffle, verbose=0)
        return train, lambda: model.evaluate(X, y)["loss"], {}

    def predictor(net, X):
        model = build(net)
        return lambda x: model.predict(x)

    return {"version": nncore.__version__, "threads_used": nncore.get_num_threads(),
            "file": nncore.__file__, "bf16_kernel": nncore._core.bf16_kernel(),
            "trainer": trainer, "predictor": predictor}


def nncore_f32_peer(threads):
    """nncore in float32, the reference of a --dtype mixed_bfloat16 run."""
    return nncore_peer(threads, "float32")


class NumpyMLP:
    """The MLP people write in NumPy: relu hidden layers, logits out, W of shape (in, out)."""

    def __init__(self, sizes, opt, seed=0):
        rng = np.random.default_rng(seed)
        self.W = [(rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32)
                  for a, b in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.params = self.W + self.b
        self.opt, self.t = opt, 0
        self.m = [np.zeros_like(p) for p in self.params]          # momentum buffer / Adam m
        self.v = [np.zeros_like(p) for p in self.params] if opt == "adam" else None

    def forward(self, x, keep=None):
        for W, b in zip(self.W[:-1], self.b[:-1]):
            x = np.maximum(x @ W + b, 0.0)
            if keep is not None:
                keep.append(x)
        return x @ self.W[-1] + self.b[-1]

    @staticmethod
    def loss_and_grad(z, y):
        """Mean loss and its gradient with respect to the logits z."""
        m = z.shape[0]
        if z.shape[1] == 1:  # binary cross-entropy from logits
            z = z[:, 0]
            loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            sigmoid = 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|
            return loss, ((sigmoid - y) / m)[:, None].astype(np.float32)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(s[:, 0]) - z[np.arange(m), y])
        p /= s
        p[np.arange(m), y] -= 1.0
        return loss, p / m

    def train_batch(self, x, y, lr):
        hs = [x]
        z = self.forward(x, keep=hs)
        loss, dz = self.loss_and_grad(z, y)
        dW, db = [None] * len(self.W), [None] * len(self.W)
        for i in range(len(self.W) - 1, -1, -1):
            dW[i] = hs[i].T @ dz
            db[i] = dz.sum(axis=0)
            if i > 0:
                dz = (dz @ self.W[i].T) * (hs[i] > 0)
        self.t += 1
        for p, g, m, v in zip(self.params, dW + db, self.m, self.v or self.m):
            if self.opt == "sgd":  # PyTorch's SGD: buf = momentum * buf + g; p -= lr * buf
                m *= MOMENTUM
                m += g
                p -= lr * m
            else:  # PyTorch's Adam
                b1, b2, eps = 0.9, 0.999, 1e-8
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                denom = np.sqrt(v) / math.sqrt(1 - b2 ** self.t) + eps
                p -= (lr / (1 - b1 ** self.t)) * m / denom
        return loss


def numpy_peer(threads):
    from threadpoolctl import threadpool_limits
    if threads == 1:
        numpy_peer.limit = threadpool_limits(limits=1)  # kept for the process's lifetime

    def trainer(net, opt, X, y, shuffle):
        mlp = NumpyMLP(net.sizes, opt)
        rng = np.random.default_rng(0)
        lr = SGD_LR if opt == "sgd" else ADAM_LR
        n, B = X.shape[0], net.batch

        def batches(X, y):
            return [(X[s:s + B], y[s:s + B]) for s in range(0, n, B)]
        staged = batches(X, y)

        def train(epochs):
            for _ in range(epochs):
                if shuffle:
                    perm = rng.permutation(n)
                    staged[:] = batches(X[perm], y[perm])
                for xb, yb in staged:
                    mlp.train_batch(xb, yb, lr)
        return train, lambda: float(mlp.loss_and_grad(mlp.forward(X), y)[0]), {}

    def predictor(net, X):
        return NumpyMLP(net.sizes, "sgd").forward

    return {"version": np.__version__, "trainer": trainer, "predictor": predictor}


def torch_peer(threads):
    import contextlib

    import torch
    if threads == 1:
        torch.set_num_threads(1)
    torch.manual_seed(0)

    def cast():  # autocast for a mixed_bfloat16 run: the products in bfloat16
        return (torch.autocast("cpu", dtype=torch.bfloat16) if DTYPE == MIXED else
                contextlib.nullcontext())

    def build(net):
        mods = []
        for i, (a, b) in enumerate(zip(net.sizes[:-1], net.sizes[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i < len(net.sizes) - 2:
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    def trainer(net, opt, X, y, shuffle):
        model = build(net)
        binary = net.sizes[-1] == 1
        loss_fn = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
        optimizer = (torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=MOMENTUM)
                     if opt == "sgd" else torch.optim.Adam(model.parameters(), lr=ADAM_LR))
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y[:, None] if binary else y)
        n, B = X.shape[0], net.batch
        staged = list(zip(Xt.split(B), yt.split(B)))

        def train(epochs):
            for _ in range(epochs):
                if shuffle:
                    perm = torch.randperm(n)
                    staged[:] = zip(Xt[perm].split(B), yt[perm].split(B))
                for xb, yb in staged:
                    optimizer.zero_grad()
                    with cast():
                        loss = loss_fn(model(xb), yb)
                    loss.backward()
                    optimizer.step()

        def eval_loss():
            with torch.inference_mode(), cast():
                return float(loss_fn(model(Xt), yt))
        return train, eval_loss, {}

    def predictor(net, X):
        model = build(net).eval()
        torch.inference_mode().__enter__()  # once: the cheapest call for torch

        def predict(x):
            with cast():
                return model(torch.from_numpy(x))
        return predict

    return {"version": torch.__version__, "threads_used": torch.get_num_threads(),
            "trainer": trainer, "predictor": predictor}


def jax_peer(threads):
    if threads == 1 and hasattr(os, "sched_setaffinity"):
        # XLA_FLAGS (set by the parent) do not keep XLA's CPU client from running a large dot
        # on every core (measured: 2 cores busy on the wide network); XLA sizes its thread
        # pool from the CPU affinity mask, so give this process one CPU before JAX starts.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import jax
    import jax.numpy as jnp
    from jax import lax

    def init(sizes, seed=0):
        keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes) - 1)
        return [(jax.random.normal(k, (a, b), jnp.float32) * math.sqrt(2.0 / a),
                 jnp.zeros(b, jnp.float32)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def forward(params, x):
        for W, b in params[:-1]:
            x = jax.nn.relu(x @ W + b)
        W, b = params[-1]
        return x @ W + b

    def loss_fn(params, x, y):
        z = forward(params, x)
        if z.shape[1] == 1:
            z = z[:, 0]
            return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
        picked = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)

    def opt_init(params, opt):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        if opt == "sgd":
            return zeros
        return (jnp.zeros((), jnp.float32), zeros, jax.tree_util.tree_map(jnp.zeros_like,
                                                                          params))

    def update(params, state, x, y, opt):
        """One step with PyTorch's SGD-momentum or Adam formulas."""
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        tm = jax.tree_util.tree_map
        if opt == "sgd":
            buf = tm(lambda b, gi: MOMENTUM * b + gi, state, g)
            return tm(lambda p, b: p - SGD_LR * b, params, buf), buf, loss
        b1, b2, eps = 0.9, 0.999, 1e-8
        t, m, v = state
        t = t + 1
        m = tm(lambda mi, gi: b1 * mi + (1 - b1) * gi, m, g)
        v = tm(lambda vi, gi: b2 * vi + (1 - b2) * gi * gi, v, g)
        step = ADAM_LR / (1 - b1 ** t)
        corr = jnp.sqrt(1 - b2 ** t)
        params = tm(lambda p, mi, vi: p - step * mi / (jnp.sqrt(vi) / corr + eps), params, m, v)
        return params, (t, m, v), loss

    def trainer(net, opt, X, y, shuffle):
        n, B, nb = X.shape[0], net.batch, X.shape[0] // net.batch
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        rng = np.random.default_rng(0)

        def stage(X, y, perm=None):  # (steps, batch, features), (steps, batch)
            if perm is not None:
                X, y = X[perm], y[perm]
            return X.reshape(nb, B, -1), y.reshape((nb, B) + y.shape[1:])

        def step(params, state, Xs, ys, i):
            return update(params, state, Xs[i], ys[i], opt)[:2]

        def epoch_fn(params, state, Xs, ys):  # no losses out: XLA drops the loss value
            def body(carry, batch):
                return update(*carry, *batch, opt)[:2], None
            return lax.scan(body, (params, state), (Xs, ys))[0]

        params = init(net.sizes)
        state = opt_init(params, opt)
        staged = jax.block_until_ready(stage(Xj, yj))
        index = jax.block_until_ready([jnp.int32(i) for i in range(nb)])
        t0 = time.perf_counter()
        if shuffle:
            stage_c = jax.jit(stage).lower(Xj, yj, jnp.arange(n, dtype=jnp.int32)).compile()
        step_c = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, *staged,
                                                            index[0]).compile()
        t_step = time.perf_counter() - t0
        t0 = time.perf_counter()
        epoch_c = jax.jit(epoch_fn, donate_argnums=(0, 1)).lower(params, state,
                                                                 *staged).compile()
        t_scan = time.perf_counter() - t0
        box = {"params": params, "state": state}

        def epoch_data():
            if not shuffle:
                return staged
            return stage_c(Xj, yj, jnp.asarray(rng.permutation(n).astype(np.int32)))

        def train_step(epochs):
            p, s = box["params"], box["state"]
            for _ in range(epochs):
                Xs, ys = epoch_data()
                for i in index:
                    p, s = step_c(p, s, Xs, ys, i)
            box["params"], box["state"] = jax.block_until_ready((p, s))

        def train_scan(epochs):
            p, s = box["params"], box["state"]
            for _ in range(epochs):
                p, s = epoch_c(p, s, *epoch_data())
            box["params"], box["state"] = jax.block_until_ready((p, s))

        def reset():  # the scan variant starts from the same initial weights
            box["params"] = init(net.sizes)
            box["state"] = opt_init(box["params"], opt)

        def eval_loss():
            return float(jax.jit(loss_fn)(box["params"], Xj, yj))
        return {"jax_step": train_step, "jax_scan": train_scan}, eval_loss, {
            "compile_s": {"jax_step": t_step, "jax_scan": t_scan}, "reset": reset}

    def predictor(net, X):
        params = init(net.sizes)
        fwd = jax.jit(forward)
        xj = jnp.asarray(X)
        fwd(params, xj).block_until_ready()
        return lambda x: fwd(params, x).block_until_ready(), jnp.asarray

    return {"version": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS"),
            "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None, "trainer": trainer, "predictor": predictor}


def sklearn_peer(threads):
    import sklearn
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    if threads == 1:
        sklearn_peer.limit = threadpool_limits(limits=1)
    warnings.filterwarnings("ignore", module="sklearn")

    def trainer(net, opt, X, y, shuffle):
        labels = y.astype(np.int64)
        classes = np.arange(max(net.sizes[-1], 2))
        common = dict(hidden_layer_sizes=net.sizes[1:-1], activation="relu", alpha=0.0,
                      batch_size=net.batch, max_iter=1, shuffle=shuffle, random_state=0)
        if opt == "sgd":
            clf = MLPClassifier(solver="sgd", momentum=MOMENTUM, nesterovs_momentum=False,
                                learning_rate_init=SGD_LR, **common)
        else:
            clf = MLPClassifier(solver="adam", learning_rate_init=ADAM_LR, **common)

        def train(epochs):
            for _ in range(epochs):
                clf.partial_fit(X, labels, classes=classes)

        def eval_loss():
            from sklearn.metrics import log_loss
            return float(log_loss(labels, clf.predict_proba(X), labels=classes))
        return train, eval_loss, {"dtype": lambda: str(clf.coefs_[0].dtype)}

    return {"version": sklearn.__version__, "trainer": trainer, "predictor": None}


PEER_FNS = {"nncore": nncore_peer, "numpy": numpy_peer, "torch": torch_peer, "jax": jax_peer,
            "sklearn": sklearn_peer, "nncore_f32": nncore_f32_peer}


def wanted(args, kind, net):
    """Whether --kinds and --rows select this measurement (kind: sgd, adam or predict)."""
    return kind in args.kinds and (not args.rows or any(w in key(net) for w in args.rows))


def worker(args):
    """Measure one peer at one thread setting; write JSON to args.out. tools/ab_bench.py runs
    this for the nncore peer (``--worker nncore --out PATH``) with PYTHONPATH at each build."""
    global DTYPE
    DTYPE = args.dtype
    threads = 1 if args.threads == ["1"] else "default"
    result = {"peer": args.worker, "threads": threads, "rows": [], "notes": []}
    try:
        t0 = time.perf_counter()
        peer = PEER_FNS[args.worker](threads)
        result["import_s"] = time.perf_counter() - t0
    except ImportError as e:
        result["skipped"] = f"{args.worker} is not importable ({e})"
        with open(args.out, "w") as f:
            json.dump(result, f)
        return
    result.update({k: v for k, v in peer.items() if k not in ("trainer", "predictor")})
    adam = ADAM_QUICK if args.quick else ADAM_FULL
    jobs = [(net, "sgd") for net in NETS] + [(net, "adam") for net in NETS if key(net) in adam]
    for net, opt in [(net, opt) for net, opt in jobs if wanted(args, opt, net)]:
        X, y = make_data(net, net_n(net, args.quick))
        trains, eval_loss, extra = peer["trainer"](net, opt, X, y, args.shuffle)
        if not isinstance(trains, dict):
            trains = {args.worker: trains}
        for name, train in trains.items():
            if "reset" in extra:
                extra["reset"]()
            row = {"kind": "train", "config": key(net), "optimizer": opt, "peer": name,
                   "threads": threads, **time_training(train, X.shape[0], args)}
            row["loss_after"] = eval_loss()
            if "compile_s" in extra:
                row["compile_s"] = extra["compile_s"][name]
            if "dtype" in extra:
                row["dtype"] = extra["dtype"]()
            result["rows"].append(row)
            print(f"  {name:8} {threads!s:7} {opt:4} {key(net):27} "
                  f"{row['samples_per_s']:12,.0f} samples/s  {row['epochs']:5} epochs "
                  f"cores {row['cores']:.2f}" + (f"  (others used {row['others_cpus']:.1f} "
                                                  f"CPUs)" if row["others_cpus"] >= BUSY
                                                  else ""), file=sys.stderr, flush=True)
    if peer["predictor"] is not None:
        want = PREDICT_QUICK if args.quick else [key(net) for net in NETS]
        for net in NETS:
            if key(net) not in want or not wanted(args, "predict", net) or any(
                    r["kind"] == "predict" and r["config"] == net.name for r in result["rows"]):
                continue
            X, _ = make_data(net, PREDICT_BATCH)
            made = peer["predictor"](net, X)
            fn, convert = made if isinstance(made, tuple) else (made, lambda a: a)
            x1, xb = convert(X[:1].copy()), convert(X)
            lat = time_per_call(lambda: fn(x1), args.predict_time, args.predict_reps)
            thr = time_per_call(lambda: fn(xb), args.predict_time, args.predict_reps)
            result["rows"].append({"kind": "predict", "config": net.name, "peer": args.worker,
                                   "threads": threads, "latency_us": lat * 1e6,
                                   "batch_samples_per_s": PREDICT_BATCH / thr})
            print(f"  {args.worker:8} {threads!s:7} predict {net.name:22} {lat * 1e6:9.1f} us  "
                  f"{PREDICT_BATCH / thr:12,.0f} samples/s at {PREDICT_BATCH}",
                  file=sys.stderr, flush=True)
    result["patience_left"] = args.patience
    with open(args.out, "w") as f:
        json.dump(result, f)


def agreement(args):
    """One epoch from identical weights and batch order, nncore vs PyTorch (digits/32)."""
    import torch
    import nncore
    net = NETS[1]
    X, y = make_data(net, 2048)
    out = []
    for opt in ("sgd", "adam"):
        model = nncore.Sequential([nncore.Dense(64, 128, activation="relu"),
                                   nncore.Dense(128, 10)], dtype="float32", seed=0)
        tmodel = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(),
                                     torch.nn.Linear(128, 10))
        with torch.no_grad():
            for layer, lin in zip(model.layers, (tmodel[0], tmodel[2])):
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))  # (in, out) -> (out, in)
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
        model.compile(optimizer=nncore.SGD(lr=SGD_LR, momentum=MOMENTUM) if opt == "sgd"
                      else nncore.Adam(lr=ADAM_LR), loss="cross_entropy")
        topt = (torch.optim.SGD(tmodel.parameters(), lr=SGD_LR, momentum=MOMENTUM)
                if opt == "sgd" else torch.optim.Adam(tmodel.parameters(), lr=ADAM_LR))
        loss_fn = torch.nn.CrossEntropyLoss()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
        before = model.evaluate(X, y)["loss"]
        model.fit(X, y, epochs=1, batch_size=net.batch, shuffle=False, verbose=0)
        for s in range(0, X.shape[0], net.batch):
            topt.zero_grad()
            loss_fn(tmodel(Xt[s:s + net.batch]), yt[s:s + net.batch]).backward()
            topt.step()
        with torch.no_grad():
            t_loss = float(loss_fn(tmodel(Xt), yt))
            w_diff = max(float(np.max(np.abs(layer.W.T - lin.weight.numpy())))
                         for layer, lin in zip(model.layers, (tmodel[0], tmodel[2])))
        n_loss = model.evaluate(X, y)["loss"]
        out.append({"kind": "agreement", "config": key(net), "optimizer": opt, "n": X.shape[0],
                    "loss_before": before, "nncore_loss": n_loss, "torch_loss": t_loss,
                    "rel_diff": abs(n_loss - t_loss) / abs(t_loss), "max_weight_diff": w_diff})
    with open(args.out, "w") as f:
        json.dump({"rows": out, "torch": torch.__version__}, f)


def accuracy(args):
    """mixed_bfloat16 against float32, the same recipe and seeds: the training loss of each
    epoch and the held-out accuracy on the shipped digits and scikit-learn's breast_cancer
    and wine (a 64-64 ReLU MLP, SGD momentum, standardised features, 25% held out)."""
    import nncore
    sets = {"digits": nncore.datasets.load_digits}
    try:
        import sklearn.datasets as skd
        sets.update(breast_cancer=lambda: skd.load_breast_cancer(return_X_y=True),
                    wine=lambda: skd.load_wine(return_X_y=True))
    except ImportError:
        pass
    seeds, epochs = (range(1), 5) if args.quick else (range(3), 30)
    out = []
    for name, load in sets.items():
        X, y = load()
        X = ((X - X.mean(0)) / (X.std(0) + 1e-8)).astype(np.float32)
        for seed in seeds:
            Xtr, Xte, ytr, yte = nncore.datasets.train_test_split(X, y, test_size=0.25,
                                                                  seed=seed, stratify=y)
            for dtype in ("float32", MIXED):
                k = int(y.max()) + 1
                m = nncore.Sequential([nncore.Dense(X.shape[1], 64, activation="relu"),
                                       nncore.Dense(64, 64, activation="relu"),
                                       nncore.Dense(64, k)], dtype=dtype, seed=seed)
                m.compile(nncore.SGD(lr=0.05, momentum=0.9), "cross_entropy")
                h = m.fit(Xtr, ytr, epochs=epochs, batch_size=32, verbose=0)
                acc = float(np.mean(m.predict(Xte).argmax(axis=1) == yte))
                out.append({"kind": "accuracy", "dataset": name, "seed": seed,
                            "dtype": dtype, "loss": h.history["loss"], "accuracy": acc})
    with open(args.out, "w") as f:
        json.dump({"rows": out}, f)


def accuracy_table(rows):
    acc = [r for r in rows if r["kind"] == "accuracy"]
    lines = ["| dataset | float32 accuracy | mixed_bfloat16 accuracy | difference (points) | "
             "final loss float32 / mixed |", "|---|---:|---:|---:|---:|"]
    for ds in dict.fromkeys(r["dataset"] for r in acc):
        a = {d: [r for r in acc if r["dataset"] == ds and r["dtype"] == d]
             for d in ("float32", MIXED)}
        mean = {d: float(np.mean([r["accuracy"] for r in v])) for d, v in a.items()}
        loss = {d: float(np.mean([r["loss"][-1] for r in v])) for d, v in a.items()}
        lines.append(f"| {ds} ({len(a['float32'])} seeds) | {100 * mean['float32']:.2f}% | "
                     f"{100 * mean[MIXED]:.2f}% | {100 * (mean[MIXED] - mean['float32']):+.2f} "
                     f"| {loss['float32']:.4f} / {loss[MIXED]:.4f} |")
    return "\n".join(lines)


def pyplot(path):
    """matplotlib.pyplot (Agg), or None with a note that the plot at path is not drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed, so no plot ({path})")
        return None
    return plt


def plot_losses(rows, path):
    """The training loss per epoch, float32 and mixed_bfloat16 side by side per dataset."""
    plt = pyplot(path)
    if plt is None:
        return
    acc = [r for r in rows if r["kind"] == "accuracy"]
    sets = list(dict.fromkeys(r["dataset"] for r in acc))
    fig, axes = plt.subplots(1, len(sets), squeeze=False, figsize=(4.2 * len(sets), 3.6))
    for ax, ds in zip(axes[0], sets):
        for r in (r for r in acc if r["dataset"] == ds):
            ax.plot(range(1, len(r["loss"]) + 1), r["loss"],
                    color="C0" if r["dtype"] == "float32" else "C1", alpha=0.8,
                    label=r["dtype"] if r["seed"] == 0 else None)
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss")
    axes[0][-1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


# ---- the parent: subprocesses, import cost, reporting --------------------------------------

def run_child(args, extra, env=None):
    """Run this script with `extra` arguments in a fresh process; its JSON result, or a dict
    with "error"."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [sys.executable, os.path.abspath(__file__), *extra, "--out", out,
               "--patience", str(args.patience), "--min-time", str(args.min_time),
               "--reps", str(args.reps), "--rows", ",".join(args.rows),
               "--kinds", ",".join(args.kinds), "--dtype", args.dtype] + (
                   ["--quick"] if args.quick else []) + (
                   ["--shuffle"] if args.shuffle else [])
        proc = subprocess.run(cmd, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
                              stderr=None, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            return {"error": f"exit code {proc.returncode}: {proc.stdout[-500:]}"}
        with open(out) as f:
            res = json.load(f)
    args.patience = min(args.patience, res.get("patience_left", args.patience))
    return res


IMPORT_CODE = r"""
import sys, time, json, resource
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
sys.path[:0] = {path!r}
r0 = rss()
if {numpy_first}:
    import numpy
r1, t0 = rss(), time.perf_counter()
import nncore
t = time.perf_counter() - t0
print(json.dumps({{"import_s": t, "rss0": r0, "rss_before": r1, "rss_after": rss(),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def import_cost(args):
    """import nncore in fresh interpreters: in-process time, wall time minus a bare
    interpreter's, resident memory added (VmRSS after minus before), medians.

    With the modules' bytecode cached, as an installed package has it (pip compiles it at
    install time): under PYTHONDONTWRITEBYTECODE a source tree would be compiled at every
    import (13 ms of models.py alone). The cache goes to a temporary PYTHONPYCACHEPREFIX,
    written by a first, untimed import; the tree is left as it is."""
    path = [ROOT] if ROOT in sys.path else []
    runs = 3 if args.quick else 9
    with tempfile.TemporaryDirectory(prefix="nncore-bench-pycache-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        return _import_cost(path, runs, env)


def _import_cost(path, runs, env):
    rows = {}

    def run(code, **kw):
        return subprocess.run([sys.executable, "-c", code], env=env, check=True, **kw)

    run(f"import sys; sys.path[:0] = {path!r}; import nncore")  # writes the cache
    for numpy_first in (False, True):
        code = IMPORT_CODE.format(path=path, numpy_first=numpy_first)
        got = [json.loads(run(code, capture_output=True, text=True).stdout)
               for _ in range(runs)]
        rows["numpy_first" if numpy_first else "cold"] = {
            "import_ms": statistics.median(g["import_s"] for g in got) * 1e3,
            "rss_added_mb": statistics.median(g["rss_after"] - g["rss0"] for g in got),
            "rss_after_mb": statistics.median(g["rss_after"] for g in got),
            "nncore_only_mb": statistics.median(g["rss_after"] - g["rss_before"] for g in got)}

    def wall(code):
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            run(code)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)
    bare = wall("pass")
    rows["wall_minus_bare_ms"] = (wall(f"import sys; sys.path[:0] = {path!r}; import nncore")
                                  - bare) * 1e3
    rows["bare_interpreter_ms"] = bare * 1e3
    return rows


def machine_info():
    import nncore
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__,
            "nncore": nncore.config(), "nncore_file": nncore.__file__,
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def fmt(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def best_peer(rows, cfg, opt, threads, exclude=()):
    peers = [r for r in rows if r["kind"] == "train" and r["config"] == cfg and
             r["optimizer"] == opt and r["threads"] == threads and r["peer"] != "nncore"
             and r["peer"] not in exclude]
    return max(peers, key=lambda r: r["samples_per_s"]) if peers else None


def train_table(rows, opt, with_targets):
    cols = [c for c in COLUMNS if any(r["kind"] == "train" and r["peer"] == c for r in rows)]
    vs_f32 = "nncore_f32" in cols
    head = ["network / batch", "threads"] + [LABELS[c] for c in cols] + [
        "nncore / PyTorch"] + (["nncore / nncore float32"] if vs_f32 else []) + [
        "nncore / best peer"] + (["target"] if with_targets else [])
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * (len(head) - 2)]
    configs = list(dict.fromkeys(key(n) for n in NETS))
    threads = list(dict.fromkeys(r["threads"] for r in rows))
    for cfg in configs:
        for th in threads:
            sel = {r["peer"]: r for r in rows if r["kind"] == "train" and r["config"] == cfg and
                   r["optimizer"] == opt and r["threads"] == th}
            if not sel:
                continue
            cells = []
            for c in cols:
                r = sel.get(c)
                cells.append("–" if r is None else fmt(r["samples_per_s"]) +
                             (" !" if r["others_cpus"] >= BUSY else ""))
            nn = sel.get("nncore")
            vs_torch = (f"{nn['samples_per_s'] / sel['torch']['samples_per_s']:.2f}x"
                        if nn and "torch" in sel else "–")
            best = best_peer(rows, cfg, opt, th)
            vs_best = (f"{nn['samples_per_s'] / best['samples_per_s']:.2f}x "
                       f"({LABELS[best['peer']]})" if nn and best else "–")
            f32 = []
            if vs_f32:
                f32 = [f"{nn['samples_per_s'] / sel['nncore_f32']['samples_per_s']:.2f}x"
                       if nn and "nncore_f32" in sel else "–"]
            tgt = []
            if with_targets:
                tgt = [f">= {TARGETS[cfg]}x" if cfg in TARGETS else ""]
            lines.append("| " + " | ".join([cfg, str(th)] + cells + [vs_torch] + f32 +
                                           [vs_best] + tgt) + " |")
    return "\n".join(lines)


def predict_table(rows):
    pr = [r for r in rows if r["kind"] == "predict"]
    peers = [p for p in ("nncore", "nncore_f32", "numpy", "torch", "jax")
             if any(r["peer"] == p for r in pr)]
    names = dict(LABELS, jax="JAX jit")
    head = (["network", "threads"] + [f"{names[p]} µs" for p in peers] +
            ["best peer / nncore"] + [f"{names[p]} /s @{PREDICT_BATCH}" for p in peers])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for net in dict.fromkeys(r["config"] for r in pr):
        for th in dict.fromkeys(r["threads"] for r in pr):
            sel = {r["peer"]: r for r in pr if r["config"] == net and r["threads"] == th}
            if not sel:
                continue
            lat = [f"{sel[p]['latency_us']:.1f}" if p in sel else "–" for p in peers]
            others = [sel[p]["latency_us"] for p in sel if p != "nncore"]
            ratio = (f"{min(others) / sel['nncore']['latency_us']:.2f}x"
                     if others and "nncore" in sel else "–")
            thr = [fmt(sel[p]["batch_samples_per_s"]) if p in sel else "–" for p in peers]
            lines.append("| " + " | ".join([net, str(th)] + lat + [ratio] + thr) + " |")
    return "\n".join(lines)


def mixed_summary(rows):
    """The targets of a --dtype mixed_bfloat16 run (issue 25)."""
    lines = ["## Targets (issue 25: mixed_bfloat16)", ""]
    tr = [r for r in rows if r["kind"] == "train" and r["optimizer"] == "sgd"]
    for cfg in MIXED_ROWS:
        for peer, need in MIXED_TARGETS.items():
            got = []
            for th in dict.fromkeys(r["threads"] for r in tr):
                sel = {r["peer"]: r for r in tr if r["config"] == cfg and r["threads"] == th}
                if "nncore" in sel and peer in sel:
                    got.append((sel["nncore"]["samples_per_s"] / sel[peer]["samples_per_s"],
                                th))
            if not got:
                lines.append(f"- SKIP  {cfg} >= {need}x {LABELS[peer]}: not measured")
                continue
            ok = all(g >= need for g, _ in got)
            lines.append(f"- {'PASS' if ok else 'FAIL'}  {cfg} >= {need}x {LABELS[peer]}"
                         ": " + ", ".join(
                             f"{g:.2f}x ({th} thread{'s' * (th != 1)})" for g, th in got))
    net, need = MIXED_PREDICT
    pr = [r for r in rows if r["kind"] == "predict" and r["config"] == net]
    got = []
    for th in dict.fromkeys(r["threads"] for r in pr):
        sel = {r["peer"]: r["latency_us"] for r in pr if r["threads"] == th}
        if "nncore" in sel and "nncore_f32" in sel:
            got.append((sel["nncore_f32"] / sel["nncore"], th))
    if got:
        ok = all(g >= need for g, _ in got)
        lines.append(f"- {'PASS' if ok else 'FAIL'}  one-sample predict of {net} >= {need}x "
                     f"float32: " + ", ".join(f"{g:.2f}x ({th} thread{'s' * (th != 1)})"
                                              for g, th in got))
    else:
        lines.append(f"- SKIP  one-sample predict of {net} >= {need}x float32: not measured")
    return "\n".join(lines)


def summary(rows, imp, agree):
    lines = ["## Targets (issue 5)", ""]

    def verdict(ok):
        return "PASS" if ok else "FAIL"
    for cfg, need in TARGETS.items():
        got = []
        for th in dict.fromkeys(r["threads"] for r in rows if r["kind"] == "train"):
            nn = [r for r in rows if r["kind"] == "train" and r["config"] == cfg and
                  r["optimizer"] == "sgd" and r["threads"] == th and r["peer"] == "nncore"]
            best = best_peer(rows, cfg, "sgd", th)
            per_batch = best_peer(rows, cfg, "sgd", th, exclude=("jax_scan",))
            if nn and best:
                got.append((nn[0]["samples_per_s"] / best["samples_per_s"], th,
                            LABELS[best["peer"]], nn[0]["samples_per_s"] /
                            per_batch["samples_per_s"] if per_batch else None))
        if not got:
            lines.append(f"- SKIP  {cfg} >= {need}x best peer: no peer measured")
            continue
        worst = min(got, key=lambda g: g[0])
        lines.append(f"- {verdict(worst[0] >= need)}  {cfg} >= {need}x best peer: "
                     + ", ".join(f"{r:.2f}x vs {p} ({th} thread{'s' * (th != 1)}: "
                                 f"{'met' if r >= need else 'not met'})"
                                 for r, th, p, _ in got)
                     + ("; vs the best peer that is called per batch (all but JAX scan): "
                        + ", ".join(f"{pb:.2f}x" for _, _, _, pb in got if pb is not None)
                        if any(p == "JAX scan" for _, _, p, _ in got) else ""))
    pr = [r for r in rows if r["kind"] == "predict"]
    got = []
    for net in dict.fromkeys(r["config"] for r in pr):
        for th in dict.fromkeys(r["threads"] for r in pr):
            sel = {r["peer"]: r["latency_us"] for r in pr if r["config"] == net and
                   r["threads"] == th}
            peers = {p: v for p, v in sel.items() if p != "nncore"}
            if "nncore" in sel and peers:
                p = min(peers, key=peers.get)
                got.append((peers[p] / sel["nncore"], net, th, p))
    for net in dict.fromkeys(g[1] for g in got):  # a line per network, its worst thread count
        worst = min((g for g in got if g[1] == net), key=lambda g: g[0])
        lines.append(f"- {verdict(worst[0] >= PREDICT_TARGET)}  predict latency, one sample, "
                     f">= {PREDICT_TARGET:g}x lower than the best peer, {net}: {worst[0]:.2f}x "
                     f"({worst[2]} thread{'s' * (worst[2] != 1)}, vs {worst[3]})")
    if not got:
        lines.append(f"- SKIP  predict latency >= {PREDICT_TARGET:g}x lower: no peer measured")
    if imp:
        ms, mb = imp["cold"]["import_ms"], imp["cold"]["rss_added_mb"]
        lines.append(f"- {verdict(ms < IMPORT_MS)}  import nncore < {IMPORT_MS:g} ms: "
                     f"{ms:.1f} ms (wall minus bare interpreter {imp['wall_minus_bare_ms']:.1f}"
                     f" ms)")
        lines.append(f"- {verdict(mb < IMPORT_MB)}  import nncore < {IMPORT_MB:g} MB resident "
                     f"(added to a bare interpreter): {mb:.1f} MB")
    sgd = [r for r in agree if r["optimizer"] == "sgd"]
    if sgd:
        lines.append(f"- {verdict(sgd[0]['rel_diff'] <= LOSS_RTOL)}  one-epoch loss within "
                     f"{LOSS_RTOL:g} relative of PyTorch's: {sgd[0]['rel_diff']:.2e}")
    else:
        lines.append("- SKIP  one-epoch loss vs PyTorch: PyTorch not measured")
    return "\n".join(lines)


def plot(rows, path, dtype="float32"):
    """Samples/s on a log scale, one bar group per network / batch, one panel per thread
    setting."""
    plt = pyplot(path)
    if plt is None:
        return
    tr = [r for r in rows if r["kind"] == "train" and r["optimizer"] == "sgd"]
    threads = list(dict.fromkeys(r["threads"] for r in tr))
    configs = list(dict.fromkeys(key(n) for n in NETS))
    peers = [c for c in COLUMNS if any(r["peer"] == c for r in tr)]
    fig, axes = plt.subplots(1, len(threads), squeeze=False, sharey=True,
                             figsize=(1.5 + 2.2 * len(configs) * len(threads), 4.8))
    width = 0.8 / max(len(peers), 1)
    for ax, th in zip(axes[0], threads):
        for s, p in enumerate(peers):
            xs, ys = [], []
            for i, cfg in enumerate(configs):
                r = [r for r in tr if (r["config"], r["threads"], r["peer"]) == (cfg, th, p)]
                if r:
                    xs.append(i + (s - (len(peers) - 1) / 2) * width)
                    ys.append(r[0]["samples_per_s"])
            ax.bar(xs, ys, width, label=LABELS[p])
        ax.set_yscale("log")
        ax.set_xticks(range(len(configs)), [c.replace(" ", "\n", 1) for c in configs],
                      fontsize=8)
        ax.set_title(f"{th} thread{'s' if th != 1 else ''}")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].set_ylabel(f"training samples/s (SGD momentum, {dtype})")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("Training throughput, higher is better")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small data, short runs (CI)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"subset of {','.join(PEERS)}")
    p.add_argument("--threads", default="default,1", help="'default', '1' or both (default)")
    p.add_argument("--rows", default="",
                   help="networks whose 'name/batch' contains one of these comma-separated "
                        "words, e.g. 'seed,digits', '/256' (default: all)")
    p.add_argument("--kinds", default=",".join(KINDS),
                   help=f"measurements among {','.join(KINDS)} (default: all)")
    p.add_argument("--shuffle", action="store_true",
                   help="reshuffle every epoch inside the timed region (default: the same "
                        "random order every epoch, staged before the clock)")
    p.add_argument("--rounds", type=int, default=None,
                   help="measure every peer this many times, interleaved, and keep each row's "
                        "best (2 full, 1 quick)")
    p.add_argument("--dtype", default="float32", choices=["float32", MIXED],
                   help=f"{MIXED}: nncore's policy against nncore float32 and PyTorch "
                        f"autocast bfloat16 (peers {','.join(MIXED_PEERS)}; rows "
                        f"{', '.join(MIXED_ROWS)} unless --rows)")
    p.add_argument("--json", default="bench_training.json", help="results file ('' for none)")
    p.add_argument("--plot", default="bench_training.png", help="PNG plot ('' for none)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds per timed run (0.05 quick, 1 full)")
    p.add_argument("--reps", type=int, default=None, help="timed runs per row (1 quick, 3)")
    p.add_argument("--patience", type=float, default=None,
                   help="seconds in all to wait for other programs to leave the CPUs "
                   "(300; quick 10)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--agreement", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    mixed = args.dtype == MIXED
    if mixed and args.peers == ",".join(PEERS):
        args.peers = ",".join(MIXED_PEERS)
    if not mixed and args.peers == ",".join(PEERS):
        args.peers = ",".join(x for x in PEERS if x != "nncore_f32")
    args.peers = [x for x in args.peers.split(",") if x]
    if mixed and any(x not in MIXED_PEERS for x in args.peers):
        p.error(f"--dtype {MIXED} takes the peers {','.join(MIXED_PEERS)} (the others have "
                f"no bfloat16 mode here), got {','.join(args.peers)}")
    if mixed and not args.rows and not args.worker:
        args.rows = ",".join(MIXED_ROWS)
    bad = [x for x in args.peers if x not in PEERS]
    if bad:
        p.error(f"--peers: unknown {bad}; choose from {','.join(PEERS)}")
    args.rows = [w for w in args.rows.split(",") if w]
    args.kinds = [k for k in args.kinds.split(",") if k]
    if any(k not in KINDS for k in args.kinds):
        p.error(f"--kinds: choose among {','.join(KINDS)}, got {','.join(args.kinds)}")
    if args.rows and not any(any(w in key(net) for w in args.rows) for net in NETS):
        p.error(f"--rows {','.join(args.rows)} matches none of "
                f"{', '.join(key(net) for net in NETS)}")
    args.threads = [t.strip() for t in args.threads.split(",")]
    if any(t not in ("default", "1") for t in args.threads):
        p.error(f"--threads takes 'default', '1' or 'default,1', got {args.threads}")
    args.min_time = args.min_time or (0.05 if args.quick else 1.0)
    args.reps = args.reps or (1 if args.quick else 3)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.predict_time = 0.01 if args.quick else 0.05
    args.predict_reps = 3 if args.quick else 7
    if args.patience is None:
        args.patience = 10.0 if args.quick else 300.0
    return args


def best_rows(rows):
    """One row per measurement (peer, network, optimizer, threads): the fastest of the
    rounds (the least disturbed by the rest of a shared machine)."""
    best = {}
    for r in rows:
        k = (r["kind"], r["peer"], r["config"], r.get("optimizer"), r["threads"])
        speed = r["samples_per_s"] if r["kind"] == "train" else -r["latency_us"]
        if k not in best or speed > best[k][0]:
            best[k] = (speed, r)
    return [r for _, r in best.values()]


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.agreement:
        return agreement(args)
    if args.accuracy:
        return accuracy(args)
    mixed = args.dtype == MIXED
    if mixed:
        LABELS["torch"] = "PyTorch autocast bf16"
    import importlib.util
    info = machine_info()
    print(f"# nncore {info['nncore']['version']} training benchmark on {info['cpu']} "
          f"({info['cpu_count']} CPUs), path {info['nncore']['cpu_path']}",
          file=sys.stderr, flush=True)
    if not wait_until_idle(args):
        print("warning: other programs are using the CPUs; the timings will be noisy",
              file=sys.stderr)
    t_start = time.perf_counter()
    rows, notes, versions = [], [], {}
    # Rounds interleave the peers: a slow minute of a shared machine hits them all alike.
    for rnd in range(args.rounds):
        for th in args.threads:
            for peer in args.peers:
                if importlib.util.find_spec(MODULES[peer]) is None:
                    if th == args.threads[0] and rnd == 0:
                        notes.append(f"{peer} is not installed: skipped")
                    continue
                env = {"XLA_FLAGS": JAX_ONE_THREAD} if peer == "jax" and th == "1" else None
                print(f"# {peer}, {th} thread{'s' * (th != '1')}" + (
                    f", round {rnd + 1} of {args.rounds}" if args.rounds > 1 else ""),
                    file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                res = run_child(args, ["--worker", peer, "--threads", th], env)
                print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
                if "error" in res or "skipped" in res:
                    note = (res.get("skipped") or
                            f"{peer} ({th} threads) failed: {res['error']}")
                    if note not in notes:
                        notes.append(note)
                    continue
                rows = best_rows(rows + res["rows"])
                versions[peer] = {k: res.get(k) for k in ("version", "threads_used",
                                                          "xla_flags", "import_s",
                                                          "bf16_kernel")}
    print("# import nncore", file=sys.stderr, flush=True)
    imp = import_cost(args)
    agree, acc = [], []
    if mixed:
        print("# accuracy and loss curves, float32 vs mixed_bfloat16", file=sys.stderr,
              flush=True)
        res = run_child(args, ["--accuracy"])
        acc = res.get("rows", [])
        if "error" in res:
            notes.append(f"accuracy run failed: {res['error']}")
    elif "torch" in args.peers and importlib.util.find_spec("torch"):
        print("# one-epoch loss, nncore vs PyTorch", file=sys.stderr, flush=True)
        res = run_child(args, ["--agreement"])
        agree = res.get("rows", [])
        if "error" in res:
            notes.append(f"loss agreement failed: {res['error']}")
    elapsed = time.perf_counter() - t_start
    result = {"machine": info, "versions": versions, "args": {
        k: v for k, v in vars(args).items() if k not in ("worker", "out", "agreement")},
        "seconds": elapsed, "rows": rows + agree + acc, "import": imp, "notes": notes}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)

    cmd = "python benchmarks/bench_training.py" + (" --quick" if args.quick else "") + (
        " --shuffle" if args.shuffle else "")
    vers = ", ".join(f"{LABELS.get(p, p)} {v['version']}" for p, v in versions.items())
    cmd += f" --dtype {MIXED}" if mixed else ""
    print(f"## Training throughput, samples/s, {args.dtype} (`{cmd}`)\n")
    print(f"{info['cpu']}, {info['cpu_count']} CPUs; {vers}. SGD lr {SGD_LR}, momentum "
          f"{MOMENTUM}; higher is better; ratios > 1: nncore faster.\n")
    if any(r["kind"] == "train" and r["optimizer"] == "sgd" for r in rows):
        print(train_table(rows, "sgd", not mixed))
    if any(r["kind"] == "train" and r["optimizer"] == "adam" for r in rows):
        print(f"\n### Adam (lr {ADAM_LR}), samples/s\n")
        print(train_table(rows, "adam", False))
    if any(r["kind"] == "predict" for r in rows):
        print(f"\n### Predict: one-sample latency (median µs per call) and throughput at "
              f"batch {PREDICT_BATCH}\n")
        print(predict_table(rows))
    comp = [r for r in rows if r.get("compile_s") is not None and r["optimizer"] == "sgd"
            and r["threads"] == rows[0]["threads"]]
    if comp:
        print("\nJAX compile time (excluded above): " + "; ".join(
            f"{r['config']} {LABELS[r['peer']]} {r['compile_s']:.2f} s" for r in comp))
    cores = [r for r in rows if r["kind"] == "train" and r["threads"] == 1 and r["cores"] > 1.2]
    if cores:
        print("\nnote: with 1 thread these rows still used more than one core: " + ", ".join(
            f"{r['peer']} {r['config']} ({r['cores']:.1f})" for r in cores))
    if any(r.get("others_cpus", 0) >= BUSY for r in rows):
        print(f"\n! other programs used >= {BUSY} CPUs while this row was measured, even "
              f"after waiting: distrust it")
    c = imp["cold"]
    print(f"\n`import nncore` (fresh interpreter, bytecode cached as when installed, median): "
          f"{c['import_ms']:.1f} ms, "
          f"+{c['rss_added_mb']:.1f} MB resident (VmRSS {c['rss_after_mb']:.1f} MB); of which "
          f"nncore itself after NumPy: {imp['numpy_first']['import_ms']:.1f} ms, "
          f"+{imp['numpy_first']['nncore_only_mb']:.1f} MB. Wall time of `python -c 'import "
          f"nncore'` minus `python -c pass`: {imp['wall_minus_bare_ms']:.1f} ms.")
    for r in agree:
        print(f"\nOne epoch {r['config']} {r['optimizer']}, identical weights and batch order "
              f"({r['n']} samples): loss {r['loss_before']:.6f} -> nncore {r['nncore_loss']:.7f},"
              f" PyTorch {r['torch_loss']:.7f}, relative difference {r['rel_diff']:.1e} "
              f"(largest weight difference {r['max_weight_diff']:.1e})")
    for note in notes:
        print(f"\nnote: {note}")
    if mixed:
        if acc:
            print("\n### Accuracy, float32 vs mixed_bfloat16 (mean over seeds)\n")
            print(accuracy_table(acc))
        print("\n" + mixed_summary(rows))
    else:
        print("\n" + summary(rows, imp, agree))
    print(f"\n{len(rows)} rows in {elapsed:.0f} s" + (f"; written to {args.json}"
                                                      if args.json else ""))
    if args.plot and rows:
        plot(rows, args.plot.replace(".png", "_bf16.png") if mixed else args.plot, args.dtype)
    if args.plot and mixed and acc:
        plot_losses(acc, args.plot.replace(".png", "_bf16_loss.png"))


if __name__ == "__main__":
    main()
