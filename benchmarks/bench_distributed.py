"""Benchmark data-parallel training on MPI: 1 process against 2 ranks (issue 9).

Usage
-----
From the repository root, with the MPI extra installed (``pip install ".[mpi]"``)::

    python benchmarks/bench_distributed.py --quick    # smoke run (CI): a few seconds
    python benchmarks/bench_distributed.py            # full run: about 2 minutes

Without mpi4py or mpiexec it prints why and exits 0 (a skip).

What is measured
----------------
The wide network 1024-1024-1024-10 (relu, softmax cross-entropy), float32, SGD (lr 0.01,
momentum 0.9), global batch 256, shuffled every epoch; seeded standard-normal features and
labels from a fixed random linear teacher; ``--rows`` samples (default 10240: 40 steps an
epoch). Every run uses one OpenMP thread per process (``OMP_NUM_THREADS=1``):

* ``1 process``       the plain ``model.fit`` (the compiled plan), no MPI;
* ``1 rank``          ``fit(distributed=True)`` under ``mpiexec -n 1``: the plain fit's plan
                      with the distributed checks around each epoch (their overhead);
* ``2 ranks shared``  ``mpiexec -n 2``, the default exchange: the node's ranks share the
                      parameters and gradients in an MPI shared-memory window; each sums
                      and updates half of them (``DataParallel(model)``);
* ``2 ranks overlap`` ``exchange="allreduce"``: one ``Iallreduce`` per bucket of layers,
                      started as soon as the backward pass has produced it, then every rank
                      applies the whole update;
* ``2 ranks blocking`` ``exchange="allreduce", overlap=False``: one blocking ``Allreduce``
                      of the whole gradient buffer after the backward pass.

Each run: one warm-up epoch, then ``--epochs`` epochs timed (between barriers); samples/s =
epochs * rows / seconds on rank 0. The configurations are run ``--repeats`` times,
interleaved; the table gives the best and the median, and the speed-up and scaling efficiency
(speed-up / ranks) of each against ``1 process`` (best against best, median against median).
The machine may be shared: the best is the less disturbed figure. ``--json PATH`` (default
``bench_distributed.json``) receives every run.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIGS = [  # name, ranks (0: no MPI), exchange
    ("1 process", 0, "auto"),
    ("1 rank", 1, "auto"),
    ("2 ranks shared", 2, "shared"),
    ("2 ranks overlap", 2, "overlap"),
    ("2 ranks blocking", 2, "blocking"),
]


def worker(args):
    import numpy as np

    import nncore as nn
    comm = None
    if args.ranks:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    widths = [int(w) for w in args.widths.split("-")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, widths[0]), dtype=np.float32)
    teacher = rng.standard_normal((widths[0], widths[-1]), dtype=np.float32)
    y = (X @ teacher).argmax(axis=1)
    layers = [nn.Dense(a, b, activation="relu") for a, b in zip(widths[:-2], widths[1:-1])]
    layers.append(nn.Dense(widths[-2], widths[-1]))
    model = nn.Sequential(layers, dtype="float32", seed=0)
    model.compile(optimizer=nn.SGD(lr=0.01, momentum=0.9), loss="cross_entropy")
    kw = dict(batch_size=args.batch, verbose=0)
    if comm is not None:
        from nncore.distributed import DataParallel
        kw_dp = {"auto": {}, "shared": dict(exchange="shared"),
                 "overlap": dict(exchange="allreduce"),
                 "blocking": dict(exchange="allreduce", overlap=False)}[args.exchange]
        trainer = DataParallel(model, comm, **kw_dp)
    else:
        trainer = model
    trainer.fit(X, y, epochs=1, **kw)  # warm-up: workspaces, plans, MPI buffers
    if comm is not None:
        comm.Barrier()
    t0 = time.perf_counter()
    history = trainer.fit(X, y, epochs=args.epochs, **kw)
    if comm is not None:
        comm.Barrier()
    dt = time.perf_counter() - t0
    if comm is None or comm.Get_rank() == 0:
        print(json.dumps({"seconds": dt, "samples_per_s": args.epochs * args.rows / dt,
                          "threads": nn.get_num_threads(),
                          "loss": history.history["loss"][-1]}))


def mpi_missing():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install '.[mpi]')"
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(exe):
        exe = shutil.which("mpiexec")
    if exe is None:
        return None, "no mpiexec (pip install '.[mpi]' installs MPICH's)"
    return exe, None


def run(mpiexec, ranks, exchange, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--ranks", str(ranks),
           "--rows", str(args.rows), "--epochs", str(args.epochs), "--batch",
           str(args.batch), "--widths", args.widths, "--exchange", exchange]
    if ranks:
        cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py"] + cmd[1:]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--widths", default=None)
    ap.add_argument("--json", default="bench_distributed.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ranks", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--exchange", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()
    quick = args.quick
    if args.repeats is None:
        args.repeats = 1 if quick else 5
    if args.rows is None:
        args.rows = 1024 if quick else 10240
    if args.epochs is None:
        args.epochs = 1 if quick else 3
    if args.widths is None:
        args.widths = "128-128-128-10" if quick else "1024-1024-1024-10"
    if args.worker:
        worker(args)
        return
    mpiexec, why = mpi_missing()
    if why is not None:
        print(f"bench_distributed: skipped: {why}")
        return
    print(f"network {args.widths}, float32, SGD momentum 0.9, global batch {args.batch}, "
          f"{args.rows} rows, {args.epochs} epochs timed, {args.repeats} repeats, "
          f"1 thread per process, {os.cpu_count()} cores (the machine may be shared)")
    runs = {name: [] for name, _, _ in CONFIGS}
    for rep in range(args.repeats):
        for name, ranks, exchange in CONFIGS:
            r = run(mpiexec, ranks, exchange, args)
            runs[name].append(r)
            print(f"  repeat {rep + 1}: {name:17s} {r['samples_per_s']:10,.0f} samples/s",
                  flush=True)
    base = [r["samples_per_s"] for r in runs["1 process"]]
    rows = []
    for name, ranks, exchange in CONFIGS:
        s = [r["samples_per_s"] for r in runs[name]]
        best, med = max(s), statistics.median(s)
        n = max(ranks, 1)
        rows.append({"config": name, "ranks": n, "exchange": exchange, "best": best,
                     "median": med, "speedup_best": best / max(base),
                     "speedup_median": med / statistics.median(base),
                     "efficiency_best": best / max(base) / n,
                     "efficiency_median": med / statistics.median(base) / n,
                     "runs": s})
    print()
    print("| configuration | samples/s best | samples/s median | speed-up best (median) | "
          "efficiency best (median) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['best']:,.0f} | {r['median']:,.0f} | "
              f"{r['speedup_best']:.2f}x ({r['speedup_median']:.2f}x) | "
              f"{100 * r['efficiency_best']:.0f}% ({100 * r['efficiency_median']:.0f}%) |")
    if not quick:
        print()
        for config, target in (("1 rank", 0.95), ("2 ranks shared", 1.6)):
            r = next(r for r in rows if r["config"] == config)
            verdict = "met" if r["speedup_best"] >= target else "NOT met"
            print(f"target: {config} >= {target}x one process: {verdict} "
                  f"({r['speedup_best']:.2f}x best, {r['speedup_median']:.2f}x median)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {k: getattr(args, k) for k in
                                    ("rows", "epochs", "batch", "widths", "repeats")},
                       "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                       "results": rows}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
