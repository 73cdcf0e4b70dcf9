"""Benchmark nncore.sklearn.NNClassifier against scikit-learn's MLPClassifier.

Same network, same training budget, same data: for scikit-learn's bundled data sets
(``digits``, ``breast_cancer``, ``wine``; no download), each seed makes a stratified 75/25
split, fits a ``StandardScaler`` on the training part (for both estimators), then trains

* ``MLPClassifier(hidden_layer_sizes=(100,), activation="relu", solver="adam",
  learning_rate_init=1e-3, batch_size=64, alpha=0)`` and
* ``NNClassifier(hidden_layer_sizes=(100,), activation="relu", optimizer="adam",
  learning_rate=1e-3, batch_size=64, weight_decay=0)`` in float64 (MLP's precision) and in
  float32,

each for exactly ``--epochs`` epochs (the tolerance-based stop is switched off in both with
``n_iter_no_change = epochs``, so both do the same number of updates), and reports the test
accuracy (mean +- std over the seeds) and the fit time (median over the seeds). Both sides
use the same number of threads (``--threads``, default 1: nncore's ``n_threads`` and
OpenBLAS's through threadpoolctl).

Usage
-----
From the repository root, after ``python setup.py build_ext --inplace -q``::

    python benchmarks/bench_sklearn.py --quick      # smoke run (CI): 1 seed, 20 epochs
    python benchmarks/bench_sklearn.py              # 5 seeds, 200 epochs
    python benchmarks/bench_sklearn.py --threads 2 --json bench_sklearn.json

**speed-up = MLP fit time / nncore fit time: > 1 means nncore is faster.** The accuracy
columns should agree within their spread: the two implementations use different weight
initialisations and shuffling, not a different model. The script reports; it asserts
nothing. Without scikit-learn it prints a message and exits 0.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings

DATASETS = ("digits", "breast_cancer", "wine")

# Prefer this checkout when it is built in place; otherwise the installed nncore.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if any(f.startswith("_core.") and f.endswith((".so", ".pyd"))
       for f in os.listdir(os.path.join(_ROOT, "nncore"))):
    sys.path.insert(0, _ROOT)


def _load(name):
    from sklearn import datasets
    return getattr(datasets, f"load_{name}")(return_X_y=True)


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _fit_time(est, X, y):
    t0 = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t0


def run(args):
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from nncore.sklearn import NNClassifier

    common = dict(hidden_layer_sizes=(100,), activation="relu", batch_size=args.batch_size)

    def estimators(seed):
        yield "MLPClassifier", MLPClassifier(
            solver="adam", learning_rate_init=1e-3, alpha=0.0, max_iter=args.epochs,
            n_iter_no_change=args.epochs, random_state=seed, **common)
        for dtype in ("float64", "float32"):
            yield f"nncore {dtype}", NNClassifier(
                optimizer="adam", learning_rate=1e-3, weight_decay=0.0,
                max_epochs=args.epochs, n_iter_no_change=args.epochs, dtype=dtype,
                n_threads=args.threads, random_state=seed, **common)

    rows = []
    for name in args.datasets:
        X, y = _load(name)
        res, n_train = {}, 0
        for seed in range(args.seeds):
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y,
                                                  random_state=seed)
            n_train = len(ytr)
            scaler = StandardScaler().fit(Xtr)
            Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
            for label, est in estimators(seed):
                with warnings.catch_warnings(), threadpool_limits(args.threads):
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    t = _fit_time(est, Xtr, ytr)
                r = res.setdefault(label, {"acc": [], "time": [], "epochs": []})
                r["acc"].append(float(est.score(Xte, yte)))
                r["time"].append(t)
                r["epochs"].append(int(est.n_iter_))
        base = statistics.median(res["MLPClassifier"]["time"])
        for label, r in res.items():
            t = statistics.median(r["time"])
            rows.append({
                "dataset": name, "n_train": n_train,
                "n_features": int(X.shape[1]), "n_classes": int(len(np.unique(y))),
                "estimator": label, "epochs": int(statistics.median(r["epochs"])),
                "accuracy_mean": statistics.fmean(r["acc"]),
                "accuracy_std": statistics.pstdev(r["acc"]),
                "fit_time_s": t, "speedup_vs_mlp": base / t,
                "accuracies": r["acc"], "fit_times_s": r["time"]})
    return rows


def table(rows):
    out = ["| dataset | estimator | epochs | test accuracy | fit time (s) | speed-up vs MLP |",
           "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['dataset']} ({r['n_train']}x{r['n_features']}, "
                   f"{r['n_classes']} classes) | {r['estimator']} | {r['epochs']} | "
                   f"{r['accuracy_mean']:.4f} +- {r['accuracy_std']:.4f} | "
                   f"{r['fit_time_s']:.3f} | {r['speedup_vs_mlp']:.2f}x |")
    return "\n".join(out)


def notes(rows):
    """Plain statements of where nncore is slower or less accurate than MLP."""
    lines = []
    for r in rows:
        if r["estimator"] == "MLPClassifier":
            mlp = r
            continue
        if r["speedup_vs_mlp"] < 1:
            lines.append(f"- {r['dataset']}: {r['estimator']} is SLOWER than MLPClassifier "
                         f"({r['speedup_vs_mlp']:.2f}x).")
        gap = mlp["accuracy_mean"] - r["accuracy_mean"]
        if gap > max(mlp["accuracy_std"], r["accuracy_std"], 0.01):
            lines.append(f"- {r['dataset']}: {r['estimator']} accuracy is lower than "
                         f"MLPClassifier's by {gap:.4f} (more than the spread).")
    return "\n".join(lines) or "- nncore is faster than MLPClassifier on every row, with " \
                               "accuracy within the spread."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 20 epochs (CI smoke run)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds (default 5; quick 1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default 200; quick 20)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets", default=",".join(DATASETS),
                    help="comma-separated subset of " + ",".join(DATASETS))
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the rows here")
    args = ap.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else 5)
    args.epochs = args.epochs or (20 if args.quick else 200)
    args.datasets = [d for d in args.datasets.split(",") if d]
    bad = [d for d in args.datasets if d not in DATASETS]
    if bad:
        ap.error(f"--datasets: unknown {bad}; choose from {','.join(DATASETS)}")
    try:
        import sklearn
    except ImportError:
        print("bench_sklearn: scikit-learn is not installed; skipping (pip install "
              "scikit-learn)")
        return 0
    import nncore

    rows = run(args)
    print(f"nncore {nncore.__version__} vs scikit-learn {sklearn.__version__}: hidden (100,) "
          f"relu, adam lr 1e-3, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.seeds} seed(s), {args.threads} thread(s); {_cpu()}, {os.cpu_count()} CPUs\n")
    print(table(rows))
    print()
    print(notes(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": {k: v for k, v in vars(args).items()},
                       "nncore": nncore.__version__, "sklearn": sklearn.__version__,
                       "nncore_config": nncore.config(), "rows": rows}, f, indent=1,
                      default=str)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
