"""Data-parallel training across processes and machines on MPI, through mpi4py.

Every rank runs the same script on the same data (``mpiexec -n N python -m mpi4py
train.py``). ``model.fit(..., distributed=True)`` (or ``DataParallel(model).fit(...)``) then:

* broadcasts rank 0's weights, optimizer state and random streams, so every rank starts from
  the same model whatever its own seed;
* shuffles with the same permutation on every rank, cuts every global batch of
  ``batch_size`` rows into one contiguous shard per rank (sizes differ by at most one row),
  and runs forward and backward on the shard: the compiled plan of a plain fit, whole
  epochs in C, with the exchange below in its hook between the backward pass and the update
  (the engine's Python loop for models with parts of the user's own). The loss gradient of
  each row is scaled by ``weight / (d * global batch weight)`` - the global batch's mean -
  so the sum of the ranks' gradients *is* the gradient of the global batch;
* sums the gradients and applies the optimizer step. By default (``exchange="auto"``, when
  several ranks share a node) the ranks of a node keep the parameters, optimizer state and
  gradients in one MPI shared-memory window during each epoch: node rank r sums range r of
  the node's gradients in place, ``Allreduce``-s it with rank r of the other nodes, and
  updates range r (see :class:`_NodeExchange`). With ``exchange="allreduce"`` every rank
  sums the whole flat gradient buffer with MPI ``Allreduce`` in place (every parameter lives
  in it, so nothing is packed): by default one non-blocking ``Iallreduce`` per bucket of
  layers, started as soon as the backward pass has produced that bucket, so the exchange
  overlaps the rest of the backward pass (as Horovod does); ``overlap=False`` does one
  blocking ``Allreduce`` after it; then every rank applies the same optimizer step;
* reduces the loss, the metrics and the validation results across ranks, so History is the
  same on every rank; only rank 0 draws the progress bar and runs ModelCheckpoint.

Dropout draws the random numbers of the global batch by row: a rank's shard uses the
numbers the single-process run uses for those rows. The result: N ranks with global batch B
give the weights of one process with batch B, to rounding (the gradient sums are added in
another order); a communicator of one process trains as the plain fit, to the bit.

Callbacks run on every rank (ModelCheckpoint on rank 0 only), each rank on its own copy of
the model: with the shared exchange too, a callback sees weights and optimizer state of its
own rank, so ``model.params *= 0.5`` halves the weights once, as in one process. The ranks
must stay alike: callbacks see the same logs on every rank and must make the same changes
there (learning rate, optimizer settings, weights, optimizer state, random streams, the
decision to stop). fit compares the ranks after every callback hook and raises on every
rank, naming what differs; a callback that decides on one rank must share its decision
(``comm.bcast``). A per-batch callback (``on_train_batch_end``) costs, with the shared
exchange, a copy of the weights and optimizer state in and out of the window per batch.

Errors: every collective call (``DataParallel(...)``, ``fit``, ``evaluate``, ``save``)
agrees on failure: an error on some ranks (a bad argument, a missing folder for ``save``)
raises on every rank. An exception raised on one rank during training (a callback's error,
Ctrl-C, MemoryError) prints its traceback and aborts the whole job (``MPI_Abort``) instead of
leaving the other ranks waiting forever. Launch with ``python -m mpi4py``, which does the
same for exceptions outside fit. A rank that never makes a call the others make (it exited,
or took another path) leaves them waiting, as any MPI program; with a timeout
(``DataParallel(..., timeout=seconds)`` or the environment variable
``NNCORE_DISTRIBUTED_TIMEOUT``) the ranks that waited that long abort the job with a message.

The shared window of a fit is freed when the fit ends (``MPI_Win_free`` is collective, so it
is not left to the garbage collector, which runs at different times on different ranks).

mpi4py is imported only when distributed training is used.
"""

import math
import numbers
import os
import sys
import time
import traceback
import warnings
import zlib

import numpy as np

from . import _core
from . import _threads
from . import optimizers as _optimizers
from ._validation import check_int

__all__ = ["DataParallel", "get_comm", "threads_per_rank", "LauncherMismatchError"]

# Environment variables through which launchers announce how many processes they started.
_LAUNCHER_SIZE_VARS = (
    "PMI_SIZE",               # MPICH / Intel MPI (hydra), PMI-1 and PMI-2
    "OMPI_COMM_WORLD_SIZE",   # Open MPI (mpirun / prterun)
    "MV2_COMM_WORLD_SIZE",    # MVAPICH2
    "SLURM_STEP_NUM_TASKS",   # srun (set for a job step, not for the batch script itself)
)
# ... and how many of them run on this node.
_LAUNCHER_LOCAL_VARS = (
    "MPI_LOCALNRANKS",             # MPICH / Intel MPI (hydra)
    "OMPI_COMM_WORLD_LOCAL_SIZE",  # Open MPI
    "MV2_COMM_WORLD_LOCAL_SIZE",   # MVAPICH2
)
_TIMEOUT_VAR = "NNCORE_DISTRIBUTED_TIMEOUT"
_BUCKET_BYTES = 1 << 20       # a bucket closes once it holds this many bytes of gradients
_EXCHANGES = ("auto", "shared", "allreduce")
_ADVICE = ("Callbacks run on every rank (ModelCheckpoint on rank 0 only), see the same logs, "
           "and must make the same changes on every rank: the same learning rate and "
           "optimizer settings, the same changes to the weights and optimizer state, the "
           "same decision to stop; a callback that decides on one rank must share its "
           "decision (comm.bcast)")


class LauncherMismatchError(RuntimeError):
    """The launcher started several processes but MPI sees one: each process is alone."""


def _collective(exc):
    """Mark an error that every rank raises together (after agreeing): fit raises it
    normally instead of aborting the job."""
    exc._nncore_collective = True
    return exc


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"distributed training needs mpi4py and an MPI library ({e}); install them with "
            f"pip install 'nncore[mpi]' (mpi4py and the MPICH wheel), or mpi4py built "
            f"against your cluster's MPI (see the README, 'Distributed training')") from None
    return MPI


def _first_count(names, minimum):
    """(the first of the environment variables ``names`` holding an integer >= minimum, the
    variable), or (None, None)."""
    for var in names:
        try:
            n = int(os.environ.get(var, ""))
        except ValueError:
            continue
        if n >= minimum:
            return n, var
    return None, None


def _launcher_size():
    """(processes the launcher says it started, the variable that says so), or (1, None)."""
    n, var = _first_count(_LAUNCHER_SIZE_VARS, 2)
    return (1, None) if n is None else (n, var)


def _launcher_local_size():
    """Processes the launcher started on this node, or None if it does not say."""
    n, _ = _first_count(_LAUNCHER_LOCAL_VARS, 1)
    if n is not None:
        return n
    # srun: SLURM_STEP_TASKS_PER_NODE is "2(x3),1" (tasks per node, node by node).
    spec, node = os.environ.get("SLURM_STEP_TASKS_PER_NODE"), os.environ.get("SLURM_NODEID")
    try:
        counts = []
        for part in spec.split(","):
            n, _, times = part.partition("(x")
            counts += [int(n)] * (int(times.rstrip(")")) if times else 1)
        return counts[int(node)]
    except (AttributeError, ValueError, IndexError, TypeError):
        return None


def _timeout(value):
    """The timeout argument (or, when None, NNCORE_DISTRIBUTED_TIMEOUT) in seconds, or None."""
    name = "timeout"
    if value is None:
        value = os.environ.get(_TIMEOUT_VAR, "").strip()
        if not value:
            return None
        name = _TIMEOUT_VAR
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
            or not (math.isfinite(value) and value > 0)):
        raise ValueError(f"{name} must be a number of seconds above 0 (how long a collective "
                         f"call waits for the other ranks before it aborts the job), got "
                         f"{value!r}; leave it unset to wait as long as it takes")
    return float(value)


def get_comm(comm=None):
    """The communicator distributed training uses: ``comm``, or ``MPI.COMM_WORLD``.

    Raises
    ------
    ImportError
        If mpi4py is not installed.
    LauncherMismatchError
        If a launcher started several processes (``PMI_SIZE``, ``OMPI_COMM_WORLD_SIZE``,
        ``MV2_COMM_WORLD_SIZE`` or ``SLURM_STEP_NUM_TASKS`` > 1) but ``COMM_WORLD`` has size
        1: mpi4py's MPI library is not the launcher's, and every process would train alone.
    """
    MPI = _mpi()
    if comm is None:
        comm = MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm) or comm == MPI.COMM_NULL:
        raise TypeError(f"comm must be an mpi4py communicator such as MPI.COMM_WORLD, got "
                        f"{comm!r}")
    if comm == MPI.COMM_WORLD:
        n, var = _launcher_size()
        if n > 1 and MPI.COMM_WORLD.Get_size() == 1:
            lib = MPI.Get_library_version().splitlines()[0].strip()
            raise LauncherMismatchError(
                f"the launcher started {n} processes ({var}={os.environ[var]}) but MPI sees "
                f"only this one (COMM_WORLD has size 1): mpi4py uses {lib!r}, which is not "
                f"the MPI of the launcher, so every process would train alone. Launch with "
                f"the mpiexec of that MPI (with the nncore[mpi] wheels: the mpiexec in this "
                f"environment's bin/), or install mpi4py against the cluster's MPI: "
                f"pip install --no-binary=mpi4py mpi4py (see the README)")
    return comm


def threads_per_rank(comm=None):
    """OpenMP threads per rank by default: the node's cores divided by the processes of the
    job on the node, at least 1.

    The processes on the node are the launcher's count (``MPI_LOCALNRANKS``,
    ``OMPI_COMM_WORLD_LOCAL_SIZE``, ``MV2_COMM_WORLD_LOCAL_SIZE``,
    ``SLURM_STEP_TASKS_PER_NODE``), so that the ranks of a sub-communicator leave the cores
    of the job's other ranks alone; without one, the ranks of ``comm`` on the node
    (``COMM_TYPE_SHARED``; collective over comm).
    """
    comm = get_comm(comm)
    n = _launcher_local_size()
    if n is None:
        n = _ranks_on_node(comm)
    return max(1, (os.cpu_count() or 1) // n)


def _ranks_on_node(comm):
    """How many ranks of comm share this one's node."""
    local = _node_comm(comm)
    try:
        return local.Get_size()
    finally:
        local.Free()


def _apply_thread_budget(comm):
    """Set the default thread count to threads_per_rank unless the user chose one
    (nncore.set_num_threads or OMP_NUM_THREADS). Returns the count in force."""
    n = threads_per_rank(comm)
    if not _threads._user_set() and not os.environ.get("OMP_NUM_THREADS"):
        _core.set_num_threads(n)
    return _core.get_num_threads()


def _node_comm(comm):
    """The ranks of comm that share this one's memory (a node), in comm's order."""
    return comm.Split_type(_mpi().COMM_TYPE_SHARED, key=comm.Get_rank())


def _checksum(a):
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    return (a.shape, a.dtype.str, zlib.crc32(memoryview(a).cast("B")))


def _shard(start, stop, rank, size):
    """Rank's contiguous part of rows [start, stop): sizes differ by at most one row."""
    m = stop - start
    return start + m * rank // size, start + m * (rank + 1) // size


def _shared_refusal(opt):
    """Why the shared exchange cannot run this optimizer's update, or None. It updates each
    rank's range with the optimizer's ranged update (_update): only nncore's own optimizers
    have one, and an optimizer whose step() is its own would be skipped."""
    cls, base = type(opt), _optimizers.Optimizer
    if cls.step is not base.step:
        return (f"the optimizer {cls.__name__} has a step() of its own, which the shared "
                f"exchange would skip (each rank updates its range of the shared parameters "
                f"with nncore's update)")
    if cls._update is base._update or getattr(cls._update, "__module__", None) != \
            base.__module__:
        return (f"the optimizer {cls.__name__} is not one of nncore's (it has no ranged "
                f"update)")
    if opt.clips:
        return ("gradient clipping (global_clipnorm, clipvalue) needs the whole summed "
                "gradient on each rank, and the shared exchange sums and updates one range "
                "per rank")
    return None


class DataParallel:
    """Train a model data-parallel across the ranks of an MPI communicator.

    Creating one is collective: every rank of ``comm`` creates its DataParallel, with the
    same arguments; an argument that fails on some rank raises on every rank.

    Parameters
    ----------
    model : Sequential
        The same architecture on every rank (rank 0's weights are broadcast at fit).
    comm : mpi4py communicator, optional
        Default ``MPI.COMM_WORLD``.
    exchange : {"auto", "shared", "allreduce"}, default "auto"
        How the gradients are summed and the update applied. ``"shared"``: the ranks of a
        node keep the parameters, optimizer state and gradients in one MPI shared-memory
        window during each epoch's steps; each rank sums its own range of the gradients over
        the node's ranks (and ``Allreduce`` that range with the ranks of the same node-local
        rank on the other nodes), then updates that range of the parameters: no copies
        through MPI within a node, and each rank does 1/N of the update. It needs every node
        to run as many ranks, at least two, and one of nncore's optimizers (not a subclass
        with a ``step()`` of its own, which it would skip); otherwise fit raises
        ValueError on every rank, also with one process (there is nothing to share: launch
        several ranks, or use "auto"). ``"allreduce"``: every rank ``Allreduce`` the whole
        gradient buffer and applies the whole update (the optimizer's own ``step()``).
        ``"auto"``: ``"shared"`` when it is possible, ``"allreduce"`` otherwise (with one
        process: the plain fit; :attr:`exchange_used` is then "allreduce").
    overlap : bool, default True
        With ``"allreduce"``: sum each bucket of layers' gradients with a non-blocking
        ``Iallreduce`` as soon as the backward pass has computed them (overlapping the rest
        of the backward pass); False: one blocking ``Allreduce`` after it.
    bucket_bytes : int, default 1 MiB
        With overlap, layers are grouped (from the last) until a group holds this much.
    timeout : float, optional
        Seconds each collective call (creating the DataParallel, ``fit``, ``evaluate``,
        ``save``) waits for every rank to make it; a rank that waited longer aborts the job
        with a message (a rank exited, or took another path). Default: the environment
        variable ``NNCORE_DISTRIBUTED_TIMEOUT``, else no limit (as MPI).

    Attributes
    ----------
    comm, rank, size
        The communicator, this process's rank and the number of ranks.
    n_threads : int
        The OpenMP threads per rank in force (see :func:`threads_per_rank`).
    exchange_used : str or None
        The exchange the last fit used (``"shared"`` or ``"allreduce"``).

    Examples
    --------
    >>> dp = DataParallel(model)             # doctest: +SKIP
    >>> history = dp.fit(X, y, epochs=10, batch_size=256)   # doctest: +SKIP
    >>> dp.save("model.safetensors")         # doctest: +SKIP
    """

    def __init__(self, model, comm=None, *, exchange="auto", overlap=True,
                 bucket_bytes=_BUCKET_BYTES, timeout=None):
        self.MPI = _mpi()
        self.comm = get_comm(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.model, self.exchange, self.overlap = model, exchange, overlap
        self.bucket_bytes, self.timeout = bucket_bytes, None
        self.exchange_used = None
        self._window = None  # during fit with the shared exchange: the node's _NodeExchange
        self._node = None  # the window while the model is in it (an epoch's steps)
        self._phase = None  # during fit: "arguments", then "training"
        self._epoch = 0  # during fit: the epoch (from 0)
        error = None
        try:
            self.timeout = _timeout(timeout)
            self._timeout_source = (f"timeout={timeout!r}" if timeout is not None else
                                    f"{_TIMEOUT_VAR}={os.environ.get(_TIMEOUT_VAR)}")
            from .models import Sequential
            if not isinstance(model, Sequential):
                raise TypeError(f"model must be an nncore Sequential, got "
                                f"{type(model).__name__}")
            if not isinstance(exchange, str) or exchange not in _EXCHANGES:
                raise ValueError(f"exchange must be one of {_EXCHANGES}, got {exchange!r}")
            if not isinstance(overlap, (bool, np.bool_)):
                raise TypeError(f"overlap must be True or False, got {overlap!r}")
            self.overlap = bool(overlap)
            self.bucket_bytes = check_int(bucket_bytes, "bucket_bytes", 1)
        except BaseException as e:
            error = e
        self._arrive("DataParallel()")
        self._agree_all(error, "DataParallel", "on its arguments")
        self.n_threads = _apply_thread_budget(self.comm)

    # ---- public API ----------------------------------------------------------------------
    def fit(self, X, y, **kwargs):
        """:meth:`Sequential.fit` across the ranks (same arguments; every rank passes the
        same data). Returns the History, identical on every rank."""
        return self.model.fit(X, y, distributed=self, **kwargs)

    def evaluate(self, X, y, *, sample_weight=None, batch_size=None, verbose=0):
        """:meth:`Sequential.evaluate` with the rows shared out across the ranks and the
        sums reduced: the same dict on every rank.

        Collective: every rank passes the same data (compared, as fit does) and holds the
        same weights; an error on any rank (a bad argument, say) raises on every rank."""
        from ._engine import PREDICT_BATCH as _PREDICT_BATCH
        m = self.model
        what = "DataParallel.evaluate"
        self._arrive("evaluate")
        error = arrays = None
        try:
            m._require_compiled("evaluate")
            bs = _PREDICT_BATCH if batch_size is None else check_int(
                batch_size, "batch_size", 1)
            arrays = m._check_xy(X, y, sample_weight, "evaluate")
        except BaseException as e:
            error = e
        self._agree_all(error, what, "on its arguments")
        X, Y, W = arrays
        self._same(what, [("X", _checksum(X)), ("y", _checksum(Y)),
                          ("sample_weight", _checksum(W)),
                          ("architecture", m.get_config()["layers"]), ("dtype", m.dtype.str),
                          ("weights", _checksum(m.params))],
                   "every rank must pass the same data and hold the same weights (fit "
                   "broadcasts rank 0's; a model loaded from a file must be loaded on every "
                   "rank), as each rank evaluates its own share of the rows")
        with m._lock:
            logs = self._evaluate(X, Y, W, bs, what="evaluate")
        if verbose and self.rank == 0:
            print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        return logs

    def predict(self, X, **kwargs):
        """The model's outputs (every rank computes all of them; not collective)."""
        return self.model.predict(X, **kwargs)

    def save(self, path, **kwargs):
        """Save the model from rank 0 only (the others wait for it).

        Collective: every rank calls it; if the save fails on rank 0 (a missing folder, a
        full disk), every rank raises."""
        self._arrive("save")
        error = None
        if self.rank == 0:
            try:
                self.model.save(path, **kwargs)
            except BaseException as e:
                error = e
        self._agree_all(error, "DataParallel.save", "to save the model")

    @property
    def is_root(self):
        return self.rank == 0

    def __repr__(self):
        return (f"DataParallel({self.model!r}, rank={self.rank}, size={self.size}, "
                f"exchange={self.exchange!r}, overlap={self.overlap})")

    # ---- collectives ---------------------------------------------------------------------
    def _arrive(self, what):
        """With a timeout: wait at most that long for every rank to make this call; a rank
        that never comes (it exited, or runs other code) would leave this one waiting
        forever, so the job is aborted with a message."""
        if self.timeout is None or self.size == 1:
            return
        request = self.comm.Ibarrier()
        deadline = time.monotonic() + self.timeout
        pause = 1e-4
        while not request.Test():
            if time.monotonic() > deadline:
                self._abort_with(
                    f"nncore.distributed: rank {self.rank} of {self.size} waited "
                    f"{self.timeout:g} s ({self._timeout_source}) in {what} for the other "
                    f"ranks, which did not all make that call: a rank exited without making "
                    f"it, failed outside nncore, or runs other code (every rank must call "
                    f"DataParallel(), fit, evaluate and save together); aborting the job\n")
            time.sleep(pause)
            pause = min(2 * pause, 0.01)

    def _agree_all(self, error, what, when):
        """Collective: every rank passes its error or None; if some rank failed, every rank
        raises (that rank its own error, the others a RuntimeError naming it)."""
        errors = self.comm.allgather(None if error is None else
                                     f"{type(error).__name__}: {error}")
        if error is not None:
            raise _collective(error)
        bad = [(r, e) for r, e in enumerate(errors) if e is not None]
        if bad:
            r, e = bad[0]
            raise _collective(RuntimeError(f"{what}: rank {r} failed {when} ({e}); every "
                                           f"rank stops"))

    def _same(self, what, items, advice, shown=()):
        """Collective: raise ValueError on every rank if some rank's items (name, value)
        differ from rank 0's; the values of the names in `shown` are quoted."""
        every = self.comm.allgather([value for _, value in items])
        for r, values in enumerate(every):
            diff = [f"{name} ({every[0][i]!r} on rank 0, {values[i]!r} on rank {r})"
                    if name in shown else name
                    for i, (name, _) in enumerate(items) if values[i] != every[0][i]]
            if diff:
                raise _collective(ValueError(f"{what}: rank {r} differs from rank 0 in "
                                             f"{', '.join(diff)}; {advice}"))

    def _agree(self, error):
        """fit's hook: every rank calls this once before training, with its argument error
        or None; all raise if any rank failed (so no rank is left waiting)."""
        self._arrive("fit")
        self._agree_all(error, "distributed fit", "before training")
        self._phase = "training"

    def _failed(self, exc):
        """fit raised exc on this rank: agree with the other ranks on it (before training),
        or abort the job (during training, where the others would wait forever)."""
        phase, self._phase = self._phase, None
        if getattr(exc, "_nncore_collective", False) or self.size == 1:
            self._release()  # every rank raises it here together
            return  # nobody waits for this rank: raise as usual
        if phase == "arguments":
            try:
                self._agree(exc)
            except BaseException:
                pass  # fit re-raises exc itself
        elif phase == "training":
            self._abort(exc)

    def _compare(self, where, stop=None, flag=False, arrays=True):
        """Collective, after callbacks ran: raise on every rank, naming what differs, unless
        the ranks have the same learning rate, optimizer settings and counters, random
        streams, (with `arrays`) weights and optimizer state, (with `stop`) decision to
        stop. Returns whether any rank passed flag."""
        m = self.model
        opt = m.optimizer
        lr = float(opt.lr)
        mine = {"learning rate": lr if lr == lr else "nan",
                "optimizer settings": repr(opt.get_config()),
                "optimizer step and epoch counters": (opt.steps, opt.epochs),
                "random streams": repr(m._rng_state())}
        if arrays and self.size > 1:  # a checksum of every array: 0.6 ms for 2.8 MB
            mine["weights"] = _checksum(m.params)
            mine["optimizer state"] = [_checksum(opt.state[k]) for k in sorted(opt.state)]
        if stop is not None:
            mine["decision to stop"] = bool(stop)
        every = self.comm.allgather((mine, bool(flag)))
        first = every[0][0]
        diffs = []
        for key, value in mine.items():
            r = next((r for r, (theirs, _) in enumerate(every) if theirs[key] != first[key]),
                     None)
            if r is None:
                continue
            if key in ("learning rate", "optimizer step and epoch counters",
                       "decision to stop"):
                diffs.append(f"{key} ({first[key]!r} on rank 0, {every[r][0][key]!r} on "
                             f"rank {r})")
            else:
                diffs.append(f"{key} (rank {r}'s differ from rank 0's)")
        if diffs:
            raise _collective(RuntimeError(
                f"distributed fit: the ranks differ after the callbacks' {where}: "
                f"{'; '.join(diffs)}. {_ADVICE}"))
        return any(f for _, f in every)

    def _abort(self, exc):
        """An error on this rank alone: the others would wait for it forever."""
        self._abort_with(
            f"nncore.distributed: rank {self.rank} of {self.size} failed; aborting the job\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def _abort_with(self, text):
        try:
            sys.stderr.flush()
            os.write(2, text.encode("utf-8", "replace"))  # one write, past Python's buffers
        except OSError:
            pass
        # The launcher relays each rank's stderr through a pipe and drops what it has not
        # forwarded when the job is killed: give it a moment to pass the text on.
        time.sleep(0.5)
        self.comm.Abort(1)

    # ---- fit's hooks (called by Sequential._fit) -----------------------------------------
    def _begin(self, X, Y, W, val, settings):
        """Check that the ranks agree on the data and settings, then broadcast rank 0's
        model state. Raises (on every rank) if they disagree."""
        m = self.model
        self._same("distributed fit", [
            ("fit settings", settings), ("X", _checksum(X)), ("y", _checksum(Y)),
            ("sample_weight", _checksum(W)),
            ("validation data", None if val is None else tuple(_checksum(a) for a in val)),
            ("architecture", m.get_config()["layers"]), ("dtype", m.dtype.str),
            ("parameters", m.params.shape), ("exchange", self.exchange),
            ("overlap", self.overlap), ("bucket_bytes", self.bucket_bytes)],
            "every rank must build the same model, pass the same data and arguments, and "
            "create its DataParallel with the same exchange, overlap and bucket_bytes (each "
            "rank takes its own share of every batch)",
            shown=("exchange", "overlap", "bucket_bytes"))
        shared = self._use_shared() and self._make_window()
        # Rank 0's state everywhere: weights, optimizer state and counters, random streams.
        self.comm.Bcast(m.params, root=0)
        opt = m.optimizer
        for k in sorted(opt.state):
            self.comm.Bcast(opt.state[k], root=0)
        scalars = self.comm.bcast((m._rng_state(), opt.lr, opt.steps, opt.epochs), root=0)
        m._set_rng_state(scalars[0])
        opt.lr, opt.steps, opt.epochs = scalars[1:]
        self._setup_buckets()
        self._epoch = 0
        self.exchange_used = "shared" if shared else "allreduce"

    def _make_window(self):
        """The node's shared window for this fit. True when every rank has it; if MPI could
        not allocate it on some rank (a small /dev/shm in a container, say): "shared" raises
        on every rank, "auto" warns and uses Allreduce."""
        m = self.model
        error = None
        try:
            window = _NodeExchange(self, m.params.size, m.dtype, sorted(m.optimizer.state))
        except self.MPI.Exception as e:
            window, error = None, e
        failed = self.comm.allgather(None if error is None else str(error))
        bad = [(r, e) for r, e in enumerate(failed) if e is not None]
        if not bad:
            self._window = window
            return True
        # Not freed where it exists: freeing is collective over the node, with the rank
        # that has none.
        r, e = bad[0]
        text = (f"the shared window for the parameters, optimizer state and gradients "
                f"({m.params.nbytes:,} bytes each) could not be allocated on rank {r} ({e}); "
                f"in a container, give it more shared memory (docker run --shm-size=...)")
        if self.exchange == "shared":
            raise _collective(RuntimeError(f"exchange='shared': {text}"))
        warnings.warn(f"distributed fit sums with Allreduce instead: {text}", RuntimeWarning)
        return False

    def _use_shared(self):
        """Whether this fit sums through node-shared memory (the same answer on every rank)."""
        if self.exchange == "allreduce":
            return False
        if self.size == 1:
            if self.exchange == "shared":
                raise _collective(ValueError(
                    "exchange='shared' is not possible: the communicator has one process, "
                    "so there is no memory to share and no gradient to exchange; launch "
                    "several ranks (mpiexec -n N python -m mpi4py script.py), or use "
                    "exchange='auto', which then trains as a plain fit"))
            return False
        counts = set(self.comm.allgather(_ranks_on_node(self.comm)))
        uniform, fewest = len(counts) == 1, min(counts)
        refusal = _shared_refusal(self.model.optimizer)
        usable = uniform and refusal is None and fewest > 1
        if self.exchange == "shared" and not usable:
            why = (refusal if refusal is not None else "the nodes run different numbers of "
                   "ranks" if not uniform else "no two ranks share a node")
            raise _collective(ValueError(f"exchange='shared' is not possible: {why}; use "
                                         f"exchange='auto' or 'allreduce'"))
        return usable

    def _any(self, stop):
        """fit's hook after the callbacks' on_epoch_end, with this rank's stop_training:
        raises on every rank if the callbacks left the ranks different (see _compare; the
        weights and optimizer state are compared before the next epoch or at the end);
        returns the decision to stop, the same on every rank."""
        self._compare(f"on_epoch_end of epoch {self._epoch + 1}", stop=stop, arrays=False)
        self._epoch += 1
        return bool(stop)

    def _end(self):
        """After training and the callbacks' on_train_end: the ranks must still be alike
        (raises on every rank if not); the model is back in its own buffers and the window
        freed either way."""
        self._phase = None
        try:
            self._compare(f"on_epoch_end of epoch {self._epoch} and on_train_end")
        finally:
            self._release()

    def _after_training(self):
        """After an epoch's steps with Allreduce: the ranks' weights must be identical; if
        MPI's sums differed between ranks (allowed by the standard, not done by MPICH or
        Open MPI for commutative sums), rank 0's weights and optimizer state are taken, with
        a warning."""
        m = self.model
        opt = m.optimizer
        names = sorted(opt.state)
        sums = self.comm.allgather([_checksum(m.params)] +
                                   [_checksum(opt.state[k]) for k in names])
        if any(s != sums[0] for s in sums):
            self.comm.Bcast(m.params, root=0)
            for k in names:
                self.comm.Bcast(opt.state[k], root=0)
            warnings.warn("distributed fit: the ranks' weights differed after an epoch's "
                          "training (the MPI library's Allreduce gave different sums on "
                          "different ranks); rank 0's weights and optimizer state were "
                          "copied to every rank", RuntimeWarning)

    def _release(self):
        """Collective: the model back in its own buffers (with the trained values), and the
        shared window freed."""
        node, self._node = self._node, None
        window, self._window = self._window, None
        if node is not None:
            node.close()
        if window is not None:
            window.free()

    def _setup_buckets(self):
        """Group the layers with parameters, from the last, into contiguous ranges of the flat
        gradient buffer; a bucket is sent once the backward pass reaches its first layer."""
        m = self.model
        spans = {}
        for s in m._slots:
            lo, hi = spans.get(s.layer, (s.offset, s.offset + s.size))
            spans[s.layer] = (min(lo, s.offset), max(hi, s.offset + s.size))
        item = m.dtype.itemsize
        buckets, cur = {}, None  # first layer of a bucket -> (lo, hi)
        for i in sorted(spans, reverse=True):
            lo, hi = spans[i]
            cur = (lo, hi) if cur is None else (lo, cur[1])
            if (cur[1] - cur[0]) * item >= self.bucket_bytes or i == min(spans):
                buckets[i] = cur
                cur = None
        self._buckets = {i: m.grads[lo:hi] for i, (lo, hi) in buckets.items()}

    def _run_epoch(self, X, Y, W, batch_size, on_batch, guard, perm=None):
        """The engine's run_epoch across the ranks: the same EpochResult (global sums) on
        every rank.

        First checks that the callbacks so far left the ranks alike. Each rank runs the
        compiled plan over its share of every batch, the exchange summing in the plan's hook
        (Engine.run_epoch's ``shard``). With the shared exchange the model moves into the
        node's window for the epoch's steps, and out of it (into its own buffers) for the
        callbacks and the validation."""
        per_batch = on_batch is not None and getattr(on_batch, "per_batch", True)
        e = self._epoch + 1
        hooks = ("on_train_begin and on_epoch_begin of epoch 1" if e == 1 else
                 f"on_epoch_end of epoch {e - 1} and on_epoch_begin of epoch {e}")
        private = self._compare(hooks, flag=per_batch)
        m = self.model
        window = self._window
        if window is not None:
            window.open(m)
            self._node = window
            shard = window
        elif self.size > 1:
            shard = _Allreduce(self, self._buckets if self.overlap else {})
        else:  # one process: nothing to exchange, the plain fit's step and bits
            shard = None
        if private:  # every rank meets after each batch: the callbacks see its own copy
            on_batch = self._private(on_batch, e)
        res = m._engine.run_epoch(X, Y, W, batch_size, on_batch, guard, perm, shard)
        if guard is not None and res.nonfinite is None and res.batches:
            self._check_last_update(guard, res, window)
        if window is not None:
            self._node = None
            window.close()
        elif self.size > 1:
            self._after_training()
        if m.state.size and self.size > 1:
            # Batch norm normalises each rank's share by its own statistics, and each rank's
            # running statistics follow its own shares (PyTorch's DDP without SyncBatchNorm);
            # rank 0's are then every rank's, as DDP's broadcast_buffers makes them, so that
            # the ranks validate, predict and save one model.
            self.comm.Bcast(m.state, root=0)
        # The loss and batch weights are global; the metrics this rank's.
        nm = len(res.metric_sums)
        sums = np.array(res.metric_sums + res.metric_counts, np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, sums, op=self.MPI.SUM)
        res.metric_sums = [float(v) for v in sums[:nm]]
        res.metric_counts = [int(v) for v in sums[nm:]]
        return res

    def _private(self, on_batch, epoch):
        """on_batch for when some rank has a per-batch callback: after each batch every rank
        (out of the window, if in it) calls its callbacks, then the ranks must still be
        alike."""
        m = self.model

        def each_batch(b, rows, loss):
            node, self._node = self._node, None
            if node is not None:
                node.close()
            if on_batch is not None:
                on_batch(b, rows, loss)
            self._compare(f"on_train_batch_end of batch {b + 1} of epoch {epoch}")
            if node is not None:
                node.open(m)
                self._node = node

        each_batch.per_batch = True
        return each_batch

    def _check_last_update(self, guard, res, node):
        """The epoch's last update has no next loss to check it (NanGuard.after_epoch): its
        weights are checked, each rank its range of the shared parameters (or all of its
        own), and every rank takes the same decision: a NaN/inf anywhere puts back the
        weights of the last finite loss on every rank, and res says so."""
        params = self.model.params
        part = node.range if node is not None else slice(None)
        found = self.comm.allgather(guard.first_bad(params[part]))
        bad = [v for v in found if v is not None]
        if not bad:
            return
        guard.restore_weights(params, res, bad[0], part)
        if node is not None:
            node.sync()  # every range is back before the window closes

    def _evaluate(self, X, Y, W, batch_size, what=None):
        """Sequential._evaluate_arrays over this rank's rows, reduced across the ranks (in
        rank order: the same sums on every rank). An error on one rank raises on every
        rank. With `what`, refuses (on every rank) while fit runs in another thread."""
        m = self.model
        r0, r1 = _shard(0, X.shape[0], self.rank, self.size)
        nm = len(m.metrics)
        sums = np.zeros(2 + 2 * nm)
        error = None
        try:
            if what is not None:
                m._refuse_during_fit(what)
            if r1 > r0:
                total, weight, msums, mcounts = m._engine.evaluate_sums(
                    X[r0:r1], Y[r0:r1], None if W is None else W[r0:r1], batch_size)
                sums[:] = [total, weight, *msums, *mcounts]
        except BaseException as e:
            error = e
        every = self.comm.allgather((None if error is None else
                                     f"{type(error).__name__}: {error}", sums))
        if error is not None:
            raise _collective(error)
        bad = [(r, e) for r, (e, _) in enumerate(every) if e is not None]
        if bad:
            r, e = bad[0]
            raise _collective(RuntimeError(f"distributed evaluation: rank {r} failed ({e}); "
                                           f"every rank stops"))
        sums = every[0][1].copy()
        for _, s in every[1:]:
            sums += s
        return m._evaluate_logs(sums[0], sums[1], sums[2:2 + nm], sums[2 + nm:])


class _NodeExchange:
    """The ranks of a node share one MPI window holding the parameters, the optimizer state
    and one gradient buffer per rank; the model of every rank points into it during the
    steps of an epoch (:meth:`open` ... :meth:`close`), into its own buffers otherwise.

    A step, after every rank's backward pass: rank r of the node sums range r of the node's
    gradient buffers into its own buffer (then ``Allreduce`` that range with rank r of
    every other node), updates range r of the parameters and optimizer state, and the node
    waits for all ranges before the next forward pass. Within a node nothing is copied
    through MPI, and each rank does 1/N of the update (an ``Allreduce`` of the whole buffer
    moves it through MPI's shared-memory cells twice, then every rank updates everything).

    One window per fit, freed at its end (:meth:`free`, collective).
    """

    def __init__(self, dp, n, dtype, names):
        MPI = dp.MPI
        self.MPI = MPI
        self.local = _node_comm(dp.comm)
        size, rank = self.local.Get_size(), self.local.Get_rank()
        self.cross = dp.comm.Split(rank, dp.rank)  # rank r of every node
        item = np.dtype(dtype).itemsize
        stride = -(-n * item // 4096) * 4096 // item  # each buffer starts on a page
        count = stride * (1 + len(names) + size)
        self.win = MPI.Win.Allocate_shared(count * item if rank == 0 else 0, item,
                                           comm=self.local)
        mem, _ = self.win.Shared_query(0)
        whole = np.frombuffer(mem, dtype, count)
        part = [whole[j * stride:j * stride + n] for j in range(1 + len(names) + size)]
        self.params, self.grads = part[0], part[1 + len(names) + rank]
        self.state = dict(zip(names, part[1:1 + len(names)]))
        node_grads = part[1 + len(names):]
        # Range r, in whole cache lines (no two ranks write one line).
        line = max(1, 64 // item)
        cuts = [min(n, -(-(n * q // size) // line) * line) for q in range(size + 1)]
        r = self.range = slice(cuts[rank], cuts[rank + 1])
        # This rank's range of everything, and the other ranks' gradients over it.
        self.mine = (self.params[r], self.grads[r], {k: v[r] for k, v in self.state.items()})
        self.others = [buf[r] for q, buf in enumerate(node_grads) if q != rank]
        # One node: the plan adds the others' gradients as it updates (Engine.run_epoch's
        # shard.peers); several: the range is summed here, then across the nodes.
        self.peers = ([buf for q, buf in enumerate(node_grads) if q != rank]
                      if self.cross.Get_size() == 1 else [])
        self.node_rank = rank
        # Engine.run_epoch's shard: this process's rank among all, and its update range
        self.comm, self.rank, self.size = dp.comm, dp.rank, dp.size
        self.update = (r.start, r.stop)
        self.loss = np.zeros(1)
        self.model = self.own = None
        self.win.Lock_all(MPI.MODE_NOCHECK)  # a passive epoch: loads, stores, Win.Sync

    def open(self, model):
        """Collective: point the model (and its optimizer state) into the window. The ranks
        hold the same values (checked before): node rank 0 copies them in."""
        opt = model.optimizer
        # Node rank 0 copies the state and the parameters (moving its model in), then the
        # others move theirs in (which writes the same values again, after rank 0 is done).
        self.model, self.own = model, (model.params, model.grads, dict(opt.state))
        if self.node_rank == 0:
            for k, v in self.state.items():
                v[...] = opt.state[k]
            model._swap_buffers(self.params, self.grads)
        self.sync()
        if self.node_rank != 0:
            model._swap_buffers(self.params, self.grads)
        opt.state = dict(self.state)
        self.sync()

    def close(self):
        """Collective: every rank's model back in its own buffers, with the values."""
        m, (params, grads, state) = self.model, self.own
        self.sync()
        m._swap_buffers(params, grads)
        for k, v in state.items():
            v[...] = self.state[k]
        m.optimizer.state = state
        self.model = self.own = None
        self.sync()  # every rank has read the window before anyone writes it again

    def free(self):
        """Collective: release the window's memory (no array into it is left) and the
        node's communicators."""
        self.params = self.grads = self.state = self.mine = self.others = self.peers = None
        self.win.Unlock_all()
        self.win.Free()
        self.cross.Free()
        self.local.Free()

    def sync(self):
        """The node's ranks meet; each sees the others' stores made before."""
        self.win.Sync()
        self.local.Barrier()
        self.win.Sync()

    # -- the plan's hook (Engine.run_epoch's shard) --------------------------------------------
    layers = ()

    def layer_done(self, i):
        pass

    def grads_done(self, loss):
        """After every rank's backward pass: this rank's range of the gradients summed over
        the node (by the plan, with the update, when there is one node: ``peers``), then
        over the nodes; returns the global batch's loss."""
        g = self.mine[1]
        self.sync()  # every rank's gradients are complete
        if not self.peers:
            for other in self.others:
                np.add(g, other, out=g)
            self.cross.Allreduce(self.MPI.IN_PLACE, g, op=self.MPI.SUM)
        self.loss[0] = loss
        self.comm.Allreduce(self.MPI.IN_PLACE, self.loss, op=self.MPI.SUM)
        return float(self.loss[0])

    def updated(self):
        self.sync()  # every range is updated before the next forward pass reads them


class _Allreduce:
    """The plan's hook for exchange="allreduce": every rank sums the whole gradient buffer,
    bucket by bucket as the backward pass makes them with overlap (a bucket's first layer
    starts an Iallreduce of it; the other layers let MPI progress), else in one Allreduce,
    and applies the whole update."""

    def __init__(self, dp, buckets):
        m = dp.model
        self.MPI, self.comm, self.rank, self.size = dp.MPI, dp.comm, dp.rank, dp.size
        self.grads, self.buckets, self.reqs = m.grads, buckets, []
        self.layers = tuple(range(m._first_param, len(m._layers))) if buckets else ()
        self.update, self.peers = (0, m.params.size), ()
        self.loss = np.zeros(1)

    def layer_done(self, i):
        buf = self.buckets.get(i)
        if buf is not None:
            self.reqs.append(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM))
        elif self.reqs:
            self.MPI.Request.Testall(self.reqs)

    def grads_done(self, loss):
        MPI = self.MPI
        if not self.buckets:
            self.comm.Allreduce(MPI.IN_PLACE, self.grads, op=MPI.SUM)
        self.loss[0] = loss
        self.comm.Allreduce(MPI.IN_PLACE, self.loss, op=MPI.SUM)
        MPI.Request.Waitall(self.reqs)
        self.reqs = []
        return float(self.loss[0])

    def updated(self):
        pass


def _resolve(model, distributed):
    """fit's ``distributed`` argument as a DataParallel (None when not distributed)."""
    if distributed is None or distributed is False:
        return None
    if isinstance(distributed, DataParallel):
        if distributed.model is not model:
            raise ValueError("distributed is a DataParallel of another model; use "
                             "DataParallel(model).fit(...) or fit(..., distributed=True)")
        return distributed
    MPI = _mpi()
    if distributed is True or isinstance(distributed, MPI.Comm):
        # A new one each fit (collective, as fit): nothing of it outlives the fit.
        return DataParallel(model, get_comm(None if distributed is True else distributed))
    raise TypeError(f"distributed must be True, False, an mpi4py communicator or a "
                    f"DataParallel, got {distributed!r}")
