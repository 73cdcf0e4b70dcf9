"""Data-parallel training on MPI: 2 ranks give the single-process weights and History; a
failure on one rank ends the job; a launcher without MPI support is reported; ranks that
disagree (arguments, data, callbacks, an error in a collective call) raise together, or,
when one never comes, abort after a timeout; shared windows are freed; a checkpoint killed
mid-save is cleaned up by the next save.

The MPI tests run ``mpiexec -n 2 python -m mpi4py tests/distributed_worker.py ...`` (shared
memory only, no network). They are skipped, with the reason, when mpi4py or mpiexec is
missing - unless NNCORE_REQUIRE_MPI=1 (CI), which turns the skip into a failure.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import nncore as nn
from nncore import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "distributed_worker.py")
sys.path.insert(0, HERE)
import distributed_worker as worker  # noqa: E402

TOL = {"float32": 1e-6, "float64": 1e-12}


def _mpiexec():
    """The mpiexec next to this Python (the MPICH wheel's), or one on PATH, or a skip."""
    why = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        why = "mpi4py is not installed (pip install 'nncore[mpi]')"
    exe = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(exe):
        exe = shutil.which("mpiexec")
    if why is None and exe is None:
        why = "no mpiexec (pip install 'nncore[mpi]' installs MPICH's)"
    if why is not None:
        if os.environ.get("NNCORE_REQUIRE_MPI", "") not in ("", "0"):
            pytest.fail(f"NNCORE_REQUIRE_MPI is set but {why}")
        pytest.skip(why)
    return exe


def _env():
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE)] + [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # Open MPI's mpiexec refuses root without these; MPICH ignores them.
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def _run(args, timeout=60, env=None):
    """Run mpiexec (or a process); past the timeout, kill it with every rank it started
    (they are in its session) and fail."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env() if env is None else env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(args[-3:])} still ran after {timeout} s (a rank waits "
                    f"forever?)\n{out}{err}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _job(tmp_path, mode, n=2, timeout=60, env=None):
    """Run the worker's mode on n ranks: the JSON each rank wrote."""
    r = _run([_mpiexec(), "-n", str(n), sys.executable, "-m", "mpi4py", WORKER, mode,
              str(tmp_path)], timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = []
    for rank in range(n):
        with open(tmp_path / f"rank{rank}.json") as f:
            ranks.append(json.load(f))
    return ranks


def _ranks(tmp_path_factory, n, mode):
    exe = _mpiexec()
    out = tmp_path_factory.mktemp("mpi")
    r = _run([exe, "-n", str(n), sys.executable, "-m", "mpi4py", WORKER, mode, str(out)],
             timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = []
    for rank in range(n):
        with open(out / f"rank{rank}.json") as f:
            meta = json.load(f)
        ranks.append((dict(np.load(out / f"rank{rank}.npz")), meta))
    return ranks


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return _ranks(tmp_path_factory, 2, "train")


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """4 ranks seen as 2 nodes of 2 ranks (the node split is replaced in the worker)."""
    return _ranks(tmp_path_factory, 4, "nodes")


def _check_ranks(ranks, case):
    dtype, exchange = worker.CASES[case][0], worker.CASES[case][6]
    tol = TOL[dtype]
    ref_params, ref_hist, _ = worker.train(case)
    params0, meta0 = ranks[0]
    for params, meta in ranks:
        # The exchange asked for (auto: shared, as the ranks share this machine)...
        assert meta["exchange"][case] == ("allreduce" if exchange == "allreduce"
                                          else "shared")
        # ... every rank ends with the same weights and History...
        np.testing.assert_array_equal(params[case], params0[case])
        assert meta["history"][case] == meta0["history"][case]
    # ... which are the single-process ones, to rounding (the sums are added in another
    # order), although the other ranks built their models from another seed.
    p = params0[case]
    assert p.dtype == np.dtype(dtype)
    rel = np.max(np.abs(p - ref_params)) / np.max(np.abs(ref_params))
    assert rel <= tol, f"{case}: weights differ by {rel:.2e} relative"
    hist = meta0["history"][case]
    assert set(hist) == set(ref_hist)
    for key, values in ref_hist.items():
        np.testing.assert_allclose(hist[key], values, rtol=10 * tol, err_msg=key)


@pytest.mark.parametrize("case", list(worker.CASES))
def test_two_ranks_match_one_process(two_ranks, case):
    _check_ranks(two_ranks, case)


@pytest.mark.parametrize("case", list(worker.CASES))
def test_two_nodes_of_two_ranks_match_one_process(two_nodes, case):
    """The shared exchange across nodes: each range summed within the node, then
    Allreduce'd between the nodes' ranks that own it."""
    _check_ranks(two_nodes, case)


def test_the_python_loop_is_the_plans_twin_across_ranks(two_ranks, tmp_path_factory):
    """Data-parallel training through the engine's Python loop (the reference, and the
    engine of models with layers of the user's own) gives the compiled plan's bits."""
    twin = _ranks(tmp_path_factory, 2, "twin")
    for (params, meta), (ref, ref_meta) in zip(twin, two_ranks):
        for case in worker.CASES:
            np.testing.assert_array_equal(params[case], ref[case], err_msg=case)
            for key, values in ref_meta["history"][case].items():
                got = meta["history"][case][key]
                if key != "loss":  # the metrics' sums: NumPy's order against C's
                    np.testing.assert_allclose(got, values, rtol=1e-6, err_msg=key)
                else:
                    assert got == values, (case, key)


def test_batch_norm_statistics_are_per_rank_and_rank_0s_are_kept(tmp_path):
    """BatchNorm across ranks: each share normalised by its own statistics (so not the
    one-process result), the ranks still alike after every epoch: the same weights, rank 0's
    running statistics, the same validation History; a share of one row is refused."""
    ranks = _job(tmp_path, "batchnorm")
    for r in ranks[1:]:
        assert r["params"] == ranks[0]["params"] and r["state"] == ranks[0]["state"]
        assert r["history"] == ranks[0]["history"]
    assert all("at least 2 rows per rank" in r["refused"] for r in ranks)
    # (and gradient clipping needs the whole summed gradient: not the shared exchange)
    assert all("gradient clipping" in r["refused_clip"] for r in ranks)


def test_threads_per_rank_share_the_cores(two_ranks):
    expect = max(1, (os.cpu_count() or 1) // 2)  # both ranks on this machine
    assert [meta["threads"] for _, meta in two_ranks] == [expect, expect]


def test_failure_on_one_rank_aborts_the_job():
    exe = _mpiexec()
    r = _run([exe, "-n", "2", sys.executable, "-m", "mpi4py", WORKER, "fail", "-"],
             timeout=60)  # without the abort, rank 0 waits for rank 1 until the timeout
    assert r.returncode != 0
    assert "deliberate failure on rank 1" in r.stderr


def test_launcher_without_mpi_is_reported():
    _mpiexec()
    env = _env()
    env["OMPI_COMM_WORLD_SIZE"] = "2"  # Open MPI's launcher said 2; MPICH's MPI sees 1
    r = subprocess.run([sys.executable, WORKER, "size1", "-"], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode != 0
    assert "LauncherMismatchError" in r.stderr
    assert "OMPI_COMM_WORLD_SIZE=2" in r.stderr


def _env_without_launcher():
    """The tests' environment as a script started without mpiexec sees it."""
    env = _env()
    for var in distributed._LAUNCHER_SIZE_VARS:
        env.pop(var, None)
    return env


def test_one_process_is_a_communicator_of_one():
    """Without a launcher, distributed=True trains alone and gives the plain fit's bits."""
    _mpiexec()
    code = ("import sys; sys.path.insert(0, %r); import numpy as np, distributed_worker as w;"
            "import nncore as nn;"
            "m, X, y, kw, _ = w.build('f64_ce_sgd'); m.fit(X, y, distributed=True, **kw);"
            "p, _, _ = w.train('f64_ce_sgd'); print(np.max(np.abs(m.params - p)))" % HERE)
    env = _env_without_launcher()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.split()[-1]) == 0.0


def test_bad_distributed_argument():
    model, X, y, kw, _ = worker.build("f64_ce_sgd")
    before = model.params.copy()
    with pytest.raises(TypeError, match="distributed must be"):
        try:
            model.fit(X, y, distributed="yes", **kw)
        except ImportError:
            pytest.skip("mpi4py is not installed")
    np.testing.assert_array_equal(model.params, before)


def test_model_checkpoint_runs_on_rank_0_only():
    assert nn.ModelCheckpoint("x.safetensors")._root_only
    assert not nn.EarlyStopping()._root_only


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    exe = _mpiexec()
    out = tmp_path_factory.mktemp("mpi")
    r = _run([exe, "-n", "2", sys.executable, "-m", "mpi4py", WORKER, "checks", str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    ranks = []
    for rank in range(2):
        with open(out / f"rank{rank}.json") as f:
            ranks.append(json.load(f))
    return ranks


def test_nan_guard_with_shared_parameters(checks):
    """on_nan="raise": every rank raises at the batch one process raises at, with the
    weights of the last finite batch (each rank restored its own range of the shared
    parameters)."""
    ref_params, ref_where = worker.diverge()
    assert ref_where is not None
    for d in checks:
        assert d["where"] == ref_where
        p = np.asarray(d["params"], np.float32)
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p, ref_params, rtol=1e-5, atol=1e-5)


def test_exchange_errors(checks):
    for d in checks:
        unknown, shared, unchanged, epochs, no_window, warned, fallback = d["errors"]
        assert "exchange must be one of" in unknown and "'ring'" in unknown
        assert "exchange='shared' is not possible" in shared and "optimizer" in shared
        assert unchanged  # the refused fit left the weights alone
        assert epochs == 3  # auto falls back to Allreduce for that optimizer
        # No shared window on one rank: "shared" fails on every rank, "auto" warns and sums
        # with Allreduce.
        assert "could not be allocated on rank 1" in no_window
        assert len(warned) == 1 and fallback == "allreduce"


def test_nodes_with_different_rank_counts_use_allreduce(tmp_path):
    """3 ranks as nodes of 2 and 1: "auto" sums with Allreduce (same result), "shared" is
    refused on every rank."""
    exe = _mpiexec()
    r = _run([exe, "-n", "3", sys.executable, "-m", "mpi4py", WORKER, "uneven", str(tmp_path)],
             timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    ref_params, _, _ = worker.train("f32_ce_sgd")
    for rank in range(3):
        with open(tmp_path / f"rank{rank}.json") as f:
            d = json.load(f)
        assert d["exchange"] == "allreduce"
        assert "different numbers of ranks" in d["refused"]
        p = np.asarray(d["params"], np.float32)
        rel = np.max(np.abs(p - ref_params)) / np.max(np.abs(ref_params))
        assert rel <= TOL["float32"]


# ---- issue 30: what users of the distributed fit ran into --------------------------------
def test_a_checkpoint_killed_mid_save_is_cleaned_up_at_the_next_save(tmp_path):
    """Rank 0 killed while writing a checkpoint leaves a temporary file; the next save of
    that path removes it, and the file loads."""
    r = _run([_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", WORKER, "killsave",
              str(tmp_path)])
    assert r.returncode != 0
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 2 and left[1] == "model.safetensors", left  # and a temporary file
    model = worker.build("f64_ce_sgd")[0]
    model.save(tmp_path / "model.safetensors")
    assert os.listdir(tmp_path) == ["model.safetensors"]
    np.testing.assert_array_equal(nn.load_model(tmp_path / "model.safetensors").params,
                                  model.params)


@pytest.fixture(scope="module")
def behaviour(tmp_path_factory):
    """One job on 2 ranks: the results and errors a user sees (distributed_worker.main)."""
    return _job(tmp_path_factory.mktemp("mpi"), "behaviour")


def test_dataparallel_arguments_that_differ_fail_on_every_rank(tmp_path):
    """exchange, overlap and bucket_bytes are compared as the other settings are (they used
    to deadlock the job)."""
    for d in _job(tmp_path, "arguments"):
        assert "ValueError: distributed fit: rank 1 differs from rank 0 in exchange " \
               "('shared' on rank 0, 'allreduce' on rank 1)" in d["exchange"]
        assert "overlap (True on rank 0, False on rank 1)" in d["overlap"]
        assert "bucket_bytes (1 on rank 0, 100001 on rank 1)" in d["bucket_bytes"]


def test_collective_calls_agree_on_an_error_on_one_rank(tmp_path):
    """save to a missing folder (rank 0 saves), evaluate with a bad batch_size on rank 1,
    DataParallel() with a bad exchange on rank 1: every rank raises (they used to leave the
    others waiting forever); the job then goes on and saves a loadable model."""
    ranks = _job(tmp_path, "collective")
    assert ranks[0]["save"].startswith("FileNotFoundError")
    assert ranks[1]["save"].startswith("RuntimeError: DataParallel.save: rank 0 failed to "
                                       "save the model (FileNotFoundError")
    assert ranks[0]["evaluate"].startswith("RuntimeError: DataParallel.evaluate: rank 1 "
                                           "failed on its arguments (ValueError: batch_size")
    assert ranks[1]["evaluate"].startswith("ValueError: batch_size must be at least 1")
    assert ranks[0]["create"].startswith("RuntimeError: DataParallel: rank 1 failed on its "
                                         "arguments (ValueError: exchange must be one of")
    assert ranks[1]["create"].startswith("ValueError: exchange must be one of")
    model = nn.load_model(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(model.params, np.asarray(ranks[0]["params"]))
    assert [d["timeout"] for d in ranks] == [30.0, 30.0]


def test_evaluate_checks_its_arguments_and_the_data(behaviour):
    """batch_size as model.evaluate checks it; data that differ between ranks are refused
    on every rank; the result is the single-process one."""
    model, X, y, _, _ = worker.build("f64_ce_sgd")
    ref = model.evaluate(X, y)
    for d in behaviour:
        e = d["evaluate"]
        zero, negative, fraction = e["batch_size"]
        assert zero.startswith("ValueError: batch_size must be at least 1, got 0")
        assert negative.startswith("ValueError: batch_size must be at least 1, got -5")
        assert fraction.startswith("TypeError: batch_size must be an integer, got 2.7")
        assert e["rows"].startswith("ValueError: DataParallel.evaluate: rank 1 differs from "
                                    "rank 0 in X, y;")
        assert e["contents"].startswith("ValueError: DataParallel.evaluate: rank 1 differs "
                                        "from rank 0 in X;")
        assert set(e["logs"]) == set(ref)
        for k in ref:
            np.testing.assert_allclose(e["logs"][k], ref[k], rtol=1e-12, err_msg=k)


def test_a_rank_that_never_calls_fit_times_out(tmp_path):
    """Rank 1 ends without calling fit: with NNCORE_DISTRIBUTED_TIMEOUT, rank 0 gives up
    after that long and aborts the job with a message (it used to wait forever)."""
    env = _env()
    env["NNCORE_DISTRIBUTED_TIMEOUT"] = "1"
    r = _run([_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", WORKER, "absent",
              str(tmp_path)], env=env)
    assert r.returncode != 0
    assert "rank 0 of 2 waited 1 s (NNCORE_DISTRIBUTED_TIMEOUT=1)" in r.stderr, r.stderr
    assert "did not all make that call" in r.stderr


def test_timeout_argument_is_checked(monkeypatch):
    """Bad timeouts raise, naming the fix (valid ones: the test above, the collective
    job)."""
    _mpiexec()
    from nncore.distributed import DataParallel
    model = worker.build("f64_ce_sgd")[0]
    for bad in (0, -1.0, "soon", float("nan")):
        with pytest.raises(ValueError, match=r"timeout must be a number of seconds above 0"):
            DataParallel(model, timeout=bad)
    monkeypatch.setenv("NNCORE_DISTRIBUTED_TIMEOUT", "never")
    with pytest.raises(ValueError, match="NNCORE_DISTRIBUTED_TIMEOUT must be a number of "
                                         r"seconds above 0 \(.*\), got 'never'"):
        DataParallel(model)


def test_threads_per_rank_count_the_ranks_of_the_node(tmp_path):
    """4 ranks in two communicators of 2 on one node of 8 cores: 2 threads each, not 4."""
    for d in _job(tmp_path, "threads", n=4, timeout=120):
        assert d == {"n_threads": 2, "sub": 2, "world": 2}


def test_threads_per_rank_from_slurm(monkeypatch):
    _mpiexec()
    for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "4(x2),3")
    from nncore.distributed import threads_per_rank
    for node, n in (("0", 4), ("1", 4), ("2", 3)):
        monkeypatch.setenv("SLURM_NODEID", node)
        assert threads_per_rank() == 12 // n


def test_shared_exchange_with_one_process_is_refused():
    """exchange="shared" alone (no mpiexec, say) raises, naming the fix; "auto" trains as a
    plain fit."""
    _mpiexec()
    code = ("import sys; sys.path.insert(0, %r); import distributed_worker as w;"
            "from nncore.distributed import DataParallel;"
            "m, X, y, kw, _ = w.build('f64_ce_sgd'); dp = DataParallel(m, exchange='shared');"
            "print(w._error(lambda: dp.fit(X, y, **kw)));"
            "dp = DataParallel(m); dp.fit(X, y, **kw); print(dp.exchange_used)" % HERE)
    env = _env_without_launcher()
    r = _run([sys.executable, "-c", code], env=env)
    assert r.returncode == 0, r.stderr
    refused, used = r.stdout.strip().splitlines()
    assert refused.startswith("ValueError: exchange='shared' is not possible: the "
                              "communicator has one process")
    assert "mpiexec -n N" in refused and "exchange='auto'" in refused
    assert used == "allreduce"


def _close(a, b, tol=TOL["float64"]):
    a, b = np.asarray(a), np.asarray(b)
    rel = np.max(np.abs(a - b)) / np.max(np.abs(b))
    assert rel <= tol, f"differ by {rel:.2e} relative"


def test_a_users_optimizer_runs_its_own_step(behaviour):
    """An SGD subclass clipping in step(): "auto" sums with Allreduce and runs that step
    (the single-process weights); "shared", which would skip it, is refused on every rank."""
    ref, _ = worker.clipped()
    plain = worker.build("f64_ce_sgd")[0]  # the same fit without the clipping differs
    for d in behaviour:
        for exchange in ("auto", "allreduce"):
            _close(d["clipped"][exchange], ref)
        assert d["clipped_used"] == "allreduce"
        msg = d["clipped_shared"]
        assert msg.startswith("ValueError: exchange='shared' is not possible")
        assert "ClippedSGD has a step() of its own" in msg and "'allreduce'" in msg
    assert not np.allclose(plain.params, ref)


@pytest.mark.parametrize("exchange", ["shared", "allreduce"])
@pytest.mark.parametrize("per_batch", [False, True])
def test_callbacks_changing_weights_in_place_act_once(behaviour, exchange, per_batch):
    """model.params *= 0.5 at each epoch's end (and a layer scaled after batch 2) in every
    rank's callbacks: the weights of one process, with the shared window too."""
    ref = worker.in_place(per_batch=per_batch)
    key = f"in_place_batch_{exchange}" if per_batch else f"in_place_{exchange}"
    for d in behaviour:
        _close(d[key], ref)


@pytest.mark.parametrize("exchange", ["shared", "allreduce"])
def test_callbacks_that_differ_between_ranks_fail_on_every_rank(behaviour, exchange):
    """A learning rate set on one rank, weights halved on one rank, EarlyStopping deciding
    differently: every rank raises after that epoch's callbacks, naming what differs."""
    for d in behaviour:
        errors = d[f"diverging_{exchange}"]
        assert errors["lr"].startswith("RuntimeError: distributed fit: the ranks differ after "
                                       "the callbacks' on_epoch_end of epoch 1 and "
                                       "on_epoch_begin of epoch 2: learning rate (0.05 on "
                                       "rank 0, 0.01 on rank 1)")
        assert "on_epoch_end of epoch 2 and on_epoch_begin of epoch 3: weights (rank 1's " \
               "differ from rank 0's)" in errors["weights"]
        assert "on_epoch_end of epoch 2: decision to stop (False on rank 0, True on rank 1)" \
            in errors["stop"]
        for msg in errors.values():
            assert "must make the same changes on every rank" in msg


@pytest.mark.parametrize("exchange", ["shared", "allreduce"])
def test_nan_stop_history_matches_one_process(behaviour, exchange):
    """on_nan="stop": the stopped epoch's metric is the mean over its finite batches."""
    ref = worker.nan_stop()
    assert np.isfinite(ref["mae"][-1]) and not np.isfinite(ref["loss"][-1])
    for d in behaviour:
        hist = d[f"nan_stop_{exchange}"]
        assert set(hist) == set(ref)
        for k in ref:
            np.testing.assert_allclose(hist[k], ref[k], rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("exchange", ["shared", "allreduce"])
def test_the_last_update_of_a_fit_is_checked_on_every_rank(behaviour, exchange):
    """An update that makes the weights infinite, the last of its epoch: every rank puts back
    the weights before it and raises or stops, as one process does."""
    ref = worker.last_update()
    assert "a weight became inf" in ref["raise"]["error"] and ref["stop"]["epochs"] == 1
    for d in behaviour:
        assert d[f"last_update_{exchange}"] == ref


def test_shared_windows_are_freed(tmp_path):
    """100 fits in a loop (a new DataParallel, distributed=True, a Dup'ed communicator):
    the /dev/shm memory mapped by each rank stays flat."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps (Linux) to see the mapped /dev/shm files")
    for d in _job(tmp_path, "leak", timeout=120):
        after_10, after_100 = d["mapped"]
        assert after_100 == after_10, d
