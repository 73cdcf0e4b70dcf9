"""The program tests/test_distributed.py runs on several MPI ranks
(``mpiexec -n 2 python -m mpi4py tests/distributed_worker.py MODE OUT``), and the single-process
references it is compared with (imported by the test itself).

Modes: ``train`` fits every case of CASES with distributed=True and writes each rank's
weights and History to OUT/rank<r>.npz (``twin``: the same through the engine's Python loop
instead of the compiled plan); ``fail`` raises in a callback on rank 1 only;
``size1`` asks for the communicator (the test runs it without mpiexec, with a launcher's
environment variable claiming 2 processes); the other modes write what a user would see
(results, error messages) to OUT/rank<r>.json: see main().
"""

import json
import os
import sys

import numpy as np

import nncore as nn

# name: (dtype, loss, optimizer, dropout, sample weights, batch size, exchange, overlap)
CASES = {
    "f32_ce_sgd": ("float32", "cross_entropy", "sgd", 0.2, False, 20, "auto", True),
    "f64_ce_sgd": ("float64", "cross_entropy", "sgd", 0.2, False, 20, "shared", True),
    "f64_mse_adam_w": ("float64", "mse", "adam", 0.1, True, 15, "auto", True),
    "f32_mse_adamw_amsgrad": ("float32", "mse", "adamw", 0.0, False, 16, "shared", True),
    "f32_ce_overlap": ("float32", "cross_entropy", "sgd", 0.2, False, 20, "allreduce", True),
    "f32_bce_blocking": ("float32", "bce_with_logits", "sgd", 0.0, False, 15, "allreduce",
                         False),
    "f64_bce_blocking_w": ("float64", "bce_with_logits", "adam", 0.3, True, 20, "allreduce",
                           False),
    # residual blocks with layer norm and dropout inside (build: the "resnet" cases)
    "f64_resnet_ln": ("float64", "cross_entropy", "sgd", 0.2, False, 20, "shared", True),
    "f32_resnet_ln_overlap": ("float32", "mse", "adam", 0.1, False, 16, "allreduce", True),
    # gradient clipping: every rank clips the whole summed gradient (Allreduce)
    "f64_clip_allreduce": ("float64", "mse", "sgd_clip", 0.1, True, 15, "allreduce", True),
}
N_ROWS = 201  # batch 20: a last batch of 1 row, so one rank's share is empty


def data(loss, weights):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_ROWS, 12))
    if loss == "cross_entropy":
        y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
        n_out = 3
    elif loss == "mse":
        y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
        n_out = 2
    else:
        y = (X[:, :2] > 0).astype(np.float64)
        n_out = 2
    w = rng.uniform(0.0, 2.0, N_ROWS) if weights else None
    if w is not None:
        w[5:25] = 0.0  # a batch with zero weight is skipped
    return X, y, w, n_out


def build(case, seed=3):
    dtype, loss, opt, p, weights, bs, exchange, overlap = CASES[case]
    X, y, w, n_out = data(loss, weights)
    layers = [nn.Dense(12, 32, activation="tanh")]
    if p:
        layers.append(nn.Dropout(p))
    if "resnet" in case:
        layers += [nn.Residual([nn.LayerNorm(32), nn.Dense(32, 24, activation="relu"),
                                nn.Dropout(p), nn.Dense(24, 32)]), nn.LayerNorm(32)]
    layers += [nn.Dense(32, 16, activation="relu"), nn.Dense(16, n_out)]
    model = nn.Sequential(layers, dtype=dtype, seed=seed)
    optimizer = {"sgd": lambda: nn.SGD(lr=0.05, momentum=0.9, nesterov=True),
                 "sgd_clip": lambda: nn.SGD(lr=0.05, momentum=0.9, global_clipnorm=0.5,
                                            clipvalue=0.05),
                 "adam": lambda: nn.Adam(lr=0.01),
                 "adamw": lambda: nn.AdamW(lr=0.01, amsgrad=True)}[opt]()
    metrics = ["accuracy"] if loss != "mse" else ["mae"]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    fit_kw = dict(epochs=3, batch_size=bs, validation_split=0.1, sample_weight=w, verbose=0)
    return model, X, y, fit_kw, dict(exchange=exchange, overlap=overlap)


def train(case, distributed=False):
    """(weights, History dict, exchange used) of one case, in this process or across the
    ranks (two fits in a row, as one fit of twice the epochs: the second reuses the
    first's shared window)."""
    from nncore.distributed import DataParallel
    model, X, y, fit_kw, dp_kw = build(case, seed=3)
    exchange = None
    if distributed:
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_rank() != 0:
            # Another seed on the other ranks: rank 0's weights and streams must win.
            model, X, y, fit_kw, dp_kw = build(case, seed=11)
        dp = DataParallel(model, **dp_kw)
        fit = dp.fit
    else:
        fit = model.fit
    first = fit(X, y, **dict(fit_kw, epochs=fit_kw["epochs"] - 1)).history
    second = fit(X, y, **dict(fit_kw, epochs=1)).history
    if distributed:
        exchange = dp.exchange_used
    return model.params.copy(), {k: first[k] + second[k] for k in first}, exchange


def diverge(distributed=False):
    """A learning rate that blows up, with on_nan="raise": (the weights left, (epoch, batch)
    of the error)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(8, 16, activation="relu"), nn.Dense(16, 2)],
                          dtype="float32", seed=0)
    model.compile(nn.SGD(lr=0.5, momentum=0.5), "mse")
    try:
        model.fit(X, Y, epochs=20, batch_size=8, shuffle=False, verbose=0, on_nan="raise",
                  distributed=distributed)
        where = None
    except nn.NonFiniteLossError as e:
        where = [e.epoch, e.batch]
    return model.params.copy(), where


class _PlainSGD(nn.Optimizer):
    """An optimizer of the user's: only step(), no ranged update."""

    def step(self):
        self._params -= self.lr * self._grads
        self.steps += 1


def errors():
    """Argument errors of the shared exchange, on every rank; the model left unchanged."""
    from nncore.distributed import DataParallel
    out = []
    model, X, y, fit_kw, _ = build("f64_ce_sgd")
    try:
        DataParallel(model, exchange="ring")
    except ValueError as e:
        out.append(str(e))
    model.compile(optimizer=_PlainSGD(lr=0.1), loss="cross_entropy")
    before = model.params.copy()
    try:
        DataParallel(model, exchange="shared").fit(X, y, **fit_kw)
    except ValueError as e:
        out.append(str(e))
    out.append(bool(np.array_equal(before, model.params)))
    history = DataParallel(model).fit(X, y, **fit_kw)  # auto: the Allreduce exchange
    out.append(len(history.history["loss"]))
    # The window cannot be allocated on rank 1 (a small /dev/shm, say).
    import warnings

    from mpi4py import MPI

    import nncore.distributed as d
    real = d._NodeExchange

    def fails_on_rank_1(*args, **kwargs):
        window = real(*args, **kwargs)  # the collective calls, on every rank
        if MPI.COMM_WORLD.Get_rank() == 1:
            raise MPI.Exception(MPI.ERR_NO_MEM)
        return window

    d._NodeExchange = fails_on_rank_1
    try:
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        try:
            DataParallel(model, exchange="shared").fit(X, y, **fit_kw)
        except RuntimeError as e:
            out.append(str(e))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dp = DataParallel(model)
            dp.fit(X, y, **fit_kw)
        out.append([str(w.message) for w in caught if "Allreduce instead" in str(w.message)])
        out.append(dp.exchange_used)
    finally:
        d._NodeExchange = real
    return out


def _rank():
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_rank()


def _error(call):
    """The message of what call() raised, "TypeName: text", or None when it returned."""
    try:
        call()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _dump(out, obj):
    with open(os.path.join(out, f"rank{_rank()}.json"), "w") as f:
        json.dump(obj, f)


def evaluations():
    """DataParallel.evaluate's checks, and its result (the single-process one)."""
    from nncore.distributed import DataParallel
    rank = _rank()
    model, X, y, fit_kw, _ = build("f64_ce_sgd")
    dp = DataParallel(model)
    out = {"batch_size": [_error(lambda: dp.evaluate(X, y, batch_size=bs))
                          for bs in (0, -5, 2.7)]}
    n = 50 if rank == 1 else len(X)  # rank 1 passes fewer rows
    out["rows"] = _error(lambda: dp.evaluate(X[:n], y[:n]))
    Xr = X + 1.0 if rank == 1 else X  # ... other contents
    out["contents"] = _error(lambda: dp.evaluate(Xr, y))
    out["logs"] = dp.evaluate(X, y, batch_size=7)
    return out


# ---- what a user's code does (each function also runs in one process, as the reference) --
class ClippedSGD(nn.SGD):
    """A user's optimizer: SGD whose step() clips the gradients first."""

    def step(self):
        np.clip(self._grads, -0.01, 0.01, out=self._grads)
        super().step()


def clipped(distributed=False, exchange="auto"):
    """(weights, exchange used) after fitting with ClippedSGD."""
    from nncore.distributed import DataParallel
    model, X, y, fit_kw, _ = build("f64_ce_sgd")
    model.compile(ClippedSGD(lr=0.05, momentum=0.9), "cross_entropy", metrics=["accuracy"])
    if not distributed:
        model.fit(X, y, **fit_kw)
        return model.params.copy(), None
    dp = DataParallel(model, exchange=exchange)
    dp.fit(X, y, **fit_kw)
    return model.params.copy(), dp.exchange_used


class Halve(nn.Callback):
    """Changes the weights in place at the end of every epoch."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.params *= 0.5


class ShrinkFirstLayer(nn.Callback):
    """Changes a layer's weights in place after batch 2 of every epoch."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            self.model.layers[0].W[...] *= 0.75


def in_place(distributed=False, exchange="auto", per_batch=False):
    """The weights after a fit whose callbacks change them in place."""
    from nncore.distributed import DataParallel
    model, X, y, fit_kw, _ = build("f64_ce_sgd")
    callbacks = [Halve()] + ([ShrinkFirstLayer()] if per_batch else [])
    fit = DataParallel(model, exchange=exchange).fit if distributed else model.fit
    fit(X, y, callbacks=callbacks, **fit_kw)
    return model.params.copy()


def nan_stop(distributed=False, exchange="auto"):
    """History of a fit that diverges with on_nan="stop" (a metric too)."""
    import warnings

    from nncore.distributed import DataParallel
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 8)) * 10
    Y = rng.standard_normal((64, 2)) * 100
    model = nn.Sequential([nn.Dense(8, 16, activation="relu"), nn.Dense(16, 2)],
                          dtype="float64", seed=0)
    model.compile(nn.SGD(lr=0.5, momentum=0.5), "mse", metrics=["mae"])
    fit = DataParallel(model, exchange=exchange).fit if distributed else model.fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # TerminateOnNaN's
        history = fit(X, Y, epochs=5, batch_size=8, shuffle=False, verbose=0, on_nan="stop")
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def last_update(distributed=False, exchange="auto"):
    """Each epoch one batch whose update makes the weights infinite, with on_nan="raise"
    and "stop": (the error, the weights left) for each."""
    import warnings

    from nncore.distributed import DataParallel
    out = {}
    for on_nan in ("raise", "stop"):
        model = nn.Sequential([nn.Dense(1, 1)], dtype="float64", seed=0)
        model.compile(nn.SGD(lr=1e300), "mse")
        X, Y = np.ones((4, 1)), np.full((4, 1), 1e10)
        fit = DataParallel(model, exchange=exchange).fit if distributed else model.fit
        err = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                fit(X, Y, epochs=3, batch_size=4, shuffle=False, verbose=0, on_nan=on_nan)
            except nn.NonFiniteLossError as e:
                err = str(e)
        out[on_nan] = {"error": err, "params": model.params.tolist(),
                       "epochs": len(model.history.history.get("loss", []))}
    return out


class _OnRank(nn.Callback):
    """What a callback does on one rank only (a rank-dependent callback)."""

    def __init__(self, rank, epoch_begin=None, epoch_end=None):
        self.rank, self.epoch_begin, self.epoch_end = rank, epoch_begin, epoch_end

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1 and _rank() == self.rank and self.epoch_begin:
            self.epoch_begin(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1 and _rank() == self.rank and self.epoch_end:
            self.epoch_end(self.model)


def _set_lr(model):
    model.optimizer.lr = 0.01


def _halve(model):
    model.params *= 0.5


def diverging_callbacks(exchange):
    """The errors of fits whose callbacks differ between the ranks."""
    from nncore.distributed import DataParallel
    out = {}
    rank = _rank()
    cases = {
        "lr": [_OnRank(1, epoch_begin=_set_lr)],
        "weights": [_OnRank(0, epoch_end=_halve)],
        # Rank 1 stops after epoch 1 (the loss went down: no improvement in "max" mode).
        "stop": [nn.EarlyStopping("loss", mode="min" if rank == 0 else "max")],
    }
    for name, callbacks in cases.items():
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        with_all = dict(fit_kw, epochs=4)
        out[name] = _error(lambda: DataParallel(model, exchange=exchange).fit(
            X, y, callbacks=callbacks, **with_all))
    return out


def _shm_mapped():
    """Bytes of /dev/shm this process has mapped (MPI's shared windows among them)."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5].startswith("/dev/shm/"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                total += hi - lo
    return total


def _shm_used():
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize

class _FailOnRank1(nn.Callback):
    def on_epoch_end(self, epoch, logs=None):
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_rank() == 1 and epoch == 1:
            raise RuntimeError("deliberate failure on rank 1")


def main():
    mode, out = sys.argv[1], sys.argv[2]
    if mode in ("train", "nodes", "twin"):
        from mpi4py import MPI
        rank = MPI.COMM_WORLD.Get_rank()
        if mode == "nodes":  # 4 ranks as 2 nodes of 2: ranks 0, 1 and ranks 2, 3
            import nncore.distributed as d
            d._node_comm = lambda comm: comm.Split(comm.Get_rank() // 2, comm.Get_rank())
        if mode == "twin":  # no compiled plan: the engine's Python loop runs every step
            from nncore import _engine
            _engine.Engine.plan = lambda self, ws, guard=None: None
        results, hist, exchange = {}, {}, {}
        for case in CASES:
            results[case], hist[case], exchange[case] = train(case, distributed=True)
        np.savez(os.path.join(out, f"rank{rank}.npz"), **results)
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"history": hist, "threads": nn.get_num_threads(),
                       "exchange": exchange}, f)
    elif mode == "uneven":  # 3 ranks as nodes of 2 and 1: auto falls back to Allreduce
        from mpi4py import MPI
        import nncore.distributed as d
        from nncore.distributed import DataParallel
        d._node_comm = lambda comm: comm.Split(min(comm.Get_rank(), 2) // 2, comm.Get_rank())
        params, hist, exchange = train("f32_ce_sgd", distributed=True)
        model, X, y, fit_kw, _ = build("f32_ce_sgd")
        try:
            DataParallel(model, exchange="shared").fit(X, y, **fit_kw)
            refused = ""
        except ValueError as e:
            refused = str(e)
        rank = MPI.COMM_WORLD.Get_rank()
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"exchange": exchange, "refused": refused, "history": hist,
                       "params": params.tolist()}, f)
    elif mode == "batchnorm":  # per-rank statistics; rank 0's running ones end up everywhere
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((200, 6)), rng.integers(0, 3, 200)
        model = nn.Sequential([nn.Dense(6, 16), nn.BatchNorm(16), nn.Activation("relu"),
                               nn.Dense(16, 3)], seed=1)
        model.compile(nn.SGD(lr=0.05, momentum=0.9), "cross_entropy")
        hist = model.fit(X, y, epochs=3, batch_size=32, validation_split=0.1,
                         distributed=True, verbose=0).history
        try:
            model.fit(X, y, epochs=1, batch_size=3, distributed=True, verbose=0)
            refused = ""
        except ValueError as e:
            refused = str(e)
        from nncore.distributed import DataParallel
        clip_model = nn.Sequential([nn.Dense(6, 3)], seed=1)
        clip_model.compile(nn.SGD(lr=0.1, clipvalue=0.1), "cross_entropy")
        try:
            DataParallel(clip_model, exchange="shared").fit(X, y, epochs=1, verbose=0)
            refused_clip = ""
        except ValueError as e:
            refused_clip = str(e)
        with open(os.path.join(out, f"rank{_rank()}.json"), "w") as f:
            json.dump({"params": model.params.tolist(), "state": model.state.tolist(),
                       "history": hist, "refused": refused, "refused_clip": refused_clip}, f)
    elif mode == "checks":  # what the test compares, one JSON line per rank
        from mpi4py import MPI
        params, where = diverge(distributed=True)
        rank = MPI.COMM_WORLD.Get_rank()
        with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
            json.dump({"errors": errors(), "where": where, "params": params.tolist()}, f)
    elif mode == "killsave":  # rank 0 is killed in the middle of a checkpoint's write
        import signal
        path = os.path.join(out, "model.safetensors")
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        if _rank() == 0:
            real_fdopen = os.fdopen
            saves = []

            class HalfWay:
                def __init__(self, f):
                    self.f = f

                def __enter__(self):
                    return self

                def __exit__(self, *exc):
                    return self.f.__exit__(*exc)

                def __getattr__(self, name):
                    return getattr(self.f, name)

                def write(self, data):
                    saves.append(1)
                    if len(saves) == 2:  # the second epoch's checkpoint
                        self.f.write(data[:len(data) // 2])
                        self.f.flush()
                        os.kill(os.getpid(), signal.SIGKILL)
                    return self.f.write(data)

            os.fdopen = lambda *a, **k: HalfWay(real_fdopen(*a, **k))
        model.fit(X, y, distributed=True, callbacks=[nn.ModelCheckpoint(path)], **fit_kw)
    elif mode == "behaviour":  # what a user sees; one process would see the same
        out_ = {"clipped": {e: clipped(True, e)[0].tolist() for e in ("auto", "allreduce")},
                "clipped_used": clipped(True, "auto")[1],
                "clipped_shared": _error(lambda: clipped(True, "shared"))}
        for exchange in ("shared", "allreduce"):
            out_[f"in_place_{exchange}"] = in_place(True, exchange).tolist()
            out_[f"in_place_batch_{exchange}"] = in_place(True, exchange, True).tolist()
            out_[f"nan_stop_{exchange}"] = nan_stop(True, exchange)
            out_[f"last_update_{exchange}"] = last_update(True, exchange)
            out_[f"diverging_{exchange}"] = diverging_callbacks(exchange)
        out_["evaluate"] = evaluations()
        _dump(out, out_)
    elif mode == "arguments":  # DataParallel arguments that differ between the ranks
        from nncore.distributed import DataParallel
        rank = _rank()
        out_ = {}
        for name, mine in (("exchange", "shared" if rank == 0 else "allreduce"),
                           ("overlap", rank == 0), ("bucket_bytes", 1 + rank * 100000)):
            model, X, y, fit_kw, _ = build("f32_ce_sgd")
            kw = {"exchange": "allreduce", name: mine}
            out_[name] = _error(lambda: DataParallel(model, **kw).fit(X, y, **fit_kw))
        _dump(out, out_)
    elif mode == "collective":  # an error on one rank in save, evaluate, DataParallel()
        from nncore.distributed import DataParallel
        rank = _rank()
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        dp = DataParallel(model)
        dp.fit(X, y, **fit_kw)
        out_ = {"save": _error(lambda: dp.save(os.path.join(out, "missing", "m.safetensors"))),
                "evaluate": _error(lambda: dp.evaluate(X, y, batch_size=0 if rank else None)),
                "create": _error(lambda: DataParallel(model, exchange="ring" if rank else
                                                      "auto"))}
        dp = DataParallel(model, timeout=30)  # then the job goes on
        dp.save(os.path.join(out, "m.safetensors"))
        out_["params"] = model.params.tolist()
        out_["timeout"] = dp.timeout
        _dump(out, out_)
    elif mode == "absent":  # rank 1 ends without calling fit
        if _rank() == 1:
            return
        model, X, y, fit_kw, _ = build("f32_ce_sgd")
        model.fit(X, y, distributed=True, **fit_kw)
    elif mode == "threads":  # 4 ranks in two communicators of 2, on a node of 8 cores
        from mpi4py import MPI
        from nncore.distributed import DataParallel, threads_per_rank
        os.cpu_count = lambda: 8
        sub = MPI.COMM_WORLD.Split(_rank() // 2, _rank())
        model, X, y, fit_kw, _ = build("f32_ce_sgd")
        dp = DataParallel(model, sub)
        out_ = {"n_threads": dp.n_threads, "sub": threads_per_rank(sub)}
        for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE",
                    "MV2_COMM_WORLD_LOCAL_SIZE", "SLURM_STEP_TASKS_PER_NODE"):
            os.environ.pop(var, None)  # a launcher that does not say: MPI counts them
        out_["world"] = threads_per_rank()
        _dump(out, out_)
    elif mode == "leak":  # 100 fits: a new DataParallel, distributed=True, a Dup'ed comm
        from mpi4py import MPI
        from nncore.distributed import DataParallel
        model, X, y, fit_kw, _ = build("f32_ce_sgd")
        fit_kw.update(epochs=1, validation_split=0.0)
        mapped, used = [], []
        for i in range(100):
            if i % 3 == 0:
                DataParallel(model).fit(X, y, **fit_kw)
            elif i % 3 == 1:
                model.fit(X, y, distributed=True, **fit_kw)
            else:
                comm = MPI.COMM_WORLD.Dup()
                model.fit(X, y, distributed=comm, **fit_kw)
                comm.Free()
            if i in (9, 99):
                mapped.append(_shm_mapped())
                used.append(_shm_used())
        _dump(out, {"mapped": mapped, "used": used})
    elif mode == "fail":
        model, X, y, fit_kw, _ = build("f64_ce_sgd")
        fit_kw["epochs"] = 1000  # without the abort, rank 0 would wait for rank 1 forever
        model.fit(X, y, callbacks=[_FailOnRank1()], distributed=True, **fit_kw)
    elif mode == "size1":
        from nncore.distributed import get_comm
        get_comm()


if __name__ == "__main__":
    main()
