"""A/B-compare two builds of nncore on the training benchmark, alternated round by round.

Usage
-----
From the repository, with the development environment active::

    python tools/ab_bench.py --a main --b worktree            # main against your edits
    python tools/ab_bench.py --a HEAD~1 --b HEAD --rounds 8 --rows seed,digits --kinds sgd
    python tools/ab_bench.py --a HEAD --b HEAD --threads 1 --json ab.json   # the noise floor

``--a`` and ``--b`` each take a git revision or ``worktree``: the files of this checkout as
they are now, committed or not (tracked and untracked files that git does not ignore, copied).
Each build gets a temporary folder (a detached ``git worktree`` of the revision, or the copy)
and is built there with ``python setup.py build_ext --inplace`` by this Python, so with this
environment's compiler, Cython and NumPy. Nothing in the checkout is built, switched or
changed; the folders and worktrees are removed at the end (``--keep`` keeps them).

Each round runs this checkout's ``benchmarks/bench_training.py --worker nncore`` once per
build and thread setting, each in a fresh process with PYTHONPATH at that build: the same
rows, data and timing code for both builds, only nncore differs (each child's
``nncore.__file__`` is checked). The order alternates A B, B A, A B, ... so that a machine
that slows down during a round slows both builds alike over a pair of rounds.

Every other argument goes to bench_training.py: ``--rows seed,digits`` (networks whose
"name/batch" contains a word), ``--kinds sgd,adam,predict``, ``--threads default,1`` (the
default), ``--min-time``, ``--reps``, ``--quick``, ``--shuffle``, ``--patience`` (default 0
here: the alternation, not waiting, is what keeps other programs' load out of the ratios).

Output: per row and thread setting, the median over the rounds for A and for B (samples/s;
predict rows: µs for one sample and samples/s at batch 256), then B/A, the median of the
per-round ratios (B's speed over A's, so > 1 means B is faster, for latencies too), and the
lowest and highest per-round ratio: a difference inside that range is noise. ``--json PATH``
writes every round's rows. Run HEAD against HEAD first to see how much noise the machine
has; keep it otherwise idle.
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks", "bench_training.py")


def git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


def load_bench():
    """bench_training.py as a module, to check the arguments it will be given."""
    spec = importlib.util.spec_from_file_location("bench_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Build:
    """One side of the comparison: a folder holding nncore's sources, built in place."""

    def __init__(self, label, rev, parent):
        self.label, self.rev = label, rev
        self.path = os.path.join(parent, label)
        self.worktree = rev != "worktree"
        if self.worktree:
            try:
                self.commit = git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
            except subprocess.CalledProcessError:
                sys.exit(f"--{label.lower()} {rev}: not a git revision of {ROOT} (nor "
                         f"'worktree')")
            git("worktree", "add", "--detach", "--quiet", self.path, self.commit)
            self.describe = f"{rev} ({self.commit[:10]})"
        else:
            self.commit = git("rev-parse", "HEAD")
            dirty = git("status", "--porcelain", "--untracked-files=normal")
            self.describe = (f"worktree ({self.commit[:10]}"
                             f"{' + uncommitted changes' if dirty else ', clean'})")
            for name in git("ls-files", "-z", "--cached", "--others",
                            "--exclude-standard").split("\0"):
                src = os.path.join(ROOT, name)
                # a file deleted but not yet staged is listed and absent; a submodule is a dir
                if name and os.path.lexists(src) and not os.path.isdir(src):
                    dst = os.path.join(self.path, name)
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(src, dst, follow_symlinks=False)

    def build(self):
        log = os.path.join(self.path, "ab_build.log")
        t0 = time.perf_counter()
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                                  cwd=self.path, stdout=f, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            with open(log) as f:
                tail = f.read()[-3000:]
            sys.exit(f"building {self.label} = {self.describe} in {self.path} failed "
                     f"(exit code {proc.returncode}); the end of {log}:\n{tail}")
        return time.perf_counter() - t0

    def remove(self):
        if self.worktree:
            subprocess.run(["git", "worktree", "remove", "--force", self.path], cwd=ROOT,
                           check=False, capture_output=True)
        shutil.rmtree(self.path, ignore_errors=True)


def measure(build, threads, bench_args, tmp):
    """One fresh process of bench_training.py's nncore worker against `build`: its rows."""
    out = os.path.join(tmp, "out.json")
    if os.path.exists(out):
        os.remove(out)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (build.path, os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, BENCH, "--worker", "nncore", "--threads", threads, "--out", out,
           *bench_args]
    proc = subprocess.run(cmd, cwd=build.path, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or not os.path.exists(out):
        sys.exit(f"the benchmark failed for {build.label} ({threads} threads), exit code "
                 f"{proc.returncode}:\n{' '.join(cmd)}\n{proc.stderr[-3000:]}")
    with open(out) as f:
        res = json.load(f)
    if "skipped" in res:
        sys.exit(f"the benchmark for {build.label} could not import nncore: {res['skipped']}")
    where = os.path.realpath(res.get("file", "?"))
    if not where.startswith(os.path.realpath(build.path) + os.sep):
        sys.exit(f"the benchmark for {build.label} imported nncore from {where or '?'}, not "
                 f"from {build.path}: check PYTHONPATH and bench_training.py's sys.path rule")
    return res["rows"]


def metrics(row):
    """(name, unit, value, higher is better) for each figure of a benchmark row."""
    if row["kind"] == "train":
        yield f"{row['optimizer']} {row['config']}", "samples/s", row["samples_per_s"], True
    elif row["kind"] == "predict":
        yield f"predict {row['config']}, 1 sample", "µs", row["latency_us"], False
        yield (f"predict {row['config']}, batch", "samples/s", row["batch_samples_per_s"],
               True)


def fmt(v, unit):
    return f"{v:.3g}" if unit == "µs" and v < 100 else f"{v:,.0f}"


def summarise(rounds):
    """Per (row, threads): the medians of A and B and the per-round ratios (B's speed / A's)."""
    table = {}
    for rnd in rounds:
        for row in rnd["rows"]:
            for name, unit, value, higher in metrics(row):
                k = (name, rnd["threads"])
                e = table.setdefault(k, {"row": name, "threads": rnd["threads"], "unit": unit,
                                         "higher_is_better": higher, "A": {}, "B": {}})
                e[rnd["build"]][rnd["round"]] = value
    out = []
    for e in table.values():
        both = sorted(set(e["A"]) & set(e["B"]))
        ratios = [(e["B"][r] / e["A"][r]) if e["higher_is_better"] else (e["A"][r] / e["B"][r])
                  for r in both]
        out.append({**{k: e[k] for k in ("row", "threads", "unit", "higher_is_better")},
                    "A": [e["A"][r] for r in sorted(e["A"])],
                    "B": [e["B"][r] for r in sorted(e["B"])],
                    "A_median": statistics.median(e["A"].values()),
                    "B_median": statistics.median(e["B"].values()),
                    "ratios": ratios, "ratio": statistics.median(ratios) if ratios else None,
                    "ratio_min": min(ratios, default=None),
                    "ratio_max": max(ratios, default=None),
                    "b_faster": sum(r > 1 for r in ratios)})
    return out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or "unknown CPU"


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Other arguments go to benchmarks/bench_training.py (--rows, --kinds, "
               "--threads, --min-time, --reps, --quick, --shuffle, --patience).")
    p.add_argument("--a", required=True, help="git revision, or 'worktree' (this checkout's "
                                              "files as they are now)")
    p.add_argument("--b", required=True, help="the same; B/A > 1 means B is faster")
    p.add_argument("--rounds", type=int, default=6,
                   help="rounds; each runs both builds at every thread setting (default 6)")
    p.add_argument("--threads", default="default,1",
                   help="'default', '1' or 'default,1' (default), as in bench_training.py")
    p.add_argument("--json", default="", help="write the rounds and the summary here")
    p.add_argument("--keep", action="store_true", help="keep the builds' folders")
    args, bench_args = p.parse_known_args(argv)
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    if not any(a == "--patience" or a.startswith("--patience=") for a in bench_args):
        bench_args += ["--patience", "0"]
    bench = load_bench()
    checked = bench.parse_args(bench_args + ["--threads", args.threads])  # exits if invalid
    if checked.worker or checked.agreement or checked.out:
        p.error("--worker, --agreement and --out are set by this script")
    threads = checked.threads

    tmp = tempfile.mkdtemp(prefix="nncore-ab-")
    builds = []
    try:
        for label, rev in (("A", args.a), ("B", args.b)):
            builds.append(Build(label, rev, tmp))
        for build in builds:
            print(f"# {build.label} = {build.describe}: building in {build.path}",
                  file=sys.stderr, flush=True)
            print(f"  built in {build.build():.0f} s", file=sys.stderr, flush=True)
        a, b = builds
        print(f"# {args.rounds} rounds x {len(threads)} thread setting(s) x 2 builds; "
              f"bench_training.py {' '.join(bench_args)}", file=sys.stderr, flush=True)
        rounds, t_start = [], time.perf_counter()
        for rnd in range(args.rounds):
            for th in threads:
                for build in ((a, b) if rnd % 2 == 0 else (b, a)):
                    t0 = time.perf_counter()
                    rows = measure(build, th, bench_args, tmp)
                    rounds.append({"round": rnd, "build": build.label, "threads": th,
                                   "rows": rows})
                    speeds = ", ".join(f"{name} {fmt(v, unit)} {unit}" for r in rows
                                       for name, unit, v, _ in metrics(r))
                    print(f"  round {rnd + 1}/{args.rounds} {build.label} {th:>7} threads "
                          f"({time.perf_counter() - t0:.0f} s): {speeds}", file=sys.stderr,
                          flush=True)
        elapsed = time.perf_counter() - t_start
    finally:
        if args.keep:
            print(f"# kept {tmp}; remove the worktrees with git worktree remove --force",
                  file=sys.stderr)
        else:
            for build in builds:
                build.remove()
            shutil.rmtree(tmp, ignore_errors=True)

    summary = summarise(rounds)
    others = [r["others_cpus"] for rnd in rounds for r in rnd["rows"] if "others_cpus" in r]
    print(f"## A/B: A = {a.describe}, B = {b.describe}\n")
    print(f"{cpu_model()}, {os.cpu_count()} CPUs; {args.rounds} rounds, order A B, B A, ...; "
          f"`bench_training.py {' '.join(bench_args)}`; {elapsed:.0f} s. A, B: medians of the "
          f"rounds; B/A: B's speed over A's in each round, median (> 1: B faster), lowest and "
          f"highest.\n")
    print("| row | threads | unit | A | B | B/A | lowest-highest | B faster |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for s in summary:
        u = s["unit"] + ("" if s["higher_is_better"] else " (lower is better)")
        ratio = f"{s['ratio']:.3f}" if s["ratio"] is not None else "–"
        spread = (f"{s['ratio_min']:.3f}-{s['ratio_max']:.3f}" if s["ratios"] else "–")
        print(f"| {s['row']} | {s['threads']} | {u} | {fmt(s['A_median'], s['unit'])} | "
              f"{fmt(s['B_median'], s['unit'])} | {ratio} | {spread} | "
              f"{s['b_faster']}/{len(s['ratios'])} |")
    if others:
        print(f"\nOther programs used {statistics.mean(others):.2f} CPUs on average while a "
              f"row was timed (most {max(others):.2f}); above 0.25 the figures are noisy.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"a": {"rev": args.a, "commit": a.commit, "describe": a.describe},
                       "b": {"rev": args.b, "commit": b.commit, "describe": b.describe},
                       "cpu": cpu_model(), "cpu_count": os.cpu_count(),
                       "rounds_run": args.rounds, "threads": threads, "bench_args": bench_args,
                       "seconds": elapsed, "summary": summary, "rounds": rounds}, f, indent=1)
        print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
