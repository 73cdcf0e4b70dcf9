"""Benchmark nncore's GEMM and dense layer against NumPy (``numpy.matmul`` on OpenBLAS).

Everything runs in one process: for each dtype, shape and thread count, NumPy is timed first,
then nncore on each CPU path (``generic``, ``avx2``, ``avx512``: every path this machine has),
on the same arrays, with preallocated outputs so that no allocation is timed.

Usage
-----
From the repository root, after ``python setup.py build_ext --inplace -q``::

    python benchmarks/bench_gemm.py --quick        # smoke run (CI): few shapes, < 1 minute
    python benchmarks/bench_gemm.py                # full run: several minutes
    python benchmarks/bench_gemm.py --dtype f32 --threads 1 --paths avx512 --filter gemm
    python benchmarks/bench_gemm.py --openblas-coretype Haswell
    python benchmarks/bench_gemm.py --dtype mixed_bfloat16 --bf16-peak 108

``--dtype f32|f64|both``, ``--threads 1,2``, ``--paths avx512,avx2,generic`` pick the rows;
``--filter TEXT`` keeps the rows whose "op shape" contains TEXT (``gemm``, ``dense``,
``b64 ``, ``784x256``). ``--json PATH`` (default ``bench_gemm.json``) receives every row and
the machine (CPU model, NumPy and its BLAS, ``nncore.config()``); ``--plot PATH`` (default
``bench_gemm.png``, ``--plot ''`` for none) draws the ratios when matplotlib is installed.

``--dtype mixed_bfloat16`` times the bfloat16 products instead (``_core.gemm_bf16`` on each
bfloat16 kernel the machine runs, nncore's float32 gemm and PyTorch's bfloat16 matmul on the
square shapes and the forward products of the larger layers); ``--bf16-peak`` (one core's
VDPBF16PS GFLOP/s from ``tools/fma_peak.c``) adds the VDPBF16PS kernel's share of it.

``--openblas-coretype Haswell`` adds a row group: the script re-runs itself in a subprocess
with ``OPENBLAS_CORETYPE=Haswell`` (which must be set before NumPy loads OpenBLAS, hence the
new process) on the ``avx2`` path only, so nncore's AVX2 kernels meet OpenBLAS's AVX2
(Haswell) kernels rather than its AVX-512 ones. Those rows are printed in a second table and
merged into the JSON with ``"openblas_coretype": "Haswell"``.

What is measured
----------------
``gemm``       square ``a @ b``, n = 256, 512, 1024, 2048 (``--quick``: 256, 512).
``fwd_xW``     x (batch, in) @ W (in, out)                     NumPy: ``x @ w``
``dx_dZWt``    dZ (batch, out) @ W.T                           NumPy: ``dz @ w.T``
``dw_xtdZ``    x.T @ dZ, giving (in, out)                      NumPy: ``x.T @ dz``
``dense_fwd``  relu(x @ W + b), fused     NumPy: matmul, add, maximum (three ops, ``out=``)
``dense_bwd``  relu backward: dz, dW, db, dX   NumPy: ``dy * (y > 0)``, ``x.T @ dz``,
               ``dz.sum(0)``, ``dz @ w.T``
MLP shapes are written ``b{batch} {in}x{out}``: batch 1, 32, 64, 256 with the layers 64x128,
128x10, 784x256, 256x128, 1024x1024, 1024x10 (``--quick``: batch 1, 64 with the first three).
Each row sets the same thread count for nncore (``n_threads=``) and OpenBLAS (threadpoolctl).

Timing: first wait until the previous measurement's idle worker threads stop spinning
(OpenBLAS's spin ~0.1 s, libgomp's a few ms; on 2 CPUs they would steal one from the next
measurement), two warm-up calls, grow the loop count until one loop lasts ``--min-time``
(2 ms), then the median of ``--reps`` loops gives the time per call (``time.perf_counter``).
Keep the machine otherwise idle: when other programs use the CPUs (read from /proc/stat),
the script waits (``--patience`` seconds in all) and measures the row again, else marks it "!".

How to read it
--------------
GFLOP/s counts 2*m*n*k per product; ``dense_fwd`` adds 2 per output (bias, relu) and
``dense_bwd`` is two products plus 2 per output (mask, column sum). Both sides are charged the
same count, so **ratio = NumPy time / nncore time: > 1 means nncore is faster**. The last
column is nncore's time per call, what matters for small shapes; "!" after a ratio marks a
row measured while other programs used the CPUs. The summary checks issue 3's targets on
nncore's default (best) path and prints PASS/FAIL with the worst row (and the geometric mean);
it reports, it does not assert. Every nncore result is also compared with NumPy's.
"""

import argparse
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
from functools import partial

import numpy as np
from threadpoolctl import ThreadpoolController

# Import the nncore next to this script (the in-place build of this checkout).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import nncore  # noqa: E402
from nncore import _core  # noqa: E402

SQUARE, SQUARE_QUICK = (256, 512, 1024, 2048), (256, 512)
BATCHES, BATCHES_QUICK = (1, 32, 64, 256), (1, 64)
LAYERS = ((64, 128), (128, 10), (784, 256), (256, 128), (1024, 1024), (1024, 10))
LAYERS_QUICK = ((64, 128), (128, 10), (784, 256))
OPS = ("gemm", "fwd_xW", "dx_dZWt", "dw_xtdZ", "dense_fwd", "dense_bwd")
PRODUCTS = OPS[1:4]
DTYPES = {"f32": np.float32, "f64": np.float64}
TOL = {"f32": 1e-5, "f64": 1e-12}  # relative (Frobenius) difference nncore vs NumPy
BUSY = 0.25  # CPUs used by other programs during a row above which it is measured again
CLK_TCK = os.sysconf("SC_CLK_TCK") if os.path.exists("/proc/stat") else 0


# ---- the cases: arrays + one nncore call + the NumPy equivalent ----------------------------

def _rand(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def square(n, dtype, rng):
    a, b = _rand(rng, dtype, n, n), _rand(rng, dtype, n, n)
    c1, c2 = np.empty((n, n), dtype), np.empty((n, n), dtype)
    return (lambda nt: _core.gemm(a, b, c1, n_threads=nt),
            lambda: np.matmul(a, b, out=c2), [c1], [c2])


def product(op, batch, n_in, n_out, dtype, rng):
    x, w, dz = (_rand(rng, dtype, batch, n_in), _rand(rng, dtype, n_in, n_out),
                _rand(rng, dtype, batch, n_out))
    shape = {"fwd_xW": (batch, n_out), "dx_dZWt": (batch, n_in), "dw_xtdZ": (n_in, n_out)}[op]
    o1, o2 = np.empty(shape, dtype), np.empty(shape, dtype)
    if op == "fwd_xW":
        return (lambda nt: _core.gemm(x, w, o1, n_threads=nt),
                lambda: np.matmul(x, w, out=o2), [o1], [o2])
    if op == "dx_dZWt":
        return (lambda nt: _core.gemm(dz, w, o1, trans_b=True, n_threads=nt),
                lambda: np.matmul(dz, w.T, out=o2), [o1], [o2])
    return (lambda nt: _core.gemm(x, dz, o1, trans_a=True, n_threads=nt),
            lambda: np.matmul(x.T, dz, out=o2), [o1], [o2])


def dense_fwd(batch, n_in, n_out, dtype, rng):
    x, w, b = _rand(rng, dtype, batch, n_in), _rand(rng, dtype, n_in, n_out), \
        _rand(rng, dtype, n_out)
    y1, y2 = np.empty((batch, n_out), dtype), np.empty((batch, n_out), dtype)

    def numpy_three_ops():
        np.matmul(x, w, out=y2)
        np.add(y2, b, out=y2)
        np.maximum(y2, 0, out=y2)
    return (lambda nt: _core.dense_forward(x, w, b, "relu", out=y1, n_threads=nt),
            numpy_three_ops, [y1], [y2])


def dense_bwd(batch, n_in, n_out, dtype, rng):
    x, w, b = _rand(rng, dtype, batch, n_in), _rand(rng, dtype, n_in, n_out), \
        _rand(rng, dtype, n_out)
    y = _core.dense_forward(x, w, b, "relu")  # about half the outputs are 0
    dy = _rand(rng, dtype, batch, n_out)
    g1 = [np.empty(s, dtype) for s in ((batch, n_in), (n_in, n_out), (n_out,), (batch, n_out))]
    g2 = [np.empty(a.shape, dtype) for a in g1]
    mask = np.empty(y.shape, bool)

    def numpy_backward():
        dx, dw, db, dz = g2
        np.greater(y, 0, out=mask)
        np.multiply(dy, mask, out=dz)
        np.matmul(x.T, dz, out=dw)
        np.sum(dz, axis=0, out=db)
        np.matmul(dz, w.T, out=dx)
    return (lambda nt: _core.dense_backward(dy, x, w, y, None, "relu", dx=g1[0], dw=g1[1],
                                            db=g1[2], dz=g1[3], n_threads=nt),
            numpy_backward, g1[:3], g2[:3])


def cases(quick):
    """(op, shape, flops, fields, build(dtype, rng)) for every row group, in table order."""
    out = [("gemm", f"{n}^3", 2 * n ** 3, {"n": n}, partial(square, n))
           for n in (SQUARE_QUICK if quick else SQUARE)]
    mlp = [(b, i, o) for b in (BATCHES_QUICK if quick else BATCHES)
           for i, o in (LAYERS_QUICK if quick else LAYERS)]
    for op in OPS[1:]:
        for b, i, o in mlp:
            gemm_flops = 2 * b * i * o
            flops = {"dense_fwd": gemm_flops + 2 * b * o,
                     "dense_bwd": 2 * gemm_flops + 2 * b * o}.get(op, gemm_flops)
            build = (partial(product, op, b, i, o) if op in PRODUCTS else
                     partial(dense_fwd if op == "dense_fwd" else dense_bwd, b, i, o))
            out.append((op, f"b{b} {i}x{o}", flops, {"batch": b, "n_in": i, "n_out": o}, build))
    return out


# ---- timing -------------------------------------------------------------------------------

def _loop(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - t0


class Others:
    """How many CPUs other programs have used since this object was made (Linux; else 0)."""

    @staticmethod
    def _busy():  # CPU seconds the whole machine has been busy, and this process
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK - sum(os.times()[:2])

    def __init__(self):
        self.t, self.busy = time.perf_counter(), self._busy() if CLK_TCK else 0.0

    def cpus(self):
        others = self._busy() - self.busy if CLK_TCK else 0.0
        return max(0.0, others - 0.02) / max(time.perf_counter() - self.t, 1e-3)  # 2 ticks


def wait_until_idle(args, limit=0.15):
    """Wait until other programs use < `limit` CPUs for 2 s, spending at most what is left of
    ``args.patience`` (one budget for the whole run, so a busy CI runner still finishes).
    True if the machine became idle."""
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
    """Wait until this process's other threads sleep. Idle OpenBLAS workers spin for ~0.1 s
    after their last job (libgomp's for a few ms): with 2 threads on 2 CPUs that spinning
    thread would take a CPU from the next measurement and stall it by milliseconds."""
    me, t0 = str(threading.get_native_id()), time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            running = 0
            for tid in os.listdir("/proc/self/task"):
                if tid != me:
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        running += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:  # not Linux (or a thread just ended): wait out the spinning instead
            time.sleep(0.15)
            return
        if not running:
            return
        time.sleep(0.005)


def time_per_call(fn, min_time, reps):
    """Median seconds per call over `reps` loops, each long enough to last `min_time`."""
    settle()
    fn(), fn()  # warm-up: page faults, nncore's workspaces, the thread pools
    number = 1
    while (t := _loop(fn, number)) < min_time:
        number = min(number * 10, max(number * 2, math.ceil(1.2 * number * min_time / t)))
    if t / number > 0.25:  # a second per loop or so (generic path, n = 2048): 3 are enough
        reps = min(reps, 3)
    return statistics.median(_loop(fn, number) / number for _ in range(reps))


def rel_diff(got, want):
    a, b = np.concatenate([g.ravel() for g in got]), np.concatenate([w.ravel() for w in want])
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


# ---- the run ------------------------------------------------------------------------------

def run(args, paths):
    coretype = os.environ.get("OPENBLAS_CORETYPE") or None
    blas = ThreadpoolController()
    selected = [c for c in cases(args.quick) if args.filter in f"{c[0]} {c[1]}"]
    rows, default_path = [], _core.get_cpu_path()
    for dname in args.dtypes:
        for op, shape, flops, fields, build in selected:
            nn_fn, np_fn, nn_out, np_out = build(DTYPES[dname], np.random.default_rng(0))
            for nt in args.threads:
                for attempt in range(3):  # again if another program took CPU time meanwhile
                    probe, group = Others(), []
                    with blas.limit(limits=nt, user_api="blas"):
                        t_np = time_per_call(np_fn, args.min_time, args.reps)
                        for path in paths:
                            _core.set_cpu_path(path)
                            t_nn = time_per_call(partial(nn_fn, nt), args.min_time, args.reps)
                            group.append((path, t_nn, rel_diff(nn_out, np_out)))
                    others = probe.cpus()
                    if (others < BUSY or attempt == 2 or args.patience <= 0
                            or not wait_until_idle(args)):
                        break
                for path, t_nn, err in group:
                    row = dict(op=op, shape=shape, dtype=dname, threads=nt, path=path, **fields,
                               flops=flops, nncore_s=t_nn, numpy_s=t_np,
                               nncore_gflops=flops / t_nn / 1e9, numpy_gflops=flops / t_np / 1e9,
                               ratio=t_np / t_nn, nncore_us=t_nn * 1e6, numpy_us=t_np * 1e6,
                               rel_diff=err, others_cpus=others, openblas_coretype=coretype)
                    rows.append(row)
                    notes = ("  MISMATCH vs NumPy!" if err > TOL[dname] else "") + \
                        (f"  (others used {others:.1f} CPUs)" if others >= BUSY else "")
                    print(f"  {op:9} {shape:15} {dname} {nt}t {path:7} {row['ratio']:6.2f}x "
                          f"{row['nncore_us']:10.1f} us{notes}", file=sys.stderr, flush=True)
    _core.set_cpu_path(default_path)
    return rows


def machine_info():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        numpy_blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older NumPy: threadpoolctl's view below says enough
        numpy_blas = None
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "numpy": np.__version__, "numpy_blas": numpy_blas,
            "threadpools": ThreadpoolController().info(), "nncore": nncore.config(),
            "nncore_file": nncore.__file__,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def run_coretype_child(args, coretype):
    """The avx2 rows against OpenBLAS forced to `coretype`, from a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", "--paths", "avx2",
               "--json", out, "--plot", "", "--dtype", ",".join(args.dtypes),
               "--threads", ",".join(map(str, args.threads)), "--filter", args.filter,
               "--reps", str(args.reps), "--min-time", str(args.min_time),
               "--patience", str(args.patience)]
        cmd += ["--quick"] if args.quick else []
        settle()  # this process's idle OpenBLAS threads must not spin into the child's run
        print(f"\n# OPENBLAS_CORETYPE={coretype}: re-running on the avx2 path in a subprocess",
              file=sys.stderr, flush=True)
        subprocess.run(cmd, env=dict(os.environ, OPENBLAS_CORETYPE=coretype), check=True)
        with open(out) as f:
            return json.load(f)


# ---- reporting ----------------------------------------------------------------------------

def table(rows):
    order = {p: i for i, p in enumerate(("generic", "avx2", "avx512"))}
    shapes = {c[1]: i for i, c in enumerate(cases(False))}
    rows = sorted(rows, key=lambda r: (r["dtype"], r["threads"], OPS.index(r["op"]),
                                       shapes.get(r["shape"], -1), order.get(r["path"], 9)))
    lines = ["| op | shape | dtype | threads | path | nncore GFLOP/s | numpy GFLOP/s | ratio "
             "| nncore µs/call |", "|" + "---|" * 4 + "---|" + "---:|" * 4]
    for r in rows:
        lines.append(f"| {r['op']} | {r['shape']} | {r['dtype']} | {r['threads']} | "
                     f"{r['path']} | {r['nncore_gflops']:.1f} | {r['numpy_gflops']:.1f} | "
                     f"{r['ratio']:.2f}{' !' * (r['others_cpus'] >= BUSY)} | "
                     f"{r['nncore_us']:,.1f} |")
    return "\n".join(lines)


def targets(rows, coretype_rows, best):
    """(name, threshold, rows) for each of issue 3's targets."""
    main = [r for r in rows if r["path"] == best]
    haswell = [r for r in coretype_rows
               if r["path"] == "avx2" and r["openblas_coretype"] == "Haswell"]
    def big(r):
        return r["op"] == "gemm" and r["n"] >= 1024

    def small(r):
        return r.get("batch", 999) <= 64 and (r.get("n_in"), r.get("n_out")) in LAYERS[:2]
    return [
        (f"sgemm >= 0.90x NumPy, square 1024-2048, 1 and 2 threads [{best}]", 0.90,
         [r for r in main if big(r) and r["dtype"] == "f32"]),
        (f"dgemm >= 0.85x NumPy, square 1024-2048, 1 and 2 threads [{best}]", 0.85,
         [r for r in main if big(r) and r["dtype"] == "f64"]),
        ("avx2 path >= 0.85x OpenBLAS-Haswell, square 1024-2048", 0.85,
         [r for r in haswell if big(r)]),
        (f"fused dense forward >= 1.2x NumPy's 3 ops, batch 64-256 [{best}]", 1.2,
         [r for r in main if r["op"] == "dense_fwd" and 64 <= r["batch"] <= 256]),
        (f"small shapes (batch <= 64; 64x128, 128x10; all ops) >= 2x NumPy [{best}]", 2.0,
         [r for r in main if small(r)]),
        (f"every MLP product shape (xW, dZ.Wt, xt.dZ) >= 0.8x NumPy [{best}]", 0.8,
         [r for r in main if r["op"] in PRODUCTS]),
    ]


def summary(rows, coretype_rows, best):
    lines = ["## Targets (issue 3)", ""]
    for name, need, sel in targets(rows, coretype_rows, best):
        if not sel:
            lines.append(f"- SKIP  {name}: no matching rows in this run (--quick, "
                         f"--filter, no --openblas-coretype?)")
            continue
        worst = min(sel, key=lambda r: r["ratio"])
        geo = math.exp(statistics.fmean(math.log(r["ratio"]) for r in sel))
        verdict = "PASS" if worst["ratio"] >= need else "FAIL"
        n_ok, n_busy = sum(r["ratio"] >= need for r in sel), sum(r["others_cpus"] >= BUSY
                                                                  for r in sel)
        lines.append(f"- {verdict}  {name}: worst {worst['ratio']:.2f}x ({worst['op']} "
                     f"{worst['shape']} {worst['dtype']} {worst['threads']}t), geomean "
                     f"{geo:.2f}x, {n_ok}/{len(sel)} rows meet it"
                     + (f" ({n_busy} rows marked !)" if n_busy else ""))
    return "\n".join(lines)


def plot(rows, path):
    """Per (dtype, threads): geometric-mean ratio per op and path, whiskers min..max."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"note: matplotlib is not installed, so no plot ({path})")
        return
    def label(r):
        return r["path"] + (f" vs {r['openblas_coretype']}" if r["openblas_coretype"] else "")
    dtypes = sorted({r["dtype"] for r in rows})
    threads = sorted({r["threads"] for r in rows})
    rank = {p: i for i, p in enumerate(("generic", "avx2", "avx512"))}
    series = sorted({label(r) for r in rows}, key=lambda s: (rank.get(s.split()[0], 9), s))
    ops = [op for op in OPS if any(r["op"] == op for r in rows)]
    fig, axes = plt.subplots(len(dtypes), len(threads), squeeze=False, sharey=True, figsize=(
        1.2 + 1.1 * len(ops) * len(threads), 1 + 3.6 * len(dtypes)))
    width = 0.8 / len(series)
    for ax, (dt, nt) in zip(axes.ravel(), [(d, t) for d in dtypes for t in threads]):
        for s, name in enumerate(series):
            xs, geo, lo, hi = [], [], [], []
            for i, op in enumerate(ops):
                rs = [r["ratio"] for r in rows if (r["dtype"], r["threads"], r["op"]) ==
                      (dt, nt, op) and label(r) == name]
                if rs:
                    g = math.exp(statistics.fmean(map(math.log, rs)))
                    xs.append(i + (s - (len(series) - 1) / 2) * width)
                    geo.append(g), lo.append(g - min(rs)), hi.append(max(rs) - g)
            ax.bar(xs, geo, width, yerr=[lo, hi], capsize=2, label=name)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(ops)), ops, rotation=35, ha="right")
        ax.set_title(f"{dt}, {nt} thread{'s' * (nt > 1)}")
    for ax in axes[:, 0]:
        ax.set_ylabel("NumPy time / nncore time")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("nncore vs NumPy, > 1: nncore faster (bars: geometric mean per op; "
                 "whiskers: min..max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


# ---- --dtype mixed_bfloat16: the bfloat16 products ------------------------------------------

def run_bf16(args):
    """gemm_bf16 (every bfloat16 kernel this machine runs) against nncore's float32 gemm and
    PyTorch's bfloat16 matmul (operands converted before the clock, as autocast would convert
    them once per call), float32 operands and outputs, on the square and MLP shapes."""
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    shapes = [(n, n, n, f"gemm {n}^3") for n in (SQUARE_QUICK if args.quick else SQUARE)]
    shapes += [(b, o, i, f"fwd_xW b{b} {i}x{o}")
               for b in ((64,) if args.quick else (64, 256)) for i, o in
               (LAYERS_QUICK if args.quick else LAYERS) if i * o >= 256 * 128]
    rows = []
    for nt in args.threads:
        if torch is not None:
            torch.set_num_threads(nt)
        for m, n, k, name in shapes:
            if args.filter not in name:
                continue
            a, b = _rand(rng, np.float32, m, k), _rand(rng, np.float32, k, n)
            c = np.empty((m, n), np.float32)
            row = {"op": name, "threads": nt, "gflop": 2 * m * n * k / 1e9}
            old = _core.bf16_kernel()
            for kern in _core.available_bf16_kernels():
                _core.set_bf16_kernel(kern)
                row[kern] = time_per_call(lambda: _core.gemm_bf16(a, b, c, n_threads=nt),
                                          args.min_time, args.reps)
            _core.set_bf16_kernel(old)
            row["float32"] = time_per_call(lambda: _core.gemm(a, b, c, n_threads=nt),
                                           args.min_time, args.reps)
            if torch is not None:
                ta, tb = (torch.from_numpy(v).to(torch.bfloat16) for v in (a, b))
                row["torch_bf16"] = time_per_call(lambda: torch.matmul(ta, tb),
                                                  args.min_time, args.reps)
            rows.append(row)
            print(f"  {name:24} {nt}t " + "  ".join(
                f"{k} {row['gflop'] / row[k]:7.0f}" for k in row
                if k not in ("op", "threads", "gflop")) + " GFLOP/s", file=sys.stderr,
                flush=True)
    return rows


def bf16_table(rows, peak):
    kinds = [k for k in ("amx", "avx512_bf16", "emulated", "float32", "torch_bf16")
             if any(k in r for r in rows)]
    label = {"amx": "nncore AMX", "avx512_bf16": "nncore VDPBF16PS",
             "emulated": "nncore emulated", "float32": "nncore float32",
             "torch_bf16": "PyTorch bf16"}
    head = ["op shape", "threads"] + [f"{label[k]} GFLOP/s" for k in kinds] + [
        "best nncore bf16 / float32", "best nncore bf16 / PyTorch bf16"] + (
        ["VDPBF16PS kernel, % of peak"] if peak else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in rows:
        gf = {k: r["gflop"] / r[k] for k in kinds if k in r}
        best = max(v for k, v in gf.items() if k in ("amx", "avx512_bf16", "emulated"))
        cells = [f"{gf[k]:.0f}" if k in gf else "–" for k in kinds]
        vs_t = f"{best / gf['torch_bf16']:.2f}x" if "torch_bf16" in gf else "–"
        pk = ([f"{100 * gf['avx512_bf16'] / (peak * r['threads']):.0f}%"
               if "avx512_bf16" in gf else "–"] if peak else [])
        lines.append("| " + " | ".join([r["op"], str(r["threads"])] + cells + [
            f"{best / gf['float32']:.2f}x", vs_t] + pk) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="few shapes, 3 repetitions (CI)")
    p.add_argument("--dtype", default="both",
                   help="f32, f64, both (default) or mixed_bfloat16 (the bfloat16 products)")
    p.add_argument("--bf16-peak", type=float, default=None, metavar="GFLOPS",
                   help="one core's VDPBF16PS peak (tools/fma_peak.c prints it), for the "
                        "percentage column of --dtype mixed_bfloat16")
    p.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 (default)")
    p.add_argument("--paths", default=None, help="CPU paths (default: every available one)")
    p.add_argument("--filter", default="", help="keep rows whose 'op shape' contains this")
    p.add_argument("--json", default="bench_gemm.json", help="results file ('' for none)")
    p.add_argument("--plot", default="bench_gemm.png", help="PNG plot ('' for none)")
    p.add_argument("--openblas-coretype", default=None, metavar="CORE",
                   help="also run the avx2 path against OpenBLAS forced to CORE (Haswell)")
    p.add_argument("--reps", type=int, default=None, help="timed loops per row (7; quick 3)")
    p.add_argument("--min-time", type=float, default=0.002, help="seconds per timed loop")
    p.add_argument("--patience", type=float, default=None,
                   help="seconds in all to wait for other programs to leave the CPUs "
                   "(300; quick 10)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.dtypes = ["f32", "f64"] if args.dtype == "both" else args.dtype.split(",")
    if args.dtype == "mixed_bfloat16":
        args.dtypes = []
    elif any(d not in DTYPES for d in args.dtypes):
        p.error(f"--dtype must be f32, f64 or both, got {args.dtype!r}")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.reps = args.reps or (3 if args.quick else 7)
    if args.patience is None:
        args.patience = 10.0 if args.quick else 300.0
    return args


def main(argv=None):
    args = parse_args(argv)
    available = _core.available_cpu_paths()
    paths = args.paths.split(",") if args.paths else available
    for p in [p for p in paths if p not in available]:
        print(f"note: CPU path {p!r} is not available here (have {available}); skipped",
              file=sys.stderr)
    paths = [p for p in paths if p in available]
    info = machine_info()
    blas = [(t["prefix"], t.get("architecture"), t["version"])
            for t in info["threadpools"] if t["user_api"] == "blas"]
    print(f"# nncore {info['nncore']['version']} vs NumPy {info['numpy']} on {info['cpu']} "
          f"({info['cpu_count']} CPUs), BLAS {blas}, paths {paths}", file=sys.stderr, flush=True)
    if not wait_until_idle(args):
        print("warning: other programs are using the CPUs; the timings will be noisy",
              file=sys.stderr)
    t0 = time.perf_counter()
    if args.dtype == "mixed_bfloat16":
        rows = run_bf16(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": info, "args": vars(args), "rows": rows,
                           "seconds": time.perf_counter() - t0}, f, indent=1)
        print(f"## bfloat16 products (gemm_bf16), float32 operands, {info['cpu']} "
              f"(bf16 kernel in use: {_core.bf16_kernel()})\n")
        print(bf16_table(rows, args.bf16_peak))
        return
    rows, child = run(args, paths), None
    if args.openblas_coretype and not args.child:
        if "avx2" in available:
            child = run_coretype_child(args, args.openblas_coretype)
        else:
            print("note: no avx2 path on this machine; --openblas-coretype skipped")
    child_rows = child["rows"] if child else []
    result = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "child"},
              "seconds": time.perf_counter() - t0, "rows": rows + child_rows,
              "coretype_machine": child["machine"] if child else None}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.child:
        return
    print(f"## nncore vs NumPy {info['numpy']} ({info['cpu']}), ratio > 1: nncore faster\n")
    print(table(rows))
    if any(r["others_cpus"] >= BUSY for r in rows + child_rows):
        print(f"\n! other programs used >= {BUSY} CPUs while this row was measured, even "
              f"after waiting: distrust it")
    if child:
        arch = [t.get("architecture") for t in child["machine"]["threadpools"]
                if t["user_api"] == "blas"]
        print(f"\n## avx2 path vs OpenBLAS with OPENBLAS_CORETYPE={args.openblas_coretype} "
              f"(OpenBLAS reports {arch})\n")
        print(table(child_rows))
    best = _core.best_cpu_path() if _core.best_cpu_path() in paths else paths[-1]
    print("\n" + summary(rows, child_rows, best))
    print(f"\n{len(rows) + len(child_rows)} rows in {result['seconds']:.0f} s"
          + (f"; written to {args.json}" if args.json else ""))
    if args.plot:
        plot(rows + child_rows, args.plot)


if __name__ == "__main__":
    main()
