"""The Sequential model: a stack of layers, Keras-like compile / fit / evaluate / predict.

The model owns its layers, its settings (optimizer, loss, metrics), its random streams and
its one flat parameter buffer; where things live and how a step runs is the training
engine's (_engine.py): the model validates what the user gives and hands it over.
"""

import collections
import math
import threading

import numpy as np

from . import _core
from . import _engine
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._validation import check_features, check_int, check_number, check_same_length
from ._validation import check_finite_array, check_sample_weight, check_weight_sum

__all__ = ["Sequential"]

_PREDICT_BATCH = _engine.PREDICT_BATCH

_IncompatibleKeys = collections.namedtuple("IncompatibleKeys",
                                           ["missing_keys", "unexpected_keys"])
_ON_NAN = ("ignore", "stop", "raise")


class NonFiniteLossError(FloatingPointError):
    """``fit(..., on_nan="raise")``: a batch's loss was NaN or infinite.

    Attributes
    ----------
    epoch, batch : int
        Where it happened, counted from 0 (the message counts from 1).
    loss : float
        The non-finite loss.
    """

    def __init__(self, epoch, batch, loss, weights=False):
        self.epoch, self.batch, self.loss = epoch, batch, loss
        what = (f"a weight became {loss!r} in the update of epoch {epoch + 1}, batch "
                f"{batch + 1} (the epoch's last)" if weights is True else
                f"batch norm's running statistics became {loss!r} in epoch {epoch + 1}, "
                f"batch {batch + 1}" if weights == "state" else
                f"the training loss became {loss!r} in epoch {epoch + 1}, batch {batch + 1}")
        super().__init__(
            f"{what}; the weights of the last batch with a finite loss were restored (the "
            f"optimizer's state was not). Try a smaller learning rate or check the data's "
            f"scale.")


#: The precision policies a model takes as its dtype, beside float32 and float64.
MIXED_BFLOAT16 = "mixed_bfloat16"


def _model_dtype(dtype):
    """(the parameters' dtype, the policy's name) for Sequential's dtype argument."""
    if isinstance(dtype, str) and dtype == MIXED_BFLOAT16:
        return np.dtype(np.float32), MIXED_BFLOAT16
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32', 'float64' or 'mixed_bfloat16', got "
                         f"{dtype!r}")
    return dt, dt.name


class Sequential:
    """A linear stack of layers, trained with ``compile`` then ``fit``.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers, first to last (more can be added with :meth:`add`). Each Dense layer's
        ``in_features`` must equal the previous layer's output size.
    dtype : {"float32", "float64", "mixed_bfloat16"}, default "float32"
        dtype of the parameters and of every computation. ``"mixed_bfloat16"`` (Keras's
        policy name): float32 parameters, gradients, optimizer state, bias, activations,
        norms and losses, with the dense layers' products on bfloat16 operands (rounded to
        nearest even as they are packed) summed in float32 - AMX or VDPBF16PS where the CPU
        has them (``nncore.show_config()`` says which), float32 multiply-adds of the rounded
        operands elsewhere. :attr:`dtype` is then float32 and :attr:`policy` names it.
    seed : int or None, default None
        Makes the initial weights, the shuffling and the dropout masks reproducible: the
        same seed gives identical weights and an identical History. None draws a fresh
        seed (see :attr:`seed_value`).
    name : str, default "sequential"

    Attributes
    ----------
    n_features, n_outputs : int
        Input features the first Dense layer expects; outputs of the last layer.
    seed_value : int
        The seed in use (``seed``, or the fresh one drawn when seed is None).
    params : ndarray
        All parameters in one flat array (layers' ``W``/``b`` are views into it).
    grads : ndarray
        Their gradients from the last training batch, same layout.
    optimizer, loss, metrics
        Set by :meth:`compile`.
    history : History or None
        The History of the last :meth:`fit`.
    stop_training : bool
        Set it (from a callback) to stop :meth:`fit` after the current epoch.

    Examples
    --------
    >>> import nncore as nn
    >>> model = nn.Sequential([nn.Dense(64, 128, activation="relu"), nn.Dropout(0.1),
    ...                        nn.Dense(128, 10)], seed=0)
    >>> model.compile(optimizer=nn.SGD(lr=0.05, momentum=0.9), loss="cross_entropy",
    ...               metrics=["accuracy"])
    """

    def __init__(self, layers=None, *, dtype="float32", seed=None, name="sequential"):
        #: The parameters' dtype, and the precision policy given as dtype ("float32",
        #: "float64" or "mixed_bfloat16").
        self.dtype, self.policy = _model_dtype(dtype)
        if seed is not None:
            seed = check_int(seed, "seed", 0)
        self.seed = seed
        #: The seed actually used (``seed``, or a fresh one drawn when seed is None).
        self.seed_value = seed if seed is not None else int(np.random.SeedSequence().entropy)
        self.name = str(name)
        self._seed_streams(self.seed_value)
        self.optimizer = self.loss = None
        self.metrics = []
        self.history = None
        self.stop_training = False
        self._nonfinite = None
        #: Text metadata read from a model file (see :meth:`save`).
        self.metadata = {}
        self._layers = []
        self._slots = []
        self._first_param = 0
        self.n_features = self.n_outputs = None
        self._engine = _engine.Engine(self)
        # fit versus other threads: fit waits for running predicts, then refuses new ones
        # One lock: predict, evaluate and save hold it for their whole run (they share the
        # inference workspace); fit takes it only to mark itself running, so a fit starting
        # during a predict waits for it, and a predict during another thread's fit is refused.
        self._lock = threading.Lock()
        self._fit_thread = None
        self.params = _engine.aligned_zeros(0, self.dtype)
        self.grads = _engine.aligned_zeros(0, self.dtype)
        #: The layers' untrained state (batch norm's running statistics) in one flat array.
        self.state = _engine.aligned_zeros(0, self.dtype)
        self._state_slots = []
        if layers is not None:
            if isinstance(layers, _layers.Layer) or not hasattr(layers, "__iter__"):
                raise TypeError(f"layers must be a list of layers, got "
                                f"{type(layers).__name__}; write Sequential([layer, ...])")
            self._build(list(layers))

    # ---- random streams ---------------------------------------------------------------------
    def _seed_streams(self, seed_value):
        """Derive the shuffling generator and the dropout seed from one seed; initial weights
        use np.random.default_rng([seed_value, 0, layer index])."""
        self.seed_value = seed_value
        self._shuffle_rng = np.random.default_rng([seed_value, 1])
        self._dropout_seed = int(np.random.SeedSequence([seed_value, 2])
                                 .generate_state(1, np.uint64)[0])
        self._rng_counter = 0  # dropout: the counter of the next element's random number
        self._dropout_rows = None  # data-parallel: (skip, rows) of the batch being run

    def _rng_state(self):
        """The random streams' position (saved in model files, so training resumes
        exactly)."""
        return {"seed_value": self.seed_value, "dropout_counter": self._rng_counter,
                "shuffle": self._shuffle_rng.bit_generator.state}

    def _set_rng_state(self, state):
        self._seed_streams(int(state["seed_value"]))
        self._rng_counter = int(state["dropout_counter"])
        self._shuffle_rng.bit_generator.state = state["shuffle"]

    # ---- structure ------------------------------------------------------------------------
    def _build(self, layers):
        """Check the layer chain, lay out one flat buffer and point every layer into it."""
        for i, layer in enumerate(layers):
            if not isinstance(layer, _layers.Layer):
                raise TypeError(f"layers[{i}] is {layer!r} ({type(layer).__name__}), not an "
                                f"nncore layer such as nn.Dense(in, out)")
            if layer._model is not None and layer._model is not self:
                raise ValueError(f"layers[{i}] {layer!r} already belongs to another model; "
                                 f"a layer can be in one model only: create a new layer")
        all_layers = list(_layers._walk(layers))
        if len(set(map(id, all_layers))) != len(all_layers):
            raise ValueError("the same layer object appears twice; create separate layers")
        for layer in all_layers:
            if layer._model is not None and layer._model is not self:
                raise ValueError(f"{layer!r} already belongs to another model; a layer can "
                                 f"be in one model only: create a new layer")
        n, n_features, prev = None, None, None
        for i, layer in enumerate(layers):
            need = layer.in_features
            if need is not None:
                if n is not None and n != need:
                    raise ValueError(
                        f"layers[{i}] {layer!r} expects {need} input features but "
                        f"layers[{prev}] {layers[prev]!r} outputs {n}; make them agree, "
                        f"e.g. {type(layer).__name__}({n}, ...)")
                if n_features is None:
                    n_features = need
                n, prev = layer.output_features(need), i
            elif n is not None:
                n = layer.output_features(n)
        slots, size = _engine.layout(layers, self.dtype)
        state_slots, state_size = _engine.layout(layers, self.dtype, state=True)
        _layers._check_size(2 * size + state_size, self.dtype,
                            "the model's parameters and gradients")
        params = _engine.aligned_zeros(size, self.dtype)
        grads = _engine.aligned_zeros(size, self.dtype)
        state = _engine.aligned_zeros(state_size, self.dtype)
        self._attach_layers(layers, slots, params, grads, lambda i: np.random.default_rng(
            [self.seed_value, 0, i]))
        for i, layer in enumerate(layers):
            mine = [s for s in state_slots if s.layer == i]
            if mine:
                layer._attach_state({s.name: state[s.offset:s.offset + s.size].reshape(s.shape)
                                     for s in mine})
        self._layers = layers
        self._slots = slots
        self.params, self.grads = params, grads
        self.state, self._state_slots = state, state_slots
        self.n_features = n_features
        self.n_outputs = n
        params_at = [i for i, layer in enumerate(layers) if layer.has_params]
        self._first_param = params_at[0] if params_at else len(layers)
        self._engine.reset()  # built for the old layers and buffers
        if self.optimizer is not None:
            self.optimizer._bind(self)

    def _attach_layers(self, layers, slots, params, grads, rng):
        """Give each layer views of its slots in the flat buffers; a layer's values (set by
        the user or held in a previous buffer) are copied in, or drawn from rng(i)."""
        def view(buf, s):
            return buf[s.offset:s.offset + s.size].reshape(s.shape)

        for i, layer in enumerate(layers):
            mine = [s for s in slots if s.layer == i]
            if not layer.has_params:
                layer._attach(self, {}, {}, None)
                continue
            layer._attach(self, {s.name: view(params, s) for s in mine},
                          {s.name: view(grads, s) for s in mine}, rng(i))

    def _swap_buffers(self, params, grads):
        """Move the parameters and gradients into other flat buffers of the same size and
        dtype (distributed training shares them between the ranks of a node); the
        parameters' values come along. Returns the previous (params, grads)."""
        old = self.params, self.grads
        self._attach_layers(self._layers, self._slots, params, grads, lambda i: None)
        self.params, self.grads = params, grads
        self._engine.drop_plans()  # they point into the old buffers
        if self.optimizer is not None:
            self.optimizer._params, self.optimizer._grads = params, grads
        return old

    def _change_layer(self, layer, name, value):
        """layer.name = value (checked by the layer) for a layer of this model: refused while
        another thread fits; the loss is checked against the new last activation; the
        workspaces and plans, built for the old value, are dropped (a change from a callback
        takes effect in the next epoch)."""
        with self._lock:
            self._refuse_during_fit(f"setting {type(layer).__name__}.{name}")
            old = layer.__dict__.get(name)
            object.__setattr__(layer, name, value)
            if self.loss is not None:
                try:
                    self.loss.check_model(self.n_outputs, self._last_activation())
                except BaseException:
                    object.__setattr__(layer, name, old)
                    raise
            self._engine.reset()

    def add(self, layer):
        """Append a layer. The flat buffer is rebuilt (existing weights are kept); a compiled
        model becomes uncompiled: call :meth:`compile` again before training."""
        with self._lock:
            self._refuse_while_fitting("add")
        optimizer = self.optimizer
        self.optimizer = None  # _build must not rebind it
        try:
            self._build(self._layers + [layer])
        except BaseException:
            self.optimizer = optimizer
            raise
        if optimizer is not None:
            optimizer._owner = None
            self.loss, self.metrics = None, []

    @property
    def layers(self):
        """The layers, first to last (a new list; use :meth:`add` to extend the model)."""
        return list(self._layers)

    def __len__(self):
        return len(self._layers)

    def __getitem__(self, i):
        return self._layers[i]

    def __iter__(self):
        return iter(self._layers)

    @property
    def n_params(self):
        """The number of trainable parameters."""
        return sum(s.size for s in self._slots)

    def count_params(self):
        """The number of trainable parameters (Keras' name for :attr:`n_params`)."""
        return self.n_params

    def _check_norm_batches(self, n, batch_size, ranks):
        """Batch norm estimates a variance from each training batch (each rank's share of
        it): a share of one row has none. Refused before training starts."""
        if not any(isinstance(layer, _layers.BatchNorm)
                   for layer in _layers._walk(self._layers)):
            return
        for rows in {batch_size, n % batch_size}:
            shares = {rows * (r + 1) // ranks - rows * r // ranks for r in range(ranks)}
            if rows and 1 in shares:
                where = ("the last batch of an epoch" if rows != batch_size
                         else "every batch")
                per = f" per rank ({ranks} ranks)" if ranks > 1 else ""
                raise ValueError(
                    f"BatchNorm needs training batches of at least 2 rows{per}, but "
                    f"{where} would give one ({n} samples, batch_size={batch_size}); "
                    f"choose another batch_size")

    def _last_activation(self):
        for layer in reversed(self._layers):
            if isinstance(layer, (_layers.Dense, _layers.Activation)):
                return layer.activation.name
            if not isinstance(layer, _layers.Dropout):  # a norm or a block: its own output
                return None
        return None

    def _require_layers(self, what):
        if self.n_features is None:
            raise RuntimeError(f"{what} needs a model with at least one Dense layer; add "
                               f"one with model.add(nn.Dense(in_features, out_features))")

    # ---- compile ---------------------------------------------------------------------------
    def compile(self, optimizer, loss, metrics=None):
        """Choose the optimizer, the loss and the metrics.

        Parameters
        ----------
        optimizer : str or Optimizer
            ``nn.SGD(...)``, ``nn.Adam(...)``, ``nn.AdamW(...)``, or ``"sgd"``, ``"adam"``,
            ``"adamw"`` with default settings. One optimizer trains one model.
        loss : str or Loss
            ``"mse"``, ``"l1"``, ``"huber"`` (or ``nn.Huber(delta)``), ``"poisson"`` (the
            outputs are log rates), ``"bce_with_logits"`` or ``"cross_entropy"`` (integer
            labels; ``nn.CrossEntropy(label_smoothing=...)``). The classification losses take
            logits: the last layer must have no activation.
        metrics : list of str or Metric, optional
            ``"accuracy"``, ``"mse"``, ``"mae"``.
        """
        self._require_layers("compile")
        with self._lock:
            self._refuse_while_fitting("compile")
        loss = _losses.get(loss)
        loss.check_model(self.n_outputs, self._last_activation())
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, _metrics.Metric)):
            metrics = [metrics]
        metrics = [_metrics.get(m) for m in metrics]
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"metrics lists a metric twice: {names}")
        for m in metrics:
            m._setup(loss, self.n_outputs)
        optimizer = _optimizers.get(optimizer)
        optimizer._bind(self)  # raises if it trains another model; nothing changed yet
        if self.optimizer is not None and self.optimizer is not optimizer:
            self.optimizer._owner = None
        self.optimizer, self.loss, self.metrics = optimizer, loss, metrics

    # ---- threads ---------------------------------------------------------------------------
    def _refuse_during_fit(self, what):
        me = threading.get_ident()
        if self._fit_thread is not None and self._fit_thread != me:
            raise RuntimeError(f"{what} was called while fit is running on another thread "
                               f"of this model; the weights are changing. Wait for fit to "
                               f"return (join its thread), or use a copy of the model")

    def _refuse_while_fitting(self, what):
        """Calls that replace what a running fit holds (its buffers, its optimizer) wait for
        the end of fit in every thread, its callbacks' included."""
        if self._fit_thread is not None:
            raise RuntimeError(f"{what} was called while fit is running on this model (in "
                               f"another thread or from a callback); it would replace what "
                               f"fit is using. Call it after fit returns")

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what} needs a compiled model: call model.compile("
                               f"optimizer=..., loss=...) first, e.g. model.compile("
                               f"optimizer=nn.Adam(), loss='cross_entropy')")

    # ---- data checks -----------------------------------------------------------------------
    def _check_xy(self, X, y, sample_weight, caller, names=("X", "y", "sample_weight")):
        X = check_features(X, names[0], self.dtype, self.n_features, caller)
        Y = self.loss.check_targets(y, names[1], self.n_outputs, self.dtype)
        check_same_length(X, Y, names[0], names[1])
        W = None
        if sample_weight is not None:
            W = check_sample_weight(sample_weight, names[2], X.shape[0], self.dtype)
        return X, Y, W

    # ---- evaluation over validated arrays ----------------------------------------------------
    def _evaluate_arrays(self, X, Y, W, batch_size):
        """{"loss": ..., metric: ...} over validated arrays (inference mode)."""
        return self._evaluate_logs(*self._engine.evaluate_sums(X, Y, W, batch_size))


    def _evaluate_logs(self, total, weight, sums, counts):
        d = 1 if self.loss.labels else self.n_outputs
        logs = {"loss": total / (d * weight)}
        for k, metric in enumerate(self.metrics):
            logs[metric.name] = sums[k] / counts[k]
        return logs



    # ---- fit -------------------------------------------------------------------------------
    def fit(self, X, y, *, epochs=1, batch_size=32, shuffle=True, validation_split=0.0,
            validation_data=None, sample_weight=None, callbacks=None, verbose=1,
            on_nan="ignore", distributed=None):
        """Train the model.

        One fit at a time per model: while fit runs, calls of ``fit``, ``predict``,
        ``evaluate``, ``save``, ``compile`` or ``load_state_dict`` on this model from other
        threads raise RuntimeError
        (callbacks, which run in fit's thread, may call them). A fit started while other
        threads are in ``predict`` waits for them to finish. ``predict`` itself may be called
        from many threads at once.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Finite real numbers; converted to the model's dtype (a copy when it differs).
        y : array_like
            Integer class labels (n_samples,) in [0, n_outputs) for ``cross_entropy``
            (floats holding whole numbers are accepted); otherwise real targets of shape
            (n_samples, n_outputs), or (n_samples,) for one output; in [0, 1] for
            ``bce_with_logits``.
        epochs : int, default 1
        batch_size : int, default 32
            Rows per update (capped at n_samples).
        shuffle : bool, default True
            Shuffle the rows each epoch (with the model's seed). With False, batches are taken
            in order and the last, partial batch is used (its loss is the mean over its rows).
        validation_split : float, default 0
            Fraction of the rows, taken from the end before shuffling, held out for
            validation.
        validation_data : tuple, optional
            ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``; not together with
            validation_split.
        sample_weight : array_like, shape (n_samples,), optional
            Non-negative weights: the loss is ``sum w_i l_i / sum w_i``.
        callbacks : list of Callback, optional
        verbose : {0, 1, 2}, default 1
            0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        on_nan : {"ignore", "stop", "raise"}, default "ignore"
            What a NaN or infinite batch loss does: nothing ("ignore"); stop training with a
            RuntimeWarning, like the TerminateOnNaN callback ("stop"); raise
            :class:`NonFiniteLossError` naming the epoch and batch ("raise"). With "stop" and
            "raise" the weights are those of the last batch whose loss was finite (the
            update that led to the bad loss is undone; the optimizer state is not).
        distributed : bool, mpi4py communicator or DataParallel, optional
            Train data-parallel on MPI (:mod:`nncore.distributed`): True uses
            ``MPI.COMM_WORLD``. Every rank calls fit with the same data and arguments; rank
            0's weights are broadcast, each rank trains on its share of every batch, and the
            result is the single-process one (to rounding). History is the same on every
            rank; only rank 0 shows progress and runs ModelCheckpoint.

        Returns
        -------
        History
            ``history.history`` maps "loss", each metric, ("lr",) and their "val_" versions to
            per-epoch lists.

        Raises
        ------
        RuntimeError
            If the model is not compiled, or fit is already running on another thread.
        TypeError, ValueError
            For bad arguments; the model is then left exactly as it was.
        NonFiniteLossError
            With ``on_nan="raise"``, when a batch's loss is not finite.
        """
        with self._lock:  # waits for a predict running on another thread
            if self._fit_thread is not None:
                raise RuntimeError("fit was called while fit is already running on this "
                                   "model (in another thread or from a callback); one fit at "
                                   "a time per model")
            self._fit_thread = threading.get_ident()
        dp = None
        try:
            if distributed is not None and distributed is not False:
                from . import distributed as _distributed
                dp = _distributed._resolve(self, distributed)
                dp._phase = "arguments"
            return self._fit(X, y, epochs, batch_size, shuffle, validation_split,
                             validation_data, sample_weight, callbacks, verbose, on_nan, dp)
        except BaseException as e:
            if dp is not None:
                dp._failed(e)  # agrees with the other ranks, or aborts the job
            raise
        finally:
            self._fit_thread = None

    def _fit(self, X, y, epochs, batch_size, shuffle, validation_split, validation_data,
             sample_weight, callbacks, verbose, on_nan, dp=None):
        self._require_compiled("fit")
        epochs = check_int(epochs, "epochs", 1)
        batch_size = check_int(batch_size, "batch_size", 1)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if verbose not in (0, 1, 2) or isinstance(verbose, float):
            raise ValueError(f"verbose must be 0 (silent), 1 (progress bar) or 2 (one line "
                             f"per epoch), got {verbose!r}")
        if not isinstance(on_nan, str) or on_nan not in _ON_NAN:
            raise ValueError(f"on_nan must be one of {_ON_NAN}, got {on_nan!r}")
        validation_split = check_number(validation_split, "validation_split", 0.0)
        if validation_split >= 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split}")
        if validation_split > 0 and validation_data is not None:
            raise ValueError("pass validation_split or validation_data, not both")
        X, Y, W = self._check_xy(X, y, sample_weight, "fit")
        val = None
        if validation_split > 0:
            n = X.shape[0]
            split = int(n * (1.0 - validation_split))
            if split <= 0 or split >= n:
                raise ValueError(f"validation_split={validation_split} of {n} samples leaves "
                                 f"{split} for training and {n - split} for validation; "
                                 f"both need at least one")
            val = (X[split:], Y[split:], None if W is None else W[split:])
            X, Y = X[:split], Y[:split]
            W = None if W is None else W[:split]
            if W is not None:
                check_weight_sum(W, "sample_weight", part=f" on the training part (the "
                                 f"first {split} rows) left by validation_split")
                check_weight_sum(val[2], "sample_weight", part=f" on the validation part "
                                 f"(the last {n - split} rows) taken by validation_split")
        elif validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2, 3):
                raise ValueError("validation_data must be a tuple (X_val, y_val) or "
                                 "(X_val, y_val, sample_weight_val)")
            vw = validation_data[2] if len(validation_data) == 3 else None
            val = self._check_xy(validation_data[0], validation_data[1], vw, "fit",
                                 ("validation_data[0]", "validation_data[1]",
                                  "validation_data[2]"))
        if callbacks is None:
            callbacks = []
        if isinstance(callbacks, _callbacks.Callback) or isinstance(callbacks, type):
            callbacks = [callbacks]
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks must be a list of callbacks, got {callbacks!r}; write "
                            f"callbacks=[nn.EarlyStopping(), ...]") from None
        if on_nan == "stop" and not any(isinstance(cb, _callbacks.TerminateOnNaN)
                                        for cb in callbacks):
            callbacks.append(_callbacks.TerminateOnNaN())
        for i, cb in enumerate(callbacks):
            if isinstance(cb, type) and issubclass(cb, _callbacks.Callback):
                raise TypeError(f"callbacks[{i}] is the class {cb.__name__}, not a callback; "
                                f"make one: callbacks=[nn.{cb.__name__}()]")
            if not isinstance(cb, _callbacks.Callback):
                raise TypeError(f"callbacks[{i}] is {cb!r}, not an nncore callback (subclass "
                                f"nn.Callback)")
        sets_lr = self.optimizer.schedule is not None or any(
            getattr(cb, "_sets_lr", False) for cb in callbacks)
        keys = ["loss"] + [m.name for m in self.metrics] + (["lr"] if sets_lr else [])
        if val is not None:
            keys += ["val_loss"] + [f"val_{m.name}" for m in self.metrics]
        for cb in callbacks:
            cb._check(keys)

        self._check_norm_batches(X.shape[0], min(batch_size, X.shape[0]),
                                 1 if dp is None else dp.size)
        sched = self.optimizer.schedule
        if sched is not None and sched.per_step:
            n_steps = epochs * -(-X.shape[0] // min(batch_size, X.shape[0]))
            if self.optimizer.steps + n_steps > sched.total_steps:
                raise ValueError(
                    f"OneCycleLR has total_steps={sched.total_steps}, but the optimizer has "
                    f"taken {self.optimizer.steps} steps and this fit takes up to {n_steps}; "
                    f"give the schedule the steps of the whole training")
            if (sched.cycle_momentum and isinstance(self.optimizer, _optimizers.SGD)
                    and self.optimizer.momentum == 0):
                raise ValueError("OneCycleLR(cycle_momentum=True) cycles SGD's momentum: "
                                 "create the optimizer with momentum > 0 (its value is "
                                 "replaced), or pass cycle_momentum=False")
        if dp is not None:  # every rank got this far, with the same data and settings
            dp._agree(None)
            settings = (epochs, batch_size, bool(shuffle), on_nan, keys, self.loss.name,
                        repr(self.optimizer.get_config()))
            dp._begin(X, Y, W, val, settings)
            root = dp.rank == 0
            callbacks = [cb for cb in callbacks if root or not cb._root_only]

        # ---- from here on the model changes ----
        n = X.shape[0]
        batch_size = min(batch_size, n)
        history = _callbacks.History()
        params = {"epochs": epochs, "batch_size": batch_size, "samples": n,
                  "steps": -(-n // batch_size), "verbose": verbose}
        history.set_params(params)
        extra = ([_callbacks.ProgressBar(verbose)] if verbose and (dp is None or dp.rank == 0)
                 else [])
        cbs = _callbacks._CallbackList([history] + callbacks + extra, self, params)
        guard = on_nan == "raise" or any(getattr(cb, "_nan_guard", False) for cb in callbacks)
        guard = _engine.NanGuard(self.params, self.state) if guard else None
        self.history = history
        self.stop_training = False
        self._nonfinite = None
        on_batch = cbs.batch_hook()
        eval_batch = max(batch_size, _PREDICT_BATCH)
        opt = self.optimizer
        run_epoch = self._engine.run_epoch if dp is None else dp._run_epoch
        evaluate = self._evaluate_arrays if dp is None else dp._evaluate
        cbs.on_train_begin()
        try:
            for epoch in range(epochs):
                opt._epoch_begin()
                cbs.on_epoch_begin(epoch)
                lr = opt.lr
                # The batches gather their rows through perm: no copy of the data set.
                perm = (self._shuffle_rng.permutation(n).astype(np.int64, copy=False)
                        if shuffle else None)
                res = run_epoch(X, Y, W, batch_size, on_batch, guard, perm)
                if guard is not None and res.nonfinite is None and dp is None:
                    guard.after_epoch(self.params, res)  # dp checks its ranks itself
                if res.nonfinite is not None and on_nan == "raise":
                    self._nonfinite = res.nonfinite
                    kind = res.nonfinite[2] if len(res.nonfinite) > 2 else None
                    err = NonFiniteLossError(epoch, res.nonfinite[0], res.nonfinite[1],
                                             True if kind == "weights" else kind)
                    err._nncore_collective = True  # every rank saw the same global loss
                    raise err
                opt._epoch_end()
                logs = {"loss": res.loss_sum / res.weight_sum}
                for k, metric in enumerate(self.metrics):
                    c = res.metric_counts[k]
                    logs[metric.name] = res.metric_sums[k] / c if c else math.nan
                if sets_lr:
                    logs["lr"] = lr
                if res.nonfinite is not None:
                    self._nonfinite = res.nonfinite
                if val is not None:
                    for k, v in evaluate(*val, eval_batch).items():
                        logs["val_" + k] = v
                cbs.on_epoch_end(epoch, logs)
                if dp is not None:  # a callback on one rank stops them all
                    self.stop_training = dp._any(self.stop_training)
                if self.stop_training:
                    break
            cbs.on_train_end({})
            if dp is not None:
                dp._end()
        finally:
            for cb in extra:
                cb.on_train_end({})
        return history

    # ---- evaluate / predict ----------------------------------------------------------------
    def evaluate(self, X, y, *, sample_weight=None, batch_size=None, verbose=0):
        """Loss and metrics on data (inference mode: no dropout).

        Parameters
        ----------
        X, y, sample_weight
            As for :meth:`fit`.
        batch_size : int, optional
            Rows per kernel call (default 1024); does not change the result.
        verbose : int, default 0
            1 prints the results.

        Returns
        -------
        dict
            ``{"loss": ..., "accuracy": ..., ...}`` (the loss is the exact mean over all
            rows, weighted by sample_weight).
        """
        self._require_compiled("evaluate")
        batch_size = _PREDICT_BATCH if batch_size is None else check_int(
            batch_size, "batch_size", 1)
        X, Y, W = self._check_xy(X, y, sample_weight, "evaluate")
        with self._lock:
            self._refuse_during_fit("evaluate")
            logs = self._evaluate_arrays(X, Y, W, batch_size)
        if verbose:
            print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        return logs

    def predict(self, X, *, batch_size=None):
        """The model's outputs for X (inference mode: no dropout).

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
        batch_size : int, optional
            Rows per kernel call (default 1024).

        Returns
        -------
        ndarray, shape (n_samples, n_outputs), the model's dtype
            Raw outputs: logits for models trained with a classification loss (see
            :meth:`predict_proba`).

        Notes
        -----
        Thread-safe: threads calling predict on one model at once get the results of serial
        calls (they share one workspace and take turns; the kernels release the GIL). While
        another thread runs :meth:`fit` on this model, predict raises RuntimeError.
        """
        if batch_size is None:
            # The fast path: a well-formed array straight to the cached plan (acquire and
            # release cost half of what a with block does: 0.1 us of a one-sample predict of
            # 0.9). The plan is looked up under the lock: another thread may replace it.
            lock = self._lock
            lock.acquire()
            try:
                cached = self._engine.plans.get(False)  # inline: a call costs 5% here
                out = (cached[1].predict(X) if cached is not None and cached[1] is not None
                       and self._fit_thread is None else None)
            finally:
                lock.release()
            if out is not None:
                return out
        self._require_layers("predict")
        with self._lock:
            self._refuse_during_fit("predict")
            return self._engine.predict(X, batch_size)


    def predict_proba(self, X, *, batch_size=None):
        """Class probabilities: the softmax (``cross_entropy``) or sigmoid
        (``bce_with_logits``) of :meth:`predict`'s logits.

        Returns
        -------
        ndarray, shape (n_samples, n_outputs)
        """
        prob = self.loss.probability if self.loss is not None else None
        if prob is None:
            last = self._last_activation()
            if last in ("softmax", "sigmoid"):
                return self.predict(X, batch_size=batch_size)
            what = (f"this model's loss is {self.loss.name!r}" if self.loss is not None
                    else "the model is not compiled")
            raise ValueError(f"predict_proba needs a classifier: {what}; compile it with "
                             f"loss='cross_entropy' or 'bce_with_logits', or use predict")
        out = self.predict(X, batch_size=batch_size)
        return _core.activation_forward(out, prob, out=out)

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self):
        """The parameters by name (``"0.W"``, ``"0.b"``, ``"2.W"``, ...; the number is the
        layer's index), then the layers' untrained state (``"1.running_mean"``, ...), as
        copies.

        Returns
        -------
        dict of str to ndarray
        """
        out = {s.key: self.params[s.offset:s.offset + s.size].reshape(s.shape).copy()
               for s in self._slots}
        out.update({s.key: self.state[s.offset:s.offset + s.size].reshape(s.shape).copy()
                    for s in self._state_slots})
        return out

    def load_state_dict(self, state_dict, strict=True, *, allow_nonfinite=False):
        """Copy parameters (and untrained state) into the model (all checks first: on error nothing changes).

        Parameters
        ----------
        state_dict : dict of str to array_like
            As returned by :meth:`state_dict` (values are cast to the model's dtype).
        strict : bool, default True
            Require exactly the model's keys; with False, missing and unexpected keys are
            ignored (and reported). Shapes must match either way.
        allow_nonfinite : bool, default False
            Accept NaN and infinite values (as :func:`nncore.load_model` does); values that
            overflow the model's dtype are refused either way.

        Returns
        -------
        namedtuple (missing_keys, unexpected_keys)
        """
        with self._lock:
            self._refuse_during_fit("load_state_dict")
        if not isinstance(state_dict, collections.abc.Mapping):
            raise TypeError(f"state_dict must be a dict of arrays (from model.state_dict()), "
                            f"got {type(state_dict).__name__}")
        slots = {s.key: (s, self.params) for s in self._slots}
        slots.update({s.key: (s, self.state) for s in self._state_slots})
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not match the model: missing keys {missing}, "
                             f"unexpected keys {unexpected}; the model has {list(slots)} "
                             f"(pass strict=False to load the matching ones)")
        from ._validation import to_numeric
        arrays = {}
        for k, (s, _) in slots.items():
            if k not in state_dict:
                continue
            name = f"state_dict[{k!r}]"
            a = to_numeric(state_dict[k], name)
            if a.shape != tuple(s.shape):
                raise ValueError(f"{name} has shape {a.shape} but the model's "
                                 f"{k} has shape {tuple(s.shape)}")
            # As load_model: finite values only, and none that overflow the model's dtype.
            arrays[k] = check_finite_array(a, name, self.dtype, allow_nonfinite)
            if s.name == "running_var" and np.any(arrays[k] < 0):
                raise ValueError(f"{name} has a negative value; a variance is >= 0")
        for k, a in arrays.items():
            s, buf = slots[k]
            buf[s.offset:s.offset + s.size] = a.reshape(-1)
        return _IncompatibleKeys(missing, unexpected)

    def get_config(self):
        """The architecture as a JSON-able dict (what model files store)."""
        return {"name": self.name, "dtype": self.policy, "seed": self.seed,
                "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                           for layer in self._layers]}

    @classmethod
    def from_config(cls, config, dtype=None):
        """A new model (fresh weights) from :meth:`get_config`'s dict."""
        layers = [_layers.get(c) for c in config.get("layers", [])]
        return cls(layers, dtype=dtype or config.get("dtype", "float32"),
                   seed=config.get("seed"), name=config.get("name", "sequential"))

    def _copy(self, dtype=None):
        """A deep copy (weights, not optimizer state), optionally in another dtype, compiled
        with the same loss and metrics."""
        other = Sequential.from_config(self.get_config(), dtype=dtype)
        other.load_state_dict(self.state_dict())
        if self.loss is not None:
            args = {k: v for k, v in self.loss.get_config().items() if k != "name"}
            other.compile(_optimizers.SGD(lr=0.0), type(self.loss)(**args),
                          [type(m)() for m in self.metrics])
        return other

    # ---- files -----------------------------------------------------------------------------
    def save(self, path, *, include_optimizer=True, metadata=None, allow_nonfinite=False):
        """Write the model to a ``.safetensors`` file (atomically).

        The file holds the parameters as tensors (``"0.W"``, ...), the architecture, dtype
        and compile settings in its metadata, and, with ``include_optimizer``, the
        optimizer's state so that training can resume. Never pickle.

        Parameters
        ----------
        path : str or os.PathLike
        include_optimizer : bool, default True
        metadata : dict of str to str, optional
            Extra text stored in the file (read back as ``model.metadata``).
        allow_nonfinite : bool, default False
            Write NaN or infinite weights (or optimizer state) too; such a file loads only
            with ``nn.load_model(path, allow_nonfinite=True)``.

        Raises
        ------
        ValueError
            If a weight is NaN or infinite (and ``allow_nonfinite`` is False): nothing is
            written.
        """
        from . import io
        with self._lock:
            self._refuse_during_fit("save")
            io.save_model(self, path, include_optimizer=include_optimizer, metadata=metadata,
                          allow_nonfinite=allow_nonfinite)

    def load_weights(self, path, strict=True):
        """Load the parameters of a model file saved by :meth:`save` into this model (the
        architecture must match)."""
        from . import io
        return self.load_state_dict(io.read_tensors(path), strict=strict)

    # ---- display ---------------------------------------------------------------------------
    def summary(self, file=None):
        """Print the layers, their output shapes and parameter counts.

        Parameters
        ----------
        file : file-like, optional
            Where to print (default sys.stdout).
        """
        print(self._summary_text(), file=file)

    def _summary_text(self):
        rows = [("#", "Layer", "Output shape", "Params")]
        n = None
        for i, layer in enumerate(self._layers):
            n = layer.output_features(layer.in_features if layer.in_features else n)
            rows.append((str(i), repr(layer), f"(None, {n})", f"{layer.n_params:,}"))
        w = [max(len(r[k]) for r in rows) for k in range(4)]
        line = "-" * (sum(w) + 6)
        out = [f'Model "{self.name}" ({self.policy}, seed {self.seed_value}, '
               f'{self.n_features} input features)', line]
        for j, r in enumerate(rows):
            out.append(f"{r[0]:>{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]:>{w[3]}}")
            if j == 0:
                out.append(line)
        nbytes = self.n_params * self.dtype.itemsize
        out += [line, f"Total params: {self.n_params:,} ({nbytes / 1024:.1f} KiB)"]
        n_state = sum(s.size for s in self._state_slots)
        if n_state:
            out.append(f"Non-trainable state: {n_state:,} (batch norm's running statistics)")
        if self.loss is not None:
            ms = ", ".join(m.name for m in self.metrics) or "none"
            out.append(f"Compiled: optimizer {self.optimizer!r}, loss {self.loss.name!r}, "
                       f"metrics {ms}")
        return "\n".join(out)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self._layers)
        return f"Sequential([{inner}], dtype={self.policy!r}, seed={self.seed!r})"
