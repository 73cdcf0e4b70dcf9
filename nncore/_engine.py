"""The training engine of a Sequential model: where its parameters live, the per-batch
workspaces, the compiled plans (nncore._core.Plan) built over them, and the loops that run
them. The model (models.py) keeps the Keras-like API; data-parallel training
(distributed.py) runs the same engine.

Memory layout (what a compiled plan relies on)
----------------------------------------------
* ``model.params`` is one contiguous 1-D array (the model's dtype, 64-byte aligned) holding
  every parameter; ``model.grads`` has the same layout for the gradients. Each layer's
  ``W``/``b`` (and ``dW``/``db``) are views into them, each segment starting on a 64-byte
  boundary (the padding between segments stays zero in both buffers): :func:`layout`.
* Optimizer state arrays are flat arrays of the same size, so one compiled call updates the
  whole model.
* ``model.state`` holds, in the same way, what layers keep but do not train (batch norm's
  running statistics): saved and loaded with the parameters, never updated by the
  optimizer.
* Per-batch workspaces (layer outputs, pre-activations, input gradients, dropout masks, the
  loss gradient) are allocated once for the largest batch and reused; a smaller batch uses
  the first rows of each (a C-contiguous view).
* An epoch runs through :meth:`Engine.run_epoch` on already-validated arrays and the epoch's
  shuffle permutation: each batch gathers its rows through it into a buffer of the batch's
  size (the data set is never copied). The compiled plan takes the step; the Python loop
  over the same kernels (:meth:`Engine.run_epoch_python`) is its reference twin, bitwise,
  and runs models the plan does not know.
"""

import collections
import math

import numpy as np

from . import _core
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._validation import check_features, check_int

ALIGN_BYTES = 64
# What the compiled plan runs (exact types: a subclass may change the computation).
PLAN_LOSSES = (_losses.MSELoss, _losses.L1Loss, _losses.HuberLoss, _losses.PoissonNLLLoss,
               _losses.BCEWithLogitsLoss, _losses.CrossEntropyLoss)
PLAN_METRICS = (_metrics.Accuracy, _metrics.MeanSquaredError, _metrics.MeanAbsoluteError)
PREDICT_BATCH = 1024
INFER_ROWS = 256


def aligned_zeros(n, dtype):
    """A zeroed 1-D array of n elements whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + ALIGN_BYTES, dtype=np.uint8)
    start = -raw.__array_interface__["data"][0] % ALIGN_BYTES
    return raw[start:start + n * dtype.itemsize].view(dtype)


class Slot(collections.namedtuple("Slot", "layer name key offset shape")):
    """Where one parameter array lives in the flat buffers."""

    @property
    def size(self):
        return math.prod(self.shape)


def layout(layers, dtype, state=False):
    """Where each parameter of ``layers`` (with state: each array of untrained state, such as
    batch norm's running statistics) lives in one flat buffer of ``dtype``: (slots, size).
    Each segment starts on a 64-byte boundary."""
    align = ALIGN_BYTES // dtype.itemsize
    slots, offset = [], 0
    for i, layer in enumerate(layers):
        for pname, shape in (layer._buffer_shapes() if state else layer._param_shapes()):
            offset = -(-offset // align) * align
            slots.append(Slot(i, pname, f"{i}.{pname}", offset, shape))
            offset += math.prod(shape)
    return slots, offset


class _Same:
    """A part of a cache key that matches the same object only. Arrays cannot be key parts
    as they are: ``==`` compares them element by element. Holding the object (not its id)
    keeps its id from being reused while the key lives."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


class Workspace:
    """Per-layer buffers for batches of up to `capacity` rows, plus the loss gradient."""

    def __init__(self, model, capacity, training):
        self.capacity = capacity
        self.training = training
        dtype = model.dtype
        self.bufs = []
        n_in = model.n_features
        for i, layer in enumerate(model._layers):
            need_dx = training and i > model._first_param
            self.bufs.append(layer._buffers(capacity, n_in, dtype, training, need_dx))
            n_in = layer.output_features(n_in)
        self.grad = np.empty((capacity, n_in), dtype) if training else None
        self.inputs = [None] * len(model._layers)
        self._views = {capacity: (self.bufs, self.grad)}

    def rows(self, n):
        """(per-layer buffers, loss gradient) for a batch of n rows (views, cached)."""
        v = self._views.get(n)
        if v is None:
            if len(self._views) > 8:
                self._views = {self.capacity: (self.bufs, self.grad)}
            v = ([b.rows(n) for b in self.bufs], None if self.grad is None else self.grad[:n])
            self._views[n] = v
        return v


class NanGuard:
    """TerminateOnNaN's state across the epochs of one fit: a copy of the parameters that
    gave the last finite batch loss (and of the layers' untrained state as that batch left
    it: batch norm's running statistics), and whether it holds anything yet."""

    __slots__ = ("backup", "valid", "state", "state_backup")

    def __init__(self, params, state):
        self.backup = np.empty_like(params)
        self.state, self.state_backup = state, state.copy()
        self.valid = False

    def after_loss(self, loss, params, res, batch, part=slice(None)):
        """After batch `batch`'s loss: True to go on (params saved); False when the loss is
        not finite: the parameters of the last finite loss are back in params and res holds
        the batch and its loss. Only the range ``part`` of params is saved and put back
        (the range a rank updates when the ranks of a node share the parameters)."""
        # A running variance can overflow while the loss stays finite (batch norm
        # normalises it away): that batch stops training as a non-finite loss does.
        bad = self.first_bad(self.state) if math.isfinite(loss) else None
        if not math.isfinite(loss) or bad is not None:
            if self.valid:
                np.copyto(params[part], self.backup[part])
            np.copyto(self.state, self.state_backup)
            res.nonfinite = (batch, loss) if bad is None else (batch, bad, "state")
            res.loss_sum, res.weight_sum = res.nonfinite[1], 1.0
            return False
        np.copyto(self.backup[part], params[part])
        np.copyto(self.state_backup, self.state)
        self.valid = True
        return True

    def after_epoch(self, params, res):
        """After an epoch whose losses were all finite: its last update has no next loss to
        check it, so the weights are checked instead. False when one is NaN/inf: the
        parameters of the last finite loss are back and res says where (batch, value)."""
        value = self.first_bad(params)
        if value is None:
            value = self.first_bad(self.state)
        if value is None or res.batches == 0:
            return True
        self.restore_weights(params, res, value)
        return False

    @staticmethod
    def first_bad(params):
        """The first NaN/inf of params, or None."""
        i = _core.first_nonfinite(params) if params.size else -1
        return None if i < 0 else params[i].item()

    def restore_weights(self, params, res, value, part=slice(None)):
        """A weight became ``value`` (NaN/inf) in the epoch's last update: the range ``part``
        of params gets back the weights of the last finite loss, and res says so."""
        if self.valid:
            np.copyto(params[part], self.backup[part])
        np.copyto(self.state, self.state_backup)
        res.nonfinite = (res.batches - 1, value, "weights")
        res.loss_sum, res.weight_sum = value, 1.0


class EpochResult:
    __slots__ = ("loss_sum", "weight_sum", "metric_sums", "metric_counts", "nonfinite",
                 "batches")

    def __init__(self, n_metrics):
        self.loss_sum = 0.0
        self.weight_sum = 0.0
        self.metric_sums = [0.0] * n_metrics
        self.metric_counts = [0] * n_metrics
        self.nonfinite = None
        self.batches = 0


class Engine:
    """One model's workspaces and cached compiled plans, and the loops that run them. Built
    for the model's layers and settings as they are: :meth:`reset` when they change."""

    def __init__(self, model):
        self.model = model
        self.reset()

    def reset(self):
        """Drop the workspaces and plans (they point into buffers or copy settings that
        changed)."""
        self.train_ws = self.infer_ws = None
        self.plans = {}

    def drop_plans(self):
        """Drop the plans only (the model's buffers moved; the workspaces still serve)."""
        self.plans = {}

    def forward(self, x, bufs, training, inputs=None):
        model = self.model
        h = x
        for i, layer in enumerate(model._layers):
            if inputs is not None:
                inputs[i] = h
            h = layer._forward(h, bufs[i], training, model)
        return h

    def inference_ws(self, rows):
        model = self.model
        ws = self.infer_ws
        if ws is None or ws.capacity < rows:
            # At least INFER_ROWS: the compiled plan then serves a one-sample predict and a
            # batch of hundreds alike (larger inputs run in chunks of its capacity).
            ws = self.infer_ws = Workspace(model, max(rows, INFER_ROWS), training=False)
        return ws

    def training_ws(self, rows):
        model = self.model
        ws = self.train_ws
        if ws is None or ws.capacity < rows:
            ws = self.train_ws = Workspace(model, rows, training=True)
        return ws

    def plan(self, ws, guard=None):
        """The compiled plan (nncore._core.Plan) over workspace ``ws``, cached; None when the
        model uses a layer, loss, metric or optimizer the plan does not know (a subclass or
        a custom one): the Python loop then runs the same kernels one by one."""
        model = self.model
        training = ws.training
        opt = model.optimizer if training else None
        key = (ws, opt, model.loss, tuple(model.metrics),
               _Same(None if guard is None else guard.backup),
               tuple(map(_Same, opt.state.values() if opt is not None else ())),
               # momentum, betas, clipping ... as set now (a tuple compares faster than a repr)
               None if opt is None else (tuple(opt._hyper().items()), opt.global_clipnorm,
                                         opt.clipvalue,
                                         getattr(opt.schedule, "per_step", False)))
        cached = self.plans.get(training)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = self._build_plan(ws, opt, guard)
        self.plans[training] = (key, plan)
        return plan

    @staticmethod
    def _layer_specs(layer, buf, n_in, specs):
        """Append the plan's layer descriptions of ``layer`` (a residual block: a begin
        marker, its layers, an end marker) to specs; False for a layer the plan does not
        know."""
        L, kind = _layers, type(layer)
        if kind is L.Dense:
            a = layer.activation
            specs.append(dict(kind="dense", act=a.name, alpha=a.alpha, p=0.0,
                              w=layer._W, b=layer._b, dw=layer._dW, db=layer._db,
                              y=buf.y, z=buf.z, dx=buf.dx, mask=None,
                              **{"in": layer._in, "out": layer._out}))
        elif kind is L.BatchNorm or kind is L.LayerNorm:
            bn = kind is L.BatchNorm
            specs.append(dict(kind="batchnorm" if bn else "layernorm", eps=layer._eps,
                              momentum=layer._momentum if bn else 0.0,
                              w=layer._gamma, b=layer._beta, dw=layer._dgamma,
                              db=layer._dbeta, y=buf.y, dx=buf.dx, stats=buf.stats,
                              running_mean=layer._running_mean if bn else None,
                              running_var=layer._running_var if bn else None,
                              **{"in": n_in, "out": n_in}))
        elif kind is L.Dropout:
            specs.append(dict(kind="dropout", p=layer.p, y=buf.y, mask=buf.mask,
                              **{"in": n_in, "out": n_in}))
        elif kind is L.Activation:
            a = layer.activation
            specs.append(dict(kind="activation", act=a.name, alpha=a.alpha, y=buf.y,
                              dx=buf.dx, **{"in": n_in, "out": n_in}))
        elif kind is L.Residual:
            begin = len(specs)
            specs.append(dict(kind="residual_begin", dx=buf.dx, **{"in": n_in, "out": n_in}))
            d = n_in
            for sub, sub_buf in zip(layer._layers, buf.subs):
                if not Engine._layer_specs(sub, sub_buf, d, specs):
                    return False
                d = sub.output_features(d)
            specs[begin]["link"] = len(specs)
            specs.append(dict(kind="residual_end", link=begin, y=buf.y, dx=buf.skip,
                              **{"in": n_in, "out": n_in}))
        else:
            return False
        return True

    def _build_plan(self, ws, opt, guard):
        model = self.model
        specs, n_in, starts = [], model.n_features, []
        for layer, buf in zip(model._layers, ws.bufs):
            starts.append(len(specs))
            if not self._layer_specs(layer, buf, n_in, specs):
                return None
            n_in = layer.output_features(n_in)
        # The plan's first layer with parameters, and where each model layer's backward pass
        # ends in the plan (its first plan layer, or that one inside the first block with
        # parameters): the data-parallel hook reports model layers.
        first = next((k for k, s in enumerate(specs) if s.get("w") is not None), len(specs))
        for s in specs:
            s["hook_of"] = -1
        for i, start in enumerate(starts):
            if i >= model._first_param:
                specs[max(start, first)]["hook_of"] = i
        loss, metrics = model.loss, model.metrics
        if loss is None:
            loss_name, prob, loss_param = "mse", None, 0.0
        elif type(loss) in PLAN_LOSSES:
            loss_name, prob, loss_param = loss.name, loss.prediction, loss.param
        else:
            return None
        if any(type(m) not in PLAN_METRICS for m in metrics):
            return None
        names = [m.name for m in metrics]
        state, hyper, kind = (), {"lr": 0.0}, "sgd"
        if opt is not None:
            if type(opt) is _optimizers.SGD:
                hyper = dict(lr=opt.lr, momentum=opt.momentum, dampening=opt.dampening,
                             weight_decay=opt.weight_decay, nesterov=opt.nesterov)
                state = (opt.state.get("momentum_buffer"),)
            elif type(opt) in (_optimizers.Adam, _optimizers.AdamW):
                kind = "adam"
                hyper = dict(lr=opt.lr, betas=opt.betas, eps=opt.eps,
                             weight_decay=opt.weight_decay, amsgrad=opt.amsgrad,
                             decoupled=opt._decoupled)
                s = opt.state
                state = (s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"))
            else:
                return None
            hyper.update(global_clipnorm=opt.global_clipnorm, clipvalue=opt.clipvalue)
        cap = ws.capacity
        needs_scratch = prob is not None and any(n in ("mse", "mae") for n in names)
        scratch = np.empty((cap, model.n_outputs), model.dtype) if needs_scratch else None
        grad = ws.grad if ws.grad is not None else np.empty((cap, model.n_outputs), model.dtype)
        rows = None
        if ws.training:  # where train gathers a batch's rows through the shuffle permutation
            targets = (np.empty(cap, np.int64) if loss_name == "cross_entropy" else
                       np.empty((cap, model.n_outputs), model.dtype))
            rows = (np.empty((cap, model.n_features), model.dtype), targets,
                    np.empty(cap, model.dtype))
        return _core.Plan(
            model.dtype, specs, first_param=first, n_features=model.n_features,
            n_outputs=model.n_outputs, capacity=cap, grad=grad, scratch=scratch,
            loss=loss_name, loss_param=loss_param, prob_act=prob or "identity", metrics=names,
            optimizer=kind, hyper=hyper, params=model.params, grads=model.grads, state=state,
            dropout_seed=model._dropout_seed, backup=None if guard is None else guard.backup,
            layer_state=model.state if model.state.size else None,
            layer_state_backup=guard.state_backup if guard is not None and model.state.size
            else None, rows=rows, training=ws.training, bf16=model.policy == "mixed_bfloat16")

    def _run_epoch_plan(self, plan, X, Y, W, batch_size, on_batch, guard, perm):
        """run_epoch through the compiled plan: chunks of batches per nogil call; Python
        regains control between chunks (progress, Ctrl-C) and at the end."""
        model = self.model
        opt = model.optimizer
        plan.lr, plan.steps, plan.rng_counter = opt.lr, opt.steps, model._rng_counter
        sched = opt.schedule
        if sched is not None and sched.per_step:  # this epoch's steps' rates, at most
            plan.step_schedule(*sched.tables(opt.steps, -(-X.shape[0] // batch_size)),
                               origin=opt.steps)
        else:
            plan.step_schedule(None)
        if guard is not None:
            plan.backup_valid = guard.valid
        plan.reset_stats()
        n = X.shape[0]
        n_batches = -(-n // batch_size)
        # A chunk is about 16k rows (Ctrl-C and the progress bar answer within it), or one
        # batch when a callback wants every batch.
        per_batch = on_batch is not None and getattr(on_batch, "per_batch", True)
        chunk = 1 if per_batch else max(1, 16384 // batch_size)
        finite, loss_seen, weight_seen = True, 0.0, 0.0
        try:
            for b0 in range(0, n_batches, chunk):
                b1 = min(b0 + chunk, n_batches)
                finite = plan.train(X, Y, W, batch_size, b0, b1, perm)
                if not finite:
                    break
                if on_batch is not None:
                    loss_sum, weight_sum = plan.stats()[:2]
                    rows = min(b1 * batch_size, n) - b0 * batch_size
                    dw = weight_sum - weight_seen
                    on_batch(b1 - 1, rows, (loss_sum - loss_seen) / dw if dw else math.nan)
                    loss_seen, weight_seen = loss_sum, weight_sum
        finally:  # also when interrupted: the counters match the weights
            opt.steps, model._rng_counter = plan.steps, plan.rng_counter
            if sched is not None and sched.per_step and opt.steps > 0:  # the last step's
                opt.lr, opt._momentum_now = sched.at(opt.steps - 1)
            if guard is not None:
                guard.valid = plan.backup_valid
        loss_sum, weight_sum, msums, mcounts, batches, bad, last, state = plan.stats()
        res = EpochResult(len(model.metrics))
        res.loss_sum, res.weight_sum, res.batches = loss_sum, weight_sum, batches
        res.metric_sums, res.metric_counts = msums, mcounts
        if not finite:
            res.nonfinite = (bad, last, "state") if state else (bad, last)
            res.loss_sum, res.weight_sum = last, 1.0
        return res

    def run_epoch(self, X, Y, W, batch_size, on_batch=None, guard=None, perm=None,
                  shard=None):
        """Train one epoch over the rows of X in order, or in the order of ``perm``, in
        batches of batch_size (the last one may be smaller). The arrays are validated.

        X (n, n_features), Y (n, n_outputs) or labels (n,), W (n,) or None, all
        C-contiguous in the model dtype (labels int64); perm None or an int64 permutation of
        range(n): batch b is then rows perm[b * batch_size ...], the same bits as training
        on X[perm], Y[perm], W[perm] in order. ``on_batch(batch, rows, loss)`` is
        called after each update when given. ``guard`` (a NanGuard) turns on the
        non-finite check: a batch whose loss is NaN/inf stops the epoch before its update and
        the parameters that gave the last finite loss are put back.

        ``shard``: data-parallel training (distributed.py), an object with ``rank``,
        ``size``, ``layers``, ``update``, ``peers`` and the events ``layer_done(i)``,
        ``grads_done(loss) -> loss`` and ``updated()``: the contract of
        :meth:`nncore._core.Plan.data_parallel`. Each rank runs its share of every batch;
        the result's loss and weights are then global, its metrics this rank's.
        """
        size = 1 if shard is None else shard.size
        ws = self.training_ws(-(-batch_size // size))
        plan = self.plan(ws, guard)
        if plan is None:
            with _core.flush_subnormals():  # the plan's floating-point mode: the plan's bits
                return self.run_epoch_python(ws, X, Y, W, batch_size, on_batch, guard, perm,
                                             shard)
        if shard is None:
            return self._run_epoch_plan(plan, X, Y, W, batch_size, on_batch, guard, perm)
        plan.data_parallel(shard, shard.rank, shard.size, shard.layers, shard.update,
                           shard.peers)
        try:
            return self._run_epoch_plan(plan, X, Y, W, batch_size, on_batch, guard, perm)
        finally:
            plan.data_parallel(None)

    def run_epoch_python(self, ws, X, Y, W, batch_size, on_batch, guard, perm, shard=None):
        """run_epoch kernel by kernel: the plan's reference twin, and the engine of models
        with a layer, loss, metric or optimizer of the user's own."""
        model = self.model
        layers = model._layers
        L, first = len(layers), model._first_param
        forward = [layer._forward for layer in layers]
        backward = [layer._backward for layer in layers]
        loss_kernel = model.loss.forward
        metrics = [m._batch for m in model.metrics]
        res = EpochResult(len(metrics))
        inputs = ws.inputs
        params, grads, opt = model.params, model.grads, model.optimizer
        rank, size = (0, 1) if shard is None else (shard.rank, shard.size)
        lo, hi = (0, params.size) if shard is None else shard.update
        part, hooked = slice(lo, hi), () if shard is None else shard.layers
        peers = () if shard is None else shard.peers
        # Data-parallel: each row's weight is w / (d * the global batch's weight), the loss
        # summed: the ranks' losses and gradients add up to the global batch's mean.
        per_row = 1.0 if model.loss.labels else float(model.n_outputs)
        dropout_widths = self._dropout_widths()
        n = X.shape[0]
        for b, start in enumerate(range(0, n, batch_size)):
            stop = min(start + batch_size, n)
            rows = stop - start
            batch = slice(start, stop) if perm is None else perm[start:stop]  # perm: copies
            bw = rows if W is None else sum(W[batch].tolist())  # in order, in double
            if bw == 0.0:  # nothing to learn from (and the weighted mean is undefined)
                continue
            r0 = start + rows * rank // size
            m = start + rows * (rank + 1) // size - r0
            mine = slice(r0, r0 + m) if perm is None else perm[r0:r0 + m]
            wb = None if W is None else W[mine]
            if shard is not None:
                norm = per_row * bw
                wb = (np.full(m, 1.0 / norm, model.dtype) if W is None else
                      (wb.astype(np.float64) / norm).astype(model.dtype))
            loss, h, yb = 0.0, None, None
            if m > 0:
                bufs, grad = ws.rows(m)
                yb = Y[mine]
                h = X[mine]
                if shard is not None:  # the dropout draws of rows r0 .. of the batch
                    model._dropout_rows = (r0 - start, rows)
                try:
                    for i in range(L):
                        inputs[i] = h
                        h = forward[i](h, bufs[i], True, model)
                finally:
                    model._dropout_rows = None
                loss = loss_kernel(h, yb, wb, "mean" if shard is None else "sum", grad=grad)[0]
            if shard is None:
                if guard is not None and not guard.after_loss(loss, params, res, b):
                    return res
                self._count(res, metrics, h, yb, loss, bw)
            if m > 0:
                g = grad
                for i in range(L - 1, first - 1, -1):
                    g = backward[i](g, inputs[i], bufs[i], model)
                    if i in hooked:
                        shard.layer_done(i)
            else:  # a rank with no rows: zero gradients, the batch's dropout draws passed
                grads[:] = 0
                for w in dropout_widths:
                    model._rng_counter += rows * w
                for i in range(L - 1, first - 1, -1):
                    if i in hooked:
                        shard.layer_done(i)
            if shard is not None:
                loss = shard.grads_done(loss)
                if guard is not None and not guard.after_loss(loss, params, res, b, part):
                    shard.updated()
                    return res
                self._count(res, metrics, h, yb, loss, bw)
            for peer in peers:  # the other ranks' gradients, in order, over the range
                np.add(grads[part], peer[part], out=grads[part])
            if hi - lo == params.size:
                opt.step()
            else:  # this rank's range of the parameters (nncore's optimizers only)
                opt._begin_step()
                opt._update(params[part], grads[part], {k: v[part] for k, v in
                                                        opt.state.items()})
                opt.steps += 1
            if shard is not None:
                shard.updated()
            res.batches += 1
            if on_batch is not None:
                on_batch(b, rows, loss)
        return res

    def _dropout_widths(self):
        """The widths of the dropout layers that draw (p > 0), in the order they run, those
        inside residual blocks included."""
        out = []

        def walk(layers, n):
            for layer in layers:
                if isinstance(layer, _layers.Residual):
                    walk(layer._layers, n)
                elif isinstance(layer, _layers.Dropout) and layer.p > 0:
                    out.append(n)
                n = layer.output_features(n)

        walk(self.model._layers, self.model.n_features)
        return out

    @staticmethod
    def _count(res, metrics, out, yb, loss, bw):
        """A batch's loss and its metrics (on this rank's outputs, if any) into res."""
        res.loss_sum += loss * bw
        res.weight_sum += bw
        if out is None:
            return
        for k, metric in enumerate(metrics):
            s, c = metric(out, yb)
            res.metric_sums[k] += s
            res.metric_counts[k] += c

    def evaluate_sums(self, X, Y, W, batch_size):
        """(summed loss, summed weight, metric sums, metric counts) over validated arrays."""
        n = X.shape[0]
        batch_size = min(batch_size, n)
        # The caller holds the model's lock: one inference workspace.
        ws = self.inference_ws(batch_size)
        plan = self.plan(ws)
        if plan is not None:
            plan.reset_stats()
            plan.forward(X, None, Y, W)
            total, weight, sums, counts = plan.stats()[:4]
        else:
            with _core.flush_subnormals():
                total, weight, sums, counts = self._evaluate_python(ws, X, Y, W, batch_size)
        return total, weight, sums, counts

    def _evaluate_python(self, ws, X, Y, W, batch_size):
        model = self.model
        n = X.shape[0]
        loss_kernel = model.loss.forward
        total = weight = 0.0
        sums = [0.0] * len(model.metrics)
        counts = [0] * len(model.metrics)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            bufs, _ = ws.rows(stop - start)
            out = self.forward(X[start:stop], bufs, False)
            wb = None if W is None else W[start:stop]
            yb = Y[start:stop]
            total += loss_kernel(out, yb, wb, "sum", need_grad=False)[0]
            weight += (stop - start) if wb is None else float(wb.sum(dtype=np.float64))
            for k, metric in enumerate(model.metrics):
                s, c = metric._batch(out, yb)
                sums[k] += s
                counts[k] += c
        return total, weight, sums, counts

    def loss_and_grads(self, X, Y, W=None, training=True, dropout_offset=None):
        """Loss (mean) of one batch of validated arrays; fills model.grads. Used by
        check_gradients (dropout_offset fixes the dropout masks)."""
        model = self.model
        if dropout_offset is not None:
            model._rng_counter = dropout_offset
        ws = Workspace(model, X.shape[0], training=True)
        bufs, grad = ws.bufs, ws.grad
        h = self.forward(X, bufs, training, ws.inputs)
        loss = model.loss.forward(h, Y, W, "mean", grad=grad)[0]
        g = grad
        for i in range(len(model._layers) - 1, model._first_param - 1, -1):
            g = model._layers[i]._backward(g, ws.inputs[i], bufs[i], model)
        return loss

    def predict(self, X, batch_size):
        model = self.model
        # (predict tried the cached plan's fast path already, outside fit; here X is checked.)
        batch_size = PREDICT_BATCH if batch_size is None else check_int(
            batch_size, "batch_size", 1)
        X = check_features(X, "X", model.dtype, model.n_features, "predict")
        n = X.shape[0]
        batch_size = min(batch_size, n)
        out = np.empty((n, model.n_outputs), model.dtype)
        # The caller holds the model's lock: one inference workspace.
        ws = self.inference_ws(batch_size)
        plan = self.plan(ws)
        if plan is not None:
            plan.forward(X, out)
            return out
        with _core.flush_subnormals():
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                bufs, _ = ws.rows(stop - start)
                out[start:stop] = self.forward(X[start:stop], bufs, False)
        return out
