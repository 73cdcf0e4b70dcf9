"""Optimizers with PyTorch's argument names and update formulas: SGD, Adam, AdamW.

An optimizer updates a whole model in one compiled call: the model keeps all its parameters
in one flat buffer (``model.params``) and their gradients in another (``model.grads``), and
the optimizer's state (momentum buffer; Adam's ``m``, ``v``, ``vmax``) are flat arrays of the
same size. ``model.compile(optimizer=...)`` binds the optimizer to the model; one optimizer
trains one model.
"""

import weakref

import numpy as np

from . import _core
from . import schedules as _schedules
from ._docs import inherit_docs
from ._validation import check_int, check_number, first_nonfinite

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "get"]

# steps reach the C core as int64_t (Adam's bias correction takes t = steps + 1, and a fit adds
# one per batch), so a restored count leaves room for 2**62 more updates; epochs get the same
# bound (a schedule raises its gamma to the epoch count, as a float)
MAX_COUNT = 2 ** 62


class Optimizer:
    """Base class of the optimizers.

    Attributes
    ----------
    lr : float
        The learning rate used by the next update (a schedule may change it each epoch).
    base_lr : float
        The learning rate given at construction (what a schedule starts from).
    schedule : LRSchedule or None
        A per-epoch learning-rate schedule (:mod:`nncore.schedules`).
    global_clipnorm : float or None
        Before each update, the gradients are scaled so that their global L2 norm (over
        every parameter) is at most this (``torch.nn.utils.clip_grad_norm_``; Keras's name).
    clipvalue : float or None
        Before each update, each gradient is clamped to ``[-clipvalue, clipvalue]``
        (``torch.nn.utils.clip_grad_value_``), before ``global_clipnorm`` when both are
        given.
    steps : int
        Updates done so far.
    epochs : int
        Training epochs completed (the schedule's epoch counter).
    """

    _state_names = ()
    # state arrays whose every element is >= 0 (the update takes their square root)
    _nonnegative = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        inherit_docs(cls)

    def __init__(self, lr, schedule=None, global_clipnorm=None, clipvalue=None):
        self.lr = self.base_lr = check_number(lr, "lr", 0.0)
        for name, v in (("global_clipnorm", global_clipnorm), ("clipvalue", clipvalue)):
            if v is not None and not 0 < check_number(v, name) < float("inf"):
                raise ValueError(f"{name} must be positive and finite (or None: no "
                                 f"clipping), got {v!r}")
        self.global_clipnorm = None if global_clipnorm is None else float(global_clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be an nncore schedule such as "
                            f"nn.StepLR(step_size=10), got {schedule!r}")
        self.schedule = schedule
        self._momentum_now = None  # a per-step schedule's momentum (SGD) or beta1 (Adam)
        self.steps = 0
        self.epochs = 0
        self._owner = None
        self._params = self._grads = None
        self.state = {}

    # -- binding to a model's flat buffers ------------------------------------------------
    def _bind(self, model):
        owner = self._owner() if self._owner is not None else None
        if owner is not None and owner is not model:
            raise ValueError("this optimizer already trains another model; create a new "
                             "optimizer for this one (e.g. nn.SGD(lr=0.01))")
        params, grads = model.params, model.grads
        same = (self._params is params and all(
            a.shape == params.shape and a.dtype == params.dtype for a in self.state.values()))
        self._owner = weakref.ref(model)
        self._params, self._grads = params, grads
        if not same:
            self.state = {k: np.zeros_like(params) for k in self._state_names_in_use()}
            self.steps = 0

    def _state_names_in_use(self):
        return self._state_names

    def _require_bound(self):
        if self._params is None:
            raise RuntimeError("this optimizer is not attached to a model yet; pass it to "
                               "model.compile(optimizer=...)")

    # -- epochs and schedules --------------------------------------------------------------
    def _epoch_begin(self):
        if self.schedule is not None and self.schedule.per_step:
            self.lr = float(self.schedule.at(self.steps)[0])
        elif self.schedule is not None:
            self.lr = float(self.schedule(self.epochs, self.base_lr))

    def _begin_step(self):
        """A per-step schedule's rate (and momentum) for the update about to run."""
        if self.schedule is not None and self.schedule.per_step:
            lr, self._momentum_now = self.schedule.at(self.steps)
            self.lr = float(lr)

    def _epoch_end(self):
        self.epochs += 1

    # -- the update ------------------------------------------------------------------------
    def step(self):
        """Update the bound model's parameters in place from its gradients (one compiled
        call over the whole flat buffer)."""
        self._require_bound()
        self._begin_step()
        if self.clips:
            _core.clip_grads(self._grads, self.global_clipnorm or 0.0, self.clipvalue or 0.0)
        self._update(self._params, self._grads, self.state)
        self.steps += 1

    @property
    def clips(self):
        """True when the gradients are clipped before each update."""
        return self.global_clipnorm is not None or self.clipvalue is not None

    def _update(self, params, grads, state):
        """The update of step ``self.steps + 1`` on (parts of) the flat buffers: ``params``,
        ``grads`` and every array of ``state`` are the same range of elements (distributed
        training updates one range per rank)."""
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------
    def get_config(self):
        """Constructor arguments as a JSON-able dict (including ``"name"``)."""
        cfg = {"name": type(self).__name__, "lr": self.base_lr}
        cfg.update(self._hyper())
        for k in ("global_clipnorm", "clipvalue"):
            if getattr(self, k) is not None:
                cfg[k] = getattr(self, k)
        if self.schedule is not None:
            cfg["schedule"] = self.schedule.get_config()
        return cfg

    def _hyper(self):
        return {}

    def state_dict(self):
        """The optimizer's state: counters, current learning rate and copies of the state
        arrays (flat, one entry per model parameter element)."""
        return {"config": self.get_config(), "lr": self.lr, "steps": self.steps,
                "epochs": self.epochs, "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state, *, allow_nonfinite=False):
        """Restore :meth:`state_dict`'s output (the optimizer must be bound to a model of
        the same size). Everything is checked before anything changes.

        Parameters
        ----------
        state : dict
            ``lr`` (finite, >= 0: the constructor's rule), ``steps`` and ``epochs`` (integers
            in [0, 2**62]) and ``state``: the arrays this optimizer keeps (see
            :meth:`state_dict`), each of the model's dtype and parameter count, finite, and
            ``exp_avg_sq`` / ``max_exp_avg_sq`` >= 0.
        allow_nonfinite : bool, default False
            Accept NaN or infinite state arrays (as ``load_model(..., allow_nonfinite=True)``
            does).
        """
        self._require_bound()
        lr, steps, epochs, arrays = self._checked_state(state, allow_nonfinite)
        for k, a in arrays.items():
            self.state[k][...] = a
        self.lr, self.steps, self.epochs = lr, steps, epochs

    def _checked_state(self, state, allow_nonfinite=False):
        """(lr, steps, epochs, arrays) of a :meth:`state_dict`-like dict after the checks
        :meth:`load_state_dict` documents; TypeError or ValueError naming the field."""
        if not isinstance(state, dict):
            raise TypeError(f"optimizer state must be a dict (from optimizer.state_dict()), "
                            f"got {type(state).__name__}")
        lr = check_number(state.get("lr", self.lr), "lr", 0.0)
        counts = [check_int(state.get(k, 0), k, 0) for k in ("steps", "epochs")]
        for k, v in zip(("steps", "epochs"), counts):
            if v > MAX_COUNT:
                raise ValueError(f"{k} must be at most 2**62 (the C core counts updates in "
                                 f"64 bits, with room for more), got {v}")
        arrays = state.get("state", {})
        if not isinstance(arrays, dict):
            raise TypeError(f"optimizer state['state'] must be a dict of arrays, got "
                            f"{type(arrays).__name__}")
        want = self._state_names_in_use()
        missing = [k for k in want if k not in arrays]
        if missing or set(arrays) - set(want):
            raise ValueError(f"optimizer state has arrays {sorted(map(str, arrays))}, "
                             f"expected {list(want)}; was it saved from another optimizer?")
        out = {}
        for k in want:
            a = arrays[k]
            if not isinstance(a, np.ndarray) or a.dtype != self._params.dtype:
                what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(f"optimizer state {k!r} is {what}, but the model's parameters "
                                f"are {self._params.dtype}; pass an array of that dtype (as "
                                f"optimizer.state_dict() returns): nothing is cast")
            if a.shape != self._params.shape:
                raise ValueError(f"optimizer state {k!r} has shape {a.shape}, but the model "
                                 f"has {self._params.shape[0]} parameter slots")
            bad = None if allow_nonfinite else first_nonfinite(a)
            if bad is not None:
                raise ValueError(f"optimizer state {k!r} holds {bad[1].item()!r} at index "
                                 f"{bad[0][0]}; it must be finite (pass "
                                 f"allow_nonfinite=True to accept it)")
            if k in self._nonnegative:
                neg = np.flatnonzero(a < 0)
                if neg.size:
                    i = int(neg[0])
                    raise ValueError(f"optimizer state {k!r} holds {a[i].item()!r} at index "
                                     f"{i}; it is a running mean of squared gradients and "
                                     f"must be >= 0")
            out[k] = a
        return lr, counts[0], counts[1], out

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name"
                         and k != "schedule")
        if self.schedule is not None:
            args += f", schedule={self.schedule!r}"
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum (torch.optim.SGD)::

        g = grad + weight_decay * p
        if momentum:  buf = g (first step), else momentum * buf + (1 - dampening) * g
                      g = g + momentum * buf if nesterov else buf
        p -= lr * g

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate.
    momentum : float, default 0
    dampening : float, default 0
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening == 0).
    weight_decay : float, default 0
        L2 penalty added to the gradient.
    schedule : LRSchedule, optional
        Per-epoch learning-rate schedule (:mod:`nncore.schedules`).
    global_clipnorm, clipvalue : float, optional
        Gradient clipping before each update (see :class:`Optimizer`).
    """

    def __init__(self, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, *, schedule=None, global_clipnorm=None, clipvalue=None):
        super().__init__(lr, schedule, global_clipnorm, clipvalue)
        self.momentum = check_number(momentum, "momentum", 0.0)
        self.dampening = check_number(dampening, "dampening")
        self.weight_decay = check_number(weight_decay, "weight_decay", 0.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov=True needs momentum > 0 and dampening == 0 (as in "
                             f"PyTorch), got momentum={self.momentum}, "
                             f"dampening={self.dampening}")

    def _state_names_in_use(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _hyper(self):
        return {"momentum": self.momentum, "dampening": self.dampening,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay}

    def _update(self, params, grads, state):
        mom = self.momentum if self._momentum_now is None else self._momentum_now
        _core.sgd_update(params, grads, state.get("momentum_buffer"), lr=self.lr,
                         momentum=mom, dampening=self.dampening,
                         weight_decay=self.weight_decay, nesterov=self.nesterov,
                         first_step=self.steps == 0)


class Adam(Optimizer):
    """Adam (torch.optim.Adam)::

        g = grad + weight_decay * p
        m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;   vmax = max(vmax, v) if amsgrad
        p -= lr / (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps)

    Parameters
    ----------
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        L2 penalty added to the gradient (use :class:`AdamW` for decoupled decay).
    amsgrad : bool, default False
    schedule : LRSchedule, optional
    global_clipnorm, clipvalue : float, optional
        Gradient clipping before each update (see :class:`Optimizer`).
    """

    _decoupled = False
    _nonnegative = ("exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, schedule=None, global_clipnorm=None, clipvalue=None):
        super().__init__(lr, schedule, global_clipnorm, clipvalue)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas must be a pair of numbers like (0.9, 0.999), got "
                            f"{betas!r}") from None
        b1 = check_number(b1, "betas[0]", 0.0)
        b2 = check_number(b2, "betas[1]", 0.0)
        if b1 >= 1 or b2 >= 1:
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        self.betas = (b1, b2)
        self.eps = check_number(eps, "eps", 0.0)
        self.weight_decay = check_number(weight_decay, "weight_decay", 0.0)
        if not isinstance(amsgrad, (bool, np.bool_)):
            raise TypeError(f"amsgrad must be True or False, got {amsgrad!r}")
        self.amsgrad = bool(amsgrad)

    def _state_names_in_use(self):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if self.amsgrad else (
            "exp_avg", "exp_avg_sq")

    def _hyper(self):
        return {"betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
                "amsgrad": self.amsgrad}

    def _update(self, params, grads, state):
        betas = self.betas if self._momentum_now is None else (self._momentum_now,
                                                                self.betas[1])
        _core.adam_update(params, grads, state["exp_avg"], state["exp_avg_sq"],
                          state.get("max_exp_avg_sq"), lr=self.lr, betas=betas,
                          eps=self.eps, weight_decay=self.weight_decay, step=self.steps + 1,
                          amsgrad=self.amsgrad, decoupled=self._decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW): ``p *= 1 - lr * weight_decay``
    before the Adam update. Same parameters as :class:`Adam`, with ``weight_decay`` defaulting
    to 0.01 as in PyTorch."""

    _decoupled = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, schedule=None, global_clipnorm=None, clipvalue=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, schedule=schedule,
                         global_clipnorm=global_clipnorm, clipvalue=clipvalue)


_CLASSES = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(optimizer):
    """An :class:`Optimizer` from a name (``"sgd"``, ``"adam"``, ``"adamw"``, with default
    hyper-parameters), a config dict, or an optimizer object (returned as is)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, dict):
        cfg = dict(optimizer)
        name = str(cfg.pop("name", "")).lower()
        if name not in _CLASSES:
            raise ValueError(f"unknown optimizer config {optimizer!r}")
        if "betas" in cfg:
            cfg["betas"] = tuple(cfg["betas"])
        if cfg.get("schedule") is not None:
            cfg["schedule"] = _schedules.get(cfg["schedule"])
        return _CLASSES[name](**cfg)
    if isinstance(optimizer, str) and optimizer.lower() in _CLASSES:
        return _CLASSES[optimizer.lower()]()
    raise ValueError(f"optimizer={optimizer!r} is not an optimizer; use 'sgd', 'adam', "
                     f"'adamw' or an object such as nn.SGD(lr=0.05, momentum=0.9)")
